// Net layer tests with real traffic: sandbox workloads (a namespace per workload, veth to the tenant
// bridge) on one host, and two "gateway" namespaces joined by a veth underlay (198.18.0.1/30 and
// 198.18.0.2/30, benchmark space, only inside our namespaces) running the same tenants with
// per-site VXLAN peers. Tenant A's workloads reach each other across sites (ping and TCP over the
// overlay); tenant B's workloads reach neither of A's — different bridges and VNIs, isolation by
// construction.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { applyTenants, teardownTenants, verifyTenants } from '../../src/net/reconcile.js';
import { execInNetns, spawnInNetns, workloadNetns } from '../../src/net/sandbox.js';
import type { Tenant } from '../../src/policy/ir.js';
import { skipPrivileged } from '../helpers/privileged.js';
import { cleanupHost, ip, ipAddrs, ipLinks, makeNetns, sandboxNamespaces, tenant } from './fixtures.js';

const skip = skipPrivileged();

async function ping(ns: string, dst: string): Promise<boolean> {
  const r = await execInNetns(ns, 'ping', ['-c', '1', '-W', '1', dst]);
  return r.code === 0;
}

/** Retries a successful-path ping: ARP and the bridge's forwarding state can take a moment. */
async function pingEventually(ns: string, dst: string): Promise<boolean> {
  for (let i = 0; i < 5; i++) if (await ping(ns, dst)) return true;
  return false;
}

const TCP_SERVER = "require('net').createServer((s)=>{s.end('hello from '+process.argv[1]+'\\n')}).listen(7000,'0.0.0.0',()=>console.log('listening'))";
const TCP_CLIENT =
  "const s=require('net').connect(7000,process.argv[1]);let d='';s.on('data',(x)=>d+=x);s.on('end',()=>{process.stdout.write(d);process.exit(0)});s.on('error',(e)=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(2),3000)";

async function withTcpServer<T>(ns: string, label: string, fn: () => Promise<T>): Promise<T> {
  const srv = spawnInNetns(ns, process.execPath, ['-e', TCP_SERVER, label]);
  try {
    await new Promise<void>((resolve, reject) => {
      srv.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
      srv.on('exit', (c) => reject(new Error(`server exited ${c}`)));
      setTimeout(() => reject(new Error('server did not start')), 10_000);
    });
    return await fn();
  } finally {
    srv.kill('SIGKILL');
  }
}

function tcp(ns: string, dst: string): Promise<{ code: number; stdout: string }> {
  return execInNetns(ns, process.execPath, ['-e', TCP_CLIENT, dst], { timeoutMs: 10_000 });
}

describe('sandbox on one host', () => {
  let host = '';
  beforeAll(() => {
    if (!skip) host = makeNetns('ztns');
  });
  afterAll(() => {
    if (host) cleanupHost(host);
  });

  test('workloads get namespaces with address, MAC, MTU and default route; a tenant is an island', async () => {
    if (skip) return;
    const tenants = [tenant(7, { v6: true }), tenant(8, { workloads: 1 })];
    // Regression: a run killed between creating the namespace file and mounting the namespace
    // on it leaves a plain file; apply must recreate it, not fail with EINVAL from setns.
    writeFileSync(`/run/netns/${workloadNetns(tenants, 't7', 'w0', { netns: host })}`, '');
    const r = await applyTenants(tenants, { netns: host, sandbox: true });
    expect(r.applied).toBeGreaterThan(0);
    const w0 = workloadNetns(tenants, 't7', 'w0', { netns: host });
    const w1 = workloadNetns(tenants, 't7', 'w1', { netns: host });
    const b0 = workloadNetns(tenants, 't8', 'w0', { netns: host });
    expect(sandboxNamespaces(host).sort()).toEqual([w0, w1, b0].sort());
    const eth = ipLinks(w0).get('eth0')!;
    expect(eth.address).toBe('02:00:00:07:00:0a');
    expect(eth.flags).toContain('UP');
    expect(ipAddrs(w0, 'eth0')).toEqual(['10.100.7.10/24', 'fd00:7::a/64']);
    expect(ip(w0, 'route', 'show', 'default')).toMatch(/default via 10\.100\.7\.1 dev eth0/);
    const hostEnd = ipLinks(host).get('tn7w0')!;
    expect(hostEnd.linkinfo?.info_kind).toBe('veth');
    expect(hostEnd.master).toBe('ztbr7');
    expect(hostEnd.ifalias).toBe('ztb:t7:veth');

    expect(await pingEventually(w0, '10.100.7.11')).toBe(true);
    expect(await pingEventually(w0, '10.100.7.1')).toBe(true);
    expect(await pingEventually(w0, 'fd00:7::b')).toBe(true);
    expect(await ping(b0, '10.100.7.10')).toBe(false);
    expect(await ping(w0, '10.100.8.10')).toBe(false);

    // Drift inside a workload namespace is seen by deep verify only, and repaired by apply.
    ip(w1, 'addr', 'flush', 'dev', 'eth0');
    expect((await verifyTenants(tenants, { netns: host })).ok).toBe(true);
    const deep = await verifyTenants(tenants, { netns: host, deep: true });
    expect(deep.drift.map((d) => d.text)).toContainEqual(expect.stringMatching(/: add 10\.100\.7\.11\/24 to eth0$/));
    await applyTenants(tenants, { netns: host, sandbox: true });
    expect((await verifyTenants(tenants, { netns: host, deep: true })).drift).toEqual([]);
    expect((await applyTenants(tenants, { netns: host, sandbox: true })).noop).toBe(true);

    await teardownTenants(tenants, { netns: host });
    expect(sandboxNamespaces(host)).toEqual([]);
    expect([...ipLinks(host).keys()]).toEqual(['lo']);
  });
});

