// Test helper: random pf.conf policies and packet sequences for differential tests (reference
// evaluator vs native engine vs nftables vs pf). Everything is driven by one seeded PRNG so a
// failure is replayed from its seed (`randomPolicy(seed)`, `randomPackets(seed, n, info)`); the
// fast-check arbitraries (`arbPolicy`, `arbPacketSeq`) draw a seed and reuse the same generator,
// so shrinking works on the seed and the size only. Policies draw addresses and ports from small
// pools and packets are biased towards those pools, their edges, replies to earlier packets,
// forwarded copies and FIN/RST, so most packets hit something interesting.
import fc from 'fast-check';
import type { EvalPacket } from '../../src/engine/packet.js';
import { formatPacketLine } from '../../src/engine/packet-line.js';

/** What a generated policy may use; the kernel backends switch off what they cannot do. */
export interface GenOptions {
  /** Interface names rules and packets use (default em0, em1, vether0). */
  interfaces?: string[];
  /** inet6 rules and packets (default true). */
  inet6?: boolean;
  /** `match` rules (default true). */
  match?: boolean;
  /** nat-to / rdr-to (default true). */
  translations?: boolean;
  /** Inline, nested and wildcard anchors (default true). */
  anchors?: boolean;
  /** Tables with `!` entries (default true). */
  tables?: boolean;
  /** `no state` on pass rules (default true). */
  noState?: boolean;
  /** `block return` and `set block-policy return` (default true). */
  blockReturn?: boolean;
  /** ICMP rules and packets (default true). */
  icmp?: boolean;
  /** Interface lists and negated interfaces (default true). */
  ifaceLists?: boolean;
  /** Interface-derived addresses `(if)`, `(if:network)`, `(if:0)`, `self` (default false; pass
   *  `info.ifaddrs` to the engine under test). */
  ifAddresses?: boolean;
  /** Rules in the main ruleset, upper bound (default 12). */
  maxRules?: number;
}

export interface PolicyInfo {
  seed: number;
  /** pf.conf text. */
  text: string;
  interfaces: string[];
  /** Prefixes (CIDR) the policy draws from, per family. */
  v4: string[];
  v6: string[];
  ports: number[];
  /** Interface addresses matching the pools, for engines resolving `(if)` and `self`. */
  ifaddrs: Record<string, string[]>;
  opts: Required<GenOptions>;
}

const DEFAULTS: Required<GenOptions> = {
  interfaces: ['em0', 'em1', 'vether0'],
  inet6: true,
  match: true,
  translations: true,
  anchors: true,
  tables: true,
  noState: true,
  blockReturn: true,
  icmp: true,
  ifaceLists: true,
  ifAddresses: false,
  maxRules: 12,
};

const V4_POOL = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3/32', '192.168.1.0/24', '172.16.0.0/12', '10.1.2.128/25'];
const V6_POOL = ['2001:db8::/32', '2001:db8:1::/48', '2001:db8:1::5/128', 'fd00::/8'];
const PORT_POOL = [22, 53, 80, 443, 1024, 8080];
const TRANSLATE_V4 = ['192.168.30.2', '203.0.113.1'];
const TRANSLATE_V6 = ['2001:db8:ffff::2'];

/** mulberry32: small, fast, good enough for test data, and identical on every platform. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[Math.floor(this.next() * a.length)]!;
  }
}

/** The seed for randomized tests: ZTB_SEED when set (replay), else a fresh one. Printed. */
export function testSeed(label: string): number {
  const env = process.env.ZTB_SEED;
  const seed = env !== undefined && env !== '' ? Number(env) >>> 0 : Math.floor(Math.random() * 2 ** 31);
  console.log(`[${label}] seed=${seed} (replay with ZTB_SEED=${seed})`);
  return seed;
}

function portSpec(r: Rng): string {
  const p = r.chance(0.8) ? r.pick(PORT_POOL) : r.int(1, 65534);
  const q = Math.min(65535, p + r.pick([1, 2, 10, 1000]));
  switch (r.int(0, 10)) {
    case 0:
      return `= ${p}`;
    case 1:
      return `!= ${p}`;
    case 2:
      return `< ${p}`;
    case 3:
      return `<= ${p}`;
    case 4:
      return `> ${p}`;
    case 5:
      return `>= ${p}`;
    case 6:
      return `${p}:${q}`;
    case 7:
      return `${p} >< ${q}`;
    case 8:
      return `${p} <> ${q}`;
    case 9:
      return `{ ${p} ${r.pick(PORT_POOL)} }`;
    default:
      return String(p);
  }
}

