// Net layer: the desired topology, derived from the IR's `Tenant[]` (the contract with the policy
// loader) plus per-site options. Pure: no I/O. It fixes every name (bridge `ztbr<net_id>`, vxlan
// `ztvx<net_id>`, vlan `ztvl<net_id>`, sandbox namespaces), the MTU (underlay MTU minus the VXLAN
// overhead: 50 over IPv4, 70 over IPv6) and the ownership alias `ztb:<tenant>:<role>`, and it
// validates everything before anything is touched: tap names must start with `tn<net_id>`, names
// fit in 15 bytes, no VNI or net_id or name is used twice, addresses parse. All problems are
// reported at once, each naming the tenant and where it was written.
import type { Tenant } from '../policy/ir.js';
import { TopologyError } from './errors.js';
import { canonicalIp, canonicalMac, familyOf, inPrefix, parseCidr, type Cidr, type Family } from './addr.js';

export const IFNAMSIZ_MAX = 15;
export const VXLAN_OVERHEAD: Record<Family, number> = { inet: 50, inet6: 70 };
export const DEFAULT_UNDERLAY_MTU = 1500;
/** Caps: the orchestrator refuses absurd inputs instead of half-building them. */
export const MAX_TENANTS = 4096;
export const MAX_WORKLOADS_PER_TENANT = 1024;
export const MAX_REMOTES = 256;

export type OwnedRole = 'bridge' | 'vxlan' | 'vlan' | 'tap' | 'veth';

export interface UnderlayOptions {
  /** Local VTEP address for every tenant's VXLAN (overrides the policy's `local`). */
  local?: string;
  /** Remote VTEPs (overrides the policy's unicast `remotes`; ignored for multicast tenants). */
  remotes?: string[];
  /** Underlay MTU the overlay MTU is derived from (default 1500). */
  mtu?: number;
  /** Parent link of VLAN sub-interfaces (`ztvl<net_id>` on top of it). */
  vlanParent?: string;
  /** Underlay link of VXLAN devices; the kernel requires one for multicast groups. */
  device?: string;
}

export interface TopologyOptions {
  netns?: string;
  sandbox?: boolean;
  underlay?: UnderlayOptions;
}

export interface DesiredVxlan {
  name: string;
  vni: number;
  port: number;
  local: string | null;
  group: string | null;
  remotes: string[];
  learning: boolean;
  /** Underlay link (IFLA_VXLAN_LINK), by name. */
  device: string | null;
}

export interface SandboxSpec {
  /** Workload namespace name. */
  netns: string;
  /** Interface name inside it. */
  ifname: string;
  /** Default routes: one gateway per family present in the workload's addresses. */
  gateways: string[];
}

export interface DesiredPort {
  name: string;
  kind: 'tap' | 'veth';
  workload: string;
  /** MAC of the workload side: the tap itself, or the namespace end of the veth. */
  mac: string | null;
  ips: Cidr[];
  sandbox: SandboxSpec | null;
}

export interface DesiredTenant {
  id: string;
  netId: number;
  bridge: string;
  mtu: number;
  gateways: Cidr[];
  vxlan: DesiredVxlan | null;
  vlan: { name: string; id: number; parent: string } | null;
  ports: DesiredPort[];
}

export interface DesiredTopology {
  netns: string | undefined;
  sandbox: boolean;
  tenants: DesiredTenant[];
}

export function ownerAlias(tenant: string, role: OwnedRole): string {
  return `ztb:${tenant}:${role}`;
}

/** Parses an ownership alias; null for anything that is not ours. */
export function parseOwnerAlias(alias: string | null): { tenant: string; role: OwnedRole } | null {
  if (!alias) return null;
  const m = /^ztb:([^:]+):(bridge|vxlan|vlan|tap|veth)$/.exec(alias);
  return m ? { tenant: m[1]!, role: m[2] as OwnedRole } : null;
}

/** Key naming the "host" of a run: the target namespace or the root one. */
export function hostKey(netns: string | undefined): string {
  return netns ?? 'host';
}

/** Sandbox namespaces of one host share this prefix, so `down` finds leftovers of old policies. */
export function sandboxPrefix(netns: string | undefined): string {
  return `ztw-${hostKey(netns)}-`;
}

export function sandboxNetnsName(netns: string | undefined, netId: number, idx: number): string {
  return `${sandboxPrefix(netns)}${netId}-${idx}`;
}

const TENANT_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

function where(t: Tenant): string {
  return t.pos ? `${t.pos.file}:${t.pos.line}:${t.pos.col}: ` : '';
}

