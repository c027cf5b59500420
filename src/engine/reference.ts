// Engine layer: the reference evaluator — the oracle every other enforcement path (native engine,
// nftables, pf) is tested against. It walks the rule IR exactly as pf.c does (skip interfaces,
// normalisation drops, state lookup first, last-match-wins walk with quick, sticky match rules and
// anchors, skip steps for the evaluation counters), keeps pf-like states with an injectable clock,
// and counts per rule. Clarity beats speed here: each pf rule is a small readable function, and
// docs/semantics.md explains every choice the pf sources left open.
import { ZtbError } from '../errors.js';
import type {
  AddrMatch,
  DynIfMode,
  HostSpec,
  InterfaceAddressMap,
  Ir,
  IrRule,
  PortMatch,
  Redirect,
} from '../policy/ir.js';
import { TCP_FLAG_BITS } from '../policy/ir.js';
import type { EvalPacket, EvalResult } from './packet.js';
import {
  addrBits,
  formatAddr,
  maskOf,
  parseAddrMemo,
  parseCidr,
  prefixContains,
  toNumPrefix,
  type NumPrefix,
  type ParsedAddr,
} from './reference-addr.js';
import {
  isIcmp,
  keyOf,
  newCounters,
  StateTable,
  TCPS,
  tupleOf,
  viewOf,
  type RuleCounters,
  type State,
  type StateKey,
  type StateView,
  type Tuple,
} from './state-table.js';
import { TenantMap } from './tenant-map.js';

export type { RuleCounters, StateView } from './state-table.js';

export interface EvaluatorOptions {
  /** For (if), (if:network), (if:0), bare IF and `self`. */
  ifaddrs?: InterfaceAddressMap;
  /** Interface groups, merged with ir.groups; every interface is a member of its own name's group. */
  groups?: Record<string, string[]>;
  /** Milliseconds; default Date.now. */
  clock?: () => number;
  /** Default 100_000; when full, a stateful pass is dropped with reason 'state-limit'. */
  maxStates?: number;
  /** pf's skip steps (default true). Off, every rule is visited: verdicts must not change, only
   *  `evaluations` — the property tests compare both. */
  skipSteps?: boolean;
}

/** Evaluator-wide counters (pf's pf_status counters that matter here). */
export interface EvaluatorStats {
  packets: number;
  skipped: number;
  normalizeDrops: number;
  stateMatches: number;
  statesCreated: number;
  stateLimitDrops: number;
  /** New states refused because a same-direction state owns one of their keys (pf's STATEINS). */
  stateInsertFailures: number;
  anchorOverflowDrops: number;
  translationFailures: number;
}

/** A packet the evaluator cannot interpret (bad address, family mismatch, port out of range). */
export class PacketError extends ZtbError {
  constructor(message: string) {
    super('ERR_ZTB_PACKET', message);
  }
}

/** pf's PF_ANCHOR_STACK_MAX. */
export const MAX_ANCHOR_DEPTH = 64;
/** pf's default nat-to proxy port range. */
export const NAT_PORT_LO = 50001;
export const NAT_PORT_HI = 65535;
export const DEFAULT_MAX_STATES = 100_000;

/** Criteria with skip steps, in pf_match_rule's order (PF_SKIP_* without RDOM). */
const SKIP_IFP = 0;
const SKIP_DIR = 1;
const SKIP_AF = 2;
const SKIP_PROTO = 3;
const SKIP_SRC_ADDR = 4;
const SKIP_DST_ADDR = 5;
const SKIP_SRC_PORT = 6;
const SKIP_DST_PORT = 7;
const N_SKIP = 8;
/** A failure on a criterion without skip steps (flags, icmp-type): go to the next rule. */
const FAIL_NEXT = N_SKIP;

/** The packet being walked; addresses/ports change when a translation applies. */
interface WorkPacket {
  dir: 'in' | 'out';
  ifname: string;
  af: 'inet' | 'inet6';
  proto: number;
  src: ParsedAddr;
  dst: ParsedAddr;
  sport: number;
  dport: number;
  tcpFlags: number;
  icmpType: number | undefined;
  icmpCode: number | undefined;
}

type WalkRv = 'ok' | 'quick' | 'fail';

