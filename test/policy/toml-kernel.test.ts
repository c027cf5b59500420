// The embedded two-tenant example enforced by the kernel (nftables backend) with real
// connections: a gateway namespace whose interfaces carry the example's names (ztbr10, ztbr20,
// em0, an uplink holding the default route) joined to namespaces standing in for the finance and
// public VMs, the management network, a cluster network and the internet. Every namespace is
// uniquely named and removed afterwards.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipPrivileged } from '../helpers/privileged.js';
import { applyNft, checkNft, readHostAddressing } from '../../src/backends/nft/apply.js';
import { Lab, connectProbes, sh, startServer } from '../../src/backends/nft/lab.js';
import { compileTomlPolicy } from '../../src/policy/toml.js';

const skip = skipPrivileged('nft');
const root = resolve(__dirname, '..', '..');
const FILE = 'examples/two-tenant.toml';

let lab: Lab;
const servers: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  if (skip) return;
  lab = Lab.create('ztTo', [
    { name: 'finance', gwIf: 'ztbr10', v4: '10.10.10.0/24' },
    { name: 'public', gwIf: 'ztbr20', v4: '10.10.20.0/24' },
    { name: 'admin', gwIf: 'em0', v4: '192.168.1.0/24' },
    { name: 'cluster', gwIf: 'clu0', v4: '172.16.5.0/24' },
    { name: 'inet', gwIf: 'up0', v4: '198.51.100.0/24', defaultRoute: true },
  ]);
  // fin-web (10.10.10.10) lives in the finance namespace next to an unnamed VM (10.10.10.2).
  sh(['ip', '-n', lab.ep('finance').ns, 'addr', 'add', '10.10.10.10/24', 'dev', 'eth0']);
  servers.push(await startServer(lab.ep('finance').ns, 443));
  servers.push(await startServer(lab.ep('public').ns, 80));
  servers.push(await startServer(lab.ep('cluster').ns, 443));
  servers.push(await startServer(lab.ep('inet').ns, [53, 80, 443]));
  servers.push(await startServer(lab.gw, 22));
  const ir = compileTomlPolicy(readFileSync(join(root, FILE), 'utf8'), FILE);
  const addressing = readHostAddressing({ netns: lab.gw });
  // The uplink (`egress`) is the interface holding the default route: up0.
  expect(addressing.groups.egress).toEqual(['up0']);
  applyNft(ir, { netns: lab.gw }, { ifaddrs: addressing.ifaddrs, groups: addressing.groups });
});

afterAll(async () => {
  for (const s of servers) await s.stop();
  lab?.destroy();
});

async function probe(from: string, probes: { proto: 'tcp' | 'udp'; dst: string; port: number }[]): Promise<boolean[]> {
  return (await connectProbes(lab.ep(from).ns, probes, 1, probes.length)).map((r) => r.ok);
}

describe('two-tenant example enforced by nftables, real connections', () => {
  it('finance VMs: HTTPS and DNS out; no plain HTTP, no public tenant, no cluster, no host services', async () => {
    if (skip) return;
    expect(
      await probe('finance', [
        { proto: 'tcp', dst: '198.51.100.2', port: 443 },
        { proto: 'udp', dst: '198.51.100.2', port: 53 },
        { proto: 'tcp', dst: '198.51.100.2', port: 80 },
        { proto: 'tcp', dst: '10.10.20.2', port: 80 },
        { proto: 'tcp', dst: '172.16.5.2', port: 443 },
        { proto: 'tcp', dst: '10.10.10.1', port: 22 },
      ]),
    ).toEqual([true, true, false, false, false, false]);
  });

  it('public VMs: the internet (allow_internet) but not finance, even on the port finance opens', async () => {
    if (skip) return;
    expect(
      await probe('public', [
        { proto: 'tcp', dst: '198.51.100.2', port: 80 },
        { proto: 'tcp', dst: '10.10.10.10', port: 443 },
      ]),
    ).toEqual([true, false]);
  });

  it('inbound: HTTPS reaches fin-web only; the management network reaches the gateway SSH', async () => {
    if (skip) return;
    expect(
      await probe('inet', [
        { proto: 'tcp', dst: '10.10.10.10', port: 443 },
        { proto: 'tcp', dst: '10.10.10.2', port: 443 },
        { proto: 'tcp', dst: '198.51.100.1', port: 22 },
      ]),
    ).toEqual([true, false, false]);
    expect(
      await probe('admin', [
        { proto: 'tcp', dst: '192.168.1.1', port: 22 },
        { proto: 'tcp', dst: '10.10.10.10', port: 443 },
      ]),
    ).toEqual([true, true]);
  });
});

describe('nftables accepts every generated isolation shape', () => {
  it('Blixard example and a dual-stack document with NDP, inbound ports and inter-VM isolation (nft -c)', () => {
    if (skip) return;
    const dual = [
      '[isolation]',
      'inter_vm_isolation = true',
      'host_services_blocked = false',
      'allowed_ports = [{ protocol = "tcp", port = 22, direction = "inbound" }, { protocol = "udp", port = 123, direction = "both" }]',
      '[[tenants]]',
      'id = "dual"',
      'net_id = 7',
      'subnets = ["10.7.0.0/24", "fd00:7::/64"]',
      'gateways = ["10.7.0.1", "fd00:7::1"]',
      "rules = 'pass in on ztbr7 proto tcp to port 443'",
    ].join('\n');
    const blixard = 'examples/blixard-isolation.toml';
    for (const ir of [compileTomlPolicy(dual, 'dual.toml'), compileTomlPolicy(readFileSync(join(root, blixard), 'utf8'), blixard)]) {
      expect(() => checkNft(ir, { netns: lab.gw }, { ifaddrs: { ztbr7: ['10.7.0.1/24', 'fd00:7::1/64'] }, groups: { egress: ['up0'] } })).not.toThrow();
    }
  });
});
