// CLI layer: `ztb-enforce demo` (= `npm start`) — the embedded two-tenant example end to end in a
// sandbox: a fresh "gateway" namespace, the tenant networks with one namespace per workload (the
// orchestrator), the policy in nftables, the probe's matrix (expected vs observed) and the per-rule
// counters, then everything removed again (--keep leaves it up and says how to remove it). It
// checks its prerequisites first and says exactly what is missing.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../main.js';
import { ZtbError } from '../../errors.js';
import { hasFlag, parseArgs } from '../usage.js';
import { loadPolicyFile } from '../../policy/load.js';
import { applyTenants, teardownTenants } from '../../net/reconcile.js';
import { nftProblem } from '../../backends/nft/apply.js';
import { NftUnavailableError } from '../../backends/nft/errors.js';
import { sh, uniqueNs } from '../../backends/nft/lab.js';
import { formatCounters, formatMatrix, runProbe } from '../../backends/nft/probe.js';

export const usage = `usage: ztb-enforce demo [--keep] [--json]
  Runs the embedded examples/two-tenant.toml in a sandbox: creates a gateway network namespace,
  builds the tenant networks inside it (a namespace per workload), loads the policy into
  nftables, probes every pair with real TCP/UDP/ICMP, prints the matrix (expected vs observed)
  and the per-rule counters, and removes everything. Needs root, nftables (nft) and iproute2.
  --keep   leave the namespaces up and print how to remove them
  --json   print the report as JSON`;

/** The example shipped with the package (examples/ next to src/ or dist/). */
export function embeddedExample(name = 'two-tenant.toml'): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'examples', name);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new ZtbError('ERR_ZTB_NO_EXAMPLE', `the embedded example examples/${name} is missing from the package`);
}

function prerequisites(): string | null {
  const problem = nftProblem();
  if (problem) return problem;
  const ip = sh(['ip', 'netns', 'list'], { allowFail: true });
  if (ip === '' && !existsSync('/run/netns') && !existsSync('/proc/self/ns/net')) return 'network namespaces are not supported here (ip netns)';
  const py = sh(['python3', '-c', 'print(1)'], { allowFail: true });
  if (py.trim() !== '1') return 'python3 is not installed (the probe sends its packets with it)';
  return null;
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, { keep: {}, json: {} });
  if (args.positionals.length) throw new ZtbError('ERR_ZTB_USAGE', 'demo takes no POLICY: it runs the embedded examples/two-tenant.toml');
  const problem = prerequisites();
  if (problem) throw new NftUnavailableError(`demo cannot run: ${problem}`);
  const keep = hasFlag(args, 'keep');
  const json = hasFlag(args, 'json');
  const path = embeddedExample();
  const ir = loadPolicyFile(path);
  const gw = uniqueNs('ztb-demo-');
  const say = (s: string) => {
    if (!json) io.stdout.write(s + '\n');
  };
  sh(['ip', 'netns', 'add', gw]);
  let up = true;
  try {
    say(`policy: ${path} (${ir.rules.length} rules, tenants: ${ir.tenants.map((t) => `${t.id} [${t.workloads.map((w) => w.name).join(', ')}]`).join(', ')})`);
    say(`gateway namespace: ${gw}`);
    const net = await applyTenants(ir.tenants, { netns: gw, sandbox: true });
    say(`tenant networks: ${net.applied} changes (bridges, veths, one namespace per workload)`);
    const report = await runProbe(ir, { netns: gw, keepStandIns: keep });
    if (json) io.stdout.write(JSON.stringify({ policy: path, kept: keep, ...report }, null, 2) + '\n');
    else {
      say(`nftables: table inet ztb loaded in ${gw}\n`);
      say(formatMatrix(report) + '\n');
      say(formatCounters(report.counters.filter((c) => c.packets > 0)) + '\n(rules with zero packets omitted)');
    }
    if (keep) {
      up = false;
      say(`\n--keep: left up. Inspect with: ip netns exec ${gw} nft list table inet ztb`);
      say(`remove with: ztb-enforce down ${path} --netns ${gw} && ip netns del ${gw}`);
      say('(and the probe stand-ins: ip netns list | grep ^ztpr | xargs -n1 ip netns del)');
    }
    return report.differences === 0 ? 0 : 1;
  } finally {
    if (up) {
      await teardownTenants(null, { netns: gw }).catch(() => undefined);
      sh(['ip', 'netns', 'del', gw], { allowFail: true });
    }
  }
}
