// Behaviour of the compiled TOML examples through the reference evaluator: what the isolation
// settings let through and what they stop, including replies via state and the guarantee that a
// tenant's own rules cannot open a path into another tenant, a cluster network or the host.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { parsePacketLine } from '../../src/engine/packet-line.js';
import type { Ir } from '../../src/policy/ir.js';
import { compileTomlPolicy } from '../../src/policy/toml.js';

const root = resolve(__dirname, '..', '..');
const TWO = 'examples/two-tenant.toml';
const twoText = readFileSync(join(root, TWO), 'utf8');

/** The line of the TOML file where `needle` first appears (to assert which key decided). */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`${needle} not in document`);
  return i + 1;
}

const IFADDRS = {
  ztbr10: ['10.10.10.1/24'],
  ztbr20: ['10.10.20.1/24'],
  eth0: ['203.0.113.2/24'],
  em0: ['192.168.1.1/24'],
};

function evaluator(ir: Ir): ReferenceEvaluator {
  return new ReferenceEvaluator(ir, { ifaddrs: IFADDRS, groups: { egress: ['eth0'] } });
}

/** Evaluates a packet line; returns verdict, reason and where the deciding rule was written. */
function run(ev: ReferenceEvaluator, line: string): { verdict: string; reason: string; line: number | null; ruleset: string | null } {
  const r = ev.evaluate(parsePacketLine(line));
  const rule = r.ruleId === null ? null : ev.ir.rules[r.ruleId]!;
  return { verdict: r.verdict, reason: r.reason, line: rule?.pos.line ?? null, ruleset: rule?.ruleset ?? null };
}

