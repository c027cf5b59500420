// Net layer: the plan — the diff between the desired topology and the actual state, as an ordered
// list of steps in dependency order (delete extras: ports -> vxlan/vlan -> bridges -> namespaces;
// then create bridges -> addresses -> vxlan/vlan -> taps/veths -> enslave/MTU/MAC/up -> FDB ->
// inside sandbox namespaces). Pure: it reads the state records and writes no kernel object, so the
// same function serves `apply` (execute the steps), `apply --dry-run` (print them) and `verify`
// (each step is a drift item). Ownership is decided here: only links whose IFLA_IFALIAS is
// `ztb:<tenant>:<role>` (or that an interrupted run of ours had announced in its intent journal)
// are ever changed or removed; a foreign link holding a name we need is a conflict, never touched.
import type { LinkChange, VxlanSpec } from './rtnl.js';
import type { ActualState, NsInnerState } from './state.js';
import { ownerAlias, parseOwnerAlias, type DesiredPort, type DesiredTenant, type DesiredTopology, type OwnedRole } from './topology.js';

export type DriftKind = 'missing' | 'extra' | 'misconfigured' | 'wrong-tenant' | 'foreign' | 'foreign-port' | 'vni-conflict';

/** A link change whose master is given by name (resolved to an index when executed). */
export type NamedChange = Omit<LinkChange, 'master'> & { master?: string };

export type Action =
  | { t: 'delete-link'; name: string }
  | { t: 'delete-netns'; name: string }
  | { t: 'create-netns'; name: string }
  | { t: 'create-bridge'; name: string }
  | { t: 'create-vxlan'; name: string; vxlan: VxlanSpec; device: string | null; mtu: number; master: string }
  | { t: 'create-vlan'; name: string; id: number; parent: string; mtu: number; master: string }
  | { t: 'create-tap'; name: string }
  | { t: 'create-veth'; name: string; mtu: number; master: string; peer: { netns: string; ifname: string; mac: string | null } }
  | { t: 'set-link'; name: string; change: NamedChange }
  | { t: 'add-addr'; link: string; addr: string; len: number }
  | { t: 'del-addr'; link: string; addr: string; len: number }
  | { t: 'add-fdb'; link: string; mac: string; dst: string }
  | { t: 'del-fdb'; link: string; mac: string; dst: string }
  | { t: 'ns-set-link'; netns: string; name: string; change: NamedChange }
  | { t: 'ns-add-addr'; netns: string; link: string; addr: string; len: number }
  | { t: 'ns-del-addr'; netns: string; link: string; addr: string; len: number }
  | { t: 'ns-add-route'; netns: string; link: string; gateway: string };

export interface Step {
  phase: number;
  action: Action;
  /** Human text: what is done, and why (the drift that caused it). */
  text: string;
  drift: DriftKind;
  tenant: string | null;
}

/** Drift that apply cannot or must not repair (reported by verify, warned by apply). */
export interface Finding {
  drift: DriftKind;
  text: string;
}

export interface Plan {
  steps: Step[];
  /** Fatal for apply: a foreign link holds a name we need. */
  conflicts: Finding[];
  findings: Finding[];
  /** Names of links and namespaces the plan creates (written to the intent journal first). */
  creates: string[];
}

export const PHASES = {
  deletePorts: 10,
  deleteTunnels: 11,
  deleteBridges: 12,
  deleteNetns: 13,
  createBridges: 20,
  configureBridges: 30,
  createPorts: 40,
  configurePorts: 50,
  fdb: 60,
  nsLinks: 70,
  nsAddrs: 71,
  nsRoutes: 72,
} as const;

const KIND_OF_ROLE: Record<OwnedRole, string> = { bridge: 'bridge', vxlan: 'vxlan', vlan: 'vlan', tap: 'tun', veth: 'veth' };
const ZERO_MAC = '00:00:00:00:00:00';

interface Wanted {
  tenant: DesiredTenant;
  role: OwnedRole;
  port?: DesiredPort;
}

