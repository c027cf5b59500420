// CLI layer: `ztb-enforce probe POLICY --netns NAME` — prove the policy with real traffic. NAME is
// the gateway namespace the tenant networks were applied in (`apply POLICY --netns NAME --sandbox`);
// probe adds its internet and cluster stand-ins, loads POLICY into nftables there, sends TCP, UDP
// and ICMP between every pair and prints expected (reference evaluator) vs observed. Exit 1 on any
// difference. Thin: the work is in src/backends/nft/probe.ts.
import type { CliIo } from '../main.js';
import { policyArg } from './apply.js';
import { loadPolicyFile } from '../../policy/load.js';
import { UsageError, flag, hasFlag, parseArgs } from '../usage.js';
import { nftProblem } from '../../backends/nft/apply.js';
import { NftUnavailableError } from '../../backends/nft/errors.js';
import { formatCounters, formatMatrix, runProbe } from '../../backends/nft/probe.js';

export const usage = `usage: ztb-enforce probe POLICY --netns NAME [--json] [--timeout SECONDS]
  Sends real TCP, UDP and ICMP from every sandbox workload of POLICY to every other workload, to
  its tenant gateway (the gateway's own services), to a cluster-network host and to an "internet"
  host (stand-in namespaces probe creates behind the gateway and removes afterwards), after
  loading POLICY into nftables in NAME. Prints the reachability matrix, the differences from the
  reference evaluator and the per-rule counters; exits 1 on any difference.
  --netns NAME        gateway namespace holding the tenant networks (apply --sandbox --netns NAME)
  --json              print the full report (every probe, counters) as JSON
  --timeout SECONDS   how long a probe waits for its answer (default 1)`;

export async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, { netns: { value: true }, json: {}, timeout: { value: true } });
  const policy = policyArg(args);
  const netns = flag(args, 'netns');
  if (netns === undefined) throw new UsageError('probe needs --netns NAME (the namespace the tenant networks were applied in with --sandbox)');
  if (!/^[A-Za-z0-9_.-]{1,200}$/.test(netns) || netns === '.' || netns === '..') throw new UsageError(`--netns: '${netns}' is not a namespace name`);
  const t = flag(args, 'timeout');
  const timeout = t === undefined ? 1 : Number(t);
  if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 30) throw new UsageError(`--timeout: '${t}' is not a number of seconds in (0, 30]`);
  const problem = nftProblem({ netns });
  if (problem) throw new NftUnavailableError(`probe: ${problem}`);
  const ir = loadPolicyFile(policy);
  const report = await runProbe(ir, { netns, timeout });
  if (hasFlag(args, 'json')) io.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else {
    io.stdout.write(formatMatrix(report) + '\n\n');
    io.stdout.write(formatCounters(report.counters) + '\n');
  }
  return report.differences === 0 ? 0 : 1;
}
