// Net layer tests: drift detection and repair (deleted tap, changed MTU, tap moved to another
// tenant's bridge, VNI on two tenants), foreign-link safety (a non-owned link with a ztb-like name
// is never touched, and a foreign link holding a needed name stops apply before any change), TAP
// name validation and the VLAN capability check.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { applyTenants, teardownTenants, verifyTenants } from '../../src/net/reconcile.js';
import { buildTopology, tapNameProblem } from '../../src/net/topology.js';
import { TopologyError, OwnershipError, UnsupportedError } from '../../src/net/errors.js';
import { detectVlanSupport, readIntent, writeIntent } from '../../src/net/host.js';
import { createTap } from '../../src/net/tap.js';
import { skipPrivileged } from '../helpers/privileged.js';
import { cleanupHost, ip, ipLinks, makeNetns, tenant } from './fixtures.js';

const skip = skipPrivileged();

describe('drift', () => {
  let ns = '';
  beforeAll(() => {
    if (!skip) ns = makeNetns('ztnd');
  });
  afterAll(() => {
    if (ns) cleanupHost(ns);
  });

  test('verify reports a deleted tap, a changed MTU and a tap on another tenant\'s bridge; apply repairs them', async () => {
    if (skip) return;
    const tenants = [tenant(7, { vxlan: { vni: 1007, local: '198.18.0.1', remotes: ['198.18.0.2'] } }), tenant(8, { workloads: 1 })];
    await applyTenants(tenants, { netns: ns });
    expect((await verifyTenants(tenants, { netns: ns })).ok).toBe(true);

    ip(ns, 'link', 'del', 'tn7w0');
    ip(ns, 'link', 'set', 'tn7w1', 'mtu', '1400');
    ip(ns, 'link', 'set', 'tn8w0', 'master', 'ztbr7');
    ip(ns, 'link', 'set', 'ztbr8', 'down');
    const v = await verifyTenants(tenants, { netns: ns });
    expect(v.ok).toBe(false);
    const texts = v.drift.map((d) => `${d.drift}: ${d.text}`);
    expect(texts).toContainEqual(expect.stringMatching(/^missing: create tap tn7w0/));
    expect(texts).toContainEqual(expect.stringMatching(/^misconfigured: fix tn7w1: MTU 1400 -> 1450/));
    expect(texts).toContainEqual(expect.stringMatching(/^wrong-tenant: fix tn8w0: tap of tenant 't8' is on the bridge of tenant 't7' \(ztbr7\)/));
    expect(texts).toContainEqual(expect.stringMatching(/^misconfigured: fix ztbr8: down -> up/));

    const r = await applyTenants(tenants, { netns: ns });
    expect(r.applied).toBeGreaterThan(0);
    const links = ipLinks(ns);
    expect(links.get('tn7w0')?.master).toBe('ztbr7');
    expect(links.get('tn7w1')?.mtu).toBe(1450);
    expect(links.get('tn8w0')?.master).toBe('ztbr8');
    expect(links.get('ztbr8')?.flags).toContain('UP');
    expect((await verifyTenants(tenants, { netns: ns, deep: true })).drift).toEqual([]);
    expect((await applyTenants(tenants, { netns: ns })).noop).toBe(true);
  });

  test('a VNI on two owned devices is reported; an owned device not in the policy is extra and removed', async () => {
    if (skip) return;
    const tenants = [tenant(7, { vxlan: { vni: 1007, local: '198.18.0.1', remotes: ['198.18.0.2'] } }), tenant(8, { workloads: 1 })];
    await applyTenants(tenants, { netns: ns });
    ip(ns, 'link', 'add', 'ztvx99', 'type', 'vxlan', 'id', '1007', 'dstport', '4790', 'local', '198.18.0.1');
    ip(ns, 'link', 'set', 'ztvx99', 'alias', 'ztb:t99:vxlan');
    const v = await verifyTenants(tenants, { netns: ns });
    const texts = v.drift.map((d) => `${d.drift}: ${d.text}`);
    expect(texts).toContainEqual(expect.stringMatching(/^vni-conflict: VNI 1007 is mapped to more than one tenant device: .*ztvx7 \(tenant 't7'\).*ztvx99 \(tenant 't99'\)/));
    expect(texts).toContainEqual(expect.stringMatching(/^extra: delete ztvx99/));
    await applyTenants(tenants, { netns: ns });
    expect(ipLinks(ns).has('ztvx99')).toBe(false);
    expect((await verifyTenants(tenants, { netns: ns })).ok).toBe(true);
    await teardownTenants(tenants, { netns: ns });
  });
});

