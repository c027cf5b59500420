// Shared: IPv4/IPv6 text <-> numeric value, the project's one address parser and formatter. Every
// layer (policy compiler, TOML loader, netlink wrapper, nftables backend) reads and prints
// addresses through it, so one address can never be read two ways. Values are bigints (32 bits
// for IPv4, 128 for IPv6); formatting is canonical: dotted quad, RFC 5952 compressed lower-case
// IPv6.

export function parseIpv4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

export function parseIpv6(text: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(':')) return null;
  let groups: number[] = [];
  let tail = text;
  let v4: bigint | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    v4 = parseIpv4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    // Replace the dotted quad by a placeholder group pair that we fill in afterwards.
    tail = text.slice(0, lastColon + 1) + 'ffff:ffff';
  }
  const dbl = tail.indexOf('::');
  if (dbl !== tail.lastIndexOf('::')) return null;
  const parseGroups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  if (dbl >= 0) {
    const head = parseGroups(tail.slice(0, dbl));
    const rest = parseGroups(tail.slice(dbl + 2));
    if (!head || !rest) return null;
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    const all = parseGroups(tail);
    if (!all || all.length !== 8) return null;
    groups = all;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  if (v4 !== null) v = (v & ~0xffffffffn) | v4;
  return v;
}

export function formatIpv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
}

/** RFC 5952: lower case, no leading zeros, the longest run (>= 2) of zero groups becomes `::`. */
export function formatIpv6(v: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}
