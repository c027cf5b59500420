// Every examples/*.pf.conf parses unchanged and compiles to the rules pfctl would load.
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { compilePf } from '../../src/policy/compile.js';
import { texts, rulesOf } from './helpers.js';

const files = readdirSync('examples').filter((f) => f.endsWith('.pf.conf')).map((f) => `examples/${f}`);
const load = (f: string) => compilePf({ units: [{ file: f, text: readFileSync(f, 'utf8'), ruleset: '' }] });

describe('examples', () => {
  test('there are examples', () => {
    expect(files.length).toBeGreaterThanOrEqual(3);
  });

  test.each(files)('%s compiles', (f) => {
    const ir = load(f);
    expect(ir.rules.length).toBeGreaterThan(0);
    ir.rules.forEach((r, i) => expect(r.id).toBe(i));
    for (const rs of Object.values(ir.rulesets)) rs.rules.forEach((id, nr) => expect(ir.rules[id]!.nr).toBe(nr));
  });

  test('zerotrust-multitenant: options, anchors and the tenant1 rules', () => {
    const f = 'examples/zerotrust-multitenant.pf.conf';
    const ir = load(f);
    expect(ir.options).toEqual({ skip: ['lo'], blockPolicy: 'drop', loginterface: 'vether0', statePolicy: 'floating' });
    expect(Object.keys(ir.rulesets).sort()).toEqual(['', 'tenant1', 'tenant2']);
    const t1 = rulesOf(ir, 'tenant1');
    expect(t1[0]).toMatchObject({
      action: 'pass', dir: 'in', quick: true, iface: { name: 'vether0.10', neg: false }, af: 'inet', proto: 6,
      src: { neg: false, host: { type: 'prefix', prefix: { af: 'inet', addr: '10.10.10.0', len: 24 } } },
      dst: { neg: false, host: { type: 'any' } }, srcPort: null, dstPort: { op: '=', lo: 443, hi: 443 },
      state: 'keep', flags: { bits: 0x02, mask: 0x12 }, ruleset: 'tenant1', nr: 0,
      pos: { file: f, line: 28, col: 5 },
    });
    expect(t1[0]!.text).toBe('pass in quick on vether0.10 inet proto tcp from 10.10.10.0/24 to any port = 443 flags S/SA keep state');
    expect(t1[2]).toMatchObject({ action: 'block', blockPolicy: 'drop', log: { all: false, matches: false, user: false }, af: 'inet', flags: null, state: 'none' });
    // The trailing `# NTP` comment is ignored; udp keeps state without flags.
    expect(texts(ir, 'tenant2')[1]).toBe('pass out quick on vether0.20 inet proto udp from any to any port = 123 keep state');
    const main = rulesOf(ir);
    // `scrub in all` is a match rule (pfctl >= 4.6); with no options it scrubs nothing.
    expect(main[0]).toMatchObject({ action: 'match', dir: 'in', scrub: null, pos: { line: 9, col: 1 } });
    expect(main[1]!.call).toEqual({ name: 'tenant1/*', wildcard: true, targets: [] });
    const call1 = main.find((r) => r.call?.name === 'tenant1')!;
    expect(call1.call).toEqual({ name: 'tenant1', wildcard: false, targets: ['tenant1'] });
    expect(main[main.length - 1]!.text).toBe('pass out log on egress all flags S/SA keep state');
    expect(main.find((r) => r.dstPort?.lo === 51820)!.text).toBe('pass in on em0 proto udp from any to any port = 51820 keep state');
  });

  test('vmm-gateway: macro list, match nat/scrub, port list expansion', () => {
    const ir = load('examples/vmm-gateway.pf.conf');
    expect(ir.options).toEqual({ skip: ['lo0'], blockPolicy: 'drop', loginterface: 'egress', statePolicy: 'floating' });
    expect(texts(ir)).toEqual([
      'match in all scrub (no-df random-id max-mss 1440)',
      'match out on egress inet from !(egress:network) to any nat-to (egress:0)',
      'pass out quick inet all flags S/SA keep state',
      'pass in on vether0 inet all flags S/SA keep state',
      'pass in on em0 inet all flags S/SA keep state',
      'pass in on egress inet proto tcp from any to (egress) port = 80 flags S/SA keep state rdr-to 192.168.30.2',
      'pass in on egress inet proto tcp from any to (egress) port = 443 flags S/SA keep state rdr-to 192.168.30.2',
    ]);
    const r = rulesOf(ir);
    expect(r[0]!.scrub).toEqual({ noDf: true, randomId: true, maxMss: 1440 });
    expect(r[1]!.src).toEqual({ neg: true, host: { type: 'dynif', ifname: 'egress', mode: 'network' } });
    expect(r[1]!.natTo).toEqual({ hosts: [{ type: 'dynif', ifname: 'egress', mode: 'primary' }] });
    // `on $int_if` with int_if="{ vether0 em0 }": two rules, one origin
    expect(r[3]!.origin).toBe(r[4]!.origin);
    expect(ir.origins[r[3]!.origin]!.text).toBe('pass in on { vether0 em0 } inet all');
    // `port { 80 443 }`: two rules with the same origin and position
    expect(r[5]!.origin).toBe(r[6]!.origin);
    expect(r[5]!.pos).toEqual(r[6]!.pos);
    expect(r[5]!.rdrTo).toEqual({ hosts: [{ type: 'prefix', prefix: { af: 'inet', addr: '192.168.30.2', len: 32 } }] });
    expect(ir.origins[r[5]!.origin]!.text).toBe('pass in on egress inet proto tcp from any to (egress) port { 80 443 } rdr-to 192.168.30.2');
  });

  test('zerotrust-anchor-snippet: inline anchor, `to port 443` without a host', () => {
    const ir = load('examples/zerotrust-anchor-snippet.pf.conf');
    expect(texts(ir)).toEqual(['anchor "tenant1" all']);
    expect(texts(ir, 'tenant1')).toEqual(['pass in quick on vether0.10 proto tcp from any to any port = 443 flags S/SA keep state']);
    expect(ir.rulesets['tenant1']!.pos).toEqual({ file: 'examples/zerotrust-anchor-snippet.pf.conf', line: 1, col: 1 });
  });
});
