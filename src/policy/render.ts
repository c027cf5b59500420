// Policy layer: IR -> pf.conf text. One printer serves three uses: the canonical `text` of each
// expanded rule and of each written statement (origins), `check` output, and whole pf.conf files
// for pfctl. It follows pfctl's print order so the text reads like `pfctl -nv`, and it prints
// every default the compiler made explicit (`block drop`, `flags S/SA keep state`, `flags any`),
// so parsing the output again yields the same IR.
import type {
  AddrMatch, AddressFamily, Direction, FlagsMatch, HostSpec, Ir, IrRule, LogOptions, PortMatch, Redirect,
  ScrubOptions,
} from './ir.js';
import { TCP_FLAG_BITS } from './ir.js';
import { ICMP6_TYPES, ICMP_TYPES, PROTOCOL_NAMES, nameOf } from './pf-names.js';
import { prefixText } from './pf-addr.js';

/** A rule with its lists still unexpanded: what both origins and expanded rules print from. */
export interface RuleParts {
  action: IrRule['action'];
  blockPolicy: 'drop' | 'return' | null;
  dir: Direction | null;
  quick: boolean;
  log: LogOptions | null;
  ifaces: { name: string; neg: boolean }[] | null;
  af: AddressFamily | null;
  protos: number[] | null;
  src: AddrMatch[] | null;
  srcPorts: PortMatch[] | null;
  dst: AddrMatch[] | null;
  dstPorts: PortMatch[] | null;
  /** 'any' prints `flags any` (a stateful pass rule with the default flags removed). */
  flags: FlagsMatch | 'any' | null;
  icmp: { v6: boolean; items: { type: number; code: number | null }[] } | null;
  state: IrRule['state'] | null;
  natTo: Redirect | null;
  rdrTo: Redirect | null;
  scrub: ScrubOptions | null;
  /** Anchor name as it must be written in the containing ruleset. */
  anchorName: string | null;
}

function list<T>(items: T[], one: (x: T) => string): string {
  if (items.length === 1) return one(items[0]!);
  return `{ ${items.map(one).join(' ')} }`;
}

export function hostText(h: HostSpec): string {
  switch (h.type) {
    case 'any':
      return 'any';
    case 'prefix':
      return prefixText(h.prefix);
    case 'table':
      return `<${h.name}>`;
    case 'dynif': {
      const mod = { address: '', network: ':network', broadcast: ':broadcast', peer: ':peer', primary: ':0' }[h.mode];
      return `(${h.ifname}${mod})`;
    }
    case 'ifaddr':
      return h.ifname;
    case 'none':
      return 'no-route';
  }
}

function addrText(a: AddrMatch): string {
  return `${a.neg ? '!' : ''}${hostText(a.host)}`;
}

function portItemText(p: PortMatch, inList: boolean): string {
  switch (p.op) {
    case ':':
      return `${p.lo}:${p.hi}`;
    case '><':
    case '<>':
      return `${p.lo} ${p.op} ${p.hi}`;
    case '=':
      return inList ? String(p.lo) : `= ${p.lo}`;
    default:
      return `${p.op} ${p.lo}`;
  }
}

function portsText(ps: PortMatch[]): string {
  if (ps.length === 1) return `port ${portItemText(ps[0]!, false)}`;
  return `port { ${ps.map((p) => portItemText(p, true)).join(' ')} }`;
}

const FLAG_ORDER = 'FSRPAUEW';
export function flagText(v: number): string {
  let s = '';
  for (const ch of FLAG_ORDER) if (v & TCP_FLAG_BITS[ch as keyof typeof TCP_FLAG_BITS]) s += ch;
  return s;
}

function logText(l: LogOptions): string {
  const o: string[] = [];
  if (l.all) o.push('all');
  if (l.matches) o.push('matches');
  if (l.user) o.push('user');
  if (l.to !== undefined) o.push(`to ${l.to}`);
  return o.length ? `log (${o.join(', ')})` : 'log';
}

