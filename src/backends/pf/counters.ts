// Backend layer (pf): per-policy counters from a loaded kernel. The kernel counts per kernel rule;
// the policy counts per written statement (IR origin), which the compiler expanded into several
// rules and we may have expanded further (addresses resolved at load). This maps the kernel's
// numbers back: kernel rule -> IR rule (from the same encoding the load used) -> origin, summing
// on the way, so `evaluations`, packets and bytes of `pass in on { a b } ...` are one figure.
import type { InterfaceAddressMap, Ir } from '../../policy/ir.js';
import type { PfRelease } from './abi/releases.js';
import { planLoad, readCounters, type IoctlDevice, type IrRuleCounters, type PlanScope, type ReadCountersOptions } from './plan.js';

export interface OriginCounters extends IrRuleCounters {
  origin: number;
  /** The written statement (canonical pf text). */
  text: string;
  /** IR rules summed into this origin. */
  rules: number[];
}

export interface PolicyCounters {
  byRule: Map<number, IrRuleCounters>;
  byOrigin: Map<number, OriginCounters>;
}

export interface PolicyCountersOptions extends ReadCountersOptions {
  release: PfRelease;
  scope?: PlanScope;
  addressMap?: InterfaceAddressMap;
  anchorRoot?: string;
}

/** Reads the counters of a policy loaded with the same options, per IR rule and per origin. */
export function readPolicyCounters(ir: Ir, device: IoctlDevice, opts: PolicyCountersOptions): PolicyCounters {
  // The plan is only used for its kernel-rule map: nothing is sent but the counter reads.
  const plan = planLoad(ir, { release: opts.release, scope: opts.scope, addressMap: opts.addressMap, anchorRoot: opts.anchorRoot });
  const byRule = readCounters(plan, device, opts);
  const byOrigin = new Map<number, OriginCounters>();
  for (const [id, c] of byRule) {
    const rule = ir.rules[id]!;
    const o = byOrigin.get(rule.origin);
    if (!o) {
      byOrigin.set(rule.origin, {
        ...c,
        packets: [...c.packets],
        bytes: [...c.bytes],
        origin: rule.origin,
        text: ir.origins[rule.origin]?.text ?? rule.text,
        rules: [id],
      });
    } else {
      o.evaluations += c.evaluations;
      o.packets = [o.packets[0] + c.packets[0], o.packets[1] + c.packets[1]];
      o.bytes = [o.bytes[0] + c.bytes[0], o.bytes[1] + c.bytes[1]];
      o.statesCur += c.statesCur;
      o.kernelRules += c.kernelRules;
      o.rules.push(id);
    }
  }
  return { byRule, byOrigin };
}
