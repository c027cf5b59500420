// The `bench classbench` command end to end on a 1K set (one round, no rte_acl, no update phase,
// so it stays quick): --results must reproduce the primary trace's last column line for line, the
// JSON report must say every header was verified, and the SVG must be drawn. Timings are printed
// by the command but never asserted. Usage errors exit through UsageError.
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/commands/bench.js';
import { UsageError } from '../../src/cli/usage.js';

const DIR = process.env.ZTB_CLASSBENCH_DIR ?? join(import.meta.dirname, '..', '..', 'bench', 'classbench');
const tmp = mkdtempSync(join(tmpdir(), 'ztb-bench-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  stdout.on('data', (d) => (out += String(d)));
  return { io: { stdin: new PassThrough(), stdout, stderr }, text: () => out };
}

describe('ztb-enforce bench classbench', () => {
  it('writes 1-based first matches equal to the trace column, a verified JSON report and an SVG', async () => {
    const results = join(tmp, 'results.txt');
    const { io: cli, text } = io();
    const code = await run(
      ['classbench', join(DIR, 'fw1_1k.rules'), join(DIR, 'fw1_1k.trace'), '--rounds', '1', '--no-dpdk', '--no-updates',
        '--json', '--results', results, '--out', tmp],
      cli,
    );
    expect(code).toBe(0);
    const want = readFileSync(join(DIR, 'fw1_1k.trace'), 'utf8').trim().split('\n').map((l) => l.trim().split(/\s+/).pop());
    const got = readFileSync(results, 'utf8').trim().split('\n');
    expect(got.length).toBe(want.length);
    expect(got).toEqual(want);
    const report = JSON.parse(text());
    expect(report.sets[0].verified).toEqual({ headers: want.length, mismatches: 0, traceColumnMismatches: 0 });
    expect(report.sets[0].mpps['ours-batch256']).toBeGreaterThan(0);
    expect(report.sets[0].mpps['napi-256']).toBeGreaterThan(0);
    expect(existsSync(join(tmp, 'classbench.svg'))).toBe(true);
    expect(readFileSync(join(tmp, 'classbench.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  });

  it('generates a trace when none is given and still verifies it against the linear scan', async () => {
    const { io: cli, text } = io();
    const code = await run(
      ['classbench', join(DIR, 'acl1_1k.rules'), '--rounds', '1', '--no-dpdk', '--no-updates', '--json', '--trace-len',
        '5000', '--out', tmp],
      cli,
    );
    expect(code).toBe(0);
    const report = JSON.parse(text());
    expect(report.sets[0].trace).toEqual({ headers: 5000, generated: true });
    expect(report.sets[0].verified.mismatches).toBe(0);
  });

  it('rejects bad usage', async () => {
    const { io: cli } = io();
    await expect(run(['nope'], cli)).rejects.toBeInstanceOf(UsageError);
    await expect(run(['classbench'], cli)).rejects.toBeInstanceOf(UsageError);
    await expect(run(['classbench', '--all', 'x.rules'], cli)).rejects.toBeInstanceOf(UsageError);
    await expect(run(['classbench', '--rounds', '0', 'x'], cli)).rejects.toBeInstanceOf(UsageError);
    await expect(run(['classbench', 'x', '--bogus'], cli)).rejects.toBeInstanceOf(UsageError);
  });
});
