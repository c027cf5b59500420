// Policy layer: the pf.conf parser. It reads the token stream of one PfUnit into statements
// (options, tables, rules, anchors) with every name already resolved to numbers (protocols,
// ports, ICMP types) and every position kept, so the compiler only has to expand and validate.
// Syntax errors are collected, the parser resynchronises at the next line (skipping a whole
// brace block the bad statement opened) and carries on, so one run reports every error.
import type { AddressFamily, DynIfMode, FlagsMatch, LogOptions, PortOp, ScrubOptions, SourcePos } from './ir.js';
import { TCP_FLAG_BITS } from './ir.js';
import { Lexer, type PosMapper, type Token } from './pf-lexer.js';
import { ICMP6_TYPES, ICMP_TYPES, PROTOCOLS, SERVICES } from './pf-names.js';

export interface Located {
  pos: SourcePos;
}

export type HostAst =
  | { type: 'any' }
  | { type: 'addr'; text: string; len: number | null; lenPos: SourcePos | null }
  | { type: 'table'; name: string }
  | { type: 'dynif'; ifname: string; mode: DynIfMode }
  | { type: 'ifaddr'; ifname: string };

export interface HostItem extends Located {
  neg: boolean;
  host: HostAst;
}

export interface PortItem extends Located {
  op: PortOp;
  lo: number;
  hi: number;
}

export interface EndAst {
  /** null = any */
  hosts: HostItem[] | null;
  ports: PortItem[] | null;
  portPos: SourcePos | null;
}

export interface IfItem extends Located {
  name: string;
  neg: boolean;
}

export interface ProtoItem extends Located {
  num: number;
}

export interface IcmpItem extends Located {
  type: number;
  code: number | null;
}

export interface RedirAst extends Located {
  hosts: HostItem[];
  port: { lo: number; hi: number } | null;
}

export interface RuleAst extends Located {
  kind: 'rule';
  action: 'pass' | 'block' | 'match' | 'anchor';
  /** Written `block drop|return`. */
  blockPolicy: 'drop' | 'return' | null;
  /** Written as an old-style `scrub` statement. */
  scrubStmt: boolean;
  dir: 'in' | 'out' | null;
  quick: boolean;
  log: LogOptions | null;
  /** Where the `log (to IF)` interface was written. */
  logToPos: SourcePos | null;
  ifaces: IfItem[] | null;
  af: AddressFamily | null;
  afPos: SourcePos | null;
  protos: ProtoItem[] | null;
  from: EndAst;
  to: EndAst;
  flags: FlagsMatch | 'any' | null;
  flagsPos: SourcePos | null;
  icmp: { v6: boolean; items: IcmpItem[]; pos: SourcePos } | null;
  state: { kind: 'none' | 'keep' | 'modulate' | 'synproxy'; pos: SourcePos } | null;
  natTo: RedirAst | null;
  rdrTo: RedirAst | null;
  scrub: ScrubOptions | null;
  anchor: { name: string; pos: SourcePos; body: Stmt[] | null; bodyPos: SourcePos | null } | null;
}

export interface TableAst extends Located {
  kind: 'table';
  name: string;
  namePos: SourcePos;
  persist: boolean;
  constant: boolean;
  entries: { neg: boolean; text: string; len: number | null; pos: SourcePos }[];
}

export interface OptionAst extends Located {
  kind: 'option';
  name: 'skip' | 'block-policy' | 'loginterface' | 'state-policy';
  values: { text: string; pos: SourcePos }[];
}

export type Stmt = RuleAst | TableAst | OptionAst;

export class ParseAbort extends Error {
  /** false: the offending token starts the next statement; do not skip it. */
  constructor(readonly resync: boolean) {
    super('parse abort');
  }
}

export interface ParseSink {
  error(pos: SourcePos, message: string): void;
}

const STMT_KEYWORDS = new Set(['pass', 'block', 'match', 'anchor', 'table', 'set', 'scrub']);
const MAX_NESTING = 64;

function describe(t: Token): string {
  switch (t.kind) {
    case 'eof':
      return 'end of file';
    case 'nl':
      return 'end of line';
    case 'string':
      return `"${t.text}"`;
    default:
      return `'${t.text}'`;
  }
}