function deletePhase(role: OwnedRole | null, kind: string | null): number {
  const r = role ?? (kind === 'bridge' ? 'bridge' : kind === 'vxlan' ? 'vxlan' : kind === 'vlan' ? 'vlan' : 'tap');
  return r === 'bridge' ? PHASES.deleteBridges : r === 'vxlan' || r === 'vlan' ? PHASES.deleteTunnels : PHASES.deletePorts;
}

function vxlanDiff(want: NonNullable<DesiredTenant['vxlan']>, have: NonNullable<ActualState['links'][number]['vxlan']>): string[] {
  const d: string[] = [];
  if (want.vni !== have.vni) d.push(`VNI ${have.vni} != ${want.vni}`);
  if (want.port !== have.port) d.push(`dstport ${have.port} != ${want.port}`);
  if ((want.local ?? null) !== have.local) d.push(`local ${have.local ?? 'none'} != ${want.local ?? 'none'}`);
  if ((want.group ?? null) !== have.group) d.push(`group ${have.group ?? 'none'} != ${want.group ?? 'none'}`);
  if (want.learning !== have.learning) d.push(`learning ${have.learning ? 'on' : 'off'} != ${want.learning ? 'on' : 'off'}`);
  return d;
}

export interface PlanOptions {
  /** Names an interrupted run of ours announced: an alias-less link with such a name is ours. */
  adopted?: Set<string>;
  /** Include the inside of sandbox namespaces (needs ActualState.inner). */
  inner: boolean;
}