function redirText(r: Redirect): string {
  let s = list(r.hosts, hostText);
  if (r.port) s += r.port.lo === r.port.hi ? ` port ${r.port.lo}` : ` port ${r.port.lo}:${r.port.hi}`;
  return s;
}

export function scrubText(s: ScrubOptions): string {
  const o: string[] = [];
  if (s.noDf) o.push('no-df');
  if (s.randomId) o.push('random-id');
  if (s.minTtl !== undefined) o.push(`min-ttl ${s.minTtl}`);
  if (s.maxMss !== undefined) o.push(`max-mss ${s.maxMss}`);
  if (s.reassembleTcp) o.push('reassemble tcp');
  return `scrub (${o.join(' ')})`;
}

export function scrubIsEmpty(s: ScrubOptions): boolean {
  return !s.noDf && !s.randomId && s.minTtl === undefined && s.maxMss === undefined && !s.reassembleTcp;
}

function protoText(n: number): string {
  return PROTOCOL_NAMES[n] ?? String(n);
}

export function renderParts(p: RuleParts): string {
  const w: string[] = [];
  if (p.action === 'anchor') w.push(`anchor "${p.anchorName ?? ''}"`);
  else if (p.action === 'block') w.push(p.blockPolicy ? `block ${p.blockPolicy}` : 'block');
  else w.push(p.action);
  if (p.dir) w.push(p.dir);
  if (p.log) w.push(logText(p.log));
  if (p.quick) w.push('quick');
  if (p.ifaces) w.push(`on ${list(p.ifaces, (i) => `${i.neg ? '!' : ''}${i.name}`)}`);
  if (p.af) w.push(p.af);
  if (p.protos) w.push(`proto ${list(p.protos, protoText)}`);
  if (!p.src && !p.srcPorts && !p.dst && !p.dstPorts) w.push('all');
  else {
    w.push(`from ${p.src ? list(p.src, addrText) : 'any'}`);
    if (p.srcPorts) w.push(portsText(p.srcPorts));
    w.push(`to ${p.dst ? list(p.dst, addrText) : 'any'}`);
    if (p.dstPorts) w.push(portsText(p.dstPorts));
  }
  if (p.flags === 'any') w.push('flags any');
  else if (p.flags) w.push(`flags ${flagText(p.flags.bits)}/${flagText(p.flags.mask)}`);
  if (p.icmp) {
    const tab = p.icmp.v6 ? ICMP6_TYPES : ICMP_TYPES;
    const one = (i: { type: number; code: number | null }): string =>
      `${nameOf(tab, i.type) ?? i.type}${i.code !== null ? ` code ${i.code}` : ''}`;
    w.push(`${p.icmp.v6 ? 'icmp6-type' : 'icmp-type'} ${list(p.icmp.items, one)}`);
  }
  if (p.state) w.push(p.state === 'none' ? 'no state' : `${p.state} state`);
  if (p.natTo) w.push(`nat-to ${redirText(p.natTo)}`);
  if (p.rdrTo) w.push(`rdr-to ${redirText(p.rdrTo)}`);
  if (p.scrub && !scrubIsEmpty(p.scrub)) w.push(scrubText(p.scrub));
  return w.join(' ');
}

/** The anchor name as written inside `ruleset`: relative below it, absolute (`/x`) otherwise. */
export function anchorNameIn(ruleset: string, absolute: string): string {
  if (ruleset === '') return absolute;
  if (absolute.startsWith(ruleset + '/')) return absolute.slice(ruleset.length + 1);
  return '/' + absolute;
}

