// Policy layer: IPv4/IPv6 address and prefix arithmetic for the TOML document loader. Tenant
// subnets, gateways and workload addresses are validated and cross-checked here (containment,
// overlap, canonical form) before any pf text is generated, so a bad document is rejected with a
// TOML path instead of surfacing later as an obscure pf error. Addresses are held as bigints so
// one code path serves both families.
import { isIPv4, isIPv6 } from 'node:net';
import type { AddressFamily, Prefix } from './ir.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../ip.js';

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

/** Parses a bare address (no prefix length); null when it is not a valid IPv4/IPv6 address. */
export function parseAddr(text: string): ParsedAddr | null {
  // node:net decides what is an address; the shared parser (src/ip.ts) gives the value, so TOML and
  // pf.conf addresses can never be read two ways. Zone ids (fe80::1%eth0) mean nothing here.
  if (isIPv4(text)) return { af: 'inet', value: parseIpv4(text)! };
  if (isIPv6(text) && !text.includes('%')) {
    const v = parseIpv6(text);
    return v === null ? null : { af: 'inet6', value: v };
  }
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
  return af === 'inet' ? formatIpv4(value) : formatIpv6(value);
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
