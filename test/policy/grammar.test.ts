// One test per grammar feature of the pf.conf subset: what each construct compiles to.
import { describe, expect, test } from 'vitest';
import { diags, pf, rulesOf, texts } from './helpers.js';

describe('lexing', () => {
  test('comments, trailing comments, backslash-newline joins, optional commas', () => {
    const ir = pf('# header\npass in \\\n  on em0 \\\n  proto { tcp, udp } # trailing\n');
    expect(texts(ir)).toEqual([
      'pass in on em0 proto tcp all flags S/SA keep state',
      'pass in on em0 proto udp all keep state',
    ]);
    expect(rulesOf(ir)[0]!.pos).toEqual({ file: 't.pf.conf', line: 2, col: 1 });
  });

  test('macros expand recursively, not inside quotes, and a bare word value works', () => {
    const ir = pf('a = "em0"\nb = "{ $a em1 }"\nc = vether0\npass in on $b all\npass out on $c all\nanchor "$a"\n');
    expect(texts(ir)).toEqual([
      'pass in on em0 all flags S/SA keep state',
      'pass in on em1 all flags S/SA keep state',
      'pass out on vether0 all flags S/SA keep state',
      'anchor "$a" all',
    ]);
  });

  test('a comment ending in a backslash continues on the next line (as in pfctl)', () => {
    const ir = pf('# comment \\\npass in all\npass out all\n');
    expect(texts(ir)).toEqual(['pass out all flags S/SA keep state']);
    expect(rulesOf(ir)[0]!.pos.line).toBe(3);
  });

  test("single quotes, and quoted strings where pfctl takes a string", () => {
    const ir = pf("ext = 'em0'\npass in on $ext all\npass out on \"em1\" proto 'tcp' to '10.0.0.1' port \"ssh\"\nanchor 'x'\n");
    expect(texts(ir)).toEqual([
      'pass in on em0 all flags S/SA keep state',
      'pass out on em1 inet proto tcp from any to 10.0.0.1 port = 22 flags S/SA keep state',
      'anchor "x" all',
    ]);
    expect(diags("pass in on 'em0\n")).toEqual(['t.pf.conf:1:12: unterminated quoted string']);
  });

  test('a `#` inside quotes is not a comment', () => {
    const ir = pf('anchor "a#b"\n');
    expect(rulesOf(ir)[0]!.call!.name).toBe('a#b');
  });
});

describe('options', () => {
  test('set skip (one, list), block-policy, loginterface, state-policy', () => {
    const ir = pf('set skip on lo0\nset skip on { pflog0 enc0 }\nset block-policy return\nset loginterface none\nset state-policy if-bound\nblock in all\n');
    expect(ir.options).toEqual({ skip: ['lo0', 'pflog0', 'enc0'], blockPolicy: 'return', loginterface: null, statePolicy: 'if-bound' });
    expect(rulesOf(ir)[0]!.blockPolicy).toBe('return');
  });

  test('block-policy applies to the bare block rules after it; block drop/return override', () => {
    const ir = pf('block in all\nset block-policy return\nblock out all\nblock drop in on em0 all\nblock return out on em0 all\n');
    expect(rulesOf(ir).map((r) => r.blockPolicy)).toEqual(['drop', 'return', 'drop', 'return']);
  });
});

describe('tables', () => {
  test('persist, const, negated entries, IPv6, host bits masked', () => {
    const ir = pf('table <t> persist const { 10.0.0.0/8, !10.1.0.0/16 2001:DB8:0:0::1 192.168.1.77/24 }\nblock in from <t> to any\n');
    expect(ir.tables['t']).toMatchObject({
      name: 't', persist: true, constant: true,
      entries: [
        { neg: false, prefix: { af: 'inet', addr: '10.0.0.0', len: 8 } },
        { neg: true, prefix: { af: 'inet', addr: '10.1.0.0', len: 16 } },
        { neg: false, prefix: { af: 'inet6', addr: '2001:db8::1', len: 128 } },
        { neg: false, prefix: { af: 'inet', addr: '192.168.1.0', len: 24 } },
      ],
    });
    expect(rulesOf(ir)[0]!.src).toEqual({ neg: false, host: { type: 'table', name: 't' } });
    expect(texts(ir)).toEqual(['block drop in from <t> to any']);
  });

  test('table list across lines', () => {
    const ir = pf('table <t> {\n 10.0.0.1\n 10.0.0.2\n}\n');
    expect(ir.tables['t']!.entries).toHaveLength(2);
  });
});