/** Validates a tap name against its tenant (and all tenants, for ambiguous prefixes). */
export function tapNameProblem(name: string, netId: number, allNetIds: number[]): string | null {
  const prefix = `tn${netId}`;
  if (!name.startsWith(prefix)) return `tap '${name}' must start with '${prefix}' (the tenant's net_id prefix)`;
  if (Buffer.byteLength(name) > IFNAMSIZ_MAX) return `tap '${name}' is longer than ${IFNAMSIZ_MAX} bytes`;
  if (!IFNAME_RE.test(name)) return `tap '${name}' contains characters not allowed in an interface name`;
  // 'tn12x' starts with both 'tn1' and 'tn12': the longer net_id claims it, so tenant 1 may not.
  for (const other of allNetIds) {
    if (other !== netId && String(other).startsWith(String(netId)) && name.startsWith(`tn${other}`)) {
      return `tap '${name}' is ambiguous: it also carries the prefix 'tn${other}' of net_id ${other}`;
    }
  }
  return null;
}

export function buildTopology(tenants: Tenant[], opts: TopologyOptions = {}): DesiredTopology {
  const problems: string[] = [];
  const underlay = opts.underlay ?? {};
  const underlayMtu = underlay.mtu ?? DEFAULT_UNDERLAY_MTU;
  if (!Number.isInteger(underlayMtu) || underlayMtu < 1280 || underlayMtu > 65535) {
    problems.push(`underlay MTU ${underlayMtu} out of range 1280..65535`);
  }
  if (tenants.length > MAX_TENANTS) problems.push(`${tenants.length} tenants exceed the cap of ${MAX_TENANTS}`);
  const check = (ip: string, what: string): string | null => {
    if (!familyOf(ip)) {
      problems.push(`${what}: '${ip}' is not an IP address`);
      return null;
    }
    return canonicalIp(ip);
  };
  const uLocal = underlay.local !== undefined ? check(underlay.local, 'underlay local address') : undefined;
  const uRemotes = underlay.remotes?.map((r) => check(r, 'underlay remote')).filter((r): r is string => r !== null);
  if (underlay.device !== undefined && !IFNAME_RE.test(underlay.device)) {
    problems.push(`underlay device '${underlay.device}' is not a valid interface name`);
  }
  if (underlay.vlanParent !== undefined && !IFNAME_RE.test(underlay.vlanParent)) {
    problems.push(`VLAN parent '${underlay.vlanParent}' is not a valid interface name`);
  }

  const allNetIds = tenants.map((t) => t.netId);
  const seenIds = new Map<string, Tenant>();
  const seenNetIds = new Map<number, Tenant>();
  const seenVni = new Map<number, Tenant>();
  const seenNames = new Map<string, string>();
  const seenMacs = new Map<string, string>();
  const claim = (name: string, owner: string): void => {
    const prev = seenNames.get(name);
    if (prev) problems.push(`interface name '${name}' is used twice (${prev} and ${owner})`);
    else seenNames.set(name, owner);
  };
  const out: DesiredTenant[] = [];

  for (const t of tenants) {
    const at = where(t);
    const before = problems.length;
    if (!TENANT_ID_RE.test(t.id)) problems.push(`${at}tenant id '${t.id}' must match ${TENANT_ID_RE.source}`);
    if (seenIds.has(t.id)) problems.push(`${at}tenant '${t.id}' is defined twice`);
    seenIds.set(t.id, t);
    if (!Number.isInteger(t.netId) || t.netId < 0 || t.netId > 99_999_999) {
      problems.push(`${at}tenant '${t.id}': net_id ${t.netId} must be an integer in 0..99999999`);
      continue;
    }
    const dupNet = seenNetIds.get(t.netId);
    if (dupNet) problems.push(`${at}tenant '${t.id}': net_id ${t.netId} is also used by tenant '${dupNet.id}'`);
    seenNetIds.set(t.netId, t);
    if (t.workloads.length > MAX_WORKLOADS_PER_TENANT) {
      problems.push(`${at}tenant '${t.id}': ${t.workloads.length} workloads exceed the cap of ${MAX_WORKLOADS_PER_TENANT}`);
    }

    const bridge = `ztbr${t.netId}`;
    claim(bridge, `bridge of tenant '${t.id}'`);
    const gateways: Cidr[] = [];
    const gwFamilies = new Set<Family>();
    for (const g of t.gateways) {
      const c = parseCidr(g);
      if (!c) {
        problems.push(`${at}tenant '${t.id}': gateway '${g}' is not an address/prefix-length`);
        continue;
      }
      if (gwFamilies.has(c.af)) problems.push(`${at}tenant '${t.id}': more than one ${c.af} gateway`);
      gwFamilies.add(c.af);
      gateways.push(c);
    }

    let vxlan: DesiredVxlan | null = null;
    let overheadAf: Family | null = null;
    if (t.vxlan) {
      const v = t.vxlan;
      if (!Number.isInteger(v.vni) || v.vni < 1 || v.vni > 0xffffff) problems.push(`${at}tenant '${t.id}': VNI ${v.vni} out of range 1..16777215`);
      const dupVni = seenVni.get(v.vni);
      if (dupVni) problems.push(`${at}VNI ${v.vni} is mapped to two tenants: '${dupVni.id}' and '${t.id}'`);
      seenVni.set(v.vni, t);
      if (!Number.isInteger(v.dstport) || v.dstport < 1 || v.dstport > 65535) problems.push(`${at}tenant '${t.id}': VXLAN port ${v.dstport} out of range`);
      const group = v.group ? check(v.group, `${at}tenant '${t.id}': VXLAN group`) : null;
      const local = uLocal !== undefined ? uLocal : v.local ? check(v.local, `${at}tenant '${t.id}': VXLAN local`) : null;
      const remotesIn = group ? [] : (uRemotes ?? v.remotes.map((r) => check(r, `${at}tenant '${t.id}': VXLAN remote`)).filter((r): r is string => r !== null));
      const remotes = [...new Set(remotesIn)];
      if (remotes.length > MAX_REMOTES) problems.push(`${at}tenant '${t.id}': ${remotes.length} VXLAN remotes exceed the cap of ${MAX_REMOTES}`);
      const fams = new Set([local, group, ...remotes].filter((x): x is string => !!x).map((x) => familyOf(x)!));
      if (fams.size > 1) problems.push(`${at}tenant '${t.id}': VXLAN addresses mix IPv4 and IPv6`);
      overheadAf = fams.has('inet6') ? 'inet6' : 'inet';
      const name = `ztvx${t.netId}`;
      claim(name, `vxlan of tenant '${t.id}'`);
      if (group && !underlay.device) problems.push(`${at}tenant '${t.id}': VXLAN group ${group} needs an underlay device (underlay.device / --underlay-dev): the kernel requires one for multicast`);
      vxlan = { name, vni: v.vni, port: v.dstport, local, group, remotes, learning: v.learning, device: underlay.device ?? null };
    }
    const mtu = overheadAf ? underlayMtu - VXLAN_OVERHEAD[overheadAf] : underlayMtu;

    let vlan: DesiredTenant['vlan'] = null;
    if (t.vlan !== null) {
      if (!Number.isInteger(t.vlan) || t.vlan < 1 || t.vlan > 4094) problems.push(`${at}tenant '${t.id}': VLAN id ${t.vlan} out of range 1..4094`);
      if (!underlay.vlanParent) problems.push(`${at}tenant '${t.id}': VLAN ${t.vlan} needs a parent link (underlay.vlanParent / --vlan-parent)`);
      const name = `ztvl${t.netId}`;
      claim(name, `vlan of tenant '${t.id}'`);
      vlan = { name, id: t.vlan, parent: underlay.vlanParent ?? '' };
    }

    const ports: DesiredPort[] = [];
    t.workloads.forEach((w, idx) => {
      const p = tapNameProblem(w.tap, t.netId, allNetIds);
      if (p) {
        problems.push(`${at}tenant '${t.id}' workload '${w.name}': ${p}`);
        return;
      }
      claim(w.tap, `workload '${w.name}' of tenant '${t.id}'`);
      let mac: string | null = null;
      if (w.mac !== undefined) {
        mac = canonicalMac(w.mac);
        if (!mac) problems.push(`${at}tenant '${t.id}' workload '${w.name}': MAC '${w.mac}' is not a MAC address`);
        else if ((parseInt(mac.slice(0, 2), 16) & 1) === 1 || mac === '00:00:00:00:00:00') {
          problems.push(`${at}tenant '${t.id}' workload '${w.name}': MAC ${mac} is multicast or zero`);
        } else {
          const me = `workload '${w.name}' of tenant '${t.id}'`;
          const prev = seenMacs.get(mac);
          if (prev) problems.push(`${at}MAC ${mac} is used by ${prev} and ${me}`);
          seenMacs.set(mac, me);
        }
      }
      const ips: Cidr[] = [];
      for (const ipText of w.ips) {
        let c = parseCidr(ipText);
        if (!c) {
          const af = familyOf(ipText);
          if (!af) {
            problems.push(`${at}tenant '${t.id}' workload '${w.name}': '${ipText}' is not an IP address`);
            continue;
          }
          // A bare address takes the length of the tenant subnet (or gateway prefix) holding it.
          const ip = canonicalIp(ipText);
          const sub = t.subnets.find((s) => s.af === af && inPrefix(ip, s.addr, s.len));
          const gw = gateways.find((g) => g.af === af && inPrefix(ip, g.addr, g.len));
          const len = sub?.len ?? gw?.len ?? (af === 'inet' ? 32 : 128);
          c = { af, addr: ip, len };
        }
        ips.push(c);
      }
      let sandbox: SandboxSpec | null = null;
      if (opts.sandbox) {
        const gws = gateways
          .filter((g) => ips.some((ip) => ip.af === g.af && inPrefix(ip.addr, g.addr, g.len)))
          .map((g) => g.addr);
        sandbox = { netns: sandboxNetnsName(opts.netns, t.netId, idx), ifname: 'eth0', gateways: gws };
      }
      ports.push({ name: w.tap, kind: opts.sandbox ? 'veth' : 'tap', workload: w.name, mac, ips, sandbox });
    });
    if (problems.length === before) out.push({ id: t.id, netId: t.netId, bridge, mtu, gateways, vxlan, vlan, ports });
  }
  if (problems.length) throw new TopologyError(problems);
  return { netns: opts.netns, sandbox: Boolean(opts.sandbox), tenants: out };
}