export function planChanges(desired: DesiredTopology, actual: ActualState, opts: PlanOptions): Plan {
  const steps: Step[] = [];
  const conflicts: Finding[] = [];
  const findings: Finding[] = [];
  const creates: string[] = [];
  const adopted = opts.adopted ?? new Set<string>();
  const add = (phase: number, action: Action, drift: DriftKind, tenant: string | null, text: string): void => {
    steps.push({ phase, action, drift, tenant, text });
  };
  const ownerOf = (name: string): { tenant: string | null; role: OwnedRole | null } | null => {
    const l = actual.byName.get(name);
    if (!l) return null;
    const o = parseOwnerAlias(l.alias);
    if (o) return o;
    if (l.alias === null && adopted.has(name)) return { tenant: null, role: null };
    return null;
  };

  // Per-link views, so the per-tenant lookups below stay linear in the size of the host.
  const addrsOf = new Map<number, ActualState['addrs']>();
  for (const a of actual.addrs) if (a.scope === 0) addrsOf.set(a.index, [...(addrsOf.get(a.index) ?? []), a]);
  const fdbOf = new Map<number, ActualState['fdb']>();
  for (const f of actual.fdb) if (f.mac === ZERO_MAC && f.dst) fdbOf.set(f.index, [...(fdbOf.get(f.index) ?? []), f]);

  const wanted = new Map<string, Wanted>();
  for (const t of desired.tenants) {
    wanted.set(t.bridge, { tenant: t, role: 'bridge' });
    if (t.vxlan) wanted.set(t.vxlan.name, { tenant: t, role: 'vxlan' });
    if (t.vlan) wanted.set(t.vlan.name, { tenant: t, role: 'vlan' });
    for (const p of t.ports) wanted.set(p.name, { tenant: t, role: p.kind, port: p });
  }

  // 1. Owned links that are not wanted, or wanted with another kind or immutable attributes.
  const recreate = new Set<string>();
  for (const l of actual.links) {
    const own = ownerOf(l.name);
    if (!own) continue;
    const w = wanted.get(l.name);
    if (!w) {
      add(deletePhase(own.role, l.kind), { t: 'delete-link', name: l.name }, 'extra', own.tenant, `delete ${l.name}: owned (${l.alias ?? 'intent journal'}) but not in the policy`);
      continue;
    }
    if (l.kind !== KIND_OF_ROLE[w.role]) {
      recreate.add(l.name);
      add(deletePhase(own.role, l.kind), { t: 'delete-link', name: l.name }, 'misconfigured', w.tenant.id, `recreate ${l.name}: kind ${l.kind ?? 'none'}, want ${KIND_OF_ROLE[w.role]}`);
      continue;
    }
    if (w.role === 'vxlan' && w.tenant.vxlan && l.vxlan) {
      const d = vxlanDiff(w.tenant.vxlan, l.vxlan);
      if (d.length) {
        recreate.add(l.name);
        add(PHASES.deleteTunnels, { t: 'delete-link', name: l.name }, 'misconfigured', w.tenant.id, `recreate ${l.name}: ${d.join(', ')}`);
      }
    }
    if (w.role === 'vlan' && w.tenant.vlan && l.vlan && l.vlan.id !== w.tenant.vlan.id) {
      recreate.add(l.name);
      add(PHASES.deleteTunnels, { t: 'delete-link', name: l.name }, 'misconfigured', w.tenant.id, `recreate ${l.name}: VLAN id ${l.vlan.id} != ${w.tenant.vlan.id}`);
    }
  }

  // Owned bridges, for telling "a tap on another tenant's bridge" from a plain wrong master.
  const bridgeTenant = new Map<number, string>();
  for (const l of actual.links) {
    const o = parseOwnerAlias(l.alias);
    if (o?.role === 'bridge') bridgeTenant.set(l.index, o.tenant);
  }

  // A present, owned, same-kind link that will be kept: returns it, else null (and plans creation
  // or records a conflict).
  const keep = (name: string, w: Wanted): ActualState['links'][number] | null => {
    const l = actual.byName.get(name);
    if (!l || recreate.has(name)) return null;
    if (!ownerOf(name)) {
      conflicts.push({ drift: 'foreign', text: `link ${name} exists but is not owned by ztb-enforce (alias ${l.alias === null ? 'unset' : `'${l.alias}'`}); refusing to touch it (tenant '${w.tenant.id}' needs this name)` });
      return null;
    }
    return l;
  };
  const isConflict = (name: string): boolean => {
    const l = actual.byName.get(name);
    return Boolean(l && !recreate.has(name) && !ownerOf(name));
  };

  // Common drift of a kept link: alias, MTU, master, MAC, up.
  const linkFixes = (l: ActualState['links'][number], w: Wanted, want: { mtu: number; master: string | null; mac: string | null }): { change: NamedChange; why: string[] } => {
    const change: NamedChange = {};
    const why: string[] = [];
    const alias = ownerAlias(w.tenant.id, w.role);
    if (l.alias !== alias) {
      change.alias = alias;
      why.push(`alias ${l.alias === null ? 'unset' : `'${l.alias}'`} -> '${alias}'`);
    }
    if (l.mtu !== want.mtu) {
      change.mtu = want.mtu;
      why.push(`MTU ${l.mtu} -> ${want.mtu}`);
    }
    if (want.master !== null) {
      const m = actual.byName.get(want.master);
      if (!m || l.master !== m.index) {
        change.master = want.master;
        const cur = l.master === null ? 'none' : (actual.byIndex.get(l.master)?.name ?? `#${l.master}`);
        why.push(`master ${cur} -> ${want.master}`);
      }
    }
    if (want.mac !== null && l.mac !== want.mac) {
      change.mac = want.mac;
      why.push(`MAC ${l.mac ?? 'none'} -> ${want.mac}`);
    }
    if (!l.up) {
      change.up = true;
      why.push('down -> up');
    }
    return { change, why };
  };

  for (const t of desired.tenants) {
    const tid = t.id;
    // 2. Bridge, then its addresses.
    const bw: Wanted = { tenant: t, role: 'bridge' };
    const br = keep(t.bridge, bw);
    if (!br && !isConflict(t.bridge)) {
      creates.push(t.bridge);
      add(PHASES.createBridges, { t: 'create-bridge', name: t.bridge }, 'missing', tid, `create bridge ${t.bridge}`);
      // The MTU goes in this second message, not the create: only a change through ndo_change_mtu
      // pins a bridge's MTU (BROPT_MTU_SET_BY_USER); otherwise it follows its smallest port.
      add(PHASES.configureBridges, { t: 'set-link', name: t.bridge, change: { alias: ownerAlias(tid, 'bridge'), mtu: t.mtu, up: true } }, 'missing', tid, `mark ${t.bridge} owned, MTU ${t.mtu}, up`);
    } else if (br) {
      const { change, why } = linkFixes(br, bw, { mtu: t.mtu, master: null, mac: null });
      if (why.length) add(PHASES.configureBridges, { t: 'set-link', name: t.bridge, change }, 'misconfigured', tid, `fix ${t.bridge}: ${why.join(', ')}`);
    }
    if (!isConflict(t.bridge)) {
      const have = br ? (addrsOf.get(br.index) ?? []) : [];
      for (const g of t.gateways) {
        if (!have.some((a) => a.addr === g.addr && a.len === g.len)) {
          add(PHASES.configureBridges, { t: 'add-addr', link: t.bridge, addr: g.addr, len: g.len }, br ? 'misconfigured' : 'missing', tid, `add gateway ${g.addr}/${g.len} to ${t.bridge}`);
        }
      }
      for (const a of have) {
        if (!t.gateways.some((g) => g.addr === a.addr && g.len === a.len)) {
          add(PHASES.configureBridges, { t: 'del-addr', link: t.bridge, addr: a.addr, len: a.len }, 'misconfigured', tid, `remove address ${a.addr}/${a.len} from ${t.bridge} (not a gateway of '${tid}')`);
        }
      }
    }

    // 3. VXLAN and its FDB.
    if (t.vxlan) {
      const v = t.vxlan;
      const vw: Wanted = { tenant: t, role: 'vxlan' };
      const vl = keep(v.name, vw);
      const spec: VxlanSpec = { vni: v.vni, port: v.port, learning: v.learning, ...(v.local ? { local: v.local } : {}), ...(v.group ? { group: v.group } : {}) };
      if (!vl && !isConflict(v.name)) {
        creates.push(v.name);
        add(PHASES.createPorts, { t: 'create-vxlan', name: v.name, vxlan: spec, device: v.device, mtu: t.mtu, master: t.bridge }, recreate.has(v.name) ? 'misconfigured' : 'missing', tid, `create vxlan ${v.name} VNI ${v.vni} dstport ${v.port}${v.local ? ` local ${v.local}` : ''}${v.group ? ` group ${v.group}` : ''} on ${t.bridge}`);
        add(PHASES.configurePorts, { t: 'set-link', name: v.name, change: { alias: ownerAlias(tid, 'vxlan') } }, 'missing', tid, `mark ${v.name} owned`);
      } else if (vl) {
        const { change, why } = linkFixes(vl, vw, { mtu: t.mtu, master: t.bridge, mac: null });
        if (why.length) add(PHASES.configurePorts, { t: 'set-link', name: v.name, change }, 'misconfigured', tid, `fix ${v.name}: ${why.join(', ')}`);
      }
      if (!isConflict(v.name)) {
        const have = vl ? (fdbOf.get(vl.index) ?? []) : [];
        for (const r of v.remotes) {
          if (!have.some((f) => f.dst === r)) add(PHASES.fdb, { t: 'add-fdb', link: v.name, mac: ZERO_MAC, dst: r }, vl ? 'misconfigured' : 'missing', tid, `add FDB ${ZERO_MAC} dst ${r} on ${v.name}`);
        }
        for (const f of have) {
          // The kernel keeps the multicast group itself as the default destination entry.
          if (!v.remotes.includes(f.dst!) && f.dst !== v.group) add(PHASES.fdb, { t: 'del-fdb', link: v.name, mac: ZERO_MAC, dst: f.dst! }, 'misconfigured', tid, `remove FDB dst ${f.dst} from ${v.name} (not a peer)`);
        }
      }
    }

    // 4. VLAN sub-interface (only where the kernel has 802.1Q; reconcile refuses it up front otherwise).
    if (t.vlan) {
      const vw: Wanted = { tenant: t, role: 'vlan' };
      const vl = keep(t.vlan.name, vw);
      if (!vl && !isConflict(t.vlan.name)) {
        creates.push(t.vlan.name);
        add(PHASES.createPorts, { t: 'create-vlan', name: t.vlan.name, id: t.vlan.id, parent: t.vlan.parent, mtu: t.mtu, master: t.bridge }, 'missing', tid, `create vlan ${t.vlan.name} id ${t.vlan.id} on ${t.vlan.parent}, enslaved to ${t.bridge}`);
        add(PHASES.configurePorts, { t: 'set-link', name: t.vlan.name, change: { alias: ownerAlias(tid, 'vlan') } }, 'missing', tid, `mark ${t.vlan.name} owned`);
      } else if (vl) {
        const { change, why } = linkFixes(vl, vw, { mtu: t.mtu, master: t.bridge, mac: null });
        if (why.length) add(PHASES.configurePorts, { t: 'set-link', name: t.vlan.name, change }, 'misconfigured', tid, `fix ${t.vlan.name}: ${why.join(', ')}`);
      }
    }

    // 5. Workload ports: taps, or veths into sandbox namespaces.
    for (const p of t.ports) {
      const pw: Wanted = { tenant: t, role: p.kind, port: p };
      const pl = keep(p.name, pw);
      if (!pl && !isConflict(p.name)) {
        creates.push(p.name);
        const why = recreate.has(p.name) ? 'misconfigured' : 'missing';
        if (p.kind === 'tap') {
          add(PHASES.createPorts, { t: 'create-tap', name: p.name }, why, tid, `create tap ${p.name} for workload '${p.workload}'`);
          const change: NamedChange = { alias: ownerAlias(tid, 'tap'), mtu: t.mtu, master: t.bridge, up: true };
          if (p.mac) change.mac = p.mac;
          add(PHASES.configurePorts, { t: 'set-link', name: p.name, change }, why, tid, `configure tap ${p.name}: owned, MTU ${t.mtu}, ${p.mac ? `MAC ${p.mac}, ` : ''}on ${t.bridge}, up`);
        } else if (p.sandbox) {
          add(PHASES.createPorts, { t: 'create-veth', name: p.name, mtu: t.mtu, master: t.bridge, peer: { netns: p.sandbox.netns, ifname: p.sandbox.ifname, mac: p.mac } }, why, tid, `create veth ${p.name} <-> ${p.sandbox.netns}:${p.sandbox.ifname} on ${t.bridge}`);
          add(PHASES.configurePorts, { t: 'set-link', name: p.name, change: { alias: ownerAlias(tid, 'veth') } }, why, tid, `mark ${p.name} owned`);
        }
      } else if (pl) {
        const { change, why } = linkFixes(pl, pw, { mtu: t.mtu, master: t.bridge, mac: p.kind === 'tap' ? p.mac : null });
        if (why.length) {
          const other = pl.master !== null ? bridgeTenant.get(pl.master) : undefined;
          const wrongTenant = other !== undefined && other !== tid;
          add(
            PHASES.configurePorts,
            { t: 'set-link', name: p.name, change },
            wrongTenant ? 'wrong-tenant' : 'misconfigured',
            tid,
            wrongTenant
              ? `fix ${p.name}: tap of tenant '${tid}' is on the bridge of tenant '${other}' (${actual.byIndex.get(pl.master!)?.name}); ${why.join(', ')}`
              : `fix ${p.name}: ${why.join(', ')}`,
          );
        }
      }
    }
  }

  // 6. Sandbox namespaces: extras go, missing ones are created before their veths.
  const wantNs = new Map<string, { t: DesiredTenant; p: DesiredPort }>();
  for (const t of desired.tenants) for (const p of t.ports) if (p.sandbox) wantNs.set(p.sandbox.netns, { t, p });
  const haveNs = new Set(actual.sandboxNs.filter((ns) => !actual.brokenNs.has(ns)));
  for (const ns of actual.sandboxNs) {
    if (!wantNs.has(ns)) add(PHASES.deleteNetns, { t: 'delete-netns', name: ns }, 'extra', null, `delete sandbox namespace ${ns} (not in the policy)`);
    else if (actual.brokenNs.has(ns)) add(PHASES.deleteNetns, { t: 'delete-netns', name: ns }, 'misconfigured', wantNs.get(ns)!.t.id, `recreate sandbox namespace ${ns}: the file exists but no namespace is mounted on it`);
  }
  for (const [ns, { t, p }] of wantNs) {
    if (isConflict(p.name)) continue;
    const fresh = !haveNs.has(ns);
    if (fresh) {
      creates.push(ns);
      add(PHASES.createBridges, { t: 'create-netns', name: ns }, 'missing', t.id, `create sandbox namespace ${ns} for workload '${p.workload}'`);
    }
    const hostVethNew = fresh || !actual.byName.has(p.name) || recreate.has(p.name);
    const inner: NsInnerState | undefined = hostVethNew ? undefined : actual.inner.get(ns);
    if (!hostVethNew && !opts.inner) continue;
    planInner(t, p, ns, inner ?? null, add);
  }

  // 7. Findings apply does not repair.
  const vniOwners = new Map<number, string[]>();
  for (const l of actual.links) {
    const o = parseOwnerAlias(l.alias);
    if (l.vxlan && o) vniOwners.set(l.vxlan.vni, [...(vniOwners.get(l.vxlan.vni) ?? []), `${l.name} (tenant '${o.tenant}')`]);
    if (l.master !== null && bridgeTenant.has(l.master) && !o && !adopted.has(l.name)) {
      findings.push({ drift: 'foreign-port', text: `foreign link ${l.name} is enslaved to ${actual.byIndex.get(l.master)?.name} of tenant '${bridgeTenant.get(l.master)}' (not ours: left alone)` });
    }
  }
  for (const [vni, owners] of vniOwners) {
    if (owners.length > 1) findings.push({ drift: 'vni-conflict', text: `VNI ${vni} is mapped to more than one tenant device: ${owners.join(', ')}` });
  }

  steps.sort((a, b) => a.phase - b.phase);
  return { steps, conflicts, findings, creates };
}

