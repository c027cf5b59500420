// Proof of the native engine's `evaluations` counter (NativeEngineOptions.countEvaluations) against
// the reference evaluator: pf's per-rule visit count with skip steps, on random policies (anchors,
// wildcards, quick, match rules with nat-to/rdr-to, tables, interface addresses) and random packet
// sequences (states, normalisation drops, reloads), at least 20,000 packets; every rule's count must
// be equal after each ruleset's traffic. Plus hand-written policies where skip steps decide the
// counts. The seed is printed; replay with ZTB_SEED=<seed>.
import { describe, expect, it } from 'vitest';
import { NativeEngine } from '../../src/engine/engine.js';
import type { EvalPacket } from '../../src/engine/packet.js';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { compilePolicyText } from '../../src/policy/load.js';
import type { Ir } from '../../src/policy/ir.js';
import { randomPackets, randomPolicy, Rng, testSeed } from '../helpers/gen-policy.js';

const IFADDRS = randomPolicy(0, { ifAddresses: true }).ifaddrs;
const GROUPS = { egress: ['em0'], internal: ['em1', 'vether0'] };
const TOTAL_PACKETS = 20_000;
const PACKETS_PER_POLICY = 200;
const STEPS = [0, 1, 1000, 10_000, 30_000, 60_000, 900_000, 86_400_000];

function compile(seed: number): { ir: Ir; text: string } | null {
  const info = randomPolicy(seed, { ifAddresses: seed % 2 === 0 });
  const text = seed % 3 === 0 ? `pass all\n${info.text}` : info.text;
  try {
    return { ir: compilePolicyText(text, `gen-${seed}.pf.conf`), text };
  } catch {
    return null;
  }
}

function pkt(over: Partial<EvalPacket>): EvalPacket {
  return { dir: 'in', ifname: 'em1', af: 'inet', proto: 6, src: '192.0.2.1', dst: '198.51.100.2', sport: 40000, dport: 80, tcpFlags: 0x02, ...over };
}

/** Both engines' evaluations per rule after `pkts`. */
function run(text: string, pkts: EvalPacket[], linearWalk = false): { ref: number[]; nat: number[]; noSkip: number[] } {
  const ir = compilePolicyText(text, 'hand.pf.conf');
  const ref = new ReferenceEvaluator(ir, { clock: () => 0 });
  const noSkip = new ReferenceEvaluator(ir, { clock: () => 0, skipSteps: false });
  const nat = new NativeEngine({ countEvaluations: true, linearWalk });
  try {
    nat.load(ir);
    for (const p of pkts) {
      ref.evaluate(p);
      noSkip.evaluate(p);
      nat.evaluate(p, 0);
    }
    return {
      ref: ref.counters().map((c) => c.evaluations),
      nat: nat.counters().rules.map((c) => c.evaluations),
      noSkip: noSkip.counters().map((c) => c.evaluations),
    };
  } finally {
    nat.close();
  }
}

