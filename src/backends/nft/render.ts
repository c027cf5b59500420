// Backend layer (nftables): the pure renderer, IR -> libnftables JSON for `nft -j -f -`. It turns
// pf's last-match/quick/anchor walk into nftables' first-match chains by keeping the candidate
// decision in the packet mark (non-quick matches record their rule id and continue; quick matches
// and quick anchors jump to the decision at once; the base chain ends by dispatching on the
// recorded id), models pf's direction-keyed states with conntrack marks, and specialises rules that
// follow a `match ... rdr-to/nat-to` on the translated address. docs/nft.md explains the mapping
// with a worked example; nothing here touches the kernel (apply.ts does).
import type {
  AddrMatch,
  AddressFamily,
  Direction,
  HostSpec,
  InterfaceAddressMap,
  Ir,
  IrRule,
  PortMatch,
  Prefix,
} from '../../policy/ir.js';
import {
  bigToIp,
  broadcastOf,
  networkOf,
  parseCidr,
  prefixContains,
  tableContains,
  tableIntervals,
} from './addr.js';
import { NftRenderError } from './errors.js';

export const DEFAULT_TABLE = 'ztb';

// Packet mark layout (the mark is owned by ztb while the packet crosses our chains; it is reset to
// 0 at the top of every base chain): bits 0-14 = deciding rule id + 1 (0 = no decision yet); bit 15
// = "stale" (the decision predates the current quick-anchor call); bits 16-31 = translation rule id
// + 1 whose nat-to/rdr-to applies (read by the nat chains).
export const MARK_DECISION = 0x7fff;
export const MARK_STALE = 0x8000;
export const MARK_DECISION_FIELD = 0xffff;
export const MARK_TRANS = 0xffff0000;
/** Marks a packet we reject, so the RST / ICMP error the kernel sends for it (which inherits the
 *  mark under net.ipv4/ipv6.fwmark_reflect=1, set by apply) skips our output filter as pf's own
 *  generated packets do. No rule id encodes to it (ids + 1 <= 0x7fff). */
export const MARK_GENERATED = 0xfffe8000;
// Conntrack mark layout: pf's states are keyed by the direction that created them. Bit 31 = a
// stateful pass decided this connection's original direction on the way IN, bit 30 = on the way
// OUT. Bits 0-14 / 15-29 hold the creating rule id + 1 for each, so state traffic is counted on it.
export const CT_IN = 0x80000000;
export const CT_OUT = 0x40000000;
export const CT_IN_RULE = 0x7fff;
export const CT_OUT_RULE = 0x3fff8000;
/** Rule ids must fit the 15-bit fields above. */
export const MAX_RULES = 0x7ffe;
/** nftables' jump stack is 16 deep; the base chain, ruleset chains and anchor chains use it. */
const MAX_JUMP_DEPTH = 15;

export const PRIO_IN = -150; // after conntrack (-200), before destination NAT (-100)
export const PRIO_OUT = 0;
export const PRIO_DNAT = -100;
export const PRIO_SNAT = 100;

export interface NftRenderOptions {
  /** nftables table name (family inet). */
  table?: string;
  /** Interface addresses for (if), (if:network), (if:0), bare interface names and `self`. */
  ifaddrs?: InterfaceAddressMap;
  /** Interface groups (merged over IR.groups): name -> member interfaces. */
  groups?: Record<string, string[]>;
}

type Expr = Record<string, unknown>;
type Cmd = Record<string, unknown>;

export interface NftRendered {
  /** The input for `nft -j -f -`: replaces table inet <table> in one transaction. */
  json: { nftables: Cmd[] };
  table: string;
  /** Named counter -> IR rule id (every rule has exactly one counter, `r<id>`). */
  counters: Record<string, number>;
  /** Rules the renderer could only approximate (e.g. scrub options): id -> note. */
  notes: { ruleId: number; note: string }[];
  /** The policy has tenant bridges: intra-bridge traffic must pass the inet hooks (apply.ts). */
  bridged: boolean;
}

const rulesetChain = (dir: Direction, idx: number) => `${dir}_rs${idx}`;
const decisionChain = (dir: Direction, id: number) => `${dir}_d${id}`;
const anchorChain = (dir: Direction, id: number) => `${dir}_a${id}`;
const dispatchChain = (dir: Direction) => `${dir}_decide`;
export const counterName = (id: number) => `r${id}`;

const meta = (key: string): Expr => ({ meta: { key } });
const ct = (key: string): Expr => ({ ct: { key } });
const payload = (protocol: string, field: string): Expr => ({ payload: { protocol, field } });
const band = (left: Expr, mask: number): Expr => ({ '&': [left, mask] });
const match = (left: Expr, right: unknown, op = '=='): Expr => ({ match: { op, left, right } });
const setMark = (keep: number, or: number): Expr => ({
  mangle: { key: meta('mark'), value: keep === 0 ? or : { '|': [band(meta('mark'), keep), or] } },
});

/** One way a rule's criteria can match: a conjunction of nft expressions. null = cannot match. */
type Conj = Expr[];

