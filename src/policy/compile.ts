// Policy layer: the pf.conf compiler. It parses every PfUnit, then turns the statements into the
// IR: lists are expanded into pfctl's cartesian product, defaults are made explicit (keep state,
// flags S/SA, block policy), addresses are made canonical, families are inferred and impossible
// combinations dropped, anchor calls are resolved to ruleset paths, and pfctl's consistency checks
// are applied. Every problem is collected with its file:line:col and reported in one PolicyError.
import type {
  AddrMatch, AddressFamily, HostSpec, Ir, IrOptions, IrRule, IrRuleset, IrTable, IsolationSettings, Origin,
  PortMatch, Redirect, SourcePos, Tenant,
} from './ir.js';
import { DiagnosticSink } from './errors.js';
import { afBits, makePrefix, parseAddress } from './pf-addr.js';
import { PfParser, type EndAst, type HostItem, type RuleAst, type Stmt } from './pf-parser.js';
import { type RuleParts, renderParts, renderRule, scrubIsEmpty } from './render.js';

export interface PfUnit {
  file: string;
  text: string;
  /** ruleset path this text is the body of: "" = main ruleset, "t1" = anchor t1's body */
  ruleset: string;
  /** where `text` starts inside `file` (1-based), for positions of text embedded in another
   *  document (TOML); default 1/1 */
  line?: number;
  col?: number;
  /** generated text: every position reported is (line, col) itself */
  generated?: boolean;
}

export interface CompileInput {
  units: PfUnit[];
  tenants?: Tenant[];
  groups?: Record<string, string[]>;
  isolation?: IsolationSettings | null;
}

/** Caps: a policy beyond these is rejected rather than slowly compiled into something unusable. */
export const LIMITS = {
  inputBytes: 1 << 20,
  /** Generated text (TOML isolation rules) is bounded by the TOML loader's own caps (tenants,
   *  subnets, document size); it gets its own, larger cap so it does not eat the written budget. */
  generatedBytes: 16 << 20,
  rules: 100_000,
  /** Cartesian product of one statement's lists, before impossible families are dropped. */
  combinations: 1_000_000,
  tables: 1_000,
  tableEntries: 200_000,
  anchorDepth: 64,
  tableName: 31,
  ifName: 15,
  anchorName: 1023,
} as const;

const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ICMP = 1;
const PROTO_ICMP6 = 58;

interface Resolved {
  af: AddressFamily | null;
  match: AddrMatch;
}

class Compiler {
  readonly sink = new DiagnosticSink();
  readonly rules: IrRule[] = [];
  readonly rulesets: Record<string, IrRuleset> = { '': { path: '', rules: [] } };
  readonly tables: Record<string, IrTable> = {};
  readonly origins: Origin[] = [];
  readonly options: IrOptions = { skip: [], blockPolicy: 'drop', loginterface: null, statePolicy: 'floating' };
  readonly tableRefs: { name: string; pos: SourcePos }[] = [];
  #tableEntries = 0;
  #ruleCapReported = false;
  /** block-policy in effect while the main unit is read; later units use the final value. */
  #blockPolicy: 'drop' | 'return' = 'drop';

  ensureRuleset(path: string, pos?: SourcePos): IrRuleset {
    let rs = this.rulesets[path];
    if (!rs) {
      rs = { path, rules: [] };
      if (pos) rs.pos = pos;
      this.rulesets[path] = rs;
    } else if (pos && !rs.pos && path !== '') rs.pos = pos;
    return rs;
  }

  compileUnit(stmts: Stmt[], path: string, main: boolean): void {
    if (!main) this.#blockPolicy = this.options.blockPolicy;
    this.compileStmts(stmts, path);
  }

  compileStmts(stmts: Stmt[], path: string): void {
    for (const s of stmts) {
      if (s.kind === 'option') this.#option(s);
      else if (s.kind === 'table') this.#table(s);
      else this.#rule(s, path);
    }
  }