describe('native evaluations counter', () => {
  it('skips rules the way pf skip steps do (hand-written)', () => {
    const text = [
      'block in on em0 proto tcp from 10.0.0.0/8 to any port 22',
      'block in on em0 proto tcp from 10.0.0.0/8 to any port 23',
      'block in on em0 proto udp to any port 53',
      'pass out on em1 all',
      'pass out on em1 proto tcp',
      'pass in all no state',
    ].join('\n');
    // In on em1: rule 0 fails on the interface and skips to rule 3 (1 and 2 share em0); rule 3
    // fails on the direction and skips to rule 5 (4 shares `out`).
    const one = run(text, [pkt({})]);
    expect(one.ref).toEqual([1, 0, 0, 1, 0, 1]);
    expect(one.nat).toEqual(one.ref);
    expect(one.noSkip).toEqual([1, 1, 1, 1, 1, 1]);
    // In on em0 from 10.1.2.3 to port 23: rule 0 fails on the port, so rule 1 is next (a port
    // failure skips to the next rule with another port); rule 1 decides (last match: 5 passes).
    const two = run(text, [pkt({ ifname: 'em0', src: '10.1.2.3', dport: 23 })], true);
    expect(two.ref).toEqual([1, 1, 1, 1, 0, 1]);
    expect(two.nat).toEqual(two.ref);
  });

  it('skips over an anchor and stops at a quick anchor like pf (hand-written)', () => {
    const text = [
      'anchor "a" on em0 {\n pass in proto tcp\n block in proto udp\n}',
      'anchor "b" on em0 {\n pass in all\n}',
      'anchor "c" quick on em1 {\n pass in proto tcp\n pass in proto udp\n}',
      'block all',
    ].join('\n');
    const ir = compilePolicyText(text, 'hand.pf.conf');
    const res = run(text, [pkt({}), pkt({ ifname: 'em0', proto: 17, dport: 53, tcpFlags: 0 })]);
    expect(res.nat).toEqual(res.ref);
    // The em1 packet skips anchor b (same interface as a) and the quick anchor c stops the walk:
    // `block all` is evaluated only by the em0 packet.
    const block = ir.rules.find((r) => r.action === 'block' && r.ruleset === '')!;
    expect(res.ref[block.id]).toBe(1);
    const b = ir.rules.find((r) => r.action === 'anchor' && r.call?.targets[0] === 'b')!;
    expect(res.ref[b.id]).toBe(1);
    expect(res.noSkip[b.id]).toBe(2);
  });

  it("tests the rules after a match rule's nat-to on the translated key (hand-written)", () => {
    const text = [
      'match out on em1 nat-to 203.0.113.9',
      'pass out proto tcp from 192.0.2.0/24 to any port 80',
      'pass out proto tcp from 192.0.2.0/24 to any port 81',
      'pass out from 203.0.113.9',
    ].join('\n');
    // After nat-to the source is 203.0.113.9: rule 1 fails on the source and skips rule 2.
    const res = run(text, [pkt({ dir: 'out' })]);
    expect(res.ref).toEqual([1, 1, 0, 1]);
    expect(res.nat).toEqual(res.ref);
  });

  it(`equals the reference on ${TOTAL_PACKETS} random packets over random policies`, () => {
    const base = testSeed('native evaluations');
    const rng = new Rng(base ^ 0x51ed27);
    let packets = 0;
    let policies = 0;
    let total = 0;
    const compare = (seed: number, text: string, ref: ReferenceEvaluator, nat: NativeEngine, at: number): void => {
      const rc = ref.counters();
      const nc = nat.counters().rules;
      expect(nc.length).toBe(rc.length);
      for (let id = 0; id < rc.length; id++) {
        if (nc[id]!.evaluations !== rc[id]!.evaluations) {
          expect.fail(
            `evaluations differ: base seed ${base}, policy seed ${seed}, rule ${id}, after packet ${at}: ` +
              `reference ${rc[id]!.evaluations}, native ${nc[id]!.evaluations}\npolicy:\n${text}`,
          );
        }
        total += rc[id]!.evaluations;
      }
    };
    for (let k = 0; packets < TOTAL_PACKETS; k++) {
      const seed = (base + k * 7919) >>> 0;
      const first = compile(seed);
      if (!first) continue;
      policies++;
      let now = 1_000_000;
      const maxStates = rng.pick([4, 64, 100_000]);
      const linearWalk = rng.chance(0.2);
      const ref = new ReferenceEvaluator(first.ir, { ifaddrs: IFADDRS, groups: GROUPS, clock: () => now, maxStates });
      const nat = new NativeEngine({ maxStates, expireBudget: 0, linearWalk, countEvaluations: true });
      try {
        nat.load(first.ir, { ifaddrs: IFADDRS, groups: GROUPS });
        let text = first.text;
        const pkts = randomPackets(seed, PACKETS_PER_POLICY, randomPolicy(seed, { ifAddresses: seed % 2 === 0 }));
        for (let i = 0; i < pkts.length; i++) {
          if (rng.chance(0.3)) now += rng.pick(STEPS);
          if (i === PACKETS_PER_POLICY / 2 && rng.chance(0.5)) {
            const next = compile((seed ^ 0x9e3779b9) >>> 0);
            if (next) {
              // A reload starts fresh counters on both sides: compare the old ruleset's first.
              compare(seed, text, ref, nat, i);
              ref.reload(next.ir);
              nat.load(next.ir, { ifaddrs: IFADDRS, groups: GROUPS });
              text = next.text;
            }
          }
          ref.evaluate(pkts[i]!);
          nat.evaluate(pkts[i]!, now);
          packets++;
        }
        compare(seed, text, ref, nat, pkts.length);
      } finally {
        nat.close();
      }
    }
    console.log(`[native evaluations] ${packets} packets, ${policies} policies, ${total} evaluations compared`);
    expect(packets).toBeGreaterThanOrEqual(TOTAL_PACKETS);
    expect(total).toBeGreaterThan(packets);
  });

  it('counts nothing unless asked', () => {
    const ir = compilePolicyText('block all\npass in proto tcp', 'off.pf.conf');
    const nat = new NativeEngine();
    try {
      nat.load(ir);
      nat.evaluate(pkt({}), 0);
      expect(nat.counters().rules.map((c) => c.evaluations)).toEqual([0, 0]);
      expect(nat.counters().rules.map((c) => c.matches)).toEqual([1, 1]);
    } finally {
      nat.close();
    }
  });
});
