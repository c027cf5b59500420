// End to end through the CLI: `demo` (the embedded two-tenant example: zero differences between
// the kernel and the reference evaluator), and the manual path `apply --sandbox --backend nft`,
// `probe`, `down` on the seed-derived example. Runs the built CLI (dist/, built by `npm test`).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { skipPrivileged } from '../helpers/privileged.js';
import { sh, uniqueNs } from '../../src/backends/nft/lab.js';
import { listNft } from '../../src/backends/nft/apply.js';

const skip = skipPrivileged('nft');
const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function main(argv: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out, err }));
  });
}

const created: string[] = [];
afterAll(() => {
  for (const ns of created) sh(['ip', 'netns', 'del', ns], { allowFail: true });
});

describe('CLI end to end', () => {
  test('demo: matrix with zero differences, counters, everything removed', async () => {
    if (skip) return;
    const before = new Set(sh(['ip', 'netns', 'list']).split('\n').map((l) => l.split(' ')[0]));
    const t = await main(['demo']);
    expect(t.err).toBe('');
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/\d+ probes, \d+ reachable, 0 differences from the reference evaluator/);
    expect(t.out).toMatch(/fin-web:\n {2}-> fin-db/);
    expect(t.out).toMatch(/rule +position +packets +bytes +text/);
    const after = sh(['ip', 'netns', 'list']).split('\n').map((l) => l.split(' ')[0]).filter((n) => n && !before.has(n));
    expect(after.filter((n) => /^(ztb-demo-|ztpr|ztw-ztb-demo-)/.test(n!))).toEqual([]);
  });

  test('demo --json: every probe with expected and observed', async () => {
    if (skip) return;
    const t = await main(['demo', '--json']);
    expect(t.code).toBe(0);
    const r = JSON.parse(t.out) as { differences: number; cases: { expected: boolean; observed: boolean }[]; counters: { id: number; packets: number }[] };
    expect(r.differences).toBe(0);
    expect(r.cases.length).toBeGreaterThan(100);
    expect(r.cases.some((c) => c.observed) && r.cases.some((c) => !c.observed)).toBe(true);
    expect(r.counters.some((c) => c.packets > 0)).toBe(true);
  });

  test('apply --sandbox --backend nft, probe, down', async () => {
    if (skip) return;
    const gw = uniqueNs('ztkc');
    sh(['ip', 'netns', 'add', gw]);
    created.push(gw);
    const a = await main(['apply', 'examples/two-tenant.toml', '--netns', gw, '--sandbox', '--backend', 'nft']);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toMatch(/nft: loaded table inet ztb/);
    expect(listNft({ netns: gw }).nftables.some((o) => o.chain)).toBe(true);
    const p = await main(['probe', 'examples/two-tenant.toml', '--netns', gw]);
    expect(p.code, p.err).toBe(0);
    expect(p.out).toMatch(/0 differences/);
    const d = await main(['down', 'examples/two-tenant.toml', '--netns', gw]);
    expect(d.code, d.err).toBe(0);
  });

  test('demo as a non-root user says what is missing and exits non-zero', async () => {
    if (skip) return;
    const r = await new Promise<Run>((resolve, reject) => {
      const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, out, err }));
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/demo cannot run: not running as root/);
  });

  test('probe without --netns is a usage error (exit 2)', async () => {
    const t = await main(['probe', 'examples/two-tenant.toml']);
    expect(t.code).toBe(2);
    expect(t.err).toMatch(/--netns/);
  });
});
