// Engine layer: the reference evaluator's state table. It models pf's states the way pf.c keys and
// ages them, with no sequence-number tracking: a state has a wire key and a stack key, both ordered
// by the direction the state was created in (so a reply matches and a forwarded copy does not),
// per-peer protocol states driven by TCP flags or by packet counts, and pf's default timeouts. It is
// deliberately a plain Map with linear purges: it is the oracle, not the fast path.
import type { AddressFamily, Direction, IrRule } from '../policy/ir.js';
import { TCP_FLAG_BITS } from '../policy/ir.js';

/** One side of a key, in pf's orientation: `ext` is the source of an inbound packet (the
 *  destination of an outbound one), `int` the other end. */
export interface StateKey {
  extAddr: string;
  extPort: number;
  intAddr: string;
  intPort: number;
}

/** Addresses and ports as a packet carries them. */
export interface Tuple {
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/** pf's TCPS_* values that the flag-only model can reach (pf's numbering, so `>=` compares work). */
export const TCPS = {
  CLOSED: 0,
  SYN_SENT: 2,
  ESTABLISHED: 4,
  CLOSING: 7,
  FIN_WAIT_2: 9,
  TIME_WAIT: 10,
} as const;
/** pf's PFUDPS_* / PFOTHERS_* values. */
export const PEER_SINGLE = 1;
export const PEER_MULTIPLE = 2;

export type TimeoutName =
  | 'tcp.first'
  | 'tcp.opening'
  | 'tcp.established'
  | 'tcp.closing'
  | 'tcp.finwait'
  | 'tcp.closed'
  | 'udp.first'
  | 'udp.single'
  | 'udp.multiple'
  | 'icmp.first'
  | 'icmp.error'
  | 'other.first'
  | 'other.single'
  | 'other.multiple';

/** pf's default timeouts, in seconds (pfctl -st on a stock OpenBSD). */
export const DEFAULT_TIMEOUTS: Readonly<Record<TimeoutName, number>> = {
  'tcp.first': 120,
  'tcp.opening': 30,
  'tcp.established': 86400,
  'tcp.closing': 900,
  'tcp.finwait': 45,
  'tcp.closed': 90,
  'udp.first': 60,
  'udp.single': 30,
  'udp.multiple': 60,
  'icmp.first': 20,
  'icmp.error': 10,
  'other.first': 60,
  'other.single': 30,
  'other.multiple': 60,
};

/** Per-rule counters, pf's set plus `matches` (criteria matched during a walk). */
export interface RuleCounters {
  ruleId: number;
  origin: number;
  evaluations: number;
  matches: number;
  /** [in, out] */
  packets: [number, number];
  bytes: [number, number];
  /** States currently referring to this rule. */
  states: number;
  statesTotal: number;
}

export function newCounters(rule: IrRule): RuleCounters {
  return {
    ruleId: rule.id,
    origin: rule.origin,
    evaluations: 0,
    matches: 0,
    packets: [0, 0],
    bytes: [0, 0],
    states: 0,
    statesTotal: 0,
  };
}

export interface State {
  id: number;
  proto: number;
  af: AddressFamily;
  /** Direction the creating packet travelled. */
  dir: Direction;
  /** Interface the creating packet was seen on. */
  ifname: string;
  /** Set for `state-policy if-bound`: only packets on this interface match. */
  boundIf: string | null;
  wire: StateKey;
  stack: StateKey;
  wireId: string;
  stackId: string;
  rule: IrRule;
  anchorRule: IrRule | null;
  matchRules: IrRule[];
  /** Counter objects of the rule, anchor rule and match rules of the ruleset generation that
   *  created the state: after a reload they keep counting there, as pf's states keep their rule. */
  counterRefs: RuleCounters[];
  generation: number;
  /** [creator side, responder side]: TCPS_* for TCP, PEER_* otherwise. */
  peers: [number, number];
  timeout: TimeoutName;
  lastSeen: number;
  created: number;
  /** [creator -> responder, responder -> creator] */
  packets: [number, number];
  bytes: [number, number];
}

export interface StateView {
  id: number;
  proto: number;
  af: AddressFamily;
  dir: Direction;
  ifname: string;
  boundIf: string | null;
  /** The keys as the creating packet's direction reads them. */
  wire: Tuple;
  stack: Tuple;
  ruleId: number;
  anchorRuleId: number | null;
  matchRuleIds: number[];
  /** Ruleset that held the creating rule, and the load generation (0 = first load). */
  ruleset: string;
  generation: number;
  peers: [string, string];
  timeout: TimeoutName;
  expiresAt: number;
  packets: [number, number];
  bytes: [number, number];
}

export function isIcmp(proto: number): boolean {
  return proto === 1 || proto === 58;
}

/** The key a packet of direction `dir` presents. ICMP keys both ports on the query id. */
export function keyOf(dir: Direction, proto: number, t: Tuple): StateKey {
  const sport = t.sport;
  const dport = isIcmp(proto) ? t.sport : t.dport;
  return dir === 'in'
    ? { extAddr: t.src, extPort: sport, intAddr: t.dst, intPort: dport }
    : { extAddr: t.dst, extPort: dport, intAddr: t.src, intPort: sport };
}

/** The packet that travels in direction `dir` under key `k`. */
export function tupleOf(dir: Direction, k: StateKey): Tuple {
  return dir === 'in'
    ? { src: k.extAddr, sport: k.extPort, dst: k.intAddr, dport: k.intPort }
    : { src: k.intAddr, sport: k.intPort, dst: k.extAddr, dport: k.extPort };
}

export function keyId(proto: number, af: AddressFamily, k: StateKey): string {
  return `${proto}|${af}|${k.extAddr}|${k.extPort}|${k.intAddr}|${k.intPort}`;
}

function timeoutOf(st: State): TimeoutName {
  const [a, b] = st.peers;
  if (st.proto === 6) {
    // pf_tcp_track_full's timeout ladder, in its order.
    if (a >= TCPS.FIN_WAIT_2 && b >= TCPS.FIN_WAIT_2) return 'tcp.closed';
    if (a >= TCPS.CLOSING && b >= TCPS.CLOSING) return 'tcp.finwait';
    if (a < TCPS.ESTABLISHED || b < TCPS.ESTABLISHED) return 'tcp.opening';
    if (a >= TCPS.CLOSING || b >= TCPS.CLOSING) return 'tcp.closing';
    return 'tcp.established';
  }
  if (isIcmp(st.proto)) return 'icmp.error';
  const multiple = a === PEER_MULTIPLE && b === PEER_MULTIPLE;
  if (st.proto === 17) return multiple ? 'udp.multiple' : 'udp.single';
  return multiple ? 'other.multiple' : 'other.single';
}

const TCP_NAMES: Record<number, string> = {
  0: 'CLOSED',
  2: 'SYN_SENT',
  4: 'ESTABLISHED',
  7: 'CLOSING',
  9: 'FIN_WAIT_2',
  10: 'TIME_WAIT',
};
const PEER_NAMES: Record<number, string> = { 0: 'NO_TRAFFIC', 1: 'SINGLE', 2: 'MULTIPLE' };

export function peerName(proto: number, v: number): string {
  return (proto === 6 ? TCP_NAMES[v] : PEER_NAMES[v]) ?? String(v);
}

export class StateTable {
  readonly #wire = new Map<string, State[]>();
  readonly #stack = new Map<string, State[]>();
  readonly #all = new Map<number, State>();
  #nextId = 1;
  readonly #timeouts: Readonly<Record<TimeoutName, number>>;

