// Policy layer: the schema of the TOML policy document, written with a small combinator library
// defined here (no extra dependency). Each schema both validates a parsed TOML value and, through
// `Infer<>`, gives the TypeScript type of the result, so the document's shape is written once.
// Validation never stops at the first problem: every issue is collected with its TOML path
// (`tenants[1].workloads[0].ip`) and the loader turns paths into `file:line:col`. Objects are
// strict: a key the schema does not name is an error, with a did-you-mean hint.
import { type PathSeg, formatPath } from './toml-positions.js';
import { type ParsedAddr, type ParsedPrefix, parseAddr, parseMac, parsePrefix, formatPrefix } from './toml-addr.js';

export interface Issue {
  path: PathSeg[];
  message: string;
  /** Point at the key itself (unknown keys) rather than at its value. */
  at?: 'key' | 'value';
}

export const INVALID: unique symbol = Symbol('invalid');
export type Invalid = typeof INVALID;

export interface Schema<T> {
  /** What a valid value looks like, for messages ("an integer", "a table"). */
  readonly expected: string;
  /** True when the key may be missing from its table (then `fallback` is used). */
  readonly optionalKey: boolean;
  readonly fallback: T | undefined;
  parse(value: unknown, path: PathSeg[], issues: Issue[]): T | Invalid;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

function schema<T>(expected: string, parse: Schema<T>['parse']): Schema<T> {
  return { expected, optionalKey: false, fallback: undefined, parse };
}

function isTable(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  // smol-toml builds tables with a null prototype; dates are class instances.
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === null || proto === Object.prototype;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  if (typeof v === 'number') return `the float ${Number.isInteger(v) ? v.toFixed(1) : v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'boolean') return `${v}`;
  if (typeof v === 'bigint') return `the integer ${v}`;
  return 'a date/time';
}

function typeIssue(issues: Issue[], path: PathSeg[], expected: string, v: unknown): Invalid {
  issues.push({ path, message: `expected ${expected}, got ${describe(v)}` });
  return INVALID;
}

export function string(opts: { pattern?: RegExp; hint?: string } = {}): Schema<string> {
  const expected = opts.hint ?? 'a string';
  return schema(expected, (v, path, issues) => {
    if (typeof v !== 'string') return typeIssue(issues, path, 'a string', v);
    if (opts.pattern && !opts.pattern.test(v)) {
      issues.push({ path, message: `${JSON.stringify(v)} is not ${expected}` });
      return INVALID;
    }
    return v;
  });
}

/** TOML integers arrive as bigints (the loader parses with `integersAsBigInt`), so a float such
 *  as `10.0` is told apart from `10` and rejected. */
export function integer(min: number, max: number): Schema<number> {
  const expected = `an integer in ${min}..${max}`;
  return schema(expected, (v, path, issues) => {
    if (typeof v !== 'bigint') return typeIssue(issues, path, expected, v);
    if (v < BigInt(min) || v > BigInt(max)) {
      issues.push({ path, message: `${v} is out of range (expected ${expected})` });
      return INVALID;
    }
    return Number(v);
  });
}

export function boolean(): Schema<boolean> {
  return schema('a boolean', (v, path, issues) => (typeof v === 'boolean' ? v : typeIssue(issues, path, 'true or false', v)));
}

export function oneOf<const T extends readonly string[]>(values: T): Schema<T[number]> {
  const expected = `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
  return schema(expected, (v, path, issues) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T[number];
    issues.push({ path, message: `expected ${expected}, got ${describe(v)}` });
    return INVALID;
  });
}

export function array<T>(item: Schema<T>, opts: { min?: number; max: number }): Schema<T[]> {
  return schema(`an array of ${item.expected}`, (v, path, issues) => {
    if (!Array.isArray(v)) return typeIssue(issues, path, `an array of ${item.expected}`, v);
    if (v.length > opts.max) {
      // Do not validate the elements of an oversized array: the cap exists to bound work.
      issues.push({ path, message: `has ${v.length} entries, more than the limit of ${opts.max}` });
      return INVALID;
    }
    if (opts.min !== undefined && v.length < opts.min) {
      issues.push({ path, message: `needs at least ${opts.min} ${opts.min === 1 ? 'entry' : 'entries'}` });
      return INVALID;
    }
    const out: T[] = [];
    let ok = true;
    v.forEach((x, i) => {
      const r = item.parse(x, [...path, i], issues);
      if (r === INVALID) ok = false;
      else out.push(r);
    });
    return ok ? out : INVALID;
  });
}

/** The key may be missing; its value is then `undefined`. */
export function optional<T>(s: Schema<T>): Schema<T | undefined> {
  return { expected: s.expected, optionalKey: true, fallback: undefined, parse: s.parse };
}