  #option(s: Extract<Stmt, { kind: 'option' }>): void {
    switch (s.name) {
      case 'skip':
        for (const v of s.values) {
          if (v.text === 'none') continue;
          if (!this.#ifnameOk(v.text, v.pos)) continue;
          if (!this.options.skip.includes(v.text)) this.options.skip.push(v.text);
        }
        break;
      case 'block-policy':
        this.options.blockPolicy = this.#blockPolicy = s.values[0]!.text as 'drop' | 'return';
        break;
      case 'state-policy':
        this.options.statePolicy = s.values[0]!.text as 'floating' | 'if-bound';
        break;
      case 'loginterface': {
        const v = s.values[0]!;
        if (v.text === 'none') this.options.loginterface = null;
        else if (this.#ifnameOk(v.text, v.pos)) this.options.loginterface = v.text;
        break;
      }
    }
  }

  #ifnameOk(name: string, pos: SourcePos): boolean {
    if (!/^[A-Za-z_][A-Za-z0-9_.\-]*$/.test(name)) {
      this.sink.error(pos, `invalid interface name '${name}'`);
      return false;
    }
    if (Buffer.byteLength(name) > LIMITS.ifName) {
      this.sink.error(pos, `interface name '${name}' is too long (max ${LIMITS.ifName} bytes)`);
      return false;
    }
    return true;
  }