interface Ctx {
  ir: Ir;
  table: string;
  ifaddrs: InterfaceAddressMap;
  groups: Record<string, string[]>;
  rsIndex: Map<string, number>;
  notes: { ruleId: number; note: string }[];
  cmds: Cmd[];
  /** A stateful pass applies `in` and a block applies `out`: see pendingStates. */
  pendingStates: boolean;
}

function err(rule: IrRule, msg: string): NftRenderError {
  return new NftRenderError(`rule ${rule.id} (${rule.text}): ${msg}`, rule.pos);
}

function ifMembers(ctx: Ctx, name: string): string[] {
  const members = new Set<string>([name]);
  for (const m of ctx.groups[name] ?? []) members.add(m);
  return [...members].sort();
}

function ifaceExpr(ctx: Ctx, dir: Direction, iface: { name: string; neg: boolean }): Expr {
  const members = ifMembers(ctx, iface.name);
  const right = members.length === 1 ? members[0] : { set: members };
  return match(meta(dir === 'in' ? 'iifname' : 'oifname'), right, iface.neg ? '!=' : '==');
}

/** Addresses of one interface or group (CIDR strings from the address map). */
function ifCidrs(ctx: Ctx, name: string): { af: AddressFamily; addr: string; len: number }[] {
  const names = name === 'self' ? Object.keys(ctx.ifaddrs) : ifMembers(ctx, name);
  const out: { af: AddressFamily; addr: string; len: number }[] = [];
  for (const n of names) for (const c of ctx.ifaddrs[n] ?? []) {
    const p = parseCidr(c);
    if (p) out.push(p);
  }
  return out;
}

/** Resolves a dynamic host to concrete prefixes (per family). */
function resolveHost(ctx: Ctx, host: HostSpec): Prefix[] | null {
  const hostPrefix = (af: AddressFamily, addr: string): Prefix => ({ af, addr, len: af === 'inet' ? 32 : 128 });
  switch (host.type) {
    case 'any':
    case 'table':
    case 'none':
      return null;
    case 'prefix':
      return [host.prefix];
    case 'ifaddr':
      return ifCidrs(ctx, host.ifname).map((c) => hostPrefix(c.af, c.addr));
    case 'dynif': {
      const cidrs = ifCidrs(ctx, host.ifname);
      switch (host.mode) {
        case 'address':
          return cidrs.map((c) => hostPrefix(c.af, c.addr));
        case 'network':
          return cidrs.map((c) => networkOf(c));
        case 'broadcast':
          return cidrs.flatMap((c) => {
            const b = broadcastOf(c);
            return b ? [hostPrefix('inet', b)] : [];
          });
        case 'primary': {
          const out: Prefix[] = [];
          for (const af of ['inet', 'inet6'] as const) {
            const first = cidrs.find((c) => c.af === af);
            if (first) out.push(hostPrefix(af, first.addr));
          }
          return out;
        }
        case 'peer':
          // Point-to-point peers are not in the address map we are given: nothing to match.
          return [];
      }
    }
  }
  return null;
}

function addrRight(p: Prefix): unknown {
  const full = p.af === 'inet' ? 32 : 128;
  return p.len === full ? p.addr : { prefix: { addr: p.addr, len: p.len } };
}

export function tableSetName(name: string, af: AddressFamily): string {
  const safe = /^[A-Za-z0-9_]+$/.test(name) ? name : Buffer.from(name).toString('hex');
  return `t_${safe}_${af === 'inet' ? 'v4' : 'v6'}`;
}

/**
 * Alternatives for one address criterion. Each alternative fixes the family it needs (null = any
 * family, no test). Returns [] when the criterion can never match.
 */
function addrAlternatives(ctx: Ctx, side: 'saddr' | 'daddr', m: AddrMatch): { af: AddressFamily | null; exprs: Expr[] }[] {
  const h = m.host;
  const op = m.neg ? '!=' : '==';
  const proto = (af: AddressFamily) => (af === 'inet' ? 'ip' : 'ip6');
  if (h.type === 'any') return m.neg ? [] : [{ af: null, exprs: [] }];
  if (h.type === 'none') return m.neg ? [{ af: null, exprs: [] }] : [];
  if (h.type === 'table') {
    if (!ctx.ir.tables[h.name]) throw new NftRenderError(`table <${h.name}> is not defined`);
    return (['inet', 'inet6'] as const).map((af) => ({
      af,
      exprs: [match(payload(proto(af), side), `@${tableSetName(h.name, af)}`, op)],
    }));
  }
  const prefixes = resolveHost(ctx, h) ?? [];
  const out: { af: AddressFamily | null; exprs: Expr[] }[] = [];
  for (const af of ['inet', 'inet6'] as const) {
    const ps = prefixes.filter((p) => p.af === af);
    if (ps.length === 0) {
      // `! host` where the host has no address in this family: every packet of the family matches.
      if (m.neg) out.push({ af, exprs: [] });
      continue;
    }
    const right = ps.length === 1 ? addrRight(ps[0]!) : { set: ps.map(addrRight) };
    out.push({ af, exprs: [match(payload(proto(af), side), right, op)] });
  }
  return out;
}

