// Byte-level golden tests of the IR -> struct pf_rule encoder for the nine reference snippets of
// docs pf-semantics §3 (each field the table names, at its offset), plus the encodings pfctl
// applies that the table only implies (unused pools, rtableid, table and pool addresses).
import { describe, expect, it } from 'vitest';
import { getRelease, PF } from '../../../src/backends/pf/abi/releases.js';
import { decodeRule } from '../../../src/backends/pf/decode.js';
import { encodeIr, encodePfiocRule, encodeRule } from '../../../src/backends/pf/encode.js';
import { BackendError } from '../../../src/backends/pf/errors.js';
import { net, policy, rule, SA } from './fixtures.js';

const R = getRelease('pfvar-1.543');
const R548 = getRelease('pfvar-1.548');
const off = (f: string): number => R.structs.pf_rule.fields.get(f)!.offset;

function one(r: Parameters<typeof rule>[0], release = R): Buffer {
  const enc = encodeRule(rule(r), { release });
  expect(enc.rules).toHaveLength(1);
  return enc.rules[0]!.rule;
}

/** Fields every kernel rule must carry (pf-semantics §3 "Every rule needs these fields set"). */
function expectBaseline(b: Buffer): void {
  expect(b.readInt32LE(1084)).toBe(-1); // rtableid
  expect(b.readInt32LE(1088)).toBe(-1); // onrdomain
  expect(b.readUInt8(856 + 40)).toBe(7); // route pool: PF_ADDR_NONE
}

