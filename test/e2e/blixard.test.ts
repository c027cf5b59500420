// End to end: Blixard's VM network isolation (seed 003) enforced by nftables and proven with real
// packets. Tenant networks come from the orchestrator (a namespace per VM), the isolation settings
// from the TOML loader, the ruleset from the nft backend; the probe sends TCP/UDP/ICMP between
// every pair. Besides "zero differences from the reference evaluator", each property is asserted
// directly on what was observed.
import { afterEach, describe, expect, test } from 'vitest';
import { skipPrivileged } from '../helpers/privileged.js';
import { compilePolicyText } from '../../src/policy/load.js';
import { applyTenants, teardownTenants } from '../../src/net/reconcile.js';
import { runProbe, type ProbeReport } from '../../src/backends/nft/probe.js';
import { sh, uniqueNs } from '../../src/backends/nft/lab.js';

const skip = skipPrivileged('nft');
const namespaces: string[] = [];
afterEach(async () => {
  for (const ns of namespaces.splice(0)) {
    await teardownTenants(null, { netns: ns }).catch(() => undefined);
    sh(['ip', 'netns', 'del', ns], { allowFail: true });
  }
});

function policy(o: { interVm: boolean; internet: boolean }): string {
  return `
[vm.network_isolation]
enabled = true
backend = "nftables"
cluster_networks = ["127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12"]
vm_network = "10.0.0.0/16"
inter_vm_isolation = ${o.interVm}
tenant_isolation = true
allow_internet = ${o.internet}

[[vm.network_isolation.allowed_ports]]
protocol = "udp"
port = 53
direction = "outbound"

[[vm.network_isolation.allowed_ports]]
protocol = "tcp"
port = 53
direction = "outbound"

[[vm.network_isolation.allowed_ports]]
protocol = "tcp"
port = 8443
direction = "inbound"

[[tenants]]
id = "tenant-a"
net_id = 101
subnets = ["10.0.1.0/24"]
gateway = "10.0.1.1"

[[tenants.workloads]]
name = "vm1"
ip = "10.0.1.10"

[[tenants.workloads]]
name = "vm2"
ip = "10.0.1.11"

[[tenants]]
id = "tenant-b"
net_id = 102
subnets = ["10.0.2.0/24"]
gateway = "10.0.2.1"

[[tenants.workloads]]
name = "vm3"
ip = "10.0.2.10"
`;
}

async function probe(o: { interVm: boolean; internet: boolean }): Promise<ProbeReport> {
  const ir = compilePolicyText(policy(o), 'blixard.toml');
  const gw = uniqueNs('ztkb');
  sh(['ip', 'netns', 'add', gw]);
  namespaces.push(gw);
  await applyTenants(ir.tenants, { netns: gw, sandbox: true });
  return runProbe(ir, { netns: gw, timeout: 1 });
}

/** The probes that got through from `from` to `to`, as "tcp/53", "udp/53", "icmp". */
function reached(r: ProbeReport, from: string, to: string): string[] {
  return r.cases.filter((c) => c.from === from && c.to === to && c.observed).map((c) => (c.proto === 'icmp' ? 'icmp' : `${c.proto}/${c.port}`)).sort();
}

function all(r: ProbeReport, from: string, to: string): string[] {
  return r.cases.filter((c) => c.from === from && c.to === to).map((c) => (c.proto === 'icmp' ? 'icmp' : `${c.proto}/${c.port}`)).sort();
}

describe('Blixard isolation with real packets', () => {
  test('tenant isolation, cluster and host protection, internet on, inter-VM allowed', async () => {
    if (skip) return;
    const r = await probe({ interVm: false, internet: true });
    expect(r.differences).toBe(0);
    // Tenants cannot reach each other, in either direction.
    for (const [a, b] of [['vm1', 'vm3'], ['vm2', 'vm3'], ['vm3', 'vm1'], ['vm3', 'vm2']]) expect(reached(r, a!, b!)).toEqual([]);
    // VMs cannot reach the cluster networks.
    for (const vm of ['vm1', 'vm2', 'vm3']) expect(reached(r, vm, 'cluster')).toEqual([]);
    // Nor the host's own services, beyond the allowed outbound DNS.
    for (const [vm, gw] of [['vm1', 'gw:tenant-a'], ['vm3', 'gw:tenant-b']]) {
      expect(reached(r, vm!, gw!).every((p) => p === 'tcp/53' || p === 'udp/53')).toBe(true);
      expect(reached(r, vm!, gw!)).not.toContain('icmp');
      expect(reached(r, vm!, gw!)).not.toContain('tcp/8000');
    }
    // Same tenant: VMs talk freely (inter_vm_isolation = false).
    expect(reached(r, 'vm1', 'vm2')).toEqual(all(r, 'vm1', 'vm2'));
    // Internet on: everything out; replies come back by state (TCP handshakes completed).
    expect(reached(r, 'vm1', 'internet')).toEqual(all(r, 'vm1', 'internet'));
    // Inbound only on the inbound allowed port; default deny for the rest.
    expect(reached(r, 'internet', 'vm1')).toEqual(['tcp/8443']);
    expect(reached(r, 'cluster', 'vm1')).toEqual(['tcp/8443']);
  });

  test('inter-VM isolation on, internet off: only the allowed ports, each in its direction', async () => {
    if (skip) return;
    const r = await probe({ interVm: true, internet: false });
    expect(r.differences).toBe(0);
    expect(reached(r, 'vm1', 'vm2')).toEqual([]);
    expect(reached(r, 'vm2', 'vm1')).toEqual([]);
    // Outbound allowed ports only (DNS), and not the inbound-only 8443.
    expect(reached(r, 'vm1', 'internet')).toEqual(['tcp/53', 'udp/53']);
    expect(reached(r, 'internet', 'vm1')).toEqual(['tcp/8443']);
    expect(reached(r, 'internet', 'vm3')).toEqual(['tcp/8443']);
    for (const vm of ['vm1', 'vm2', 'vm3']) expect(reached(r, vm, 'cluster')).toEqual([]);
  });
});
