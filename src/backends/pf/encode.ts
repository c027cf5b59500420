// Backend layer (pf): IR -> kernel structs. One struct pf_rule per IR rule (the IR is already
// list-expanded, in ruleset order), with the field encodings pfctl uses: OpenBSD address families,
// ports in network order, unused pools marked PF_ADDR_NONE, rtableid = onrdomain = -1, DYNIFTL for
// (if) with its mode flags, TABLE for <t>, anchor rules as pfctl writes them (action 0) with
// pfioc_rule.anchor_call naming the child. Two things pfctl resolves at load time are resolved here too: bare interface names /
// `self` as addresses (from the interface address map, one kernel rule per address, as pfctl
// does; without a map the kernel's dynamic-address form is used) and multi-host translation pools (an automatic table per pool, since a pf_pool holds one
// address wrap). Everything else about the rule is the IR's.
import type { AddressFamily, HostSpec, InterfaceAddressMap, Ir, IrRule, PortMatch, Redirect, TableEntry } from '../../policy/ir.js';
import { addrBytes, maskBytes, parseCidr } from './addr.js';
import { StructView } from './abi/layout.js';
import { AF, PF, type PfRelease } from './abi/releases.js';
import { BackendError } from './errors.js';

export interface EncodeOptions {
  release: PfRelease;
  /** Resolves bare interface names and `self` used as addresses; (if) forms need nothing. */
  addressMap?: InterfaceAddressMap;
  /** Kernel anchor under which IR anchors are loaded ("" = as named; the text backend uses "ztb").
   *  The IR's main ruleset is always pf's main ruleset. */
  anchorRoot?: string;
  /** The IR's `set state-policy`; encodeIr fills it in from ir.options. */
  statePolicy?: 'floating' | 'if-bound';
}

/** One kernel rule and where it goes. */
export interface KernelRule {
  irId: number;
  /** IR ruleset path. */
  ruleset: string;
  /** Kernel anchor path (pfioc_rule.anchor). */
  anchor: string;
  /** pfioc_rule.anchor_call: the called ruleset for anchor rules, "" otherwise. */
  anchorCall: string;
  /** struct pf_rule image. */
  rule: Buffer;
}

/** A table pfctl would create implicitly (a multi-address translation pool). */
export interface AutoTable {
  /** Kernel anchor the table is defined in (the rule's). */
  anchor: string;
  name: string;
  entries: TableEntry[];
}

export interface EncodedRule {
  rules: KernelRule[];
  autoTables: AutoTable[];
}

/** An anchor root must be a plain pf anchor path (no "_" names: pf reserves them). */
export function checkAnchorRoot(root: string): void {
  if (root === '') return;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9][A-Za-z0-9_.-]*)*$/.test(root) || Buffer.byteLength(root) > 255) {
    throw new BackendError(`anchor root "${root}" is not a valid pf anchor path`, 'ERR_ZTB_PF_ENCODE');
  }
}

/** Kernel anchor of an IR ruleset: the main ruleset stays main; anchors move under the root. */
export function kernelPath(irPath: string, anchorRoot = ''): string {
  if (irPath === '') return '';
  return anchorRoot ? `${anchorRoot}/${irPath}` : irPath;
}

const PORT_OPS: Record<PortMatch['op'], number> = {
  '=': PF.op.eq,
  '!=': PF.op.ne,
  '<': PF.op.lt,
  '<=': PF.op.le,
  '>': PF.op.gt,
  '>=': PF.op.ge,
  ':': PF.op.rrg,
  '><': PF.op.irg,
  '<>': PF.op.xrg,
};

const DYNIF_FLAGS = {
  address: 0,
  network: PF.aflag.network,
  broadcast: PF.aflag.broadcast,
  peer: PF.aflag.peer,
  primary: PF.aflag.noalias,
} as const;

const AF_NUM: Record<AddressFamily, number> = { inet: AF.inet, inet6: AF.inet6 };

function where(rule: IrRule): string {
  return `${rule.pos.file}:${rule.pos.line}:${rule.pos.col}`;
}

/** A host after load-time resolution: what a pf_addr_wrap can hold directly. */
type WireHost = Exclude<HostSpec, { type: 'ifaddr' } | { type: 'none' }>;