describe('reference snippets (pf-semantics §3)', () => {
  it('1: a list macro expands into one kernel rule per IR rule', () => {
    const ir = policy({ '': [
      { action: 'pass', dir: 'in', iface: { name: 'vether0', neg: false }, af: 'inet', state: 'keep', flags: SA },
      { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false }, af: 'inet', state: 'keep', flags: SA },
    ] });
    const enc = encodeIr(ir, { release: R });
    const rules = enc.byAnchor.get('')!;
    expect(rules.map((k) => k.irId)).toEqual([0, 1]);
    expect(rules.map((k) => decodeRule(R, k.rule).ifname)).toEqual(['vether0', 'em0']);
  });

  it('2: inline anchor -> anchor rule in main, PASS IN quick tcp/443 rule in tenant1', () => {
    const ir = policy({
      '': [{ action: 'anchor', call: { name: 'tenant1', wildcard: false, targets: ['tenant1'] } }],
      tenant1: [{
        action: 'pass', dir: 'in', quick: true, iface: { name: 'vether0.10', neg: false }, af: 'inet', proto: 6,
        src: net('10.10.10.0/24'), dstPort: { op: '=', lo: 443, hi: 443 }, state: 'keep', flags: SA,
      }],
    });
    const enc = encodeIr(ir, { release: R });
    const main = enc.byAnchor.get('')!;
    expect(main).toHaveLength(1);
    expect(main[0]!.anchorCall).toBe('tenant1');
    expect(main[0]!.rule.readUInt8(1280)).toBe(0); // pfctl leaves an anchor rule's action zeroed
    const t1 = enc.byAnchor.get('tenant1')!;
    expect(t1[0]!.anchor).toBe('tenant1');
    expect(t1[0]!.anchorCall).toBe('');
    const b = t1[0]!.rule;
    expect(b.readUInt8(1280)).toBe(0); // PASS
    expect(b.readUInt8(1281)).toBe(1); // IN
    expect(b.readUInt8(1284)).toBe(1); // quick
    expect(b.subarray(off('ifname'), off('ifname') + 11).toString('latin1')).toBe('vether0.10\0');
    expect(b.readUInt8(1288)).toBe(2); // af inet
    expect(b.readUInt8(1289)).toBe(6); // tcp
    // src: ADDRMASK 10.10.10.0/24 at src.addr.v.a.{addr,mask} = 0 / 16
    expect(b.readUInt8(40)).toBe(PF.addr.addrmask);
    expect([...b.subarray(0, 4)]).toEqual([10, 10, 10, 0]);
    expect([...b.subarray(16, 20)]).toEqual([255, 255, 255, 0]);
    expect(b.subarray(4, 16).every((x) => x === 0)).toBe(true);
    // dst: any = ADDRMASK with zero address and mask; port_op EQ, port[0] = htons(443)
    expect(b.readUInt8(56 + 40)).toBe(PF.addr.addrmask);
    expect(b.subarray(56, 56 + 32).every((x) => x === 0)).toBe(true);
    expect(b.readUInt8(56 + 53)).toBe(2);
    expect([b[56 + 48], b[56 + 49]]).toEqual([0x01, 0xbb]);
    expect(b.readUInt16LE(56 + 50)).toBe(0);
    expect(b.readUInt8(1287)).toBe(1); // keep_state
    expect([b.readUInt8(1294), b.readUInt8(1295)]).toEqual([0x02, 0x12]);
    expectBaseline(b);
  });

  it('3: block drop in log on vether0.10 from 10.10.20.0/24', () => {
    const b = one({ action: 'block', blockPolicy: 'drop', dir: 'in', log: { all: false, matches: false, user: false },
      iface: { name: 'vether0.10', neg: false }, af: 'inet', src: net('10.10.20.0/24') });
    const d = decodeRule(R, b);
    expect([b.readUInt8(1280), d.ruleFlag, b.readUInt8(1282), d.direction]).toEqual([1, 0, 1, 1]);
    expect(d.src).toMatchObject({ type: 'addrmask', addr: '10.10.20.0', mask: '255.255.255.0' });
    expect(d.dst).toMatchObject({ type: 'addrmask', addr: '0.0.0.0', mask: '0.0.0.0', portOp: 0 });
    expect(b.readUInt8(1287)).toBe(0);
    expectBaseline(b);
  });

  it('4: pass out quick on vether0 inet proto udp to port 53 keep state (no flags)', () => {
    const b = one({ action: 'pass', dir: 'out', quick: true, iface: { name: 'vether0', neg: false }, af: 'inet', proto: 17,
      dstPort: { op: '=', lo: 53, hi: 53 }, state: 'keep' });
    expect([b.readUInt8(1280), b.readUInt8(1281), b.readUInt8(1284), b.readUInt8(1289)]).toEqual([0, 2, 1, 17]);
    expect([b.readUInt8(56 + 53), b.readUInt16BE(56 + 48)]).toEqual([2, 53]);
    expect([b.readUInt8(1287), b.readUInt8(1294), b.readUInt8(1295)]).toEqual([1, 0, 0]);
    expectBaseline(b);
  });

  it('5: match out on egress from !(egress:network) nat-to (egress:0)', () => {
    const b = one({ action: 'match', dir: 'out', iface: { name: 'egress', neg: false }, af: 'inet',
      src: { neg: true, host: { type: 'dynif', ifname: 'egress', mode: 'network' } },
      natTo: { hosts: [{ type: 'dynif', ifname: 'egress', mode: 'primary' }] } });
    expect(b.readUInt8(1280)).toBe(12);
    // src: DYNIFTL(2) "egress", iflags NETWORK(1), neg 1
    expect(b.readUInt8(40)).toBe(2);
    expect(b.subarray(0, 7).toString('latin1')).toBe('egress\0');
    expect(b.readUInt8(41)).toBe(1);
    expect(b.readUInt8(52)).toBe(1);
    // nat pool @584: addr DYNIFTL "egress" NOALIAS(8), opts round-robin(4), proxy ports 50001-65535
    expect(b.readUInt8(584 + 40)).toBe(2);
    expect(b.subarray(584, 591).toString('latin1')).toBe('egress\0');
    expect(b.readUInt8(584 + 41)).toBe(8);
    expect(b.readUInt8(584 + 131)).toBe(4);
    expect([b.readUInt16LE(584 + 126), b.readUInt16LE(584 + 128)]).toEqual([50001, 65535]);
    expect([b.readUInt8(720 + 40), b.readUInt8(856 + 40)]).toEqual([7, 7]);
    expectBaseline(b);
  });

  it('6: rdr-to with a port list -> two rules, dst (egress), rdr 192.168.30.2/32', () => {
    const mk = (port: number) => ({ action: 'pass' as const, dir: 'in' as const, iface: { name: 'egress', neg: false }, af: 'inet' as const, proto: 6,
      dst: { neg: false, host: { type: 'dynif' as const, ifname: 'egress', mode: 'address' as const } },
      dstPort: { op: '=' as const, lo: port, hi: port }, state: 'keep' as const, flags: SA,
      rdrTo: { hosts: [{ type: 'prefix' as const, prefix: { af: 'inet' as const, addr: '192.168.30.2', len: 32 } }] } });
    const enc = encodeIr(policy({ '': [mk(80), mk(443)] }), { release: R });
    const rules = enc.byAnchor.get('')!;
    expect(rules).toHaveLength(2);
    const ports = rules.map((k) => k.rule.readUInt16BE(56 + 48));
    expect(ports).toEqual([80, 443]);
    for (const k of rules) {
      const b = k.rule;
      expect([b.readUInt8(56 + 40), b.subarray(56, 63).toString('latin1'), b.readUInt8(56 + 41)]).toEqual([2, 'egress\0', 0]);
      expect(b.subarray(56 + 16, 56 + 32).every((x) => x === 0xff)).toBe(true); // dynamic address unmasked
      expect(b.readUInt8(720 + 40)).toBe(0);
      expect([...b.subarray(720, 724)]).toEqual([192, 168, 30, 2]);
      expect([...b.subarray(720 + 16, 720 + 20)]).toEqual([255, 255, 255, 255]);
      expect(b.readUInt8(720 + 131)).toBe(PF.pool.none);
      expect([b.readUInt8(584 + 40), b.readUInt8(856 + 40)]).toEqual([7, 7]);
      expectBaseline(b);
    }
  });

  it('7: match in all scrub (no-df random-id max-mss 1440)', () => {
    const b = one({ action: 'match', dir: 'in', scrub: { noDf: true, randomId: true, maxMss: 1440 } });
    expect([b.readUInt8(1280), b.readUInt8(1281)]).toEqual([12, 1]);
    expect(b.readUInt16LE(off('scrub_flags'))).toBe(0x20 | 0x80);
    expect(b.readUInt16LE(off('max_mss'))).toBe(1440);
    expect(b.readUInt8(1288)).toBe(0);
    expectBaseline(b);
  });

  it('9: pass out log on egress all keep state -> flags S/SA', () => {
    const b = one({ action: 'pass', dir: 'out', log: { all: false, matches: false, user: false }, iface: { name: 'egress', neg: false },
      state: 'keep', flags: SA });
    const d = decodeRule(R, b);
    expect([d.action, d.direction, d.log, d.ifname, d.keepState, d.flags, d.flagset]).toEqual([0, 2, 1, 'egress', 1, 2, 0x12]);
    expect(d.src).toMatchObject({ type: 'addrmask', addr: '0.0.0.0', mask: '0.0.0.0' });
    expect(d.dst).toMatchObject({ type: 'addrmask', addr: '0.0.0.0', mask: '0.0.0.0' });
    expectBaseline(b);
  });
});

