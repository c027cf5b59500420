// Policy layer: IPv4/IPv6 address and prefix arithmetic for the TOML document loader. Tenant
// subnets, gateways and workload addresses are validated and cross-checked here (containment,
// overlap, canonical form) before any pf text is generated, so a bad document is rejected with a
// TOML path instead of surfacing later as an obscure pf error. Addresses are held as bigints so
// one code path serves both families.
import { isIPv4, isIPv6 } from 'node:net';
import type { AddressFamily, Prefix } from './ir.js';

export interface ParsedAddr {
  af: AddressFamily;
  value: bigint;
}

export interface ParsedPrefix extends ParsedAddr {
  len: number;
}

const BITS: Record<AddressFamily, number> = { inet: 32, inet6: 128 };

export function familyBits(af: AddressFamily): number {
  return BITS[af];
}

function parseV4(text: string): bigint {
  let v = 0n;
  for (const part of text.split('.')) v = (v << 8n) | BigInt(Number(part));
  return v;
}

function parseV6(text: string): bigint {
  let head = text;
  let tailV4: bigint | null = null;
  // An embedded dotted quad (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = head.lastIndexOf(':');
  if (head.slice(lastColon + 1).includes('.')) {
    tailV4 = parseV4(head.slice(lastColon + 1));
    head = head.slice(0, lastColon + 1) + '0:0';
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const lg = left ? left.split(':') : [];
  const rg = right ? right.split(':') : [];
  const fill = right === undefined ? 0 : 8 - lg.length - rg.length;
  const groups = [...lg, ...Array<string>(fill).fill('0'), ...rg];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  if (tailV4 !== null) v = (v & ~0xffffffffn) | tailV4;
  return v;
}

/** Parses a bare address (no prefix length); null when it is not a valid IPv4/IPv6 address. */
export function parseAddr(text: string): ParsedAddr | null {
  if (isIPv4(text)) return { af: 'inet', value: parseV4(text) };
  // Zone ids (fe80::1%eth0) have no meaning in a policy document.
  if (isIPv6(text) && !text.includes('%')) return { af: 'inet6', value: parseV6(text) };
  return null;
}

export type PrefixProblem = 'syntax' | 'length' | 'host-bits';

/** Parses `addr/len` (a bare address is a host prefix). Host bits must be zero. */
export function parsePrefix(text: string): ParsedPrefix | PrefixProblem {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const a = parseAddr(addrText);
  if (!a) return 'syntax';
  const bits = BITS[a.af];
  let len = bits;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(lenText)) return 'length';
    len = Number(lenText);
    if (len > bits) return 'length';
  }
  if ((a.value & hostMask(a.af, len)) !== 0n) return 'host-bits';
  return { ...a, len };
}

function hostMask(af: AddressFamily, len: number): bigint {
  const bits = BITS[af];
  return (1n << BigInt(bits - len)) - 1n;
}

export function formatAddr(af: AddressFamily, value: bigint): string {
  if (af === 'inet') {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function formatPrefix(p: ParsedPrefix): string {
  return `${formatAddr(p.af, p.value)}/${p.len}`;
}

export function toIrPrefix(p: ParsedPrefix): Prefix {
  return { af: p.af, addr: formatAddr(p.af, p.value), len: p.len };
}

/** True when address `a` lies inside prefix `p`. */
export function prefixContains(p: ParsedPrefix, a: ParsedAddr): boolean {
  if (p.af !== a.af) return false;
  const shift = BigInt(BITS[p.af] - p.len);
  return a.value >> shift === p.value >> shift;
}

/** True when the two prefixes share at least one address (one contains the other). */
export function prefixesOverlap(a: ParsedPrefix, b: ParsedPrefix): boolean {
  if (a.af !== b.af) return false;
  const len = Math.min(a.len, b.len);
  const shift = BigInt(BITS[a.af] - len);
  return a.value >> shift === b.value >> shift;
}

/** The subnet's network address (IPv4 prefixes up to /30 reserve it). */
export function isNetworkAddress(p: ParsedPrefix, a: ParsedAddr): boolean {
  return p.af === 'inet' && p.len <= 30 && a.value === p.value;
}

/** The subnet's broadcast address (IPv4 prefixes up to /30). */
export function isBroadcastAddress(p: ParsedPrefix, a: ParsedAddr): boolean {
  return p.af === 'inet' && p.len <= 30 && a.value === (p.value | hostMask(p.af, p.len));
}

/** Parses `aa:bb:cc:dd:ee:ff` (or with `-`); returns the canonical lower-case colon form. */
export function parseMac(text: string): { mac: string; multicast: boolean; zero: boolean } | null {
  if (!/^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$/.test(text)) return null;
  const parts = text.toLowerCase().split(/[:-]/);
  const first = parseInt(parts[0]!, 16);
  return { mac: parts.join(':'), multicast: (first & 1) === 1, zero: parts.every((p) => p === '00') };
}
