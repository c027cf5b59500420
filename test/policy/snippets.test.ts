// The nine reference snippets of docs pf-semantics.md §3, compiled: the IR fields the pf and nft
// backends encode from.
import { describe, expect, test } from 'vitest';
import { pf, rulesOf } from './helpers.js';

describe('reference snippets', () => {
  test('int_if macro list: no rule itself, `on $int_if` expands to two', () => {
    const ir = pf('int_if="{ vether0 em0 }"\npass in on $int_if inet\n');
    expect(rulesOf(ir).map((r) => r.iface!.name)).toEqual(['vether0', 'em0']);
  });

  test('one-line inline anchor', () => {
    const ir = pf('anchor "tenant1" { pass in quick on vether0.10 inet proto tcp from 10.10.10.0/24 to port 443 }\n');
    expect(rulesOf(ir)[0]!.call).toEqual({ name: 'tenant1', wildcard: false, targets: ['tenant1'] });
    expect(rulesOf(ir, 'tenant1')[0]).toMatchObject({
      action: 'pass', dir: 'in', quick: true, iface: { name: 'vether0.10', neg: false }, af: 'inet', proto: 6,
      src: { neg: false, host: { type: 'prefix', prefix: { af: 'inet', addr: '10.10.10.0', len: 24 } } },
      dst: { neg: false, host: { type: 'any' } }, dstPort: { op: '=', lo: 443, hi: 443 }, state: 'keep',
      flags: { bits: 0x02, mask: 0x12 },
    });
  });

  test('block drop in log', () => {
    const [r] = rulesOf(pf('block drop in log on vether0.10 from 10.10.20.0/24\n'));
    expect(r).toMatchObject({ action: 'block', blockPolicy: 'drop', dir: 'in', log: { all: false }, dst: { host: { type: 'any' } } });
  });

  test('udp keep state: no flags', () => {
    const [r] = rulesOf(pf('pass out quick on vether0 inet proto udp from any to port 53 keep state\n'));
    expect(r).toMatchObject({ action: 'pass', dir: 'out', quick: true, proto: 17, dstPort: { op: '=', lo: 53 }, state: 'keep', flags: null });
  });

  test('match nat-to (egress:0) from !(egress:network)', () => {
    const [r] = rulesOf(pf('match out on egress inet from !(egress:network) to any nat-to (egress:0)\n'));
    expect(r).toMatchObject({
      action: 'match', src: { neg: true, host: { type: 'dynif', ifname: 'egress', mode: 'network' } },
      natTo: { hosts: [{ type: 'dynif', ifname: 'egress', mode: 'primary' }] }, state: 'none',
    });
  });

  test('rdr-to with a port list: two rules', () => {
    const rs = rulesOf(pf('pass in on egress inet proto tcp from any to (egress) port { 80 443 } rdr-to 192.168.30.2\n'));
    expect(rs.map((r) => r.dstPort!.lo)).toEqual([80, 443]);
    expect(rs[0]!.dst.host).toEqual({ type: 'dynif', ifname: 'egress', mode: 'address' });
  });

  test('match scrub', () => {
    const [r] = rulesOf(pf('match in all scrub (no-df random-id max-mss 1440)\n'));
    expect(r).toMatchObject({ action: 'match', dir: 'in', scrub: { noDf: true, randomId: true, maxMss: 1440 } });
  });

  test('set loginterface', () => {
    expect(pf('set loginterface vether0\n').options.loginterface).toBe('vether0');
  });

  test('pass out log on egress all keep state: flags S/SA', () => {
    const [r] = rulesOf(pf('pass out log on egress all keep state\n'));
    expect(r).toMatchObject({ action: 'pass', dir: 'out', log: { all: false }, iface: { name: 'egress' }, state: 'keep', flags: { bits: 2, mask: 0x12 } });
  });
});