/** Static twin of addrAlternatives: does this concrete address satisfy the criterion? */
function addrMatchesStatic(ctx: Ctx, m: AddrMatch, ip: string): boolean {
  const h = m.host;
  let hit: boolean;
  if (h.type === 'any') hit = true;
  else if (h.type === 'none') hit = false;
  else if (h.type === 'table') hit = tableContains(ctx.ir.tables[h.name]?.entries ?? [], ip);
  else hit = (resolveHost(ctx, h) ?? []).some((p) => prefixContains(p, ip));
  return m.neg ? !hit : hit;
}

function portMatchesStatic(pm: PortMatch, p: number): boolean {
  switch (pm.op) {
    case '=':
      return p === pm.lo;
    case '!=':
      return p !== pm.lo;
    case '<':
      return p < pm.lo;
    case '<=':
      return p <= pm.lo;
    case '>':
      return p > pm.lo;
    case '>=':
      return p >= pm.lo;
    case ':':
      return p >= pm.lo && p <= pm.hi;
    case '><':
      return p > pm.lo && p < pm.hi;
    case '<>':
      return p < pm.lo || p > pm.hi;
  }
}

function portExpr(rule: IrRule, field: 'sport' | 'dport', pm: PortMatch): Expr | null {
  const proto = rule.proto === 6 ? 'tcp' : rule.proto === 17 ? 'udp' : null;
  if (!proto) throw err(rule, 'a port test needs proto tcp or udp');
  const left = payload(proto, field);
  switch (pm.op) {
    case '=':
      return match(left, pm.lo);
    case '!=':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return match(left, pm.lo, pm.op);
    case ':':
      return match(left, pm.lo === pm.hi ? pm.lo : { range: [pm.lo, pm.hi] });
    case '><':
      if (pm.hi - pm.lo < 2) return null;
      return match(left, pm.hi - pm.lo === 2 ? pm.lo + 1 : { range: [pm.lo + 1, pm.hi - 1] });
    case '<>':
      return match(left, pm.lo === pm.hi ? pm.lo : { range: [pm.lo, pm.hi] }, '!=');
  }
}

interface Translation {
  ruleId: number;
  addr: string;
  af: AddressFamily;
  port: number | null;
}

/** The single concrete address a nat-to/rdr-to rule translates to. */
function translationOf(ctx: Ctx, rule: IrRule, kind: 'nat' | 'rdr'): Translation {
  const r = kind === 'nat' ? rule.natTo : rule.rdrTo;
  if (!r) throw err(rule, `no ${kind}-to`);
  if (r.hosts.length !== 1) throw err(rule, `${kind}-to pools (${r.hosts.length} hosts) are not supported by the nftables backend`);
  const resolved = (resolveHost(ctx, r.hosts[0]!) ?? []).filter((p) => rule.af === null || p.af === rule.af);
  if (resolved.length === 0) throw err(rule, `${kind}-to target resolves to no address (check the interface address map)`);
  const p = resolved[0]!;
  const full = p.af === 'inet' ? 32 : 128;
  if (p.len !== full) throw err(rule, `${kind}-to target must be a single address, got ${p.addr}/${p.len}`);
  if (r.port && r.port.lo !== r.port.hi) throw err(rule, `${kind}-to port ranges are not supported by the nftables backend`);
  return { ruleId: rule.id, addr: p.addr, af: p.af, port: r.port ? r.port.lo : null };
}

function appliesTo(rule: IrRule, dir: Direction): boolean {
  return rule.dir === null || rule.dir === dir;
}

/**
 * The criteria of a rule as disjoint alternatives. `trans` is the translation (if any) recorded by
 * an earlier match rule on this path: addresses/ports it rewrote are then tested statically against
 * the constant target instead of against the packet (pf's later rules see the translated packet,
 * but in nftables the NAT happens after our filter chain).
 */
