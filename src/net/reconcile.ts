// Net layer: the orchestrator's library API — applyTenants (reconcile the live tenant networks to
// the policy: read, plan, execute the minimal change set in dependency order), verifyTenants
// (the same plan, reported as drift) and teardownTenants (remove exactly what we own). A run is
// guarded by the capability check (before anything changes), the per-host lock and the intent
// journal (see ./host.ts). Everything is relative to `netns` when given: the netlink socket is
// opened inside it (setns from the addon, no `ip netns exec` child); sandbox workload namespaces
// are separate namespaces either way.
import { closeSync, openSync } from 'node:fs';
import type { Tenant } from '../policy/ir.js';
import { NetlinkError, OwnershipError } from './errors.js';
import {
  acquireLock,
  clearApplied,
  clearIntent,
  detectVlanSupport,
  readApplied,
  readIntent,
  requireCapabilities,
  vlanUnsupportedError,
  writeApplied,
  writeIntent,
} from './host.js';
import { planChanges, type Action, type DriftKind, type Finding, type NamedChange, type Plan, type Step } from './plan.js';
import { Rtnl, type LinkChange, type LinkState } from './rtnl.js';
import { listNetns, readActual } from './state.js';
import { createTap, deleteNetns, createNetns, netnsPath } from './tap.js';
import { buildTopology, parseOwnerAlias, sandboxPrefix, type DesiredTopology, type UnderlayOptions } from './topology.js';

export interface NetOptions {
  /** Target namespace ("the host"); undefined = the namespace we run in. */
  netns?: string;
  /** Workloads get their own namespaces joined by veth pairs instead of taps. */
  sandbox?: boolean;
  underlay?: UnderlayOptions;
}

export interface ApplyOptions extends NetOptions {
  dryRun?: boolean;
  /** Requests in flight at once inside one phase (the kernel serialises them anyway). */
  concurrency?: number;
}

export interface PlannedChange {
  phase: number;
  op: Action['t'];
  tenant: string | null;
  drift: DriftKind;
  text: string;
}

export interface ApplyReport {
  netns: string | null;
  dryRun: boolean;
  /** The change set, in execution order; on a dry run nothing of it was done. */
  changes: PlannedChange[];
  /** Number of changes made (0 on a dry run and on a no-op). */
  applied: number;
  noop: boolean;
  findings: Finding[];
  /** Desired objects (links + sandbox namespaces). */
  objects: number;
  /** Netlink requests sent (dumps count once), across all sockets. */
  messages: number;
  durationMs: number;
}

export interface DriftItem {
  drift: DriftKind;
  tenant: string | null;
  text: string;
}

export interface VerifyReport {
  netns: string | null;
  ok: boolean;
  drift: DriftItem[];
  objects: number;
  messages: number;
  durationMs: number;
}

export interface TeardownReport {
  netns: string | null;
  removed: string[];
  messages: number;
  durationMs: number;
}

function toChange(s: Step): PlannedChange {
  return { phase: s.phase, op: s.action.t, tenant: s.tenant, drift: s.drift, text: s.text };
}

function countObjects(d: DesiredTopology): number {
  let n = 0;
  for (const t of d.tenants) n += 1 + (t.vxlan ? 1 : 0) + (t.vlan ? 1 : 0) + t.ports.length * (d.sandbox ? 2 : 1);
  return n;
}

/** Runs steps against the kernel; resolves names to indexes lazily, re-reading after creations. */
class Executor {
  readonly #nl: Rtnl;
  // Name -> index, shared by the concurrent workers of a phase (one dump, not one per worker).
  #index: Promise<Map<string, number>> | null = null;
  readonly #ns = new Map<string, { nl: Rtnl; index: Promise<Map<string, number>> | null }>();
  messagesOther = 0;

  constructor(nl: Rtnl) {
    this.#nl = nl;
  }

  async #resolve(name: string): Promise<number> {
    if (!this.#index) this.#index = this.#nl.links().then((ls) => new Map(ls.map((l) => [l.name, l.index])));
    const i = (await this.#index).get(name);
    if (i === undefined) throw new NetlinkError('resolve', `link ${name}`, 19, { name: 'ENODEV' });
    return i;
  }

  async #nsResolve(ns: string, name: string): Promise<{ nl: Rtnl; index: number }> {
    let e = this.#ns.get(ns);
    if (!e) {
      e = { nl: Rtnl.open(ns), index: null };
      this.#ns.set(ns, e);
    }
    if (!e.index) e.index = e.nl.links().then((ls) => new Map(ls.map((l) => [l.name, l.index])));
    const i = (await e.index).get(name);
    if (i === undefined) throw new NetlinkError('resolve', `link ${name} in netns ${ns}`, 19, { name: 'ENODEV' });
    return { nl: e.nl, index: i };
  }