describe('two-tenant example through the reference evaluator', () => {
  const ir = compileTomlPolicy(twoText, TWO);
  const L = (needle: string): number => lineOf(twoText, needle);

  it('compiles: tenants, anchors, tables, groups, isolation', () => {
    expect(ir.tenants.map((t) => [t.id, t.anchor, t.netId])).toEqual([
      ['finance', 'finance', 10],
      ['public', 'public', 20],
    ]);
    expect(Object.keys(ir.rulesets).sort()).toEqual(['', 'finance', 'public']);
    // Single-subnet tenants are written inline: no per-tenant tables.
    expect(Object.keys(ir.tables).sort()).toEqual(['ztb_cluster', 'ztb_gateways', 'ztb_private', 'ztb_tenants']);
    expect(ir.groups.ztb_tenants).toEqual(['ztbr10', 'ztbr20']);
    expect(ir.isolation?.tenantIsolation).toBe(true);
    expect(ir.options.skip).toEqual(['lo']);
    // Generated rules are positioned at the TOML key that caused them.
    const deny = ir.rules.find((r) => r.action === 'block' && r.ruleset === '' && r.src.host.type === 'any' && r.iface === null)!;
    expect(deny.pos).toEqual({ file: TWO, line: L('enabled = true'), col: 1 });
  });

  it('finance VM -> public VM is blocked on the way in and on the way into public', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:40000 > 10.10.20.10:80')).toMatchObject({ verdict: 'block' });
    expect(run(ev, 'out on ztbr20 tcp 10.10.10.10:40000 > 10.10.20.10:80')).toMatchObject({
      verdict: 'block',
      line: L('tenant_isolation = true'),
    });
  });

  it('finance VM -> cluster network is blocked by cluster_networks', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:40000 > 172.16.0.5:443')).toMatchObject({
      verdict: 'block',
      line: L('cluster_networks ='),
    });
    expect(run(ev, 'in on ztbr10 udp 10.10.10.10:40000 > 192.168.1.10:161')).toMatchObject({ verdict: 'block', line: L('cluster_networks =') });
  });

  it('finance VM -> internet tcp/443 passes (tenant rule) and its reply passes via state', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:40000 > 93.184.216.34:443')).toMatchObject({ verdict: 'pass', ruleset: 'finance' });
    expect(run(ev, 'out on eth0 tcp 10.10.10.10:40000 > 93.184.216.34:443')).toMatchObject({ verdict: 'pass', line: L('uplink =') });
    expect(run(ev, 'in on eth0 tcp 93.184.216.34:443 > 10.10.10.10:40000 flags SA')).toMatchObject({ verdict: 'pass', reason: 'state' });
    expect(run(ev, 'out on ztbr10 tcp 93.184.216.34:443 > 10.10.10.10:40000 flags SA')).toMatchObject({ verdict: 'pass', reason: 'state' });
    // The same reply without the state is not let in toward the VM.
    expect(run(evaluator(ir), 'out on ztbr10 tcp 93.184.216.34:443 > 10.10.10.10:40000 flags SA')).toMatchObject({ verdict: 'block' });
  });

  it('a tenant anchor tightens allow_internet (finance: HTTPS only); public keeps the default', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:40000 > 93.184.216.34:80')).toMatchObject({ verdict: 'block', ruleset: 'finance' });
    expect(run(ev, 'in on ztbr20 tcp 10.10.20.10:40000 > 93.184.216.34:80')).toMatchObject({
      verdict: 'pass',
      line: L('allow_internet = true'),
    });
  });

  it('DNS outbound passes (allowed_ports), also to the gateway; other host services are blocked', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on ztbr10 udp 10.10.10.10:5353 > 8.8.8.8:53')).toMatchObject({ verdict: 'pass', line: L('[[isolation.allowed_ports]]') });
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:40000 > 8.8.8.8:53')).toMatchObject({ verdict: 'pass' });
    expect(run(ev, 'in on ztbr10 udp 10.10.10.10:5353 > 10.10.10.1:53')).toMatchObject({ verdict: 'pass' });
    const hostBlock = L('host_services_blocked = true');
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:40000 > 10.10.10.1:22')).toMatchObject({ verdict: 'block', line: hostBlock });
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:40000 > 10.10.20.1:22')).toMatchObject({ verdict: 'block', line: hostBlock });
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:40000 > 203.0.113.2:22')).toMatchObject({ verdict: 'block', line: hostBlock });
  });

  it('spoofed sources are blocked on the tenant bridge before any tenant rule', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on ztbr10 tcp 10.10.20.10:40000 > 93.184.216.34:443')).toMatchObject({
      verdict: 'block',
      line: L('subnets = ["10.10.10.0/24"]'),
    });
  });

  it('inbound HTTPS to fin-web passes (tenant rule at the bridge), not to fin-db', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on eth0 tcp 198.51.100.7:50000 > 10.10.10.10:443')).toMatchObject({ verdict: 'pass' });
    expect(run(ev, 'out on ztbr10 tcp 198.51.100.7:50000 > 10.10.10.10:443')).toMatchObject({ verdict: 'pass', ruleset: 'finance' });
    expect(run(ev, 'in on ztbr10 tcp 10.10.10.10:443 > 198.51.100.7:50000 flags SA')).toMatchObject({ verdict: 'pass', reason: 'state' });
    expect(run(ev, 'out on ztbr10 tcp 198.51.100.7:50001 > 10.10.10.11:443')).toMatchObject({ verdict: 'block' });
    // From the internet to a gateway address: host services stay denied.
    expect(run(ev, 'in on eth0 tcp 198.51.100.7:50000 > 10.10.10.1:22')).toMatchObject({ verdict: 'block' });
  });

  it('admin plane: SSH to the gateway host from the management network passes', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on em0 tcp 192.168.1.50:50000 > 192.168.1.1:22')).toMatchObject({ verdict: 'pass', line: L('from 192.168.1.0/24 to self port 22') });
    expect(run(ev, 'in on em0 tcp 192.168.1.50:50000 > 192.168.1.1:23')).toMatchObject({ verdict: 'block' });
  });
});

const HOLE = `
[isolation]
cluster_networks = ["172.16.0.0/12"]
allowed_ports = [{ protocol = "tcp", port = 22, direction = "inbound" }]

[[tenants]]
id = "a"
net_id = 1
subnets = ["10.1.0.0/24"]
gateway = "10.1.0.1"
rules = '''
# Tries to open everything in both directions.
pass in quick on ztbr1 all
pass out quick on ztbr1 all
pass in quick on ztbr2 all
'''

[[tenants]]
id = "b"
net_id = 2
subnets = ["10.2.0.0/24"]
gateway = "10.2.0.1"
`;

