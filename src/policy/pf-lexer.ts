// Policy layer: the pf.conf lexer. It turns one source text into tokens with 1-based positions,
// the way pfctl's yylex does: NEWLINE is a token, `\`+newline joins lines, `#` starts a comment
// outside quotes, and `$name` is replaced by the macro's raw text (recursively, never inside
// quotes). Macros are defined by the parser while it reads, so the lexer is pulled one token at
// a time. Tokens coming from a macro carry the position of the `$` that produced them, which is
// where an error in expanded text is best reported.
import type { SourcePos } from './ir.js';

export type TokKind = 'word' | 'string' | 'punct' | 'nl' | 'eof' | 'error';

export interface Token {
  kind: TokKind;
  /** word text, string contents (unquoted), or the punctuation itself. */
  text: string;
  pos: SourcePos;
}

/** Maps a (line, col) of the lexed text to a position in the document. */
export interface PosMapper {
  (line: number, col: number): SourcePos;
}

interface Frame {
  text: string;
  i: number;
  line: number;
  col: number;
  /** Macro frames: every token gets this position. */
  fixed: SourcePos | null;
  macro: string | null;
}

const PUNCT1 = new Set(['{', '}', '(', ')', '<', '>', '!', '=', '/', ',']);
const STOP = new Set([...PUNCT1, '#', '"', "'", '$']);
const MAX_MACRO_DEPTH = 32;
const MAX_EXPANSION = 4 << 20;

export interface LexError {
  pos: SourcePos;
  message: string;
}

export class Lexer {
  #frames: Frame[];
  #macros = new Map<string, string>();
  #map: PosMapper;
  #peeked: Token[] = [];
  #expanded = 0;
  readonly errors: LexError[] = [];

  constructor(text: string, map: PosMapper) {
    this.#frames = [{ text, i: 0, line: 1, col: 1, fixed: null, macro: null }];
    this.#map = map;
  }

  define(name: string, value: string): void {
    this.#macros.set(name, value);
  }

  peek(n = 0): Token {
    while (this.#peeked.length <= n) this.#peeked.push(this.#lex());
    return this.#peeked[n]!;
  }

  next(): Token {
    const t = this.peek();
    this.#peeked.shift();
    return t;
  }

  #lex(): Token {
    for (;;) {
      const f = this.#frames[this.#frames.length - 1]!;
      if (f.i >= f.text.length) {
        if (this.#frames.length > 1) {
          this.#frames.pop();
          continue;
        }
        return { kind: 'eof', text: '', pos: this.#map(f.line, f.col) };
      }
      const c = f.text[f.i]!;
      if (c === '\\' && (f.text[f.i + 1] === '\n' || (f.text[f.i + 1] === '\r' && f.text[f.i + 2] === '\n'))) {
        f.i += f.text[f.i + 1] === '\n' ? 2 : 3;
        f.line++;
        f.col = 1;
        continue;
      }
      if (c === ' ' || c === '\t' || c === '\r') {
        this.#adv(f, 1);
        continue;
      }
      if (c === '#') {
        // pfctl joins `\`+newline before it sees the comment, so such a comment goes on.
        for (;;) {
          const nl = f.text.indexOf('\n', f.i);
          if (nl < 0) {
            this.#adv(f, f.text.length - f.i);
            break;
          }
          const cont = f.text[nl - 1] === '\\' || (f.text[nl - 1] === '\r' && f.text[nl - 2] === '\\');
          if (!cont) {
            this.#adv(f, nl - f.i);
            break;
          }
          f.i = nl + 1;
          f.line++;
          f.col = 1;
        }
        continue;
      }
      const pos = f.fixed ?? this.#map(f.line, f.col);
      if (c === '\n') {
        f.i++;
        f.line++;
        f.col = 1;
        // Newlines inside macro text are only white space.
        if (f.fixed) continue;
        return { kind: 'nl', text: '\n', pos };
      }
      // pfctl accepts both quote characters; a string ends at the one that opened it.
      if (c === '"' || c === "'") {
        const q = c;
        this.#adv(f, 1);
        let s = '';
        let closed = false;
        while (f.i < f.text.length) {
          const d = f.text[f.i]!;
          if (d === '\\' && f.text[f.i + 1] === '\n') {
            f.i += 2;
            f.line++;
            f.col = 1;
            continue;
          }
          if (d === '\n') break;
          if (d === q) {
            this.#adv(f, 1);
            closed = true;
            break;
          }
          if (d === '\\' && (f.text[f.i + 1] === q || f.text[f.i + 1] === '\\')) {
            s += f.text[f.i + 1];
            this.#adv(f, 2);
            continue;
          }
          s += d;
          this.#adv(f, 1);
        }
        if (!closed) {
          this.errors.push({ pos, message: 'unterminated quoted string' });
          return { kind: 'error', text: s, pos };
        }
        return { kind: 'string', text: s, pos };
      }
      if (c === '$') {
        this.#adv(f, 1);
        let name = '';
        while (f.i < f.text.length && /[A-Za-z0-9_]/.test(f.text[f.i]!)) {
          name += f.text[f.i];
          this.#adv(f, 1);
        }
        if (name === '') {
          this.errors.push({ pos, message: "'$' without a macro name" });
          return { kind: 'error', text: '$', pos };
        }
        const value = this.#macros.get(name);
        if (value === undefined) {
          this.errors.push({ pos, message: `macro '${name}' not defined` });
          return { kind: 'error', text: `$${name}`, pos };
        }
        if (this.#frames.length > MAX_MACRO_DEPTH || this.#frames.some((fr) => fr.macro === name)) {
          this.errors.push({ pos, message: `macro '${name}' expands recursively` });
          return { kind: 'error', text: `$${name}`, pos };
        }
        // Macros that expand to several copies of each other grow exponentially with depth;
        // cap the total expanded text so such a file fails fast instead of hanging.
        this.#expanded += value.length;
        if (this.#expanded > MAX_EXPANSION) {
          this.errors.push({ pos, message: `macro expansion exceeds ${MAX_EXPANSION} bytes` });
          this.#frames.length = 1;
          f.i = f.text.length;
          return { kind: 'eof', text: '', pos };
        }
        this.#frames.push({ text: value, i: 0, line: 1, col: 1, fixed: pos, macro: name });
        continue;
      }
      if (PUNCT1.has(c)) {
        const two = c + (f.text[f.i + 1] ?? '');
        const op = two === '!=' || two === '<=' || two === '>=' || two === '<>' || two === '><' ? two : c;
        this.#adv(f, op.length);
        return { kind: 'punct', text: op, pos };
      }
      const start = f.i;
      let j = f.i;
      while (j < f.text.length) {
        const d = f.text[j]!;
        if (d === ' ' || d === '\t' || d === '\n' || d === '\r' || STOP.has(d)) break;
        if (d === '\\' && f.text[j + 1] === '\n') break;
        j++;
      }
      this.#adv(f, j - start);
      return { kind: 'word', text: f.text.slice(start, j), pos };
    }
  }

  #adv(f: Frame, n: number): void {
    f.i += n;
    f.col += n;
  }
}
