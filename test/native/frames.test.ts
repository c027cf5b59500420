// Frames built here (Ethernet, 802.1Q, QinQ, VXLAN, IPv4, IPv6, TCP, UDP, ICMP/ICMPv6) go through
// NativeEngine.processFrames in one batch and must give the same results as the reference
// evaluator on the equivalent EvalPackets: the native frame parser feeds the same engine. Also:
// malformed and truncated frames are blocked and counted per reason, non-IP frames pass, and
// tenants are classified by VNI and subnet (examples/two-tenant.toml). Seeded; ZTB_SEED replays.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allocOutputs, NATIVE_REASONS, NativeEngine } from '../../src/engine/engine.js';
import type { EvalPacket, EvalResult } from '../../src/engine/packet.js';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { parseAddr } from '../../src/engine/reference-addr.js';
import { compilePolicyText } from '../../src/policy/load.js';
import { randomPackets, randomPolicy, Rng, testSeed } from '../helpers/gen-policy.js';

class FrameWriter {
  b: number[] = [];
  u8(v: number): void {
    this.b.push(v & 0xff);
  }
  u16(v: number): void {
    this.u8(v >> 8);
    this.u8(v);
  }
  u32(v: number): void {
    this.u16(v >>> 16);
    this.u16(v & 0xffff);
  }
  addr(a: string): void {
    const p = parseAddr(a)!;
    const n = p.af === 'inet' ? 4 : 16;
    for (let i = n - 1; i >= 0; i--) this.u8(Number((p.value >> BigInt(8 * i)) & 0xffn));
  }
  bytes(x: number[]): void {
    this.b.push(...x);
  }
}

/** L4 header + payload bytes of a packet. */
function l4(p: EvalPacket): number[] {
  const w = new FrameWriter();
  if (p.proto === 6) {
    w.u16(p.sport);
    w.u16(p.dport);
    w.u32(1);
    w.u32(0);
    w.u8(0x50);
    w.u8(p.tcpFlags);
    w.u16(1024);
    w.u32(0);
  } else if (p.proto === 17) {
    w.u16(p.sport);
    w.u16(p.dport);
    w.u16(8);
    w.u16(0);
  } else if (p.proto === 1 || p.proto === 58) {
    w.u8(p.icmpType ?? 0);
    w.u8(p.icmpCode ?? 0);
    w.u16(0);
    w.u16(p.sport); // echo id (non-echo types: unused bytes, and the parser leaves sport 0)
    w.u16(1);
  }
  return w.b;
}

function ipPacket(p: EvalPacket, payload: number[]): { type: number; bytes: number[] } {
  const w = new FrameWriter();
  if (p.af === 'inet') {
    w.u8(0x45);
    w.u8(0);
    w.u16(20 + payload.length);
    w.u16(1);
    w.u16(0);
    w.u8(64);
    w.u8(p.proto);
    w.u16(0);
    w.addr(p.src);
    w.addr(p.dst);
    w.bytes(payload);
    return { type: 0x0800, bytes: w.b };
  }
  w.u32(0x60000000);
  w.u16(payload.length);
  w.u8(p.proto);
  w.u8(64);
  w.addr(p.src);
  w.addr(p.dst);
  w.bytes(payload);
  return { type: 0x86dd, bytes: w.b };
}

function ethernet(type: number, body: number[], vlans: number[]): number[] {
  const w = new FrameWriter();
  w.bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
  // Each tag is TPID + TCI; the next tag's TPID (or the ethertype) follows. QinQ's outer TPID is 0x88a8.
  if (vlans.length > 0) w.u16(vlans.length === 2 ? 0x88a8 : 0x8100);
  for (let i = 0; i < vlans.length; i++) {
    w.u16(vlans[i]!);
    if (i + 1 < vlans.length) w.u16(0x8100);
  }
  w.u16(type);
  w.bytes(body);
  return w.b;
}