function criteria(ctx: Ctx, rule: IrRule, dir: Direction, trans: Translation | null, transKind: 'nat' | 'rdr'): Conj[] {
  // The side a translation rewrote: rdr-to (in) rewrites the destination, nat-to (out) the source.
  const rewritten = trans ? (transKind === 'rdr' ? 'daddr' : 'saddr') : null;
  if (trans) {
    if (rule.af !== null && rule.af !== trans.af) return [];
    const m = rewritten === 'daddr' ? rule.dst : rule.src;
    if (!addrMatchesStatic(ctx, m, trans.addr)) return [];
    const pm = rewritten === 'daddr' ? rule.dstPort : rule.srcPort;
    if (trans.port !== null && pm && !portMatchesStatic(pm, trans.port)) return [];
  }

  let alts: { af: AddressFamily | null; exprs: Expr[] }[] = [{ af: trans ? trans.af : rule.af, exprs: [] }];
  for (const [side, m] of [
    ['saddr', rule.src],
    ['daddr', rule.dst],
  ] as const) {
    if (side === rewritten) continue;
    const opts = addrAlternatives(ctx, side, m);
    const next: typeof alts = [];
    for (const a of alts) for (const o of opts) {
      if (a.af && o.af && a.af !== o.af) continue;
      next.push({ af: a.af ?? o.af, exprs: [...a.exprs, ...o.exprs] });
    }
    alts = next;
  }

  const tail: Expr[] = [];
  if (rule.srcPort && !(rewritten === 'saddr' && trans?.port !== null)) {
    const e = portExpr(rule, 'sport', rule.srcPort);
    if (!e) return [];
    tail.push(e);
  }
  if (rule.dstPort && !(rewritten === 'daddr' && trans && trans.port !== null)) {
    const e = portExpr(rule, 'dport', rule.dstPort);
    if (!e) return [];
    tail.push(e);
  }
  if (rule.icmpType) {
    const proto = rule.proto === 58 ? 'icmpv6' : 'icmp';
    tail.push(match(payload(proto, 'type'), rule.icmpType.type));
    if (rule.icmpType.code !== null) tail.push(match(payload(proto, 'code'), rule.icmpType.code));
  }

  // Flags are tested on TCP packets only: a rule without `proto tcp` matches other protocols
  // unconditionally, so it splits into "not TCP" and "TCP with these flags".
  const flagVariants: Expr[][] = [];
  if (!rule.flags) flagVariants.push([]);
  else {
    const f = match(band(payload('tcp', 'flags'), rule.flags.mask), rule.flags.bits);
    if (rule.proto === 6) flagVariants.push([f]);
    else if (rule.proto === null) flagVariants.push([match(meta('l4proto'), 6, '!=')], [match(meta('l4proto'), 6), f]);
    else flagVariants.push([]);
  }

  const out: Conj[] = [];
  for (const a of alts) for (const fv of flagVariants) {
    const head: Expr[] = [];
    if (rule.iface) head.push(ifaceExpr(ctx, dir, rule.iface));
    if (a.af) head.push(match(meta('nfproto'), a.af === 'inet' ? 'ipv4' : 'ipv6'));
    if (rule.proto !== null) head.push(match(meta('l4proto'), rule.proto));
    out.push([...head, ...a.exprs, ...tail, ...fv]);
  }
  return out;
}

function logExpr(rule: IrRule): Expr {
  return { log: { prefix: `ztb:${rule.id} ` } };
}

function comment(rule: IrRule): string {
  const c = `${rule.id} ${rule.pos.line}:${rule.pos.col} ${rule.text}`;
  return c.length > 120 ? `${c.slice(0, 117)}...` : c;
}

function addRule(ctx: Ctx, chain: string, expr: Expr[], cmt?: string): void {
  const rule: Record<string, unknown> = { family: 'inet', table: ctx.table, chain, expr };
  if (cmt) rule.comment = cmt;
  ctx.cmds.push({ add: { rule } });
}

function addChain(ctx: Ctx, name: string, base?: { type: string; hook: string; prio: number }): void {
  const chain: Record<string, unknown> = { family: 'inet', table: ctx.table, name };
  if (base) Object.assign(chain, base, { policy: 'accept' });
  ctx.cmds.push({ add: { chain } });
}

interface DirPlan {
  dir: Direction;
  /** Match rules translating in this direction (rdr-to for in, nat-to for out). */
  translations: Translation[];
  /** pass/block rules that can decide in this direction. */
  deciders: IrRule[];
}

/**
 * Emits the rules of one ruleset for one direction into its chain. Every translation recorded by an
 * earlier match rule yields a specialised copy of each later rule (guarded on the mark's
 * translation field), so every rule sees the address pf would show it.
 */
function renderRuleset(ctx: Ctx, plan: DirPlan, path: string): void {
  const { dir } = plan;
  const rs = ctx.ir.rulesets[path]!;
  const chain = rulesetChain(dir, ctx.rsIndex.get(path)!);
  const transKind = dir === 'in' ? 'rdr' : 'nat';
  const variants: { guard: Expr[]; trans: Translation | null }[] =
    plan.translations.length === 0
      ? [{ guard: [], trans: null }]
      : [
          { guard: [match(band(meta('mark'), MARK_TRANS), 0)], trans: null },
          ...plan.translations.map((t) => ({
            guard: [match(band(meta('mark'), MARK_TRANS), ((t.ruleId + 1) << 16) >>> 0)],
            trans: t,
          })),
        ];
  for (const id of rs.rules) {
    const rule = ctx.ir.rules[id]!;
    if (!appliesTo(rule, dir)) continue;
    const conjs: Conj[] = [];
    for (const v of variants) for (const c of criteria(ctx, rule, dir, v.trans, transKind)) conjs.push([...v.guard, ...c]);
    for (const c of conjs) {
      const stmts: Expr[] = [];
      switch (rule.action) {
        case 'pass':
        case 'block':
          if (rule.quick) stmts.push({ goto: { target: decisionChain(dir, id) } });
          else stmts.push(setMark(~MARK_DECISION_FIELD >>> 0, id + 1));
          break;
        case 'match': {
          stmts.push({ counter: counterName(id) });
          if (rule.log) stmts.push(logExpr(rule));
          const t = dir === 'in' ? rule.rdrTo : rule.natTo;
          if (t) stmts.push(setMark(MARK_DECISION_FIELD, ((id + 1) << 16) >>> 0));
          if (rule.quick) stmts.push({ goto: { target: dispatchChain(dir) } });
          break;
        }
        case 'anchor': {
          stmts.push({ counter: counterName(id) });
          const targets = rule.call?.targets ?? [];
          if (targets.length === 0) break;
          if (targets.length === 1 && !stopsAsQuickAnchor(rule)) stmts.push({ jump: { target: rulesetChain(dir, ctx.rsIndex.get(targets[0]!)!) } });
          else stmts.push({ jump: { target: anchorChain(dir, id) } });
          break;
        }
      }
      addRule(ctx, chain, [...c, ...stmts], comment(rule));
    }
  }
}

