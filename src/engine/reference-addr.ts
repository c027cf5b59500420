// Engine layer: IP address arithmetic for the reference evaluator and the packet-line parser.
// Addresses are held as bigints (32 bits for inet, 128 for inet6) so prefix tests are one mask and
// one compare, and every address the evaluator reports is re-formatted canonically (dotted quad;
// RFC 5952 compressed lower-case IPv6) so two spellings of one address never make two state keys.
import type { AddressFamily, Prefix } from '../policy/ir.js';

export interface ParsedAddr {
  af: AddressFamily;
  value: bigint;
}

function parseV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    // No leading zeros (they are octal to some parsers), no signs, no empty parts.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  if (s.length === 0 || s.length > 45) return null;
  let tail4: bigint | null = null;
  let body = s;
  // An embedded IPv4 tail (::ffff:10.0.0.1) supplies the last 32 bits.
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.slice(lastColon + 1).includes('.')) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === null) return null;
    body = s.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = body.indexOf('::');
  if (dbl >= 0 && body.indexOf('::', dbl + 1) >= 0) return null;
  const groupsOf = (x: string): string[] | null => (x === '' ? [] : x.split(':'));
  let groups: string[];
  if (dbl >= 0) {
    const head = groupsOf(body.slice(0, dbl));
    const tail = groupsOf(body.slice(dbl + 2));
    if (!head || !tail) return null;
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...Array<string>(missing).fill('0'), ...tail];
  } else {
    groups = body.split(':');
  }
  if (groups.length !== 8) return null;
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== null) v = (v & ~0xffffffffn) | tail4;
  return v;
}

/** Parses an address of either family; null when it is not a literal address. */
export function parseAddr(s: string): ParsedAddr | null {
  const v4 = parseV4(s);
  if (v4 !== null) return { af: 'inet', value: v4 };
  if (s.includes(':')) {
    const v6 = parseV6(s);
    if (v6 !== null) return { af: 'inet6', value: v6 };
  }
  return null;
}

export function addrBits(af: AddressFamily): number {
  return af === 'inet' ? 32 : 128;
}

export function formatAddr(a: ParsedAddr): string {
  if (a.af === 'inet') {
    const v = a.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  }
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted tail.
  if (a.value >> 32n === 0xffffn) return `::ffff:${formatAddr({ af: 'inet', value: a.value & 0xffffffffn })}`;
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (first on ties) of two or more zero groups.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parsed address plus its canonical text, memoised: the evaluator sees the same few thousand
 *  addresses over and over, and parsing dominated its profile. Cleared when full, so the memory
 *  stays bounded whatever the traffic. */
const MEMO_MAX = 1 << 16;
const memo = new Map<string, { addr: ParsedAddr; text: string } | null>();
export function parseAddrMemo(s: string): { addr: ParsedAddr; text: string } | null {
  let hit = memo.get(s);
  if (hit === undefined) {
    const a = parseAddr(s);
    hit = a ? { addr: a, text: formatAddr(a) } : null;
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(s, hit);
  }
  return hit;
}

/** Canonical text of an address; throws nothing, returns null for non-addresses. */
export function canonicalAddr(s: string): string | null {
  const a = parseAddr(s);
  return a ? formatAddr(a) : null;
}

export function maskOf(af: AddressFamily, len: number): bigint {
  const bits = BigInt(addrBits(af));
  if (len <= 0) return 0n;
  return ((1n << BigInt(len)) - 1n) << (bits - BigInt(len));
}

/** A prefix in evaluator form. */
export interface NumPrefix {
  af: AddressFamily;
  value: bigint;
  len: number;
}

export function toNumPrefix(p: Prefix): NumPrefix {
  const a = parseAddr(p.addr);
  if (!a || a.af !== p.af) throw new Error(`bad prefix address ${p.addr}`);
  return { af: p.af, value: a.value & maskOf(p.af, p.len), len: p.len };
}

export function prefixContains(p: NumPrefix, a: ParsedAddr): boolean {
  if (p.af !== a.af) return false;
  return (a.value & maskOf(p.af, p.len)) === p.value;
}

/** Parses "addr/len" or "addr" (full length). */
export function parseCidr(s: string): { addr: ParsedAddr; len: number } | null {
  const slash = s.indexOf('/');
  const a = parseAddr(slash >= 0 ? s.slice(0, slash) : s);
  if (!a) return null;
  const max = addrBits(a.af);
  if (slash < 0) return { addr: a, len: max };
  const ls = s.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(ls)) return null;
  const len = Number(ls);
  if (len > max) return null;
  return { addr: a, len };
}