export class PfParser {
  #lx: Lexer;
  #sink: ParseSink;
  #depthBraces = 0;

  constructor(text: string, map: PosMapper, sink: ParseSink) {
    this.#lx = new Lexer(text, map);
    this.#sink = sink;
  }

  parseFile(): Stmt[] {
    const out = this.#parseBlock(0, null);
    for (const e of this.#lx.errors) this.#sink.error(e.pos, e.message);
    return out;
  }

  // ---- token helpers -------------------------------------------------------------------------

  #peek(n = 0): Token {
    return this.#lx.peek(n);
  }

  #next(): Token {
    const t = this.#lx.next();
    if (t.kind === 'error') throw new ParseAbort(true); // the lexer already reported it
    if (t.kind === 'punct' && t.text === '{') this.#depthBraces++;
    if (t.kind === 'punct' && t.text === '}') this.#depthBraces--;
    return t;
  }

  #fail(t: Token, message: string, resync = true): never {
    // An error token was already reported by the lexer: one message per mistake.
    if (t.kind !== 'error') this.#sink.error(t.pos, message);
    throw new ParseAbort(resync);
  }

  #isWord(t: Token, w?: string): boolean {
    return t.kind === 'word' && (w === undefined || t.text === w);
  }

  #isP(t: Token, p: string): boolean {
    return t.kind === 'punct' && t.text === p;
  }

  #acceptWord(w: string): Token | null {
    const t = this.#peek();
    if (this.#isWord(t, w)) return this.#next();
    if (t.kind === 'error') this.#next();
    return null;
  }

  #acceptP(p: string): Token | null {
    const t = this.#peek();
    if (this.#isP(t, p)) return this.#next();
    if (t.kind === 'error') this.#next();
    return null;
  }

  #expectP(p: string, what: string): Token {
    const t = this.#peek();
    if (this.#isP(t, p)) return this.#next();
    if (t.kind === 'error') this.#next();
    return this.#fail(t, `expected '${p}' ${what}, found ${describe(t)}`);
  }

  /** A word or a quoted string: pfctl's STRING (quoting only stops a word being a keyword). */
  #expectWord(what: string): Token {
    const t = this.#peek();
    if (t.kind === 'word' || t.kind === 'string') return this.#next();
    if (t.kind === 'error') this.#next();
    return this.#fail(t, `expected ${what}, found ${describe(t)}`);
  }

  #skipNl(): void {
    while (this.#peek().kind === 'nl') this.#next();
  }

  /**
   * Skips the rest of a bad statement: to the end of its line, past any brace block met while
   * skipping (the body of a bad anchor). A list the statement left open (`{` consumed before the
   * error) ends at the next line that starts with a statement keyword, so one missing `}` does
   * not swallow the rest of the file.
   */
  #resync(depth0: number, inBody: boolean): void {
    let skipped = 0;
    const openLists = this.#depthBraces > depth0;
    for (;;) {
      const t = this.#lx.peek();
      if (t.kind === 'eof') break;
      if (t.kind === 'nl' && skipped <= 0) {
        if (this.#depthBraces <= depth0) break;
        if (openLists) {
          let k = 1;
          while (this.#lx.peek(k).kind === 'nl') k++;
          const n = this.#lx.peek(k);
          if (n.kind === 'word' && STMT_KEYWORDS.has(n.text)) break;
        }
      }
      // Inside an anchor body a `}` at our depth closes the body; at top level it is part of the
      // bad statement (already reported), so skip it.
      if (this.#isP(t, '}') && this.#depthBraces <= depth0 && inBody) break;
      this.#lx.next();
      if (this.#isP(t, '{')) {
        this.#depthBraces++;
        skipped++;
      }
      if (this.#isP(t, '}')) {
        this.#depthBraces--;
        skipped--;
      }
    }
    this.#depthBraces = depth0;
  }

  // ---- statements ----------------------------------------------------------------------------

  /** Statements until EOF (level 0) or the `}` closing an inline anchor (level > 0). */
  #parseBlock(level: number, open: Token | null): Stmt[] {
    const out: Stmt[] = [];
    for (;;) {
      this.#skipNl();
      const t = this.#peek();
      if (t.kind === 'eof') {
        if (open) this.#sink.error(open.pos, "'{' of anchor body is not closed");
        return out;
      }
      if (this.#isP(t, '}')) {
        if (open) {
          this.#next();
          return out;
        }
        this.#next();
        this.#sink.error(t.pos, "unexpected '}'");
        continue;
      }
      const depth0 = this.#depthBraces;
      try {
        const s = this.#parseStatement(level);
        if (s) out.push(s);
        const end = this.#peek();
        if (end.kind === 'nl' || end.kind === 'eof' || (open && this.#isP(end, '}'))) continue;
        this.#fail(end, `unexpected ${describe(end)}`);
      } catch (e) {
        if (!(e instanceof ParseAbort)) throw e;
        this.#depthBraces = Math.max(this.#depthBraces, depth0);
        if (e.resync) this.#resync(depth0, open !== null);
        else this.#depthBraces = depth0;
      }
    }
  }

  #parseStatement(level: number): Stmt | null {
    const t = this.#peek();
    if (t.kind === 'error') {
      this.#next();
    }
    if (t.kind === 'string') this.#fail(t, `unexpected ${describe(t)}`);
    if (t.kind !== 'word') this.#fail(t, `unexpected ${describe(t)}`);
    // macro definition: NAME = value
    if (this.#isP(this.#peek(1), '=')) {
      if (level > 0) this.#fail(t, 'macros cannot be defined inside an anchor body');
      return this.#parseMacro();
    }
    switch (t.text) {
      case 'set':
        if (level > 0) this.#fail(t, "'set' is not allowed inside an anchor");
        return this.#parseOption();
      case 'table':
        if (level > 0) this.#fail(t, 'tables cannot be defined inside an inline anchor');
        return this.#parseTable();
      case 'pass':
      case 'block':
      case 'match':
      case 'anchor':
      case 'scrub':
        return this.#parseRule(level);
      default:
        return this.#fail(t, `unknown keyword '${t.text}'`);
    }
  }

  #parseMacro(): null {
    const name = this.#next();
    this.#next(); // '='
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name.text)) this.#fail(name, `invalid macro name '${name.text}'`);
    if (STMT_KEYWORDS.has(name.text) || RESERVED.has(name.text)) this.#fail(name, `'${name.text}' is a keyword and cannot be a macro name`);
    const parts: string[] = [];
    for (;;) {
      const t = this.#peek();
      if (t.kind === 'nl' || t.kind === 'eof') break;
      if (t.kind === 'string' || t.kind === 'word') {
        parts.push(t.text);
        this.#next();
        continue;
      }
      this.#next();
      this.#fail(t, `unexpected ${describe(t)} in macro value`);
    }
    if (parts.length === 0) this.#fail(this.#peek(), `macro '${name.text}' has no value`);
    this.#lx.define(name.text, parts.join(' '));
    return null;
  }

  #parseOption(): OptionAst {
    const set = this.#next();
    const key = this.#expectWord('an option name after set');
    const values: { text: string; pos: SourcePos }[] = [];
    const word = (what: string, allowed?: string[]): void => {
      const v = this.#expectWord(what);
      if (allowed && !allowed.includes(v.text)) this.#fail(v, `expected ${allowed.join(' or ')}, found '${v.text}'`);
      values.push({ text: v.text, pos: v.pos });
    };
    switch (key.text) {
      case 'skip': {
        const on = this.#peek();
        if (!this.#isWord(on, 'on')) this.#fail(on, `expected 'on' after set skip, found ${describe(on)}`);
        this.#next();
        const open = this.#peek();
        if (this.#isP(open, '{')) {
          this.#next();
          this.#listItemsNl(open, () => word('an interface name'));
        } else word('an interface name');
        return { kind: 'option', name: 'skip', values, pos: set.pos };
      }
      case 'block-policy':
        word('drop or return', ['drop', 'return']);
        return { kind: 'option', name: 'block-policy', values, pos: set.pos };
      case 'state-policy':
        word('floating or if-bound', ['floating', 'if-bound']);
        return { kind: 'option', name: 'state-policy', values, pos: set.pos };
      case 'loginterface':
        word('an interface name or none');
        return { kind: 'option', name: 'loginterface', values, pos: set.pos };
      default:
        return this.#fail(key, `unknown option 'set ${key.text}'`);
    }
  }

  #parseTable(): TableAst {
    const kw = this.#next();
    this.#expectP('<', 'before the table name');
    const name = this.#expectWord('a table name');
    this.#expectP('>', 'after the table name');
    let persist = false;
    let constant = false;
    for (;;) {
      const t = this.#peek();
      if (this.#isWord(t, 'persist')) persist = true;
      else if (this.#isWord(t, 'const')) constant = true;
      else if (this.#isWord(t, 'counters')) {
        /* accepted: counters are always kept by our engines */
      } else break;
      this.#next();
    }
    const entries: TableAst['entries'] = [];
    const brace = this.#peek();
    if (this.#isP(brace, '{')) {
      this.#next();
      this.#listItemsNl(brace, () => {
        let neg = false;
        const first = this.#peek();
        if (this.#acceptP('!')) neg = true;
        const a = this.#expectWord('an address');
        let len: number | null = null;
        if (this.#acceptP('/')) len = this.#number('a prefix length');
        entries.push({ neg, text: a.text, len, pos: first.pos });
      });
    } else if (this.#isWord(brace, 'file')) {
      this.#fail(brace, 'table files are not supported; list the addresses inline');
    }
    return { kind: 'table', name: name.text, namePos: name.pos, persist, constant, entries, pos: kw.pos };
  }

  /** Like #listItems, and a statement keyword at the start of a line means the `}` is missing. */
  #listItemsNl(open: Token, item: () => void): void {
    for (;;) {
      let sawNl = false;
      for (;;) {
        const t = this.#peek();
        if (t.kind === 'nl') {
          sawNl = true;
          this.#next();
        } else if (this.#isP(t, ',')) this.#next();
        else break;
      }
      const t = this.#peek();
      if (this.#isP(t, '}')) {
        this.#next();
        return;
      }
      if (t.kind === 'eof' || (sawNl && this.#isWord(t) && STMT_KEYWORDS.has(t.text))) {
        this.#sink.error(open.pos, "'{' is not closed");
        this.#depthBraces--;
        throw new ParseAbort(false);
      }
      item();
    }
  }

  #number(what: string, max = 0xffffffff): number {
    const t = this.#peek();
    if (t.kind === 'error') this.#next();
    if (t.kind !== 'word' || !/^[0-9]+$/.test(t.text)) this.#fail(t, `expected ${what}, found ${describe(t)}`);
    this.#next();
    const n = Number(t.text);
    if (n > max) this.#fail(t, `${what} ${t.text} out of range (max ${max})`);
    return n;
  }

  // ---- rules ---------------------------------------------------------------------------------

  #parseRule(level: number): RuleAst {
    const kw = this.#next();
    const r: RuleAst = {
      kind: 'rule',
      pos: kw.pos,
      action: kw.text === 'scrub' ? 'match' : (kw.text as RuleAst['action']),
      blockPolicy: null,
      scrubStmt: kw.text === 'scrub',
      dir: null,
      quick: false,
      log: null,
      logToPos: null,
      ifaces: null,
      af: null,
      afPos: null,
      protos: null,
      from: { hosts: null, ports: null, portPos: null },
      to: { hosts: null, ports: null, portPos: null },
      flags: null,
      flagsPos: null,
      icmp: null,
      state: null,
      natTo: null,
      rdrTo: null,
      scrub: null,
      anchor: null,
    };
    if (r.action === 'block') {
      const t = this.#peek();
      if (this.#isWord(t, 'drop') || this.#isWord(t, 'return')) {
        r.blockPolicy = t.text as 'drop' | 'return';
        this.#next();
      }
    }
    if (r.action === 'anchor') {
      const t = this.#peek();
      if (t.kind !== 'string' && t.kind !== 'word') this.#fail(t, `expected an anchor name, found ${describe(t)}`);
      this.#next();
      r.anchor = { name: t.text, pos: t.pos, body: null, bodyPos: null };
    }
    const d = this.#peek();
    if (this.#isWord(d, 'in') || this.#isWord(d, 'out')) {
      r.dir = d.text as 'in' | 'out';
      this.#next();
    }
    // log and quick, either order
    for (let i = 0; i < 2; i++) {
      const t = this.#peek();
      if (this.#isWord(t, 'quick') && !r.quick) {
        this.#next();
        r.quick = true;
      } else if (this.#isWord(t, 'log') && !r.log) {
        this.#next();
        r.log = this.#parseLog(r);
      }
    }
    if (this.#acceptWord('on')) r.ifaces = this.#parseIfspec();
    const af = this.#peek();
    if (this.#isWord(af, 'inet') || this.#isWord(af, 'inet6')) {
      this.#next();
      r.af = af.text as AddressFamily;
      r.afPos = af.pos;
    }
    if (this.#acceptWord('proto')) r.protos = this.#parseProtos();
    const h = this.#peek();
    if (this.#isWord(h, 'all')) this.#next();
    else {
      if (this.#acceptWord('from')) r.from = this.#parseEnd();
      if (this.#acceptWord('to')) r.to = this.#parseEnd();
    }
    this.#parseOpts(r);
    if (r.action === 'anchor' && this.#isP(this.#peek(), '{')) {
      const open = this.#next();
      if (level + 1 > MAX_NESTING) this.#fail(open, `anchors nested deeper than ${MAX_NESTING} levels`);
      r.anchor!.bodyPos = open.pos;
      r.anchor!.body = this.#parseBlock(level + 1, open);
    }
    return r;
  }

  #parseLog(r: RuleAst): LogOptions {
    const log: LogOptions = { all: false, matches: false, user: false };
    if (!this.#acceptP('(')) return log;
    for (;;) {
      this.#acceptP(',');
      const t = this.#peek();
      if (this.#isP(t, ')')) {
        this.#next();
        return log;
      }
      const w = this.#expectWord("a log option (all, matches, user, to)");
      if (w.text === 'all') log.all = true;
      else if (w.text === 'matches') log.matches = true;
      else if (w.text === 'user') log.user = true;
      else if (w.text === 'to') {
        const i = this.#expectWord('an interface after log (to');
        r.logToPos = i.pos;
        log.to = this.#ifname(i);
      }
      else this.#fail(w, `unknown log option '${w.text}'`);
    }
  }

  #ifname(t: Token): string {
    if (!/^[A-Za-z_][A-Za-z0-9_.\-]*$/.test(t.text)) this.#fail(t, `invalid interface name '${t.text}'`);
    return t.text;
  }

  #parseIfspec(): IfItem[] {
    const one = (): IfItem => {
      const first = this.#peek();
      const neg = !!this.#acceptP('!');
      const w = this.#expectWord('an interface name');
      return { name: this.#ifname(w), neg, pos: first.pos };
    };
    const open = this.#peek();
    if (this.#isP(open, '{')) {
      this.#next();
      const items: IfItem[] = [];
      this.#listItemsNl(open, () => items.push(one()));
      if (items.length === 0) this.#fail(open, 'empty interface list');
      return items;
    }
    return [one()];
  }

  #parseProtos(): ProtoItem[] {
    const one = (): ProtoItem => {
      const t = this.#expectWord('a protocol name or number');
      if (/^[0-9]+$/.test(t.text)) {
        const n = Number(t.text);
        if (n > 255) this.#fail(t, `protocol number ${t.text} out of range (max 255)`);
        return { num: n, pos: t.pos };
      }
      const n = PROTOCOLS[t.text.toLowerCase()];
      if (n === undefined) this.#fail(t, `unknown protocol '${t.text}'`);
      return { num: n, pos: t.pos };
    };
    const open = this.#peek();
    if (this.#isP(open, '{')) {
      this.#next();
      const items: ProtoItem[] = [];
      this.#listItemsNl(open, () => items.push(one()));
      if (items.length === 0) this.#fail(open, 'empty protocol list');
      return items;
    }
    return [one()];
  }

  #parseEnd(): EndAst {
    const end: EndAst = { hosts: null, ports: null, portPos: null };
    const t = this.#peek();
    if (!this.#isWord(t, 'port')) end.hosts = this.#parseHostspec();
    const p = this.#peek();
    if (this.#isWord(p, 'port')) {
      this.#next();
      end.portPos = p.pos;
      end.ports = this.#parsePorts();
    }
    return end;
  }

  /** Returns null for `any` written alone (no restriction). */
  #parseHostspec(): HostItem[] | null {
    const open = this.#peek();
    if (this.#isP(open, '{')) {
      this.#next();
      const items: HostItem[] = [];
      this.#listItemsNl(open, () => items.push(this.#parseHostItem()));
      if (items.length === 0) this.#fail(open, 'empty address list');
      return items;
    }
    const one = this.#parseHostItem();
    if (one.host.type === 'any' && !one.neg) return null;
    return [one];
  }

  #parseHostItem(): HostItem {
    const first = this.#peek();
    const neg = !!this.#acceptP('!');
    return { neg, host: this.#parseHost(), pos: first.pos };
  }

  #parseHost(): HostAst {
    const t = this.#peek();
    if (this.#isP(t, '<')) {
      this.#next();
      const name = this.#expectWord('a table name');
      this.#expectP('>', 'after the table name');
      return { type: 'table', name: name.text };
    }
    if (this.#isP(t, '(')) {
      this.#next();
      const w = this.#expectWord('an interface name');
      this.#expectP(')', 'after the interface');
      const [ifname, ...mods] = w.text.split(':');
      const ifn = this.#ifname({ ...w, text: ifname ?? '' });
      let mode: DynIfMode = 'address';
      for (const m of mods) {
        if (m === 'network') mode = 'network';
        else if (m === 'broadcast') mode = 'broadcast';
        else if (m === 'peer') mode = 'peer';
        else if (m === '0') mode = 'primary';
        else this.#fail(w, `unknown interface modifier ':${m}'`);
      }
      if (mods.length > 1) this.#fail(w, 'only one interface modifier is supported');
      return { type: 'dynif', ifname: ifn, mode };
    }
    if (t.kind !== 'word' && t.kind !== 'string') this.#fail(t, `expected an address, found ${describe(t)}`);
    this.#next();
    if (t.kind === 'word' && t.text === 'any') return { type: 'any' };
    if (t.kind === 'word' && t.text === 'self') return { type: 'ifaddr', ifname: 'self' };
    let len: number | null = null;
    let lenPos: SourcePos | null = null;
    if (this.#isP(this.#peek(), '/')) {
      this.#next();
      lenPos = this.#peek().pos;
      len = this.#number('a prefix length', 255);
    }
    if (/^[0-9a-fA-F:.]+$/.test(t.text) && (t.text.includes('.') || t.text.includes(':')) || /^[0-9]+$/.test(t.text)) {
      return { type: 'addr', text: t.text, len, lenPos: lenPos ?? t.pos };
    }
    if (len !== null) this.#fail(t, `'${t.text}/${len}': a prefix length needs an address`);
    if (t.kind === 'word' && RESERVED.has(t.text)) this.#fail(t, `expected an address, found keyword '${t.text}'`);
    // pfctl resolves any other word as a host name or an interface; we never use DNS, so a word
    // is an interface (or group) whose addresses are resolved at load.
    return { type: 'ifaddr', ifname: this.#ifname(t) };
  }

  #portValue(t: Token): number {
    if (/^[0-9]+$/.test(t.text)) {
      const n = Number(t.text);
      if (n > 65535) this.#fail(t, `port ${t.text} out of range (max 65535)`);
      return n;
    }
    const n = SERVICES[t.text];
    if (n === undefined) this.#fail(t, `unknown service '${t.text}'`);
    return n;
  }

  #parsePorts(): PortItem[] {
    const open = this.#peek();
    if (this.#isP(open, '{')) {
      this.#next();
      const items: PortItem[] = [];
      this.#listItemsNl(open, () => items.push(this.#parsePortItem()));
      if (items.length === 0) this.#fail(open, 'empty port list');
      return items;
    }
    return [this.#parsePortItem()];
  }

  #parsePortItem(): PortItem {
    const t = this.#peek();
    if (t.kind === 'punct' && ['=', '!=', '<', '<=', '>', '>='].includes(t.text)) {
      this.#next();
      const v = this.#expectWord('a port');
      const n = this.#portValue(v);
      return { op: t.text as PortOp, lo: n, hi: n, pos: t.pos };
    }
    const w = this.#expectWord('a port');
    const colon = w.text.indexOf(':');
    if (colon >= 0) {
      const a = this.#portValue({ ...w, text: w.text.slice(0, colon) });
      const b = this.#portValue({ ...w, text: w.text.slice(colon + 1) });
      if (a > b) {
        this.#sink.error(w.pos, `invalid port range ${a}:${b}: start is greater than end`);
      }
      return { op: ':', lo: a, hi: b, pos: w.pos };
    }
    const lo = this.#portValue(w);
    const op = this.#peek();
    if (this.#isP(op, '<>') || this.#isP(op, '><')) {
      this.#next();
      const hi = this.#portValue(this.#expectWord('a port'));
      return { op: op.text as PortOp, lo, hi, pos: w.pos };
    }
    return { op: '=', lo, hi: lo, pos: w.pos };
  }

  #parseOpts(r: RuleAst): void {
    for (;;) {
      const t = this.#peek();
      // old-style `scrub in all (no-df ...)`
      if (r.scrubStmt && this.#isP(t, '(')) {
        r.scrub = { ...(r.scrub ?? {}), ...this.#parseScrubOpts(false) };
        continue;
      }
      if (t.kind !== 'word') return;
      switch (t.text) {
        case 'flags': {
          this.#next();
          if (r.flags) this.#fail(t, 'flags given twice');
          r.flagsPos = t.pos;
          if (this.#acceptWord('any')) {
            r.flags = 'any';
            break;
          }
          let bits = 0;
          const b = this.#peek();
          if (b.kind === 'word') {
            this.#next();
            bits = this.#flagBits(b);
          }
          this.#expectP('/', "in flags (write flags bits/mask, e.g. S/SA)");
          const m = this.#expectWord('a flag mask');
          const mask = this.#flagBits(m);
          if ((bits & ~mask) !== 0) this.#fail(b, `flags ${b.text}/${m.text}: bits outside the mask never match`);
          r.flags = { bits, mask };
          break;
        }
        case 'icmp-type':
        case 'icmp6-type': {
          this.#next();
          if (r.icmp) this.#fail(t, 'icmp-type given twice');
          const v6 = t.text === 'icmp6-type';
          const items: IcmpItem[] = [];
          const one = (): void => {
            const w = this.#expectWord('an ICMP type');
            const tab = v6 ? ICMP6_TYPES : ICMP_TYPES;
            const type = /^[0-9]+$/.test(w.text) ? Number(w.text) : tab[w.text];
            if (type === undefined || type > 255) this.#fail(w, `unknown ${t.text} '${w.text}'`);
            let code: number | null = null;
            if (this.#acceptWord('code')) code = this.#number('an ICMP code', 255);
            items.push({ type, code, pos: w.pos });
          };
          const open = this.#peek();
          if (this.#isP(open, '{')) {
            this.#next();
            this.#listItemsNl(open, one);
          } else one();
          r.icmp = { v6, items, pos: t.pos };
          break;
        }
        case 'keep':
        case 'modulate':
        case 'synproxy':
        case 'no': {
          this.#next();
          const s = this.#peek();
          if (!this.#isWord(s, 'state')) this.#fail(s, `expected 'state' after '${t.text}', found ${describe(s)}`);
          this.#next();
          if (r.state) this.#fail(t, 'state option given twice');
          r.state = { kind: t.text === 'no' ? 'none' : (t.text as 'keep'), pos: t.pos };
          if (this.#isP(this.#peek(), '(')) this.#fail(this.#peek(), 'state options are not supported');
          break;
        }
        case 'nat-to':
        case 'rdr-to': {
          this.#next();
          const hosts: HostItem[] = [];
          const open = this.#peek();
          if (this.#isP(open, '{')) {
            this.#next();
            this.#listItemsNl(open, () => hosts.push(this.#parseHostItem()));
          } else hosts.push(this.#parseHostItem());
          for (const h of hosts) {
            if (h.neg) this.#sink.error(h.pos, `${t.text}: a translation address cannot be negated`);
            if (h.host.type === 'any') this.#sink.error(h.pos, `${t.text}: 'any' is not a translation address`);
          }
          let port: { lo: number; hi: number } | null = null;
          const p = this.#peek();
          if (this.#isWord(p, 'port')) {
            this.#next();
            const w = this.#expectWord('a port');
            const colon = w.text.indexOf(':');
            if (colon >= 0 && colon !== w.text.length - 1) {
              port = { lo: this.#portValue({ ...w, text: w.text.slice(0, colon) }), hi: this.#portValue({ ...w, text: w.text.slice(colon + 1) }) };
              if (port.lo > port.hi) this.#sink.error(w.pos, `invalid port range ${port.lo}:${port.hi}: start is greater than end`);
            } else {
              const n = this.#portValue(w);
              port = { lo: n, hi: n };
            }
            if (t.text === 'nat-to') this.#sink.error(p.pos, 'nat-to port is not supported (source ports are chosen from 50001-65535)');
          }
          const red: RedirAst = { hosts, port, pos: t.pos };
          if (t.text === 'nat-to') {
            if (r.natTo) this.#fail(t, 'nat-to given twice');
            r.natTo = red;
          } else {
            if (r.rdrTo) this.#fail(t, 'rdr-to given twice');
            r.rdrTo = red;
          }
          break;
        }
        case 'scrub': {
          this.#next();
          r.scrub = this.#parseScrubOpts(true);
          break;
        }
        case 'no-df':
        case 'random-id':
        case 'max-mss':
        case 'min-ttl':
        case 'reassemble':
          if (!r.scrubStmt) return;
          r.scrub = { ...(r.scrub ?? {}), ...this.#parseScrubOpts(false) };
          break;
        default:
          return;
      }
    }
  }

  #parseScrubOpts(needParen: boolean): ScrubOptions {
    const s: ScrubOptions = {};
    const paren = needParen ? !!this.#expectP('(', 'after scrub') : !!this.#acceptP('(');
    for (;;) {
      this.#acceptP(',');
      const t = this.#peek();
      if (paren && this.#isP(t, ')')) {
        this.#next();
        return s;
      }
      if (!this.#isWord(t)) {
        if (!paren) return s;
        this.#fail(t, `expected a scrub option or ')', found ${describe(t)}`);
      }
      switch (t.text) {
        case 'no-df':
          this.#next();
          s.noDf = true;
          break;
        case 'random-id':
          this.#next();
          s.randomId = true;
          break;
        case 'max-mss':
          this.#next();
          s.maxMss = this.#number('an MSS', 65535);
          break;
        case 'min-ttl':
          this.#next();
          s.minTtl = this.#number('a TTL', 255);
          break;
        case 'reassemble': {
          this.#next();
          const w = this.#expectWord("'tcp' after reassemble");
          if (w.text !== 'tcp') this.#fail(w, `expected 'tcp' after reassemble, found '${w.text}'`);
          s.reassembleTcp = true;
          break;
        }
        default:
          if (!paren) return s;
          this.#fail(t, `unknown scrub option '${t.text}'`);
      }
    }
  }

  #flagBits(t: Token): number {
    let v = 0;
    for (const ch of t.text) {
      const b = (TCP_FLAG_BITS as Record<string, number>)[ch];
      if (b === undefined) this.#fail(t, `unknown TCP flag '${ch}' (use F S R P A U E W)`);
      v |= b;
    }
    return v;
  }
}

const RESERVED = new Set([
  'in', 'out', 'on', 'from', 'to', 'port', 'proto', 'inet', 'inet6', 'all', 'quick', 'log', 'flags',
  'keep', 'modulate', 'synproxy', 'state', 'no', 'nat-to', 'rdr-to', 'icmp-type', 'icmp6-type',
  'drop', 'return', 'persist', 'const',
]);