describe('foreign links', () => {
  let ns = '';
  beforeAll(() => {
    if (!skip) ns = makeNetns('ztnf');
  });
  afterAll(() => {
    if (ns) cleanupHost(ns);
  });

  test('a non-owned link with a ztb-like name survives apply, repair and down', async () => {
    if (skip) return;
    ip(ns, 'link', 'add', 'ztbr99', 'type', 'bridge');
    ip(ns, 'link', 'add', 'tn7zz', 'type', 'veth', 'peer', 'name', 'tn7zy');
    ip(ns, 'link', 'set', 'tn7zz', 'master', 'ztbr99');
    ip(ns, 'link', 'set', 'tn7zy', 'mtu', '1600');
    const before = ipLinks(ns);
    const tenants = [tenant(7)];
    await applyTenants(tenants, { netns: ns });
    // A foreign port put on our bridge is reported by deep verify, and still left alone.
    ip(ns, 'link', 'set', 'tn7zy', 'master', 'ztbr7');
    const v = await verifyTenants(tenants, { netns: ns, deep: true });
    expect(v.drift.map((d) => d.drift)).toEqual(['foreign-port']);
    expect(v.drift[0]!.text).toMatch(/foreign link tn7zy is enslaved to ztbr7 of tenant 't7'/);
    expect((await applyTenants(tenants, { netns: ns })).noop).toBe(true);
    await teardownTenants(tenants, { netns: ns });
    const after = ipLinks(ns);
    expect([...after.keys()].sort()).toEqual(['lo', 'tn7zy', 'tn7zz', 'ztbr99']);
    for (const n of ['ztbr99', 'tn7zz']) {
      expect(after.get(n)!.ifindex).toBe(before.get(n)!.ifindex);
      expect(after.get(n)!.ifalias).toBeUndefined();
    }
    expect(after.get('tn7zz')!.master).toBe('ztbr99');
    expect(after.get('tn7zy')!.mtu).toBe(1600);
  });

  test('a foreign link holding a name the policy needs stops apply before any change', async () => {
    if (skip) return;
    ip(ns, 'link', 'add', 'ztbr9', 'type', 'bridge');
    ip(ns, 'link', 'set', 'ztbr9', 'mtu', '1400');
    const before = [...ipLinks(ns).keys()].sort();
    const err = await applyTenants([tenant(9), tenant(10)], { netns: ns }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OwnershipError);
    expect((err as Error).message).toMatch(/link ztbr9 exists but is not owned by ztb-enforce .*refusing to touch it/);
    expect([...ipLinks(ns).keys()].sort()).toEqual(before);
    expect(ipLinks(ns).get('ztbr9')!.mtu).toBe(1400);
  });
});