interface Ctx {
  r: Rng;
  o: Required<GenOptions>;
  tables: string[];
  anchorNames: string[];
}

function hostSpec(c: Ctx, af: 'inet' | 'inet6'): string {
  const { r } = c;
  const pool = af === 'inet' ? V4_POOL : V6_POOL;
  const neg = r.chance(0.2) ? '! ' : '';
  const k = r.int(0, 9);
  if (k <= 5) return `${neg}${r.pick(pool)}`;
  if (k <= 7 && c.tables.length > 0) return `${neg}<${r.pick(c.tables)}>`;
  if (k === 8) return `{ ${r.pick(pool)} ${r.pick(pool)} }`;
  if (c.o.ifAddresses && r.chance(0.5)) {
    const ifname = r.pick(c.o.interfaces);
    return `${neg}${r.pick([`(${ifname})`, `(${ifname}:network)`, `(${ifname}:0)`, 'self'])}`;
  }
  return 'any';
}

/** One filter rule, without the trailing newline. */
function filterRule(c: Ctx, inAnchor: boolean): string {
  const { r, o } = c;
  const kinds: ('pass' | 'block' | 'match')[] = ['pass', 'pass', 'block', 'block'];
  if (o.match) kinds.push('match');
  const action = r.pick(kinds);
  const parts: string[] = [];
  if (action === 'block' && o.blockReturn && r.chance(0.3)) parts.push(r.chance(0.5) ? 'block return' : 'block drop');
  else parts.push(action);
  const dir = r.pick(['in', 'out', null, 'in', 'out'] as const);
  if (dir) parts.push(dir);
  if (action !== 'match' && r.chance(inAnchor ? 0.35 : 0.2)) parts.push('quick');
  if (r.chance(0.6)) {
    if (o.ifaceLists && r.chance(0.15)) parts.push(`on { ${r.pick(o.interfaces)} ${r.pick(o.interfaces)} }`);
    else if (o.ifaceLists && r.chance(0.15)) parts.push(`on ! ${r.pick(o.interfaces)}`);
    else parts.push(`on ${r.pick(o.interfaces)}`);
  }
  const af: 'inet' | 'inet6' = o.inet6 && r.chance(0.25) ? 'inet6' : 'inet';
  const translate = o.translations && (action === 'match' || action === 'pass') && dir !== null && r.chance(0.25);
  const explicitAf = translate || r.chance(0.6);
  if (explicitAf) parts.push(af);
  const protos = ['tcp', 'tcp', 'udp'];
  if (o.icmp) protos.push(af === 'inet' ? 'icmp' : 'icmp6');
  const proto = r.chance(0.8) ? r.pick(protos) : null;
  if (proto) parts.push(`proto ${proto}`);
  const ports = proto === 'tcp' || proto === 'udp';
  // Without an explicit af the addresses decide the family; keep them all in one family.
  const useAddrs = explicitAf || r.chance(0.7);
  const from = useAddrs && r.chance(0.6) ? hostSpec(c, af) : null;
  const fromPort = ports && r.chance(0.2) ? portSpec(r) : null;
  const to = useAddrs && r.chance(0.5) ? hostSpec(c, af) : null;
  const toPort = ports && r.chance(0.6) ? portSpec(r) : null;
  if (!from && !fromPort && !to && !toPort) parts.push('all');
  if (from || fromPort) parts.push(`from ${from ?? 'any'}${fromPort ? ` port ${fromPort}` : ''}`);
  if (to || toPort) parts.push(`to ${to ?? 'any'}${toPort ? ` port ${toPort}` : ''}`);
  if (action === 'pass') {
    const k = r.int(0, 9);
    if (k === 0 && o.noState && !translate) parts.push('no state');
    else if (k === 1) parts.push('keep state');
    else if (k === 2 && proto === 'tcp') parts.push('flags S/SA keep state');
  }
  if (translate) {
    const pool = af === 'inet' ? TRANSLATE_V4 : TRANSLATE_V6;
    if (dir === 'in') parts.push(`rdr-to ${r.pick(pool)}${ports && r.chance(0.5) ? ` port ${r.pick(PORT_POOL)}` : ''}`);
    else parts.push(`nat-to ${r.pick(pool)}`);
  }
  return parts.join(' ');
}

