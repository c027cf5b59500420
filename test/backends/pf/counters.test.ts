// Per-policy counters: kernel rule counters summed per IR rule and per written statement (origin)
// for a policy compiled from pf.conf text, loaded into the simulated kernel.
import { describe, expect, it } from 'vitest';
import { getRelease } from '../../../src/backends/pf/abi/releases.js';
import { readPolicyCounters } from '../../../src/backends/pf/counters.js';
import { executePlan, planLoad } from '../../../src/backends/pf/plan.js';
import { SimulatedPfDevice } from '../../../src/backends/pf/sim-device.js';
import { compilePf } from '../../../src/policy/compile.js';

const R = getRelease('pfvar-1.543');

describe('readPolicyCounters', () => {
  it('sums the expansion of one written statement', () => {
    const text = 'block all\npass in on { em0 em1 } inet proto tcp to port { 22 443 }\nanchor "t1" {\n  pass out all\n}\n';
    const ir = compilePf({ units: [{ file: 'c.pf.conf', text, ruleset: '' }] });
    const dev = new SimulatedPfDevice(R);
    executePlan(planLoad(ir, { release: R }), dev);
    const expanded = ir.rules.filter((r) => r.origin === ir.rules[1]!.origin);
    expect(expanded).toHaveLength(4);
    expanded.forEach((r, i) => dev.setCounters('', r.nr, { evaluations: 10n, packets: [BigInt(i), 1n], bytes: [100n, 0n], statesCur: 1 }));
    const t1 = ir.rules.find((r) => r.ruleset === 't1')!;
    dev.setCounters('t1', t1.nr, { evaluations: 3n });
    const c = readPolicyCounters(ir, dev, { release: R });
    const o = c.byOrigin.get(ir.rules[1]!.origin)!;
    expect([o.evaluations, o.packets, o.bytes, o.statesCur, o.kernelRules, o.rules]).toEqual([40n, [6n, 4n], [400n, 0n], 4, 4, expanded.map((r) => r.id)]);
    expect(o.text).toMatch(/^pass in on \{ em0 em1 \}/);
    expect(c.byOrigin.get(t1.origin)!.evaluations).toBe(3n);
    expect(c.byRule.get(0)!.evaluations).toBe(0n);
    expect(dev.cursors.size).toBe(0);
  });
});
