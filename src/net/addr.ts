// Net layer: IP and MAC address helpers for the netlink wrapper and the topology model — text <->
// the byte buffers netlink wants, canonical text (lower-case, compressed IPv6) so desired and
// actual state compare as strings.
import { isIPv4, isIPv6 } from 'node:net';

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
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new TypeError(`not an IP address: ${ip}`);
  let s = ip;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    s = s.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined ? (rest ? rest.split(':') : []) : [];
  const groups = [...h, ...Array(8 - h.length - r.length).fill('0'), ...r].map((g) => parseInt(g, 16));
  if (tail.length) groups.splice(6, 2, ...tail);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

export function bufToIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length !== 16) throw new TypeError(`bad address length ${b.length}`);
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(i * 2));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
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