interface WalkCtx {
  pkt: WorkPacket;
  decision: IrRule | null;
  /** Anchor rule through which `decision` was reached (pf's `am`). */
  decisionAnchor: IrRule | null;
  matchRules: IrRule[];
  depth: number;
  /** Set when the walk aborted (anchor overflow, translation without an address). */
  failRule: IrRule | null;
  failKind: 'anchor' | 'translation' | null;
}

/** Everything derived from one loaded IR. */
interface Loaded {
  ir: Ir;
  generation: number;
  counters: RuleCounters[];
  /** ruleset path -> per position -> skip target position for each skip criterion. */
  skips: Map<string, Int32Array[]>;
  tables: Map<string, { neg: boolean; p: NumPrefix }[]>;
  groups: Map<string, Set<string>>;
  tenants: TenantMap;
  /** Round-robin cursors for translation pools, per rule id. */
  rr: Map<number, number>;
}

/** Parsed prefixes, per IR prefix object (the IR is immutable once loaded). */
const prefixCache = new WeakMap<object, NumPrefix>();
function numPrefix(p: Parameters<typeof toNumPrefix>[0]): NumPrefix {
  let n = prefixCache.get(p);
  if (!n) {
    n = toNumPrefix(p);
    prefixCache.set(p, n);
  }
  return n;
}

/** pf_icmp_mapping's error types (the ones it relates to an inner packet's state). */
const ICMP4_ERRORS = new Set([3, 4, 5, 11, 12]);
const ICMP6_ERRORS = new Set([1, 2, 3, 4, 137]);
function isIcmpError(p: EvalPacket): boolean {
  if (p.icmpType === undefined) return false;
  if (p.proto === 1) return ICMP4_ERRORS.has(p.icmpType);
  if (p.proto === 58) return ICMP6_ERRORS.has(p.icmpType);
  return false;
}

function portful(proto: number): boolean {
  return proto === 6 || proto === 17;
}

