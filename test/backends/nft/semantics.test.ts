// nftables backend: pf semantics proven with real packets. A gateway namespace (table inet ztb)
// forwards between endpoint namespaces `a` (on gateway interface em0) and `b` (em1); crafted
// packets are sent from a and observed by a sniffer in b, so every verdict is the kernel's.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { skipPrivileged } from '../../helpers/privileged.js';
import { applyNft, readCounters } from '../../../src/backends/nft/apply.js';
import { Lab, Sniffer, sendPackets, type CraftedPacket } from '../../../src/backends/nft/lab.js';
import type { Ir } from '../../../src/policy/ir.js';
import { buildIr, host, prefix, type RuleSpec } from './ir-builder.js';

const skip = skipPrivileged('nft');
let lab: Lab;
let seq = 0;

beforeAll(() => {
  if (skip) return;
  lab = Lab.create('ztks', [
    { name: 'a', gwIf: 'em0', v4: '10.1.0.0/24' },
    { name: 'b', gwIf: 'em1', v4: '10.2.0.0/24', defaultRoute: true },
  ]);
});
afterAll(() => lab?.destroy());

function pkt(p: Partial<CraftedPacket>): CraftedPacket {
  seq++;
  return { src: '10.1.0.2', dst: '10.2.0.2', proto: 6, sport: 30000 + seq, dport: 443, flags: 0x02, token: `t${String(seq).padStart(7, '0')}`, ...p };
}

/** Loads `ir`, sends `pkts` from a, returns which tokens arrived at b. */
async function delivered(ir: Ir, pkts: CraftedPacket[]): Promise<Set<string>> {
  applyNft(ir, { netns: lab.gw });
  const sn = await Sniffer.start(lab.ep('b').ns, 'eth0');
  await sendPackets(lab.ep('a').ns, pkts);
  const got = await sn.stop();
  return new Set(got.map((p) => p.token));
}

async function verdicts(rules: Record<string, RuleSpec[]>, pkts: CraftedPacket[]): Promise<boolean[]> {
  const got = await delivered(buildIr(rules), pkts);
  return pkts.map((p) => got.has(p.token));
}

