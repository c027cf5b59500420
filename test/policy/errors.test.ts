// Malformed pf.conf inputs: each must be rejected with the exact file:line:col of its mistake, and
// one file with several mistakes must report all of them.
import { describe, expect, test } from 'vitest';
import { compilePf } from '../../src/policy/compile.js';
import { PolicyError } from '../../src/policy/errors.js';
import { diags } from './helpers.js';

const CASES: [string, string, string][] = [
  ['unterminated anchor brace', 'anchor "a" {\n  pass in all\n', "t.pf.conf:1:12: '{' of anchor body is not closed"],
  ['unknown macro', 'pass in on $ext_if all\n', "t.pf.conf:1:12: macro 'ext_if' not defined"],
  ['bad CIDR length', 'pass in from 10.0.0.0/33 to any\n', 't.pf.conf:1:23: invalid prefix length /33 for inet address \'10.0.0.0\''],
  ['bad address', 'block in from 10.0.0.300 to any\n', "t.pf.conf:1:15: invalid address '10.0.0.300'"],
  ['port without proto', 'pass in to any port 80\n', 't.pf.conf:1:16: port only applies to tcp/udp (add proto tcp or proto udp)'],
  ['port with icmp in proto list', 'pass in proto { tcp icmp } to any port 80\n', 't.pf.conf:1:35: port only applies to tcp/udp (add proto tcp or proto udp)'],
  ['port range reversed', 'pass in proto tcp to any port 2000:1000\n', 't.pf.conf:1:31: invalid port range 2000:1000: start is greater than end'],
  ['inline anchor name with /', 'anchor "a/b" {\n  pass\n}\n', "t.pf.conf:1:8: inline anchor name \"a/b\" must not contain '/'"],
  ['anchor name with _', 'anchor "_x" {\n  pass\n}\n', "t.pf.conf:1:8: anchor names beginning with '_' are reserved: \"_x\""],
  ['called anchor name with _', 'anchor "t/_x"\n', "t.pf.conf:1:8: anchor names beginning with '_' are reserved: \"t/_x\""],
  ['unknown keyword', 'pass in all\nallow in all\n', "t.pf.conf:2:1: unknown keyword 'allow'"],
  ['missing } of a table', 'table <t> { 10.0.0.1 10.0.0.2\npass in all\n', "t.pf.conf:1:11: '{' is not closed"],
  ['flags on udp', 'pass in proto udp flags S/SA\n', 't.pf.conf:1:19: flags only apply to tcp'],
  ['nat-to on in', 'match in on em0 from 10.0.0.0/8 nat-to 192.0.2.1\n', "t.pf.conf:1:33: nat-to can only be used on outbound rules ('out')"],
  ['rdr-to on out', 'pass out proto tcp to port 80 rdr-to 10.0.0.2\n', "t.pf.conf:1:31: rdr-to can only be used on inbound rules ('in')"],
  ['keep state on block', 'block in proto tcp keep state\n', 't.pf.conf:1:20: keep state is only valid on pass rules'],
  ['interface name too long', 'pass in on averyveryverylongif0 all\n', "t.pf.conf:1:12: interface name 'averyveryverylongif0' is too long (max 15 bytes)"],
  ['undefined table', 'block in from <nope> to any\n', 't.pf.conf:1:15: table <nope> is not defined'],
  ['duplicate table', 'table <t> { 10.0.0.1 }\ntable <t> { 10.0.0.2 }\n', 't.pf.conf:2:8: table <t> already defined at t.pf.conf:1:1'],
  ['unterminated quote', 'anchor "tenant1\npass\n', 't.pf.conf:1:8: unterminated quoted string'],
  ['table name too long', 'table <abcdefghijabcdefghijabcdefghij12> { 10.0.0.1 }\n', "t.pf.conf:1:8: table name 'abcdefghijabcdefghijabcdefghij12' is too long (max 31 bytes)"],
  ['unknown service', 'pass in proto tcp to any port nosuchsvc\n', "t.pf.conf:1:31: unknown service 'nosuchsvc'"],
  ['port out of range', 'pass in proto tcp to any port 70000\n', 't.pf.conf:1:31: port 70000 out of range (max 65535)'],
  ['unknown protocol', 'pass in proto bogus\n', "t.pf.conf:1:15: unknown protocol 'bogus'"],
  ['bad block-policy', 'set block-policy maybe\n', "t.pf.conf:1:18: expected drop or return, found 'maybe'"],
  ['unknown option', 'set frobnicate yes\n', "t.pf.conf:1:5: unknown option 'set frobnicate'"],
  ['family mismatch', 'pass in inet from fe80::/10 to any\n', 't.pf.conf:1:1: rule expands to no valid combination (address families do not match)'],
  ['unknown flag letter', 'pass in proto tcp flags X/SA\n', "t.pf.conf:1:25: unknown TCP flag 'X' (use F S R P A U E W)"],
  ['flags without mask', 'pass in proto tcp flags S keep state\n', "t.pf.conf:1:27: expected '/' in flags (write flags bits/mask, e.g. S/SA), found 'keep'"],
  ['unexpected token after rule', 'pass in all bogus\n', "t.pf.conf:1:13: unexpected 'bogus'"],
  ['stray closing brace', 'pass in all\n}\n', "t.pf.conf:2:1: unexpected '}'"],
  ['icmp-type without proto icmp', 'pass in proto tcp icmp-type echoreq\n', 't.pf.conf:1:19: icmp-type only applies to proto icmp'],
  ['wildcard inline anchor', 'anchor "t/*" {\n pass\n}\n', "t.pf.conf:1:8: inline anchor name \"t/*\" must not contain '/'"],
  ['set inside anchor body', 'anchor "a" {\n  set block-policy drop\n}\n', "t.pf.conf:2:3: 'set' is not allowed inside an anchor"],
  ['anchor name with a space', 'anchor "a b"\n', 't.pf.conf:1:8: invalid character in anchor name "a b"'],
  ['bad interface in set skip', 'set skip on { lo0 "a b" }\n', "t.pf.conf:1:19: invalid interface name 'a b'"],
  ['anchor above root', 'anchor "../x"\n', 't.pf.conf:1:8: anchor name "../x" goes above the main ruleset'],
  ['recursive macro', 'a = "$b"\nb = "$a"\npass on $a\n', "t.pf.conf:3:9: macro 'a' expands recursively"],
  ['nat-to without state', 'pass out on em0 from 10.0.0.0/8 nat-to 192.0.2.1 no state\n', 't.pf.conf:1:33: nat-to and rdr-to on a pass rule need state (remove no state)'],
  ['log to long ifname', 'pass out log (to pflog0123456789012) all\n', "t.pf.conf:1:18: interface name 'pflog0123456789012' is too long (max 15 bytes)"],
  ['bad table entry', 'table <t> { 10.0.0.1 banana }\n', "t.pf.conf:1:22: invalid address 'banana' in table <t>"],
  ['unclosed list', 'pass in on { em0 em1\npass out all\n', "t.pf.conf:1:12: '{' is not closed"],
];