describe('interrupted runs', () => {
  test('an alias-less tap named in the intent journal is adopted; without the journal it is foreign', async () => {
    if (skip) return;
    const ns = makeNetns('ztnj');
    try {
      // What a run killed between TUNSETIFF and the alias message leaves behind.
      createTap('tn7w0', { netns: ns });
      const tenants = [tenant(7)];
      await expect(applyTenants(tenants, { netns: ns })).rejects.toBeInstanceOf(OwnershipError);
      writeIntent(ns, ['ztbr7', 'tn7w0']);
      const r = await applyTenants(tenants, { netns: ns });
      expect(r.changes.map((c) => c.text)).toContainEqual(expect.stringMatching(/^fix tn7w0: alias unset -> 'ztb:t7:tap'/));
      expect(ipLinks(ns).get('tn7w0')!.ifalias).toBe('ztb:t7:tap');
      expect(readIntent(ns).size).toBe(0);
      expect((await applyTenants(tenants, { netns: ns })).noop).toBe(true);
    } finally {
      cleanupHost(ns);
    }
  });
});

describe('tap names', () => {
  test('a tap must start with tn<net_id>; ambiguous prefixes are refused', () => {
    expect(tapNameProblem('tn7w0', 7, [7])).toBeNull();
    expect(tapNameProblem('tap0', 7, [7])).toMatch(/tap 'tap0' must start with 'tn7'/);
    expect(tapNameProblem('tn8w0', 7, [7, 8])).toMatch(/must start with 'tn7'/);
    expect(tapNameProblem('tn12x', 1, [1, 12])).toMatch(/ambiguous: it also carries the prefix 'tn12'/);
    expect(tapNameProblem('tn1234567890abcd', 1, [1])).toMatch(/longer than 15 bytes/);
    const bad = tenant(7);
    bad.workloads[1]!.tap = 'vm-tap1';
    let err: unknown;
    try {
      buildTopology([bad, tenant(8, { tapPrefix: 'tn7' })]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TopologyError);
    const problems = (err as TopologyError).problems;
    expect(problems).toContainEqual(expect.stringMatching(/^test\.toml:7:1: tenant 't7' workload 'w1': tap 'vm-tap1' must start with 'tn7'/));
    expect(problems).toContainEqual(expect.stringMatching(/tenant 't8' workload 'w0': tap 'tn7w0' must start with 'tn8'/));
  });

  test('apply with a bad tap name changes nothing', async () => {
    if (skip) return;
    const ns = makeNetns('ztnt');
    try {
      const bad = tenant(7);
      bad.workloads[0]!.tap = 'eth7';
      await expect(applyTenants([bad], { netns: ns })).rejects.toThrow(/tap 'eth7' must start with 'tn7'/);
      expect([...ipLinks(ns).keys()]).toEqual(['lo']);
    } finally {
      cleanupHost(ns);
    }
  });

  test('a VNI mapped to two tenants in the policy is refused', () => {
    expect(() => buildTopology([tenant(7, { vxlan: { vni: 5000 } }), tenant(8, { vxlan: { vni: 5000 } })])).toThrow(/VNI 5000 is mapped to two tenants: 't7' and 't8'/);
  });
});

describe('VLAN', () => {
  test('VLAN support is detected once; without 802.1Q apply fails with a clear error and changes nothing', async () => {
    if (skip) return;
    const ns = makeNetns('ztnv');
    try {
      ip(ns, 'link', 'add', 'uplink0', 'type', 'bridge');
      const supported = await detectVlanSupport();
      const t = tenant(7, { vlan: 70 });
      if (supported) {
        await applyTenants([t], { netns: ns, underlay: { vlanParent: 'uplink0' } });
        const l = ipLinks(ns).get('ztvl7')!;
        expect(l.linkinfo?.info_kind).toBe('vlan');
        expect(l.master).toBe('ztbr7');
      } else {
        const err = await applyTenants([t], { netns: ns, underlay: { vlanParent: 'uplink0' } }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UnsupportedError);
        expect((err as Error).message).toMatch(/^VLAN not supported by this kernel \(CONFIG_VLAN_8021Q\): tenant 't7' asks for a VLAN; nothing was changed/);
        expect([...ipLinks(ns).keys()].sort()).toEqual(['lo', 'uplink0']);
      }
    } finally {
      cleanupHost(ns);
    }
  });
});
