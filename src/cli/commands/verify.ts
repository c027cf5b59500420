// CLI layer: `ztb-enforce verify` — compare the live tenant networks with the policy and report
// drift (missing, extra, misconfigured objects; a tap on another tenant's bridge; a VNI on two
// tenants' devices). Exit 1 on drift. Sandbox and underlay choices default to those of the last
// apply on this host.
import type { CliIo } from '../main.js';
import { verifyTenants } from '../../net/reconcile.js';
import { hasFlag, parseArgs } from '../usage.js';
import { NET_FLAGS, loadPolicy, netFlags, policyArg } from './apply.js';

export const usage = `usage: ztb-enforce verify POLICY [--netns NAME] [--deep] [--json] [--sandbox]
                          [--vxlan-local ADDR] [--vxlan-remote ADDR]... [--underlay-mtu N]
  Reports drift between POLICY and the live tenant networks; exit 1 when there is any.
  --deep   also check inside sandbox namespaces (addresses, routes) and foreign bridge ports
  --json   print the report as JSON`;

export async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, { ...NET_FLAGS, deep: {} });
  const policy = policyArg(args);
  const { tenants } = await loadPolicy(policy);
  const opts = netFlags(args);
  const r = await verifyTenants(tenants, { ...opts, deep: hasFlag(args, 'deep') });
  if (hasFlag(args, 'json')) {
    io.stdout.write(JSON.stringify(r, null, 2) + '\n');
  } else if (r.ok) {
    io.stdout.write(`ok: no drift (${r.objects} objects${r.netns ? ` in netns ${r.netns}` : ''})\n`);
  } else {
    for (const d of r.drift) io.stdout.write(`drift: ${d.drift}: ${d.text}\n`);
    io.stdout.write(`${r.drift.length} drift item${r.drift.length === 1 ? '' : 's'}; \`ztb-enforce apply ${policy}\` repairs what is ours\n`);
  }
  return r.ok ? 0 : 1;
}
