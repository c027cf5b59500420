// Differential proof of the native engine against the reference evaluator: random pf policies
// (anchors, wildcards, quick, match rules with nat-to/rdr-to, tables with `!`, dynamic interface
// addresses, block return, no state) and random packet sequences (replies, forwarded copies,
// FIN/RST, clock jumps across every state timeout, a small state table so state-limit happens,
// mid-sequence reloads that keep states). Every field of EvalResult must be equal, and the
// per-rule packet/byte/state counters at the end. At least 100,000 packets per run. The seed is
// printed; replay with ZTB_SEED=<seed>.
import { describe, expect, it } from 'vitest';
import { NativeEngine } from '../../src/engine/engine.js';
import type { EvalPacket, EvalResult } from '../../src/engine/packet.js';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { compilePolicyText } from '../../src/policy/load.js';
import type { Ir } from '../../src/policy/ir.js';
import { randomPackets, randomPolicy, Rng, testSeed } from '../helpers/gen-policy.js';

/** The generator's interface addresses (inside its pools), so `(if)` and `self` resolve. */
const IFADDRS = randomPolicy(0, { ifAddresses: true }).ifaddrs;
const GROUPS = { egress: ['em0'], internal: ['em1', 'vether0'] };
const TOTAL_PACKETS = 100_000;
const PACKETS_PER_POLICY = 400;

/** Clock steps that land around pf's timeouts (ms). */
const STEPS = [0, 1, 5, 1000, 9_999, 10_000, 20_000, 29_999, 30_000, 45_000, 60_000, 90_000, 120_000, 900_000, 86_400_000];

function compile(seed: number): { ir: Ir; text: string } | null {
  // Half the policies use interface-derived addresses ((if), (if:network), (if:0), self).
  const info = randomPolicy(seed, { ifAddresses: seed % 2 === 0 });
  // One policy in three starts with a stateful `pass all`, so most flows make states and the
  // state paths (replies, teardown, timeouts, nat ports, STATEINS, the limit) get real traffic.
  const text = seed % 3 === 0 ? `pass all\n${info.text}` : info.text;
  try {
    return { ir: compilePolicyText(text, `gen-${seed}.pf.conf`), text };
  } catch {
    return null; // the generator may produce a policy the compiler rejects (e.g. af conflicts)
  }
}

/** EvalResult with a fixed key order, for comparison and messages. */
function canon(r: EvalResult): string {
  const { verdict, reason, ruleId, anchorRuleId, matchRuleIds, stateCreated, returnAction, tenant, translated } = r;
  return JSON.stringify({ verdict, reason, ruleId, anchorRuleId, matchRuleIds, stateCreated, returnAction, tenant, translated });
}

function describeMismatch(seed: number, i: number, pkt: EvalPacket, ref: EvalResult, nat: EvalResult, text: string): string {
  return [
    `mismatch: policy seed ${seed}, packet ${i} (replay with ZTB_SEED)`,
    `packet: ${JSON.stringify(pkt)}`,
    `reference: ${canon(ref)}`,
    `native:    ${canon(nat)}`,
    'policy:',
    text,
  ].join('\n');
}

describe('native engine vs reference evaluator', () => {
  it(`agrees on ${TOTAL_PACKETS} random packets over random policies`, () => {
    const base = testSeed('native differential');
    const rng = new Rng(base ^ 0x2545f491);
    let packets = 0;
    let policies = 0;
    const reasons = new Map<string, number>();
    for (let k = 0; packets < TOTAL_PACKETS; k++) {
      const seed = (base + k * 7919) >>> 0;
      const first = compile(seed);
      if (!first) continue;
      policies++;
      let now = 1_000_000;
      const maxStates = rng.pick([4, 16, 64, 100_000]);
      const linearWalk = rng.chance(0.2);
      const ref = new ReferenceEvaluator(first.ir, { ifaddrs: IFADDRS, groups: GROUPS, clock: () => now, maxStates });
      // expireBudget 0: dead states are freed on lookup and when the table is full, like the
      // reference, so nat-to's lowest-free-port choice sees the same leftovers.
      const nat = new NativeEngine({ maxStates, expireBudget: 0, linearWalk });
      try {
        nat.load(first.ir, { ifaddrs: IFADDRS, groups: GROUPS });
        let text = first.text;
        const pkts = randomPackets(seed, PACKETS_PER_POLICY, randomPolicy(seed, { ifAddresses: seed % 2 === 0 }));
        for (let i = 0; i < pkts.length; i++) {
          if (rng.chance(0.3)) now += rng.pick(STEPS);
          if (i === PACKETS_PER_POLICY / 2 && rng.chance(0.5)) {
            const next = compile((seed ^ 0x9e3779b9) >>> 0);
            if (next) {
              ref.reload(next.ir);
              nat.load(next.ir, { ifaddrs: IFADDRS, groups: GROUPS });
              text += `\n# reloaded at packet ${i} with:\n${next.text}`;
            }
          }
          const pkt = pkts[i]!;
          const r = ref.evaluate(pkt);
          const n = nat.evaluate(pkt, now);
          if (canon(r) !== canon(n)) {
            expect.fail(describeMismatch(seed, i, pkt, r, n, text));
          }
          reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
          if (r.translated) reasons.set('translated', (reasons.get('translated') ?? 0) + 1);
          if (r.stateCreated) reasons.set('created', (reasons.get('created') ?? 0) + 1);
          packets++;
        }
        // Counters: packets, bytes and states per rule of the current ruleset.
        const rc = ref.counters();
        nat.expire(now);
        const nc = nat.counters().rules;
        expect(nc.length).toBe(rc.length);
        for (let i = 0; i < rc.length; i++) {
          const a = rc[i]!;
          const b = nc[i]!;
          expect({ seed, id: i, packets: b.packets, bytes: b.bytes, states: b.states, statesTotal: b.statesTotal }).toEqual({
            seed,
            id: i,
            packets: a.packets,
            bytes: a.bytes,
            states: a.states,
            statesTotal: a.statesTotal,
          });
        }
      } finally {
        nat.close();
      }
    }
    console.log(`[native differential] ${packets} packets, ${policies} policies, reasons ${JSON.stringify(Object.fromEntries(reasons))}`);
    expect(packets).toBeGreaterThanOrEqual(TOTAL_PACKETS);
    // The sequences must exercise the interesting paths, or the agreement proves little.
    for (const r of ['rule', 'state', 'default', 'normalize', 'state-limit', 'translated', 'created']) expect(reasons.get(r) ?? 0).toBeGreaterThan(0);
  });
});
