// Regression (differential seed 1061849453): an expired state that has not been freed yet must not
// hold its NAT source port. The reference purges expired states before every packet and picks the
// lowest free port; the native engine used to count a dead state as owning the port and picked
// the next one.
import { describe, expect, it } from 'vitest';
import { NativeEngine } from '../../src/engine/engine.js';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { compilePolicyText } from '../../src/policy/load.js';
import type { EvalPacket } from '../../src/engine/packet.js';

describe('NAT port choice after expiry', () => {
  it('reuses the port of an expired, not yet freed state like the reference', () => {
    const ir = compilePolicyText('match out inet proto udp nat-to 203.0.113.1\npass all\n', 'nat.conf');
    let now = 1_000_000;
    const ref = new ReferenceEvaluator(ir, { clock: () => now });
    const nat = new NativeEngine({ expireBudget: 0 });
    nat.load(ir, {});
    const pkt = (sport: number): EvalPacket => ({
      dir: 'out', ifname: 'em0', af: 'inet', proto: 17, src: '10.1.2.3', dst: '198.51.100.7', sport, dport: 53, tcpFlags: 0,
    });
    const first = nat.evaluate(pkt(1000), now);
    expect(ref.evaluate(pkt(1000)).translated?.sport).toBe(50001);
    expect(first.translated?.sport).toBe(50001);
    now += 10 * 60 * 1000; // far past udp.first: the first state is dead
    const r = ref.evaluate(pkt(1001));
    const n = nat.evaluate(pkt(1001), now);
    expect(r.translated?.sport).toBe(50001);
    expect(n.translated?.sport).toBe(r.translated?.sport);
    nat.close();
  });
});