describe('a tenant cannot open a hole; inbound allowed ports', () => {
  const ir = compileTomlPolicy(HOLE, 'hole.toml');

  it("tenant a's pass-everything anchor does not reach tenant b, the cluster or the host", () => {
    const ev = evaluator(ir);
    // a -> b: passes a's own anchor on the way in, blocked on the way into b.
    expect(run(ev, 'in on ztbr1 tcp 10.1.0.5:40000 > 10.2.0.5:80')).toMatchObject({ verdict: 'pass', ruleset: 'a' });
    expect(run(ev, 'out on ztbr2 tcp 10.1.0.5:40000 > 10.2.0.5:80')).toMatchObject({ verdict: 'block', line: lineOf(HOLE, '[isolation]') });
    // b -> a: b has no rules (default deny on the way in) and a's `pass out quick` comes after the isolation block.
    expect(run(ev, 'in on ztbr2 tcp 10.2.0.5:40000 > 10.1.0.5:80')).toMatchObject({ verdict: 'block' });
    expect(run(ev, 'out on ztbr1 tcp 10.2.0.5:40000 > 10.1.0.5:80')).toMatchObject({ verdict: 'block', line: lineOf(HOLE, '[isolation]') });
    // a's rule naming b's bridge never sees b's traffic.
    expect(run(ev, 'in on ztbr2 udp 10.2.0.5:40000 > 198.51.100.1:9')).toMatchObject({ verdict: 'block' });
    expect(run(ev, 'in on ztbr1 tcp 10.1.0.5:40000 > 172.16.1.1:443')).toMatchObject({ verdict: 'block', line: lineOf(HOLE, 'cluster_networks') });
    expect(run(ev, 'in on ztbr1 tcp 10.1.0.5:40000 > 10.1.0.1:22')).toMatchObject({ verdict: 'block', line: lineOf(HOLE, '[isolation]') });
  });

  it('an inbound allowed port passes toward the VMs from anywhere but another tenant', () => {
    const ev = evaluator(ir);
    expect(run(ev, 'in on eth0 tcp 198.51.100.7:50000 > 10.2.0.5:22')).toMatchObject({ verdict: 'pass' });
    expect(run(ev, 'out on ztbr2 tcp 198.51.100.7:50000 > 10.2.0.5:22')).toMatchObject({ verdict: 'pass', line: lineOf(HOLE, 'allowed_ports') });
    expect(run(ev, 'in on ztbr2 tcp 10.2.0.5:22 > 198.51.100.7:50000 flags SA')).toMatchObject({ verdict: 'pass', reason: 'state' });
    expect(run(ev, 'out on ztbr2 tcp 198.51.100.7:50000 > 10.2.0.5:23')).toMatchObject({ verdict: 'block' });
    expect(run(ev, 'out on ztbr2 tcp 10.1.0.5:50000 > 10.2.0.5:22')).toMatchObject({ verdict: 'block' });
    // Outbound only: allow_internet is off, so b's VMs cannot start connections to the internet.
    expect(run(ev, 'in on ztbr2 tcp 10.2.0.5:40000 > 198.51.100.7:22')).toMatchObject({ verdict: 'block' });
  });
});

describe('inter-VM isolation and the Blixard example', () => {
  it('inter_vm_isolation blocks VM-to-VM through the gateway; without it the tenant talks to itself', () => {
    const doc = (interVm: boolean): string => `
[isolation]
inter_vm_isolation = ${interVm}
[[tenants]]
id = "a"
net_id = 1
subnets = ["10.1.0.0/24", "10.1.1.0/24"]
gateway = "10.1.0.1"
`;
    const on = evaluator(compileTomlPolicy(doc(true), 'on.toml'));
    expect(run(on, 'in on ztbr1 tcp 10.1.0.5:40000 > 10.1.1.5:80')).toMatchObject({ verdict: 'block', line: 3 });
    const off = evaluator(compileTomlPolicy(doc(false), 'off.toml'));
    expect(run(off, 'in on ztbr1 tcp 10.1.0.5:40000 > 10.1.1.5:80')).toMatchObject({ verdict: 'pass' });
    expect(run(off, 'out on ztbr1 tcp 10.1.0.5:40000 > 10.1.1.5:80')).toMatchObject({ verdict: 'pass' });
  });

  it('the Blixard document compiles and isolates its tenants', () => {
    const f = 'examples/blixard-isolation.toml';
    const ir = compileTomlPolicy(readFileSync(join(root, f), 'utf8'), f);
    expect(ir.tenants.map((t) => t.id)).toEqual(['tenant-a', 'tenant-b']);
    const ev = new ReferenceEvaluator(ir, { ifaddrs: { ztbr101: ['10.0.1.1/24'], ztbr102: ['10.0.2.1/24'] }, groups: { egress: ['eth0'] } });
    expect(run(ev, 'out on ztbr102 tcp 10.0.1.10:40000 > 10.0.2.10:80')).toMatchObject({ verdict: 'block' });
    expect(run(ev, 'in on ztbr101 tcp 10.0.1.10:40000 > 172.16.0.1:2379')).toMatchObject({ verdict: 'block' });
    expect(run(ev, 'in on ztbr101 udp 10.0.1.10:40000 > 9.9.9.9:53')).toMatchObject({ verdict: 'pass' });
    expect(run(ev, 'in on ztbr101 tcp 10.0.1.10:40000 > 9.9.9.9:443')).toMatchObject({ verdict: 'pass' });
  });
});