function resolveHost(host: HostSpec, rule: IrRule, opts: EncodeOptions): WireHost[] {
  if (host.type === 'none') {
    throw new BackendError(`${where(rule)}: rule has an address that matches no family (${rule.text})`, 'ERR_ZTB_PF_ENCODE');
  }
  if (host.type !== 'ifaddr') return [host];
  const map = opts.addressMap;
  // Without an address map the kernel resolves the name itself: a dynamic address ("self" is
  // pf's group of all interfaces there). pfctl would resolve once at load; the dynamic form has
  // the same addresses at load and follows later changes.
  if (!map) return [{ type: 'dynif', ifname: host.ifname, mode: 'address' }];
  const names = host.ifname === 'self' && !map.self ? Object.keys(map) : [host.ifname];
  const out: WireHost[] = [];
  for (const n of names) {
    const cidrs = map[n];
    if (!cidrs) {
      throw new BackendError(
        `${where(rule)}: "${host.ifname}" used as an address needs its addresses at load time; the interface address map has no ${n}`,
        'ERR_ZTB_PF_ENCODE',
      );
    }
    for (const c of cidrs) {
      const p = parseCidr(c);
      out.push({ type: 'prefix', prefix: { af: p.af, addr: p.addr, len: p.af === 'inet' ? 32 : 128 } });
    }
  }
  if (out.length === 0) throw new BackendError(`${where(rule)}: "${host.ifname}" has no addresses`, 'ERR_ZTB_PF_ENCODE');
  return out;
}

function hostAf(h: WireHost): AddressFamily | null {
  return h.type === 'prefix' ? h.prefix.af : null;
}

// Field paths are built once: the encoder runs per kernel rule, and constant strings keep the
// layout lookups cheap (a fresh template string would be rehashed on every call).
function wrapPaths(base: string) {
  return {
    type: `${base}.type`,
    addr: `${base}.v.a.addr`,
    mask: `${base}.v.a.mask`,
    tblname: `${base}.v.tblname`,
    ifname: `${base}.v.ifname`,
    iflags: `${base}.iflags`,
  } as const;
}
type WrapPaths = ReturnType<typeof wrapPaths>;
const WRAP: Record<'src' | 'dst' | 'nat' | 'rdr', WrapPaths> = {
  src: wrapPaths('src.addr'),
  dst: wrapPaths('dst.addr'),
  nat: wrapPaths('nat.addr'),
  rdr: wrapPaths('rdr.addr'),
};
const SIDE = {
  src: { neg: 'src.neg', portOp: 'src.port_op', port: 'src.port' },
  dst: { neg: 'dst.neg', portOp: 'dst.port_op', port: 'dst.port' },
} as const;
const POOL = {
  nat: { opts: 'nat.opts', proxyPort: 'nat.proxy_port', portOp: 'nat.port_op' },
  rdr: { opts: 'rdr.opts', proxyPort: 'rdr.proxy_port', portOp: 'rdr.port_op' },
} as const;
const ALL_ONES = new Uint8Array(16).fill(0xff);

/** Writes a pf_addr_wrap (src/dst address or a pool address) into the rule. */
function writeAddrWrap(v: StructView, f: WrapPaths, h: WireHost): void {
  switch (h.type) {
    case 'any':
      v.setU8(f.type, PF.addr.addrmask);
      return;
    case 'prefix':
      v.setU8(f.type, PF.addr.addrmask);
      v.setBytes(f.addr, addrBytes(h.prefix.af, h.prefix.addr));
      v.setBytes(f.mask, maskBytes(h.prefix.af, h.prefix.len));
      return;
    case 'table':
      v.setU8(f.type, PF.addr.table);
      v.setString(f.tblname, h.name);
      return;
    case 'dynif':
      v.setU8(f.type, PF.addr.dyniftl);
      v.setString(f.ifname, h.ifname);
      // The kernel derives the dynamic address's netmask from v.a.mask (which does not overlap the
      // 16-byte ifname); pfctl writes all ones so the interface's addresses are used unmasked.
      v.setBytes(f.mask, ALL_ONES);
      v.setU8(f.iflags, DYNIF_FLAGS[h.mode]);
      return;
  }
}

