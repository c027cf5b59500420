// nftables backend: atomic replacement. A rejected ruleset leaves the loaded one (rules and counters)
// untouched; 50 reloads under traffic drop no packet of an established allowed flow and pass no
// packet of a forbidden one (counted at the receiver).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { skipPrivileged } from '../../helpers/privileged.js';
import { applyNft, listNft, readCounters } from '../../../src/backends/nft/apply.js';
import { NftCommandError } from '../../../src/backends/nft/errors.js';
import { Lab, Sniffer, sendPackets, startServer, tcpStream, type CraftedPacket } from '../../../src/backends/nft/lab.js';
import { renderNft } from '../../../src/backends/nft/render.js';
import { buildIr, type RuleSpec } from './ir-builder.js';

const skip = skipPrivileged('nft');
let lab: Lab;

beforeAll(() => {
  if (skip) return;
  lab = Lab.create('ztkr', [
    { name: 'a', gwIf: 'em0', v4: '10.1.0.0/24' },
    { name: 'b', gwIf: 'em1', v4: '10.2.0.0/24' },
  ]);
});
afterAll(() => lab?.destroy());

const udp = (p: number) => ({ proto: 17, dstPort: { op: '=' as const, lo: p, hi: p } });

function policy(extra: number): ReturnType<typeof buildIr> {
  // `extra` dummy rules in front shift every rule id, so states created under one ruleset are
  // followed under a ruleset whose ids mean something else.
  const dummies: RuleSpec[] = Array.from({ length: extra }, (_, i) => ({ action: 'block', iface: { name: `dummy${i}`, neg: false }, proto: 6 }));
  return buildIr({
    '': [
      ...dummies,
      { action: 'block' },
      { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false }, ...udp(5000) },
      { action: 'pass', dir: 'out', iface: { name: 'em1', neg: false }, ...udp(5000) },
      { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false }, proto: 6, dstPort: { op: '=', lo: 7000, hi: 7000 } },
      { action: 'pass', dir: 'out', iface: { name: 'em1', neg: false }, proto: 6, dstPort: { op: '=', lo: 7000, hi: 7000 } },
    ],
  });
}

describe('atomic reload', () => {
  test('a rejected ruleset leaves the previous rules and counters in place', async () => {
    if (skip) return;
    const ir = policy(0);
    applyNft(ir, { netns: lab.gw });
    const sn = await Sniffer.start(lab.ep('b').ns, 'eth0');
    const pkts: CraftedPacket[] = Array.from({ length: 5 }, (_, i) => ({ src: '10.1.0.2', dst: '10.2.0.2', proto: 17, sport: 41000, dport: 5000, token: `ok${String(i).padStart(6, '0')}` }));
    await sendPackets(lab.ep('a').ns, pkts);
    expect((await sn.stop()).length).toBe(5);
    const before = readCounters(ir, { netns: lab.gw });
    // 5 decisions/state packets in, plus b's ICMP port unreachables counted on the state.
    expect(before[1]!.packets).toBeGreaterThanOrEqual(5);

    const bad = renderNft(policy(3));
    bad.json.nftables.push({ add: { rule: { family: 'inet', table: 'ztb', chain: 'in_rs0', expr: [{ jump: { target: 'no_such_chain' } }] } } });
    expect(() => applyNft(bad, { netns: lab.gw })).toThrow(NftCommandError);

    const after = readCounters(ir, { netns: lab.gw });
    expect(after).toEqual(before);
    const chains = listNft({ netns: lab.gw }).nftables.filter((o) => o.chain).length;
    expect(chains).toBe(renderNft(ir).json.nftables.filter((c) => (c.add as Record<string, unknown> | undefined)?.chain).length);
  });

  test('50 reloads under traffic: the established flow loses nothing, the forbidden one gets nothing', async () => {
    if (skip) return;
    applyNft(policy(0), { netns: lab.gw });
    const N = 1500;
    const pkts: CraftedPacket[] = [];
    for (let i = 0; i < N; i++) {
      pkts.push({ src: '10.1.0.2', dst: '10.2.0.2', proto: 17, sport: 42000, dport: 5000, token: `A${String(i).padStart(7, '0')}` });
      if (i % 5 === 0) pkts.push({ src: '10.1.0.2', dst: '10.2.0.2', proto: 17, sport: 42001 + (i % 50), dport: 9999, token: `F${String(i).padStart(7, '0')}` });
    }
    const server = await startServer(lab.ep('b').ns, 7000);
    const sn = await Sniffer.start(lab.ep('b').ns, 'eth0');
    // An established TCP stream runs through all the reloads as well.
    const streaming = tcpStream(lab.ep('a').ns, lab.ep('b').addr4, 7000, 4);
    const sending = sendPackets(lab.ep('a').ns, pkts, 0.002);
    let reloads = 0;
    let done = false;
    void sending.finally(() => (done = true));
    while (reloads < 50) {
      await new Promise((r) => setTimeout(r, 40));
      applyNft(policy(reloads % 2 === 0 ? 4 : 0), { netns: lab.gw });
      reloads++;
    }
    await sending;
    const stream = await streaming;
    await server.stop();
    const got = await sn.stop();
    expect(stream.error).toBe('');
    expect(stream.sent).toBeGreaterThan(100);
    expect(stream.echoed).toBe(stream.sent);
    const allowed = new Set(got.filter((p) => p.token.startsWith('A')).map((p) => p.token));
    const forbidden = got.filter((p) => p.token.startsWith('F'));
    expect(done).toBe(true);
    expect(reloads).toBe(50);
    expect(allowed.size).toBe(N);
    expect(forbidden).toEqual([]);
  });
});