  #table(s: Extract<Stmt, { kind: 'table' }>): void {
    if (Buffer.byteLength(s.name) > LIMITS.tableName) {
      this.sink.error(s.namePos, `table name '${s.name}' is too long (max ${LIMITS.tableName} bytes)`);
      return;
    }
    if (!/^[A-Za-z0-9_.\-]+$/.test(s.name)) {
      this.sink.error(s.namePos, `invalid table name '${s.name}'`);
      return;
    }
    if (this.tables[s.name]) {
      const prev = this.tables[s.name]!.pos;
      this.sink.error(s.namePos, `table <${s.name}> already defined at ${prev.file}:${prev.line}:${prev.col}`);
      return;
    }
    if (Object.keys(this.tables).length >= LIMITS.tables) {
      this.sink.error(s.pos, `too many tables (max ${LIMITS.tables})`);
      return;
    }
    const entries: IrTable['entries'] = [];
    for (const e of s.entries) {
      const a = parseAddress(e.text);
      if (!a) {
        this.sink.error(e.pos, `invalid address '${e.text}' in table <${s.name}>`);
        continue;
      }
      const len = e.len ?? afBits(a.af);
      if (len > afBits(a.af)) {
        this.sink.error(e.pos, `invalid prefix length /${len} for ${a.af} address '${e.text}'`);
        continue;
      }
      if (++this.#tableEntries > LIMITS.tableEntries) {
        this.sink.error(e.pos, `too many table entries (max ${LIMITS.tableEntries})`);
        break;
      }
      entries.push({ neg: e.neg, prefix: makePrefix(a, len) });
    }
    this.tables[s.name] = { name: s.name, entries, persist: s.persist, constant: s.constant, pos: s.pos };
  }

  /** Resolves one host item; null when it is invalid (already reported). */
  #host(h: HostItem): Resolved | null {
    const host = h.host;
    switch (host.type) {
      case 'any':
        return { af: null, match: { neg: h.neg, host: { type: 'any' } } };
      case 'addr': {
        const a = parseAddress(host.text);
        if (!a) {
          this.sink.error(h.pos, `invalid address '${host.text}'`);
          return null;
        }
        const len = host.len ?? afBits(a.af);
        if (len > afBits(a.af)) {
          this.sink.error(host.lenPos ?? h.pos, `invalid prefix length /${len} for ${a.af} address '${host.text}'`);
          return null;
        }
        return { af: a.af, match: { neg: h.neg, host: { type: 'prefix', prefix: makePrefix(a, len) } } };
      }
      case 'table':
        if (Buffer.byteLength(host.name) > LIMITS.tableName) {
          this.sink.error(h.pos, `table name '${host.name}' is too long (max ${LIMITS.tableName} bytes)`);
          return null;
        }
        this.tableRefs.push({ name: host.name, pos: h.pos });
        return { af: null, match: { neg: h.neg, host: { type: 'table', name: host.name } } };
      case 'dynif':
        if (!this.#ifnameOk(host.ifname, h.pos)) return null;
        return { af: null, match: { neg: h.neg, host: { type: 'dynif', ifname: host.ifname, mode: host.mode } } };
      case 'ifaddr':
        if (host.ifname !== 'self' && !this.#ifnameOk(host.ifname, h.pos)) return null;
        return { af: null, match: { neg: h.neg, host: { type: 'ifaddr', ifname: host.ifname } } };
    }
  }

  #hosts(items: HostItem[] | null): Resolved[] | null {
    if (!items) return [{ af: null, match: { neg: false, host: { type: 'any' } } }];
    const out: Resolved[] = [];
    let bad = false;
    for (const h of items) {
      const r = this.#host(h);
      if (r) out.push(r);
      else bad = true;
    }
    return bad ? null : out;
  }

  #ports(end: EndAst): PortMatch[] | null {
    if (!end.ports) return null;
    return end.ports.map((p) => ({ op: p.op, lo: p.lo, hi: p.hi }));
  }

  #resolveAnchorName(name: string, path: string, pos: SourcePos): string | null {
    let n = name;
    let base = path;
    if (n.startsWith('/')) {
      base = '';
      n = n.slice(1);
    }
    const parts = base === '' ? [] : base.split('/');
    const comps = n.split('/');
    for (let i = 0; i < comps.length; i++) {
      const c = comps[i]!;
      if (c === '*' && i === comps.length - 1) {
        parts.push(c);
        continue;
      }
      if (c === '' || c === '.' || c === '*') {
        this.sink.error(pos, `invalid anchor name "${name}"`);
        return null;
      }
      if (c === '..') {
        if (parts.length === 0) {
          this.sink.error(pos, `anchor name "${name}" goes above the main ruleset`);
          return null;
        }
        parts.pop();
        continue;
      }
      // Names go back into quoted pf text and pflog headers: keep them printable and quote-free.
      if (/[\s"'\\\x00-\x1f\x7f]/.test(c)) {
        this.sink.error(pos, `invalid character in anchor name "${name}"`);
        return null;
      }
      if (c.startsWith('_')) {
        this.sink.error(pos, `anchor names beginning with '_' are reserved: "${name}"`);
        return null;
      }
      parts.push(c);
    }
    const abs = parts.join('/');
    if (abs === '') {
      this.sink.error(pos, `invalid anchor name "${name}"`);
      return null;
    }
    if (Buffer.byteLength(abs) > LIMITS.anchorName) {
      this.sink.error(pos, `anchor path too long (max ${LIMITS.anchorName} bytes)`);
      return null;
    }
    if (parts.length > LIMITS.anchorDepth) {
      this.sink.error(pos, `anchors nested deeper than ${LIMITS.anchorDepth} levels`);
      return null;
    }
    return abs;
  }

  #rule(r: RuleAst, path: string): void {
    const errs0 = this.sink.count;
    const err = (pos: SourcePos, m: string): void => this.sink.error(pos, m);

    // --- checks copied from pfctl ---------------------------------------------------------------
    if (r.state && r.state.kind !== 'none' && r.action !== 'pass') {
      err(r.state.pos, `${r.state.kind} state is only valid on pass rules`);
    }
    if (r.natTo && r.action === 'block') err(r.natTo.pos, 'nat-to is not allowed on block rules');
    if (r.rdrTo && r.action === 'block') err(r.rdrTo.pos, 'rdr-to is not allowed on block rules');
    if (r.natTo && r.dir !== 'out') err(r.natTo.pos, "nat-to can only be used on outbound rules ('out')");
    if (r.rdrTo && r.dir !== 'in') err(r.rdrTo.pos, "rdr-to can only be used on inbound rules ('in')");
    if ((r.natTo || r.rdrTo) && r.action === 'pass' && r.state?.kind === 'none') {
      err((r.natTo ?? r.rdrTo)!.pos, 'nat-to and rdr-to on a pass rule need state (remove no state)');
    }
    if (r.action === 'anchor' && (r.natTo || r.rdrTo || r.scrub || r.flags || r.icmp)) {
      err(r.pos, 'anchor rules take only filter criteria (no translation, scrub, flags or icmp-type)');
    }
    const protos = r.protos?.map((p) => p.num) ?? null;
    for (const end of [r.from, r.to]) {
      if (end.ports && end.portPos && (!protos || protos.some((p) => p !== PROTO_TCP && p !== PROTO_UDP))) {
        err(end.portPos, 'port only applies to tcp/udp (add proto tcp or proto udp)');
      }
    }
    if (r.flags && r.flags !== 'any' && protos && protos.some((p) => p !== PROTO_TCP)) {
      err(r.flagsPos!, 'flags only apply to tcp');
    }
    if (r.icmp) {
      const want = r.icmp.v6 ? PROTO_ICMP6 : PROTO_ICMP;
      if (!protos || protos.some((p) => p !== want)) {
        err(r.icmp.pos, r.icmp.v6 ? 'icmp6-type only applies to proto icmp6' : 'icmp-type only applies to proto icmp');
      }
      if (r.af && r.af !== (r.icmp.v6 ? 'inet6' : 'inet')) {
        err(r.icmp.pos, r.icmp.v6 ? 'icmp6-type needs inet6' : 'icmp-type needs inet');
      }
    }
    if (r.ifaces) for (const i of r.ifaces) this.#ifnameOk(i.name, i.pos);
    if (r.log?.to !== undefined) this.#ifnameOk(r.log.to, r.logToPos ?? r.pos);

    let callName: string | null = null;
    let wildcard = false;
    if (r.anchor) {
      const a = r.anchor;
      if (a.body) {
        if (a.name.includes('/')) err(a.pos, `inline anchor name "${a.name}" must not contain '/'`);
        else if (a.name.startsWith('_')) err(a.pos, `anchor names beginning with '_' are reserved: "${a.name}"`);
        else if (a.name === '' || a.name === '*') err(a.pos, `invalid anchor name "${a.name}"`);
        else callName = this.#resolveAnchorName(a.name, path, a.pos);
      } else {
        callName = this.#resolveAnchorName(a.name, path, a.pos);
      }
      if (callName !== null && (callName === '*' || callName.endsWith('/*'))) {
        wildcard = true;
        callName = callName === '*' ? '' : callName.slice(0, -2);
      }
    }

    const src = this.#hosts(r.from.hosts);
    const dst = this.#hosts(r.to.hosts);
    const nat = r.natTo ? this.#hosts(r.natTo.hosts) : null;
    const rdr = r.rdrTo ? this.#hosts(r.rdrTo.hosts) : null;

    const ifaces = r.ifaces ?? [null];
    const blockPolicy = r.action === 'block' ? (r.blockPolicy ?? this.#blockPolicy) : undefined;
    const state: IrRule['state'] = r.action !== 'pass' ? 'none' : (r.state?.kind ?? 'keep');
    let scrub = r.scrub;
    if (scrub && scrubIsEmpty(scrub)) scrub = null;

    // Origin: the statement as written (after macros), lists kept.
    const written: RuleParts = {
      action: r.action,
      blockPolicy: r.blockPolicy,
      dir: r.dir,
      quick: r.quick,
      log: r.log,
      ifaces: r.ifaces?.map((i) => ({ name: i.name, neg: i.neg })) ?? null,
      af: r.af,
      protos,
      src: src && r.from.hosts ? src.map((s) => s.match) : null,
      srcPorts: this.#ports(r.from),
      dst: dst && r.to.hosts ? dst.map((s) => s.match) : null,
      dstPorts: this.#ports(r.to),
      flags: r.flags,
      icmp: r.icmp ? { v6: r.icmp.v6, items: r.icmp.items.map((i) => ({ type: i.type, code: i.code })) } : null,
      state: r.state?.kind ?? null,
      natTo: r.natTo && nat ? { hosts: nat.map((n) => n.match.host), ...(r.natTo.port ? { port: r.natTo.port } : {}) } : null,
      rdrTo: r.rdrTo && rdr ? { hosts: rdr.map((n) => n.match.host), ...(r.rdrTo.port ? { port: r.rdrTo.port } : {}) } : null,
      scrub,
      anchorName: r.anchor ? r.anchor.name : null,
    };
    const originText = renderParts(written);

    if (this.sink.count > errs0 || !src || !dst || (r.natTo && !nat) || (r.rdrTo && !rdr) || (r.anchor && callName === null)) {
      // Still compile the body of an inline anchor so its own errors are reported too.
      if (r.anchor?.body && callName !== null && !wildcard) {
        this.ensureRuleset(callName, r.pos);
        this.compileStmts(r.anchor.body, callName);
      }
      return;
    }

    const origin = this.origins.length;
    this.origins.push({ text: originText, pos: r.pos, ruleset: path });
    const rs = this.ensureRuleset(path);
    const srcPorts: (PortMatch | null)[] = this.#ports(r.from) ?? [null];
    const dstPorts: (PortMatch | null)[] = this.#ports(r.to) ?? [null];
    const protoList: (number | null)[] = protos ?? [null];
    const icmpList = r.icmp ? r.icmp.items : [null];
    let added = 0;
    // Combinations dropped for their family cost time but add no rule: bound the product itself.
    const combos = ifaces.length * protoList.length * icmpList.length * src.length * srcPorts.length * dst.length * dstPorts.length;
    if (combos > LIMITS.combinations) {
      err(r.pos, `rule expands to ${combos} combinations (max ${LIMITS.combinations})`);
      return;
    }

    const pool = (hosts: Resolved[] | null, af: AddressFamily | null, port: { lo: number; hi: number } | null):
      { red: Redirect; af: AddressFamily | null } | null => {
      if (!hosts) return null;
      let a = af;
      if (a === null) a = hosts.find((h) => h.af !== null)?.af ?? null;
      const keep = hosts.filter((h) => h.af === null || a === null || h.af === a).map((h) => h.match.host);
      if (keep.length === 0) return null;
      return { red: { hosts: keep, ...(port ? { port } : {}) }, af: a };
    };

    outer: for (const ifc of ifaces)
      for (const proto of protoList)
        for (const icmp of icmpList)
          for (const s of src)
            for (const sp of srcPorts)
              for (const d of dst)
                for (const dp of dstPorts) {
                  let af: AddressFamily | null = r.af;
                  if (icmp) af = r.icmp!.v6 ? 'inet6' : 'inet';
                  if (s.af) {
                    if (af && af !== s.af) continue;
                    af = s.af;
                  }
                  if (d.af) {
                    if (af && af !== d.af) continue;
                    af = d.af;
                  }
                  let natTo: Redirect | null = null;
                  let rdrTo: Redirect | null = null;
                  if (r.natTo) {
                    const p = pool(nat, af, r.natTo.port);
                    if (!p) continue;
                    natTo = p.red;
                    af = p.af;
                  }
                  if (r.rdrTo) {
                    const p = pool(rdr, af, r.rdrTo.port);
                    if (!p) continue;
                    rdrTo = p.red;
                    af = p.af;
                  }
                  if (this.rules.length >= LIMITS.rules) {
                    if (!this.#ruleCapReported) err(r.pos, `policy expands to more than ${LIMITS.rules} rules`);
                    this.#ruleCapReported = true;
                    break outer;
                  }
                  const stateful = r.action === 'pass' && state !== 'none';
                  let flags = r.flags === 'any' ? null : r.flags;
                  if (!r.flags && stateful && (proto === null || proto === PROTO_TCP)) flags = { bits: 0x02, mask: 0x12 };
                  // Flags only test TCP: drop a written mask from rules expanded for other protocols.
                  if (proto !== null && proto !== PROTO_TCP) flags = null;
                  const rule: IrRule = {
                    id: this.rules.length,
                    origin,
                    pos: r.pos,
                    ruleset: path,
                    nr: rs.rules.length,
                    action: r.action,
                    ...(blockPolicy ? { blockPolicy } : {}),
                    dir: r.dir,
                    quick: r.quick,
                    log: r.log ? { ...r.log } : null,
                    iface: ifc ? { name: ifc.name, neg: ifc.neg } : null,
                    af,
                    proto,
                    src: s.match,
                    srcPort: sp,
                    dst: d.match,
                    dstPort: dp,
                    flags,
                    icmpType: icmp ? { type: icmp.type, code: icmp.code } : null,
                    state,
                    natTo,
                    rdrTo,
                    scrub: scrub ? { ...scrub } : null,
                    call: callName !== null ? { name: wildcard ? (callName === '' ? '*' : `${callName}/*`) : callName, wildcard, targets: [] } : null,
                    text: '',
                  };
                  rule.text = renderRule(rule);
                  this.rules.push(rule);
                  rs.rules.push(rule.id);
                  added++;
                }
    if (added === 0 && !this.#ruleCapReported) err(r.pos, 'rule expands to no valid combination (address families do not match)');

    if (r.anchor && callName !== null) {
      if (r.anchor.body) {
        if (wildcard) err(r.anchor.pos, 'an inline anchor cannot be a wildcard');
        else {
          this.ensureRuleset(callName, r.pos);
          this.compileStmts(r.anchor.body, callName);
        }
      } else this.ensureRuleset(callName);
    }
  }

  /** Checks that need every unit: table references and anchor targets. */
  finish(): void {
    for (const ref of this.tableRefs) {
      if (!this.tables[ref.name]) this.sink.error(ref.pos, `table <${ref.name}> is not defined`);
    }
    const paths = Object.keys(this.rulesets);
    for (const r of this.rules) {
      if (!r.call) continue;
      if (r.call.wildcard) {
        const base = r.call.name === '*' ? '' : r.call.name.slice(0, -2);
        const prefix = base === '' ? '' : base + '/';
        r.call.targets = paths
          .filter((p) => p !== '' && p !== base && p.startsWith(prefix) && !p.slice(prefix.length).includes('/'))
          .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      } else r.call.targets = [r.call.name];
    }
  }
}

function posMapper(u: PfUnit): (line: number, col: number) => SourcePos {
  const bl = u.line ?? 1;
  const bc = u.col ?? 1;
  if (u.generated) return () => ({ file: u.file, line: bl, col: bc });
  return (line, col) => (line === 1 ? { file: u.file, line: bl, col: bc + col - 1 } : { file: u.file, line: bl + line - 1, col });
}

/** Compiles pf.conf units (and pass-through TOML data) to the IR; throws PolicyError with every diagnostic. */
export function compilePf(input: CompileInput): Ir {
  const c = new Compiler();
  let total = 0;
  let generated = 0;
  const sources: string[] = [];
  for (const u of input.units) {
    if (!sources.includes(u.file)) sources.push(u.file);
    if (u.generated) generated += Buffer.byteLength(u.text);
    else total += Buffer.byteLength(u.text);
    const start = posMapper(u)(1, 1);
    if (total > LIMITS.inputBytes || generated > LIMITS.generatedBytes) {
      const cap = total > LIMITS.inputBytes ? LIMITS.inputBytes : LIMITS.generatedBytes;
      c.sink.error(start, `policy input larger than ${cap} bytes`);
      break;
    }
    const path = u.ruleset;
    if (path !== '') {
      const abs = /^[A-Za-z0-9][A-Za-z0-9_.\-]*(\/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$/.test(path) ? path : null;
      if (!abs) {
        c.sink.error(start, `invalid ruleset path "${path}"`);
        continue;
      }
      if (path.split('/').length > LIMITS.anchorDepth) {
        c.sink.error(start, `anchors nested deeper than ${LIMITS.anchorDepth} levels`);
        continue;
      }
      c.ensureRuleset(path, start);
    }
    let stmts = new PfParser(u.text, posMapper(u), c.sink).parseFile();
    if (path !== '') {
      for (const s of stmts) {
        if (s.kind === 'option') c.sink.error(s.pos, "'set' is only allowed in the main ruleset");
      }
      stmts = stmts.filter((s) => s.kind !== 'option');
    }
    c.compileUnit(stmts, path, path === '');
  }
  c.finish();
  c.sink.throwIfAny();
  return {
    version: 1,
    options: c.options,
    rules: c.rules,
    rulesets: c.rulesets,
    tables: c.tables,
    origins: c.origins,
    tenants: input.tenants ?? [],
    groups: input.groups ?? {},
    isolation: input.isolation ?? null,
    sources,
  };
}