function writePort(v: StructView, side: 'src' | 'dst', p: PortMatch | null): void {
  if (!p) return;
  const f = SIDE[side];
  v.setU8(f.portOp, PORT_OPS[p.op]);
  v.setU16be(f.port, p.lo, 0);
  // pfctl leaves port[1] zero for the unary operators and stores the upper bound for ranges.
  const binary = p.op === ':' || p.op === '><' || p.op === '<>';
  v.setU16be(f.port, binary ? p.hi : 0, 1);
}

function writePool(
  v: StructView,
  which: 'nat' | 'rdr',
  redir: Redirect,
  rule: IrRule,
  anchor: string,
  opts: EncodeOptions,
  autoTables: AutoTable[],
): void {
  const hosts = redir.hosts.flatMap((h) => resolveHost(h, rule, opts));
  if (hosts.length === 0) throw new BackendError(`${where(rule)}: empty ${which}-to pool`, 'ERR_ZTB_PF_ENCODE');
  let dynamic = false;
  if (hosts.length === 1) {
    writeAddrWrap(v, WRAP[which], hosts[0]!);
    dynamic = hosts[0]!.type !== 'prefix';
  } else {
    // A pf_pool holds one address wrap, so a list becomes a table (pfctl does the same).
    const entries: TableEntry[] = [];
    for (const h of hosts) {
      if (h.type !== 'prefix') {
        throw new BackendError(
          `${where(rule)}: a ${which}-to pool with several hosts may only list addresses (found ${h.type})`,
          'ERR_ZTB_PF_ENCODE',
        );
      }
      entries.push({ neg: false, prefix: h.prefix });
    }
    const name = `__ztb_pool_${rule.id}_${which}`;
    autoTables.push({ anchor, name, entries });
    writeAddrWrap(v, WRAP[which], { type: 'table', name });
    dynamic = true;
  }
  // Dynamic, table and list pools round-robin (pf.conf(5)); a single static address needs no pool type.
  const f = POOL[which];
  v.setU8(f.opts, dynamic ? PF.pool.roundrobin : PF.pool.none);
  if (which === 'nat') {
    // Host byte order: pf compares proxy ports as integers and converts when it rewrites the packet.
    v.setU16(f.proxyPort, PF.natProxyPorts[0], 0);
    v.setU16(f.proxyPort, PF.natProxyPorts[1], 1);
  } else if (redir.port) {
    v.setU16(f.proxyPort, redir.port.lo, 0);
    const range = redir.port.hi !== redir.port.lo;
    v.setU16(f.proxyPort, range ? redir.port.hi : 0, 1);
    v.setU8(f.portOp, range ? PF.op.rrg : PF.op.eq);
  }
}

function logifOf(rule: IrRule): number {
  const to = rule.log?.to;
  if (!to) return 0;
  const m = /^pflog(\d{1,3})$/.exec(to);
  if (!m || Number(m[1]) > 255) {
    throw new BackendError(`${where(rule)}: log (to ${to}) must name a pflog interface`, 'ERR_ZTB_PF_ENCODE');
  }
  return Number(m[1]);
}

function anchorCallOf(rule: IrRule, opts: EncodeOptions): string {
  const call = rule.call;
  if (!call) throw new BackendError(`${where(rule)}: anchor rule without a call`, 'ERR_ZTB_PF_ENCODE');
  const base = call.name.endsWith('/*') ? call.name.slice(0, -2) : call.name;
  const suffix = call.wildcard || call.name.endsWith('/*') ? '/*' : '';
  const path = kernelPath(base, opts.anchorRoot ?? '');
  // The kernel resolves a relative anchor_call against the calling ruleset; the IR's names are
  // absolute, so anything called from below the main ruleset is sent with a leading "/".
  const inMain = rule.ruleset === '';
  return `${inMain ? '' : '/'}${path}${suffix}`;
}