/** pf stops after a quick anchor when the decision was made directly inside it — for plain
 *  anchors only: pf_step_into_anchor does not apply that test to wildcard `anchor "t/*" quick`. */
function stopsAsQuickAnchor(rule: IrRule): boolean {
  return rule.quick && !rule.call?.wildcard;
}

/** The chain an anchor rule with several targets or `quick` jumps to. */
function renderAnchorChain(ctx: Ctx, dir: Direction, rule: IrRule): void {
  const name = anchorChain(dir, rule.id);
  addChain(ctx, name);
  const targets = rule.call!.targets;
  const direct = new Set<number>();
  for (const t of targets) for (const id of ctx.ir.rulesets[t]!.rules) {
    const r = ctx.ir.rules[id]!;
    if ((r.action === 'pass' || r.action === 'block') && appliesTo(r, dir)) direct.add(id + 1);
  }
  const directSet = [...direct].sort((a, b) => a - b);
  const inDirect = (expr: Expr) => match(expr, directSet.length === 1 ? directSet[0] : { set: directSet });
  if (stopsAsQuickAnchor(rule) && directSet.length > 0) {
    // A decision already made by one of these rules before this call must not count as made
    // "directly inside" this quick anchor: flag it stale; a new decision clears the flag.
    addRule(ctx, name, [inDirect(band(meta('mark'), MARK_DECISION_FIELD)), setMark(~0 >>> 0, MARK_STALE)]);
  }
  for (const t of targets) addRule(ctx, name, [{ jump: { target: rulesetChain(dir, ctx.rsIndex.get(t)!) } }]);
  if (stopsAsQuickAnchor(rule) && directSet.length > 0) {
    addRule(ctx, name, [inDirect(band(meta('mark'), MARK_DECISION_FIELD)), { goto: { target: dispatchChain(dir) } }], comment(rule));
  }
}

function renderDecisionChain(ctx: Ctx, dir: Direction, rule: IrRule): void {
  const name = decisionChain(dir, rule.id);
  addChain(ctx, name);
  const stmts: Expr[] = [{ counter: counterName(rule.id) }];
  if (rule.log) stmts.push(logExpr(rule));
  if (rule.action === 'pass') {
    if (rule.state !== 'none') {
      // The state's key follows the packet that created it: IN on the connection's original
      // direction (or OUT on its reply direction) is the "IN" bit, the other two the "OUT" bit.
      // A packet conntrack does not track (invalid) gets no state, as neither rule matches it.
      const inBit: [number, number] = [(CT_IN | (rule.id + 1)) >>> 0, ~(CT_IN | CT_IN_RULE) >>> 0];
      const outBit: [number, number] = [(CT_OUT | ((rule.id + 1) << 15)) >>> 0, ~(CT_OUT | CT_OUT_RULE) >>> 0];
      const [orig, reply] = dir === 'in' ? [inBit, outBit] : [outBit, inBit];
      for (const [cdir, [bits, keep]] of [['original', orig], ['reply', reply]] as const) {
        addRule(ctx, name, [match(ct('direction'), cdir), { mangle: { key: ct('mark'), value: { '|': [band(ct('mark'), keep), bits] } } }]);
      }
    }
    const t = dir === 'in' ? rule.rdrTo : rule.natTo;
    if (t) stmts.push(setMark(MARK_DECISION_FIELD, ((rule.id + 1) << 16) >>> 0));
    stmts.push({ accept: null });
    addRule(ctx, name, stmts, comment(rule));
    return;
  }
  // A forwarded packet blocked `out` may have created a state `in` (pf keeps it: the two are
  // separate pf_test calls). Conntrack discards a connection whose first packet is dropped before
  // it is confirmed, ct mark and all, so that state would vanish: remember it (see pendingStates).
  if (dir === 'out' && ctx.pendingStates) for (const r of pendingRecord()) addRule(ctx, name, r);
  if (rule.blockPolicy === 'return') {
    const gen = setMark(0, MARK_GENERATED);
    addRule(ctx, name, [...stmts, match(meta('l4proto'), 6), gen, { reject: { type: 'tcp reset' } }], comment(rule));
    addRule(ctx, name, [...stmts, gen, { reject: { type: 'icmpx', expr: 'port-unreachable' } }], comment(rule));
    return;
  }
  addRule(ctx, name, [...stmts, { drop: null }], comment(rule));
}