  constructor(timeouts: Readonly<Record<TimeoutName, number>> = DEFAULT_TIMEOUTS) {
    this.#timeouts = timeouts;
  }

  get size(): number {
    return this.#all.size;
  }

  expiresAt(st: State): number {
    return st.lastSeen + this.#timeouts[st.timeout] * 1000;
  }

  isExpired(st: State, now: number): boolean {
    return now >= this.expiresAt(st);
  }

  /** pf_find_state: inbound packets are looked up by the wire key, outbound by the stack key;
   *  floating states match on any interface. Expired states found on the way are removed. */
  find(dir: Direction, proto: number, af: AddressFamily, t: Tuple, ifname: string, now: number): State | null {
    const id = keyId(proto, af, keyOf(dir, proto, t));
    const list = (dir === 'in' ? this.#wire : this.#stack).get(id);
    if (!list) return null;
    // pf keeps if-bound states ahead of floating ones on a key, each group oldest first.
    let floating: State | null = null;
    for (const st of [...list]) {
      if (this.isExpired(st, now)) {
        this.remove(st);
        continue;
      }
      if (st.boundIf === ifname) return st;
      if (st.boundIf === null && !floating) floating = st;
    }
    return floating;
  }

  /** True when some live state already uses this wire key (NAT port allocation avoids it). An
   *  expired state that no lookup has removed yet owns nothing, so the port choice does not
   *  depend on when dead states happen to be freed. */
  wireKeyUsed(proto: number, af: AddressFamily, k: StateKey, now: number): boolean {
    const list = this.#wire.get(keyId(proto, af, k));
    return list !== undefined && list.some((st) => !this.isExpired(st, now));
  }

  /** pf_state_key_attach's collision test: a live state created in the same direction already
   *  owns the new state's wire or stack key (only translations can cause it: lookup comes first).
   *  A fully closed TCP state gives way, as in pf; otherwise the insert must fail. */
  collides(
    proto: number,
    af: AddressFamily,
    dir: Direction,
    boundIf: string | null,
    wire: StateKey,
    stack: StateKey,
    now: number,
  ): boolean {
    for (const [index, k] of [
      [this.#wire, wire],
      [this.#stack, stack],
    ] as const) {
      for (const st of [...(index.get(keyId(proto, af, k)) ?? [])]) {
        if (this.isExpired(st, now)) {
          this.remove(st);
          continue;
        }
        if (st.dir !== dir) continue;
        if (st.boundIf !== null && boundIf !== null && st.boundIf !== boundIf) continue;
        if (st.proto === 6 && st.peers[0] >= TCPS.FIN_WAIT_2 && st.peers[1] >= TCPS.FIN_WAIT_2) {
          this.remove(st);
          continue;
        }
        return true;
      }
    }
    return false;
  }

  insert(init: Omit<State, 'id' | 'wireId' | 'stackId' | 'peers' | 'timeout' | 'lastSeen' | 'created' | 'packets' | 'bytes'>, now: number): State {
    const isTcp = init.proto === 6;
    const st: State = {
      ...init,
      id: this.#nextId++,
      wireId: keyId(init.proto, init.af, init.wire),
      stackId: keyId(init.proto, init.af, init.stack),
      // pf_create_state: the creator is SYN_SENT (TCP) or SINGLE, the responder has sent nothing.
      peers: isTcp ? [TCPS.SYN_SENT, TCPS.CLOSED] : [PEER_SINGLE, 0],
      timeout: isTcp ? 'tcp.first' : init.proto === 17 ? 'udp.first' : isIcmp(init.proto) ? 'icmp.first' : 'other.first',
      lastSeen: now,
      created: now,
      packets: [0, 0],
      bytes: [0, 0],
    };
    push(this.#wire, st.wireId, st);
    push(this.#stack, st.stackId, st);
    this.#all.set(st.id, st);
    // pf_create_state counts the state on its rule, its anchor rule and its match rules alike.
    for (const c of st.counterRefs) {
      c.states++;
      c.statesTotal++;
    }
    return st;
  }

  remove(st: State): void {
    if (!this.#all.delete(st.id)) return;
    pull(this.#wire, st.wireId, st);
    pull(this.#stack, st.stackId, st);
    for (const c of st.counterRefs) c.states--;
  }

  /** Advances the per-peer states for one packet that matched `st` (pf_tcp_track_full without the
   *  sequence windows, pf_test_state_other/icmp), and refreshes its expiry. */
  track(st: State, fromCreator: boolean, tcpFlags: number, now: number): void {
    const s = fromCreator ? 0 : 1;
    const d = 1 - s;
    const p = st.peers;
    if (st.proto === 6) {
      // First packet from this end (pf: src->seqlo == 0) puts it in SYN_SENT.
      if (p[s]! < TCPS.SYN_SENT) p[s] = TCPS.SYN_SENT;
      if (tcpFlags & TCP_FLAG_BITS.F && p[s]! < TCPS.CLOSING) p[s] = TCPS.CLOSING;
      if (tcpFlags & TCP_FLAG_BITS.A) {
        if (p[d] === TCPS.SYN_SENT) p[d] = TCPS.ESTABLISHED;
        else if (p[d] === TCPS.CLOSING) p[d] = TCPS.FIN_WAIT_2;
      }
      if (tcpFlags & TCP_FLAG_BITS.R) p[s] = p[d] = TCPS.TIME_WAIT;
    } else if (!isIcmp(st.proto)) {
      if (p[s]! < PEER_SINGLE) p[s] = PEER_SINGLE;
      if (p[d] === PEER_SINGLE) p[d] = PEER_MULTIPLE;
    }
    st.timeout = timeoutOf(st);
    st.lastSeen = now;
  }

  /** Removes every expired state; returns how many. */
  purge(now: number): number {
    let n = 0;
    for (const st of [...this.#all.values()]) {
      if (this.isExpired(st, now)) {
        this.remove(st);
        n++;
      }
    }
    return n;
  }

  values(): State[] {
    return [...this.#all.values()];
  }
}

function push(m: Map<string, State[]>, k: string, st: State): void {
  const l = m.get(k);
  if (l) l.push(st);
  else m.set(k, [st]);
}

function pull(m: Map<string, State[]>, k: string, st: State): void {
  const l = m.get(k);
  if (!l) return;
  const i = l.indexOf(st);
  if (i >= 0) l.splice(i, 1);
  if (l.length === 0) m.delete(k);
}

export function viewOf(table: StateTable, st: State): StateView {
  return {
    id: st.id,
    proto: st.proto,
    af: st.af,
    dir: st.dir,
    ifname: st.ifname,
    boundIf: st.boundIf,
    wire: tupleOf(st.dir, st.wire),
    stack: tupleOf(st.dir, st.stack),
    ruleId: st.rule.id,
    anchorRuleId: st.anchorRule?.id ?? null,
    matchRuleIds: st.matchRules.map((r) => r.id),
    ruleset: st.rule.ruleset,
    generation: st.generation,
    peers: [peerName(st.proto, st.peers[0]), peerName(st.proto, st.peers[1])],
    timeout: st.timeout,
    expiresAt: table.expiresAt(st),
    packets: [...st.packets],
    bytes: [...st.bytes],
  };
}
