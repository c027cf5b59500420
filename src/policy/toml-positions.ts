// Policy layer: source positions for the TOML policy document. smol-toml returns plain values
// without positions, so this file re-scans the raw text (already known to be valid TOML, because
// smol-toml parsed it first) and records, for every key path it sees — `tenants[1].workloads[0].ip`,
// `isolation.allowed_ports[2]` — where the key and its value start, and, for strings, where the
// content starts. Validation errors use it to say `file:line:col`, and tenant `rules` strings use
// it so pf errors inside them point into the TOML file. The scanner only follows TOML's structure
// (headers, keys, strings, arrays, inline tables); it does not re-validate anything.

export type PathSeg = string | number;

export interface LineCol {
  line: number;
  col: number;
}

export interface PathEntry {
  key: LineCol;
  value: LineCol;
  /** For string values: where the content starts (after the delimiter and, for multi-line
   *  strings, after the trimmed first newline) and whether the raw text has escapes, which make
   *  positions inside the string approximate. */
  content?: LineCol & { escaped: boolean };
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;
const BARE_RUN = /[A-Za-z0-9_-]+/y;

/** The formatted path of `base` (already formatted) extended by one segment. */
function appendSeg(base: string, seg: PathSeg): string {
  if (typeof seg === 'number') return `${base}[${seg}]`;
  const k = BARE_KEY.test(seg) ? seg : JSON.stringify(seg);
  return base === '' ? k : `${base}.${k}`;
}

/** `tenants[0].workloads[1].ip`; keys that are not bare are quoted. */
export function formatPath(path: readonly PathSeg[]): string {
  let out = '';
  for (const seg of path) out = appendSeg(out, seg);
  return out;
}

/** What the scanner keeps per path: offsets only; line/col are computed when asked for, so a
 *  large document costs one small record per value. */
interface RawEntry {
  key: number;
  value: number;
  /** Content offset of a string value, -1 otherwise. */
  content: number;
  escaped: boolean;
}

export class TomlPositions {
  readonly #entries = new Map<string, RawEntry>();
  readonly #lineStarts: number[];

  constructor(text: string) {
    const sc = new Scanner(text, this.#entries);
    sc.document();
    this.#lineStarts = sc.lineStarts;
  }

  #pos(offset: number): LineCol {
    const ls = this.#lineStarts;
    let lo = 0;
    let hi = ls.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ls[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - ls[lo]! + 1 };
  }

