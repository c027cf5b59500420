// Backend layer (pf): address text -> the 16-byte struct pf_addr image and prefix masks. pf keeps
// IPv4 addresses in the first four bytes of the union in network order; the rest stays zero. We
// parse addresses ourselves instead of asking the host's resolver so the bytes never depend on the
// machine that builds the plan.
import type { AddressFamily, Prefix } from '../../policy/ir.js';

export function parseIPv4(s: string): Buffer | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

export function parseIPv6(s: string): Buffer | null {
  if (s.length === 0 || s.length > 45) return null;
  let head = s;
  let tail4: Buffer | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.') && lastColon >= 0) {
    tail4 = parseIPv4(s.slice(lastColon + 1));
    if (!tail4) return null;
    head = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = head.indexOf('::');
  if (dbl >= 0 && head.indexOf('::', dbl + 1) >= 0) return null;
  const splitGroups = (x: string): string[] => (x === '' ? [] : x.split(':'));
  let groups: string[];
  if (dbl >= 0) {
    const left = splitGroups(head.slice(0, dbl));
    const right = splitGroups(head.slice(dbl + 2));
    const fill = 8 - left.length - right.length;
    if (fill < 1) return null;
    groups = [...left, ...Array<string>(fill).fill('0'), ...right];
  } else {
    groups = head.split(':');
  }
  if (groups.length !== 8) return null;
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    out.writeUInt16BE(parseInt(g, 16), i * 2);
  }
  if (tail4) tail4.copy(out, 12);
  return out;
}

/** The 16-byte pf_addr image of an address of the given family. */
export function addrBytes(af: AddressFamily, addr: string): Buffer {
  const out = Buffer.alloc(16);
  const b = af === 'inet' ? parseIPv4(addr) : parseIPv6(addr);
  if (!b) throw new RangeError(`"${addr}" is not an ${af === 'inet' ? 'IPv4' : 'IPv6'} address`);
  b.copy(out, 0);
  return out;
}

/** The 16-byte mask with `len` leading one bits (pf stores v4 masks in the first word too). */
export function maskBytes(af: AddressFamily, len: number): Buffer {
  const max = af === 'inet' ? 32 : 128;
  if (!Number.isInteger(len) || len < 0 || len > max) throw new RangeError(`prefix length ${len} is invalid for ${af}`);
  const out = Buffer.alloc(16);
  for (let i = 0; i < len; i++) out[i >> 3]! |= 0x80 >> (i & 7);
  return out;
}

/** Parses "10.0.0.1/24" or "fe80::1" (no length = host prefix) from an interface address map. */
export function parseCidr(text: string): Prefix {
  const slash = text.indexOf('/');
  const addr = slash >= 0 ? text.slice(0, slash) : text;
  const af: AddressFamily = addr.includes(':') ? 'inet6' : 'inet';
  const max = af === 'inet' ? 32 : 128;
  const len = slash >= 0 ? Number(text.slice(slash + 1)) : max;
  if (!(af === 'inet' ? parseIPv4(addr) : parseIPv6(addr)) || !Number.isInteger(len) || len < 0 || len > max) {
    throw new RangeError(`"${text}" is not an address or CIDR`);
  }
  return { af, addr, len };
}
