// Net layer: tap devices and network-namespace switching, through the native addon
// (native/io/tap_linux.cc). rtnetlink refuses to create taps (kind "tun" -> ENOTSUP), so taps are
// made with /dev/net/tun ioctls (TUNSETIFF IFF_TAP|IFF_NO_PI, TUNSETOWNER/GROUP, TUNSETPERSIST).
// `inNetns` runs a synchronous function with the calling thread inside a named namespace: a netlink
// socket or tap opened there stays there, which is how the whole orchestrator works "inside"
// --netns without spawning `ip netns exec` children.
import { loadNative } from '../engine/native.js';
import { NetlinkError } from './errors.js';

declare module '../engine/native.js' {
  interface NativeAddon {
    tapCreate(name: string, opts?: { owner?: number; group?: number }): string;
    netnsCall<T>(path: string, fn: () => T): T;
    netnsCreate(dir: string, name: string): void;
    netnsDelete(dir: string, name: string): void;
  }
}

/** Where named namespaces live (iproute2's NETNS_RUN_DIR). */
export const NETNS_DIR = '/run/netns';

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Creates a persistent tap in the current (or given) namespace. */
export function createTap(name: string, opts: { owner?: number; group?: number; netns?: string } = {}): string {
  const native = loadNative();
  const make = (): string => native.tapCreate(name, { owner: opts.owner, group: opts.group });
  try {
    return opts.netns ? native.netnsCall(netnsPath(opts.netns), make) : make();
  } catch (e) {
    throw NetlinkError.from(e, 'create tap', name);
  }
}

/** Runs `fn` synchronously with this thread inside namespace `netns` (undefined = stay here). */
export function inNetns<T>(netns: string | undefined, fn: () => T): T {
  if (!netns) return fn();
  const native = loadNative();
  try {
    return native.netnsCall(netnsPath(netns), fn);
  } catch (e) {
    throw NetlinkError.from(e, 'enter netns', netns);
  }
}

export function createNetns(name: string): void {
  try {
    loadNative().netnsCreate(NETNS_DIR, name);
  } catch (e) {
    throw NetlinkError.from(e, 'create netns', name);
  }
}

/** Removes a named namespace; a missing one is not an error. */
export function deleteNetns(name: string): boolean {
  try {
    loadNative().netnsDelete(NETNS_DIR, name);
    return true;
  } catch (e) {
    if ((e as { errno?: number }).errno === 2) return false;
    throw NetlinkError.from(e, 'delete netns', name);
  }
}