describe('dual-stack tenants', () => {
  const DUAL = `
[isolation]
allow_internet = true
[[isolation.allowed_ports]]
protocol = "udp"
port = 53
[[tenants]]
id = "six"
net_id = 6
subnets = ["10.6.0.0/24", "fd00:6::/64"]
gateways = ["10.6.0.1", "fd00:6::1"]
[[tenants]]
id = "seven"
net_id = 7
subnets = ["fd00:7::/64"]
gateway = "fd00:7::1"
`;
  const ir = compileTomlPolicy(DUAL, 'dual.toml');
  const ev = (): ReferenceEvaluator =>
    new ReferenceEvaluator(ir, { ifaddrs: { ztbr6: ['10.6.0.1/24', 'fd00:6::1/64'], ztbr7: ['fd00:7::1/64'] }, groups: { egress: ['eth0'] } });

  it('IPv6: the internet passes, ULA of another tenant and the gateways do not, spoofing is blocked', () => {
    expect(Object.keys(ir.tables).sort()).toEqual(['ztb_gateways', 'ztb_private', 'ztb_tenant_six', 'ztb_tenants']);
    expect(run(ev(), 'in on ztbr6 tcp [fd00:6::10]:40000 > [2001:db8::1]:443')).toMatchObject({ verdict: 'pass', line: 3 });
    expect(run(ev(), 'in on ztbr6 tcp 10.6.0.10:40000 > 93.184.216.34:443')).toMatchObject({ verdict: 'pass', line: 3 });
    expect(run(ev(), 'in on ztbr6 tcp [fd00:6::10]:40000 > [fd00:7::10]:443')).toMatchObject({ verdict: 'block' });
    expect(run(ev(), 'out on ztbr7 tcp [fd00:6::10]:40000 > [fd00:7::10]:443')).toMatchObject({ verdict: 'block' });
    expect(run(ev(), 'in on ztbr7 tcp [fd00:7::10]:40000 > [fd00:6::1]:22')).toMatchObject({ verdict: 'block' });
    expect(run(ev(), 'in on ztbr7 udp [fd00:7::10]:40000 > [fd00:6::1]:53')).toMatchObject({ verdict: 'pass' });
    expect(run(ev(), 'in on ztbr7 tcp [fd00:6::10]:40000 > [2001:db8::1]:443')).toMatchObject({ verdict: 'block', line: 15 });
    // Neighbour discovery gets through on tenant links; VMs may not advertise routes.
    expect(run(ev(), 'in on ztbr7 icmp6 fe80::5 > ff02::1:ff00:1 icmp-type 135')).toMatchObject({ verdict: 'pass', line: 2 });
    expect(run(ev(), 'in on ztbr7 icmp6 :: > ff02::1:ff00:1 icmp-type 135')).toMatchObject({ verdict: 'pass' });
    expect(run(ev(), 'out on ztbr7 icmp6 fe80::1 > ff02::1 icmp-type 134')).toMatchObject({ verdict: 'pass' });
    expect(run(ev(), 'in on ztbr7 icmp6 fe80::5 > ff02::1 icmp-type 134')).toMatchObject({ verdict: 'block' });
    // Both subnets of a multi-subnet tenant are its own: routed between them, it passes.
    expect(run(ev(), 'in on ztbr6 tcp 10.6.0.10:40000 > 10.6.0.11:22')).toMatchObject({ verdict: 'pass' });
  });
});
