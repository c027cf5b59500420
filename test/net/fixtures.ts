// Test fixtures for the net layer: hand-built tenants (the IR's Tenant shape, as the TOML loader
// produces it), throwaway namespaces, and `ip -j` readers used to cross-check what the
// orchestrator did through netlink.
import { execFileSync } from 'node:child_process';
import type { Tenant } from '../../src/policy/ir.js';
import { uniqueName } from '../helpers/privileged.js';

export interface TenantOpts {
  vxlan?: { vni: number; remotes?: string[]; local?: string; group?: string; learning?: boolean };
  vlan?: number;
  workloads?: number;
  v6?: boolean;
  tapPrefix?: string;
}

/** Tenant `t<netId>` with subnet 10.<netId>.0.0/24 (netId < 256 here), gateway .1, workloads .10+. */
export function tenant(netId: number, o: TenantOpts = {}): Tenant {
  const n = o.workloads ?? 2;
  const hi = Math.floor(netId / 256);
  const lo = netId % 256;
  const base = `10.${100 + hi}.${lo}`;
  const workloads = Array.from({ length: n }, (_, i) => ({
    name: `w${i}`,
    ips: [`${base}.${10 + i}`, ...(o.v6 ? [`fd00:${netId.toString(16)}::${(10 + i).toString(16)}`] : [])],
    mac: `02:00:${hex(hi)}:${hex(lo)}:00:${hex(10 + i)}`,
    tap: `${o.tapPrefix ?? `tn${netId}`}w${i}`,
  }));
  return {
    id: `t${netId}`,
    netId,
    subnets: [{ af: 'inet', addr: `${base}.0`, len: 24 }, ...(o.v6 ? [{ af: 'inet6' as const, addr: `fd00:${netId.toString(16)}::`, len: 64 }] : [])],
    gateways: [`${base}.1/24`, ...(o.v6 ? [`fd00:${netId.toString(16)}::1/64`] : [])],
    vxlan: o.vxlan ? { vni: o.vxlan.vni, remotes: o.vxlan.remotes ?? [], ...(o.vxlan.group ? { group: o.vxlan.group } : {}), ...(o.vxlan.local ? { local: o.vxlan.local } : {}), dstport: 4789, learning: o.vxlan.learning ?? false } : null,
    vlan: o.vlan ?? null,
    workloads,
    interfaces: [`ztbr${netId}`, ...workloads.map((w) => w.tap)],
    anchor: '',
    pos: { file: 'test.toml', line: netId, col: 1 },
  };
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

export function makeNetns(prefix: string): string {
  const name = uniqueName(prefix);
  execFileSync('ip', ['netns', 'add', name]);
  return name;
}

export function delNetns(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** Sandbox namespaces an apply in `host` created (ztw-<host>-*), for cleanup. */
export function sandboxNamespaces(host: string): string[] {
  const out = execFileSync('ip', ['-j', 'netns', 'list']).toString().trim();
  const list = out ? (JSON.parse(out) as { name: string }[]) : [];
  return list.map((x) => x.name).filter((n) => n.startsWith(`ztw-${host}-`));
}

export function cleanupHost(host: string): void {
  for (const ns of sandboxNamespaces(host)) delNetns(ns);
  delNetns(host);
}

export interface IpLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  master?: string;
  address?: string;
  flags: string[];
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

export function ipLinks(netns: string): Map<string, IpLink> {
  const out = JSON.parse(execFileSync('ip', ['-n', netns, '-j', '-d', 'link', 'show']).toString()) as IpLink[];
  return new Map(out.map((l) => [l.ifname, l]));
}

export function ipAddrs(netns: string, dev: string): string[] {
  const out = JSON.parse(execFileSync('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', dev]).toString()) as {
    addr_info: { local: string; prefixlen: number; scope: string }[];
  }[];
  return out.flatMap((l) => l.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`)).sort();
}

export function ip(netns: string, ...args: string[]): string {
  return execFileSync('ip', ['-n', netns, ...args]).toString();
}