describe('rule criteria', () => {
  test('log options and quick in either order', () => {
    const ir = pf('pass in log (all, matches, user, to pflog1) quick all\nblock quick log all\n');
    const r = rulesOf(ir);
    expect(r[0]!.log).toEqual({ all: true, matches: true, user: true, to: 'pflog1' });
    expect(r[0]!.quick).toBe(true);
    expect(r[1]!.log).toEqual({ all: false, matches: false, user: false });
    expect(texts(ir)).toEqual(['pass in log (all, matches, user, to pflog1) quick all flags S/SA keep state', 'block drop log quick all']);
  });

  test('interfaces: negation, lists, groups', () => {
    const ir = pf('block in on ! lo0 all\npass in on { em0 !em1 } all\npass out on egress all\n');
    expect(rulesOf(ir).map((r) => r.iface)).toEqual([
      { name: 'lo0', neg: true }, { name: 'em0', neg: false }, { name: 'em1', neg: true }, { name: 'egress', neg: false },
    ]);
  });

  test('protocols by name and number; pfctl expansion order', () => {
    const ir = pf('pass on { a0 b0 } proto { tcp 17 } from { 10.0.0.1 10.0.0.2 } to any\n');
    expect(rulesOf(ir).map((r) => `${r.iface!.name} ${r.proto} ${r.src.host.type === 'prefix' ? r.src.host.prefix.addr : ''}`)).toEqual([
      'a0 6 10.0.0.1', 'a0 6 10.0.0.2', 'a0 17 10.0.0.1', 'a0 17 10.0.0.2',
      'b0 6 10.0.0.1', 'b0 6 10.0.0.2', 'b0 17 10.0.0.1', 'b0 17 10.0.0.2',
    ]);
    expect(new Set(rulesOf(ir).map((r) => r.origin)).size).toBe(1);
  });

  test('host forms: any, CIDR, !, <table>, (if) modes, bare interface, self', () => {
    const ir = pf([
      'table <x> { 10.0.0.0/8 }',
      'pass in from { any !10.0.0.0/8 <x> (em0) (em0:network) (em0:broadcast) (em0:peer) (em0:0) em1 self } to any',
    ].join('\n'));
    expect(rulesOf(ir).map((r) => r.src)).toEqual([
      { neg: false, host: { type: 'any' } },
      { neg: true, host: { type: 'prefix', prefix: { af: 'inet', addr: '10.0.0.0', len: 8 } } },
      { neg: false, host: { type: 'table', name: 'x' } },
      { neg: false, host: { type: 'dynif', ifname: 'em0', mode: 'address' } },
      { neg: false, host: { type: 'dynif', ifname: 'em0', mode: 'network' } },
      { neg: false, host: { type: 'dynif', ifname: 'em0', mode: 'broadcast' } },
      { neg: false, host: { type: 'dynif', ifname: 'em0', mode: 'peer' } },
      { neg: false, host: { type: 'dynif', ifname: 'em0', mode: 'primary' } },
      { neg: false, host: { type: 'ifaddr', ifname: 'em1' } },
      { neg: false, host: { type: 'ifaddr', ifname: 'self' } },
    ]);
    expect(rulesOf(ir)[1]!.af).toBe('inet');
    expect(rulesOf(ir)[2]!.af).toBeNull();
  });

  test('address family inference and dropped impossible combinations', () => {
    const ir = pf('pass in from { 10.0.0.0/8 fd00::/8 } to { 192.168.0.1 ::1 }\n');
    expect(texts(ir)).toEqual([
      'pass in inet from 10.0.0.0/8 to 192.168.0.1 flags S/SA keep state',
      'pass in inet6 from fd00::/8 to ::1 flags S/SA keep state',
    ]);
    const ir6 = pf('pass in inet6 from { 10.0.0.0/8 fd00::/8 } to any\n');
    expect(texts(ir6)).toEqual(['pass in inet6 from fd00::/8 to any flags S/SA keep state']);
  });

  test('IPv6 canonical form', () => {
    const ir = pf('pass in from { 2001:0DB8:0000:0000:0000:0000:0000:0001 fe80:0:0:0:1:0:0:0/64 ::ffff:10.1.2.3 2001:db8:0:1:1:1:1:1 } to any\n');
    expect(rulesOf(ir).map((r) => (r.src.host.type === 'prefix' ? `${r.src.host.prefix.addr}/${r.src.host.prefix.len}` : ''))).toEqual([
      '2001:db8::1/128', 'fe80::/64', '::ffff:a01:203/128', '2001:db8:0:1:1:1:1:1/128',
    ]);
  });

  test('`all` and `to port N` without a host', () => {
    const ir = pf('pass in proto tcp to port 22\npass in all\npass in proto udp from port 53\n');
    expect(texts(ir)).toEqual([
      'pass in proto tcp from any to any port = 22 flags S/SA keep state',
      'pass in all flags S/SA keep state',
      'pass in proto udp from any port = 53 to any keep state',
    ]);
  });
});

