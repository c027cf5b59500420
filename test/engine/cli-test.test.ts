// `ztb-enforce test`: the done-when checks on examples/zerotrust-multitenant.pf.conf
// through the built CLI (dist/cli/main.js, built by `npm test`), and JSON output, malformed lines
// and usage errors through the command module in-process (vite cannot load the dispatcher's
// shebang + dynamic import, so the dispatcher's error-to-exit-code mapping is mirrored here).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/commands/test.js';
import { UsageError } from '../../src/cli/usage.js';
import { ZtbError } from '../../src/errors.js';

const CLI = resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');

const EXAMPLE = resolve(__dirname, '..', '..', 'examples', 'zerotrust-multitenant.pf.conf');

async function cli(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d: Buffer) => (o += d.toString()));
  err.on('data', (d: Buffer) => (e += d.toString()));
  let code: number;
  try {
    code = await run(argv, { stdin: Readable.from([stdin]), stdout: out, stderr: err });
  } catch (x) {
    if (x instanceof UsageError) code = 2;
    else if (x instanceof ZtbError) {
      e += x.message + '\n';
      code = 1;
    } else throw x;
  }
  return { code, out: o, err: e };
}

async function json(argv: string[], stdin: string): Promise<{ code: number; rows: Record<string, unknown>[] }> {
  const r = await cli(['--json', ...argv], stdin);
  return { code: r.code, rows: r.out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('ztb-enforce test (built CLI) on the zero-trust example', () => {
  it('passes finance HTTPS, blocks 10.10.20.0/24 into vether0.10, passes admin SSH and the DNS reply', () => {
    expect(existsSync(CLI), `${CLI} missing: run npm test (or npm run build:ts)`).toBe(true);
    const input = [
      'in on vether0.10 tcp 10.10.10.5:40000 > 10.10.10.1:443',
      'in on vether0.10 tcp 10.10.20.5:40000 > 10.10.10.1:443',
      'in on em0 tcp 192.168.1.20:50000 > 192.168.1.1:22',
      'out on vether0 udp 10.10.10.5:5353 > 8.8.8.8:53',
      'in on vether0 udp 8.8.8.8:53 > 10.10.10.5:5353',
    ].join('\n');
    const r = spawnSync(process.execPath, [CLI, 'test', '--json', EXAMPLE], { input, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { verdict: string; state: string | null; tenant: string | null; rule: { ruleset: string } | null });
    expect(rows.map((x) => x.verdict)).toEqual(['pass', 'block', 'pass', 'pass', 'pass']);
    expect(rows.map((x) => x.state)).toEqual(['created', null, 'created', 'created', 'matched']);
    expect(rows.map((x) => x.rule?.ruleset)).toEqual(['tenant1', 'tenant1', '', '', '']);
    expect(rows[0]!.tenant).toBe('tenant1');
    const bad = spawnSync(process.execPath, [CLI, 'test', EXAMPLE], { input: 'in on em0 tcp 1.2.3.4 > 5.6.7.8:22\n', encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^<stdin>:1:22: /);
    expect(spawnSync(process.execPath, [CLI, 'test'], { encoding: 'utf8' }).status).toBe(2);
  });
});

describe('ztb-enforce test on the zero-trust example', () => {
  it('HTTPS from the finance subnet into vether0.10 passes by the tenant1 rule', async () => {
    const { code, rows } = await json([EXAMPLE], 'in on vether0.10 tcp 10.10.10.5:40000 > 10.10.10.1:443\n');
    expect(code).toBe(0);
    expect(rows[0]).toMatchObject({
      line: 1,
      verdict: 'pass',
      reason: 'rule',
      tenant: 'tenant1',
      state: 'created',
      rule: { ruleset: 'tenant1', text: expect.stringMatching(/^pass in quick on vether0\.10 inet proto tcp from 10\.10\.10\.0\/24/) },
    });
    expect((rows[0]!.rule as { pos: { line: number } }).pos.line).toBe(28);
  });

  it('traffic from 10.10.20.0/24 into vether0.10 is blocked', async () => {
    const { rows } = await json([EXAMPLE], 'in on vether0.10 tcp 10.10.20.5:40000 > 10.10.10.1:443\nin on vether0.10 udp 10.10.20.5:40000 > 10.10.10.1:53\n');
    for (const r of rows) expect(r).toMatchObject({ verdict: 'block', rule: { ruleset: 'tenant1', text: expect.stringMatching(/^block drop in log on vether0\.10/) }, tenant: 'tenant1' });
  });

  it('admin SSH on em0 from 192.168.1.0/24 passes; from elsewhere it is blocked', async () => {
    const { rows } = await json([EXAMPLE], 'in on em0 tcp 192.168.1.20:50000 > 192.168.1.1:22\nin on em0 tcp 192.168.2.20:50000 > 192.168.1.1:22\n');
    expect(rows[0]).toMatchObject({ verdict: 'pass', state: 'created', rule: { ruleset: '', text: expect.stringMatching(/port = 22/) }, tenant: null });
    expect(rows[1]).toMatchObject({ verdict: 'block', rule: { text: 'block drop in all' } });
  });

  it('a reply to an allowed outbound DNS query passes through state', async () => {
    const { code, rows } = await json([EXAMPLE], 'out on vether0 udp 10.10.10.5:5353 > 8.8.8.8:53\nin on vether0 udp 8.8.8.8:53 > 10.10.10.5:5353\nin on vether0 udp 8.8.8.8:53 > 10.10.10.5:5354\n');
    expect(code).toBe(0);
    expect(rows[0]).toMatchObject({ verdict: 'pass', reason: 'rule', state: 'created' });
    expect(rows[1]).toMatchObject({ verdict: 'pass', reason: 'state', state: 'matched', rule: rows[0]!.rule });
    expect(rows[2]).toMatchObject({ verdict: 'block', reason: 'rule', state: null });
  });

  it('prints a readable line per packet, skips blanks and comments, reports malformed lines and exits 1', async () => {
    const r = await cli([EXAMPLE], '# finance\n\nin on vether0.10 tcp 10.10.10.5:40000 > 10.10.10.1:443\nin on vether0.10 tcp 10.10.10.5 > 10.10.10.1:443\nin on lo udp 127.0.0.1:1 > 127.0.0.1:2\n');
    expect(r.code).toBe(1);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^3: pass +rule 9 .*zerotrust-multitenant\.pf\.conf:28:\d+ \[tenant1\] "pass in quick on vether0\.10 .*" tenant=tenant1 state=created$/);
    expect(lines[1]).toMatch(/^5: pass +skip tenant=-$/);
    expect(r.err).toBe('<stdin>:4:32: tcp needs a source port (ADDR:PORT)\n');
  });

  it('--json reports malformed lines as error objects and still evaluates the rest', async () => {
    const { code, rows } = await json([EXAMPLE], 'in on em0 tcp 1.2.3.4:1 > 5.6.7.8:22 flags Q\nout on vether0 tcp 10.10.10.5:40000 > 1.1.1.1:443\n');
    expect(code).toBe(1);
    expect(rows[0]).toEqual({ line: 1, error: '<stdin>:1:44: unknown TCP flag \'Q\' (use FSRPAUEW)' });
    expect(rows[1]).toMatchObject({ line: 2, verdict: 'pass', state: 'created' });
  });
});

describe('ztb-enforce test on a TOML policy with tenants', () => {
  const TOML = resolve(__dirname, '..', '..', 'examples', 'two-tenant.toml');
  it('classifies by tenant interface, else by subnet: the source of in packets, the destination of out packets', async () => {
    const { code, rows } = await json(['--group', 'egress=em1', TOML], [
      'in on ztbr10 tcp 10.10.10.5:40000 > 1.1.1.1:443',
      'in on ztbr10 tcp 10.10.10.5:40001 > 10.10.20.5:80',
      'out on em1 tcp 10.10.10.5:40000 > 1.1.1.1:443',
      'in on em1 tcp 1.1.1.1:443 > 10.10.20.9:40000 flags A',
      'out on em1 udp 1.1.1.1:53 > 10.10.20.9:40000',
      'in on em1 udp 1.1.1.1:53 > 192.0.2.1:40000',
    ].join('\n'));
    expect(code).toBe(0);
    expect(rows.map((r) => r.tenant)).toEqual(['finance', 'finance', null, null, 'public', null]);
    expect(rows[0]).toMatchObject({ verdict: 'pass', rule: { ruleset: 'finance' } });
    expect(rows[1]).toMatchObject({ verdict: 'block', rule: { ruleset: 'finance' } });
    expect(rows[2]).toMatchObject({ verdict: 'pass', state: 'created', rule: { text: expect.stringMatching(/^pass out on egress/) } });
  });
});

describe('ztb-enforce test options', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ztb-test-'));
  const pol = join(dir, 'p.conf');
  writeFileSync(pol, 'block all\npass in on egress proto tcp to (egress) port 443\npass in from (vio0:network)\n');

  it('--group and --ifaddr resolve groups and interface addresses', async () => {
    const { rows } = await json(['--group', 'egress=em0,em1', '--ifaddr', 'em1=198.51.100.7/24', '--ifaddr', 'vio0=10.7.0.1/16', pol], [
      'in on em1 tcp 1.1.1.1:1000 > 198.51.100.7:443',
      'in on em1 tcp 1.1.1.1:1000 > 198.51.100.8:443',
      'in on em2 tcp 1.1.1.1:1002 > 198.51.100.7:443',
      'in on em2 udp 10.7.9.9:1000 > 1.1.1.1:53',
    ].join('\n'));
    expect(rows.map((r) => r.verdict)).toEqual(['pass', 'block', 'block', 'pass']);
  });

  it('--states and --counters print the state table and the counters after the input', async () => {
    const r = await cli(['--states', '--counters', EXAMPLE], 'out on vether0 udp 10.10.10.5:5353 > 8.8.8.8:53 len 80\nin on vether0 udp 8.8.8.8:53 > 10.10.10.5:5353 len 120\n');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^states: 1\n  #1 out on vether0 \(floating\) proto 17 10\.10\.10\.5:5353 > 8\.8\.8\.8:53 MULTIPLE:SINGLE udp\.single rule 5 pkts 1\/1$/m);
    expect(r.out).toMatch(/^ {2}@5 1 1 1\/1 120\/80 1\/1 {2}pass out quick on vether0 /m);
    const j = await json(['--states', '--counters', EXAMPLE], 'out on vether0 udp 10.10.10.5:5353 > 8.8.8.8:53\n');
    expect(j.rows[1]).toMatchObject({ states: [{ ruleId: 5, dir: 'out', wire: { src: '10.10.10.5', dst: '8.8.8.8' } }] });
    expect(j.rows[2]).toMatchObject({ counters: expect.arrayContaining([expect.objectContaining({ ruleId: 5, statesTotal: 1 })]) });
  });

  it('usage errors exit 2; a bad policy exits 1 with file:line:col', async () => {
    expect((await cli([])).code).toBe(2);
    expect((await cli([pol, '--frobnicate'])).code).toBe(2);
    expect((await cli([pol, '--ifaddr', 'em0=banana'])).code).toBe(2);
    expect((await cli([pol, '--group', '=em0'])).code).toBe(2);
    expect((await cli([pol, '--format', 'yaml'])).code).toBe(2);
    const bad = join(dir, 'bad.conf');
    writeFileSync(bad, 'pass in\nblock frobnicate\n');
    const r = await cli([bad], '');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.conf:2:\d+: /);
  });
});
