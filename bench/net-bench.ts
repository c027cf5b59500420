// Bench (net layer): apply, no-op re-apply and teardown of N tenants x 4 workloads (taps, one
// VXLAN per tenant with one remote) inside a scratch namespace, for N = 10, 100, 500 by default.
// Reports medians over repetitions: seconds, netlink messages, and both per desired object. It
// asserts nothing. Run with `node bench/net-bench.mjs [--sizes 10,100,500] [--reps 3]
// [--no-vxlan] [--json FILE]` (compiles this file and src/net with tsc, then runs it as root).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import type { Tenant } from '../src/policy/ir.js';
import { applyTenants, teardownTenants } from '../src/net/reconcile.js';

interface Sample {
  applyS: number;
  applyMsgs: number;
  noopS: number;
  noopMsgs: number;
  teardownS: number;
  teardownMsgs: number;
  objects: number;
}

function tenants(n: number, workloads: number, vxlan: boolean): Tenant[] {
  const out: Tenant[] = [];
  for (let i = 1; i <= n; i++) {
    const b = `10.${Math.floor(i / 256)}.${i % 256}`;
    out.push({
      id: `t${i}`,
      netId: i,
      subnets: [{ af: 'inet', addr: `${b}.0`, len: 24 }],
      gateways: [`${b}.1/24`],
      vxlan: vxlan ? { vni: 10_000 + i, remotes: ['198.18.0.2'], local: '198.18.0.1', dstport: 4789, learning: false } : null,
      vlan: null,
      workloads: Array.from({ length: workloads }, (_, w) => ({ name: `w${w}`, ips: [`${b}.${10 + w}`], tap: `tn${i}w${w}` })),
      interfaces: [],
      anchor: '',
      pos: { file: 'bench', line: i, col: 1 },
    });
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function once(n: number, vxlan: boolean): Promise<Sample> {
  const ns = `ztnbench${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const ts = tenants(n, 4, vxlan);
    const a = await applyTenants(ts, { netns: ns });
    const b = await applyTenants(ts, { netns: ns });
    if (!b.noop) throw new Error(`re-apply was not a no-op: ${b.changes.length} changes`);
    const d = await teardownTenants(ts, { netns: ns });
    return {
      applyS: a.durationMs / 1000,
      applyMsgs: a.messages,
      noopS: b.durationMs / 1000,
      noopMsgs: b.messages,
      teardownS: d.durationMs / 1000,
      teardownMsgs: d.messages,
      objects: a.objects,
    };
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const sizes = (arg('sizes') ?? '10,100,500').split(',').map(Number);
  const reps = Number(arg('reps') ?? '3');
  const vxlan = !argv.includes('--no-vxlan');
  const jsonOut = arg('json');
  console.log(`net bench: ${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')} (shared machine), reps ${reps}, ${vxlan ? 'bridge + vxlan + 4 taps' : 'bridge + 4 taps'} per tenant`);
  console.log('tenants objects | apply s  msg/obj | no-op s  msgs | down s  msg/obj | apply ms/obj');
  const results: Record<string, unknown>[] = [];
  for (const n of sizes) {
    const samples: Sample[] = [];
    for (let r = 0; r < reps; r++) samples.push(await once(n, vxlan));
    const m = (k: keyof Sample): number => median(samples.map((s) => s[k]));
    const obj = m('objects');
    const row = {
      tenants: n,
      objects: obj,
      applyS: m('applyS'),
      applyMsgsPerObject: m('applyMsgs') / obj,
      noopS: m('noopS'),
      noopMsgs: m('noopMsgs'),
      teardownS: m('teardownS'),
      teardownMsgsPerObject: m('teardownMsgs') / obj,
      samples,
    };
    results.push(row);
    console.log(
      `${String(n).padStart(7)} ${String(obj).padStart(7)} | ${row.applyS.toFixed(2).padStart(7)} ${row.applyMsgsPerObject.toFixed(2).padStart(8)} | ${row.noopS.toFixed(3).padStart(7)} ${String(row.noopMsgs).padStart(5)} | ${row.teardownS.toFixed(2).padStart(6)} ${row.teardownMsgsPerObject.toFixed(2).padStart(8)} | ${((row.applyS * 1000) / obj).toFixed(2).padStart(8)}`,
    );
  }
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ when: new Date().toISOString(), vxlan, reps, results }, null, 2));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
