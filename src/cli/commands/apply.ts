// CLI layer: `ztb-enforce apply` — load the policy, reconcile the tenant networks (src/net), and,
// with `--backend NAME`, hand the compiled IR to that kernel backend afterwards. Thin: parsing,
// policy loading and printing only. Other commands (verify, down) and the backends reuse
// `loadPolicy`, `netFlags` and `runApply` from here.
import type { CliIo } from '../main.js';
import type { Ir, Tenant } from '../../policy/ir.js';
import { loadPolicyFile } from '../../policy/load.js';
import { ZtbError } from '../../errors.js';
import { applyTenants, type ApplyReport, type NetOptions } from '../../net/reconcile.js';
import type { UnderlayOptions } from '../../net/topology.js';
import { UsageError, flag, hasFlag, parseArgs, type FlagSpec, type ParsedArgs } from '../usage.js';

export const usage = `usage: ztb-enforce apply POLICY [--netns NAME] [--sandbox] [--dry-run] [--json]
                         [--vxlan-local ADDR] [--vxlan-remote ADDR]... [--underlay-mtu N]
                         [--underlay-dev IFNAME] [--vlan-parent IFNAME] [--backend nft|pf]
  Builds the tenant networks of POLICY: per tenant a bridge ztbr<net_id> with its gateways, an
  optional VXLAN ztvx<net_id>, and a tap per workload (with --sandbox: a network namespace per
  workload joined by a veth). Idempotent: a second run changes nothing and says so.
  --netns NAME          work inside network namespace NAME instead of this one
  --sandbox             give each workload its own namespace (demos, probes, tests)
  --dry-run             print the plan, change nothing
  --json                print the report as JSON
  --vxlan-local ADDR    this site's VTEP address (overrides the policy's vxlan.local)
  --vxlan-remote ADDR   a peer VTEP (repeatable; overrides the policy's vxlan.remotes)
  --underlay-mtu N      MTU of the underlay (default 1500); overlay MTU = N - 50 (IPv4) / 70 (IPv6)
  --underlay-dev IFNAME underlay link of the VXLAN devices (required for multicast groups)
  --vlan-parent IFNAME  parent link of VLAN sub-interfaces
  --backend NAME        also load the ruleset into the kernel backend NAME after the networks`;

/** Flags shared by apply, verify and down. */
export const NET_FLAGS: Record<string, FlagSpec> = {
  netns: { value: true },
  sandbox: {},
  json: {},
  'vxlan-local': { value: true },
  'vxlan-remote': { value: true, repeat: true },
  'underlay-mtu': { value: true },
  'vlan-parent': { value: true },
  'underlay-dev': { value: true },
};

export interface LoadedPolicy {
  tenants: Tenant[];
  ir: Ir;
}

/** Loads and compiles a policy (pf.conf or TOML) through the policy layer. */
export async function loadPolicy(path: string): Promise<LoadedPolicy> {
  const ir = loadPolicyFile(path);
  return { tenants: ir.tenants, ir };
}

export function netFlags(args: ParsedArgs): NetOptions {
  const opts: NetOptions = {};
  const netns = flag(args, 'netns');
  if (netns !== undefined) {
    if (!/^[A-Za-z0-9_.-]{1,200}$/.test(netns) || netns === '.' || netns === '..') throw new UsageError(`--netns: '${netns}' is not a namespace name`);
    opts.netns = netns;
  }
  if (hasFlag(args, 'sandbox')) opts.sandbox = true;
  const underlay: UnderlayOptions = {};
  const local = flag(args, 'vxlan-local');
  if (local !== undefined) underlay.local = local;
  const remotes = args.flags.get('vxlan-remote');
  if (remotes) underlay.remotes = remotes;
  const mtu = flag(args, 'underlay-mtu');
  if (mtu !== undefined) {
    if (!/^\d{1,5}$/.test(mtu)) throw new UsageError(`--underlay-mtu: '${mtu}' is not a number`);
    underlay.mtu = Number(mtu);
  }
  const dev = flag(args, 'underlay-dev');
  if (dev !== undefined) underlay.device = dev;
  const parent = flag(args, 'vlan-parent');
  if (parent !== undefined) underlay.vlanParent = parent;
  if (Object.keys(underlay).length) opts.underlay = underlay;
  return opts;
}