describe('other encodings', () => {
  it('tables, inet6 (AF 24), negated interface, port ranges, icmp type, block return, log options', () => {
    const b = one({ action: 'block', blockPolicy: 'return', dir: 'in', quick: true, iface: { name: 'em0', neg: true }, af: 'inet6', proto: 58,
      src: { neg: false, host: { type: 'table', name: 'bad_hosts' } }, dst: net('2001:db8::/32'),
      icmpType: { type: 128, code: 0 }, log: { all: true, matches: true, user: false, to: 'pflog1' } });
    const d = decodeRule(R, b);
    expect(d.af).toBe(24);
    expect([d.ifnot, d.ifname]).toEqual([1, 'em0']);
    expect(d.src).toMatchObject({ type: 'table', tblname: 'bad_hosts' });
    expect(d.dst).toMatchObject({ type: 'addrmask', addr: '2001:db8:0:0:0:0:0:0', mask: 'ffff:ffff:0:0:0:0:0:0' });
    expect([d.type, d.code]).toEqual([129, 1]);
    expect([d.ruleFlag, d.returnIcmp, d.returnIcmp6]).toEqual([PF.ruleFlag.return, 0x0303, 0x0104]);
    expect([d.log, d.logif]).toEqual([0x01 | 0x02 | 0x10, 1]);

    const r = decodeRule(R, one({ action: 'pass', proto: 6, af: 'inet', srcPort: { op: ':', lo: 1000, hi: 2000 }, dstPort: { op: '<>', lo: 10, hi: 20 } }));
    expect([r.src.portOp, r.src.port, r.dst.portOp, r.dst.port]).toEqual([9, [1000, 2000], 8, [10, 20]]);
    const x = decodeRule(R, one({ action: 'pass', proto: 6, af: 'inet', dstPort: { op: '><', lo: 5, hi: 9 }, srcPort: { op: '>=', lo: 1024, hi: 1024 } }));
    expect([x.dst.portOp, x.dst.port, x.src.portOp, x.src.port]).toEqual([1, [5, 9], 7, [1024, 0]]);
  });

  it('af comes from the addresses when the rule does not name one', () => {
    const d = decodeRule(R, one({ action: 'pass', src: net('fd00::/8') }));
    expect(d.af).toBe(24);
  });

  it('modulate / synproxy state and if-bound state policy', () => {
    const ir = policy({ '': [{ action: 'pass', state: 'modulate', flags: SA }, { action: 'pass', state: 'synproxy', flags: SA }, { action: 'pass', state: 'none' }] }, { statePolicy: 'if-bound' });
    const rs = encodeIr(ir, { release: R }).byAnchor.get('')!.map((k) => decodeRule(R, k.rule));
    expect(rs.map((d) => d.keepState)).toEqual([2, 3, 0]);
    expect(rs.map((d) => d.ruleFlag)).toEqual([0x10000, 0x10000, 0]);
  });

  it('bare interface addresses resolve from the address map, one kernel rule per address', () => {
    const r = { action: 'pass' as const, dst: { neg: false, host: { type: 'ifaddr' as const, ifname: 'em0' } } };
    const dyn = decodeRule(R, encodeRule(rule(r), { release: R }).rules[0]!.rule);
    expect([dyn.dst.type, dyn.dst.ifname, dyn.dst.iflags]).toEqual(['dyniftl', 'em0', 0]);
    expect(() => encodeRule(rule(r), { release: R, addressMap: { em1: ['192.0.2.1/24'] } }))
      .toThrow(/test\.pf\.conf:1:1: "em0" used as an address needs its addresses at load time; the interface address map has no em0/);
    const enc = encodeRule(rule(r), { release: R, addressMap: { em0: ['192.0.2.10/24', '2001:db8::10/64'] } });
    expect(enc.rules.map((k) => decodeRule(R, k.rule)).map((d) => [d.af, d.dst.addr, d.dst.mask])).toEqual([
      [2, '192.0.2.10', '255.255.255.255'],
      [24, '2001:db8:0:0:0:0:0:10', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ]);
    const v4only = encodeRule(rule({ ...r, af: 'inet' }), { release: R, addressMap: { em0: ['192.0.2.10/24', '2001:db8::10/64'] } });
    expect(v4only.rules).toHaveLength(1);
  });

  it('a multi-host nat pool becomes an automatic table, round-robin', () => {
    const enc = encodeRule(rule({ id: 7, ruleset: 't1', action: 'match', dir: 'out', af: 'inet',
      natTo: { hosts: [{ type: 'prefix', prefix: { af: 'inet', addr: '198.51.100.1', len: 32 } }, { type: 'prefix', prefix: { af: 'inet', addr: '198.51.100.2', len: 32 } }] } }), { release: R });
    expect(enc.autoTables).toEqual([{ anchor: 't1', name: '__ztb_pool_7_nat', entries: [
      { neg: false, prefix: { af: 'inet', addr: '198.51.100.1', len: 32 } }, { neg: false, prefix: { af: 'inet', addr: '198.51.100.2', len: 32 } }] }]);
    const d = decodeRule(R, enc.rules[0]!.rule);
    expect([d.nat.type, d.nat.tblname, d.nat.opts]).toEqual(['table', '__ztb_pool_7_nat', 4]);
  });

  it('rdr-to port and port ranges go to rdr.proxy_port', () => {
    const d = decodeRule(R, one({ action: 'pass', dir: 'in', af: 'inet', proto: 6, rdrTo: { hosts: [{ type: 'prefix', prefix: { af: 'inet', addr: '10.0.0.2', len: 32 } }], port: { lo: 8080, hi: 8080 } } }));
    expect([d.rdr.proxyPort, d.rdr.portOp]).toEqual([[8080, 0], 2]);
    const e = decodeRule(R, one({ action: 'pass', dir: 'in', af: 'inet', proto: 6, rdrTo: { hosts: [{ type: 'prefix', prefix: { af: 'inet', addr: '10.0.0.2', len: 32 } }], port: { lo: 8000, hi: 8010 } } }));
    expect([e.rdr.proxyPort, e.rdr.portOp]).toEqual([[8000, 8010], 9]);
  });

  it('anchor calls: nested anchors are sent absolute, wildcards keep /*', () => {
    const ir = policy({
      '': [{ action: 'anchor', quick: true, call: { name: 'tenant1/*', wildcard: true, targets: ['tenant1/a'] } }],
      tenant1: [{ action: 'anchor', call: { name: 'tenant1/web', wildcard: false, targets: ['tenant1/web'] } }],
      'tenant1/web': [{ action: 'pass' }],
    });
    const enc = encodeIr(ir, { release: R });
    expect(enc.byAnchor.get('')![0]!.anchorCall).toBe('tenant1/*');
    expect(enc.byAnchor.get('tenant1')![0]!.anchorCall).toBe('/tenant1/web');
    const rooted = encodeIr(ir, { release: R, anchorRoot: 'ztb' });
    expect([...rooted.byAnchor.keys()]).toEqual(['', 'ztb/tenant1', 'ztb/tenant1/web']);
    expect(rooted.byAnchor.get('')![0]!.anchorCall).toBe('ztb/tenant1/*');
    expect(rooted.byAnchor.get('ztb/tenant1')![0]!.anchorCall).toBe('/ztb/tenant1/web');
  });

  it('refuses what the kernel fields cannot hold, with the rule position', () => {
    expect(() => encodeRule(rule({ action: 'pass', iface: { name: 'averyveryverylongifname', neg: false } }), { release: R }))
      .toThrow(/test\.pf\.conf:1:1: cannot encode .*ifname.*at most 15/);
    expect(() => encodeRule(rule({ action: 'pass', src: { neg: false, host: { type: 'table', name: 't'.repeat(32) } } }), { release: R }))
      .toThrow(BackendError);
    expect(() => encodeRule(rule({ action: 'pass', log: { all: false, matches: false, user: false, to: 'em0' } }), { release: R }))
      .toThrow(/must name a pflog interface/);
    expect(() => encodeRule(rule({ action: 'pass', src: { neg: false, host: { type: 'none' } } }), { release: R })).toThrow(BackendError);
  });

  it('pfioc_rule wraps the rule image at 2064 with anchor @12 and anchor_call @1036, per release', () => {
    for (const rel of [R, R548]) {
      const img = one({ action: 'pass', dir: 'in', quick: true }, rel);
      expect(img.length).toBe(rel.structs.pf_rule.size);
      const io = encodePfiocRule(rel, { ticket: 77, anchor: 'tenant1', anchorCall: 'x/*', rule: img });
      expect(io.length).toBe(rel.structs.pfioc_rule.size);
      expect(io.readUInt32LE(4)).toBe(77);
      expect(io.subarray(12, 20).toString('latin1')).toBe('tenant1\0');
      expect(io.subarray(1036, 1040).toString('latin1')).toBe('x/*\0');
      expect(io.subarray(2064, 2064 + img.length).equals(img)).toBe(true);
      expect(io.readUInt8(2064 + 1284)).toBe(1);
    }
    expect(() => encodePfiocRule(R548, { anchor: '', rule: one({ action: 'pass' }, R) })).toThrow(/1344 bytes, pfvar-1.548 needs 1360/);
  });

  it('r1.548 leaves the limiter slots zero and moves nothing before them', () => {
    const a = one({ action: 'pass', dir: 'in', quick: true, proto: 6, af: 'inet', state: 'keep', flags: SA }, R);
    const b = one({ action: 'pass', dir: 'in', quick: true, proto: 6, af: 'inet', state: 'keep', flags: SA }, R548);
    expect(b.subarray(0, 1312).equals(a.subarray(0, 1312))).toBe(true);
    expect(b.subarray(1312, 1328).every((x) => x === 0)).toBe(true);
  });
});

