// Backend layer (nftables): the reachability probe behind `ztb-enforce probe` and the demo. In a
// gateway namespace holding the tenant networks (sandbox workloads from the orchestrator), it adds
// two stand-ins — an "internet" namespace behind an uplink (the gateway's default route, so it is
// the `egress` group) and a "cluster" host inside the first routable cluster network — loads the
// policy into nftables, then sends real TCP, UDP and ICMP from every workload (and from the stand-
// ins) to every other workload, to the gateway's own services, to the cluster host and to the
// internet. Each probe's expectation comes from the reference evaluator fed the same packets (in
// on the source's gateway interface, out on the destination's, and the reply back), so the matrix
// shows expected vs observed and any difference is a finding.
import { basename, relative } from 'node:path';
import type { Ir, Tenant } from '../../policy/ir.js';
import { ReferenceEvaluator } from '../../engine/reference.js';
import type { EvalPacket } from '../../engine/packet.js';
import { workloadNetns } from '../../net/sandbox.js';
import { applyNft, readCounters, readHostAddressing, type RuleCounter } from './apply.js';
import { Lab, connectProbes, sh, startServer, type ConnectProbe } from './lab.js';
import { networkOf, parseCidr } from './addr.js';

export type EndpointKind = 'workload' | 'gateway' | 'cluster' | 'internet';

export interface ProbeEndpoint {
  name: string;
  kind: EndpointKind;
  /** Namespace to run in (the gateway namespace for the gateway's own services). */
  ns: string;
  addr: string;
  /** The gateway-side interface this endpoint's traffic enters and leaves by. */
  iface: string;
  tenant: string | null;
}

export interface ProbeCase {
  from: string;
  to: string;
  proto: 'tcp' | 'udp' | 'icmp';
  port: number;
  expected: boolean;
  observed: boolean;
  /** Reference evaluator's deciding rules, for the report. */
  why: string;
  detail: string;
}

export interface ProbeReport {
  netns: string;
  endpoints: ProbeEndpoint[];
  cases: ProbeCase[];
  differences: number;
  counters: RuleCounter[];
}

export interface ProbeOptions {
  /** Gateway namespace holding the tenant networks (applied with sandbox workloads). */
  netns: string;
  /** Seconds a probe waits for its answer. */
  timeout?: number;
  /** Keep the stand-in namespaces (the demo's --keep). */
  keepStandIns?: boolean;
}

export const UPLINK_IF = 'ztinet0';
export const CLUSTER_IF = 'ztclus0';
const INTERNET_NET = '203.0.113.0/24';
const EPHEMERAL = 40000;

function v4Of(list: string[]): string | null {
  for (const a of list) {
    const c = parseCidr(a);
    if (c && c.af === 'inet') return c.addr;
  }
  return null;
}

/** A /24 inside the first cluster network that can be routed (not loopback, not link-local). */
function clusterNet(ir: Ir): string | null {
  for (const p of ir.isolation?.clusterNetworks ?? []) {
    if (p.af !== 'inet' || p.len > 24) continue;
    if (p.addr.startsWith('127.') || p.addr.startsWith('169.254.')) continue;
    return `${p.addr}/24`;
  }
  return null;
}

/** Ports worth probing: the isolation's allowed ports, ports rules test for equality, and 8000. */
export function probePorts(ir: Ir): { tcp: number[]; udp: number[] } {
  const tcp = new Set<number>([8000]);
  const udp = new Set<number>([8000]);
  for (const a of ir.isolation?.allowedPorts ?? []) (a.protocol === 'tcp' ? tcp : udp).add(a.port);
  for (const r of ir.rules) {
    if (r.dstPort?.op !== '=' || (r.action !== 'pass' && r.action !== 'block')) continue;
    if (r.proto === 6) tcp.add(r.dstPort.lo);
    if (r.proto === 17) udp.add(r.dstPort.lo);
  }
  const cap = (s: Set<number>) => [...s].sort((a, b) => a - b).slice(0, 6);
  return { tcp: cap(tcp), udp: cap(udp) };
}

/** Sets up the internet and cluster stand-ins in the gateway namespace (a Lab on it). */
export function createStandIns(ir: Ir, gwNs: string): Lab {
  const specs = [{ name: 'inet', gwIf: UPLINK_IF, v4: INTERNET_NET, defaultRoute: true }];
  const cl = clusterNet(ir);
  const haveDefault = sh(['ip', '-n', gwNs, '-4', 'route', 'show', 'default']).trim() !== '';
  if (haveDefault) specs[0]!.defaultRoute = false;
  // The tenants' subnets are reached through the gateway from both stand-ins (their default route
  // points there).
  return Lab.create('ztpr', cl ? [...specs, { name: 'clus', gwIf: CLUSTER_IF, v4: cl, defaultRoute: false }] : specs, { gwNs });
}