  async #change(c: NamedChange): Promise<LinkChange> {
    const { master, ...rest } = c;
    return master !== undefined ? { ...rest, master: await this.#resolve(master) } : rest;
  }

  async run(a: Action): Promise<void> {
    const nl = this.#nl;
    switch (a.t) {
      case 'delete-link':
        return nl.deleteLink(await this.#resolve(a.name), a.name);
      case 'delete-netns':
        this.#ns.get(a.name)?.nl.close();
        this.#ns.delete(a.name);
        deleteNetns(a.name);
        return;
      case 'create-netns':
        createNetns(a.name);
        return;
      case 'create-bridge':
        return nl.createLink({ name: a.name, kind: 'bridge' });
      case 'create-vxlan':
        return nl.createLink({
          name: a.name,
          kind: 'vxlan',
          vxlan: a.device ? { ...a.vxlan, link: await this.#resolve(a.device) } : a.vxlan,
          mtu: a.mtu,
          master: await this.#resolve(a.master),
          up: true,
        });
      case 'create-vlan':
        return nl.createLink({ name: a.name, kind: 'vlan', vlan: { id: a.id, link: await this.#resolve(a.parent) }, mtu: a.mtu, master: await this.#resolve(a.master), up: true });
      case 'create-tap':
        createTap(a.name, { netns: nl.netns });
        return;
      case 'create-veth': {
        const master = await this.#resolve(a.master);
        const fd = openSync(netnsPath(a.peer.netns), 'r');
        try {
          await nl.createLink({
            name: a.name,
            kind: 'veth',
            mtu: a.mtu,
            master,
            up: true,
            veth: { peerName: a.peer.ifname, peerNetnsFd: fd, peerMtu: a.mtu, ...(a.peer.mac ? { peerMac: a.peer.mac } : {}) },
          });
        } finally {
          closeSync(fd);
        }
        return;
      }
      case 'set-link':
        return nl.setLink(await this.#resolve(a.name), a.name, await this.#change(a.change));
      case 'add-addr':
        return nl.addAddress(await this.#resolve(a.link), a.link, a.addr, a.len);
      case 'del-addr':
        return nl.delAddress(await this.#resolve(a.link), a.link, a.addr, a.len);
      case 'add-fdb':
        return nl.addFdb(await this.#resolve(a.link), a.link, a.mac, a.dst);
      case 'del-fdb':
        return nl.delFdb(await this.#resolve(a.link), a.link, a.mac, a.dst);
      case 'ns-set-link': {
        const { nl: n, index } = await this.#nsResolve(a.netns, a.name);
        const { master: _m, ...rest } = a.change;
        return n.setLink(index, `${a.name} in netns ${a.netns}`, rest);
      }
      case 'ns-add-addr': {
        const { nl: n, index } = await this.#nsResolve(a.netns, a.link);
        return n.addAddress(index, `${a.link} in netns ${a.netns}`, a.addr, a.len);
      }
      case 'ns-del-addr': {
        const { nl: n, index } = await this.#nsResolve(a.netns, a.link);
        return n.delAddress(index, `${a.link} in netns ${a.netns}`, a.addr, a.len);
      }
      case 'ns-add-route': {
        const { nl: n, index } = await this.#nsResolve(a.netns, a.link);
        return n.addDefaultRoute(index, `${a.link} in netns ${a.netns}`, a.gateway);
      }
    }
  }

  /** Phases run in order; the steps of one phase are independent and run concurrently. No step
   *  needs the index of a link created in its own phase (that is what the phases are for), so the
   *  name -> index maps are dropped only between phases, after links were created or deleted. */
  async runAll(steps: Step[], concurrency: number): Promise<number> {
    let done = 0;
    let i = 0;
    while (i < steps.length) {
      const phase = steps[i]!.phase;
      let j = i;
      while (j < steps.length && steps[j]!.phase === phase) j++;
      const batch = steps.slice(i, j);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < batch.length) {
          const s = batch[next++]!;
          await this.run(s.action);
          done++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, worker));
      if (batch.some((s) => s.action.t.startsWith('create-') || s.action.t.startsWith('delete-'))) {
        this.#index = null;
        for (const e of this.#ns.values()) e.index = null;
      }
      i = j;
    }
    return done;
  }

  get messages(): number {
    let n = this.messagesOther;
    for (const e of this.#ns.values()) n += e.nl.messages;
    return n;
  }

  close(): void {
    for (const e of this.#ns.values()) e.nl.close();
    this.#ns.clear();
  }
}

async function planFor(nl: Rtnl, desired: DesiredTopology, inner: boolean, adopted: Set<string>): Promise<{ plan: Plan; messages: number }> {
  const actual = await readActual(nl, desired, { inner });
  // readActual opens one socket per sandbox namespace and sends 4 dumps on it (links, addresses,
  // IPv4 and IPv6 routes); count them too.
  const messages = actual.inner.size * 4;
  return { plan: planChanges(desired, actual, { adopted, inner }), messages };
}

function vlanTenants(d: DesiredTopology): string[] {
  return d.tenants.filter((t) => t.vlan).map((t) => t.id);
}

export async function applyTenants(tenants: Tenant[], opts: ApplyOptions = {}): Promise<ApplyReport> {
  const t0 = performance.now();
  const desired = buildTopology(tenants, opts);
  if (!opts.dryRun) requireCapabilities('ztb-enforce apply', opts);
  const vt = vlanTenants(desired);
  if (vt.length && !(await detectVlanSupport())) throw vlanUnsupportedError(vt);
  const lock = opts.dryRun ? null : await acquireLock(opts.netns);
  const nl = Rtnl.open(opts.netns);
  const exec = new Executor(nl);
  try {
    const adopted = readIntent(opts.netns);
    const { plan, messages: readMsgs } = await planFor(nl, desired, true, adopted);
    exec.messagesOther += readMsgs;
    if (plan.conflicts.length) {
      throw new OwnershipError(`refusing to apply; nothing was changed:\n  ${plan.conflicts.map((c) => c.text).join('\n  ')}`);
    }
    let applied = 0;
    if (!opts.dryRun && plan.steps.length) {
      // Announce every name we are about to create before creating any (plus what an earlier,
      // interrupted run announced and may still have left unmarked).
      if (plan.creates.length || adopted.size) writeIntent(opts.netns, new Set([...adopted, ...plan.creates]));
      applied = await exec.runAll(plan.steps, opts.concurrency ?? 32);
    }
    if (!opts.dryRun) {
      clearIntent(opts.netns);
      writeApplied(opts.netns, { sandbox: Boolean(opts.sandbox), underlay: opts.underlay ?? {} });
    }
    return {
      netns: opts.netns ?? null,
      dryRun: Boolean(opts.dryRun),
      changes: plan.steps.map(toChange),
      applied,
      noop: plan.steps.length === 0,
      findings: plan.findings,
      objects: countObjects(desired),
      messages: nl.messages + exec.messages,
      durationMs: performance.now() - t0,
    };
  } finally {
    exec.close();
    nl.close();
    await lock?.release();
  }
}

export interface VerifyOptions extends NetOptions {
  /** Also inspect the inside of sandbox namespaces and foreign ports (slower). */
  deep?: boolean;
}

/** Fills sandbox/underlay from the last apply on this host when the caller did not say. */
export function withAppliedDefaults<T extends NetOptions>(opts: T): T {
  const a = readApplied(opts.netns);
  if (!a) return opts;
  return { ...opts, sandbox: opts.sandbox ?? a.sandbox, underlay: opts.underlay ?? a.underlay };
}

export async function verifyTenants(tenants: Tenant[], opts: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const o = withAppliedDefaults(opts);
  const desired = buildTopology(tenants, o);
  const nl = Rtnl.open(o.netns);
  try {
    const { plan, messages } = await planFor(nl, desired, Boolean(o.deep), readIntent(o.netns));
    const drift: DriftItem[] = [
      ...plan.conflicts.map((c) => ({ drift: c.drift, tenant: null, text: c.text })),
      ...plan.steps.map((s) => ({ drift: s.drift, tenant: s.tenant, text: s.text })),
      ...plan.findings.filter((f) => o.deep || f.drift === 'vni-conflict').map((f) => ({ drift: f.drift, tenant: null, text: f.text })),
    ];
    return { netns: o.netns ?? null, ok: drift.length === 0, drift, objects: countObjects(desired), messages: nl.messages + messages, durationMs: performance.now() - t0 };
  } finally {
    nl.close();
  }
}

/** Device groups we borrow for bulk deletion: a fixed high range, unlikely to be anyone's. */
const BULK_GROUP_BASE = 0x7a740000;

/** Deletes `links` in one kernel batch: move them into a device group nobody uses, check that the
 *  group holds exactly them (never a foreign link), then delete the group. Returns false (having
 *  deleted nothing) when that cannot be guaranteed; the caller then deletes one by one. */
async function bulkDelete(nl: Rtnl, links: LinkState[], concurrency: number): Promise<boolean> {
  const before = await nl.links();
  const used = new Set(before.map((l) => l.group));
  let group = -1;
  for (let i = 0; i < 64; i++) {
    const g = BULK_GROUP_BASE + ((Math.random() * 0xffff) | 0);
    if (!used.has(g)) {
      group = g;
      break;
    }
  }
  if (group < 0) return false;
  const want = new Set(links.map((l) => l.index));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < links.length) {
      const l = links[next++]!;
      await nl.setGroup(l.index, l.name, group);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, links.length) }, worker));
  const members = (await nl.links()).filter((l) => l.group === group);
  if (members.length !== want.size || members.some((l) => !want.has(l.index))) {
    // Something else joined the group (or a link vanished): put ours back and go slowly.
    for (const l of members) if (want.has(l.index)) await nl.setGroup(l.index, l.name, before.find((b) => b.index === l.index)?.group ?? 0);
    return false;
  }
  await nl.deleteGroup(group);
  return true;
}

export interface TeardownOptions {
  netns?: string;
  concurrency?: number;
}

/** Removes every object this host's ztb-enforce owns: links marked `ztb:` (ports first, then
 *  tunnels, then bridges), alias-less links an interrupted run announced, and the sandbox
 *  namespaces of this host. Foreign links are never touched. `tenants` is accepted for symmetry
 *  with apply; ownership, not the policy, decides what goes, so a tenant dropped from the policy
 *  since the last apply is removed too. */
export async function teardownTenants(_tenants: Tenant[] | null, opts: TeardownOptions = {}): Promise<TeardownReport> {
  const t0 = performance.now();
  requireCapabilities('ztb-enforce down', { netns: opts.netns, sandbox: true });
  const lock = await acquireLock(opts.netns);
  const nl = Rtnl.open(opts.netns);
  try {
    const adopted = readIntent(opts.netns);
    const links = await nl.links();
    const removed: string[] = [];
    const rank = (role: string | null, kind: string | null): number =>
      role === 'bridge' || kind === 'bridge' ? 2 : role === 'vxlan' || role === 'vlan' || kind === 'vxlan' || kind === 'vlan' ? 1 : 0;
    const owned = links
      .map((l) => ({ l, o: parseOwnerAlias(l.alias) }))
      .filter(({ l, o }) => o || (l.alias === null && adopted.has(l.name)))
      .sort((a, b) => rank(a.o?.role ?? null, a.l.kind) - rank(b.o?.role ?? null, b.l.kind));
    const concurrency = opts.concurrency ?? 32;
    if (owned.length && (await bulkDelete(nl, owned.map(({ l }) => l), concurrency))) {
      removed.push(...owned.map(({ l }) => l.name));
    } else {
      for (const r of [0, 1, 2]) {
        const batch = owned.filter(({ l, o }) => rank(o?.role ?? null, l.kind) === r);
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < batch.length) {
            const { l } = batch[next++]!;
            try {
              await nl.deleteLink(l.index, l.name);
              removed.push(l.name);
            } catch (e) {
              // Deleting a veth's namespace end (or the namespace) can take the host end with it.
              if (!(e instanceof NetlinkError && e.errnoName === 'ENODEV')) throw e;
            }
          }
        };
        await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, worker));
      }
    }
    const prefix = sandboxPrefix(opts.netns);
    for (const ns of listNetns()) {
      if (ns.startsWith(prefix) && deleteNetns(ns)) removed.push(`netns ${ns}`);
    }
    clearIntent(opts.netns);
    clearApplied(opts.netns);
    return { netns: opts.netns ?? null, removed, messages: nl.messages, durationMs: performance.now() - t0 };
  } finally {
    nl.close();
    await lock.release();
  }
}