describe('pf rule walk in nftables', () => {
  test('no rules: everything passes', async () => {
    if (skip) return;
    expect(await verdicts({ '': [] }, [pkt({}), pkt({ proto: 17, dport: 53 })])).toEqual([true, true]);
  });

  test('last match wins: block all, then pass to port 443', async () => {
    if (skip) return;
    const rules = { '': [{ action: 'block' as const }, { action: 'pass' as const, proto: 6, dstPort: { op: '=' as const, lo: 443, hi: 443 } }] };
    expect(await verdicts(rules, [pkt({ dport: 443 }), pkt({ dport: 80 }), pkt({ proto: 17, dport: 443 })])).toEqual([true, false, false]);
  });

  test('quick stops the walk: block quick then pass', async () => {
    if (skip) return;
    const rules = { '': [{ action: 'block' as const, quick: true, dst: host('10.2.0.0/24') }, { action: 'pass' as const }] };
    expect(await verdicts(rules, [pkt({}), pkt({ dst: '10.3.0.9' })])).toEqual([false, true]);
  });

  test('quick anchor: stops only when a rule directly inside decided', async () => {
    if (skip) return;
    const rules: Record<string, RuleSpec[]> = {
      '': [{ action: 'anchor', quick: true, call: { name: 'a', wildcard: false, targets: ['a'] } }, { action: 'block' }],
      a: [{ action: 'pass', proto: 6, dstPort: { op: '=', lo: 443, hi: 443 } }],
    };
    expect(await verdicts(rules, [pkt({ dport: 443 }), pkt({ dport: 80 })])).toEqual([true, false]);
  });

  test('nested non-quick anchor inside a quick anchor does not stop the walk', async () => {
    if (skip) return;
    const rules: Record<string, RuleSpec[]> = {
      '': [{ action: 'anchor', quick: true, call: { name: 'a', wildcard: false, targets: ['a'] } }, { action: 'block', proto: 6, dstPort: { op: '=', lo: 80, hi: 80 } }],
      a: [{ action: 'anchor', call: { name: 'a/in', wildcard: false, targets: ['a/in'] } }],
      'a/in': [{ action: 'pass' }],
    };
    expect(await verdicts(rules, [pkt({ dport: 80 }), pkt({ dport: 443 })])).toEqual([false, true]);
  });

  test('wildcard anchor: children in order, a quick rule in t/b stops before t/c', async () => {
    if (skip) return;
    const rules: Record<string, RuleSpec[]> = {
      '': [{ action: 'anchor', call: { name: 't/*', wildcard: true, targets: ['t/a', 't/b', 't/c'] } }],
      't/a': [{ action: 'block' }],
      't/b': [{ action: 'pass', quick: true, proto: 6, dstPort: { op: '=', lo: 22, hi: 22 } }],
      't/c': [{ action: 'block', proto: 6 }],
    };
    expect(await verdicts(rules, [pkt({ dport: 22 }), pkt({ dport: 23 }), pkt({ proto: 17, dport: 22 })])).toEqual([true, false, false]);
  });

  test('a quick anchor does not stop for a decision made before the call', async () => {
    if (skip) return;
    const rules: Record<string, RuleSpec[]> = {
      '': [
        { action: 'anchor', call: { name: 'x', wildcard: false, targets: ['x'] } },
        { action: 'anchor', quick: true, dst: host('10.9.9.9'), call: { name: 'x', wildcard: false, targets: ['x'] } },
        { action: 'block' },
      ],
      x: [{ action: 'pass' }],
    };
    // x passes, the quick call's criteria fail, then `block` wins.
    expect(await verdicts(rules, [pkt({})])).toEqual([false]);
  });

  test('port operators, tables with exceptions, negation, interface and direction', async () => {
    if (skip) return;
    const rules: Record<string, RuleSpec[]> = {
      '': [
        { action: 'block' },
        { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false }, proto: 6, dstPort: { op: '><', lo: 1000, hi: 1003 }, src: { neg: false, host: { type: 'table', name: 'ok' } } },
        { action: 'pass', dir: 'in', iface: { name: 'em1', neg: false }, proto: 17 },
        { action: 'pass', dir: 'in', proto: 17, dstPort: { op: '<>', lo: 100, hi: 200 }, dst: host('10.2.0.0/16', true) },
        { action: 'pass', dir: 'out', iface: { name: 'em0', neg: true } },
      ],
    };
    const ir = buildIr(rules, { tables: { ok: { name: 'ok', entries: [{ neg: false, prefix: prefix('10.0.0.0/8') }, { neg: true, prefix: prefix('10.1.0.128/25') }], persist: false, constant: false } } });
    const pkts = [
      pkt({ dport: 1001 }), // pass: in table, port in (1000,1003)
      pkt({ dport: 1003 }), // block: exclusive range
      pkt({ dport: 1002, src: '10.1.0.200' }), // block: table exception
      pkt({ proto: 17, dport: 99, dst: '10.3.0.1' }), // pass: outside 100..200, dst not 10.2/16
      pkt({ proto: 17, dport: 150, dst: '10.3.0.1' }), // block
      pkt({ proto: 17, dport: 99 }), // block: dst negation fails
    ];
    const got = await delivered(ir, pkts);
    expect(pkts.map((p) => got.has(p.token))).toEqual([true, false, false, true, false, false]);
  });

  test('set skip on: packets on a skipped interface pass untouched, no counter moves', async () => {
    if (skip) return;
    const ir = buildIr({ '': [{ action: 'block' }] }, { skip: ['em0'] });
    const got = await delivered(ir, [pkt({}), pkt({ proto: 17, dport: 53 })]);
    // In on em0 is skipped, but the forwarded copy leaves on em1, which is not: blocked there.
    expect(got.size).toBe(0);
    const c0 = readCounters(ir, { netns: lab.gw })[0]!.packets;
    expect(c0).toBe(2);
    const both = buildIr({ '': [{ action: 'block' }] }, { skip: ['em0', 'em1'] });
    const got2 = await delivered(both, [pkt({}), pkt({ proto: 17, dport: 53 })]);
    expect(got2.size).toBe(2);
    expect(readCounters(both, { netns: lab.gw })[0]!.packets).toBe(0);
  });

  test('interface groups: a rule on a group matches its members', async () => {
    if (skip) return;
    const ir = buildIr({ '': [{ action: 'block' }, { action: 'pass', iface: { name: 'lan', neg: false } }] }, { groups: { lan: ['em0', 'em1'] } });
    const pkts = [pkt({})];
    expect([...(await delivered(ir, pkts))]).toEqual([pkts[0]!.token]);
    const other = buildIr({ '': [{ action: 'block' }, { action: 'pass', iface: { name: 'lan', neg: false } }] }, { groups: { lan: ['em0', 'em9'] } });
    expect((await delivered(other, [pkt({})])).size).toBe(0);
  });

  test('a state created by a reply-direction packet is keyed by that packet (regression)', async () => {
    if (skip) return;
    const udp = (p: number) => ({ proto: 17, dstPort: { op: '=' as const, lo: p, hi: p } });
    const ir = buildIr({
      '': [
        { action: 'block' },
        { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false }, ...udp(5000), state: 'none', flags: null },
        { action: 'pass', dir: 'out', iface: { name: 'em1', neg: false }, ...udp(5000), state: 'none', flags: null },
        // b's answer comes in on em1 and creates a state there (pf: keyed in b -> a)...
        { action: 'pass', dir: 'in', iface: { name: 'em1', neg: false }, proto: 17 },
      ],
    });
    applyNft(ir, { netns: lab.gw });
    const sa = await Sniffer.start(lab.ep('a').ns, 'eth0');
    await sendPackets(lab.ep('a').ns, [pkt({ proto: 17, sport: 41234, dport: 5000 })]);
    await sendPackets(lab.ep('b').ns, [pkt({ proto: 17, src: '10.2.0.2', dst: '10.1.0.2', sport: 5000, dport: 41234 })]);
    // ...which does not match it leaving on em0 (out b -> a): no rule passes that, so it drops.
    expect((await sa.stop()).filter((p) => p.proto === 17)).toEqual([]);
    const c = readCounters(ir, { netns: lab.gw });
    // (b's ICMP port unreachable for the first packet may add to both: it is related to the flow.)
    expect(c[3]!.packets).toBeGreaterThanOrEqual(1);
    expect(c[0]!.packets).toBeGreaterThanOrEqual(1);
  });

  test('stateful pass needs flags S/SA; the counter of the deciding rule counts', async () => {
    if (skip) return;
    const ir = buildIr({ '': [{ action: 'block' }, { action: 'pass', proto: 6 }] });
    const pkts = [pkt({ flags: 0x02 }), pkt({ flags: 0x10 }), pkt({ flags: 0x12 })];
    const got = await delivered(ir, pkts);
    expect(pkts.map((p) => got.has(p.token))).toEqual([true, false, false]);
    const c = readCounters(ir, { netns: lab.gw });
    // SYN passes in and out (2 decisions), the others are blocked in.
    expect(c[1]!.packets).toBeGreaterThanOrEqual(2);
    expect(c[0]!.packets).toBe(2);
  });
});
