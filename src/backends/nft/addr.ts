// Backend layer (nftables): address arithmetic the renderer needs and nftables cannot do for us —
// pf tables with `!` exceptions become interval sets (longest-prefix semantics flattened into
// disjoint ranges), and rules evaluated after a `match ... rdr-to/nat-to` are specialised by testing
// the (constant) translated address against their criteria at render time. Addresses are handled as
// bigints so IPv4 and IPv6 share one code path.
import { isIPv4, isIPv6 } from 'node:net';
import type { AddressFamily, Prefix } from '../../policy/ir.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../../ip.js';

export interface Interval {
  lo: bigint;
  hi: bigint;
}

export function afOf(ip: string): AddressFamily | null {
  if (isIPv4(ip)) return 'inet';
  if (isIPv6(ip)) return 'inet6';
  return null;
}

export function bitsOf(af: AddressFamily): number {
  return af === 'inet' ? 32 : 128;
}

export function ipToBig(ip: string): bigint {
  // One parser for the whole project (src/ip.ts).
  const v = isIPv4(ip) ? parseIpv4(ip) : isIPv6(ip) ? parseIpv6(ip) : null;
  if (v === null) throw new TypeError(`not an IP address: ${ip}`);
  return v;
}

export function bigToIp(v: bigint, af: AddressFamily): string {
  return af === 'inet' ? formatIpv4(v) : formatIpv6(v);
}

export function prefixInterval(p: Prefix): Interval {
  const bits = bitsOf(p.af);
  const base = ipToBig(p.addr);
  const span = (1n << BigInt(bits - p.len)) - 1n;
  return { lo: base & ~span & ((1n << BigInt(bits)) - 1n), hi: (base & ~span) | span };
}

export function prefixContains(p: Prefix, ip: string): boolean {
  if (afOf(ip) !== p.af) return false;
  const { lo, hi } = prefixInterval(p);
  const v = ipToBig(ip);
  return v >= lo && v <= hi;
}

/** Parses "10.0.0.1/24" (or a bare address) into its address and prefix length. */
export function parseCidr(cidr: string): { af: AddressFamily; addr: string; len: number } | null {
  const [addr, lenText] = cidr.split('/') as [string, string | undefined];
  const af = afOf(addr);
  if (!af) return null;
  const len = lenText === undefined ? bitsOf(af) : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > bitsOf(af)) return null;
  return { af, addr, len };
}

/** The network prefix a CIDR address belongs to (host bits cleared). */
export function networkOf(cidr: { af: AddressFamily; addr: string; len: number }): Prefix {
  const bits = bitsOf(cidr.af);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - cidr.len)) - 1n);
  return { af: cidr.af, addr: bigToIp(ipToBig(cidr.addr) & mask, cidr.af), len: cidr.len };
}

export function broadcastOf(cidr: { af: AddressFamily; addr: string; len: number }): string | null {
  if (cidr.af !== 'inet' || cidr.len >= 31) return null;
  return bigToIp(prefixInterval(networkOf(cidr)).hi, 'inet');
}

function union(list: Interval[], add: Interval): Interval[] {
  const out: Interval[] = [];
  let cur = add;
  for (const iv of list) {
    if (iv.hi + 1n < cur.lo || cur.hi + 1n < iv.lo) out.push(iv);
    else cur = { lo: iv.lo < cur.lo ? iv.lo : cur.lo, hi: iv.hi > cur.hi ? iv.hi : cur.hi };
  }
  out.push(cur);
  return out.sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
}

function subtract(list: Interval[], cut: Interval): Interval[] {
  const out: Interval[] = [];
  for (const iv of list) {
    if (iv.hi < cut.lo || cut.hi < iv.lo) {
      out.push(iv);
      continue;
    }
    if (iv.lo < cut.lo) out.push({ lo: iv.lo, hi: cut.lo - 1n });
    if (iv.hi > cut.hi) out.push({ lo: cut.hi + 1n, hi: iv.hi });
  }
  return out;
}

/**
 * Flattens a pf table (longest-prefix match, `!` entries as exceptions) into disjoint intervals of
 * one family. Prefixes are either nested or disjoint, so applying entries from the shortest to the
 * longest prefix lets every more specific entry override its enclosing ones — exactly what a
 * longest-prefix lookup decides.
 */
export function tableIntervals(entries: { neg: boolean; prefix: Prefix }[], af: AddressFamily): Interval[] {
  // The same prefix written both ways (`10.1.0.0/16 !10.1.0.0/16`): the exception wins, as in the
  // reference evaluator (the oracle).
  const byKey = new Map<string, { neg: boolean; prefix: Prefix }>();
  for (const e of entries) {
    if (e.prefix.af !== af) continue;
    const key = `${e.prefix.addr}/${e.prefix.len}`;
    const prev = byKey.get(key);
    if (!prev || e.neg) byKey.set(key, e);
  }
  const sorted = [...byKey.values()].sort((a, b) => a.prefix.len - b.prefix.len);
  let list: Interval[] = [];
  for (const e of sorted) list = e.neg ? subtract(list, prefixInterval(e.prefix)) : union(list, prefixInterval(e.prefix));
  return list;
}

/** Longest-prefix table lookup of one address (the static twin of the rendered set). */
export function tableContains(entries: { neg: boolean; prefix: Prefix }[], ip: string): boolean {
  let best: { neg: boolean; len: number } | null = null;
  for (const e of entries) {
    if (!prefixContains(e.prefix, ip)) continue;
    if (!best || e.prefix.len > best.len || (e.prefix.len === best.len && e.neg)) best = { neg: e.neg, len: e.prefix.len };
  }
  return best !== null && !best.neg;
}