export function ruleParts(r: IrRule): RuleParts {
  const stateful = r.action === 'pass' && r.state !== 'none';
  return {
    action: r.action,
    blockPolicy: r.action === 'block' ? (r.blockPolicy ?? 'drop') : null,
    dir: r.dir,
    quick: r.quick,
    log: r.log,
    ifaces: r.iface ? [r.iface] : null,
    af: r.af,
    protos: r.proto === null ? null : [r.proto],
    src: r.src.host.type === 'any' && !r.src.neg ? null : [r.src],
    srcPorts: r.srcPort ? [r.srcPort] : null,
    dst: r.dst.host.type === 'any' && !r.dst.neg ? null : [r.dst],
    dstPorts: r.dstPort ? [r.dstPort] : null,
    // A stateful pass rule that may see TCP gets S/SA unless told otherwise: print `flags any`
    // when the rule has no flag test, so the text does not gain the default when parsed again.
    flags: r.flags ?? (stateful && (r.proto === null || r.proto === 6) ? 'any' : null),
    icmp: r.icmpType ? { v6: r.af === 'inet6', items: [r.icmpType] } : null,
    state: r.action === 'pass' ? r.state : null,
    natTo: r.natTo,
    rdrTo: r.rdrTo,
    scrub: r.scrub,
    anchorName: r.call ? anchorNameIn(r.ruleset, r.call.name) : null,
  };
}

/** One expanded rule in canonical pf syntax. */
export function renderRule(r: IrRule): string {
  return renderParts(ruleParts(r));
}

/** The body of one ruleset, for `pfctl -a ztb/<path> -f -` (anchor rules without bodies). */
export function renderAnchor(ir: Ir, path: string): string {
  const rs = ir.rulesets[path];
  if (!rs) throw new RangeError(`no ruleset '${path}' in this policy`);
  return rs.rules.map((id) => renderRule(ir.rules[id]!) + '\n').join('');
}

function tableText(ir: Ir): string[] {
  const out: string[] = [];
  for (const t of Object.values(ir.tables)) {
    let s = `table <${t.name}>`;
    if (t.persist) s += ' persist';
    if (t.constant) s += ' const';
    const entries = t.entries.map((e) => `${e.neg ? '!' : ''}${prefixText(e.prefix)}`);
    if (entries.length) s += ` { ${entries.join(' ')} }`;
    out.push(s);
  }
  return out;
}

/**
 * The whole policy as one pf.conf. Anchor bodies are written inline, in the multi-line form
 * pfctl accepts, under the first anchor rule of their parent that calls them by name. A ruleset
 * that no such rule calls (reached only through `anchor "x/*"`, or not at all) cannot be written
 * inline without adding a rule; it is appended as a comment block naming the pfctl command that
 * loads it (renderAnchor gives its text).
 */
export function renderPfConf(ir: Ir): string {
  const out: string[] = [];
  const o = ir.options;
  if (o.skip.length) out.push(`set skip on ${o.skip.length === 1 ? o.skip[0] : `{ ${o.skip.join(' ')} }`}`);
  out.push(`set block-policy ${o.blockPolicy}`);
  if (o.loginterface) out.push(`set loginterface ${o.loginterface}`);
  if (o.statePolicy !== 'floating') out.push(`set state-policy ${o.statePolicy}`);
  out.push(...tableText(ir));
  const emitted = new Set<string>(['']);
  const body = (path: string, indent: string): void => {
    const rs = ir.rulesets[path];
    if (!rs) return;
    for (const id of rs.rules) {
      const r = ir.rules[id]!;
      const text = renderRule(r);
      const child = r.call && !r.call.wildcard ? r.call.name : null;
      const inlineable =
        child !== null && !emitted.has(child) && child.startsWith(path === '' ? '' : path + '/') &&
        !child.slice(path === '' ? 0 : path.length + 1).includes('/') && (ir.rulesets[child]?.rules.length ?? 0) > 0;
      if (inlineable) {
        emitted.add(child);
        out.push(`${indent}${text} {`);
        body(child, indent + '  ');
        out.push(`${indent}}`);
      } else out.push(indent + text);
    }
  };
  body('', '');
  for (const path of Object.keys(ir.rulesets).sort()) {
    const rs = ir.rulesets[path]!;
    if (emitted.has(path) || rs.rules.length === 0) continue;
    out.push(`# ruleset "${path}" is not called inline; load it with: pfctl -a "${path}" -f -`);
    for (const id of rs.rules) out.push(`#   ${renderRule(ir.rules[id]!)}`);
  }
  return out.join('\n') + '\n';
}
