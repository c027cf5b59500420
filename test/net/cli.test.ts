// Net layer tests through the CLI (dist/cli/main.js, built by `npm test`): apply/verify/down on a
// TOML policy, exit codes, refusal without CAP_NET_ADMIN before any change, the per-host lock, and
// the kill-mid-apply property — SIGKILL an apply at random moments, then apply again: the result
// verifies clean and a further apply changes nothing. The seed is printed; ZTB_TEST_SEED replays.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { acquireLock } from '../../src/net/host.js';
import { LockError } from '../../src/net/errors.js';
import { skipPrivileged } from '../helpers/privileged.js';
import { cleanupHost, ipLinks, makeNetns } from './fixtures.js';

const skip = skipPrivileged();
const CLI = resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');

function policy(nTenants: number, workloads: number): string {
  const out: string[] = [];
  for (let i = 1; i <= nTenants; i++) {
    out.push(
      '[[tenants]]',
      `id = "t${i}"`,
      `net_id = ${i}`,
      `subnets = ["10.${i}.0.0/24"]`,
      `gateway = "10.${i}.0.1"`,
      `vni = ${5000 + i}`,
      'vxlan = { remotes = ["198.18.0.2", "198.18.0.3"], local = "198.18.0.1" }',
      `workloads = [${Array.from({ length: workloads }, (_, w) => `{ name = "w${w}", ip = "10.${i}.0.${10 + w}" }`).join(', ')}]`,
      '',
    );
  }
  return out.join('\n');
}

function cli(args: string[], prefix: string[] = []): { code: number; stdout: string; stderr: string } {
  const cmd = prefix.length ? prefix[0]! : process.execPath;
  const argv = prefix.length ? [...prefix.slice(1), process.execPath, CLI, ...args] : [CLI, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** mulberry32: small seeded PRNG so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('CLI', () => {
  let ns = '';
  let dir = '';
  let file = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ztn-'));
    chmodSync(dir, 0o755);
    file = join(dir, 'policy.toml');
    writeFileSync(file, policy(2, 2), { mode: 0o644 });
    if (!skip) ns = makeNetns('ztnc');
  });
  afterAll(() => {
    if (ns) cleanupHost(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  test('apply, no-op apply, verify, drift exit code, down', () => {
    if (skip) return;
    const a = cli(['apply', file, '--netns', ns, '--json']);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    const rep = JSON.parse(a.stdout) as { applied: number; noop: boolean };
    expect(rep.applied).toBeGreaterThan(0);
    const b = cli(['apply', file, '--netns', ns]);
    expect(b.code).toBe(0);
    expect(b.stdout).toMatch(/^no changes: the tenant networks in netns \S+ match the policy/);
    expect(cli(['verify', file, '--netns', ns]).code).toBe(0);
    spawnSync('ip', ['-n', ns, 'link', 'del', 'tn1w0']);
    const v = cli(['verify', file, '--netns', ns]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/drift: missing: create tap tn1w0/);
    const d = cli(['down', file, '--netns', ns]);
    expect(d.code).toBe(0);
    expect([...ipLinks(ns).keys()]).toEqual(['lo']);
    expect(cli(['apply', file, '--netns', ns, '--bogus']).code).toBe(2);
  });

  test('without CAP_NET_ADMIN apply fails with a clear message before changing anything', () => {
    if (skip) return;
    for (const prefix of [
      ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups'],
      ['setpriv', '--bounding-set', '-net_admin', '--inh-caps', '-net_admin'],
    ]) {
      const r = cli(['apply', file, '--netns', ns], prefix);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/ztb-enforce apply needs CAP_NET_ADMIN.*Nothing was changed\./);
      expect([...ipLinks(ns).keys()]).toEqual(['lo']);
    }
  });

  test('the host lock excludes a second run and is free again after release', async () => {
    if (skip) return;
    const l = await acquireLock(ns);
    await expect(acquireLock(ns)).rejects.toBeInstanceOf(LockError);
    await expect(acquireLock(ns)).rejects.toThrow(/another ztb-enforce run is changing netns/);
    // A CLI run against the same host meanwhile stops before changing anything.
    const r = cli(['apply', file, '--netns', ns]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/another ztb-enforce run is changing netns \S+; try again when it has finished/);
    expect([...ipLinks(ns).keys()]).toEqual(['lo']);
    await l.release();
    const again = await acquireLock(ns);
    await again.release();
  });

  test('killed mid-apply at random points, a re-apply converges and verifies clean', async () => {
    if (skip) return;
    const big = join(dir, 'big.toml');
    writeFileSync(big, policy(6, 2), { mode: 0o644 });
    const seed = process.env.ZTB_TEST_SEED ? Number(process.env.ZTB_TEST_SEED) : Date.now() % 1_000_000;
    console.log(`kill-mid-apply seed ${seed} (replay with ZTB_TEST_SEED=${seed})`);
    const rnd = prng(seed);
    // How long a full apply takes here, process start included, so kills land all over it.
    let t0 = performance.now();
    expect(cli(['apply', big, '--netns', ns, '--sandbox']).code).toBe(0);
    const full = performance.now() - t0;
    expect(cli(['down', big, '--netns', ns]).code).toBe(0);
    for (let round = 0; round < 6; round++) {
      const delay = rnd() * full * 1.1;
      const child = spawn(process.execPath, [CLI, 'apply', big, '--netns', ns, '--sandbox'], { stdio: 'ignore' });
      // Listen before waiting: a late kill finds the child already gone.
      const exited = new Promise((r) => child.on('exit', r));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await exited;
      const re = cli(['apply', big, '--netns', ns, '--sandbox']);
      expect(re.code, `round ${round} (delay ${delay.toFixed(0)} ms): ${re.stderr}`).toBe(0);
      const v = cli(['verify', big, '--netns', ns, '--deep']);
      expect(v.code, `round ${round}: ${v.stdout}`).toBe(0);
      const again = cli(['apply', big, '--netns', ns, '--sandbox']);
      expect(again.stdout, `round ${round}: ${again.stderr}`).toMatch(/^no changes/);
      // Half of the rounds start from scratch, the other half from a converged state.
      if (round % 2 === 0) {
        const d = cli(['down', big, '--netns', ns]);
        expect(d.code, `round ${round} down: ${d.stderr}`).toBe(0);
      }
    }
    expect(cli(['down', big, '--netns', ns]).code).toBe(0);
    expect([...ipLinks(ns).keys()]).toEqual(['lo']);
  }, 600_000);
});