export function portMatches(m: PortMatch, p: number): boolean {
  switch (m.op) {
    case '=':
      return p === m.lo;
    case '!=':
      return p !== m.lo;
    case '<':
      return p < m.lo;
    case '<=':
      return p <= m.lo;
    case '>':
      return p > m.lo;
    case '>=':
      return p >= m.lo;
    case ':':
      return m.lo <= p && p <= m.hi;
    case '><':
      return m.lo < p && p < m.hi;
    case '<>':
      return p < m.lo || p > m.hi;
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** pf_calc_skip_steps: for each rule and criterion, the first later rule whose value for that
 *  criterion differs (rules in between would fail the same test). */
function calcSkips(rules: IrRule[]): Int32Array[] {
  const n = rules.length;
  const out = rules.map(() => new Int32Array(N_SKIP).fill(n));
  const key = (r: IrRule, c: number): unknown => {
    switch (c) {
      case SKIP_IFP:
        return r.iface;
      case SKIP_DIR:
        return r.dir;
      case SKIP_AF:
        return r.af;
      case SKIP_PROTO:
        return r.proto;
      case SKIP_SRC_ADDR:
        return r.src;
      case SKIP_DST_ADDR:
        return r.dst;
      case SKIP_SRC_PORT:
        return r.srcPort;
      default:
        return r.dstPort;
    }
  };
  for (let c = 0; c < N_SKIP; c++) {
    for (let i = 0; i < n; i++) {
      let j = i + 1;
      while (j < n && sameJson(key(rules[j]!, c), key(rules[i]!, c))) j++;
      out[i]![c] = j;
    }
  }
  return out;
}

export class ReferenceEvaluator {
  #loaded: Loaded;
  readonly #opts: EvaluatorOptions;
  readonly #clock: () => number;
  /** The clock reading of the packet being evaluated (NAT port search needs it). */
  #now = 0;
  readonly #maxStates: number;
  readonly #states = new StateTable();
  /** Resolved interface addresses, per "ifname|mode". */
  readonly #ifCache = new Map<string, NumPrefix[]>();
  readonly #stats: EvaluatorStats = {
    packets: 0,
    skipped: 0,
    normalizeDrops: 0,
    stateMatches: 0,
    statesCreated: 0,
    stateLimitDrops: 0,
    stateInsertFailures: 0,
    anchorOverflowDrops: 0,
    translationFailures: 0,
  };

  constructor(ir: Ir, opts: EvaluatorOptions = {}) {
    this.#opts = opts;
    this.#clock = opts.clock ?? Date.now;
    this.#maxStates = opts.maxStates ?? DEFAULT_MAX_STATES;
    if (!Number.isInteger(this.#maxStates) || this.#maxStates < 0) {
      throw new RangeError(`maxStates must be a non-negative integer, got ${this.#maxStates}`);
    }
    for (const [ifname, cidrs] of Object.entries(opts.ifaddrs ?? {})) {
      for (const c of cidrs) {
        if (!parseCidr(c)) throw new PacketError(`interface ${ifname}: bad address '${c}' (want ADDR/LEN)`);
      }
    }
    this.#loaded = this.#load(ir, 0);
  }

  /** Replaces the ruleset. States survive and keep their creating rules of the old ruleset. */
  reload(ir: Ir): void {
    this.#loaded = this.#load(ir, this.#loaded.generation + 1);
  }

  get ir(): Ir {
    return this.#loaded.ir;
  }

  #load(ir: Ir, generation: number): Loaded {
    const skips = new Map<string, Int32Array[]>();
    for (const [path, rs] of Object.entries(ir.rulesets)) {
      skips.set(path, calcSkips(rs.rules.map((id) => ir.rules[id]!)));
    }
    const tables = new Map<string, { neg: boolean; p: NumPrefix }[]>();
    for (const [name, t] of Object.entries(ir.tables)) {
      tables.set(name, t.entries.map((e) => ({ neg: e.neg, p: toNumPrefix(e.prefix) })));
    }
    const groups = new Map<string, Set<string>>();
    for (const src of [ir.groups, this.#opts.groups ?? {}]) {
      for (const [g, members] of Object.entries(src)) {
        const s = groups.get(g) ?? new Set<string>();
        for (const m of members) s.add(m);
        groups.set(g, s);
      }
    }
    return {
      ir,
      generation,
      counters: ir.rules.map(newCounters),
      skips,
      tables,
      groups,
      tenants: new TenantMap(ir.tenants),
      rr: new Map(),
    };
  }

  /** Interface membership: the name itself or a group containing it. */
  #inIface(ifname: string, name: string): boolean {
    return ifname === name || (this.#loaded.groups.get(name)?.has(ifname) ?? false);
  }

  /** Interfaces a name stands for: a group's members plus the name itself. */
  #ifMembers(name: string): string[] {
    const out = new Set<string>([name]);
    for (const m of this.#loaded.groups.get(name) ?? []) out.add(m);
    return [...out];
  }

  /** The prefixes an interface-derived address stands for; [] when it cannot be resolved. */
  #ifPrefixes(ifname: string, mode: DynIfMode): NumPrefix[] {
    const cacheKey = `${this.#loaded.generation}|${ifname}|${mode}`;
    const hit = this.#ifCache.get(cacheKey);
    if (hit) return hit;
    const map = this.#opts.ifaddrs ?? {};
    const names = ifname === 'self' ? Object.keys(map) : this.#ifMembers(ifname);
    const out: NumPrefix[] = [];
    for (const n of names) {
      const seenAf = new Set<string>();
      for (const c of map[n] ?? []) {
        const cidr = parseCidr(c)!;
        const af = cidr.addr.af;
        const bits = addrBits(af);
        const mask = maskOf(af, cidr.len);
        switch (mode) {
          case 'address':
            out.push({ af, value: cidr.addr.value, len: bits });
            break;
          case 'primary':
            // pf's NOALIAS: the first address of each family only.
            if (!seenAf.has(af)) out.push({ af, value: cidr.addr.value, len: bits });
            break;
          case 'network':
            out.push({ af, value: cidr.addr.value & mask, len: cidr.len });
            break;
          case 'broadcast':
            if (af === 'inet' && cidr.len <= 30) {
              out.push({ af, value: (cidr.addr.value & mask) | (~mask & 0xffffffffn), len: bits });
            }
            break;
          case 'peer':
            // The address map carries no point-to-point peers: (if:peer) stays unresolved.
            break;
        }
        seenAf.add(af);
      }
    }
    this.#ifCache.set(cacheKey, out);
    return out;
  }

  #hostMatches(h: HostSpec, a: ParsedAddr): boolean {
    switch (h.type) {
      case 'any':
        return true;
      case 'prefix':
        return prefixContains(numPrefix(h.prefix), a);
      case 'table': {
        // Longest prefix match decides; a `!` entry as the longest match means "not in the table".
        let best: { neg: boolean; p: NumPrefix } | null = null;
        for (const e of this.#loaded.tables.get(h.name) ?? []) {
          if (!prefixContains(e.p, a)) continue;
          if (!best || e.p.len > best.p.len || (e.p.len === best.p.len && e.neg)) best = e;
        }
        return best !== null && !best.neg;
      }
      case 'dynif':
        return this.#ifPrefixes(h.ifname, h.mode).some((p) => prefixContains(p, a));
      case 'ifaddr':
        return this.#ifPrefixes(h.ifname, 'address').some((p) => prefixContains(p, a));
      case 'none':
        return false;
    }
  }

  /** pf's PF_MISMATCHAW inverted: the host test, then `!`. */
  #addrMatches(m: AddrMatch, a: ParsedAddr): boolean {
    return this.#hostMatches(m.host, a) !== m.neg;
  }

  /** Tests a rule's criteria in pf_match_rule's order; returns -1 on a match, otherwise the
   *  failed criterion (a skip-step index, or FAIL_NEXT). */
  #firstFailure(r: IrRule, p: WorkPacket): number {
    if (r.iface && this.#inIface(p.ifname, r.iface.name) === r.iface.neg) return SKIP_IFP;
    if (r.dir !== null && r.dir !== p.dir) return SKIP_DIR;
    if (r.af !== null && r.af !== p.af) return SKIP_AF;
    if (r.proto !== null && r.proto !== p.proto) return SKIP_PROTO;
    if (!this.#addrMatches(r.src, p.src)) return SKIP_SRC_ADDR;
    if (!this.#addrMatches(r.dst, p.dst)) return SKIP_DST_ADDR;
    // pf tests TCP flags before the ports (a flags failure goes to the next rule).
    if (r.flags && p.proto === 6 && (p.tcpFlags & r.flags.mask) !== r.flags.bits) return FAIL_NEXT;
    if (r.srcPort && !(portful(p.proto) && portMatches(r.srcPort, p.sport))) return SKIP_SRC_PORT;
    if (r.dstPort && !(portful(p.proto) && portMatches(r.dstPort, p.dport))) return SKIP_DST_PORT;
    if (r.icmpType) {
      if (!isIcmp(p.proto) || p.icmpType !== r.icmpType.type) return FAIL_NEXT;
      if (r.icmpType.code !== null && p.icmpCode !== r.icmpType.code) return FAIL_NEXT;
    }
    return -1;
  }

  /** pf_match_rule over one ruleset. */
  #walk(path: string, anchorRule: IrRule | null, ctx: WalkCtx): WalkRv {
    const L = this.#loaded;
    const rs = L.ir.rulesets[path];
    if (!rs) return 'ok';
    const skips = L.skips.get(path)!;
    let i = 0;
    while (i < rs.rules.length) {
      const r = L.ir.rules[rs.rules[i]!]!;
      L.counters[r.id]!.evaluations++;
      const failed = this.#firstFailure(r, ctx.pkt);
      if (failed >= 0) {
        i = failed === FAIL_NEXT || this.#opts.skipSteps === false ? i + 1 : skips[i]![failed]!;
        continue;
      }
      L.counters[r.id]!.matches++;
      if (r.action === 'anchor') {
        if (ctx.depth >= MAX_ANCHOR_DEPTH) {
          ctx.failRule = r;
          ctx.failKind = 'anchor';
          return 'fail';
        }
        ctx.depth++;
        let rv: WalkRv = 'ok';
        for (const target of r.call?.targets ?? []) {
          rv = this.#walk(target, r, ctx);
          if (rv !== 'ok') break;
        }
        ctx.depth--;
        // A quick anchor ends the walk only when the decision came from a rule directly inside
        // its target (pf: `*ctx->am == r`). pf_step_into_anchor applies that test to plain
        // anchors only: for a wildcard `anchor "t/*" quick` only a quick rule inside stops it.
        if (rv === 'ok' && r.quick && !r.call?.wildcard && ctx.decision !== null && ctx.decisionAnchor === r) rv = 'quick';
        if (rv !== 'ok') return rv;
      } else if (r.action === 'match') {
        if (!this.#translate(r, ctx)) return 'fail';
        ctx.matchRules.push(r);
        if (r.quick) return 'quick';
      } else {
        ctx.decision = r;
        ctx.decisionAnchor = anchorRule;
        if (r.quick) return 'quick';
      }
      i++;
    }
    return 'ok';
  }

  /** Pool addresses of a redirect for the packet's family, in written order. */
  #poolAddrs(red: Redirect, af: 'inet' | 'inet6'): ParsedAddr[] {
    const out: ParsedAddr[] = [];
    for (const h of red.hosts) {
      let prefixes: NumPrefix[] = [];
      if (h.type === 'prefix') prefixes = [numPrefix(h.prefix)];
      else if (h.type === 'table') prefixes = (this.#loaded.tables.get(h.name) ?? []).filter((e) => !e.neg).map((e) => e.p);
      else if (h.type === 'dynif') prefixes = this.#ifPrefixes(h.ifname, h.mode === 'network' ? 'address' : h.mode);
      else if (h.type === 'ifaddr') prefixes = this.#ifPrefixes(h.ifname, 'address');
      // pf's PF_POOL_NONE uses the pool address as written (a network's base address).
      for (const p of prefixes) if (p.af === af) out.push({ af, value: p.value });
    }
    return out;
  }

  #pick(r: IrRule, red: Redirect, af: 'inet' | 'inet6'): ParsedAddr | null {
    const pool = this.#poolAddrs(red, af);
    if (pool.length === 0) return null;
    if (pool.length === 1) return pool[0]!;
    const n = this.#loaded.rr.get(r.id) ?? 0;
    this.#loaded.rr.set(r.id, n + 1);
    return pool[n % pool.length]!;
  }

  /** Applies a rule's nat-to / rdr-to to the walking packet; false if a pool had no address. */
  #translate(r: IrRule, ctx: WalkCtx): boolean {
    const p = ctx.pkt;
    if (r.rdrTo) {
      const a = this.#pick(r, r.rdrTo, p.af);
      if (!a) return this.#translationFailed(r, ctx);
      p.dst = a;
      if (r.rdrTo.port && portful(p.proto)) {
        const { lo, hi } = r.rdrTo.port;
        if (hi > lo && r.dstPort) {
          // pf maps a port range onto the redirect range by offset from the rule's first port.
          const span = hi - lo + 1;
          p.dport = ((((p.dport - r.dstPort.lo) % span) + span) % span) + lo;
        } else {
          p.dport = lo;
        }
      }
    }
    if (r.natTo) {
      const a = this.#pick(r, r.natTo, p.af);
      if (!a) return this.#translationFailed(r, ctx);
      p.src = a;
      if (portful(p.proto)) p.sport = this.#natPort(p);
    }
    return true;
  }

  #translationFailed(r: IrRule, ctx: WalkCtx): false {
    ctx.failRule = r;
    ctx.failKind = 'translation';
    return false;
  }

  /** pf picks a random free port in 50001-65535; the oracle takes the lowest free one so runs
   *  are reproducible. "Free" = no live state owns the resulting wire key. */
  #natPort(p: WorkPacket): number {
    const t: Tuple = { src: formatAddr(p.src), sport: 0, dst: formatAddr(p.dst), dport: p.dport };
    for (let port = NAT_PORT_LO; port <= NAT_PORT_HI; port++) {
      t.sport = port;
      if (!this.#states.wireKeyUsed(p.proto, p.af, keyOf(p.dir, p.proto, t), this.#now)) return port;
    }
    return NAT_PORT_LO;
  }

  #validate(pkt: EvalPacket): { src: ParsedAddr; dst: ParsedAddr; srcText: string; dstText: string } {
    const s = parseAddrMemo(pkt.src);
    const d = parseAddrMemo(pkt.dst);
    if (!s) throw new PacketError(`bad source address '${pkt.src}'`);
    if (!d) throw new PacketError(`bad destination address '${pkt.dst}'`);
    const src = s.addr;
    const dst = d.addr;
    if (src.af !== pkt.af || dst.af !== pkt.af) throw new PacketError(`addresses do not belong to ${pkt.af}`);
    if (pkt.dir !== 'in' && pkt.dir !== 'out') throw new PacketError(`bad direction '${String(pkt.dir)}'`);
    if (!Number.isInteger(pkt.proto) || pkt.proto < 0 || pkt.proto > 255) throw new PacketError(`bad protocol ${pkt.proto}`);
    for (const [n, v] of [
      ['sport', pkt.sport],
      ['dport', pkt.dport],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 65535) throw new PacketError(`${n} ${v} out of range 0-65535`);
    }
    if (!Number.isInteger(pkt.tcpFlags) || pkt.tcpFlags < 0 || pkt.tcpFlags > 255) {
      throw new PacketError(`bad TCP flags ${pkt.tcpFlags}`);
    }
    for (const [n, v, max] of [
      ['length', pkt.length, 65535 + 65535],
      ['vlan', pkt.vlan, 4095],
      ['vni', pkt.vni, 0xffffff],
      ['icmpType', pkt.icmpType, 255],
      ['icmpCode', pkt.icmpCode, 255],
    ] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > max)) throw new PacketError(`${n} ${v} out of range 0-${max}`);
    }
    if (typeof pkt.ifname !== 'string' || pkt.ifname.length === 0 || pkt.ifname.length > 15) {
      throw new PacketError(`bad interface name '${String(pkt.ifname)}'`);
    }
    return { src, dst, srcText: s.text, dstText: d.text };
  }

  /** pf_normalize_tcp and pf_setup_pdesc's drops; returns the flags to use, or null = drop. */
  static normalizeFlags(proto: number, dport: number, flags: number): number | null {
    const { F, S, R, P, A, U } = TCP_FLAG_BITS;
    if (proto === 17 && dport === 0) return null;
    if (proto !== 6) return flags;
    let f = flags;
    if (f & S) {
      if (f & R) return null;
      if (f & F) f &= ~F;
    } else if (!(f & (A | R))) {
      return null;
    }
    if (!(f & A) && f & (F | P | U)) return null;
    return f;
  }

  #result(partial: Partial<EvalResult> & Pick<EvalResult, 'verdict' | 'reason'>): EvalResult {
    return {
      ruleId: null,
      anchorRuleId: null,
      matchRuleIds: [],
      stateCreated: false,
      returnAction: null,
      tenant: null,
      translated: null,
      ...partial,
    };
  }

  #tenantOf(pkt: EvalPacket, src: ParsedAddr, dst: ParsedAddr, rule: IrRule | null): string | null {
    const L = this.#loaded;
    if (L.tenants.size > 0) return L.tenants.classify(pkt, src, dst);
    if (!rule || rule.ruleset === '') return null;
    return rule.ruleset.split('/')[0]!;
  }

  #count(counters: RuleCounters[], dirIdx: number, len: number): void {
    for (const c of counters) {
      c.packets[dirIdx]!++;
      c.bytes[dirIdx]! += len;
    }
  }

  evaluate(pkt: EvalPacket): EvalResult {
    const { src, dst, srcText, dstText } = this.#validate(pkt);
    const now = this.#clock();
    this.#now = now;
    const len = pkt.length ?? 64;
    const dirIdx = pkt.dir === 'out' ? 1 : 0;
    const L = this.#loaded;
    this.#stats.packets++;

    // 1. `set skip on`: pf never sees the packet.
    if (L.ir.options.skip.some((s) => this.#inIface(pkt.ifname, s))) {
      this.#stats.skipped++;
      return this.#result({ verdict: 'pass', reason: 'skip', tenant: this.#tenantOf(pkt, src, dst, null) });
    }

    // 2. Normalisation drops come before the state lookup.
    const flags = ReferenceEvaluator.normalizeFlags(pkt.proto, pkt.dport, pkt.proto === 6 ? pkt.tcpFlags : 0);
    if (flags === null) {
      this.#stats.normalizeDrops++;
      return this.#result({ verdict: 'block', reason: 'normalize', tenant: this.#tenantOf(pkt, src, dst, null) });
    }

    const orig: Tuple = { src: srcText, sport: pkt.sport, dst: dstText, dport: pkt.dport };

    // 3. State lookup first. ICMP errors belong to the state of the packet they quote, which
    // the packet shapes do not carry: they never match a state and never create one.
    const icmpError = isIcmpError(pkt);
    let st = icmpError ? null : this.#states.find(pkt.dir, pkt.proto, pkt.af, orig, pkt.ifname, now);
    if (st && st.proto === 6) {
      const { S, A } = TCP_FLAG_BITS;
      // pf: a new SYN on a fully closed connection removes the old state and is filtered anew.
      if (st.peers[0] >= TCPS.FIN_WAIT_2 && st.peers[1] >= TCPS.FIN_WAIT_2 && (flags & (S | A)) === S) {
        this.#states.remove(st);
        st = null;
      }
    }
    if (st) return this.#followState(st, pkt, orig, flags, now, len, src, dst);

    // 4. The rule walk.
    const ctx: WalkCtx = {
      pkt: {
        dir: pkt.dir,
        ifname: pkt.ifname,
        af: pkt.af,
        proto: pkt.proto,
        src,
        dst,
        sport: pkt.sport,
        dport: pkt.dport,
        tcpFlags: flags,
        icmpType: pkt.icmpType,
        icmpCode: pkt.icmpCode,
      },
      decision: null,
      decisionAnchor: null,
      matchRules: [],
      depth: 0,
      failRule: null,
      failKind: null,
    };
    const rv = this.#walk('', null, ctx);
    const matchRuleIds = ctx.matchRules.map((r) => r.id);
    if (rv === 'fail') {
      // pf drops the packet when the anchor stack overflows or a translation finds no address.
      if (ctx.failKind === 'anchor') this.#stats.anchorOverflowDrops++;
      else this.#stats.translationFailures++;
      const fr = ctx.failRule!;
      return this.#result({
        verdict: 'block',
        reason: 'rule',
        ruleId: fr.id,
        matchRuleIds,
        tenant: this.#tenantOf(pkt, src, dst, fr),
      });
    }
    const r = ctx.decision;
    // pf counts a decided packet on its rule and anchor rule; match rules only count through a
    // state (pf_test walks st->match_rules), so they join the list only when a state is made.
    const ruleRefs = [
      ...(r ? [L.counters[r.id]!] : []),
      ...(r && ctx.decisionAnchor ? [L.counters[ctx.decisionAnchor.id]!] : []),
    ];
    const counterRefs = [...ruleRefs, ...ctx.matchRules.map((m) => L.counters[m.id]!)];
    const translatedOf = (): EvalResult['translated'] => {
      const t = { src: formatAddr(ctx.pkt.src), sport: ctx.pkt.sport, dst: formatAddr(ctx.pkt.dst), dport: ctx.pkt.dport };
      return t.src === orig.src && t.dst === orig.dst && t.sport === orig.sport && t.dport === orig.dport ? null : t;
    };
    if (!r) {
      // No decision: pass without state (match-rule translations still apply to this packet).
      return this.#result({ verdict: 'pass', reason: 'default', matchRuleIds, translated: translatedOf(), tenant: this.#tenantOf(pkt, src, dst, null) });
    }
    const tenant = this.#tenantOf(pkt, src, dst, r);
    const base = { ruleId: r.id, anchorRuleId: ctx.decisionAnchor?.id ?? null, matchRuleIds, tenant };
    if (r.action === 'block') {
      this.#count(ruleRefs, dirIdx, len);
      const ret = r.blockPolicy === 'return' ? (pkt.proto === 6 ? 'rst' : 'icmp-unreach') : null;
      return this.#result({ verdict: 'block', reason: 'rule', ...base, returnAction: ret });
    }
    // The final pass rule's own translation applies only now that it is the decision.
    if ((r.natTo || r.rdrTo) && !this.#translate(r, ctx)) {
      this.#stats.translationFailures++;
      return this.#result({ verdict: 'block', reason: 'rule', ...base });
    }
    const translated = translatedOf();
    if (r.state === 'none' || icmpError) {
      this.#count(ruleRefs, dirIdx, len);
      return this.#result({ verdict: 'pass', reason: 'rule', ...base, translated });
    }
    if (this.#states.size >= this.#maxStates) this.#states.purge(now);
    if (this.#states.size >= this.#maxStates) {
      this.#stats.stateLimitDrops++;
      return this.#result({ verdict: 'block', reason: 'state-limit', ...base });
    }
    const fin: Tuple = translated ?? orig;
    const origKey = keyOf(pkt.dir, pkt.proto, orig);
    const finKey = keyOf(pkt.dir, pkt.proto, fin);
    // Inbound: the wire key is what arrived, the stack key what the host sees after rdr-to.
    // Outbound: the stack key is what the host sent, the wire key what leaves after nat-to.
    const wire: StateKey = pkt.dir === 'in' ? origKey : finKey;
    const stack: StateKey = pkt.dir === 'in' ? finKey : origKey;
    const boundIf = L.ir.options.statePolicy === 'if-bound' ? pkt.ifname : null;
    if (this.#states.collides(pkt.proto, pkt.af, pkt.dir, boundIf, wire, stack, now)) {
      // pf drops the packet (PFRES_STATEINS); the result vocabulary has no separate reason, and
      // 'state-limit' already means "a stateful pass could not create its state".
      this.#stats.stateInsertFailures++;
      return this.#result({ verdict: 'block', reason: 'state-limit', ...base });
    }
    const created = this.#states.insert(
      {
        proto: pkt.proto,
        af: pkt.af,
        dir: pkt.dir,
        ifname: pkt.ifname,
        boundIf,
        wire,
        stack,
        rule: r,
        anchorRule: ctx.decisionAnchor,
        matchRules: [...ctx.matchRules],
        counterRefs,
        generation: L.generation,
      },
      now,
    );
    this.#stats.statesCreated++;
    created.packets[0]++;
    created.bytes[0] += len;
    this.#count(counterRefs, dirIdx, len);
    return this.#result({ verdict: 'pass', reason: 'rule', ...base, stateCreated: true, translated });
  }

  #followState(
    st: State,
    pkt: EvalPacket,
    orig: Tuple,
    flags: number,
    now: number,
    len: number,
    src: ParsedAddr,
    dst: ParsedAddr,
  ): EvalResult {
    this.#stats.stateMatches++;
    const fromCreator = pkt.dir === st.dir;
    this.#states.track(st, fromCreator, flags, now);
    const side = fromCreator ? 0 : 1;
    st.packets[side]++;
    st.bytes[side] += len;
    this.#count(st.counterRefs, pkt.dir === 'out' ? 1 : 0, len);
    // An inbound packet matched the wire key and continues as the stack key; outbound the reverse.
    const out = tupleOf(pkt.dir, pkt.dir === 'in' ? st.stack : st.wire);
    if (isIcmp(pkt.proto)) {
      out.sport = orig.sport;
      out.dport = orig.dport;
    }
    const same = out.src === orig.src && out.dst === orig.dst && out.sport === orig.sport && out.dport === orig.dport;
    const L = this.#loaded;
    const tenant =
      L.tenants.size > 0 ? L.tenants.classify(pkt, src, dst) : st.rule.ruleset === '' ? null : st.rule.ruleset.split('/')[0]!;
    return this.#result({
      verdict: 'pass',
      reason: 'state',
      ruleId: st.rule.id,
      anchorRuleId: st.anchorRule?.id ?? null,
      matchRuleIds: st.matchRules.map((r) => r.id),
      tenant,
      translated: same ? null : out,
    });
  }

  /** Per IR rule of the current ruleset, indexed by rule id. */
  counters(): RuleCounters[] {
    this.expire();
    return this.#loaded.counters.map((c) => ({ ...c, packets: [...c.packets], bytes: [...c.bytes] }));
  }

  /** Counters summed over the expansion of each written statement (IR.origins index). */
  originCounters(): RuleCounters[] {
    const out = new Map<number, RuleCounters>();
    for (const c of this.counters()) {
      const o = out.get(c.origin);
      if (!o) {
        out.set(c.origin, { ...c, ruleId: -1 });
        continue;
      }
      o.evaluations += c.evaluations;
      o.matches += c.matches;
      o.packets = [o.packets[0] + c.packets[0], o.packets[1] + c.packets[1]];
      o.bytes = [o.bytes[0] + c.bytes[0], o.bytes[1] + c.bytes[1]];
      o.states += c.states;
      o.statesTotal += c.statesTotal;
    }
    return [...out.values()].sort((a, b) => a.origin - b.origin);
  }

  states(): StateView[] {
    this.expire();
    return this.#states.values().map((s) => viewOf(this.#states, s));
  }

  stats(): EvaluatorStats {
    return { ...this.#stats };
  }

  /** Purges expired states (also done lazily on lookup); returns how many went. */
  expire(): number {
    return this.#states.purge(this.#clock());
  }
}