function renderBase(ctx: Ctx, plan: DirPlan, name: string, hook: string, prio: number, skip: string[], stateMaps: boolean): void {
  const { dir } = plan;
  addChain(ctx, name, { type: 'filter', hook, prio });
  const ifKey = meta(dir === 'in' ? 'iifname' : 'oifname');
  if (skip.length > 0) addRule(ctx, name, [match(ifKey, skip.length === 1 ? skip[0] : { set: skip }), { accept: null }], 'set skip on');
  if (hook === 'output') addRule(ctx, name, [match(meta('mark'), MARK_GENERATED), setMark(0, 0), { accept: null }], 'reply generated by block return');
  // pf drops these before the state lookup (pf_setup_pdesc / pf_normalize_tcp): UDP to port 0 and
  // TCP flag combinations no stack sends. (pf also clears FIN on SYN+FIN; nftables cannot, so such
  // a packet is matched with FIN set — documented in docs/nft.md.)
  const tcpFlags = (mask: number) => band(payload('tcp', 'flags'), mask);
  const F = 0x01, S = 0x02, R = 0x04, P = 0x08, A = 0x10, U = 0x20;
  addRule(ctx, name, [match(meta('l4proto'), 17), match(payload('udp', 'dport'), 0), { drop: null }], 'normalize: udp port 0');
  addRule(ctx, name, [match(meta('l4proto'), 6), match(tcpFlags(S | R), S | R), { drop: null }], 'normalize: syn+rst');
  addRule(ctx, name, [match(meta('l4proto'), 6), match(tcpFlags(S | A | R), 0), { drop: null }], 'normalize: no syn/ack/rst');
  addRule(ctx, name, [match(meta('l4proto'), 6), match(tcpFlags(A), 0), match(tcpFlags(P | U), 0, '!='), { drop: null }], 'normalize: psh/urg without ack');
  addRule(ctx, name, [match(meta('l4proto'), 6), match(tcpFlags(S | A | F), F), { drop: null }], 'normalize: fin without ack');
  // pf's state lookup comes first. A state created IN matches later packets of the original
  // direction coming in and replies going out; a state created OUT the reverse.
  const conds: [string, number, number, string][] =
    dir === 'in'
      ? [
          ['original', CT_IN, CT_IN_RULE, 'sc_in'],
          ['reply', CT_OUT, CT_OUT_RULE, 'sc_out'],
        ]
      : [
          ['original', CT_OUT, CT_OUT_RULE, 'sc_out'],
          ['reply', CT_IN, CT_IN_RULE, 'sc_in'],
        ];
  if (ctx.pendingStates) for (const r of pendingLookup(dir)) addRule(ctx, name, r, 'state created in, packet blocked out');
  for (const [cdir, bit, field, map] of conds) {
    const cond = [match(ct('direction'), cdir), match(band(ct('mark'), bit), bit)];
    // Counting is a rule of its own: a state from an older ruleset may carry an id this ruleset's
    // map does not know, and a failed map lookup must not stop the state from passing.
    if (stateMaps) addRule(ctx, name, [...cond, { counter: { map: { key: band(ct('mark'), field), data: `@${map}` } } }]);
    addRule(ctx, name, [...cond, { accept: null }], 'state');
  }
  addRule(ctx, name, [setMark(0, 0)]);
  addRule(ctx, name, [{ jump: { target: rulesetChain(dir, ctx.rsIndex.get('')!) } }]);
  addRule(ctx, name, [{ goto: { target: dispatchChain(dir) } }]);
}

/**
 * States created `in` by a packet that was then blocked `out`. pf keeps such a state (it lets
 * later `in A->B` and the replies `out B->A` pass); conntrack never confirms the connection of a
 * packet dropped at the forward hook, so its ct mark is lost with it. The blocking decision
 * chains record the flow (TCP and UDP: the set key needs ports) in a dynamic set, keyed as the
 * state's creating packet travelled, with pf's first timeout; the base chains look it up for a
 * packet conntrack sees as new (or invalid, e.g. an unsolicited SYN+ACK) and restore the IN bit
 * (filter_in, same direction) or the OUT bit (filter_fwd/out, the reply: the new connection's
 * original direction is the state's reverse). nft 1.0.6 cannot update a map with data under a
 * 40-byte IPv6 key, so the sets hold no rule id: traffic passed this way is not counted on the
 * creating rule.
 */
const PENDING: { af: 'ip' | 'ip6'; proto: 'tcp' | 'udp'; set: string; timeout: number }[] = [
  { af: 'ip', proto: 'tcp', set: 'ps4_tcp', timeout: 120 },
  { af: 'ip', proto: 'udp', set: 'ps4_udp', timeout: 60 },
  { af: 'ip6', proto: 'tcp', set: 'ps6_tcp', timeout: 120 },
  { af: 'ip6', proto: 'udp', set: 'ps6_udp', timeout: 60 },
];

function pendingKey(af: 'ip' | 'ip6', reverse: boolean): Expr {
  const [a, b] = reverse ? (['daddr', 'saddr'] as const) : (['saddr', 'daddr'] as const);
  const [pa, pb] = reverse ? (['dport', 'sport'] as const) : (['sport', 'dport'] as const);
  return { concat: [payload(af, a), payload('th', pa), payload(af, b), payload('th', pb)] };
}

function pendingGuard(af: 'ip' | 'ip6', proto: string): Expr[] {
  return [match(meta('nfproto'), af === 'ip' ? 'ipv4' : 'ipv6'), match(meta('l4proto'), proto)];
}