function bridgeOf(t: Tenant): string {
  return `ztbr${t.netId}`;
}

export function probeEndpoints(ir: Ir, gwNs: string, lab: Lab): ProbeEndpoint[] {
  const eps: ProbeEndpoint[] = [];
  for (const t of ir.tenants) {
    for (const w of t.workloads) {
      const addr = v4Of(w.ips);
      if (!addr) continue;
      eps.push({ name: w.name, kind: 'workload', ns: workloadNetns(ir.tenants, t.id, w.name, { netns: gwNs }), addr, iface: bridgeOf(t), tenant: t.id });
    }
    const gw = v4Of(t.gateways);
    if (gw) eps.push({ name: `gw:${t.id}`, kind: 'gateway', ns: gwNs, addr: gw, iface: bridgeOf(t), tenant: t.id });
  }
  const inet = lab.endpoints.get('inet');
  if (inet) eps.push({ name: 'internet', kind: 'internet', ns: inet.ns, addr: inet.addr4, iface: UPLINK_IF, tenant: null });
  const clus = lab.endpoints.get('clus');
  if (clus) eps.push({ name: 'cluster', kind: 'cluster', ns: clus.ns, addr: clus.addr4, iface: CLUSTER_IF, tenant: null });
  return eps;
}

/** Expected reachability: the probe's packet and its reply through a fresh reference evaluator. */
export function expectReach(ir: Ir, evalOpts: ConstructorParameters<typeof ReferenceEvaluator>[1], from: ProbeEndpoint, to: ProbeEndpoint, proto: ProbeCase['proto'], port: number): { pass: boolean; why: string } {
  const ref = new ReferenceEvaluator(ir, evalOpts);
  const p = proto === 'tcp' ? 6 : proto === 'udp' ? 17 : 1;
  const base = { af: 'inet' as const, proto: p };
  const fwd: EvalPacket = { ...base, dir: 'in', ifname: from.iface, src: from.addr, dst: to.addr, sport: proto === 'icmp' ? 1 : EPHEMERAL, dport: proto === 'icmp' ? 0 : port, tcpFlags: p === 6 ? 0x02 : 0, ...(proto === 'icmp' ? { icmpType: 8, icmpCode: 0 } : {}) };
  const rev: EvalPacket = { ...base, dir: 'in', ifname: to.iface, src: to.addr, dst: from.addr, sport: proto === 'icmp' ? 1 : port, dport: proto === 'icmp' ? 0 : EPHEMERAL, tcpFlags: p === 6 ? 0x12 : 0, ...(proto === 'icmp' ? { icmpType: 0, icmpCode: 0 } : {}) };
  // The gateway's own services: in on the source's interface, the reply out of it.
  const steps: EvalPacket[] =
    to.kind === 'gateway'
      ? [fwd, { ...rev, dir: 'out', ifname: from.iface }]
      : from.kind === 'gateway'
        ? [{ ...fwd, dir: 'out', ifname: to.iface }, { ...rev, ifname: to.iface }]
        : [fwd, { ...fwd, dir: 'out', ifname: to.iface }, rev, { ...rev, dir: 'out', ifname: from.iface }];
  const why: string[] = [];
  for (const s of steps) {
    const r = ref.evaluate(s);
    why.push(`${s.dir} ${s.ifname}: ${r.verdict}${r.ruleId !== null ? ` (${r.reason} ${r.ruleId})` : ` (${r.reason})`}`);
    if (r.verdict !== 'pass') return { pass: false, why: why.join(', ') };
  }
  return { pass: true, why: why.join(', ') };
}