  get(path: readonly PathSeg[]): PathEntry | undefined {
    const r = this.#entries.get(formatPath(path));
    if (!r) return undefined;
    const e: PathEntry = { key: this.#pos(r.key), value: this.#pos(r.value) };
    if (r.content >= 0) e.content = { ...this.#pos(r.content), escaped: r.escaped };
    return e;
  }

  /** Position for a message about `path`: the entry itself, else its nearest recorded ancestor,
   *  else the start of the document. `at: 'key'` points at the key rather than the value. */
  locate(path: readonly PathSeg[], at: 'key' | 'value' = 'value'): LineCol {
    for (let n = path.length; n > 0; n--) {
      const e = this.#entries.get(formatPath(path.slice(0, n)));
      if (e) return this.#pos(n === path.length ? e[at] : e.key);
    }
    return { line: 1, col: 1 };
  }
}

class Scanner {
  readonly #s: string;
  readonly #out: Map<string, RawEntry>;
  readonly lineStarts: number[] = [0];
  #i = 0;
  /** Array-of-tables element counts, keyed by the formatted resolved path of the array. */
  readonly #aot = new Map<string, number>();

  constructor(s: string, out: Map<string, RawEntry>) {
    this.#s = s;
    this.#out = out;
    for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) this.lineStarts.push(i + 1);
  }

  /** `k` is the formatted path (the scanner carries formatted paths, not arrays). */
  #record(k: string, key: number, value: number, content = -1, escaped = false): void {
    // The first place a path is written is where it is defined; keep that.
    if (this.#out.has(k)) return;
    this.#out.set(k, { key, value, content, escaped });
  }

  #skipSpace(newlines: boolean): void {
    const s = this.#s;
    while (this.#i < s.length) {
      const c = s[this.#i];
      if (c === ' ' || c === '\t') this.#i++;
      else if (newlines && (c === '\n' || c === '\r')) this.#i++;
      else if (newlines && c === '#') this.#skipComment();
      else break;
    }
  }

  #skipComment(): void {
    while (this.#i < this.#s.length && this.#s[this.#i] !== '\n') this.#i++;
  }

  document(): void {
    const s = this.#s;
    let table = '';
    while (true) {
      this.#skipSpace(true);
      if (this.#i >= s.length) return;
      const start = this.#i;
      if (s[this.#i] === '[') {
        const aot = s[this.#i + 1] === '[';
        this.#i += aot ? 2 : 1;
        this.#skipSpace(false);
        const keys = this.#key();
        this.#skipSpace(false);
        this.#i += aot ? 2 : 1;
        if (aot) {
          const arr = this.#resolve(keys.slice(0, -1));
          arr.push(keys[keys.length - 1]!);
          const ak = formatPath(arr);
          const n = this.#aot.get(ak) ?? 0;
          this.#aot.set(ak, n + 1);
          this.#record(ak, start, start);
          table = appendSeg(ak, n);
        } else {
          table = formatPath(this.#resolve(keys));
        }
        this.#record(table, start, start);
        continue;
      }
      this.#keyValue(table);
      // The rest of the line can only hold whitespace and a comment.
      this.#skipSpace(false);
      if (s[this.#i] === '#') this.#skipComment();
    }
  }

  /** Resolves header keys: a segment naming an array of tables refers to its last element. */
  #resolve(keys: string[]): PathSeg[] {
    const out: PathSeg[] = [];
    for (const k of keys) {
      out.push(k);
      const n = this.#aot.get(formatPath(out));
      if (n !== undefined) out.push(n - 1);
    }
    return out;
  }

  #key(): string[] {
    const s = this.#s;
    const keys: string[] = [];
    while (true) {
      this.#skipSpace(false);
      const c = s[this.#i];
      if (c === '"') {
        const end = this.#basicEnd(this.#i + 1);
        keys.push(JSON.parse(s.slice(this.#i, end + 1)) as string);
        this.#i = end + 1;
      } else if (c === "'") {
        const end = s.indexOf("'", this.#i + 1);
        keys.push(s.slice(this.#i + 1, end));
        this.#i = end + 1;
      } else {
        BARE_RUN.lastIndex = this.#i;
        const m = BARE_RUN.exec(s);
        const k = m ? m[0] : '';
        keys.push(k);
        this.#i += Math.max(k.length, 1);
      }
      this.#skipSpace(false);
      if (s[this.#i] !== '.') return keys;
      this.#i++;
    }
  }

  #keyValue(base: string): void {
    const keyStart = this.#i;
    let path = base;
    for (const k of this.#key()) path = appendSeg(path, k);
    this.#skipSpace(false);
    this.#i++; // '='
    this.#skipSpace(false);
    this.#value(path, keyStart);
  }

  /** Index of the closing quote of a basic string whose content starts at `from`. */
  #basicEnd(from: number): number {
    const s = this.#s;
    let i = from;
    while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
    return i;
  }

  #value(path: string, keyStart: number): void {
    const s = this.#s;
    const start = this.#i;
    const c = s[start];
    if (c === '"' || c === "'") {
      const q = c;
      const delim = q === '"' ? '"""' : "'''";
      const multi = s.startsWith(delim, start);
      let contentStart = start + (multi ? 3 : 1);
      if (multi) {
        if (s.startsWith('\r\n', contentStart)) contentStart += 2;
        else if (s[contentStart] === '\n') contentStart += 1;
      }
      let end: number;
      let escaped = false;
      if (multi) {
        let i = contentStart;
        if (q === "'") {
          i = s.indexOf(delim, contentStart);
          if (i < 0) i = s.length;
        } else {
          while (i < s.length && !(s.charCodeAt(i) === 0x22 && s.startsWith(delim, i))) {
            if (s.charCodeAt(i) === 0x5c) {
              escaped = true;
              i += 2;
            } else i++;
          }
        }
        // Up to two quotes right before the closing delimiter belong to the content.
        for (let extra = 0; extra < 2 && s[i + 3] === q; extra++) i++;
        end = i + 3;
      } else if (q === '"') {
        const close = this.#basicEnd(contentStart);
        escaped = s.slice(contentStart, close).includes('\\');
        end = close + 1;
      } else {
        end = s.indexOf("'", contentStart) + 1;
      }
      this.#record(path, keyStart, start, contentStart, escaped);
      this.#i = end;
      return;
    }
    this.#record(path, keyStart, start);
    if (c === '[') {
      this.#i++;
      let idx = 0;
      while (true) {
        this.#skipSpace(true);
        if (this.#i >= s.length || s[this.#i] === ']') break;
        this.#value(appendSeg(path, idx++), this.#i);
        this.#skipSpace(true);
        if (s[this.#i] === ',') this.#i++;
      }
      this.#i++;
      return;
    }
    if (c === '{') {
      this.#i++;
      while (true) {
        this.#skipSpace(true);
        if (this.#i >= s.length || s[this.#i] === '}') break;
        this.#keyValue(path);
        this.#skipSpace(true);
        if (s[this.#i] === ',') this.#i++;
      }
      this.#i++;
      return;
    }
    // Scalars: numbers, booleans, dates (a date-time may hold one space).
    while (this.#i < s.length && !',]}\n\r#'.includes(s[this.#i]!)) this.#i++;
  }
}