function pendingSets(table: string): Cmd[] {
  return PENDING.map((p) => ({
    add: {
      set: {
        family: 'inet',
        table,
        name: p.set,
        type: p.af === 'ip' ? ['ipv4_addr', 'inet_service', 'ipv4_addr', 'inet_service'] : ['ipv6_addr', 'inet_service', 'ipv6_addr', 'inet_service'],
        flags: ['timeout'],
        timeout: p.timeout,
        size: 65535,
      },
    },
  }));
}

/** Rules for a blocking `out` decision: remember an IN state this very packet created. */
function pendingRecord(): Expr[][] {
  return PENDING.map((p) => [
    ...pendingGuard(p.af, p.proto),
    match(ct('state'), 'new'),
    match(ct('direction'), 'original'),
    match(band(ct('mark'), CT_IN), CT_IN),
    { set: { op: 'update', elem: pendingKey(p.af, false), set: `@${p.set}` } },
  ]);
}

/** Base-chain rules: a remembered IN state passes the same direction in and the replies out. */
function pendingLookup(dir: Direction): Expr[][] {
  const out: Expr[][] = [];
  for (const p of PENDING) {
    const hit = match(pendingKey(p.af, dir === 'out'), `@${p.set}`);
    const bit = dir === 'in' ? CT_IN : CT_OUT;
    out.push([...pendingGuard(p.af, p.proto), match(ct('state'), 'new'), match(ct('direction'), 'original'), hit, { mangle: { key: ct('mark'), value: { '|': [ct('mark'), bit] } } }]);
    out.push([...pendingGuard(p.af, p.proto), match(ct('state'), 'invalid'), hit, { accept: null }]);
  }
  return out;
}

function renderDispatch(ctx: Ctx, plan: DirPlan): void {
  const name = dispatchChain(plan.dir);
  addChain(ctx, name);
  if (plan.deciders.length === 0) return;
  const elems = plan.deciders.map((r) => [r.id + 1, { goto: { target: decisionChain(plan.dir, r.id) } }]);
  addRule(ctx, name, [{ vmap: { key: band(meta('mark'), MARK_DECISION), data: { set: elems } } }]);
}

function jumpDepth(ir: Ir): number {
  // base -> main ruleset (1); each anchor level adds the anchor chain and the target chain (2).
  const depthOf = (path: string, seen: Set<string>): number => {
    if (seen.has(path)) throw new NftRenderError(`anchor loop through "${path}"`);
    const rs = ir.rulesets[path];
    if (!rs) return 0;
    let max = 0;
    for (const id of rs.rules) {
      const r = ir.rules[id]!;
      if (r.action !== 'anchor' || !r.call) continue;
      for (const t of r.call.targets) max = Math.max(max, 2 + depthOf(t, new Set([...seen, path])));
    }
    return max;
  };
  return 1 + depthOf('', new Set());
}

