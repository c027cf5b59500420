// Policy layer: compiles the TOML document's `[policy]`, tenants and isolation settings into
// ordinary pf text, so everything the isolation settings do is visible as pf rules in `check`
// output and enforced by the same evaluator and backends as hand-written rules. Each piece of
// generated text is tied to the TOML key that caused it (a `generated` PfUnit positioned there).
//
// The rule set (pf: last match wins, `quick` ends the walk; docs/toml.md has the long form):
//   - default deny `block all`; the host and forwarded traffic may leave through the uplink;
//     traffic arriving on a non-tenant interface toward a tenant's VMs is decided where it leaves
//     toward the tenant (out on the tenant bridge); toward the tenant gateways (host services)
//     it stays denied unless the document's own rules pass it.
//   - traffic FROM a tenant is decided `in on` its bridge: quick blocks for spoofed sources (per
//     tenant), cluster networks, the host's services, VM-to-VM (inter_vm_isolation); quick passes
//     for the allowed outbound ports; non-quick passes for the internet and intra-tenant traffic;
//     then the tenant's own anchor, which may tighten or widen inside that envelope.
//   - traffic TO a tenant is decided `out on` its bridge: intra-tenant traffic (already decided
//     on the way in) passes quick, anything from another tenant is blocked quick
//     (tenant_isolation), allowed inbound ports pass quick, then the tenant's anchor.
// Once anti-spoofing has pinned a packet entering a tenant bridge to that tenant's addresses, the
// other rules can name every tenant at once (interface group `ztb_tenants`, table
// `<ztb_tenants>`), so the rule count grows by about three per tenant, not by ten.
// Isolation blocks are quick and come before the tenant anchors, and the anchors are called only
// for their own bridge, so a tenant's rules can never open a path into another tenant, a cluster
// network or the host.
import { formatAddr, formatPrefix, parsePrefix, prefixesOverlap, type ParsedPrefix } from './toml-addr.js';
import type { IsolationModel, PolicyModel, TenantModel } from './toml-model.js';
import { tenantRuleInterfaces } from './toml-model.js';
import type { PathSeg } from './toml-positions.js';

/** Generated pf text for the main ruleset, tied to the TOML path that caused it. */
export interface GeneratedUnit {
  path: PathSeg[];
  text: string;
}

/** Interface group holding every tenant bridge and tenant-listed interface. */
export const TENANTS_GROUP = 'ztb_tenants';
export const TABLE_TENANTS = 'ztb_tenants';
export const TABLE_CLUSTER = 'ztb_cluster';
export const TABLE_GATEWAYS = 'ztb_gateways';
export const TABLE_PRIVATE = 'ztb_private';
export const tenantTable = (id: string): string => `ztb_tenant_${id}`;

/** Destinations that are not "the internet" for allow_internet: RFC 1918, CGNAT, loopback,
 *  link-local, multicast, reserved, and their IPv6 counterparts (ULA, link-local, multicast). */
export const NON_INTERNET: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8',
];

function table(name: string, entries: string[]): string {
  return `table <${name}> const { ${entries.join(' ')} }`;
}

function onIfs(ifs: string[]): string {
  return ifs.length === 1 ? `on ${ifs[0]}` : `on { ${ifs.join(' ')} }`;
}

/** Collects generated lines; consecutive lines caused by the same key share one unit (one
 *  position), which keeps the unit count near the number of distinct causes. */
function unitCollector(units: GeneratedUnit[]): (path: PathSeg[], ...lines: string[]) => void {
  return (path, ...lines) => {
    const last = units[units.length - 1];
    if (last && last.path.join('\0') === path.join('\0')) last.text += lines.join('\n') + '\n';
    else units.push({ path, text: lines.join('\n') + '\n' });
  };
}

