// Policy layer: IPv4/IPv6 text <-> canonical form for the pf.conf compiler. The IR promises
// canonical addresses (dotted quad, RFC 5952 compressed lower-case IPv6, zero host bits) so that
// every consumer can compare prefixes as strings; this module is the one place that produces them.
// Host bits are masked like pfctl does (silently), and the result is printed canonically.
import type { AddressFamily, Prefix } from './ir.js';

// The parser and formatter live in the shared layer (src/ip.ts) so the net layer can use them too.
export { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../ip.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../ip.js';

export interface ParsedAddress {
  af: AddressFamily;
  value: bigint;
}

export function parseAddress(text: string): ParsedAddress | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { af: 'inet', value: v4 };
  const v6 = parseIpv6(text);
  if (v6 !== null) return { af: 'inet6', value: v6 };
  return null;
}

export function afBits(af: AddressFamily): number {
  return af === 'inet' ? 32 : 128;
}

/** Builds a canonical prefix; host bits are cleared (pfctl masks them too). */
export function makePrefix(a: ParsedAddress, len: number): Prefix {
  const bits = afBits(a.af);
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
  const v = a.value & mask;
  return { af: a.af, addr: a.af === 'inet' ? formatIpv4(v) : formatIpv6(v), len };
}

/** Prints a prefix the way pfctl does: host routes without the length. */
export function prefixText(p: Prefix): string {
  return p.len === afBits(p.af) ? p.addr : `${p.addr}/${p.len}`;
}
