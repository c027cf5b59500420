// Net layer unit tests (no privileges): the desired topology derived from tenants — names, MTU
// from the underlay family, sandbox names, address lengths, collected problems — and the
// NetlinkError mapping of the netlink package's errno-less rejections.
import { describe, expect, test } from 'vitest';
import { buildTopology, parseOwnerAlias, ownerAlias, sandboxNetnsName } from '../../src/net/topology.js';
import { NetlinkError, TopologyError } from '../../src/net/errors.js';
import { bufToIp, canonicalIp, ipToBuf } from '../../src/net/addr.js';
import { tenant } from './fixtures.js';

describe('topology', () => {
  test('names, MTU from the underlay family, ownership aliases', () => {
    const topo = buildTopology([
      tenant(7, { vxlan: { vni: 1007, local: '198.18.0.1', remotes: ['198.18.0.2'] } }),
      tenant(8, { vxlan: { vni: 1008, local: 'fd00:198::1', remotes: ['FD00:198::2'] } }),
      tenant(9),
    ]);
    const [a, b, c] = topo.tenants;
    expect(a!.bridge).toBe('ztbr7');
    expect(a!.vxlan).toMatchObject({ name: 'ztvx7', vni: 1007, port: 4789, local: '198.18.0.1', remotes: ['198.18.0.2'] });
    expect(a!.mtu).toBe(1450);
    expect(b!.mtu).toBe(1430);
    expect(b!.vxlan!.remotes).toEqual(['fd00:198::2']);
    expect(c!.mtu).toBe(1500);
    expect(buildTopology([tenant(7, { vxlan: { vni: 1 } })], { underlay: { mtu: 9000 } }).tenants[0]!.mtu).toBe(8950);
    expect(a!.ports.map((p) => [p.name, p.kind, p.ips.map((i) => `${i.addr}/${i.len}`)])).toEqual([
      ['tn7w0', 'tap', ['10.100.7.10/24']],
      ['tn7w1', 'tap', ['10.100.7.11/24']],
    ]);
    expect(ownerAlias('t7', 'tap')).toBe('ztb:t7:tap');
    expect(parseOwnerAlias('ztb:t7:tap')).toEqual({ tenant: 't7', role: 'tap' });
    expect(parseOwnerAlias('ztb:t7:other')).toBeNull();
    expect(parseOwnerAlias('my bridge')).toBeNull();
  });

  test('site options override the policy\'s VTEPs; multicast tenants keep their group', () => {
    const topo = buildTopology([tenant(7, { vxlan: { vni: 7, local: '10.0.0.1', remotes: ['10.0.0.2'] } }), tenant(8, { vxlan: { vni: 8, group: '239.1.1.8' } })], {
      underlay: { local: '198.18.0.1', remotes: ['198.18.0.2'], device: 'ul0' },
    });
    expect(topo.tenants[0]!.vxlan).toMatchObject({ local: '198.18.0.1', remotes: ['198.18.0.2'] });
    expect(topo.tenants[1]!.vxlan).toMatchObject({ local: '198.18.0.1', group: '239.1.1.8', remotes: [], device: 'ul0' });
  });

  test('sandbox mode: veths, a namespace per workload named after the host, default gateways', () => {
    const topo = buildTopology([tenant(7, { v6: true })], { sandbox: true, netns: 'site1' });
    const p = topo.tenants[0]!.ports[1]!;
    expect(p.kind).toBe('veth');
    expect(p.sandbox).toEqual({ netns: 'ztw-site1-7-1', ifname: 'eth0', gateways: ['10.100.7.1', 'fd00:7::1'] });
    expect(sandboxNetnsName(undefined, 7, 0)).toBe('ztw-host-7-0');
  });

  test('every problem is reported at once, with its position', () => {
    const t = tenant(7);
    t.gateways = ['10.100.7.1/24', '10.100.7.2/24', 'nonsense'];
    t.workloads[0]!.mac = 'zz:00:00:00:00:00';
    t.workloads[1]!.mac = '01:00:5e:00:00:01';
    const dup = tenant(7);
    dup.id = 't7b';
    dup.workloads.pop();
    dup.workloads.push({ ...tenant(9).workloads[0]!, name: 'w9', mac: '02:00:00:09:00:0a', tap: 'tn7w9' });
    const third = tenant(9, { workloads: 1 });
    let err: TopologyError | undefined;
    try {
      buildTopology([t, dup, third]);
    } catch (e) {
      err = e as TopologyError;
    }
    expect(err).toBeInstanceOf(TopologyError);
    expect(err!.problems).toEqual([
      "test.toml:7:1: tenant 't7': more than one inet gateway",
      "test.toml:7:1: tenant 't7': gateway 'nonsense' is not an address/prefix-length",
      "test.toml:7:1: tenant 't7' workload 'w0': MAC 'zz:00:00:00:00:00' is not a MAC address",
      "test.toml:7:1: tenant 't7' workload 'w1': MAC 01:00:5e:00:00:01 is multicast or zero",
      "test.toml:7:1: tenant 't7b': net_id 7 is also used by tenant 't7'",
      "interface name 'ztbr7' is used twice (bridge of tenant 't7' and bridge of tenant 't7b')",
      "interface name 'tn7w0' is used twice (workload 'w0' of tenant 't7' and workload 'w0' of tenant 't7b')",
      "test.toml:9:1: MAC 02:00:00:09:00:0a is used by workload 'w9' of tenant 't7b' and workload 'w0' of tenant 't9'",
    ]);
  });
});

describe('errors and addresses', () => {
  test('the package\'s "Request rejected: NAME" becomes a NetlinkError with errno and object', () => {
    const e = NetlinkError.from(new Error('Request rejected: EEXIST'), 'create bridge', 'ztbr7') as NetlinkError;
    expect(e).toBeInstanceOf(NetlinkError);
    expect(e.code).toBe('ERR_ZTB_NETLINK_EEXIST');
    expect(e.errno).toBe(17);
    expect(e.message).toBe('create bridge ztbr7: ztbr7 already exists (EEXIST, errno 17)');
    const p = NetlinkError.from(new Error('Request rejected: EPERM'), 'configure', 'tn7w0') as NetlinkError;
    expect(p.message).toMatch(/CAP_NET_ADMIN is required/);
    const n = NetlinkError.from(Object.assign(new Error('x'), { errno: 19 }), 'delete', 'ztvx7') as NetlinkError;
    expect(n.code).toBe('ERR_ZTB_NETLINK_ENODEV');
    const other = new TypeError('boom');
    expect(NetlinkError.from(other, 'x', 'y')).toBe(other);
  });

  test('IPv6 text <-> bytes round-trips canonically', () => {
    for (const [i, o] of [
      ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['::ffff:10.0.0.1', '::ffff:a00:1'],
      ['::', '::'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ] as const) {
      expect(canonicalIp(i)).toBe(o);
      expect(bufToIp(ipToBuf(o))).toBe(o);
    }
  });
});
