// The pf text generated from TOML documents (policy options, tenant tables, isolation rules,
// tenant anchor calls) compared with goldens in test/policy/golden/; UPDATE_GOLDEN=1 refreshes.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTomlPolicy, loadTomlPolicy, renderGeneratedUnits } from '../../src/policy/toml.js';

const root = resolve(__dirname, '..', '..');
const goldenDir = join(__dirname, 'golden');

function golden(name: string, actual: string): void {
  const path = join(goldenDir, name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    // A missing golden is written once and then fails, so a new golden is always reviewed.
    const created = !existsSync(path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    if (created && process.env.UPDATE_GOLDEN !== '1') throw new Error(`golden ${name} was missing and has been written; review it`);
    return;
  }
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

function generated(file: string, text?: string): string {
  const abs = join(root, file);
  const r = loadTomlPolicy(text ?? readFileSync(abs, 'utf8'), relative(root, abs));
  return renderGeneratedUnits(r);
}

const VARIANT = `
[policy]
block_policy = "return"
loginterface = "ztbr7"

[isolation]
enabled = true
inter_vm_isolation = true
host_services_blocked = false
uplink = "eth0"
allowed_ports = [
  { protocol = "tcp", port = 22, direction = "inbound" },
  { protocol = "udp", port = 123, direction = "both" },
]

[[tenants]]
id = "dual"
net_id = 7
subnets = ["10.7.0.0/24", "fd00:7::/64"]
gateways = ["10.7.0.1", "fd00:7::1"]
interfaces = ["vether0.7"]
rules = "pass in on ztbr7 proto tcp to port 443"
`;

describe('TOML -> generated pf text (goldens)', () => {
  it('two-tenant example', () => golden('toml-two-tenant.txt', generated('examples/two-tenant.toml')));
  it('Blixard example', () => golden('toml-blixard.txt', generated('examples/blixard-isolation.toml')));
  it('variant: return policy, inter-VM isolation, host services open, inbound ports, dual stack', () =>
    golden('toml-variant.txt', generated('test/policy/variant.toml', VARIANT)));

  it('without isolation only the policy options, tables and anchor calls are generated', () => {
    const text = `
[[tenants]]
id = "solo"
net_id = 5
subnets = ["10.5.0.0/24"]
gateway = "10.5.0.1"
rules = '''
pass in on ztbr5 all
'''
[isolation]
enabled = false
`;
    expect(generated('x.toml', text)).toBe(
      [
        '# x.toml:2:1',
        'table <ztb_tenants> const { 10.5.0.0/24 }',
        '# x.toml:7:1',
        'anchor "solo" on ztbr5',
        '',
      ].join('\n'),
    );
  });

  it('positions each tenant rules string at its first character, after the opening delimiter', () => {
    const text = ['[[tenants]]', 'id = "a"', 'net_id = 1', 'subnets = ["10.1.0.0/24"]', 'gateway = "10.1.0.1"', 'rules = """', 'pass all', '"""', '[[tenants]]', 'id = "b"', 'net_id = 2', 'subnets = ["10.2.0.0/24"]', 'gateway = "10.2.0.1"', "rules = 'block all'", 'interfaces = ["em1"]'].join('\n');
    const r = loadTomlPolicy(text, 'p.toml');
    const bodies = r.input.units.filter((u) => !u.generated);
    expect(bodies).toEqual([
      { file: 'p.toml', text: 'pass all\n', ruleset: 'a', line: 7, col: 1 },
      { file: 'p.toml', text: 'block all', ruleset: 'b', line: 14, col: 10 },
    ]);
    expect(r.input.groups).toEqual({ ztb_tenants: ['ztbr1', 'ztbr2', 'em1'] });
    expect(r.input.tenants.map((t) => [t.anchor, t.interfaces])).toEqual([
      ['a', ['ztbr1']],
      ['b', ['ztbr2', 'em1']],
    ]);
  });

  it('fills the IR tenant from the document: gateways with prefix length, default taps, vxlan', () => {
    const r = loadTomlPolicy(readFileSync(join(root, 'examples/two-tenant.toml'), 'utf8'), 'examples/two-tenant.toml');
    const fin = r.input.tenants[0]!;
    expect(fin).toMatchObject({
      id: 'finance',
      netId: 10,
      subnets: [{ af: 'inet', addr: '10.10.10.0', len: 24 }],
      gateways: ['10.10.10.1/24'],
      vxlan: { vni: 1001, remotes: [], dstport: 4789, learning: false },
      vlan: null,
      anchor: 'finance',
      interfaces: ['ztbr10', 'ztvx10', 'tn10w0', 'tn10w1'],
    });
    expect(fin.workloads).toEqual([
      { name: 'fin-web', ips: ['10.10.10.10'], mac: '02:00:0a:0a:0a:0a', tap: 'tn10w0' },
      { name: 'fin-db', ips: ['10.10.10.11'], mac: '02:00:0a:0a:0a:0b', tap: 'tn10w1' },
    ]);
    expect(r.input.isolation).toEqual({
      clusterNetworks: [
        { af: 'inet', addr: '127.0.0.0', len: 8 },
        { af: 'inet', addr: '169.254.0.0', len: 16 },
        { af: 'inet', addr: '172.16.0.0', len: 12 },
        { af: 'inet', addr: '192.168.1.0', len: 24 },
      ],
      tenantIsolation: true,
      interVmIsolation: false,
      allowInternet: true,
      allowedPorts: [
        { protocol: 'udp', port: 53, direction: 'outbound' },
        { protocol: 'tcp', port: 53, direction: 'outbound' },
      ],
    });
  });

  it('loads pf_file relative to the TOML file, before the top-level rules, with its own positions', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ztb-toml-'));
    try {
      writeFileSync(join(dir, 'base.pf.conf'), 'ext_if = "eth0"\npass in on $ext_if proto tcp to port 22\n');
      const toml = join(dir, 'p.toml');
      const text = 'pf_file = "base.pf.conf"\nrules = \'block in on eth0 proto tcp to port 23\'\n';
      writeFileSync(toml, text);
      const ir = compileTomlPolicy(text, toml);
      expect(ir.rules.map((r) => [r.pos.file, r.pos.line, r.action])).toEqual([
        [join(dir, 'base.pf.conf'), 2, 'pass'],
        [toml, 2, 'block'],
      ]);
      expect(ir.sources).toEqual([join(dir, 'base.pf.conf'), toml]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('enabled = false (either spelling) means no isolation', () => {
    for (const sec of ['[isolation]', '[vm.network_isolation]']) {
      const r = loadTomlPolicy(`${sec}\nenabled = false\ntenant_isolation = true\n`, 'x.toml');
      expect(r.input.isolation).toBeNull();
      expect(r.generated).toEqual([]);
    }
    // Isolation with no tenants still denies by default.
    expect(renderGeneratedUnits(loadTomlPolicy('[isolation]\n', 'y.toml'))).toBe('# y.toml:1:1\nblock all\n# y.toml:1:1\npass out on egress all\n');
  });

  it('keeps the VXLAN details and checks multicast groups and remotes', () => {
    const base = '[[tenants]]\nid = "a"\nnet_id = 1\nsubnets = ["10.1.0.0/24"]\ngateway = "10.1.0.1"\nvni = 5000\n';
    const r = loadTomlPolicy(base + 'vxlan = { group = "239.1.1.1", local = "192.0.2.1", dstport = 8472, learning = true }\n', 'v.toml');
    expect(r.input.tenants[0]!.vxlan).toEqual({ vni: 5000, remotes: [], group: '239.1.1.1', local: '192.0.2.1', dstport: 8472, learning: true });
    expect(() => loadTomlPolicy(base + 'vxlan = { group = "192.0.2.7", remotes = ["224.0.0.5"] }\n', 'v.toml')).toThrow(
      'v.toml:7:19: tenants[0].vxlan.group: vxlan group 192.0.2.7 is not a multicast address\n' +
        'v.toml:7:43: tenants[0].vxlan.remotes[0]: vxlan remote 224.0.0.5 is a multicast address: use "group"',
    );
    expect(() => loadTomlPolicy(base.replace('vni = 5000\n', '') + 'vxlan = { remotes = ["192.0.2.1"] }\n', 'v.toml')).toThrow(
      'v.toml:6:1: "vxlan" needs "vni" in the same tenant',
    );
  });
});
