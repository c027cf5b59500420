// Engine layer: compiles the rule IR into the native engine's program (typed arrays). It flattens
// the anchor tree in evaluation order — one entry per pass/block/match rule per anchor instance,
// wildcard targets already expanded by the IR, anchor criteria kept as per-instance gates — and
// turns every criterion into boxes over the engine's 15 dimensions (native/core/program.h):
// interfaces and groups become interface ids (with `!` as the complement), tables become the
// disjoint prefixes their longest-prefix-match semantics select, negations become complements,
// port operators become one or two ranges. Interface-derived addresses and translation pools are
// resolved here from the interface address map exactly as the reference evaluator resolves them.
import type {
  AddrMatch,
  AddressFamily,
  DynIfMode,
  HostSpec,
  InterfaceAddressMap,
  Ir,
  IrRule,
  PortMatch,
  Redirect,
} from '../policy/ir.js';
import { NativeError } from './native.js';
import { addrBits, maskOf, parseCidr, toNumPrefix, type NumPrefix } from './reference-addr.js';

/** Must match native/core/program.h. */
export const DIMS = 15;
const BOX_WORDS = 2 * DIMS;
const ENTRY_WORDS = 12;
const INSTANCE_WORDS = 6;
const TRANSLATION_WORDS = 7;
const POOL_WORDS = 5;
const TENANT_PREFIX_WORDS = 7;
/** Walk step: rule_id, kind (0 entry, 1 anchor head), ref (entry / instance index), end (step after
 *  an anchor's content), quick_end_step, tcp flags, 8 skip targets, 9 criterion (box off, cnt). */
const WALK_WORDS = 32;
const N_SKIP = 8;
const N_CRIT = 9;
export const NONE = 0xffffffff;
const U32_MAX = 0xffffffff;
/** pf's PF_ANCHOR_STACK_MAX. */
const MAX_ANCHOR_DEPTH = 64;
/** Flattened entries cap: wildcard anchors that call each other can multiply without it. */
export const MAX_ENTRIES = 1 << 20;
/** Box cap for one rule's expansion (negated tables x port ranges x interface complements). */
export const MAX_RULE_BOXES = 1 << 16;

const DIM_IF = 0;
const DIM_DIR = 1;
const DIM_AF = 2;
const DIM_PROTO = 3;
const DIM_SRC = 4;
const DIM_DST = 8;
const DIM_SPORT = 12;
const DIM_DPORT = 13;
const DIM_ICMP = 14;

const KIND = { pass: 0, block: 1, match: 2, depth: 3 } as const;
const ENTRY_QUICK = 1;
const ENTRY_RETURN = 2;
const ENTRY_KEEP_STATE = 4;
export const PROGRAM_IF_BOUND = 1;
export const PROGRAM_TENANT_BY_ANCHOR = 2;
const XLAT_HAS_PORT = 1;
const XLAT_RULE_HAS_DPORT = 2;

/** What the addon's engineLoad takes. */
export interface CompiledProgram {
  nRules: number;
  nTenants: number;
  flags: number;
  entries: Uint32Array;
  instances: Uint32Array;
  chains: Uint32Array;
  boxes: Uint32Array;
  translations: Uint32Array;
  pool: Uint32Array;
  skip: Uint32Array;
  /** The pf rule walk replayed for `evaluations` (WALK_WORDS per step, program.h kWalkWords). */
  walk: Uint32Array;
  /** Per-criterion boxes the walk steps point into. */
  walkBoxes: Uint32Array;
  tenantIfaces: Uint32Array;
  tenantVlans: Uint32Array;
  tenantVnis: Uint32Array;
  tenantPrefixes: Uint32Array;
  ruleTenant: Uint32Array;
  /** Tenant number -> name (tenant ids, or top-level anchor names when the IR has no tenants);
   *  numbers are stable across loads into one engine (TenantIds). */
  tenantNames: string[];
  /** Number of flattened entries (for diagnostics and docs). */
  nEntries: number;
}

export interface NativeLoadOptions {
  ifaddrs?: InterfaceAddressMap;
  /** Merged with ir.groups; every interface is a member of the group of its own name. */
  groups?: Record<string, string[]>;
  /** Kernel interface indices by name (the ids processFrames receives). */
  ifindex?: Record<string, number>;
}

