// Bad TOML policy documents: every problem is reported, each with `file:line:col` and its TOML path.
import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../src/policy/errors.js';
import { compileTomlPolicy, loadTomlPolicy } from '../../src/policy/toml.js';

const FILE = 'bad.toml';

/** Diagnostics of a document as `line:col: message` strings (the file is always FILE). */
function errorsOf(text: string, compile = false): string[] {
  try {
    if (compile) compileTomlPolicy(text, FILE);
    else loadTomlPolicy(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    const err = e as PolicyError;
    for (const d of err.diagnostics) expect(d.pos.file).toBe(FILE);
    // The message is exactly the diagnostics formatted, one per line.
    expect(err.message).toBe(err.diagnostics.map((d) => `${FILE}:${d.pos.line}:${d.pos.col}: ${d.message}`).join('\n'));
    return err.diagnostics.map((d) => `${d.pos.line}:${d.pos.col}: ${d.message}`);
  }
  throw new Error('document was accepted');
}

const lines = (...l: string[]): string => l.join('\n') + '\n';

const tenantA = ['[[tenants]]', 'id = "a"', 'net_id = 1', 'subnets = ["10.1.0.0/24"]', 'gateway = "10.1.0.1"'];
const tenantB = ['[[tenants]]', 'id = "b"', 'net_id = 2', 'subnets = ["10.2.0.0/24"]', 'gateway = "10.2.0.1"'];

describe('TOML policy: valid minimal documents', () => {
  it('accepts an empty document and a two-tenant one', () => {
    expect(loadTomlPolicy('', FILE).input.units).toEqual([]);
    const r = loadTomlPolicy(lines(...tenantA, '', ...tenantB), FILE);
    expect(r.input.tenants.map((t) => [t.id, t.netId, t.pos.line])).toEqual([
      ['a', 1, 1],
      ['b', 2, 7],
    ]);
  });
});

describe('TOML policy: errors with TOML path and position', () => {
  it('reports a TOML syntax error at its line and column', () => {
    expect(errorsOf(lines('a = 1', 'b = [1,', '  2,,]'))).toEqual(['3:5: TOML syntax error: invalid value']);
  });

  it('rejects an unknown key at top level, at the key', () => {
    expect(errorsOf(lines('', '  tenant = 1'))).toEqual(['2:3: unknown key "tenant" at top level (did you mean "tenants"?)']);
  });

  it('rejects an unknown key in a tenant', () => {
    expect(errorsOf(lines(...tenantA, 'subnet = "10.1.0.0/24"'))).toEqual([
      '6:1: unknown key "subnet" in tenants[0] (did you mean "subnets"?)',
    ]);
  });

  it('rejects an unknown key in a workload', () => {
    expect(errorsOf(lines(...tenantA, '[[tenants.workloads]]', 'name = "w"', 'ip = "10.1.0.5"', 'color = "red"'))).toEqual([
      '9:1: unknown key "color" in tenants[0].workloads[0]',
    ]);
  });

  it('rejects an unknown key in an inline table (vxlan) and in [isolation]', () => {
    expect(
      errorsOf(lines(...tenantA, 'vni = 7', 'vxlan = { dstport = 4789, remote = "192.0.2.1" }', '[isolation]', 'allow_intenet = true')),
    ).toEqual([
      '7:27: unknown key "remote" in tenants[0].vxlan (did you mean "remotes"?)',
      '9:1: unknown key "allow_intenet" in isolation (did you mean "allow_internet"?)',
    ]);
  });

  it('rejects bad CIDRs: syntax, prefix length, host bits', () => {
    expect(errorsOf(lines(...tenantA.slice(0, 3), 'subnets = ["10.1.0.0/33", "10.1.0.1/24", "10.1.0.x/24"]', 'gateway = "10.1.0.1"'))).toEqual([
      '4:12: subnets[0]: invalid CIDR "10.1.0.0/33": bad prefix length',
      '4:27: subnets[1]: invalid CIDR "10.1.0.1/24": host bits are set (did you mean 10.1.0.0/24?)',
      '4:42: subnets[2]: invalid CIDR "10.1.0.x/24": not an IPv4/IPv6 address',
    ].map((s) => s.replace(/: subnets/, ': tenants[0].subnets')));
  });

  it('rejects net_id out of range and of the wrong type', () => {
    expect(errorsOf(lines('[[tenants]]', 'id = "a"', 'net_id = 4095', 'subnets = ["10.1.0.0/24"]', 'gateway = "10.1.0.1"'))).toEqual([
      '3:10: tenants[0].net_id: 4095 is out of range (expected an integer in 1..4094)',
    ]);
    expect(errorsOf(lines('[[tenants]]', 'id = "a"', 'net_id = "1"', 'subnets = ["10.1.0.0/24"]', 'gateway = "10.1.0.1"'))).toEqual([
      '3:10: tenants[0].net_id: expected an integer in 1..4094, got the string "1"',
    ]);
    expect(errorsOf(lines('[[tenants]]', 'id = "a"', 'net_id = 10.0', 'subnets = ["10.1.0.0/24"]', 'gateway = "10.1.0.1"', 'vni = 99999999999999999999'))).toEqual([
      '3:10: tenants[0].net_id: expected an integer in 1..4094, got the float 10.0',
      '6:7: tenants[0].vni: 99999999999999999999 is out of range (expected an integer in 1..16777215)',
    ]);
  });

  it('rejects a missing required key at the table header', () => {
    expect(errorsOf(lines('', '[[tenants]]', 'id = "a"', 'subnets = ["10.1.0.0/24"]', 'gateway = "10.1.0.1"'))).toEqual([
      '2:1: tenants[0]: missing required key "net_id" (an integer in 1..4094)',
    ]);
  });

  it('rejects tenant ids that cannot be anchor names', () => {
    expect(errorsOf(lines('[[tenants]]', 'id = "Finance-Department"', 'net_id = 1', 'subnets = ["10.1.0.0/24"]', 'gateway = "10.1.0.1"'))).toEqual([
      '2:6: tenants[0].id: "Finance-Department" is not a tenant id ([a-z0-9_-], starting with a letter, at most 15 bytes)',
    ]);
  });

  it('rejects duplicate VNIs, net_ids and tenant ids', () => {
    const b = [...tenantB];
    b[1] = 'id = "a"';
    b[2] = 'net_id = 1';
    expect(errorsOf(lines(...tenantA, 'vni = 1001', ...b, 'vni = 1001'))).toEqual([
      '8:6: tenants[1].id: duplicate tenant id "a" (also used by tenants[0])',
      '9:10: tenants[1].net_id: duplicate net_id 1 (also used by tenants[0])',
      '12:7: tenants[1].vni: duplicate vni 1001 (also used by tenants[0])',
    ]);
  });

  it('rejects a tap that does not start with tn<net_id> (and one that only looks like it)', () => {
    expect(
      errorsOf(lines(...tenantA, '[[tenants.workloads]]', 'name = "w"', 'ip = "10.1.0.5"', 'tap = "tap0"', '[[tenants.workloads]]', 'name = "v"', 'ip = "10.1.0.6"', 'tap = "tn10w0"')),
    ).toEqual([
      '9:7: tenants[0].workloads[0].tap: tap "tap0" must start with "tn1" (tn<net_id>) followed by a non-digit',
      '13:7: tenants[0].workloads[1].tap: tap "tn10w0" must start with "tn1" (tn<net_id>) followed by a non-digit',
    ]);
  });

  it('rejects overlapping subnets of different tenants, at the later one', () => {
    const b = [...tenantB];
    b[3] = 'subnets = ["10.0.0.0/8"]';
    b[4] = 'gateway = "10.9.0.1"';
    expect(errorsOf(lines(...tenantA, ...b))).toEqual([
      '9:12: tenants[1].subnets[0]: subnet 10.0.0.0/8 overlaps 10.1.0.0/24 of tenant "a"',
    ]);
  });

  it('rejects workload addresses outside the subnets, duplicates and the gateway itself', () => {
    expect(
      errorsOf(
        lines(...tenantA, '[[tenants.workloads]]', 'name = "w"', 'ips = ["10.1.0.5", "10.2.0.5"]', '[[tenants.workloads]]', 'name = "v"', 'ip = "10.1.0.5"', '[[tenants.workloads]]', 'name = "u"', 'ip = "10.1.0.1"'),
      ),
    ).toEqual([
      "8:20: tenants[0].workloads[0].ips[1]: workload address 10.2.0.5 is outside the tenant's subnets (10.1.0.0/24)",
      '11:6: tenants[0].workloads[1].ip: address 10.1.0.5 is already used by tenants[0].workloads[0].ips[0]',
      '14:6: tenants[0].workloads[2].ip: address 10.1.0.1 is already used by tenants[0].gateway',
    ]);
  });

  it('rejects a gateway outside the subnets and both spellings at once', () => {
    expect(errorsOf(lines(...tenantA.slice(0, 4), 'gateway = "10.9.0.1"'))).toEqual([
      "5:11: tenants[0].gateway: gateway 10.9.0.1 is not inside any of the tenant's subnets",
    ]);
    expect(errorsOf(lines(...tenantA, 'gateways = ["10.1.0.1"]'))).toEqual(['6:1: write either "gateway" or "gateways", not both']);
  });

  it('rejects invalid and multicast MAC addresses', () => {
    expect(
      errorsOf(lines(...tenantA, '[[tenants.workloads]]', 'name = "w"', 'ip = "10.1.0.5"', 'mac = "01:00:5e:00:00:01"', '[[tenants.workloads]]', 'name = "v"', 'ip = "10.1.0.6"', 'mac = "02:00:00:00:00"')),
    ).toEqual([
      '9:7: tenants[0].workloads[0].mac: MAC address "01:00:5e:00:00:01" is not a unicast address',
      '13:7: tenants[0].workloads[1].mac: invalid MAC address "02:00:00:00:00" (expected aa:bb:cc:dd:ee:ff)',
    ]);
  });

  it('rejects the iptables backend of Blixard\'s section', () => {
    expect(errorsOf(lines('[vm.network_isolation]', 'enabled = true', 'backend = "iptables"'))).toEqual([
      '3:11: vm.network_isolation.backend: backend "iptables" is not supported: ztb-enforce enforces isolation with nftables or pf only',
    ]);
  });

  it('rejects both isolation spellings at once, and subnets outside vm_network', () => {
    expect(errorsOf(lines('[isolation]', '[vm.network_isolation]'))).toEqual(['2:1: write either [isolation] or [vm.network_isolation], not both']);
    expect(errorsOf(lines(...tenantA, '[vm.network_isolation]', 'vm_network = "10.0.0.0/16"', 'cluster_networks = ["10.1.0.0/16"]'))).toEqual([
      '4:12: tenants[0].subnets[0]: subnet 10.1.0.0/24 of tenant "a" overlaps cluster network 10.1.0.0/16 (vm.network_isolation.cluster_networks[0])',
      '4:12: tenants[0].subnets[0]: subnet 10.1.0.0/24 of tenant "a" is outside vm_network 10.0.0.0/16',
    ]);
  });

  it('rejects cluster networks inside or around tenant subnets, and an uplink owned by a tenant', () => {
    expect(
      errorsOf(lines(...tenantA, 'interfaces = ["vether0"]', ...tenantB, '[isolation]', 'cluster_networks = ["10.2.0.128/25", "10.0.0.0/15", "192.0.2.0/24"]', 'uplink = "vether0"')),
    ).toEqual([
      '4:12: tenants[0].subnets[0]: subnet 10.1.0.0/24 of tenant "a" overlaps cluster network 10.0.0.0/15 (isolation.cluster_networks[1])',
      '10:12: tenants[1].subnets[0]: subnet 10.2.0.0/24 of tenant "b" overlaps cluster network 10.2.0.128/25 (isolation.cluster_networks[0])',
      '14:10: isolation.uplink: uplink "vether0" is an interface of tenant "a"',
    ]);
  });

  it('rejects pf keywords and generated group names as tenant interfaces', () => {
    expect(errorsOf(lines(...tenantA, 'interfaces = ["egress", "all"]'))).toEqual([
      '6:15: tenants[0].interfaces[0]: "egress" cannot be a tenant interface: it is a pf keyword or a group the generated rules use',
      '6:25: tenants[0].interfaces[1]: "all" cannot be a tenant interface: it is a pf keyword or a group the generated rules use',
    ]);
  });

  it('rejects a bad allowed_ports entry', () => {
    expect(errorsOf(lines('[[isolation.allowed_ports]]', 'protocol = "icmp"', 'port = 0', 'direction = "in"'))).toEqual([
      '2:12: isolation.allowed_ports[0].protocol: expected one of "tcp", "udp", got the string "icmp"',
      '3:8: isolation.allowed_ports[0].port: 0 is out of range (expected an integer in 1..65535)',
      '4:13: isolation.allowed_ports[0].direction: expected one of "inbound", "outbound", "both", got the string "in"',
    ]);
  });

  it('rejects interface names that collide with derived names or exceed 15 bytes', () => {
    expect(errorsOf(lines(...tenantA, 'interfaces = ["ztbr2", "averyveryverylongname", "vether0.10"]'))).toEqual([
      '6:24: tenants[0].interfaces[1]: "averyveryverylongname" is not an interface name (letter first, [A-Za-z0-9_.-], at most 15 bytes)',
    ]);
    expect(errorsOf(lines(...tenantA, 'interfaces = ["ztbr2"]'))).toEqual([
      '6:15: tenants[0].interfaces[0]: interface "ztbr2" uses a prefix reserved for derived names (ztbr<net_id>, ztvx<net_id>, ztvl<net_id>, tn<net_id>...)',
    ]);
  });

  it('enforces the caps: tenants, workloads, document size', () => {
    const many: string[] = [];
    for (let i = 0; i < 4097; i++) many.push(`[[tenants]]\nid = "t${i}"\nnet_id = 1\nsubnets = []\n`);
    expect(errorsOf(many.join(''))).toEqual(['1:1: tenants: has 4097 entries, more than the limit of 4096']);
    const w: string[] = [...tenantA];
    for (let i = 0; i < 257; i++) w.push('[[tenants.workloads]]', `name = "w${i}"`, `ip = "10.1.0.${i % 250 + 2}"`);
    expect(errorsOf(lines(...w))).toEqual(['6:1: tenants[0].workloads: has 257 entries, more than the limit of 256']);
    expect(errorsOf(`rules = '''${'#'.repeat(1 << 20)}'''`)).toEqual([
      `1:1: document is ${(1 << 20) + 14} bytes, more than the limit of 1048576`,
    ]);
  });

  it('reports every problem of a document at once, sorted by position', () => {
    const errs = errorsOf(lines('bogus = 1', '[[tenants]]', 'id = "9x"', 'net_id = 0', 'subnets = ["10.1.0.0/24"]', 'gateway = "10.1.0.1"'));
    expect(errs.map((e) => e.split(':').slice(0, 2).join(':'))).toEqual(['1:1', '3:6', '4:10']);
  });

  it('reports a pf syntax error inside a tenant rules string at its TOML line and column', () => {
    const errs = errorsOf(lines(...tenantA, "rules = '''", 'pass in on ztbr1 proto tcp to port 443', 'pass in on ztbr1 proto tcp to port 99999', "'''"), true);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^8:36: .*99999/);
    // A one-line string: columns are offset by where the string starts.
    const one = errorsOf(lines(...tenantA, 'rules = "pass in on ztbr1 prto tcp"'), true);
    expect(one).toHaveLength(1);
    expect(one[0]).toMatch(/^6:27: /);
  });

  it('positions pf errors in a basic string with escapes at the string start', () => {
    // "\n" escapes make decoded lines differ from the file's; no position is invented.
    const errs = errorsOf(lines(...tenantA, 'rules = "pass all\\nblock frobnicate"'), true);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^6:10: /);
  });

  it('reports pf errors in the global rules and in several tenants at once', () => {
    const b = [...tenantB, "rules = '''", 'block frobnicate', "'''"];
    const errs = errorsOf(lines("rules = '''", '', 'pass in on em0 proto tcp from 10.0.0.0/33', "'''", ...tenantA, "rules = 'anchor \"x\" {'", ...b), true);
    expect(errs.map((e) => e.split(':').slice(0, 1).join(':'))).toEqual(['3', '10', '17']);
  });

  it('still cross-checks the valid tenants when another tenant has schema errors', () => {
    const bad = ['[[tenants]]', 'id = "c"', 'net_id = 99999', 'subnets = ["10.3.0.0/24"]', 'gateway = "10.3.0.1"'];
    const b = [...tenantB];
    b[2] = 'net_id = 1';
    expect(errorsOf(lines(...tenantA, ...bad, ...b))).toEqual([
      '8:10: tenants[1].net_id: 99999 is out of range (expected an integer in 1..4094)',
      '13:10: tenants[2].net_id: duplicate net_id 1 (also used by tenants[0])',
    ]);
  });

  it('reports a missing pf_file at the pf_file value', () => {
    expect(errorsOf(lines('pf_file = "does-not-exist.pf.conf"'))).toEqual([
      `1:11: pf_file: cannot read ${process.cwd()}/does-not-exist.pf.conf: ENOENT`,
    ]);
  });
});