describe('ports', () => {
  const cases: [string, { op: string; lo: number; hi: number }, string][] = [
    ['80', { op: '=', lo: 80, hi: 80 }, 'port = 80'],
    ['= 80', { op: '=', lo: 80, hi: 80 }, 'port = 80'],
    ['!= 22', { op: '!=', lo: 22, hi: 22 }, 'port != 22'],
    ['< 1024', { op: '<', lo: 1024, hi: 1024 }, 'port < 1024'],
    ['<= 1024', { op: '<=', lo: 1024, hi: 1024 }, 'port <= 1024'],
    ['> 1023', { op: '>', lo: 1023, hi: 1023 }, 'port > 1023'],
    ['>= 1024', { op: '>=', lo: 1024, hi: 1024 }, 'port >= 1024'],
    ['6000:6010', { op: ':', lo: 6000, hi: 6010 }, 'port 6000:6010'],
    ['10 >< 20', { op: '><', lo: 10, hi: 20 }, 'port 10 >< 20'],
    ['10><20', { op: '><', lo: 10, hi: 20 }, 'port 10 >< 20'],
    ['10 <> 20', { op: '<>', lo: 10, hi: 20 }, 'port 10 <> 20'],
    ['ssh', { op: '=', lo: 22, hi: 22 }, 'port = 22'],
    ['domain', { op: '=', lo: 53, hi: 53 }, 'port = 53'],
    ['https', { op: '=', lo: 443, hi: 443 }, 'port = 443'],
    ['ntp', { op: '=', lo: 123, hi: 123 }, 'port = 123'],
    ['smtp', { op: '=', lo: 25, hi: 25 }, 'port = 25'],
    ['http:https', { op: ':', lo: 80, hi: 443 }, 'port 80:443'],
  ];
  test.each(cases)('port %s', (written, match, text) => {
    const ir = pf(`pass in proto tcp to any port ${written}\n`);
    expect(rulesOf(ir)[0]!.dstPort).toEqual(match);
    expect(texts(ir)[0]).toBe(`pass in proto tcp from any to any ${text} flags S/SA keep state`);
  });

  test('port lists mix operators and expand in order', () => {
    const ir = pf('pass in proto tcp from any port { ssh, > 1023 } to any port { 80 443 }\n');
    expect(rulesOf(ir).map((r) => `${r.srcPort!.op}${r.srcPort!.lo}/${r.dstPort!.lo}`)).toEqual(['=22/80', '=22/443', '>1023/80', '>1023/443']);
  });
});

