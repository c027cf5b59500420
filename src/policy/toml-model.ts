// Policy layer: the checked model of a TOML policy document. The schema (toml-schema.ts) has
// already checked each value on its own; this file does the checks that need several values at
// once — unique ids, net_ids, VNIs, VLANs, taps and MACs, subnets that must not overlap, gateways
// and workload addresses that must sit inside their tenant's subnets, one isolation section only —
// and fills in derived names (bridge `ztbr<net_id>`, VXLAN `ztvx<net_id>`, default taps
// `tn<net_id>w<index>`). Every problem is reported with its TOML path.
import type { Tenant, TenantVxlan, Workload } from './ir.js';
import type { PathSeg } from './toml-positions.js';
import {
  type ParsedAddr,
  formatAddr,
  formatPrefix,
  isBroadcastAddress,
  isNetworkAddress,
  prefixContains,
  prefixesOverlap,
  toIrPrefix,
} from './toml-addr.js';
import type { Addr, Cidr, Issue, TomlAllowedPort, TomlDocument } from './toml-schema.js';

export interface GatewayModel {
  addr: Addr;
  subnet: Cidr;
}

export interface TenantModel {
  index: number;
  id: string;
  netId: number;
  bridge: string;
  vxlanIf: string | null;
  subnets: Cidr[];
  gateways: GatewayModel[];
  vxlan: TenantVxlan | null;
  vlan: number | null;
  /** Extra interfaces written in the document (not the bridge, VXLAN device or taps). */
  extraInterfaces: string[];
  workloads: Workload[];
  rules: string | undefined;
}

export interface AllowedPortModel extends TomlAllowedPort {
  index: number;
}

export interface IsolationModel {
  /** TOML path of the section it came from: ['isolation'] or ['vm', 'network_isolation']. */
  section: PathSeg[];
  clusterNetworks: Cidr[];
  tenantIsolation: boolean;
  interVmIsolation: boolean;
  allowInternet: boolean;
  allowedPorts: AllowedPortModel[];
  hostServicesBlocked: boolean;
  uplink: string;
}

export interface PolicyModel {
  blockPolicy: 'drop' | 'return' | undefined;
  skip: string[] | undefined;
  loginterface: string | undefined;
  rules: string | undefined;
  pfFile: string | undefined;
  tenants: TenantModel[];
  /** null when there is no isolation section or it says `enabled = false`. */
  isolation: IsolationModel | null;
}

/** Words that would change the meaning of generated `on { ... }` lists, and the groups the
 *  generated rules name (a tenant owning the uplink would receive everything passed out on it). */
const RESERVED_IFNAMES = new Set([
  'all', 'any', 'self', 'egress', 'ztb_tenants', 'in', 'out', 'on', 'from', 'to', 'port', 'proto', 'quick', 'log',
  'inet', 'inet6', 'pass', 'block', 'match', 'anchor', 'table', 'set', 'keep', 'modulate', 'synproxy', 'state',
  'no', 'flags', 'drop', 'return', 'scrub', 'label', 'tag', 'tagged',
]);

/** Interface names the orchestrator derives; document-written names must not take them. */
const DERIVED_IFNAME = /^(ztbr[0-9]|ztvx[0-9]|ztvl[0-9]|tn[0-9])/;

function isMulticast(a: ParsedAddr): boolean {
  return a.af === 'inet' ? a.value >> 28n === 0xen : a.value >> 120n === 0xffn;
}

interface Placed {
  p: Cidr;
  tenant: number;
  sub: number;
}

