// nftables backend: pf's states in conntrack, proven with real connections. A state is keyed by the
// direction that created it: the reply of a forwarded connection needs the state made by the
// `pass out` on the egress interface, and `no state` passes do not let replies back in.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { skipPrivileged } from '../../helpers/privileged.js';
import { applyNft, readCounters } from '../../../src/backends/nft/apply.js';
import { Lab, connectProbes, startServer } from '../../../src/backends/nft/lab.js';
import { buildIr, type RuleSpec } from './ir-builder.js';

const skip = skipPrivileged('nft');
let lab: Lab;
let server: { stop(): Promise<void> } | null = null;

beforeAll(async () => {
  if (skip) return;
  lab = Lab.create('ztkt', [
    { name: 'a', gwIf: 'em0', v4: '10.1.0.0/24', v6: 'fd00:1::' },
    { name: 'b', gwIf: 'em1', v4: '10.2.0.0/24', v6: 'fd00:2::' },
  ]);
  server = await startServer(lab.ep('b').ns, 8000);
});
afterAll(async () => {
  await server?.stop();
  lab?.destroy();
});

async function reach(rules: Record<string, RuleSpec[]>, probes: { proto: 'tcp' | 'udp' | 'icmp'; dst?: string }[]) {
  applyNft(buildIr(rules), { netns: lab.gw });
  const res = await connectProbes(lab.ep('a').ns, probes.map((p) => ({ proto: p.proto, dst: p.dst ?? lab.ep('b').addr4, port: 8000 })), 3);
  return res;
}

const tcp8000 = { proto: 6, dstPort: { op: '=' as const, lo: 8000, hi: 8000 } };

describe('states (conntrack marks)', () => {
  test('stateful pass in + pass out: TCP, UDP and ICMP replies come back by state', async () => {
    if (skip) return;
    const r = await reach(
      {
        '': [
          { action: 'block' },
          { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false } },
          { action: 'pass', dir: 'out', iface: { name: 'em1', neg: false } },
          // IPv6 needs neighbour discovery, which pf (and so we) filter like anything else.
          { action: 'pass', af: 'inet6', proto: 58, state: 'none', flags: null },
        ],
      },
      [{ proto: 'tcp' }, { proto: 'udp' }, { proto: 'icmp' }, { proto: 'tcp', dst: lab.ep('b').addr6 }, { proto: 'udp', dst: lab.ep('b').addr6 }],
    );
    expect(r.map((x) => x.ok)).toEqual([true, true, true, true, true]);
    const c = readCounters(buildIr({ '': [{ action: 'block' }, { action: 'pass' }, { action: 'pass' }, { action: 'pass' }] }), { netns: lab.gw });
    // The creating rules count their state's traffic: more than the first packets.
    expect(c[1]!.packets).toBeGreaterThan(4);
    expect(c[0]!.packets).toBe(0);
  });

  test('direction-keyed: the reply needs the OUT state on the egress interface', async () => {
    if (skip) return;
    const rules: Record<string, RuleSpec[]> = {
      '': [{ action: 'block' }, { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false }, ...tcp8000 }, { action: 'pass', dir: 'out', iface: { name: 'em1', neg: false }, ...tcp8000, state: 'none', flags: null }],
    };
    expect((await reach(rules, [{ proto: 'tcp' }])).map((x) => x.ok)).toEqual([false]);
    rules['']![2] = { action: 'pass', dir: 'out', iface: { name: 'em1', neg: false }, ...tcp8000 };
    expect((await reach(rules, [{ proto: 'tcp' }])).map((x) => x.ok)).toEqual([true]);
  });

  test('no state: replies are filtered like any packet', async () => {
    if (skip) return;
    const rules: Record<string, RuleSpec[]> = {
      '': [{ action: 'block' }, { action: 'pass', proto: 17, state: 'none', flags: null }],
    };
    // UDP to 8000 passes both ways without state only if the reply is also allowed: here it is.
    expect((await reach(rules, [{ proto: 'udp' }])).map((x) => x.ok)).toEqual([true]);
    rules['']!.push({ action: 'block', dir: 'in', iface: { name: 'em1', neg: false } });
    expect((await reach(rules, [{ proto: 'udp' }])).map((x) => x.ok)).toEqual([false]);
    // The same with keep state: the reply matches the state and the block is never consulted.
    rules['']![1] = { action: 'pass', proto: 17 };
    expect((await reach(rules, [{ proto: 'udp' }])).map((x) => x.ok)).toEqual([true]);
  });

  test('block return: TCP gets a reset, UDP an ICMP port unreachable', async () => {
    if (skip) return;
    const r = await reach({ '': [{ action: 'block', blockPolicy: 'return', dir: 'in' }] }, [{ proto: 'tcp' }, { proto: 'udp' }]);
    expect(r.map((x) => x.ok)).toEqual([false, false]);
    expect(r.map((x) => x.detail)).toEqual(['Connection refused', 'Connection refused']);
    // The reset and the unreachable are the gateway's own: `block out` does not stop them (pf
    // does not filter what it generates itself).
    const o = await reach({ '': [{ action: 'block', dir: 'out' }, { action: 'block', blockPolicy: 'return', dir: 'in' }] }, [{ proto: 'tcp' }, { proto: 'udp' }]);
    expect(o.map((x) => x.detail)).toEqual(['Connection refused', 'Connection refused']);
    const d = await reach({ '': [{ action: 'block', dir: 'in' }] }, [{ proto: 'tcp' }]);
    expect(d[0]!.detail).not.toBe('Connection refused');
  });
});