function anchorBlock(c: Ctx, name: string, depth: number, indent: string): string[] {
  const { r } = c;
  const head: string[] = [`anchor "${name}"`];
  const dir = r.pick(['in', 'out', null, null] as const);
  if (dir) head.push(dir);
  if (r.chance(0.4)) head.push('quick');
  if (r.chance(0.3)) head.push(`on ${r.pick(c.o.interfaces)}`);
  const lines = [`${indent}${head.join(' ')} {`];
  const n = r.int(1, 4);
  for (let i = 0; i < n; i++) {
    if (depth < 2 && r.chance(0.2)) lines.push(...anchorBlock(c, `${name.split('/').pop()}${i}`, depth + 1, indent + '  '));
    else lines.push(`${indent}  ${filterRule(c, true)}`);
  }
  lines.push(`${indent}}`);
  return lines;
}

/** A random policy from a seed (same seed, same options -> same text). */
export function randomPolicy(seed: number, opts: GenOptions = {}): PolicyInfo {
  const o: Required<GenOptions> = { ...DEFAULTS, ...opts };
  const r = new Rng(seed);
  const c: Ctx = { r, o, tables: [], anchorNames: [] };
  const out: string[] = [`# generated by gen-policy, seed ${seed}`];
  if (o.blockReturn && r.chance(0.2)) out.push('set block-policy return');
  if (o.tables) {
    const nt = r.int(0, 2);
    for (let i = 0; i < nt; i++) {
      const name = `t${i}`;
      const entries: string[] = [];
      const ne = r.int(1, 4);
      for (let k = 0; k < ne; k++) {
        const pool = o.inet6 && r.chance(0.2) ? V6_POOL : V4_POOL;
        entries.push(`${r.chance(0.25) ? '!' : ''}${r.pick(pool)}`);
      }
      out.push(`table <${name}> { ${[...new Set(entries)].join(' ')} }`);
      c.tables.push(name);
    }
  }
  const n = r.int(1, Math.max(1, o.maxRules));
  let wild = 0;
  for (let i = 0; i < n; i++) {
    if (o.anchors && r.chance(0.15)) {
      out.push(...anchorBlock(c, `a${i}`, 0, ''));
      c.anchorNames.push(`a${i}`);
    } else if (o.anchors && c.anchorNames.length > 0 && wild < 2 && r.chance(0.08)) {
      wild++;
      out.push(`anchor "${r.pick(c.anchorNames)}/*"${r.chance(0.4) ? ' quick' : ''}`);
    } else {
      out.push(filterRule(c, false));
    }
  }
  return { seed, text: out.join('\n') + '\n', interfaces: o.interfaces, v4: V4_POOL, v6: o.inet6 ? V6_POOL : [], ports: PORT_POOL, ifaddrs: ifaddrsFor(o), opts: o };
}

/** Interface addresses inside the pools: interface i gets 10.1.2.(i+1)/24 (and an inet6 alias),
 *  the first one also 192.168.1.1/24, so `(if)`, `(if:network)` and `(if:0)` all differ. */
function ifaddrsFor(o: Required<GenOptions>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  o.interfaces.forEach((ifname, i) => {
    const a = [`10.1.2.${i + 1}/24`];
    if (i === 0) a.push('192.168.1.1/24');
    if (o.inet6) a.push(`2001:db8:1::${i + 1}/64`);
    out[ifname] = a;
  });
  return out;
}

const v4ToNum = (s: string): number => s.split('.').reduce((a, b) => a * 256 + Number(b), 0);
const numToV4 = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** An address inside a pool prefix (often at its edges), or a random outsider. */
function addrFor(r: Rng, info: PolicyInfo, af: 'inet' | 'inet6'): string {
  if (info.opts.ifAddresses && r.chance(0.15)) {
    const mine = Object.values(info.ifaddrs).flat().filter((c) => c.includes(':') === (af === 'inet6'));
    if (mine.length > 0) return r.pick(mine).split('/')[0]!;
  }
  if (af === 'inet') {
    if (r.chance(0.15)) return numToV4(r.int(1, 2 ** 32 - 2));
    const [a, l] = r.pick(info.v4).split('/');
    const base = v4ToNum(a!);
    const size = 2 ** (32 - Number(l));
    const k = r.int(0, 4);
    const off = k === 0 ? 0 : k === 1 ? size - 1 : k === 2 && size > 1 ? size : r.int(0, size - 1);
    return numToV4((base + off) % 2 ** 32);
  }
  if (r.chance(0.15)) return `2001:db9::${r.int(1, 0xffff).toString(16)}`;
  const [a] = r.pick(info.v6).split('/');
  const host = r.int(0, 3);
  if (a!.endsWith('::')) return host === 0 ? a! : `${a}${r.int(1, 0xffff).toString(16)}`;
  return a!;
}