export function renderNft(ir: Ir, opts: NftRenderOptions = {}): NftRendered {
  if (ir.rules.length > MAX_RULES) throw new NftRenderError(`${ir.rules.length} rules: the nftables backend supports at most ${MAX_RULES}`);
  if (!ir.rulesets['']) throw new NftRenderError('IR has no main ruleset');
  const depth = jumpDepth(ir);
  if (depth > MAX_JUMP_DEPTH) throw new NftRenderError(`anchors nest too deep for nftables' jump stack (${depth} > ${MAX_JUMP_DEPTH})`);
  const table = opts.table ?? DEFAULT_TABLE;
  const paths = Object.keys(ir.rulesets).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const ctx: Ctx = {
    ir,
    table,
    ifaddrs: opts.ifaddrs ?? {},
    groups: { ...ir.groups, ...(opts.groups ?? {}) },
    rsIndex: new Map(paths.map((p, i) => [p, i])),
    notes: [],
    cmds: [],
    pendingStates:
      ir.rules.some((r) => r.action === 'pass' && r.state !== 'none' && appliesTo(r, 'in')) && ir.rules.some((r) => r.action === 'block' && appliesTo(r, 'out')),
  };
  const tbl = { family: 'inet', name: table };
  // add + delete + add: the delete never fails (the table exists), and the whole batch is one
  // transaction, so the kernel swaps old for new or keeps the old one.
  ctx.cmds.push({ add: { table: tbl } }, { delete: { table: tbl } }, { add: { table: tbl } });

  const counters: Record<string, number> = {};
  for (const r of ir.rules) {
    counters[counterName(r.id)] = r.id;
    ctx.cmds.push({ add: { counter: { family: 'inet', table, name: counterName(r.id) } } });
    if (r.scrub) ctx.notes.push({ ruleId: r.id, note: 'scrub options are not enforced by nftables (conntrack reassembles fragments)' });
  }

  for (const name of Object.keys(ir.tables).sort()) {
    const t = ir.tables[name]!;
    for (const af of ['inet', 'inet6'] as const) {
      const ivs = tableIntervals(t.entries, af);
      const set: Record<string, unknown> = {
        family: 'inet',
        table,
        name: tableSetName(name, af),
        type: af === 'inet' ? 'ipv4_addr' : 'ipv6_addr',
        flags: ['interval'],
      };
      if (ivs.length > 0) set.elem = ivs.map((iv) => (iv.lo === iv.hi ? bigToIp(iv.lo, af) : { range: [bigToIp(iv.lo, af), bigToIp(iv.hi, af)] }));
      ctx.cmds.push({ add: { set } });
    }
  }

  const stateful = ir.rules.filter((r) => r.action === 'pass' && r.state !== 'none');
  const stateMaps = stateful.length > 0;
  if (stateMaps) {
    ctx.cmds.push({ add: { map: { family: 'inet', table, name: 'sc_in', type: 'mark', map: 'counter', elem: stateful.map((r) => [r.id + 1, counterName(r.id)]) } } });
    ctx.cmds.push({
      add: { map: { family: 'inet', table, name: 'sc_out', type: 'mark', map: 'counter', elem: stateful.map((r) => [((r.id + 1) << 15) >>> 0, counterName(r.id)]) } },
    });
  }

  if (ctx.pendingStates) ctx.cmds.push(...pendingSets(table));

  const plans: DirPlan[] = (['in', 'out'] as const).map((dir) => ({
    dir,
    translations: ir.rules
      .filter((r) => r.action === 'match' && appliesTo(r, dir) && (dir === 'in' ? r.rdrTo : r.natTo))
      .map((r) => translationOf(ctx, r, dir === 'in' ? 'rdr' : 'nat')),
    deciders: ir.rules.filter((r) => (r.action === 'pass' || r.action === 'block') && appliesTo(r, dir)),
  }));

  const skip = [...new Set(ir.options.skip.flatMap((s) => ifMembers(ctx, s)))].sort();
  for (const plan of plans) {
    const { dir } = plan;
    for (const p of paths) addChain(ctx, rulesetChain(dir, ctx.rsIndex.get(p)!));
    for (const r of plan.deciders) renderDecisionChain(ctx, dir, r);
    for (const r of ir.rules) {
      if (r.action === 'anchor' && r.call && appliesTo(r, dir) && (r.call.targets.length > 1 || stopsAsQuickAnchor(r))) renderAnchorChain(ctx, dir, r);
    }
    for (const p of paths) renderRuleset(ctx, plan, p);
    renderDispatch(ctx, plan);
    if (dir === 'in') renderBase(ctx, plan, 'filter_in', 'prerouting', PRIO_IN, skip, stateMaps);
    else {
      // pf's `out` is "leaving through an interface": forwarded packets at forward, the host's own
      // at output. Both run before source NAT, like pf's rule walk before nat-to applies.
      renderBase(ctx, plan, 'filter_fwd', 'forward', PRIO_OUT, skip, stateMaps);
      renderBase(ctx, plan, 'filter_out', 'output', PRIO_OUT, skip, stateMaps);
    }
  }
  renderNat(ctx, plans);
  // Declarations before rules: a rule may jump to a chain emitted later in the walk.
  const rank = (c: Cmd) => {
    const a = c.add as Record<string, unknown> | undefined;
    if (!a || a.table) return 0;
    if (a.rule) return 3;
    if (a.chain) return 2;
    return 1;
  };
  const ordered = ctx.cmds.map((c, i) => ({ c, i, k: rank(c) })).sort((x, y) => x.k - y.k || x.i - y.i);
  ctx.cmds = ordered.map((o) => o.c);
  return { json: { nftables: ctx.cmds }, table, counters, notes: ctx.notes, bridged: ir.tenants.length > 0 };
}

/** NAT chains: they only see a connection's first packet and apply what the filter recorded. */
function renderNat(ctx: Ctx, plans: DirPlan[]): void {
  for (const plan of plans) {
    const kind = plan.dir === 'in' ? 'rdr' : 'nat';
    const rules = ctx.ir.rules.filter((r) => (r.action === 'match' || r.action === 'pass') && appliesTo(r, plan.dir) && (kind === 'rdr' ? r.rdrTo : r.natTo));
    if (rules.length === 0) continue;
    const name = plan.dir === 'in' ? 'nat_in' : 'nat_out';
    addChain(ctx, name, { type: 'nat', hook: plan.dir === 'in' ? 'prerouting' : 'postrouting', prio: plan.dir === 'in' ? PRIO_DNAT : PRIO_SNAT });
    for (const r of rules) {
      const t = translationOf(ctx, r, kind);
      const stmt: Record<string, unknown> = { addr: t.addr, family: t.af === 'inet' ? 'ip' : 'ip6' };
      const guard = [match(meta('nfproto'), t.af === 'inet' ? 'ipv4' : 'ipv6'), match(band(meta('mark'), MARK_TRANS), ((r.id + 1) << 16) >>> 0)];
      const reset = setMark(0, 0);
      if (t.port !== null) {
        for (const proto of ['tcp', 'udp']) {
          addRule(ctx, name, [...guard, match(meta('l4proto'), proto), reset, { [kind === 'rdr' ? 'dnat' : 'snat']: { ...stmt, port: t.port } }], comment(r));
        }
      }
      addRule(ctx, name, [...guard, reset, { [kind === 'rdr' ? 'dnat' : 'snat']: stmt }], comment(r));
    }
  }
}