describe('options on rules', () => {
  test('default state and flags; flags any; no state; modulate/synproxy', () => {
    const ir = pf([
      'pass in proto tcp all',
      'pass in proto tcp flags any',
      'pass in proto tcp no state',
      'pass in proto tcp flags S/SAFR modulate state',
      'pass in proto tcp synproxy state',
      'pass in proto tcp flags /SA',
      'block in proto tcp flags S/SA',
      'match in proto tcp all',
    ].join('\n'));
    expect(rulesOf(ir).map((r) => [r.state, r.flags])).toEqual([
      ['keep', { bits: 0x02, mask: 0x12 }],
      ['keep', null],
      ['none', null],
      ['modulate', { bits: 0x02, mask: 0x17 }],
      ['synproxy', { bits: 0x02, mask: 0x12 }],
      ['keep', { bits: 0, mask: 0x12 }],
      ['none', { bits: 0x02, mask: 0x12 }],
      ['none', null],
    ]);
    expect(texts(ir)[1]).toBe('pass in proto tcp all flags any keep state');
    expect(texts(ir)[3]).toBe('pass in proto tcp all flags S/FSRA modulate state');
    expect(texts(ir)[5]).toBe('pass in proto tcp all flags /SA keep state');
  });

  test('stateful pass over tcp and udp: flags only on the tcp expansion', () => {
    const ir = pf('pass out proto { tcp udp } to any port 53\n');
    expect(rulesOf(ir).map((r) => r.flags)).toEqual([{ bits: 2, mask: 0x12 }, null]);
  });

  test('icmp-type and icmp6-type with codes', () => {
    const ir = pf('pass in inet proto icmp icmp-type { echoreq, unreach code 3 }\npass in proto icmp6 icmp6-type neighbrsol\n');
    expect(rulesOf(ir).map((r) => [r.af, r.icmpType])).toEqual([
      ['inet', { type: 8, code: null }], ['inet', { type: 3, code: 3 }], ['inet6', { type: 135, code: null }],
    ]);
    expect(texts(ir)).toEqual([
      'pass in inet proto icmp all icmp-type echoreq keep state',
      'pass in inet proto icmp all icmp-type unreach code 3 keep state',
      'pass in inet6 proto ipv6-icmp all icmp6-type neighbrsol keep state',
    ]);
  });

  test('nat-to pool, (if), (if:0); rdr-to with port and range; pools filtered by family', () => {
    const ir = pf([
      'match out on em0 from 10.0.0.0/8 nat-to { 192.0.2.1 192.0.2.2 }',
      'match out on em0 nat-to (em0)',
      'pass in on em0 proto tcp to (em0) port 80 rdr-to 10.0.0.5 port 8080',
      'pass in on em0 proto tcp to (em0) port 80 rdr-to 10.0.0.5 port 8000:8010',
      'match out on em0 from fd00::/8 nat-to { 192.0.2.1 2001:db8::1 }',
    ].join('\n'));
    const r = rulesOf(ir);
    expect(r[0]!.natTo!.hosts).toHaveLength(2);
    expect(r[1]!.natTo).toEqual({ hosts: [{ type: 'dynif', ifname: 'em0', mode: 'address' }] });
    expect(r[2]!.rdrTo!.port).toEqual({ lo: 8080, hi: 8080 });
    expect(r[3]!.rdrTo!.port).toEqual({ lo: 8000, hi: 8010 });
    expect(r[4]!.natTo).toEqual({ hosts: [{ type: 'prefix', prefix: { af: 'inet6', addr: '2001:db8::1', len: 128 } }] });
    expect(texts(ir)).toEqual([
      'match out on em0 inet from 10.0.0.0/8 to any nat-to { 192.0.2.1 192.0.2.2 }',
      'match out on em0 all nat-to (em0)',
      'pass in on em0 inet proto tcp from any to (em0) port = 80 flags S/SA keep state rdr-to 10.0.0.5 port 8080',
      'pass in on em0 inet proto tcp from any to (em0) port = 80 flags S/SA keep state rdr-to 10.0.0.5 port 8000:8010',
      'match out on em0 inet6 from fd00::/8 to any nat-to 2001:db8::1',
    ]);
  });

  test('match with scrub options, old-style scrub with options, match quick', () => {
    const ir = pf('match in all scrub (no-df random-id max-mss 1440 min-ttl 5 reassemble tcp)\nscrub out on em0 all (max-mss 1400)\nmatch in quick all\n');
    const r = rulesOf(ir);
    expect(r[0]!.scrub).toEqual({ noDf: true, randomId: true, maxMss: 1440, minTtl: 5, reassembleTcp: true });
    expect(r[1]).toMatchObject({ action: 'match', dir: 'out', scrub: { maxMss: 1400 } });
    expect(r[2]).toMatchObject({ action: 'match', quick: true });
    expect(texts(ir)[1]).toBe('match out on em0 all scrub (max-mss 1400)');
  });
});

