// nftables backend: nat-to / rdr-to as the blog seed's gateway uses them, proven with real traffic
// between an "internet" namespace (behind the gateway's egress interface) and a sandbox workload
// (behind em0). The gateway's egress address and network come from the namespace itself.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { skipPrivileged } from '../../helpers/privileged.js';
import { applyNft, readHostAddressing } from '../../../src/backends/nft/apply.js';
import { Lab, Sniffer, connectProbes, startServer } from '../../../src/backends/nft/lab.js';
import { buildIr, prefix, type RuleSpec } from './ir-builder.js';

const skip = skipPrivileged('nft');
let lab: Lab;
const servers: { stop(): Promise<void> }[] = [];
const EXT = '203.0.113.1';

beforeAll(async () => {
  if (skip) return;
  lab = Lab.create('ztkn', [
    { name: 'vm', gwIf: 'em0', v4: '192.168.30.0/24' },
    { name: 'inet', gwIf: 'ext0', v4: '203.0.113.0/24', defaultRoute: true },
  ]);
  servers.push(await startServer(lab.ep('vm').ns, 80), await startServer(lab.ep('inet').ns, 8000));
});
afterAll(async () => {
  for (const s of servers) await s.stop();
  lab?.destroy();
});

function load(rules: Record<string, RuleSpec[]>): void {
  const target = { netns: lab.gw };
  const addressing = readHostAddressing(target);
  applyNft(buildIr(rules), target, addressing);
}

const egress = { name: 'egress', neg: false };
const tcpPort = (p: number) => ({ proto: 6, dstPort: { op: '=' as const, lo: p, hi: p } });
const toEgress = { neg: false, host: { type: 'dynif' as const, ifname: 'egress', mode: 'address' as const } };
const vm = { type: 'prefix' as const, prefix: prefix('192.168.30.2') };

/** The blog's gateway, in IR form (list expansion of { 80 443 } done by hand). */
const blog: RuleSpec[] = [
  { action: 'block', dir: 'in', iface: egress },
  { action: 'match', dir: 'out', iface: egress, af: 'inet', src: { neg: true, host: { type: 'dynif', ifname: 'egress', mode: 'network' } }, natTo: { hosts: [{ type: 'dynif', ifname: 'egress', mode: 'primary' }] } },
  { action: 'pass', dir: 'out', quick: true, af: 'inet' },
  { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false }, af: 'inet' },
  { action: 'pass', dir: 'in', iface: egress, af: 'inet', ...tcpPort(80), dst: toEgress, rdrTo: { hosts: [vm] } },
  { action: 'pass', dir: 'in', iface: egress, af: 'inet', ...tcpPort(443), dst: toEgress, rdrTo: { hosts: [vm] } },
];

describe('translation', () => {
  test('rdr-to: the internet reaches the workload through the egress address', async () => {
    if (skip) return;
    load({ '': blog });
    const r = await connectProbes(lab.ep('inet').ns, [{ proto: 'tcp', dst: EXT, port: 80 }, { proto: 'tcp', dst: EXT, port: 8000 }], 3);
    expect(r.map((x) => x.ok)).toEqual([true, false]);
  });

  test('nat-to: the workload reaches the internet with the egress address as source', async () => {
    if (skip) return;
    load({ '': blog });
    const sn = await Sniffer.start(lab.ep('inet').ns, 'eth0');
    const r = await connectProbes(lab.ep('vm').ns, [{ proto: 'tcp', dst: lab.ep('inet').addr4, port: 8000 }, { proto: 'icmp', dst: lab.ep('inet').addr4, port: 0 }], 3);
    const seen = await sn.stop();
    expect(r.map((x) => x.ok)).toEqual([true, true]);
    const syns = seen.filter((p) => p.proto === 6 && p.dport === 8000);
    expect(syns.length).toBeGreaterThan(0);
    expect(new Set(syns.map((p) => p.src))).toEqual(new Set([EXT]));
  });

  test('rules after a match rdr-to see the translated destination', async () => {
    if (skip) return;
    load({
      '': [
        { action: 'block', dir: 'in', iface: egress },
        { action: 'match', dir: 'in', iface: egress, ...tcpPort(8080), dst: toEgress, rdrTo: { hosts: [vm], port: { lo: 80, hi: 80 } } },
        // Written against the translated packet: pf shows it 192.168.30.2 port 80.
        { action: 'pass', dir: 'in', iface: egress, proto: 6, dst: { neg: false, host: vm }, dstPort: { op: '=', lo: 80, hi: 80 } },
        { action: 'block', dir: 'in', iface: egress, ...tcpPort(8080) },
      ],
    });
    const r = await connectProbes(lab.ep('inet').ns, [{ proto: 'tcp', dst: EXT, port: 8080 }], 3);
    expect(r.map((x) => x.ok)).toEqual([true]);
  });

  test('a non-quick pass rdr-to overridden by a later block neither translates nor passes', async () => {
    if (skip) return;
    load({
      '': [
        { action: 'pass', dir: 'in', iface: egress, ...tcpPort(80), dst: toEgress, rdrTo: { hosts: [vm] } },
        { action: 'block', dir: 'in', iface: egress, ...tcpPort(80) },
      ],
    });
    const sn = await Sniffer.start(lab.ep('vm').ns, 'eth0');
    const r = await connectProbes(lab.ep('inet').ns, [{ proto: 'tcp', dst: EXT, port: 80 }], 3);
    const seen = await sn.stop();
    expect(r.map((x) => x.ok)).toEqual([false]);
    expect(seen.filter((p) => p.proto === 6)).toEqual([]);
  });
});