export function policyArg(args: ParsedArgs): string {
  if (args.positionals.length !== 1) throw new UsageError(args.positionals.length ? 'expected exactly one POLICY' : 'missing POLICY');
  return args.positionals[0]!;
}

export interface RunApplyOptions extends NetOptions {
  policy: string;
  dryRun: boolean;
  json: boolean;
  backend?: string;
}

/** A kernel backend's entry point, looked up as src/backends/<name>/apply.ts `applyBackend`. */
export interface BackendApplyHook {
  applyBackend(ir: Ir, opts: { netns?: string; dryRun: boolean; json: boolean; net: ApplyReport }, io: CliIo): Promise<number>;
}

const BACKENDS = ['nft', 'pf'];

function printReport(r: ApplyReport, io: CliIo): void {
  const where = r.netns ? `netns ${r.netns}` : 'this namespace';
  if (r.noop) {
    io.stdout.write(`no changes: the tenant networks in ${where} match the policy (${r.objects} objects, ${r.messages} netlink messages, ${r.durationMs.toFixed(0)} ms)\n`);
  } else {
    io.stdout.write(`${r.dryRun ? 'plan' : 'changes'} for ${where}:\n`);
    for (const c of r.changes) io.stdout.write(`  ${c.text}\n`);
    io.stdout.write(
      r.dryRun
        ? `dry run: ${r.changes.length} changes planned, none made\n`
        : `applied ${r.applied} changes (${r.objects} objects, ${r.messages} netlink messages, ${r.durationMs.toFixed(0)} ms)\n`,
    );
  }
  for (const f of r.findings) io.stderr.write(`warning: ${f.text}\n`);
}

export async function runApply(opts: RunApplyOptions, io: CliIo): Promise<number> {
  if (opts.backend !== undefined && !BACKENDS.includes(opts.backend)) throw new UsageError(`--backend: unknown backend '${opts.backend}' (one of ${BACKENDS.join(', ')})`);
  const { tenants, ir } = await loadPolicy(opts.policy);
  const report = await applyTenants(tenants, { netns: opts.netns, sandbox: opts.sandbox, underlay: opts.underlay, dryRun: opts.dryRun });
  if (opts.json && opts.backend === undefined) io.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else if (!opts.json) printReport(report, io);
  if (opts.backend === undefined) return 0;
  // Hook for the kernel backends: they own src/backends/<name>/apply.ts and export applyBackend().
  const hookPath = `../../backends/${opts.backend}/apply.js`;
  let hook: Partial<BackendApplyHook>;
  try {
    hook = (await import(hookPath)) as Partial<BackendApplyHook>;
  } catch (e) {
    throw new ZtbError('ERR_ZTB_NO_BACKEND', `backend '${opts.backend}' is not available: ${(e as Error).message}`);
  }
  if (typeof hook.applyBackend !== 'function') throw new ZtbError('ERR_ZTB_NO_BACKEND', `backend '${opts.backend}' has no applyBackend()`);
  return hook.applyBackend(ir, { ...(opts.netns ? { netns: opts.netns } : {}), dryRun: opts.dryRun, json: opts.json, net: report }, io);
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, { ...NET_FLAGS, 'dry-run': {}, backend: { value: true } });
  const backend = flag(args, 'backend');
  return runApply(
    { policy: policyArg(args), ...netFlags(args), dryRun: hasFlag(args, 'dry-run'), json: hasFlag(args, 'json'), ...(backend !== undefined ? { backend } : {}) },
    io,
  );
}