describe('anchors', () => {
  test('nested multi-line inline anchors, one-line extension, relative and absolute names', () => {
    const ir = pf([
      'anchor "t" {',
      '  anchor "web" {',
      '    pass in proto tcp to port 80',
      '  }',
      '  anchor "db" { pass in proto tcp to port 5432 }',
      '  anchor "web"',
      '  anchor "/other"',
      '  anchor "*"',
      '}',
      'anchor "t/*" in on em0',
      'anchor "other" { block all }',
    ].join('\n'));
    expect(Object.keys(ir.rulesets).sort()).toEqual(['', 'other', 't', 't/db', 't/web']);
    const t = rulesOf(ir, 't');
    expect(t.map((r) => r.call)).toEqual([
      { name: 't/web', wildcard: false, targets: ['t/web'] },
      { name: 't/db', wildcard: false, targets: ['t/db'] },
      { name: 't/web', wildcard: false, targets: ['t/web'] },
      { name: 'other', wildcard: false, targets: ['other'] },
      { name: 't/*', wildcard: true, targets: ['t/db', 't/web'] },
    ]);
    expect(texts(ir, 't')).toEqual(['anchor "web" all', 'anchor "db" all', 'anchor "web" all', 'anchor "/other" all', 'anchor "*" all']);
    const main = rulesOf(ir);
    expect(main[1]).toMatchObject({ action: 'anchor', dir: 'in', iface: { name: 'em0', neg: false }, call: { wildcard: true, targets: ['t/db', 't/web'] } });
    expect(texts(ir, 't/db')).toEqual(['pass in proto tcp from any to any port = 5432 flags S/SA keep state']);
  });

  test('anchor with criteria and quick', () => {
    const ir = pf('anchor "a" in quick on em0 inet proto tcp from 10.0.0.0/8 {\n pass all\n}\n');
    expect(rulesOf(ir)[0]).toMatchObject({ action: 'anchor', quick: true, dir: 'in', af: 'inet', proto: 6, state: 'none', flags: null });
    expect(texts(ir)[0]).toBe('anchor "a" in quick on em0 inet proto tcp from 10.0.0.0/8 to any');
  });

  test('a called anchor that nothing loads is an empty ruleset', () => {
    const ir = pf('anchor "ext"\n');
    expect(ir.rulesets['ext']).toEqual({ path: 'ext', rules: [] });
  });

  test('units add rules to their ruleset; uncalled rulesets exist but are not called', async () => {
    const { compilePf } = await import('../../src/policy/compile.js');
    const ir = compilePf({
      units: [
        { file: 'm', text: 'anchor "t/*"\ntable <w> { 10.0.0.1 }', ruleset: '' },
        { file: 'u', text: 'pass in from <w>', ruleset: 't/b' },
        { file: 'u', text: 'block in all', ruleset: 't/a' },
        { file: 'u', text: 'pass out all', ruleset: 'orphan' },
      ],
    });
    expect(rulesOf(ir)[0]!.call!.targets).toEqual(['t/a', 't/b']);
    expect(texts(ir, 'orphan')).toEqual(['pass out all flags S/SA keep state']);
    expect(ir.rulesets['t/b']!.pos).toEqual({ file: 'u', line: 1, col: 1 });
    expect(ir.sources).toEqual(['m', 'u']);
  });

  test('nesting deeper than 64 is rejected', () => {
    let text = '';
    for (let i = 0; i < 66; i++) text += `anchor "a${i}" {\n`;
    text += 'pass\n';
    for (let i = 0; i < 66; i++) text += '}\n';
    expect(diags(text)[0]).toMatch(/^t\.pf\.conf:65:\d+: anchors nested deeper than 64 levels$/);
  });
});

describe('caps', () => {
  test('expansion beyond 100,000 rules is rejected', () => {
    const list = (n: number, f: (i: number) => string) => `{ ${Array.from({ length: n }, (_, i) => f(i)).join(' ')} }`;
    const text = `pass in proto tcp from ${list(400, (i) => `10.0.${i >> 8}.${i & 255}`)} to any port ${list(300, (i) => String(i + 1))}\n`;
    expect(diags(text)).toEqual(['t.pf.conf:1:1: policy expands to more than 100000 rules']);
  });

  test('a statement whose lists multiply beyond 1,000,000 combinations is rejected up front', () => {
    const list = (n: number, f: (i: number) => string) => `{ ${Array.from({ length: n }, (_, i) => f(i)).join(' ')} }`;
    const text = `pass in proto tcp from ${list(200, (i) => `10.0.${i >> 8}.${i & 255}`)} to ${list(200, (i) => `fd00::${i.toString(16)}`)} port ${list(30, (i) => String(i + 1))}\n`;
    expect(diags(text)).toEqual(['t.pf.conf:1:1: rule expands to 1200000 combinations (max 1000000)']);
  });

  test('more than 1,000 tables are rejected', () => {
    const text = Array.from({ length: 1001 }, (_, i) => `table <t${i}> persist`).join('\n') + '\n';
    expect(diags(text)).toEqual(['t.pf.conf:1001:1: too many tables (max 1000)']);
  });

  test('input larger than 1 MiB is rejected', () => {
    expect(diags('#'.repeat((1 << 20) + 1))).toEqual(['t.pf.conf:1:1: policy input larger than 1048576 bytes']);
  });
});