describe('malformed pf.conf', () => {
  test.each(CASES)('%s', (_name, text, expected) => {
    expect(diags(text)).toEqual([expected]);
  });

  test('at least 25 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
  });

  test('every error in one file is reported, in order, and good lines around them still parse', () => {
    const text = [
      'ext = "em0"', // 1
      'pass in on $ext all', // 2 ok
      'pass in on $nope all', // 3 unknown macro
      'block in from 10.1.1.1/40', // 4 bad CIDR
      'pass in proto udp to port 2:1', // 5 range
      'frob', // 6 unknown keyword
      'anchor "x" {', // 7
      '  pass in proto udp flags S/SA', // 8 flags on udp
      '  pass out all', // 9 ok
      '}', // 10
      'block in keep state', // 11 keep state on block
      'pass in on em0 all', // 12 ok
    ].join('\n');
    expect(diags(text)).toEqual([
      "t.pf.conf:3:12: macro 'nope' not defined",
      "t.pf.conf:4:24: invalid prefix length /40 for inet address '10.1.1.1'",
      't.pf.conf:5:27: invalid port range 2:1: start is greater than end',
      "t.pf.conf:6:1: unknown keyword 'frob'",
      't.pf.conf:8:21: flags only apply to tcp',
      't.pf.conf:11:10: keep state is only valid on pass rules',
    ]);
  });

  test('positions of units embedded in another document are offset', () => {
    try {
      compilePf({ units: [{ file: 'p.toml', text: 'pass in all\npass in proto tcp to port 99999', ruleset: 't1', line: 10, col: 5 }] });
      expect.unreachable();
    } catch (e) {
      expect((e as PolicyError).message).toBe('p.toml:11:27: port 99999 out of range (max 65535)');
    }
    try {
      compilePf({ units: [{ file: 'p.toml', text: 'pass in from 10.0.0.0/99', ruleset: '', line: 3, col: 9 }] });
      expect.unreachable();
    } catch (e) {
      expect((e as PolicyError).message).toBe("p.toml:3:31: invalid prefix length /99 for inet address '10.0.0.0'");
    }
    try {
      compilePf({ units: [{ file: 'gen', text: 'pass in\nblock in from <x>', ruleset: '', line: 7, col: 2, generated: true }] });
      expect.unreachable();
    } catch (e) {
      expect((e as PolicyError).message).toBe('gen:7:2: table <x> is not defined');
    }
  });

  test('the error is a PolicyError whose message is the formatted diagnostics', () => {
    expect(() => compilePf({ units: [{ file: 'f', text: 'bogus\n', ruleset: '' }] })).toThrow(PolicyError);
  });
});