/** Reports each prefix that overlaps an earlier one (sorted sweep; prefixes nest or are disjoint). */
function checkOverlaps(placed: Placed[], tenants: TenantModel[], issues: Issue[]): void {
  const sorted = [...placed].sort((a, b) =>
    a.p.af !== b.p.af ? (a.p.af < b.p.af ? -1 : 1) : a.p.value < b.p.value ? -1 : a.p.value > b.p.value ? 1 : a.p.len - b.p.len,
  );
  let open: Placed | null = null;
  for (const cur of sorted) {
    if (open && prefixesOverlap(open.p, cur.p)) {
      // Report at the one written later in the document, naming the other.
      const [first, second] =
        open.tenant < cur.tenant || (open.tenant === cur.tenant && open.sub < cur.sub) ? [open, cur] : [cur, open];
      const where =
        first.tenant === second.tenant
          ? `${formatPrefix(first.p)} of the same tenant`
          : `${formatPrefix(first.p)} of tenant ${JSON.stringify(tenants[first.tenant]!.id)}`;
      issues.push({
        path: ['tenants', second.tenant, 'subnets', second.sub],
        message: `subnet ${formatPrefix(second.p)} overlaps ${where}`,
      });
      // Keep the wider prefix open so later nested ones are compared with it too.
      if (cur.p.len < open.p.len) open = cur;
    } else open = cur;
  }
}

/**
 * Cross-checks a schema-valid document. `tenantIndex` maps each entry of `doc.tenants` to its index
 * in the written document when only some tenants are passed (after schema errors in others, so
 * that their problems are still reported at the right paths); by default entry i is tenants[i].
 */