/** Encodes one IR rule (usually one kernel rule; more when a bare interface address expands). */
export function encodeRule(rule: IrRule, opts: EncodeOptions): EncodedRule {
  const anchor = kernelPath(rule.ruleset, opts.anchorRoot ?? '');
  const autoTables: AutoTable[] = [];
  const srcs = resolveHost(rule.src.host, rule, opts);
  const dsts = resolveHost(rule.dst.host, rule, opts);
  const rules: KernelRule[] = [];
  try {
    const anchorCall = rule.action === 'anchor' ? anchorCallOf(rule, opts) : '';
    for (const s of srcs) {
      for (const d of dsts) {
        const fams = [rule.af, hostAf(s), hostAf(d)].filter((x): x is AddressFamily => x !== null);
        const af = fams[0] ?? null;
        // An expansion mixing families can never match; pfctl drops it, so do we.
        if (fams.some((f) => f !== af)) continue;
        const v = new StructView(opts.release.structs.pf_rule);
        encodeInto(v, rule, af, s, d, anchor, opts, autoTables);
        rules.push({ irId: rule.id, ruleset: rule.ruleset, anchor, anchorCall, rule: v.buf });
      }
    }
  } catch (e) {
    if (e instanceof BackendError) throw e;
    if (e instanceof RangeError || e instanceof TypeError) {
      throw new BackendError(`${where(rule)}: cannot encode "${rule.text}": ${e.message}`, 'ERR_ZTB_PF_ENCODE', { cause: e });
    }
    throw e;
  }
  if (rules.length === 0) {
    throw new BackendError(`${where(rule)}: "${rule.text}" has no address of the rule's family after resolution`, 'ERR_ZTB_PF_ENCODE');
  }
  return { rules, autoTables };
}

function encodeInto(
  v: StructView,
  rule: IrRule,
  af: AddressFamily | null,
  src: WireHost,
  dst: WireHost,
  anchor: string,
  opts: EncodeOptions,
  autoTables: AutoTable[],
): void {
  switch (rule.action) {
    case 'pass':
      v.setU8('action', PF.action.pass);
      break;
    case 'block':
      v.setU8('action', PF.action.drop);
      if (rule.blockPolicy === 'return') {
        v.setU32('rule_flag', PF.ruleFlag.return);
        v.setU16('return_icmp', PF.returnIcmp);
        v.setU16('return_icmp6', PF.returnIcmp6);
      }
      break;
    case 'match':
      v.setU8('action', PF.action.match);
      break;
    // pfctl zeroes an anchor rule and never sets its action, so it goes in as PASS (0); the
    // kernel ignores the action of a rule with an anchor and steps into the anchor instead.
    case 'anchor':
      v.setU8('action', PF.action.pass);
      break;
  }
  v.setU8('direction', rule.dir === 'in' ? PF.dir.in : rule.dir === 'out' ? PF.dir.out : PF.dir.inout);
  v.setU8('quick', rule.quick ? 1 : 0);
  if (rule.log) {
    let bits = PF.log.log;
    if (rule.log.all) bits |= PF.log.all;
    if (rule.log.user) bits |= PF.log.user;
    if (rule.log.matches) bits |= PF.log.matches;
    v.setU8('log', bits);
    v.setU8('logif', logifOf(rule));
  }
  if (rule.iface) {
    v.setString('ifname', rule.iface.name);
    v.setU8('ifnot', rule.iface.neg ? 1 : 0);
  }
  v.setU8('af', af ? AF_NUM[af] : AF.unspec);
  if (rule.proto !== null) v.setU8('proto', rule.proto);

  writeAddrWrap(v, WRAP.src, src);
  v.setU8(SIDE.src.neg, rule.src.neg ? 1 : 0);
  writePort(v, 'src', rule.srcPort);
  writeAddrWrap(v, WRAP.dst, dst);
  v.setU8(SIDE.dst.neg, rule.dst.neg ? 1 : 0);
  writePort(v, 'dst', rule.dstPort);

  if (rule.flags) {
    v.setU8('flags', rule.flags.bits);
    v.setU8('flagset', rule.flags.mask);
  }
  if (rule.icmpType) {
    // pf stores type+1 and code+1 so that 0 means "not tested".
    v.setU16('type', rule.icmpType.type + 1);
    if (rule.icmpType.code !== null) v.setU16('code', rule.icmpType.code + 1);
  }
  const keep = PF.state[rule.state === 'keep' ? 'normal' : rule.state];
  v.setU8('keep_state', keep);
  if (keep !== PF.state.none && rule.action === 'pass') {
    // `set state-policy if-bound` is a pfctl default folded into each stateful rule.
    if (opts.statePolicy === 'if-bound') v.setU32('rule_flag', v.u32('rule_flag') | PF.ruleFlag.ifBound);
  }
  if (rule.scrub) {
    let sf = 0;
    if (rule.scrub.noDf) sf |= PF.scrub.nodf;
    if (rule.scrub.randomId) sf |= PF.scrub.randomId;
    if (rule.scrub.reassembleTcp) sf |= PF.scrub.scrubTcp;
    v.setU16('scrub_flags', sf);
    if (rule.scrub.maxMss !== undefined) v.setU16('max_mss', rule.scrub.maxMss);
    if (rule.scrub.minTtl !== undefined) v.setU8('min_ttl', rule.scrub.minTtl);
  }

  v.setI32('rtableid', -1);
  v.setI32('onrdomain', -1);
  v.setU8('nat.addr.type', PF.addr.none);
  v.setU8('rdr.addr.type', PF.addr.none);
  v.setU8('route.addr.type', PF.addr.none);
  if (rule.natTo) writePool(v, 'nat', rule.natTo, rule, anchor, opts, autoTables);
  if (rule.rdrTo) writePool(v, 'rdr', rule.rdrTo, rule, anchor, opts, autoTables);
}