describe('recovery', () => {
  test('a stray } after a rule is reported once', () => {
    expect(diags('pass in all }\npass out all\n')).toEqual(["t.pf.conf:1:13: unexpected '}'"]);
  });

  test('an error inside an anchor body does not close the body early', () => {
    expect(diags('anchor "a" {\n  pass in bogus\n  frob\n}\npass\n')).toEqual([
      "t.pf.conf:2:11: unexpected 'bogus'",
      "t.pf.conf:3:3: unknown keyword 'frob'",
    ]);
  });

  test('a list left open by a bad statement ends at the next statement keyword', () => {
    expect(diags('pass in on { em0 !!\npass out all\nfrob\n')).toEqual([
      "t.pf.conf:1:19: expected an interface name, found '!'",
      "t.pf.conf:3:1: unknown keyword 'frob'",
    ]);
    expect(diags('table <t> { 10.0.0.1 /\n10.0.0.2 }\nfrob\n')).toEqual([
      't.pf.conf:1:23: expected a prefix length, found end of line',
      "t.pf.conf:3:1: unknown keyword 'frob'",
    ]);
  });

  test('an error in an anchor head skips its whole body', () => {
    expect(diags('anchor "a" in proto bogus {\n  pass\n  frob\n}\nfrob\n')).toEqual([
      "t.pf.conf:1:21: unknown protocol 'bogus'",
      "t.pf.conf:5:1: unknown keyword 'frob'",
    ]);
  });
});

describe('robustness', () => {
  test('exponential macro expansion is cut off', () => {
    const defs = ['m0 = "em0"', ...Array.from({ length: 30 }, (_, i) => `m${i + 1} = "$m${i} $m${i}"`)];
    const text = `${defs.join('\n')}\npass on { $m30 }\n`;
    const t0 = Date.now();
    expect(diags(text)).toContain('t.pf.conf:32:11: macro expansion exceeds 4194304 bytes');
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  test('token soup only ever yields an IR or a PolicyError with positioned diagnostics', async () => {
    const fc = (await import('fast-check')).default;
    const seed = process.env.ZTB_SEED ? Number(process.env.ZTB_SEED) : Date.now() % 2 ** 31;
    console.log(`token soup seed=${seed} (replay: ZTB_SEED=${seed})`);
    const tok = fc.constantFrom(
      'pass', 'block', 'match', 'anchor', 'table', 'set', 'scrub', 'in', 'out', 'on', 'from', 'to', 'port', 'proto',
      'tcp', 'udp', 'all', 'any', 'quick', 'log', '(', ')', '{', '}', '<', '>', '!', '=', '/', ',', '"', '"a"',
      '$m', 'm', '10.0.0.0', '24', '::1', 'em0', 'keep', 'state', 'flags', 'S/SA', 'nat-to', 'rdr-to', '\n', '\\\n',
      '#', ':', '80:90', '><', '<>', 'icmp-type', 'echoreq', 'skip', 'block-policy', 'drop', 'return', '(em0:0)',
    );
    fc.assert(
      fc.property(fc.array(tok, { maxLength: 40 }), (toks) => {
        const text = toks.join(' ');
        try {
          compilePf({ units: [{ file: 's', text, ruleset: '' }] });
        } catch (e) {
          expect(e).toBeInstanceOf(PolicyError);
          for (const d of (e as PolicyError).diagnostics) {
            expect(d.pos.line).toBeGreaterThanOrEqual(1);
            expect(d.pos.col).toBeGreaterThanOrEqual(1);
            expect(d.message.length).toBeGreaterThan(0);
          }
        }
      }),
      { seed, numRuns: 2000 },
    );
  });
});

describe('units', () => {
  test('set in an anchor unit is an error; invalid ruleset paths are rejected', () => {
    const run = (units: { text: string; ruleset: string }[]): string => {
      try {
        compilePf({ units: units.map((u) => ({ file: 'u', ...u })) });
        return 'compiled';
      } catch (e) {
        return (e as PolicyError).message;
      }
    };
    expect(run([{ text: 'pass\nset block-policy return', ruleset: 't1' }])).toBe("u:2:1: 'set' is only allowed in the main ruleset");
    expect(run([{ text: 'pass', ruleset: '_t1' }])).toBe('u:1:1: invalid ruleset path "_t1"');
    expect(run([{ text: 'pass', ruleset: 'a//b' }])).toBe('u:1:1: invalid ruleset path "a//b"');
    expect(run([{ text: 'table <x> { 10.0.0.1 }', ruleset: '' }, { text: 'table <x> { 10.0.0.2 }', ruleset: 't' }])).toBe(
      'u:1:8: table <x> already defined at u:1:1',
    );
  });
});