export function buildModel(doc: TomlDocument, issues: Issue[], tenantIndex?: readonly number[]): PolicyModel {
  const tenants: TenantModel[] = [];
  const ids = new Map<string, number>();
  const netIds = new Map<number, number>();
  const vnis = new Map<number, number>();
  const vlans = new Map<number, number>();
  const taps = new Map<string, PathSeg[]>();
  const macs = new Map<string, PathSeg[]>();
  const extraIfs = new Map<string, PathSeg[]>();
  const placed: Placed[] = [];

  const firstSeen = <K>(m: Map<K, number>, k: K, i: number, path: PathSeg[], what: string): void => {
    const prev = m.get(k);
    if (prev !== undefined) issues.push({ path, message: `duplicate ${what} ${JSON.stringify(k)} (also used by tenants[${prev}])` });
    else m.set(k, i);
  };

  doc.tenants.forEach((t, k) => {
    const ti = tenantIndex?.[k] ?? k;
    const base: PathSeg[] = ['tenants', ti];
    firstSeen(ids, t.id, ti, [...base, 'id'], 'tenant id');
    firstSeen(netIds, t.net_id, ti, [...base, 'net_id'], 'net_id');
    if (t.vlan !== undefined) firstSeen(vlans, t.vlan, ti, [...base, 'vlan'], 'vlan');
    if (t.vni !== undefined) firstSeen(vnis, t.vni, ti, [...base, 'vni'], 'vni');

    t.subnets.forEach((p, si) => placed.push({ p, tenant: ti, sub: si }));

    // Gateways: exactly one of the two spellings; at most one per family; inside a subnet.
    const gws: GatewayModel[] = [];
    if (t.gateway !== undefined && t.gateways !== undefined) {
      issues.push({ path: [...base, 'gateways'], at: 'key', message: 'write either "gateway" or "gateways", not both' });
    } else if (t.gateway === undefined && t.gateways === undefined) {
      issues.push({ path: base, message: 'missing required key "gateway" (or "gateways"): the tenant bridge needs an address' });
    } else {
      const list = t.gateway !== undefined ? [t.gateway] : t.gateways!;
      const listPath = (i: number): PathSeg[] => (t.gateway !== undefined ? [...base, 'gateway'] : [...base, 'gateways', i]);
      const seenAf = new Set<string>();
      list.forEach((g, gi) => {
        if (seenAf.has(g.af)) {
          issues.push({ path: listPath(gi), message: `a second ${g.af === 'inet' ? 'IPv4' : 'IPv6'} gateway ${g.text}: at most one per address family` });
          return;
        }
        seenAf.add(g.af);
        const subnet = t.subnets.find((s) => prefixContains(s, g));
        if (!subnet) {
          issues.push({ path: listPath(gi), message: `gateway ${g.text} is not inside any of the tenant's subnets` });
          return;
        }
        if (isNetworkAddress(subnet, g) || isBroadcastAddress(subnet, g)) {
          issues.push({ path: listPath(gi), message: `gateway ${g.text} is the ${isNetworkAddress(subnet, g) ? 'network' : 'broadcast'} address of ${formatPrefix(subnet)}` });
          return;
        }
        gws.push({ addr: g, subnet });
      });
    }

    if (t.vxlan !== undefined && t.vni === undefined) {
      issues.push({ path: [...base, 'vxlan'], at: 'key', message: '"vxlan" needs "vni" in the same tenant' });
    }
    if (t.vxlan?.group !== undefined && !isMulticast(t.vxlan.group)) {
      issues.push({ path: [...base, 'vxlan', 'group'], message: `vxlan group ${t.vxlan.group.text} is not a multicast address` });
    }
    t.vxlan?.remotes.forEach((r, ri) => {
      if (isMulticast(r)) issues.push({ path: [...base, 'vxlan', 'remotes', ri], message: `vxlan remote ${r.text} is a multicast address: use "group"` });
    });
    const vxlan: TenantVxlan | null =
      t.vni === undefined
        ? null
        : {
            vni: t.vni,
            remotes: (t.vxlan?.remotes ?? []).map((r) => formatAddr(r.af, r.value)),
            ...(t.vxlan?.group ? { group: formatAddr(t.vxlan.group.af, t.vxlan.group.value) } : {}),
            ...(t.vxlan?.local ? { local: formatAddr(t.vxlan.local.af, t.vxlan.local.value) } : {}),
            dstport: t.vxlan?.dstport ?? 4789,
            learning: t.vxlan?.learning ?? false,
          };

    t.interfaces.forEach((name, ii) => {
      const path: PathSeg[] = [...base, 'interfaces', ii];
      if (DERIVED_IFNAME.test(name)) {
        issues.push({ path, message: `interface ${JSON.stringify(name)} uses a prefix reserved for derived names (ztbr<net_id>, ztvx<net_id>, ztvl<net_id>, tn<net_id>...)` });
        return;
      }
      if (RESERVED_IFNAMES.has(name)) {
        issues.push({ path, message: `${JSON.stringify(name)} cannot be a tenant interface: it is a pf keyword or a group the generated rules use` });
        return;
      }
      const prev = extraIfs.get(name);
      if (prev) issues.push({ path, message: `interface ${JSON.stringify(name)} is already listed at ${pathText(prev)}` });
      else extraIfs.set(name, path);
    });

    // Workloads: addresses inside the tenant, unique; taps carry the tenant's prefix.
    const names = new Map<string, number>();
    const ips = new Map<string, PathSeg[]>();
    for (const g of gws) ips.set(`${g.addr.af}/${g.addr.value}`, [...base, t.gateway !== undefined ? 'gateway' : 'gateways']);
    const workloads: Workload[] = [];
    t.workloads.forEach((w, wi) => {
      const wbase: PathSeg[] = [...base, 'workloads', wi];
      const prevName = names.get(w.name);
      if (prevName !== undefined) issues.push({ path: [...wbase, 'name'], message: `duplicate workload name ${JSON.stringify(w.name)} (also workloads[${prevName}])` });
      else names.set(w.name, wi);
      let addrs: { a: Addr; path: PathSeg[] }[] = [];
      if (w.ip !== undefined && w.ips !== undefined) {
        issues.push({ path: [...wbase, 'ips'], at: 'key', message: 'write either "ip" or "ips", not both' });
      } else if (w.ip === undefined && w.ips === undefined) {
        issues.push({ path: wbase, message: 'missing required key "ip" (or "ips")' });
      } else if (w.ip !== undefined) addrs = [{ a: w.ip, path: [...wbase, 'ip'] }];
      else addrs = w.ips!.map((a, k) => ({ a, path: [...wbase, 'ips', k] }));
      const out: string[] = [];
      for (const { a, path } of addrs) {
        const subnet = t.subnets.find((s) => prefixContains(s, a));
        if (!subnet) {
          issues.push({ path, message: `workload address ${a.text} is outside the tenant's subnets (${t.subnets.map(formatPrefix).join(', ')})` });
          continue;
        }
        if (isNetworkAddress(subnet, a) || isBroadcastAddress(subnet, a)) {
          issues.push({ path, message: `workload address ${a.text} is the ${isNetworkAddress(subnet, a) ? 'network' : 'broadcast'} address of ${formatPrefix(subnet)}` });
          continue;
        }
        const key = `${a.af}/${a.value}`;
        const prev = ips.get(key);
        if (prev) {
          issues.push({ path, message: `address ${a.text} is already used by ${pathText(prev)}` });
          continue;
        }
        ips.set(key, path);
        out.push(formatAddr(a.af, a.value));
      }
      const tapPrefix = `tn${t.net_id}`;
      const tap = w.tap ?? `${tapPrefix}w${wi}`;
      const tapPath: PathSeg[] = [...wbase, w.tap !== undefined ? 'tap' : 'name'];
      // `tn1` must not claim `tn10w0`: the character after the prefix may not be a digit.
      if (!tap.startsWith(tapPrefix) || /^[0-9]/.test(tap.slice(tapPrefix.length))) {
        issues.push({ path: tapPath, message: `tap ${JSON.stringify(tap)} must start with "${tapPrefix}" (tn<net_id>) followed by a non-digit` });
      } else {
        const prev = taps.get(tap);
        if (prev) issues.push({ path: tapPath, message: `tap ${JSON.stringify(tap)} is already used by ${pathText(prev)}` });
        else taps.set(tap, tapPath);
      }
      if (w.mac !== undefined) {
        const prev = macs.get(w.mac);
        if (prev) issues.push({ path: [...wbase, 'mac'], message: `MAC address ${w.mac} is already used by ${pathText(prev)}` });
        else macs.set(w.mac, [...wbase, 'mac']);
      }
      workloads.push({ name: w.name, ips: out, ...(w.mac !== undefined ? { mac: w.mac } : {}), tap });
    });

    tenants.push({
      index: ti,
      id: t.id,
      netId: t.net_id,
      bridge: `ztbr${t.net_id}`,
      vxlanIf: vxlan ? `ztvx${t.net_id}` : null,
      subnets: t.subnets,
      gateways: gws,
      vxlan,
      vlan: t.vlan ?? null,
      extraInterfaces: t.interfaces,
      workloads,
      rules: t.rules,
    });
  });

  checkOverlaps(placed, tenants, issues);

  // Isolation: one of the two spellings.
  let isolation: IsolationModel | null = null;
  const blix = doc.vm?.network_isolation;
  if (doc.isolation !== undefined && blix !== undefined) {
    issues.push({ path: ['vm', 'network_isolation'], at: 'key', message: 'write either [isolation] or [vm.network_isolation], not both' });
  } else {
    const src = doc.isolation ?? blix;
    const section: PathSeg[] = doc.isolation !== undefined ? ['isolation'] : ['vm', 'network_isolation'];
    if (src !== undefined && src.enabled) {
      isolation = {
        section,
        clusterNetworks: src.cluster_networks,
        tenantIsolation: src.tenant_isolation,
        interVmIsolation: src.inter_vm_isolation,
        allowInternet: src.allow_internet,
        allowedPorts: src.allowed_ports.map((p, index) => ({ ...p, index })),
        hostServicesBlocked: src.host_services_blocked,
        uplink: src.uplink,
      };
      // VMs are blocked from cluster networks: a tenant living inside one could not work.
      const cluster = new PrefixIndex(src.cluster_networks);
      for (const t of tenants)
        t.subnets.forEach((s, si) => {
          const ci = cluster.firstOverlap(s);
          if (ci !== null)
            issues.push({
              path: ['tenants', t.index, 'subnets', si],
              message: `subnet ${formatPrefix(s)} of tenant ${JSON.stringify(t.id)} overlaps cluster network ${formatPrefix(src.cluster_networks[ci]!)} (${pathText([...section, 'cluster_networks', ci])})`,
            });
        });
      // The uplink passes everything out: it cannot also be a tenant's interface.
      for (const t of tenants) {
        const owned = [t.bridge, ...t.extraInterfaces];
        if (owned.includes(src.uplink))
          issues.push({ path: [...section, 'uplink'], message: `uplink ${JSON.stringify(src.uplink)} is an interface of tenant ${JSON.stringify(t.id)}` });
      }
      if (blix?.vm_network !== undefined) {
        const vmNet = blix.vm_network;
        for (const t of tenants)
          t.subnets.forEach((s, si) => {
            if (!(s.af === vmNet.af && s.len >= vmNet.len && prefixContains(vmNet, s)))
              issues.push({
                path: ['tenants', t.index, 'subnets', si],
                message: `subnet ${formatPrefix(s)} of tenant ${JSON.stringify(t.id)} is outside vm_network ${formatPrefix(vmNet)}`,
              });
          });
      }
    }
  }

  return {
    blockPolicy: doc.policy?.block_policy,
    skip: doc.policy?.skip,
    loginterface: doc.policy?.loginterface,
    rules: doc.rules,
    pfFile: doc.pf_file,
    tenants,
    isolation,
  };
}

