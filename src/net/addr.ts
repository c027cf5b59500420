// Net layer: IP and MAC address helpers for the netlink wrapper and the topology model — text <->
// the byte buffers netlink wants, canonical text (lower-case, compressed IPv6) so desired and
// actual state compare as strings.
import { isIPv4, isIPv6 } from 'node:net';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../ip.js';

export type Family = 'inet' | 'inet6';

export interface Cidr {
  af: Family;
  addr: string;
  len: number;
}

export function familyOf(ip: string): Family | null {
  if (isIPv4(ip)) return 'inet';
  if (isIPv6(ip)) return 'inet6';
  return null;
}

export function ipToBuf(ip: string): Buffer {
  const v = isIPv4(ip) ? parseIpv4(ip) : isIPv6(ip) ? parseIpv6(ip) : null;
  if (v === null) throw new TypeError(`not an IP address: ${ip}`);
  const n = isIPv4(ip) ? 4 : 16;
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = Number((v >> BigInt((n - 1 - i) * 8)) & 0xffn);
  return out;
}

export function bufToIp(b: Buffer): string {
  if (b.length !== 4 && b.length !== 16) throw new TypeError(`bad address length ${b.length}`);
  let v = 0n;
  for (const byte of b) v = (v << 8n) | BigInt(byte);
  return b.length === 4 ? formatIpv4(v) : formatIpv6(v);
}

export function canonicalIp(ip: string): string {
  return bufToIp(ipToBuf(ip));
}

/** Parses "10.0.0.1/24" (host bits allowed: this is an interface address, not a prefix). */
export function parseCidr(text: string): Cidr | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return null;
  const af = familyOf(m[1]!);
  const len = Number(m[2]);
  if (!af || len > (af === 'inet' ? 32 : 128)) return null;
  return { af, addr: canonicalIp(m[1]!), len };
}

export function cidrText(c: Cidr): string {
  return `${c.addr}/${c.len}`;
}

/** True when `ip` lies inside prefix addr/len. */
export function inPrefix(ip: string, addr: string, len: number): boolean {
  const a = ipToBuf(ip);
  const p = ipToBuf(addr);
  if (a.length !== p.length) return false;
  for (let bit = 0; bit < len; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if ((a[byte]! & mask) !== (p[byte]! & mask)) return false;
  }
  return true;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function canonicalMac(mac: string): string | null {
  const m = mac.trim().toLowerCase().replace(/-/g, ':');
  return MAC_RE.test(m) ? m : null;
}

export function macToBuf(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
}

export function bufToMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