describe('two sites over VXLAN', () => {
  let gw1 = '';
  let gw2 = '';
  beforeAll(() => {
    if (skip) return;
    gw1 = makeNetns('ztn1');
    gw2 = makeNetns('ztn2');
    // The underlay: one veth between the two gateway namespaces.
    ip(gw1, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul0', 'netns', gw2);
    ip(gw1, 'addr', 'add', '198.18.0.1/30', 'dev', 'ul0');
    ip(gw2, 'addr', 'add', '198.18.0.2/30', 'dev', 'ul0');
    ip(gw1, 'link', 'set', 'ul0', 'up');
    ip(gw2, 'link', 'set', 'ul0', 'up');
  });
  afterAll(() => {
    if (gw1) cleanupHost(gw1);
    if (gw2) cleanupHost(gw2);
  });

  /** The same tenants (ids, net_ids, VNIs, subnets, gateways) at both sites; each site runs its
   *  own workloads (A: .10 at site 1, .20 at site 2). */
  function site(n: 1 | 2): Tenant[] {
    const a = tenant(7, { vxlan: { vni: 1007 }, workloads: 1 });
    const b = tenant(8, { vxlan: { vni: 1008 }, workloads: 1 });
    for (const t of [a, b]) {
      const w = t.workloads[0]!;
      const host = n === 1 ? 10 : 20;
      w.name = `s${n}`;
      w.ips = [w.ips[0]!.replace(/\.10$/, `.${host}`)];
      w.mac = w.mac!.replace(/0a$/, host.toString(16).padStart(2, '0'));
      w.tap = `tn${t.netId}s${n}`;
    }
    return [a, b];
  }

  test('tenant A reaches tenant A across sites (ping and TCP); tenant B reaches neither A workload', async () => {
    if (skip) return;
    const s1 = site(1);
    const s2 = site(2);
    await applyTenants(s1, { netns: gw1, sandbox: true, underlay: { local: '198.18.0.1', remotes: ['198.18.0.2'] } });
    await applyTenants(s2, { netns: gw2, sandbox: true, underlay: { local: '198.18.0.2', remotes: ['198.18.0.1'] } });
    const vx = ipLinks(gw1).get('ztvx7')!;
    expect(vx.linkinfo?.info_data).toMatchObject({ id: 1007, port: 4789, local: '198.18.0.1' });
    expect(vx.mtu).toBe(1450);
    const fdb = JSON.parse(execFileSync('bridge', ['-n', gw1, '-j', 'fdb', 'show', 'dev', 'ztvx7']).toString()) as { mac: string; dst?: string }[];
    expect(fdb.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst)).toEqual(['198.18.0.2']);

    const a1 = workloadNetns(s1, 't7', 's1', { netns: gw1 });
    const a2 = workloadNetns(s2, 't7', 's2', { netns: gw2 });
    const b1 = workloadNetns(s1, 't8', 's1', { netns: gw1 });
    const b2 = workloadNetns(s2, 't8', 's2', { netns: gw2 });
    expect(await pingEventually(a1, '10.100.7.20')).toBe(true);
    expect(await pingEventually(a2, '10.100.7.10')).toBe(true);
    expect(await pingEventually(b1, '10.100.8.20')).toBe(true);
    await withTcpServer(a2, 'a2', async () => {
      const ok = await tcp(a1, '10.100.7.20');
      expect(ok.code).toBe(0);
      expect(ok.stdout).toBe('hello from a2\n');
      const denied = await tcp(b1, '10.100.7.20');
      expect(denied.code).not.toBe(0);
    });
    expect(await ping(b1, '10.100.7.20')).toBe(false);
    expect(await ping(b2, '10.100.7.10')).toBe(false);
    expect(await ping(b2, '10.100.7.20')).toBe(false);

    // verify at each site uses that site's applied underlay and finds nothing.
    expect((await verifyTenants(s1, { netns: gw1, deep: true })).drift).toEqual([]);
    expect((await verifyTenants(s2, { netns: gw2, deep: true })).drift).toEqual([]);
    await teardownTenants(s1, { netns: gw1 });
    await teardownTenants(s2, { netns: gw2 });
    expect([...ipLinks(gw1).keys()].sort()).toEqual(['lo', 'ul0']);
    expect(sandboxNamespaces(gw1)).toEqual([]);
    expect(sandboxNamespaces(gw2)).toEqual([]);
  });
});
