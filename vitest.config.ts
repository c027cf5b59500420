import { defineConfig } from 'vitest/config';

// Privileged tests build namespaces and nftables tables with unique names, so files may run in
// parallel; the machine has 2 cores, so keep the pool small and timeouts generous.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