/** The key may be missing; its value is then `d`. */
export function withDefault<T>(s: Schema<T>, d: T): Schema<T> {
  return { expected: s.expected, optionalKey: true, fallback: d, parse: s.parse };
}

/** Validates, then checks or converts the value; `fn` pushes its own issues and returns INVALID. */
export function transform<T, U>(
  s: Schema<T>,
  expected: string,
  fn: (v: T, path: PathSeg[], issues: Issue[]) => U | Invalid,
): Schema<U> {
  return schema(expected, (v, path, issues) => {
    const r = s.parse(v, path, issues);
    return r === INVALID ? INVALID : fn(r, path, issues);
  });
}

type Shape = Record<string, Schema<unknown>>;
type Flatten<T> = { [K in keyof T]: T[K] };
export type InferShape<S extends Shape> = Flatten<
  { [K in keyof S as undefined extends Infer<S[K]> ? never : K]: Infer<S[K]> } & {
    [K in keyof S as undefined extends Infer<S[K]> ? K : never]?: Exclude<Infer<S[K]>, undefined>;
  }
>;

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

/** A strict table: every key must be named in `shape`; missing required keys are errors. */
export function object<S extends Shape>(shape: S, name = 'a table'): Schema<InferShape<S>> {
  return schema(name, (v, path, issues) => {
    if (!isTable(v)) return typeIssue(issues, path, name, v);
    const out: Record<string, unknown> = {};
    let ok = true;
    for (const key of Object.keys(v)) {
      if (Object.hasOwn(shape, key)) continue;
      const near = Object.keys(shape).find((k) => editDistance(k, key) <= 2);
      const where = path.length ? `in ${formatPath(path)}` : 'at top level';
      issues.push({
        path: [...path, key],
        at: 'key',
        message: `unknown key ${JSON.stringify(key)} ${where}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}`,
      });
      ok = false;
    }
    for (const [key, s] of Object.entries(shape)) {
      if (!Object.hasOwn(v, key)) {
        if (s.optionalKey) {
          if (s.fallback !== undefined) out[key] = s.fallback;
          continue;
        }
        issues.push({ path, message: `missing required key ${JSON.stringify(key)} (${s.expected})` });
        ok = false;
        continue;
      }
      const r = s.parse(v[key], [...path, key], issues);
      if (r === INVALID) ok = false;
      else out[key] = r;
    }
    return ok ? (out as InferShape<S>) : INVALID;
  });
}

// ---- Domain values --------------------------------------------------------------------------

/** A CIDR prefix; host bits must be zero. Keeps the text as written for messages. */
export interface Cidr extends ParsedPrefix {
  text: string;
}

export function cidr(): Schema<Cidr> {
  return transform(string(), 'a CIDR prefix', (v, path, issues) => {
    const p = parsePrefix(v);
    if (typeof p === 'string') {
      const why =
        p === 'syntax'
          ? 'not an IPv4/IPv6 address'
          : p === 'length'
            ? 'bad prefix length'
            : `host bits are set (did you mean ${hostBitsHint(v)}?)`;
      issues.push({ path, message: `invalid CIDR ${JSON.stringify(v)}: ${why}` });
      return INVALID;
    }
    return { ...p, text: v };
  });
}

function hostBitsHint(text: string): string {
  const [a, l] = text.split('/');
  const p = parseAddr(a!);
  if (!p) return text;
  const len = Number(l);
  const bits = p.af === 'inet' ? 32 : 128;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
  return formatPrefix({ af: p.af, value: p.value & mask, len });
}

export interface Addr extends ParsedAddr {
  text: string;
}

export function address(): Schema<Addr> {
  return transform(string(), 'an IP address', (v, path, issues) => {
    const a = parseAddr(v);
    if (!a) {
      issues.push({
        path,
        message: v.includes('/')
          ? `invalid address ${JSON.stringify(v)}: write the address without a prefix length`
          : `invalid address ${JSON.stringify(v)}: not an IPv4/IPv6 address`,
      });
      return INVALID;
    }
    return { ...a, text: v };
  });
}

export function mac(): Schema<string> {
  return transform(string(), 'a MAC address', (v, path, issues) => {
    const m = parseMac(v);
    if (!m) {
      issues.push({ path, message: `invalid MAC address ${JSON.stringify(v)} (expected aa:bb:cc:dd:ee:ff)` });
      return INVALID;
    }
    if (m.multicast || m.zero) {
      issues.push({ path, message: `MAC address ${JSON.stringify(v)} is not a unicast address` });
      return INVALID;
    }
    return m.mac;
  });
}