/** The frame for p: optional VLAN tags (innermost = p.vlan) and optional VXLAN (p.vni). */
function frameOf(p: EvalPacket, qinq: boolean): number[] {
  const ip = ipPacket(p, l4(p));
  const vlans = p.vlan === undefined ? [] : qinq ? [100, p.vlan] : [p.vlan];
  const inner = ethernet(ip.type, ip.bytes, vlans);
  if (p.vni === undefined) return inner;
  const vx = new FrameWriter();
  vx.u8(0x08);
  vx.bytes([0, 0, 0]);
  vx.u32(p.vni << 8);
  vx.bytes(inner);
  const udp = new FrameWriter();
  udp.u16(40000);
  udp.u16(4789);
  udp.u16(8 + vx.b.length);
  udp.u16(0);
  udp.bytes(vx.b);
  const outer = ipPacket({ ...p, af: 'inet', proto: 17, src: '192.0.2.1', dst: '192.0.2.2' }, udp.b);
  return ethernet(outer.type, outer.bytes, []);
}

function isEcho(p: EvalPacket): boolean {
  return (p.proto === 1 && (p.icmpType === 0 || p.icmpType === 8)) || (p.proto === 58 && (p.icmpType === 128 || p.icmpType === 129));
}

function canon(r: EvalResult): string {
  const { verdict, reason, ruleId, anchorRuleId, matchRuleIds, stateCreated, returnAction, tenant, translated } = r;
  return JSON.stringify({ verdict, reason, ruleId, anchorRuleId, matchRuleIds, stateCreated, returnAction, tenant, translated });
}

/** Packs frames into one buffer with offsets/lengths, as a capture ring would hand them over. */
function batch(frames: number[][]): { buf: Uint8Array; offsets: Uint32Array; lengths: Uint32Array } {
  const total = frames.reduce((a, f) => a + f.length + 3, 0);
  const buf = new Uint8Array(total);
  const offsets = new Uint32Array(frames.length);
  const lengths = new Uint32Array(frames.length);
  let o = 0;
  frames.forEach((f, i) => {
    buf.set(f, o);
    offsets[i] = o;
    lengths[i] = f.length;
    o += f.length + 3; // unaligned on purpose
  });
  return { buf, offsets, lengths };
}

