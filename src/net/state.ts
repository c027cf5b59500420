// Net layer: reading the actual state of a host (the root namespace or --netns) — links with their
// kind, master, MTU, MAC, alias and vxlan attributes, addresses, the bridge FDB, and the sandbox
// workload namespaces with what is inside them. Read-only; the plan compares this with the
// desired topology.
import { readdirSync, statSync } from 'node:fs';
import { Rtnl, type AddrState, type FdbState, type LinkState } from './rtnl.js';
import { NETNS_DIR } from './tap.js';
import { sandboxPrefix, type DesiredTopology } from './topology.js';
import type { Family } from './addr.js';

export interface NsInnerState {
  links: LinkState[];
  addrs: AddrState[];
  routes: { af: Family; gateway: string; oif: number }[];
}

export interface ActualState {
  links: LinkState[];
  byName: Map<string, LinkState>;
  byIndex: Map<number, LinkState>;
  addrs: AddrState[];
  fdb: FdbState[];
  /** Existing namespaces carrying this host's sandbox prefix. */
  sandboxNs: string[];
  /** Of those, the ones that are a plain file, not a mounted namespace (a run killed between
   *  creating the file and bind-mounting the namespace onto it). */
  brokenNs: Set<string>;
  /** Inner state of the sandbox namespaces that exist and are wanted (deep reads only). */
  inner: Map<string, NsInnerState>;
}

export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** A named namespace is a bind mount of an nsfs inode: its device differs from the directory's. */
export function isMountedNetns(name: string): boolean {
  try {
    return statSync(`${NETNS_DIR}/${name}`).dev !== statSync(NETNS_DIR).dev;
  } catch {
    return false;
  }
}

export async function readNsInner(ns: string): Promise<NsInnerState> {
  const nl = Rtnl.open(ns);
  try {
    const [links, addrs, routes] = await Promise.all([nl.links(), nl.addresses(), nl.defaultRoutes()]);
    return { links, addrs, routes };
  } finally {
    nl.close();
  }
}

export async function readActual(nl: Rtnl, desired: DesiredTopology, opts: { inner: boolean }): Promise<ActualState> {
  const [links, addrs] = await Promise.all([nl.links(), nl.addresses()]);
  const byName = new Map(links.map((l) => [l.name, l]));
  const byIndex = new Map(links.map((l) => [l.index, l]));
  const anyVxlan = desired.tenants.some((t) => t.vxlan) || links.some((l) => l.kind === 'vxlan');
  const fdb = anyVxlan ? await nl.fdb() : [];
  const prefix = sandboxPrefix(desired.netns);
  const sandboxNs = listNetns().filter((n) => n.startsWith(prefix));
  const brokenNs = new Set(sandboxNs.filter((n) => !isMountedNetns(n)));
  const inner = new Map<string, NsInnerState>();
  if (opts.inner) {
    const present = new Set(sandboxNs.filter((n) => !brokenNs.has(n)));
    for (const t of desired.tenants) {
      for (const p of t.ports) {
        if (p.sandbox && present.has(p.sandbox.netns)) inner.set(p.sandbox.netns, await readNsInner(p.sandbox.netns));
      }
    }
  }
  return { links, byName, byIndex, addrs, fdb, sandboxNs, brokenNs, inner };
}