/** Interface names: at most 15 bytes (IFNAMSIZ - 1) and a single pf word. */
export function ifname(): Schema<string> {
  return string({ pattern: /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/, hint: 'an interface name (letter first, [A-Za-z0-9_.-], at most 15 bytes)' });
}

// ---- The document ---------------------------------------------------------------------------

/** Tenant ids become pf anchor names and appear in interface aliases and table names. */
export const TENANT_ID = /^[a-z][a-z0-9_-]{0,14}$/;

export const LIMITS = {
  documentBytes: 1 << 20,
  tenants: 4096,
  workloadsPerTenant: 256,
  subnetsPerTenant: 64,
  ipsPerWorkload: 16,
  interfacesPerTenant: 64,
  clusterNetworks: 1024,
  allowedPorts: 256,
  vxlanRemotes: 1024,
  skip: 64,
} as const;

const policySection = object({
  block_policy: optional(oneOf(['drop', 'return'] as const)),
  skip: optional(array(ifname(), { max: LIMITS.skip })),
  loginterface: optional(ifname()),
});

const allowedPort = object({
  protocol: oneOf(['tcp', 'udp'] as const),
  port: integer(1, 65535),
  direction: withDefault(oneOf(['inbound', 'outbound', 'both'] as const), 'outbound'),
});

const isolationFields = {
  enabled: withDefault(boolean(), true),
  cluster_networks: withDefault(array(cidr(), { max: LIMITS.clusterNetworks }), []),
  tenant_isolation: withDefault(boolean(), true),
  inter_vm_isolation: withDefault(boolean(), false),
  allow_internet: withDefault(boolean(), false),
  allowed_ports: withDefault(array(allowedPort, { max: LIMITS.allowedPorts }), []),
  host_services_blocked: withDefault(boolean(), true),
  uplink: withDefault(ifname(), 'egress'),
};

const isolationSection = object(isolationFields);

/** Blixard's own spelling, `[vm.network_isolation]`, accepted as written in its documentation. */
const blixardSection = object({
  ...isolationFields,
  backend: optional(
    transform(string(), '"nftables" or "pf"', (v, path, issues) => {
      if (v === 'nftables' || v === 'pf') return v;
      issues.push({
        path,
        message: `backend ${JSON.stringify(v)} is not supported: ztb-enforce enforces isolation with nftables or pf only`,
      });
      return INVALID;
    }),
  ),
  vm_network: optional(cidr()),
});

const vmSection = object({ network_isolation: optional(blixardSection) });

const vxlanSection = object({
  remotes: withDefault(array(address(), { max: LIMITS.vxlanRemotes }), []),
  group: optional(address()),
  local: optional(address()),
  dstport: withDefault(integer(1, 65535), 4789),
  learning: withDefault(boolean(), false),
});

const workloadSection = object({
  name: string({ pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, hint: 'a workload name ([A-Za-z0-9_.-], at most 63 bytes)' }),
  ip: optional(address()),
  ips: optional(array(address(), { min: 1, max: LIMITS.ipsPerWorkload })),
  mac: optional(mac()),
  tap: optional(ifname()),
});

export const tenantSection = object({
  id: string({ pattern: TENANT_ID, hint: 'a tenant id ([a-z0-9_-], starting with a letter, at most 15 bytes)' }),
  net_id: integer(1, 4094),
  subnets: array(cidr(), { min: 1, max: LIMITS.subnetsPerTenant }),
  gateway: optional(address()),
  gateways: optional(array(address(), { min: 1, max: 2 })),
  vni: optional(integer(1, 16777215)),
  vxlan: optional(vxlanSection),
  vlan: optional(integer(1, 4094)),
  interfaces: withDefault(array(ifname(), { max: LIMITS.interfacesPerTenant }), []),
  workloads: withDefault(array(workloadSection, { max: LIMITS.workloadsPerTenant }), []),
  rules: optional(string()),
});

export const documentSchema = object({
  policy: optional(policySection),
  rules: optional(string()),
  pf_file: optional(string({ pattern: /^[^\0]{1,4096}$/, hint: 'a file path' })),
  tenants: withDefault(array(tenantSection, { max: LIMITS.tenants }), []),
  isolation: optional(isolationSection),
  vm: optional(vmSection),
});

export type TomlDocument = Infer<typeof documentSchema>;
export type TomlTenant = TomlDocument['tenants'][number];
export type TomlWorkload = TomlTenant['workloads'][number];
export type TomlIsolation = Infer<typeof isolationSection>;
export type TomlBlixardIsolation = Infer<typeof blixardSection>;
export type TomlAllowedPort = Infer<typeof allowedPort>;