/** Finds which of a fixed set of prefixes overlaps a given prefix without comparing against all
 *  of them: a containing prefix is found by masking to each prefix length present, a contained
 *  one by binary search over the sorted set. */
class PrefixIndex {
  readonly #byKey = new Map<string, number>();
  readonly #lens = new Map<string, number[]>();
  readonly #sorted: { p: Cidr; i: number }[];

  constructor(list: readonly Cidr[]) {
    list.forEach((p, i) => {
      const k = `${p.af}/${p.len}/${p.value}`;
      if (!this.#byKey.has(k)) this.#byKey.set(k, i);
      const lens = this.#lens.get(p.af) ?? [];
      if (!lens.includes(p.len)) lens.push(p.len);
      this.#lens.set(p.af, lens);
    });
    this.#sorted = list
      .map((p, i) => ({ p, i }))
      .sort((a, b) => (a.p.af !== b.p.af ? (a.p.af < b.p.af ? -1 : 1) : a.p.value < b.p.value ? -1 : a.p.value > b.p.value ? 1 : 0));
  }

  /** Index (in the original list) of a prefix that contains or lies inside `s`, or null. */
  firstOverlap(s: Cidr): number | null {
    const bits = s.af === 'inet' ? 32 : 128;
    for (const len of this.#lens.get(s.af) ?? []) {
      if (len > s.len) continue;
      const masked = (s.value >> BigInt(bits - len)) << BigInt(bits - len);
      const hit = this.#byKey.get(`${s.af}/${len}/${masked}`);
      if (hit !== undefined) return hit;
    }
    const end = s.value | ((1n << BigInt(bits - s.len)) - 1n);
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = this.#sorted[mid]!.p;
      if (m.af < s.af || (m.af === s.af && m.value < s.value)) lo = mid + 1;
      else hi = mid;
    }
    const c = this.#sorted[lo];
    if (c && c.p.af === s.af && c.p.value <= end) return c.i;
    return null;
  }
}

