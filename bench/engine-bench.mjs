// Runs bench/engine-bench.ts without a TS runtime: compiles it (and the src files it imports) with the
// project's tsc into bench/out/engine, then runs the result. The addon is taken from build/ (ZTB_NATIVE_DIR).
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'bench', 'out', 'engine');
const tsc = spawnSync(
  process.execPath,
  [join(root, 'node_modules/typescript/bin/tsc'), '--outDir', out, '--rootDir', root, '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
    '--target', 'ES2022', '--strict', '--skipLibCheck', '--types', 'node', join(root, 'bench', 'engine-bench.ts')],
  { stdio: 'inherit' },
);
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
const r = spawnSync(process.execPath, [join(out, 'bench', 'engine-bench.js'), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, ZTB_NATIVE_DIR: root } });
process.exit(r.status ?? 1);