export async function runProbe(ir: Ir, opts: ProbeOptions): Promise<ProbeReport> {
  const gwNs = opts.netns;
  const lab = createStandIns(ir, gwNs);
  const servers: { stop(): Promise<void> }[] = [];
  try {
    const addressing = readHostAddressing({ netns: gwNs });
    const groups = { ...addressing.groups, ...ir.groups };
    const rendering = applyNft(ir, { netns: gwNs }, { ifaddrs: addressing.ifaddrs, groups });
    const eps = probeEndpoints(ir, gwNs, lab);
    const ports = probePorts(ir);
    const allPorts = [...new Set([...ports.tcp, ...ports.udp])];
    for (const ns of new Set(eps.map((e) => e.ns))) servers.push(await startServer(ns, allPorts));

    const evalOpts = { ifaddrs: addressing.ifaddrs, groups };
    const plan = new Map<string, { probe: ConnectProbe; c: ProbeCase }[]>();
    for (const from of eps) {
      if (from.kind === 'gateway') continue;
      for (const to of eps) {
        if (to === from) continue;
        // A workload probes the gateway of its own tenant; the stand-ins probe no gateway.
        if (to.kind === 'gateway' && (from.kind !== 'workload' || to.tenant !== from.tenant)) continue;
        const list = plan.get(from.ns) ?? [];
        const add = (proto: ProbeCase['proto'], port: number) => {
          const e = expectReach(ir, evalOpts, from, to, proto, port);
          list.push({ probe: { proto, dst: to.addr, port }, c: { from: from.name, to: to.name, proto, port, expected: e.pass, observed: false, why: e.why, detail: '' } });
        };
        for (const port of ports.tcp) add('tcp', port);
        for (const port of ports.udp) add('udp', port);
        add('icmp', 0);
        plan.set(from.ns, list);
      }
    }
    await Promise.all(
      [...plan].map(async ([ns, list]) => {
        const res = await connectProbes(ns, list.map((x) => x.probe), opts.timeout ?? 1, 32);
        res.forEach((r, i) => {
          list[i]!.c.observed = r.ok;
          list[i]!.c.detail = r.detail;
        });
      }),
    );
    // A probe that should pass but timed out is tried once more with a longer wait: on a loaded
    // machine a handshake can be slow; a probe that passed when it should not is never retried.
    await Promise.all(
      [...plan].map(async ([ns, list]) => {
        const again = list.filter((x) => x.c.expected && !x.c.observed);
        if (again.length === 0) return;
        const res = await connectProbes(ns, again.map((x) => x.probe), (opts.timeout ?? 1) * 3, 32);
        res.forEach((r, i) => {
          again[i]!.c.observed = r.ok;
          again[i]!.c.detail = r.detail;
        });
      }),
    );
    const cases = [...plan.values()].flat().map((x) => x.c);
    const counters = readCounters(ir, { netns: gwNs }, rendering);
    return { netns: gwNs, endpoints: eps, cases, differences: cases.filter((c) => c.expected !== c.observed).length, counters };
  } finally {
    for (const s of servers) await s.stop();
    if (!opts.keepStandIns) lab.destroy();
  }
}

/** The matrix as text: one row per source, one column per destination; each cell lists the
 *  reachable probes ("tcp/443 udp/53 icmp"), "-" for none, and marks differences with "!". */
export function formatMatrix(r: ProbeReport): string {
  const names = r.endpoints.map((e) => e.name);
  const rows = names.filter((n) => r.cases.some((c) => c.from === n));
  const cell = (from: string, to: string): string => {
    const cs = r.cases.filter((c) => c.from === from && c.to === to);
    if (cs.length === 0) return '';
    const ok = cs.filter((c) => c.observed).map((c) => (c.proto === 'icmp' ? 'icmp' : `${c.proto}/${c.port}`));
    const diff = cs.some((c) => c.expected !== c.observed);
    return `${ok.length ? ok.join(' ') : '-'}${diff ? ' !' : ''}`;
  };
  const lines: string[] = [];
  for (const from of rows) {
    lines.push(`${from}:`);
    for (const to of names) {
      const c = cell(from, to);
      if (c) lines.push(`  -> ${to.padEnd(12)} ${c}`);
    }
  }
  const diffs = r.cases.filter((c) => c.expected !== c.observed);
  lines.push('');
  lines.push(`${r.cases.length} probes, ${r.cases.filter((c) => c.observed).length} reachable, ${diffs.length} differences from the reference evaluator`);
  for (const d of diffs) {
    lines.push(`  DIFF ${d.from} -> ${d.to} ${d.proto}${d.proto === 'icmp' ? '' : `/${d.port}`}: expected ${d.expected ? 'pass' : 'block'}, observed ${d.observed ? 'pass' : 'block'} (${d.why}${d.detail ? `; ${d.detail}` : ''})`);
  }
  return lines.join('\n');
}

export function formatCounters(counters: RuleCounter[]): string {
  const lines = ['rule  position                         packets      bytes  text'];
  for (const c of counters) {
    const rel = relative(process.cwd(), c.pos.file);
    const pos = `${rel.startsWith('..') ? basename(c.pos.file) : rel}:${c.pos.line}:${c.pos.col}`;
    lines.push(`${String(c.id).padStart(4)}  ${pos.padEnd(32)} ${String(c.packets).padStart(8)} ${String(c.bytes).padStart(10)}  ${c.ruleset ? `[${c.ruleset}] ` : ''}${c.text}`);
  }
  return lines.join('\n');
}

