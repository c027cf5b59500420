// Net layer tests: apply builds exactly the desired objects (cross-checked with `ip -j`), a second
// apply is a no-op, teardown removes exactly what is owned.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { applyTenants, teardownTenants, verifyTenants } from '../../src/net/reconcile.js';
import { skipPrivileged } from '../helpers/privileged.js';
import { execFileSync } from 'node:child_process';
import { cleanupHost, ip, ipAddrs, ipLinks, makeNetns, tenant } from './fixtures.js';

const skip = skipPrivileged();

describe('apply / idempotence / teardown', () => {
  let ns = '';
  beforeAll(() => {
    if (!skip) ns = makeNetns('ztnr');
  });
  afterAll(() => {
    if (ns) cleanupHost(ns);
  });

  test('creates bridges, vxlan, taps with the right attributes; second apply is a no-op; down removes them', async () => {
    if (skip) return;
    const tenants = [
      tenant(7, { vxlan: { vni: 1007, local: '198.18.0.1', remotes: ['198.18.0.2', '198.18.0.3'] }, v6: true }),
      tenant(8, { workloads: 1 }),
    ];
    const r1 = await applyTenants(tenants, { netns: ns });
    expect(r1.applied).toBeGreaterThan(0);
    expect(r1.noop).toBe(false);
    const links = ipLinks(ns);
    const br = links.get('ztbr7')!;
    expect(br.linkinfo?.info_kind).toBe('bridge');
    expect(br.flags).toContain('UP');
    expect(br.mtu).toBe(1450);
    expect(br.ifalias).toBe('ztb:t7:bridge');
    expect(ipAddrs(ns, 'ztbr7')).toEqual(['10.100.7.1/24', 'fd00:7::1/64']);
    const vx = links.get('ztvx7')!;
    expect(vx.linkinfo?.info_kind).toBe('vxlan');
    expect(vx.linkinfo?.info_data).toMatchObject({ id: 1007, port: 4789, local: '198.18.0.1', learning: false });
    expect(vx.master).toBe('ztbr7');
    expect(vx.mtu).toBe(1450);
    expect(vx.ifalias).toBe('ztb:t7:vxlan');
    const fdb = execFileSync('bridge', ['-n', ns, '-j', 'fdb', 'show', 'dev', 'ztvx7']).toString();
    const dsts = (JSON.parse(fdb) as { mac: string; dst?: string }[]).filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst).sort();
    expect(dsts).toEqual(['198.18.0.2', '198.18.0.3']);
    for (const w of tenants[0]!.workloads) {
      const t = links.get(w.tap)!;
      expect(t.linkinfo?.info_kind).toBe('tun');
      expect(t.master).toBe('ztbr7');
      expect(t.address).toBe(w.mac);
      expect(t.mtu).toBe(1450);
      expect(t.flags).toContain('UP');
      expect(t.ifalias).toBe('ztb:t7:tap');
    }
    // Tenant 8 has no VXLAN: full underlay MTU, no vxlan device.
    expect(links.get('ztbr8')!.mtu).toBe(1500);
    expect(links.has('ztvx8')).toBe(false);
    expect(links.get('tn8w0')!.master).toBe('ztbr8');

    const r2 = await applyTenants(tenants, { netns: ns });
    expect(r2.changes).toEqual([]);
    expect(r2.applied).toBe(0);
    expect(r2.noop).toBe(true);
    const v = await verifyTenants(tenants, { netns: ns, deep: true });
    expect(v.drift).toEqual([]);
    expect(v.ok).toBe(true);

    // Removing a remote from the policy removes exactly that FDB entry.
    const fewer = [tenant(7, { vxlan: { vni: 1007, local: '198.18.0.1', remotes: ['198.18.0.2'] }, v6: true }), tenants[1]!];
    const r3 = await applyTenants(fewer, { netns: ns });
    expect(r3.changes.map((c) => c.op)).toEqual(['del-fdb']);

    // A multicast tenant: a group instead of FDB peers; learning as configured.
    const mc = [...fewer, tenant(9, { workloads: 1, vxlan: { vni: 1009, local: '198.18.0.1', group: '239.1.1.9', learning: true } })];
    await expect(applyTenants(mc, { netns: ns })).rejects.toThrow(/VXLAN group 239\.1\.1\.9 needs an underlay device/);
    ip(ns, 'link', 'add', 'ul0', 'type', 'bridge');
    ip(ns, 'link', 'set', 'ul0', 'up');
    await applyTenants(mc, { netns: ns, underlay: { device: 'ul0' } });
    expect(ipLinks(ns).get('ztvx9')!.linkinfo?.info_data).toMatchObject({ id: 1009, group: '239.1.1.9', link: 'ul0', learning: true });
    expect((await applyTenants(mc, { netns: ns, underlay: { device: 'ul0' } })).noop).toBe(true);

    const d = await teardownTenants(tenants, { netns: ns });
    expect(d.removed.sort()).toEqual(['tn7w0', 'tn7w1', 'tn8w0', 'tn9w0', 'ztbr7', 'ztbr8', 'ztbr9', 'ztvx7', 'ztvx9'].sort());
    const left = [...ipLinks(ns).keys()];
    expect(left).toEqual(['lo', 'ul0']);
  });

  test('an IPv6 underlay: local6, FDB peers over IPv6, MTU reduced by 70', async () => {
    if (skip) return;
    const tenants = [tenant(5, { workloads: 1, vxlan: { vni: 1005, local: 'fd00:198::1', remotes: ['fd00:198::2'] } })];
    await applyTenants(tenants, { netns: ns });
    const vx = ipLinks(ns).get('ztvx5')!;
    expect(vx.linkinfo?.info_data).toMatchObject({ id: 1005, port: 4789, local6: 'fd00:198::1' });
    expect(vx.mtu).toBe(1430);
    expect(ipLinks(ns).get('tn5w0')!.mtu).toBe(1430);
    const fdb = JSON.parse(execFileSync('bridge', ['-n', ns, '-j', 'fdb', 'show', 'dev', 'ztvx5']).toString()) as { mac: string; dst?: string }[];
    expect(fdb.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst)).toEqual(['fd00:198::2']);
    expect((await applyTenants(tenants, { netns: ns })).noop).toBe(true);
    await teardownTenants(tenants, { netns: ns });
  });
});