function pathText(p: PathSeg[]): string {
  let out = '';
  for (const s of p) out += typeof s === 'number' ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

/** The IR's view of a tenant (positions are filled in by the caller). */
export function irTenant(t: TenantModel, pos: Tenant['pos']): Tenant {
  return {
    id: t.id,
    netId: t.netId,
    subnets: t.subnets.map(toIrPrefix),
    gateways: t.gateways.map((g) => `${formatAddr(g.addr.af, g.addr.value)}/${g.subnet.len}`),
    vxlan: t.vxlan,
    vlan: t.vlan,
    workloads: t.workloads,
    interfaces: tenantInterfaces(t),
    anchor: t.rules !== undefined ? t.id : '',
    pos,
  };
}

/** Bridge, VXLAN and VLAN ports (named as the orchestrator names them), extra interfaces and
 *  taps: ingress on any of them means this tenant. */
export function tenantInterfaces(t: TenantModel): string[] {
  return [
    t.bridge,
    ...(t.vxlanIf ? [t.vxlanIf] : []),
    ...(t.vlan !== null ? [`ztvl${t.netId}`] : []),
    ...t.extraInterfaces,
    ...t.workloads.map((w) => w.tap),
  ];
}

/** Interfaces the generated rules name for this tenant: the bridge and the extra interfaces. */
export function tenantRuleInterfaces(t: TenantModel): string[] {
  return [t.bridge, ...t.extraInterfaces];
}