type AddFn = (phase: number, action: Action, drift: DriftKind, tenant: string | null, text: string) => void;

/** Inside a sandbox namespace: lo up, the workload interface (MTU, MAC, up), addresses, default routes. */
function planInner(t: DesiredTenant, p: DesiredPort, ns: string, inner: NsInnerState | null, add: AddFn): void {
  const sb = p.sandbox!;
  const drift: DriftKind = inner ? 'misconfigured' : 'missing';
  const lo = inner?.links.find((l) => l.name === 'lo');
  if (!lo?.up) add(PHASES.nsLinks, { t: 'ns-set-link', netns: ns, name: 'lo', change: { up: true } }, drift, t.id, `${ns}: lo up`);
  const eth = inner?.links.find((l) => l.name === sb.ifname);
  const change: NamedChange = {};
  const why: string[] = [];
  if (!eth || eth.mtu !== t.mtu) {
    change.mtu = t.mtu;
    why.push(`MTU ${t.mtu}`);
  }
  if (p.mac && (!eth || eth.mac !== p.mac)) {
    change.mac = p.mac;
    why.push(`MAC ${p.mac}`);
  }
  if (!eth?.up) {
    change.up = true;
    why.push('up');
  }
  if (why.length) add(PHASES.nsLinks, { t: 'ns-set-link', netns: ns, name: sb.ifname, change }, drift, t.id, `${ns}: ${sb.ifname} ${why.join(', ')}`);
  const have = eth && inner ? inner.addrs.filter((a) => a.index === eth.index && a.scope === 0) : [];
  for (const ip of p.ips) {
    if (!have.some((a) => a.addr === ip.addr && a.len === ip.len)) {
      add(PHASES.nsAddrs, { t: 'ns-add-addr', netns: ns, link: sb.ifname, addr: ip.addr, len: ip.len }, drift, t.id, `${ns}: add ${ip.addr}/${ip.len} to ${sb.ifname}`);
    }
  }
  for (const a of have) {
    if (!p.ips.some((ip) => ip.addr === a.addr && ip.len === a.len)) {
      add(PHASES.nsAddrs, { t: 'ns-del-addr', netns: ns, link: sb.ifname, addr: a.addr, len: a.len }, 'misconfigured', t.id, `${ns}: remove ${a.addr}/${a.len} from ${sb.ifname}`);
    }
  }
  for (const gw of sb.gateways) {
    const ok = inner?.routes.some((r) => r.gateway === gw && eth && r.oif === eth.index);
    if (!ok) add(PHASES.nsRoutes, { t: 'ns-add-route', netns: ns, link: sb.ifname, gateway: gw }, drift, t.id, `${ns}: default route via ${gw}`);
  }
}
