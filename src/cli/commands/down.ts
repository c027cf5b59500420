// CLI layer: `ztb-enforce down` — remove every network object ztb-enforce owns on this host (or in
// --netns): links marked `ztb:<tenant>:<role>`, and the sandbox namespaces. Foreign links stay.
import type { CliIo } from '../main.js';
import { teardownTenants } from '../../net/reconcile.js';
import { flag, hasFlag, parseArgs } from '../usage.js';
import { loadPolicy, policyArg } from './apply.js';
import { UsageError } from '../usage.js';

export const usage = `usage: ztb-enforce down POLICY [--netns NAME] [--json]
  Removes exactly what ztb-enforce owns in this namespace (or NAME): tenant bridges, VXLAN
  devices, taps, sandbox veths and namespaces. Links without a ztb: alias are never touched.`;

export async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, { netns: { value: true }, json: {} });
  const { tenants } = await loadPolicy(policyArg(args));
  const netns = flag(args, 'netns');
  if (netns !== undefined && (!/^[A-Za-z0-9_.-]{1,200}$/.test(netns) || netns === '.' || netns === '..')) throw new UsageError(`--netns: '${netns}' is not a namespace name`);
  const r = await teardownTenants(tenants, netns !== undefined ? { netns } : {});
  if (hasFlag(args, 'json')) io.stdout.write(JSON.stringify(r, null, 2) + '\n');
  else {
    for (const n of r.removed) io.stdout.write(`  removed ${n}\n`);
    io.stdout.write(r.removed.length ? `removed ${r.removed.length} objects (${r.durationMs.toFixed(0)} ms)\n` : 'nothing to remove\n');
  }
  return 0;
}