describe('native frames', () => {
  it('frames through processFrames equal the reference on the equivalent packets', () => {
    const base = testSeed('native frames');
    const rng = new Rng(base);
    let checked = 0;
    for (let k = 0; checked < 5000; k++) {
      const seed = (base + k) >>> 0;
      let ir;
      try {
        ir = compilePolicyText(randomPolicy(seed).text, `gen-${seed}.pf.conf`);
      } catch {
        continue;
      }
      const now = 5_000_000;
      const ref = new ReferenceEvaluator(ir, { clock: () => now });
      const nat = new NativeEngine({ expireBudget: 0 });
      try {
        nat.load(ir);
        const pkts: EvalPacket[] = [];
        const frames: number[][] = [];
        for (const p0 of randomPackets(seed, 200)) {
          const p: EvalPacket = { ...p0 };
          if (p.proto === 17 && p.dport === 4789) continue; // would be decapsulated as VXLAN
          if (p.proto === 1 || p.proto === 58) {
            p.icmpType ??= 8;
            p.icmpCode = 0;
            if (!isEcho(p)) p.sport = 0;
            p.dport = 0;
          }
          if (rng.chance(0.2)) p.vlan = rng.int(1, 4094);
          if (rng.chance(0.15)) p.vni = rng.int(1, 0xffffff);
          const f = frameOf(p, rng.chance(0.3));
          p.length = f.length;
          pkts.push(p);
          frames.push(f);
        }
        const { buf, offsets, lengths } = batch(frames);
        const ifindex = new Uint32Array(pkts.map((p) => nat.interfaceId(p.ifname)));
        const dir = new Uint8Array(pkts.map((p) => (p.dir === 'out' ? 1 : 0)));
        const out = allocOutputs(pkts.length);
        expect(nat.processFrames(buf, offsets, lengths, ifindex, dir, now, out)).toBe(pkts.length);
        pkts.forEach((p, i) => {
          const r = ref.evaluate(p);
          const n = nat.decodeResult(out, i, p.af);
          if (canon(r) !== canon(n)) {
            expect.fail(`policy seed ${seed} packet ${i}: ${JSON.stringify(p)}\nreference ${canon(r)}\nnative    ${canon(n)}`);
          }
          checked++;
        });
      } finally {
        nat.close();
      }
    }
    expect(checked).toBeGreaterThanOrEqual(5000);
  });

  it('blocks malformed frames and counts them per reason; passes non-IP frames', () => {
    const ir = compilePolicyText('pass all\n', 'all.pf.conf');
    const nat = new NativeEngine();
    nat.load(ir);
    const good = frameOf(
      { dir: 'in', ifname: 'em0', af: 'inet', proto: 6, src: '10.0.0.1', dst: '10.0.0.2', sport: 1000, dport: 80, tcpFlags: 2 },
      false,
    );
    const frames: number[][] = [];
    for (let n = 0; n < good.length; n++) frames.push(good.slice(0, n)); // every truncation
    frames.push(good);
    const arp = [...good.slice(0, 12), 0x08, 0x06, ...new Array<number>(28).fill(0)];
    frames.push(arp);
    const { buf, offsets, lengths } = batch(frames);
    const out = allocOutputs(frames.length);
    const id = nat.interfaceId('em0');
    nat.processFrames(buf, offsets, lengths, new Uint32Array(frames.length).fill(id), new Uint8Array(frames.length), 0, out);
    for (let i = 0; i < good.length; i++) {
      expect(out.verdict[i], `truncated to ${i}`).toBe(1);
      expect(NATIVE_REASONS[out.reason[i]!]).toBe('malformed');
    }
    expect(out.verdict[good.length]).toBe(0);
    expect(NATIVE_REASONS[out.reason[good.length]!]).toBe('rule');
    expect(out.verdict[good.length + 1]).toBe(0);
    expect(NATIVE_REASONS[out.reason[good.length + 1]!]).toBe('non-ip');
    const c = nat.counters();
    expect(c.stats.reasons.malformed).toBe(good.length);
    expect(c.stats.malformed['truncated-ethernet']).toBe(14);
    expect(c.stats.malformed['truncated-ip']! + c.stats.malformed['truncated-transport']!).toBe(good.length - 14);
    expect(c.rules[0]!.packets[0]).toBe(1);
    expect(() => nat.processFrames(buf, new Uint32Array([buf.length]), new Uint32Array([1]), new Uint32Array(1), new Uint8Array(1), 0, out)).toThrow(
      /outside the buffer/,
    );
    nat.close();
    expect(() => nat.evaluate({ dir: 'in', ifname: 'em0', af: 'inet', proto: 6, src: '1.1.1.1', dst: '2.2.2.2', sport: 1, dport: 2, tcpFlags: 2 }, 0)).toThrow(
      /closed/,
    );
  });

  it('classifies tenants by VNI and subnet like the reference (two-tenant.toml)', () => {
    const ir = compilePolicyText(readFileSync('examples/two-tenant.toml', 'utf8'), 'examples/two-tenant.toml', 'toml');
    expect(ir.tenants.length).toBeGreaterThan(0);
    const ref = new ReferenceEvaluator(ir, { clock: () => 0 });
    const nat = new NativeEngine();
    nat.load(ir);
    const addrs = ['10.10.10.5', '10.10.20.7', '10.10.30.1', '8.8.8.8'];
    const vnis = [undefined, 1001, 1002, 77];
    const rng = new Rng(testSeed('native tenants'));
    const ifs = [...new Set(ir.tenants.flatMap((t) => t.interfaces)), 'em0'];
    for (let i = 0; i < 400; i++) {
      const p: EvalPacket = {
        dir: rng.chance(0.5) ? 'in' : 'out',
        ifname: rng.pick(ifs),
        af: 'inet',
        proto: 6,
        src: rng.pick(addrs),
        dst: rng.pick(addrs),
        sport: 40000 + i,
        dport: rng.pick([22, 80, 443]),
        tcpFlags: 2,
      };
      const vni = rng.pick(vnis);
      if (vni !== undefined) p.vni = vni;
      const f = frameOf(p, false);
      p.length = f.length;
      const { buf, offsets, lengths } = batch([f]);
      const out = allocOutputs(1);
      nat.processFrames(buf, offsets, lengths, new Uint32Array([nat.interfaceId(p.ifname)]), new Uint8Array([p.dir === 'out' ? 1 : 0]), 0, out);
      const r = ref.evaluate(p);
      expect(canon(nat.decodeResult(out, 0, 'inet')), JSON.stringify(p)).toBe(canon(r));
    }
    const tenants = nat.counters().tenants;
    expect(tenants.reduce((a, t) => a + t.packets, 0)).toBeGreaterThan(0);
    nat.close();
  });
});