/**
 * Interface name <-> engine interface id. Names with a kernel index use it; any other name (in the
 * policy, or only in packets given to evaluate()) gets a stable synthetic id above every real one,
 * so `!` interface tests still treat it as "some other interface".
 */
export class InterfaceIds {
  static readonly SYNTHETIC_BASE = 0x40000000;
  readonly #byName = new Map<string, number>();
  readonly #byId = new Map<number, string>();
  #next = InterfaceIds.SYNTHETIC_BASE;

  setKernelIndices(map: Record<string, number>): void {
    for (const [name, idx] of Object.entries(map)) {
      if (!Number.isInteger(idx) || idx < 0 || idx >= InterfaceIds.SYNTHETIC_BASE) {
        throw new NativeError(`interface ${name}: ifindex ${idx} out of range`, 'ERR_ZTB_INVALID_ARGUMENT');
      }
      const prev = this.#byId.get(idx);
      if (prev !== undefined && prev !== name) {
        throw new NativeError(`ifindex ${idx} given to both ${prev} and ${name}`, 'ERR_ZTB_INVALID_ARGUMENT');
      }
      this.#byName.set(name, idx);
      this.#byId.set(idx, name);
    }
  }

  id(name: string): number {
    let id = this.#byName.get(name);
    if (id === undefined) {
      id = this.#next++;
      this.#byName.set(name, id);
      this.#byId.set(id, name);
    }
    return id;
  }

  name(id: number): string | undefined {
    return this.#byId.get(id);
  }
}

/**
 * Tenant name <-> tenant number, stable for the life of an engine: a state keeps the tenant number
 * it was created with, and a reload must not make that number name another tenant.
 */
export class TenantIds {
  readonly names: string[] = [];
  readonly #byName = new Map<string, number>();

  id(name: string): number {
    let i = this.#byName.get(name);
    if (i === undefined) {
      if (this.names.length >= 65535) throw new NativeError('more than 65535 tenant names', 'ERR_ZTB_LIMIT');
      i = this.names.length;
      this.#byName.set(name, i);
      this.names.push(name);
    }
    return i;
  }
}

type Range = [number, number];
/** A partial box: dimension -> range (absent = wildcard). */
type PBox = Map<number, Range>;

interface Pfx {
  af: AddressFamily;
  value: bigint;
  len: number;
}

function overlaps(a: Pfx, b: Pfx): boolean {
  const len = Math.min(a.len, b.len);
  const m = maskOf(a.af, len);
  return (a.value & m) === (b.value & m);
}

/** p minus the union of subs (all prefixes of p's family; two prefixes nest or are disjoint). */
function subtract(p: Pfx, subs: Pfx[]): Pfx[] {
  const rel = subs.filter((s) => s.af === p.af && overlaps(p, s));
  if (rel.length === 0) return [p];
  if (rel.some((s) => s.len <= p.len)) return [];
  const bits = addrBits(p.af);
  const half = 1n << BigInt(bits - p.len - 1);
  return [
    ...subtract({ af: p.af, value: p.value, len: p.len + 1 }, rel),
    ...subtract({ af: p.af, value: p.value | half, len: p.len + 1 }, rel),
  ];
}

function complement(af: AddressFamily, set: Pfx[]): Pfx[] {
  return subtract({ af, value: 0n, len: 0 }, set);
}

function pfxRanges(p: Pfx, base: number): PBox {
  const out: PBox = new Map();
  const words = p.af === 'inet' ? 1 : 4;
  for (let w = 0; w < words; w++) {
    const covered = Math.max(0, Math.min(32, p.len - 32 * w));
    if (covered === 0) continue;
    const shift = BigInt((words - 1 - w) * 32);
    const word = Number((p.value >> shift) & 0xffffffffn);
    const host = covered === 32 ? 0 : 2 ** (32 - covered) - 1;
    const lo = covered === 32 ? word : word - (word % (host + 1));
    out.set(base + w, [lo, lo + host]);
  }
  return out;
}

