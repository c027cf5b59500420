// Backend layer (nftables): puts a rendered ruleset into the kernel and reads it back. Every change
// is ONE `nft -j -f -` transaction (the renderer's add/delete/add of `table inet ztb` plus every
// definition), so the kernel swaps the whole table or, on any error, keeps the previous one intact.
// nft runs by argv (never a shell), inside a network namespace via `ip netns exec` when one is given.
// Counters are read back with `nft -j list table` and mapped to IR rule ids and source positions.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Ir, SourcePos } from '../../policy/ir.js';
import { NftCommandError, NftUnavailableError } from './errors.js';
import { DEFAULT_TABLE, renderNft, type NftRenderOptions, type NftRendered } from './render.js';

export interface NftTarget {
  /** Network namespace (a name under /run/netns) to act in; the current one when absent. */
  netns?: string;
  /** nftables table name (family inet); `ztb` by default. */
  table?: string;
}

/** Caps what we accept back from nft, so a runaway listing cannot exhaust memory. */
const MAX_OUTPUT = 256 * 1024 * 1024;

function argvFor(args: string[], target: NftTarget): string[] {
  return target.netns ? ['ip', 'netns', 'exec', target.netns, 'nft', ...args] : ['nft', ...args];
}

/**
 * Runs nft with the given arguments; `input` is the ruleset for `-f -`. Node's stdio pipes are
 * socketpairs, which nft cannot open as /dev/stdin, so the input goes through a private temp file.
 */
export function runNft(args: string[], target: NftTarget = {}, input?: string): string {
  let dir: string | null = null;
  let finalArgs = args;
  if (input !== undefined) {
    dir = mkdtempSync(join(tmpdir(), 'ztb-nft-'));
    const file = join(dir, 'ruleset.json');
    writeFileSync(file, input, { mode: 0o600 });
    finalArgs = args.map((a) => (a === '-' ? file : a));
  }
  const argv = argvFor(finalArgs, target);
  let res;
  try {
    res = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: MAX_OUTPUT });
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  if (res.error) {
    const code = (res.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NftUnavailableError(`${argv[0]} is not installed (needed to run nftables)`);
    throw new NftCommandError(argv, null, String(res.error.message));
  }
  if (res.status !== 0) throw new NftCommandError(argv, res.status, res.stderr || res.stdout);
  return res.stdout;
}

/** Why the nftables backend cannot run here, or null when it can. */
export function nftProblem(target: NftTarget = {}): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not running as root (nftables and network namespaces need CAP_NET_ADMIN)';
  const which = spawnSync('nft', ['--version'], { encoding: 'utf8' });
  if (which.error) return 'the nft binary (nftables) is not installed';
  if (target.netns) {
    const ip = spawnSync('ip', ['netns', 'exec', target.netns, 'true'], { encoding: 'utf8' });
    if (ip.error) return 'iproute2 (ip) is not installed';
    if (ip.status !== 0) return `cannot enter network namespace ${target.netns}: ${ip.stderr.trim()}`;
  }
  return null;
}

function rendered(policy: Ir | NftRendered, target: NftTarget, opts: NftRenderOptions): NftRendered {
  if ('json' in policy) return policy;
  return renderNft(policy, { ...opts, table: target.table ?? opts.table ?? DEFAULT_TABLE });
}

/**
 * Loads the policy atomically (replacing table inet <table>); the old table survives a failure.
 * Also turns on fwmark_reflect in the namespace so the resets/unreachables of `block return` carry
 * the rejected packet's mark and are let out like pf's own generated packets (see render.ts).
 */
export function applyNft(policy: Ir | NftRendered, target: NftTarget = {}, opts: NftRenderOptions = {}): NftRendered {
  const r = rendered(policy, target, opts);
  setSysctls(target, ['net.ipv4.fwmark_reflect=1', 'net.ipv6.fwmark_reflect=1']);
  // Workloads of one tenant share a bridge: without br_netfilter's call-iptables their traffic
  // never reaches the inet hooks, and inter-VM rules would be silently skipped.
  if (r.bridged) setSysctls(target, ['net.bridge.bridge-nf-call-iptables=1', 'net.bridge.bridge-nf-call-ip6tables=1']);
  runNft(['-j', '-f', '-'], target, JSON.stringify(r.json));
  return r;
}

function setSysctls(target: NftTarget, settings: string[]): void {
  const sysctl = ['sysctl', '-q', '-w', ...settings];
  const argv = target.netns ? ['ip', 'netns', 'exec', target.netns, ...sysctl] : sysctl;
  const res = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (res.error || res.status !== 0) throw new NftCommandError(argv, res.status ?? null, res.stderr || String(res.error ?? ''));
}

/** Dry run: the kernel validates the whole transaction (`nft -c`) and nothing changes. */
export function checkNft(policy: Ir | NftRendered, target: NftTarget = {}, opts: NftRenderOptions = {}): NftRendered {
  const r = rendered(policy, target, opts);
  runNft(['-c', '-j', '-f', '-'], target, JSON.stringify(r.json));
  return r;
}

/** Removes our table (no error when it is absent). */
export function removeNft(target: NftTarget = {}): void {
  const table = target.table ?? DEFAULT_TABLE;
  const tbl = { family: 'inet', name: table };
  runNft(['-j', '-f', '-'], target, JSON.stringify({ nftables: [{ add: { table: tbl } }, { delete: { table: tbl } }] }));
}

export interface NftListing {
  nftables: Record<string, Record<string, unknown>>[];
}

