// Net layer: host-level guards of a run — the capability check (fail before changing anything),
// the per-host lock (an abstract unix socket, released by the kernel even on SIGKILL), the intent
// journal (names about to be created, so a run killed between creating a tap and marking it owned
// can still recognise it as ours), the record of the last applied options (so verify and down
// see the same sandbox/underlay choices), and kernel feature detection (802.1Q VLAN).
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { LockError, NetlinkError, UnsupportedError } from './errors.js';
import { ZtbError } from '../errors.js';
import { hostKey, type UnderlayOptions } from './topology.js';
import { createNetns, deleteNetns, NETNS_DIR } from './tap.js';
import { Rtnl } from './rtnl.js';

export const STATE_DIR = process.env.ZTB_STATE_DIR ?? '/run/ztb-enforce';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;

export class PermissionError extends ZtbError {
  constructor(message: string) {
    super('ERR_ZTB_PERMISSION', message);
  }
}

function effectiveCaps(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}

/** Throws before anything is changed when the process lacks what the run needs. */
export function requireCapabilities(what: string, opts: { netns?: string; sandbox?: boolean }): void {
  const caps = effectiveCaps();
  const missing: string[] = [];
  if (!(caps & (1n << BigInt(CAP_NET_ADMIN)))) missing.push('CAP_NET_ADMIN');
  if ((opts.netns || opts.sandbox) && !(caps & (1n << BigInt(CAP_SYS_ADMIN)))) missing.push('CAP_SYS_ADMIN (to enter network namespaces)');
  if (missing.length) {
    throw new PermissionError(`${what} needs ${missing.join(' and ')}; run it as root or grant the capability. Nothing was changed.`);
  }
  if (opts.netns && !existsSync(`${NETNS_DIR}/${opts.netns}`)) {
    throw new NetlinkError('open netns', opts.netns, 2, { name: 'ENOENT' });
  }
}

export interface HostLock {
  release(): Promise<void>;
}

/** Excludes concurrent runs against the same host (namespace). Abstract sockets vanish with the
 *  process, so a killed run never leaves a stale lock behind. */
export async function acquireLock(netns: string | undefined): Promise<HostLock> {
  const server: Server = createServer();
  const key = hostKey(netns);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: `\0ztb-enforce/${key}` }, resolve);
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new LockError(`another ztb-enforce run is changing ${netns ? `netns ${netns}` : 'the host namespace'}; try again when it has finished`);
    }
    throw e;
  }
  server.unref();
  return { release: () => new Promise<void>((r) => server.close(() => r())) };
}

function statePath(netns: string | undefined, suffix: string): string {
  return `${STATE_DIR}/${hostKey(netns)}.${suffix}`;
}

function writeDurable(path: string, text: string): void {
  mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Names a previous, interrupted run announced it was about to create. */
export function readIntent(netns: string | undefined): Set<string> {
  try {
    const j = JSON.parse(readFileSync(statePath(netns, 'intent.json'), 'utf8')) as { creates?: unknown };
    return new Set(Array.isArray(j.creates) ? j.creates.filter((x): x is string => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

export function writeIntent(netns: string | undefined, names: Iterable<string>): void {
  writeDurable(statePath(netns, 'intent.json'), JSON.stringify({ pid: process.pid, creates: [...names] }));
}

export function clearIntent(netns: string | undefined): void {
  rmSync(statePath(netns, 'intent.json'), { force: true });
}

export interface AppliedOptions {
  sandbox: boolean;
  underlay: UnderlayOptions;
}

export function readApplied(netns: string | undefined): AppliedOptions | null {
  try {
    const j = JSON.parse(readFileSync(statePath(netns, 'applied.json'), 'utf8')) as AppliedOptions;
    return { sandbox: Boolean(j.sandbox), underlay: j.underlay ?? {} };
  } catch {
    return null;
  }
}

export function writeApplied(netns: string | undefined, a: AppliedOptions): void {
  writeDurable(statePath(netns, 'applied.json'), JSON.stringify(a));
}

export function clearApplied(netns: string | undefined): void {
  rmSync(statePath(netns, 'applied.json'), { force: true });
}

let vlanSupport: boolean | undefined;

/** Whether the kernel can create 802.1Q links. Decided once: /sys/module/8021q, then the kernel
 *  config, then (if neither says) a real attempt in a throwaway namespace. */
export async function detectVlanSupport(): Promise<boolean> {
  if (vlanSupport !== undefined) return vlanSupport;
  if (existsSync('/sys/module/8021q')) return (vlanSupport = true);
  try {
    const cfg = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    const m = /^CONFIG_VLAN_8021Q=(y|m)$/m.test(cfg);
    if (!m) return (vlanSupport = false);
    if (/^CONFIG_VLAN_8021Q=y$/m.test(cfg)) return (vlanSupport = true);
  } catch {
    // No config exposed: fall through to the probe.
  }
  const ns = `ztb-vlanprobe-${process.pid}`;
  createNetns(ns);
  const nl = Rtnl.open(ns);
  try {
    await nl.createLink({ name: 'probe0', kind: 'bridge' });
    const idx = (await nl.links()).find((l) => l.name === 'probe0')!.index;
    await nl.createLink({ name: 'probe0.2', kind: 'vlan', vlan: { id: 2, link: idx } });
    vlanSupport = true;
  } catch (e) {
    if (e instanceof NetlinkError && (e.errnoName === 'ENOTSUP' || e.errnoName === 'EOPNOTSUPP')) vlanSupport = false;
    else throw e;
  } finally {
    nl.close();
    deleteNetns(ns);
  }
  return vlanSupport;
}

export function vlanUnsupportedError(tenants: string[]): UnsupportedError {
  return new UnsupportedError(
    `VLAN not supported by this kernel (CONFIG_VLAN_8021Q): tenant${tenants.length > 1 ? 's' : ''} ${tenants.map((t) => `'${t}'`).join(', ')} ask${tenants.length > 1 ? '' : 's'} for a VLAN; nothing was changed`,
  );
}