function portRanges(m: PortMatch | null): Range[] | null {
  if (!m) return null;
  const { lo, hi } = m;
  const r: Range[] = [];
  const add = (a: number, b: number): void => {
    if (a <= b) r.push([a, b]);
  };
  switch (m.op) {
    case '=':
      add(lo, lo);
      break;
    case '!=':
      add(0, lo - 1);
      add(lo + 1, 65535);
      break;
    case '<':
      add(0, lo - 1);
      break;
    case '<=':
      add(0, lo);
      break;
    case '>':
      add(lo + 1, 65535);
      break;
    case '>=':
      add(lo, 65535);
      break;
    case ':':
      add(lo, hi);
      break;
    case '><':
      add(lo + 1, hi - 1);
      break;
    case '<>':
      add(0, lo - 1);
      add(hi + 1, 65535);
      break;
  }
  return r;
}

function complementIds(ids: number[]): Range[] {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const out: Range[] = [];
  let next = 0;
  for (const id of sorted) {
    if (id > next) out.push([next, id - 1]);
    next = id + 1;
  }
  if (next <= U32_MAX) out.push([next, U32_MAX]);
  return out;
}

/** Cartesian product of alternative lists of partial boxes (intersection per dimension). */
function product(lists: PBox[][], what: string): PBox[] {
  let acc: PBox[] = [new Map()];
  for (const alts of lists) {
    const next: PBox[] = [];
    for (const a of acc) {
      for (const b of alts) {
        const m = new Map(a);
        let empty = false;
        for (const [d, [lo, hi]] of b) {
          const cur = m.get(d);
          const r: Range = cur ? [Math.max(cur[0], lo), Math.min(cur[1], hi)] : [lo, hi];
          if (r[0] > r[1]) empty = true;
          m.set(d, r);
        }
        if (!empty) next.push(m);
      }
    }
    if (next.length > MAX_RULE_BOXES) {
      throw new NativeError(`${what}: criteria expand to more than ${MAX_RULE_BOXES} boxes`, 'ERR_ZTB_LIMIT');
    }
    acc = next;
  }
  return acc;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** pf_calc_skip_steps exactly as the reference evaluator computes it (src/engine/reference.ts
 *  calcSkips): per rule and criterion, the first later rule whose value for it differs. */
function calcSkips(rules: IrRule[]): Int32Array[] {
  const n = rules.length;
  const key = (r: IrRule, c: number): unknown =>
    [r.iface, r.dir, r.af, r.proto, r.src, r.dst, r.srcPort, r.dstPort][c];
  const out = rules.map(() => new Int32Array(N_SKIP).fill(n));
  for (let c = 0; c < N_SKIP; c++) {
    for (let i = 0; i < n; i++) {
      let j = i + 1;
      while (j < n && sameJson(key(rules[j]!, c), key(rules[i]!, c))) j++;
      out[i]![c] = j;
    }
  }
  return out;
}

class Compiler {
  readonly #ir: Ir;
  readonly #opts: NativeLoadOptions;
  readonly #ids: InterfaceIds;
  readonly #groups = new Map<string, Set<string>>();
  readonly #tables = new Map<string, Pfx[]>();
  readonly #ifCache = new Map<string, Pfx[]>();
  readonly entries: number[] = [];
  readonly instances: number[] = [];
  readonly chains: number[] = [];
  readonly boxes: number[] = [];
  readonly translations: number[] = [];
  readonly pool: number[] = [];
  readonly walk: number[] = [];
  readonly walkBoxes: number[] = [];
  readonly #critCache = new Map<number, number[]>();
  readonly #boxCache = new Map<number, { off: number; cnt: number }>();
  readonly #xlatCache = new Map<string, number>();

  constructor(ir: Ir, opts: NativeLoadOptions, ids: InterfaceIds) {
    this.#ir = ir;
    this.#opts = opts;
    this.#ids = ids;
    for (const src of [ir.groups, opts.groups ?? {}]) {
      for (const [g, members] of Object.entries(src)) {
        const s = this.#groups.get(g) ?? new Set<string>();
        for (const m of members) s.add(m);
        this.#groups.set(g, s);
      }
    }
    for (const [name, t] of Object.entries(ir.tables)) {
      // Longest-prefix-match semantics as disjoint prefixes: each positive entry minus every
      // longer entry inside it (those decide for their own addresses); an equal-length `!` wins.
      const all = t.entries.map((e) => ({ neg: e.neg, p: toNumPrefix(e.prefix) as Pfx }));
      const out: Pfx[] = [];
      const seen = new Set<string>();
      for (const e of all) {
        if (e.neg) continue;
        const k = `${e.p.af}|${e.p.value}|${e.p.len}`;
        if (seen.has(k)) continue;
        seen.add(k);
        if (all.some((f) => f.neg && f.p.af === e.p.af && f.p.len === e.p.len && f.p.value === e.p.value)) continue;
        const inner = all.filter((f) => f.p.af === e.p.af && f.p.len > e.p.len && overlaps(f.p, e.p)).map((f) => f.p);
        out.push(...subtract(e.p, inner));
      }
      this.#tables.set(name, out);
    }
  }

  members(name: string): string[] {
    const out = new Set<string>([name]);
    for (const m of this.#groups.get(name) ?? []) out.add(m);
    return [...out];
  }

  /** The reference evaluator's #ifPrefixes, verbatim in behaviour. */
  ifPrefixes(ifname: string, mode: DynIfMode): Pfx[] {
    const key = `${ifname}|${mode}`;
    const hit = this.#ifCache.get(key);
    if (hit) return hit;
    const map = this.#opts.ifaddrs ?? {};
    const names = ifname === 'self' ? Object.keys(map) : this.members(ifname);
    const out: Pfx[] = [];
    for (const n of names) {
      const seenAf = new Set<string>();
      for (const c of map[n] ?? []) {
        const cidr = parseCidr(c);
        if (!cidr) throw new NativeError(`interface ${n}: bad address '${c}' (want ADDR/LEN)`, 'ERR_ZTB_INVALID_ARGUMENT');
        const af = cidr.addr.af;
        const bits = addrBits(af);
        const mask = maskOf(af, cidr.len);
        switch (mode) {
          case 'address':
            out.push({ af, value: cidr.addr.value, len: bits });
            break;
          case 'primary':
            if (!seenAf.has(af)) out.push({ af, value: cidr.addr.value, len: bits });
            break;
          case 'network':
            out.push({ af, value: cidr.addr.value & mask, len: cidr.len });
            break;
          case 'broadcast':
            if (af === 'inet' && cidr.len <= 30) out.push({ af, value: (cidr.addr.value & mask) | (~mask & 0xffffffffn), len: bits });
            break;
          case 'peer':
            break;
        }
        seenAf.add(af);
      }
    }
    this.#ifCache.set(key, out);
    return out;
  }

  hostSet(h: HostSpec, af: AddressFamily): Pfx[] {
    switch (h.type) {
      case 'any':
        return [{ af, value: 0n, len: 0 }];
      case 'prefix':
        return h.prefix.af === af ? [toNumPrefix(h.prefix) as Pfx] : [];
      case 'table':
        return (this.#tables.get(h.name) ?? []).filter((p) => p.af === af);
      case 'dynif':
        return this.ifPrefixes(h.ifname, h.mode).filter((p) => p.af === af);
      case 'ifaddr':
        return this.ifPrefixes(h.ifname, 'address').filter((p) => p.af === af);
      case 'none':
        return [];
    }
  }

  addrSet(m: AddrMatch, af: AddressFamily): Pfx[] {
    const s = this.hostSet(m.host, af);
    if (!m.neg) return s;
    // Normalise overlaps (dynif sets may nest) before complementing: subtract handles nesting.
    return complement(af, s);
  }

  /** Boxes of one rule's own criteria (anchor rules: their gate). */
  ruleBoxes(r: IrRule): { off: number; cnt: number } {
    const hit = this.#boxCache.get(r.id);
    if (hit) return hit;
    const lists: PBox[][] = [];
    if (r.iface) {
      const ids = this.members(r.iface.name).map((n) => this.#ids.id(n));
      const ranges: Range[] = r.iface.neg ? complementIds(ids) : [...new Set(ids)].map((i) => [i, i] as Range);
      lists.push(ranges.map((rg) => new Map([[DIM_IF, rg]])));
    }
    if (r.dir) lists.push([new Map([[DIM_DIR, [r.dir === 'in' ? 0 : 1, r.dir === 'in' ? 0 : 1] as Range]])]);
    if (r.proto !== null) lists.push([new Map([[DIM_PROTO, [r.proto, r.proto] as Range]])]);
    const anyAddr = (m: AddrMatch): boolean => m.host.type === 'any' && !m.neg;
    if (r.af === null && anyAddr(r.src) && anyAddr(r.dst)) {
      // No family-specific test: one alternative with the family left open.
    } else {
      const alts: PBox[] = [];
      for (const af of r.af ? [r.af] : (['inet', 'inet6'] as const)) {
        const afBox: PBox = new Map([[DIM_AF, [af === 'inet' ? 4 : 6, af === 'inet' ? 4 : 6] as Range]]);
        const srcs = this.addrSet(r.src, af).map((p) => pfxRanges(p, DIM_SRC));
        const dsts = this.addrSet(r.dst, af).map((p) => pfxRanges(p, DIM_DST));
        for (const b of product([[afBox], srcs, dsts], `rule ${r.id} (${r.pos.file}:${r.pos.line}:${r.pos.col})`)) alts.push(b);
      }
      lists.push(alts);
    }
    const sp = portRanges(r.srcPort);
    if (sp) lists.push(sp.map((rg) => new Map([[DIM_SPORT, rg]])));
    const dp = portRanges(r.dstPort);
    if (dp) lists.push(dp.map((rg) => new Map([[DIM_DPORT, rg]])));
    if (r.icmpType) {
      const t = r.icmpType.type * 512;
      const rg: Range = r.icmpType.code === null ? [t, t + 511] : [t + r.icmpType.code, t + r.icmpType.code];
      lists.push([new Map([[DIM_ICMP, rg]])]);
    }
    const boxes = product(lists, `rule ${r.id} (${r.pos.file}:${r.pos.line}:${r.pos.col})`);
    const off = this.boxes.length / BOX_WORDS;
    for (const b of boxes) {
      for (let d = 0; d < DIMS; d++) {
        const rg = b.get(d);
        this.boxes.push(rg ? rg[0] : 0, rg ? rg[1] : U32_MAX);
      }
    }
    const res = { off, cnt: boxes.length };
    this.#boxCache.set(r.id, res);
    return res;
  }

  /** Per criterion, in the reference's #firstFailure order (iface, dir, af, proto, src, dst, sport,
   *  dport, icmp-type), the (offset, count) of its own boxes; count NONE = the rule has no such test.
   *  Separate boxes per criterion because skip steps need the first criterion that fails. */
  critBoxes(r: IrRule): number[] {
    const hit = this.#critCache.get(r.id);
    if (hit) return hit;
    const lists: (PBox[] | null)[] = [];
    if (r.iface) {
      const ids = this.members(r.iface.name).map((n) => this.#ids.id(n));
      const ranges: Range[] = r.iface.neg ? complementIds(ids) : [...new Set(ids)].map((i) => [i, i] as Range);
      lists.push(ranges.map((rg) => new Map([[DIM_IF, rg]])));
    } else lists.push(null);
    lists.push(r.dir ? [new Map([[DIM_DIR, [r.dir === 'in' ? 0 : 1, r.dir === 'in' ? 0 : 1] as Range]])] : null);
    lists.push(r.af ? [new Map([[DIM_AF, [r.af === 'inet' ? 4 : 6, r.af === 'inet' ? 4 : 6] as Range]])] : null);
    lists.push(r.proto !== null ? [new Map([[DIM_PROTO, [r.proto, r.proto] as Range]])] : null);
    for (const [m, base] of [
      [r.src, DIM_SRC],
      [r.dst, DIM_DST],
    ] as const) {
      if (m.host.type === 'any' && !m.neg) {
        lists.push(null);
        continue;
      }
      // The reference tests the address against the packet's own family: per family, its set.
      const alts: PBox[] = [];
      for (const af of ['inet', 'inet6'] as const) {
        const afv = af === 'inet' ? 4 : 6;
        for (const p of this.addrSet(m, af)) alts.push(new Map([[DIM_AF, [afv, afv] as Range], ...pfxRanges(p, base)]));
      }
      lists.push(alts);
    }
    const sp = portRanges(r.srcPort);
    lists.push(sp ? sp.map((rg) => new Map([[DIM_SPORT, rg]])) : null);
    const dp = portRanges(r.dstPort);
    lists.push(dp ? dp.map((rg) => new Map([[DIM_DPORT, rg]])) : null);
    if (r.icmpType) {
      const t = r.icmpType.type * 512;
      const rg: Range = r.icmpType.code === null ? [t, t + 511] : [t + r.icmpType.code, t + r.icmpType.code];
      lists.push([new Map([[DIM_ICMP, rg]])]);
    } else lists.push(null);
    const out: number[] = [];
    for (const l of lists) {
      if (!l) {
        out.push(0, NONE);
        continue;
      }
      if (l.length > MAX_RULE_BOXES) {
        throw new NativeError(`rule ${r.id}: a criterion expands to more than ${MAX_RULE_BOXES} boxes`, 'ERR_ZTB_LIMIT');
      }
      out.push(this.walkBoxes.length / BOX_WORDS, l.length);
      for (const b of l) {
        for (let d = 0; d < DIMS; d++) {
          const rg = b.get(d);
          this.walkBoxes.push(rg ? rg[0] : 0, rg ? rg[1] : U32_MAX);
        }
      }
    }
    this.#critCache.set(r.id, out);
    return out;
  }

  #step(r: IrRule, kind: 0 | 1, ref: number, tcp: number): number {
    const idx = this.walk.length / WALK_WORDS;
    this.walk.push(r.id, kind, ref, idx + 1, NONE, tcp, ...new Array<number>(N_SKIP).fill(NONE), ...this.critBoxes(r));
    return idx;
  }

  /** The reference evaluator's #poolAddrs for both families, in written order. */
  translation(kind: 0 | 1, red: Redirect, rule: IrRule): number {
    const key = `${kind}|${rule.id}`;
    const hit = this.#xlatCache.get(key);
    if (hit !== undefined) return hit;
    const off = this.pool.length / POOL_WORDS;
    let cnt = 0;
    for (const h of red.hosts) {
      let prefixes: Pfx[] = [];
      if (h.type === 'prefix') prefixes = [toNumPrefix(h.prefix) as Pfx];
      else if (h.type === 'table') prefixes = [...(this.#ir.tables[h.name]?.entries ?? [])].filter((e) => !e.neg).map((e) => toNumPrefix(e.prefix) as Pfx);
      else if (h.type === 'dynif') prefixes = this.ifPrefixes(h.ifname, h.mode === 'network' ? 'address' : h.mode);
      else if (h.type === 'ifaddr') prefixes = this.ifPrefixes(h.ifname, 'address');
      for (const p of prefixes) {
        this.pool.push(p.af === 'inet' ? 4 : 6, ...addrWords(p.af, p.value));
        cnt++;
      }
    }
    const idx = this.translations.length / TRANSLATION_WORDS;
    let flags = 0;
    if (kind === 1 && red.port) flags |= XLAT_HAS_PORT;
    if (rule.dstPort) flags |= XLAT_RULE_HAS_DPORT;
    this.translations.push(kind, off, cnt, red.port?.lo ?? 0, red.port?.hi ?? 0, flags, rule.dstPort?.lo ?? 0);
    this.#xlatCache.set(key, idx);
    return idx;
  }

  flatten(path: string, chain: number[], anchorRule: IrRule | null, depth: number, direct: number[], directSteps: number[]): void {
    const rs = this.#ir.rulesets[path];
    if (!rs) return;
    // Walk step of each ruleset position, for the skip targets (set once the ruleset is done).
    const posStep: number[] = [];
    for (const id of rs.rules) {
      posStep.push(this.walk.length / WALK_WORDS);
      this.#flattenRule(id, path, chain, anchorRule, depth, direct, directSteps);
    }
    const endStep = this.walk.length / WALK_WORDS;
    const rules = rs.rules.map((id) => this.#ir.rules[id]!);
    const skips = calcSkips(rules);
    skips.forEach((row, pos) => {
      for (let c = 0; c < N_SKIP; c++) {
        const j = row[c]!;
        this.walk[posStep[pos]! * WALK_WORDS + 6 + c] = j < rules.length ? posStep[j]! : endStep;
      }
    });
  }

  #flattenRule(id: number, path: string, chain: number[], anchorRule: IrRule | null, depth: number, direct: number[], directSteps: number[]): void {
    {
      const r = this.#ir.rules[id];
      if (!r) throw new NativeError(`ruleset "${path}" names missing rule ${id}`, 'ERR_ZTB_INVALID_ARGUMENT');
      if (this.entries.length / ENTRY_WORDS >= MAX_ENTRIES) {
        throw new NativeError(`anchors expand to more than ${MAX_ENTRIES} rule instances`, 'ERR_ZTB_LIMIT');
      }
      const own = this.ruleBoxes(r);
      const tcp = r.flags ? (r.flags.bits & 0xff) | ((r.flags.mask & 0xff) << 8) : 0;
      if (r.action === 'anchor') {
        if (depth >= MAX_ANCHOR_DEPTH) {
          // pf drops the packet when a matching anchor rule would exceed the anchor stack.
          const e = this.#entry(r, KIND.depth, 0, own, chain, null, tcp, NONE, NONE);
          this.#step(r, 0, e, tcp);
          return;
        }
        const inst = this.instances.length / INSTANCE_WORDS;
        const start = this.entries.length / ENTRY_WORDS;
        this.instances.push(start, start, own.off, own.cnt, tcp, r.id);
        const head = this.#step(r, 1, inst, tcp);
        const inner: number[] = [];
        const innerSteps: number[] = [];
        for (const target of r.call?.targets ?? []) this.flatten(target, [...chain, inst], r, depth + 1, inner, innerSteps);
        const end = this.entries.length / ENTRY_WORDS;
        this.instances[inst * INSTANCE_WORDS + 1] = end;
        const endStep = this.walk.length / WALK_WORDS;
        this.walk[head * WALK_WORDS + 3] = endStep;
        // A quick anchor stops the walk at its end iff the decision was made directly inside it
        // (plain anchors only: pf does not apply this to wildcard `anchor "t/*" quick`).
        if (r.quick && !r.call?.wildcard) {
          for (const e of inner) this.entries[e * ENTRY_WORDS + 3] = end;
          for (const st of innerSteps) this.walk[st * WALK_WORDS + 4] = endStep;
        }
        return;
      }
      const kind = r.action === 'pass' ? KIND.pass : r.action === 'block' ? KIND.block : KIND.match;
      let flags = r.quick ? ENTRY_QUICK : 0;
      if (r.action === 'block' && r.blockPolicy === 'return') flags |= ENTRY_RETURN;
      if (r.action === 'pass' && r.state !== 'none') flags |= ENTRY_KEEP_STATE;
      const nat = r.natTo && r.action !== 'block' ? this.translation(0, r.natTo, r) : NONE;
      const rdr = r.rdrTo && r.action !== 'block' ? this.translation(1, r.rdrTo, r) : NONE;
      const e = this.#entry(r, kind, flags, own, chain, anchorRule, tcp, nat, rdr);
      direct.push(e);
      directSteps.push(this.#step(r, 0, e, tcp));
    }
  }

  #entry(
    r: IrRule,
    kind: number,
    flags: number,
    own: { off: number; cnt: number },
    chain: number[],
    anchorRule: IrRule | null,
    tcp: number,
    nat: number,
    rdr: number,
  ): number {
    const idx = this.entries.length / ENTRY_WORDS;
    const chainOff = this.chains.length;
    this.chains.push(...chain);
    this.entries.push(r.id, kind, flags, NONE, anchorRule ? anchorRule.id : NONE, tcp, nat, rdr, own.off, own.cnt, chainOff, chain.length);
    return idx;
  }
}

/** Address value -> host-order 32-bit words (IPv4 in word 0). */
export function addrWords(af: AddressFamily, value: bigint): [number, number, number, number] {
  if (af === 'inet') return [Number(value & 0xffffffffn), 0, 0, 0];
  return [
    Number((value >> 96n) & 0xffffffffn),
    Number((value >> 64n) & 0xffffffffn),
    Number((value >> 32n) & 0xffffffffn),
    Number(value & 0xffffffffn),
  ];
}

export function wordsToValue(af: AddressFamily, w: ArrayLike<number>): bigint {
  if (af === 'inet') return BigInt(w[0]! >>> 0);
  let v = 0n;
  for (let i = 0; i < 4; i++) v = (v << 32n) | BigInt(w[i]! >>> 0);
  return v;
}

export function compileNative(ir: Ir, opts: NativeLoadOptions, ids: InterfaceIds, tenants = new TenantIds()): CompiledProgram {
  if (ir.version !== 1) throw new NativeError(`unsupported IR version ${String(ir.version)}`, 'ERR_ZTB_INVALID_ARGUMENT');
  ir.rules.forEach((r, i) => {
    if (r.id !== i) throw new NativeError(`IR rule at index ${i} has id ${r.id}`, 'ERR_ZTB_INVALID_ARGUMENT');
  });
  const c = new Compiler(ir, opts, ids);
  c.flatten('', [], null, 0, [], []);

  const skipIds = new Set<number>();
  for (const s of ir.options.skip) for (const m of c.members(s)) skipIds.add(ids.id(m));

  let flags = ir.options.statePolicy === 'if-bound' ? PROGRAM_IF_BOUND : 0;
  const ruleTenant = new Uint32Array(ir.rules.length).fill(NONE);
  const tIf: number[] = [];
  const tVlan: number[] = [];
  const tVni: number[] = [];
  const tPfx: number[] = [];
  if (ir.tenants.length > 0) {
    ir.tenants.forEach((t) => {
      const i = tenants.id(t.id);
      for (const ifname of t.interfaces) tIf.push(ids.id(ifname), i);
      if (t.vlan !== null) tVlan.push(t.vlan, i);
      if (t.vxlan) tVni.push(t.vxlan.vni, i);
      for (const s of t.subnets) {
        const p = toNumPrefix(s);
        tPfx.push(p.af === 'inet' ? 4 : 6, ...addrWords(p.af, p.value), p.len, i);
      }
    });
    // First writer wins on collisions, like the reference TenantMap.
    const dedupe = (pairs: number[]): number[] => {
      const seen = new Set<number>();
      const out: number[] = [];
      for (let i = 0; i < pairs.length; i += 2) {
        if (seen.has(pairs[i]!)) continue;
        seen.add(pairs[i]!);
        out.push(pairs[i]!, pairs[i + 1]!);
      }
      return out;
    };
    tIf.splice(0, tIf.length, ...dedupe(tIf));
    tVlan.splice(0, tVlan.length, ...dedupe(tVlan));
    tVni.splice(0, tVni.length, ...dedupe(tVni));
  } else {
    // No tenant map: the tenant is the top-level anchor of the deciding rule.
    flags |= PROGRAM_TENANT_BY_ANCHOR;
    for (const r of ir.rules) {
      if (r.ruleset === '') continue;
      ruleTenant[r.id] = tenants.id(r.ruleset.split('/')[0]!);
    }
  }
  return {
    nRules: ir.rules.length,
    nTenants: tenants.names.length,
    flags,
    entries: Uint32Array.from(c.entries),
    instances: Uint32Array.from(c.instances),
    chains: Uint32Array.from(c.chains),
    boxes: Uint32Array.from(c.boxes),
    translations: Uint32Array.from(c.translations),
    pool: Uint32Array.from(c.pool),
    skip: Uint32Array.from(skipIds),
    walk: Uint32Array.from(c.walk),
    walkBoxes: Uint32Array.from(c.walkBoxes),
    tenantIfaces: Uint32Array.from(tIf),
    tenantVlans: Uint32Array.from(tVlan),
    tenantVnis: Uint32Array.from(tVni),
    tenantPrefixes: Uint32Array.from(tPfx),
    ruleTenant,
    tenantNames: [...tenants.names],
    nEntries: c.entries.length / ENTRY_WORDS,
  };
}

export type { NumPrefix };
