// Net layer: helpers around sandbox workloads, for demos, `probe` and tests — find a workload's
// namespace, run a synchronous function inside a namespace (the netlink socket or tap it opens
// stays there), and execute a command in a workload's namespace. Commands are started with
// `ip netns exec` (argv, no shell): that is process placement, not link work — every link change
// of the product goes through rtnetlink.
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { Tenant } from '../policy/ir.js';
import { ZtbError } from '../errors.js';
import { inNetns } from './tap.js';
import { buildTopology, type TopologyOptions } from './topology.js';

export { inNetns as runInNetns };

/** The namespace of workload `workload` of tenant `tenant` when applied with `sandbox: true`. */
export function workloadNetns(tenants: Tenant[], tenant: string, workload: string, opts: Omit<TopologyOptions, 'sandbox'> = {}): string {
  const topo = buildTopology(tenants, { ...opts, sandbox: true });
  const t = topo.tenants.find((x) => x.id === tenant);
  const p = t?.ports.find((x) => x.workload === workload);
  if (!p?.sandbox) throw new ZtbError('ERR_ZTB_NOT_FOUND', `no workload '${workload}' in tenant '${tenant}'`);
  return p.sandbox.netns;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` inside namespace `netns`; resolves with its exit code and output (never
 *  rejects for a non-zero exit: callers assert on the code, e.g. an expected failed ping). */
export function execInNetns(netns: string, cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', ['netns', 'exec', netns, cmd, ...args], { timeout: opts.timeoutMs ?? 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') {
        if ((err as { killed?: boolean }).killed) return resolve({ code: 124, stdout, stderr });
        return reject(err);
      }
      resolve({ code: err ? Number((err as { code: number }).code) : 0, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Starts a long-running command inside `netns` (a server for a probe); the caller kills it. */
export function spawnInNetns(netns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', netns, cmd, ...args], { stdio: 'pipe', ...opts });
}