/** Units for the main ruleset, in evaluation order, before the document's own global rules. */
export function generateMainUnits(m: PolicyModel): GeneratedUnit[] {
  const units: GeneratedUnit[] = [];
  const emit = unitCollector(units);

  if (m.blockPolicy !== undefined) emit(['policy', 'block_policy'], `set block-policy ${m.blockPolicy}`);
  if (m.skip !== undefined && m.skip.length > 0) emit(['policy', 'skip'], `set skip on { ${m.skip.join(' ')} }`);
  if (m.loginterface !== undefined) emit(['policy', 'loginterface'], `set loginterface ${m.loginterface}`);

  // Tenant tables exist whether or not isolation is on: the document's own rules may use them
  // (e.g. `match out on egress from <ztb_tenants> nat-to (egress:0)`).
  if (m.tenants.length > 0) {
    emit(['tenants'], table(TABLE_TENANTS, m.tenants.flatMap((t) => t.subnets.map(formatPrefix))));
    for (const t of m.tenants)
      if (t.subnets.length > 1) emit(['tenants', t.index, 'subnets'], table(tenantTable(t.id), t.subnets.map(formatPrefix)));
  }

  const iso = m.isolation;
  if (iso) for (const u of isolationUnits(m, iso)) units.push(u);
  else
    for (const t of m.tenants) if (t.rules !== undefined) units.push(anchorCall(t));
  return units;
}

function anchorCall(t: TenantModel): GeneratedUnit {
  return {
    path: ['tenants', t.index, 'rules'],
    text: `anchor "${t.id}" ${onIfs(tenantRuleInterfaces(t))}\n`,
  };
}

function privateEntries(m: PolicyModel, iso: IsolationModel): string[] {
  const fixed = NON_INTERNET.map((p) => parsePrefix(p) as ParsedPrefix);
  const out = [...fixed];
  const covered = (list: readonly ParsedPrefix[], p: ParsedPrefix): boolean => list.some((q) => q.len <= p.len && prefixesOverlap(q, p));
  // Cluster networks and tenant subnets are never "the internet", even when publicly routed.
  for (const p of iso.clusterNetworks) if (!covered(out, p)) out.push(p);
  // Tenant subnets overlap neither each other nor cluster networks (checked by the model), so
  // only the fixed ranges can cover them: this keeps the check linear in the number of tenants.
  for (const t of m.tenants) for (const p of t.subnets) if (!covered(fixed, p)) out.push(p);
  return out.map((p) => (p.len === (p.af === 'inet' ? 32 : 128) ? formatAddr(p.af, p.value) : formatPrefix(p)));
}

