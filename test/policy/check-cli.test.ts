// `ztb-enforce check`: in-process through the command module with fake streams (fast; vite cannot
// load the dispatcher's shebang + dynamic import, so its error-to-exit-code mapping is mirrored
// here), plus real spawns of the built CLI to prove exit codes and the absence of stack traces.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { run, usage } from '../../src/cli/commands/check.js';
import { UsageError } from '../../src/cli/usage.js';
import { ZtbError } from '../../src/errors.js';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const [cmd, ...rest] = argv;
  expect(cmd).toBe('check');
  let code: number;
  try {
    code = await run(rest, { stdin: new PassThrough(), stdout, stderr });
  } catch (e) {
    if (e instanceof UsageError) {
      stderr.text += `ztb-enforce check: ${e.message}\n${usage}\n`;
      code = 2;
    } else if (e instanceof ZtbError) {
      stderr.text += e.message + '\n';
      code = 1;
    } else throw e;
  }
  return { code, out: stdout.text, err: stderr.text };
}

const dir = mkdtempSync(join(tmpdir(), 'ztb-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('check (in process)', () => {
  test('valid policy: rules per ruleset with ids and positions', async () => {
    const r = await cli('check', 'examples/zerotrust-multitenant.pf.conf');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const lines = r.out.trimEnd().split('\n');
    expect(lines.slice(0, 6)).toEqual([
      'set skip on lo',
      'set block-policy drop',
      'set loginterface vether0',
      'set state-policy floating',
      '# main ruleset',
      '@0 match in all  # examples/zerotrust-multitenant.pf.conf:9:1',
    ]);
    expect(lines).toContain('# anchor "tenant1"');
    expect(lines).toContain(
      '@9 pass in quick on vether0.10 inet proto tcp from 10.10.10.0/24 to any port = 443 flags S/SA keep state  # examples/zerotrust-multitenant.pf.conf:28:5 anchor tenant1',
    );
  });

  test('--json dumps the IR', async () => {
    const r = await cli('check', '--json', 'examples/vmm-gateway.pf.conf');
    expect(r.code).toBe(0);
    const ir = JSON.parse(r.out);
    expect(ir.version).toBe(1);
    expect(ir.rules).toHaveLength(7);
    expect(ir.rules[5].dstPort).toEqual({ op: '=', lo: 80, hi: 80 });
  });

  test('invalid policy: every diagnostic on stderr, exit 1, no stack', async () => {
    const f = join(dir, 'bad.conf');
    writeFileSync(f, 'pass in on $nope all\nblock in proto udp flags S/SA\n');
    const r = await cli('check', f);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(`${f}:1:12: macro 'nope' not defined\n${f}:2:20: flags only apply to tcp\n`);
  });

  test('missing file: exit 1 with the file named', async () => {
    const r = await cli('check', join(dir, 'nope.conf'));
    expect(r.code).toBe(1);
    expect(r.err).toBe(`${join(dir, 'nope.conf')}:1:1: cannot read policy: no such file\n`);
  });

  test('help text names the flags', () => {
    expect(usage).toContain('--format pf|toml');
    expect(usage).toContain('--json');
  });

  test('usage errors exit 2', async () => {
    expect((await cli('check')).code).toBe(2);
    expect((await cli('check', 'a', 'b')).code).toBe(2);
    expect((await cli('check', '--format', 'yaml', 'a')).code).toBe(2);
    expect((await cli('check', '--bogus', 'a')).code).toBe(2);
  });

  test('tables are listed with their size and position', async () => {
    const f = join(dir, 'tables.conf');
    writeFileSync(f, 'table <t> persist { 10.0.0.0/8 !10.1.0.0/16 }\nblock in from <t>\n');
    const r = await cli('check', f);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`table <t> persist (2 entries)  # ${f}:1:1\n`);
  });

  test('--format pf overrides the extension', async () => {
    const f = join(dir, 'policy.toml');
    writeFileSync(f, 'pass in all\n');
    const r = await cli('check', '--format', 'pf', f);
    expect(r.code).toBe(0);
    expect(r.out).toContain('@0 pass in all flags S/SA keep state');
  });
});

describe('check (spawned)', () => {
  beforeAll(() => {
    // `npm test` builds dist/ first; build here only when our command is missing or stale (tsc
    // emits even when someone else's file is mid-edit).
    const built = 'dist/cli/commands/check.js';
    const srcs = ['src/cli/commands/check.ts', 'src/policy/compile.ts', 'src/policy/pf-parser.ts', 'src/policy/render.ts', 'src/policy/load.ts'];
    if (!existsSync(built) || srcs.some((f) => statSync(f).mtimeMs > statSync(built).mtimeMs)) {
      spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'ignore' });
    }
  });

  test('exit codes and output of the real binary', () => {
    expect(existsSync('dist/cli/main.js')).toBe(true);
    const ok = spawnSync(process.execPath, ['dist/cli/main.js', 'check', 'examples/zerotrust-multitenant.pf.conf'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('@0 match in all');
    const f = join(dir, 'bad2.conf');
    writeFileSync(f, 'anchor "a/b" {\n pass\n}\n');
    const bad = spawnSync(process.execPath, ['dist/cli/main.js', 'check', f], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toBe(`${f}:1:8: inline anchor name "a/b" must not contain '/'\n`);
    const usage = spawnSync(process.execPath, ['dist/cli/main.js', 'check'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('usage: ztb-enforce check POLICY');
  });
});