function portFor(r: Rng, info: PolicyInfo): number {
  const k = r.int(0, 9);
  if (k <= 4) return r.pick(info.ports);
  if (k <= 6) return Math.max(0, Math.min(65535, r.pick(info.ports) + r.pick([-1, 1, 2, 10, 1000, 1001])));
  if (k === 7) return r.pick([1, 65535, 65534]);
  return r.int(1024, 65535);
}

const FLAG_CHOICES = [0x02, 0x02, 0x02, 0x12, 0x10, 0x10, 0x11, 0x14, 0x04, 0x18, 0x03, 0x06, 0x01, 0x00];

/** A packet sequence for a policy; `info` defaults to the generator's pools. */
export function randomPackets(seed: number, n: number, info: PolicyInfo = randomPolicy(seed)): EvalPacket[] {
  const r = new Rng(seed ^ 0x5bd1e995);
  const out: EvalPacket[] = [];
  const ifs = [...info.interfaces, 'lo9'];
  for (let i = 0; i < n; i++) {
    const prev = out.length > 0 ? out[r.int(Math.max(0, out.length - 20), out.length - 1)]! : null;
    const k = r.next();
    if (prev && k < 0.3) {
      // A reply: swapped ends, opposite direction, any interface (states float).
      const flags = prev.proto === 6 ? r.pick([0x12, 0x10, 0x11, 0x14, 0x04, 0x18]) : 0;
      out.push({ ...prev, dir: prev.dir === 'in' ? 'out' : 'in', ifname: r.chance(0.7) ? prev.ifname : r.pick(ifs), src: prev.dst, dst: prev.src, sport: prev.proto === 1 || prev.proto === 58 ? prev.sport : prev.dport, dport: prev.proto === 1 || prev.proto === 58 ? prev.dport : prev.sport, tcpFlags: flags, icmpType: prev.icmpType === 8 ? 0 : prev.icmpType === 128 ? 129 : prev.icmpType });
      continue;
    }
    if (prev && k < 0.4) {
      // A forwarded copy: same tuple leaving on another interface.
      out.push({ ...prev, dir: prev.dir === 'in' ? 'out' : 'in', ifname: r.pick(ifs) });
      continue;
    }
    if (prev && k < 0.5) {
      // Later packets of the same flow, often closing it.
      out.push({ ...prev, tcpFlags: prev.proto === 6 ? r.pick([0x10, 0x11, 0x14, 0x04, 0x18]) : 0 });
      continue;
    }
    const af: 'inet' | 'inet6' = info.v6.length > 0 && r.chance(0.2) ? 'inet6' : 'inet';
    const protos = [6, 6, 17];
    if (info.opts.icmp) protos.push(af === 'inet' ? 1 : 58);
    const proto = r.pick(protos);
    const ports = proto === 6 || proto === 17;
    const pkt: EvalPacket = {
      dir: r.chance(0.5) ? 'in' : 'out',
      ifname: r.pick(ifs),
      af,
      proto,
      src: addrFor(r, info, af),
      dst: addrFor(r, info, af),
      sport: ports ? portFor(r, info) : 0,
      dport: ports ? (proto === 17 && r.chance(0.03) ? 0 : portFor(r, info)) : 0,
      tcpFlags: proto === 6 ? r.pick(FLAG_CHOICES) : 0,
    };
    if (proto === 1 || proto === 58) {
      pkt.icmpType = proto === 1 ? r.pick([8, 8, 0, 3]) : r.pick([128, 128, 129]);
      pkt.sport = r.int(0, 3);
    }
    if (r.chance(0.2)) pkt.length = r.int(40, 1500);
    out.push(pkt);
  }
  return out;
}

/** fast-check: a random policy (shrinks towards small seeds and fewer rules). */
export function arbPolicy(opts: GenOptions = {}): fc.Arbitrary<PolicyInfo> {
  return fc
    .record({ seed: fc.nat(), maxRules: fc.integer({ min: 1, max: opts.maxRules ?? DEFAULTS.maxRules }) })
    .map(({ seed, maxRules }) => randomPolicy(seed, { ...opts, maxRules }));
}

/** fast-check: a packet sequence of n packets biased to `info`. */
export function arbPacketSeq(info: PolicyInfo, n: number): fc.Arbitrary<EvalPacket[]> {
  return fc.nat().map((seed) => randomPackets(seed, n, info));
}

/** Packet lines (the `ztb-enforce test` grammar) for a sequence. */
export function packetLines(pkts: EvalPacket[]): string {
  return pkts.map(formatPacketLine).join('\n') + '\n';
}