export function listNft(target: NftTarget = {}): NftListing {
  const out = runNft(['-j', 'list', 'table', 'inet', target.table ?? DEFAULT_TABLE], target);
  return JSON.parse(out) as NftListing;
}

export interface RuleCounter {
  id: number;
  pos: SourcePos;
  ruleset: string;
  text: string;
  packets: number;
  bytes: number;
}

/** Named counters of the loaded table, by name. */
export function readNamedCounters(target: NftTarget = {}): Map<string, { packets: number; bytes: number }> {
  const out = new Map<string, { packets: number; bytes: number }>();
  for (const obj of listNft(target).nftables) {
    const c = obj.counter as { name?: string; packets?: number; bytes?: number } | undefined;
    if (c?.name !== undefined) out.set(c.name, { packets: c.packets ?? 0, bytes: c.bytes ?? 0 });
  }
  return out;
}

/**
 * Per-rule counters mapped back to the IR: packets/bytes of the rule's decisions plus the traffic
 * of the states it created (pf's semantics); match and anchor rules count the packets that matched.
 */
export function readCounters(ir: Ir, target: NftTarget = {}, rendering?: NftRendered): RuleCounter[] {
  const named = readNamedCounters(target);
  const byName = rendering?.counters ?? Object.fromEntries(ir.rules.map((r) => [`r${r.id}`, r.id]));
  const out: RuleCounter[] = [];
  for (const [name, id] of Object.entries(byName)) {
    const rule = ir.rules[id];
    if (!rule) continue;
    const c = named.get(name) ?? { packets: 0, bytes: 0 };
    out.push({ id, pos: rule.pos, ruleset: rule.ruleset, text: rule.text, packets: c.packets, bytes: c.bytes });
  }
  return out.sort((a, b) => a.id - b.id);
}

/** Counters summed over each written statement (pf's policy counters sum over the expansion). */
export function countersByOrigin(ir: Ir, counters: RuleCounter[]): { origin: number; pos: SourcePos; text: string; packets: number; bytes: number }[] {
  const sums = ir.origins.map((o, i) => ({ origin: i, pos: o.pos, text: o.text, packets: 0, bytes: 0 }));
  for (const c of counters) {
    const s = sums[ir.rules[c.id]!.origin];
    if (!s) continue;
    s.packets += c.packets;
    s.bytes += c.bytes;
  }
  return sums;
}

export interface HostAddressing {
  ifaddrs: Record<string, string[]>;
  groups: Record<string, string[]>;
}

/**
 * Reads the interface addresses of the namespace (for (if), (if:network), (if:0), `self`) and the
 * `egress` group (pf: the interfaces holding a default route), as the renderer needs them.
 */
export function readHostAddressing(target: NftTarget = {}): HostAddressing {
  const run = (args: string[]): unknown => {
    const argv = target.netns ? ['ip', 'netns', 'exec', target.netns, 'ip', ...args] : ['ip', ...args];
    const res = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (res.error || res.status !== 0) throw new NftCommandError(argv, res.status ?? null, res.stderr ?? String(res.error));
    return res.stdout.trim() === '' ? [] : JSON.parse(res.stdout);
  };
  const ifaddrs: Record<string, string[]> = {};
  for (const link of run(['-j', 'addr', 'show']) as { ifname: string; addr_info?: { local: string; prefixlen: number; scope?: string; secondary?: boolean }[] }[]) {
    // Primary addresses first: pf's (if:0) is the first one listed.
    const infos = [...(link.addr_info ?? [])].filter((a) => a.scope !== 'link').sort((a, b) => Number(a.secondary ?? false) - Number(b.secondary ?? false));
    ifaddrs[link.ifname] = infos.map((a) => `${a.local}/${a.prefixlen}`);
  }
  const egress = new Set<string>();
  for (const fam of ['-4', '-6']) {
    for (const r of run([fam, '-j', 'route', 'show', 'default']) as { dev?: string }[]) if (r.dev) egress.add(r.dev);
  }
  return { ifaddrs, groups: { egress: [...egress].sort() } };
}

/** Structural twin of the CLI's io (backends do not import the CLI layer). */
export interface BackendIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** `ztb-enforce apply POLICY --backend nft`: render with the namespace's addressing, load it. */
export async function applyBackend(ir: Ir, opts: { netns?: string; dryRun: boolean; json: boolean }, io: BackendIo): Promise<number> {
  const target: NftTarget = opts.netns ? { netns: opts.netns } : {};
  const problem = nftProblem(target);
  if (problem) throw new NftUnavailableError(`nftables backend: ${problem}`);
  const addressing = readHostAddressing(target);
  const groups = { ...addressing.groups, ...ir.groups };
  const r = renderNft(ir, { ifaddrs: addressing.ifaddrs, groups, table: DEFAULT_TABLE });
  if (opts.dryRun) checkNft(r, target);
  else applyNft(r, target);
  const rules = r.json.nftables.filter((c) => (c.add as Record<string, unknown> | undefined)?.rule).length;
  if (opts.json) io.stdout.write(JSON.stringify({ backend: 'nft', table: `inet ${r.table}`, dryRun: opts.dryRun, irRules: ir.rules.length, nftRules: rules, notes: r.notes }) + '\n');
  else {
    io.stdout.write(`nft: ${opts.dryRun ? 'checked (nft -c)' : 'loaded'} table inet ${r.table}: ${ir.rules.length} policy rules -> ${rules} nftables rules${opts.netns ? ` in netns ${opts.netns}` : ''}\n`);
    for (const n of r.notes) io.stderr.write(`note: rule ${n.ruleId}: ${n.note}\n`);
  }
  return 0;
}