export interface EncodedIr {
  /** Kernel rules grouped by kernel anchor, each in ruleset order. */
  byAnchor: Map<string, KernelRule[]>;
  autoTables: AutoTable[];
}

/** Encodes the given IR rulesets (all by default) in ruleset order. */
export function encodeIr(ir: Ir, baseOpts: EncodeOptions, paths?: string[]): EncodedIr {
  const byAnchor = new Map<string, KernelRule[]>();
  const autoTables: AutoTable[] = [];
  const opts: EncodeOptions = { ...baseOpts, statePolicy: ir.options.statePolicy };
  for (const path of paths ?? orderedPaths(ir)) {
    const rs = ir.rulesets[path];
    if (!rs) throw new BackendError(`ruleset "${path}" is not in the policy`, 'ERR_ZTB_PF_ENCODE');
    const out: KernelRule[] = [];
    byAnchor.set(kernelPath(path, opts.anchorRoot ?? ''), out);
    for (const id of rs.rules) {
      const rule = ir.rules[id];
      if (!rule || rule.id !== id) throw new BackendError(`IR rule ${id} is missing or misnumbered`, 'ERR_ZTB_PF_ENCODE');
      const enc = encodeRule(rule, opts);
      out.push(...enc.rules);
      autoTables.push(...enc.autoTables);
    }
  }
  return { byAnchor, autoTables };
}

/** "" first, then anchors in path order (parents before children). */
export function orderedPaths(ir: Ir): string[] {
  return Object.keys(ir.rulesets).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0));
}

export interface PfiocRuleArgs {
  action?: number;
  ticket?: number;
  nr?: number;
  anchor: string;
  anchorCall?: string;
  rule?: Buffer;
}

/** struct pfioc_rule around a pf_rule image. */
export function encodePfiocRule(release: PfRelease, a: PfiocRuleArgs): Buffer {
  const v = new StructView(release.structs.pfioc_rule);
  v.setU32('action', a.action ?? 0);
  v.setU32('ticket', a.ticket ?? 0);
  v.setU32('nr', a.nr ?? 0);
  try {
    v.setString('anchor', a.anchor);
    v.setString('anchor_call', a.anchorCall ?? '');
  } catch (e) {
    throw new BackendError(`anchor path too long for pf: ${(e as Error).message}`, 'ERR_ZTB_PF_ENCODE', { cause: e });
  }
  if (a.rule) {
    if (a.rule.length !== release.structs.pf_rule.size) {
      throw new BackendError(`pf_rule image is ${a.rule.length} bytes, ${release.id} needs ${release.structs.pf_rule.size}`, 'ERR_ZTB_PF_ENCODE');
    }
    a.rule.copy(v.buf, v.field('rule').offset);
  }
  return v.buf;
}
