// Engine layer: the packet and verdict shapes shared by the reference evaluator, the native engine
// wrapper, the `test` command and the kernel equivalence tests. A packet here is already parsed
// (the native engine parses frames itself and reports the same fields).
import type { AddressFamily, Direction } from '../policy/ir.js';

export interface EvalPacket {
  dir: Direction;
  /** Interface the packet is seen on (ingress for `in`, egress for `out`). */
  ifname: string;
  af: AddressFamily;
  /** IP protocol number: 6 tcp, 17 udp, 1 icmp, 58 icmp6, ... */
  proto: number;
  src: string;
  dst: string;
  /** 0 when the protocol has no ports. For ICMP echo, pf keys states on the echo id: pass it as
   *  sport (and dport 0); the `test` grammar has no id, so it is 0 there. */
  sport: number;
  dport: number;
  /** TCP flag bits (TCP_FLAG_BITS); 0 for other protocols. */
  tcpFlags: number;
  icmpType?: number;
  icmpCode?: number;
  /** 802.1Q VLAN id and VXLAN VNI seen on the outer frame, when any (tenant classification). */
  vlan?: number;
  vni?: number;
  /** Bytes on the wire, for counters; 64 when unknown. */
  length?: number;
}

export type EvalReason =
  | 'rule' // a rule decided (ruleId set)
  | 'state' // an existing state matched; ruleId = the rule that created it
  | 'default' // no rule decided: pass without state
  | 'skip' // `set skip on` interface
  | 'normalize' // dropped before state lookup (UDP port 0, illegal TCP flags)
  | 'state-limit'; // a stateful pass could not create its state (table full): dropped

export interface EvalResult {
  verdict: 'pass' | 'block';
  reason: EvalReason;
  /** Deciding rule id (IR.rules index), or the state's creating rule; null otherwise. */
  ruleId: number | null;
  /** The anchor rule through which the deciding rule was reached (pf's `am`), if any. */
  anchorRuleId: number | null;
  /** Match rules whose options applied, in order. */
  matchRuleIds: number[];
  stateCreated: boolean;
  /** Block with return semantics: TCP gets RST, others ICMP/ICMPv6 unreachable. */
  returnAction: 'rst' | 'icmp-unreach' | null;
  /** Tenant the packet was classified to (tenant map), or null. */
  tenant: string | null;
  /** Addresses after nat-to/rdr-to, when a translation applied. */
  translated: { src: string; sport: number; dst: string; dport: number } | null;
}