function isolationUnits(m: PolicyModel, iso: IsolationModel): GeneratedUnit[] {
  const sec = iso.section;
  const at = (key: string, ...rest: PathSeg[]): PathSeg[] => [...sec, key, ...rest];
  const units: GeneratedUnit[] = [];
  const emit = unitCollector(units);
  if (m.tenants.length === 0) {
    // Nothing to isolate; the host still gets default deny and its way out.
    emit(at('enabled'), 'block all');
    emit(at('uplink'), `pass out on ${iso.uplink} all`);
    return units;
  }
  const G = TENANTS_GROUP;
  const all = `<${TABLE_TENANTS}>`;
  const gateways = m.tenants.flatMap((t) => t.gateways.map((g) => formatAddr(g.addr.af, g.addr.value)));

  if (iso.clusterNetworks.length > 0) emit(at('cluster_networks'), table(TABLE_CLUSTER, iso.clusterNetworks.map(formatPrefix)));
  emit(['tenants'], table(TABLE_GATEWAYS, gateways));
  if (iso.allowInternet) emit(at('allow_internet'), table(TABLE_PRIVATE, privateEntries(m, iso)));

  // Default deny: the seed's base chains accept by default; ours do not.
  emit(at('enabled'), 'block all');
  emit(at('uplink'), `pass out on ${iso.uplink} all`);
  emit(sec, `pass in on ! ${G} to ${all}`);
  // ...but the gateway addresses inside those subnets are the host's own services: default deny.
  emit(sec, `block in on ! ${G} to <${TABLE_GATEWAYS}>`);
  // Tenant addresses live only behind tenant bridges: arriving anywhere else they are spoofed
  // (and would otherwise pass as intra-tenant traffic on the way out to the bridge).
  emit(sec, `block in quick on ! ${G} from ${all}`);

  // IPv6 neighbour discovery on the tenant links is link-local (never forwarded) and must get
  // past both the default deny and the anti-spoofing below (it uses fe80::/10 and :: sources).
  // VMs may solicit and advertise neighbours and solicit routers, never advertise routes.
  if (m.tenants.some((t) => t.subnets.some((p) => p.af === 'inet6'))) {
    emit(
      sec,
      `pass in quick on ${G} inet6 proto icmp6 all icmp6-type { routersol neighbrsol neighbradv } no state`,
      `pass out quick on ${G} inet6 proto icmp6 all icmp6-type { routeradv neighbrsol neighbradv } no state`,
    );
  }

  // From the tenants (in on their bridges). Anti-spoofing comes first and per tenant; after it,
  // a packet entering tenant T's bridge has a source in T, so the rules below can name all
  // tenants at once (interface group, <ztb_tenants>) and stay independent of the tenant count.
  for (const t of m.tenants) emit(['tenants', t.index, 'subnets'], `block in quick ${onIfs(tenantRuleInterfaces(t))} from ! ${ownAddrs(t)}`);
  if (iso.clusterNetworks.length > 0) emit(at('cluster_networks'), `block in quick on ${G} to <${TABLE_CLUSTER}>`);
  for (const p of iso.allowedPorts)
    if (p.direction !== 'inbound') emit(at('allowed_ports', p.index), `pass in quick on ${G} proto ${p.protocol} from ${all} to port ${p.port}`);
  if (iso.hostServicesBlocked) {
    emit(at('host_services_blocked'), `block in quick on ${G} to <${TABLE_GATEWAYS}>`, `block in quick on ${G} to self`);
  } else {
    emit(at('host_services_blocked'), `pass in quick on ${G} from ${all} to <${TABLE_GATEWAYS}>`, `pass in quick on ${G} from ${all} to self`);
  }
  if (iso.allowInternet) emit(at('allow_internet'), `pass in on ${G} from ${all} to ! <${TABLE_PRIVATE}>`);
  // Within a tenant: these need the tenant's own addresses, so they are per tenant. Traffic that
  // stays inside the tenant leaves on its own bridge; it was decided on the way in, so the way
  // out passes it quick (before the tenant isolation block, which would otherwise catch it).
  for (const t of m.tenants) {
    const on = onIfs(tenantRuleInterfaces(t));
    const own = ownAddrs(t);
    if (iso.interVmIsolation) emit(at('inter_vm_isolation'), `block in quick ${on} from ${own} to ${own}`);
    else emit(at('inter_vm_isolation'), `pass in ${on} from ${own} to ${own}`, `pass out quick ${on} from ${own} to ${own}`);
  }

  // To the tenants (out on their bridges).
  if (iso.tenantIsolation) emit(at('tenant_isolation'), `block out quick on ${G} from ${all}`);
  for (const p of iso.allowedPorts)
    if (p.direction !== 'outbound') emit(at('allowed_ports', p.index), `pass out quick on ${G} proto ${p.protocol} to ${all} port ${p.port}`);

  // Each tenant's own rules, only for its own interfaces.
  for (const t of m.tenants) if (t.rules !== undefined) units.push(anchorCall(t));
  return units;
}

/** A tenant's addresses in pf syntax: its subnet, or its table when it has several (a negated
 *  list would mean something else in pf). One table per multi-subnet tenant only, because pf's
 *  default table limit (1000) would otherwise cap the number of tenants. */
export function ownAddrs(t: TenantModel): string {
  return t.subnets.length === 1 ? formatPrefix(t.subnets[0]!) : `<${tenantTable(t.id)}>`;
}
