// Net layer: the typed rtnetlink wrapper — the only file that talks to the `netlink` package
// (pinned 0.3.0; its API is explicitly unstable). Layering follows node_netlink itself: socket
// (opened inside a namespace via ./tap.ts inNetns) -> framing (the package) -> this protocol layer,
// which hides the Buffer-typed attributes (vxlan port, IFLA_LINK, addresses), reads links,
// addresses and the bridge FDB into plain records, and turns every kernel NACK into a NetlinkError
// naming the object. It counts the requests it sends, which the benchmark reports per object.
import { AttrStream, FlagsGet, FlagsNew, createRtNetlink, ifla, rt, putU16be, putU32, type RtNetlinkSocket } from 'netlink';
import { NetlinkError } from './errors.js';
import { bufToIp, bufToMac, familyOf, ipToBuf, macToBuf, type Family } from './addr.js';
import { inNetns } from './tap.js';

const AF_INET = 2;
const AF_INET6 = 10;
const AF_BRIDGE = 7;
const RT_SCOPE_UNIVERSE = 0;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const IFF_UP = 0x1;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_GROUP = 27;
const NDA_DST = 1;
const NDA_LLADDR = 2;

/** Walks the netlink attributes (TLVs, 4-byte aligned) of `buf` from `off`. */
function forEachAttr(buf: Buffer, off: number, fn: (type: number, value: Buffer) => void): void {
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    fn(buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
}

function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

export interface VxlanState {
  vni: number;
  port: number;
  local: string | null;
  group: string | null;
  learning: boolean;
}

export interface LinkState {
  index: number;
  name: string;
  kind: string | null;
  up: boolean;
  mtu: number;
  group: number;
  master: number | null;
  mac: string | null;
  alias: string | null;
  vxlan?: VxlanState;
  vlan?: { id: number; link: number | null };
}

export interface AddrState {
  index: number;
  af: Family;
  addr: string;
  len: number;
  scope: number;
}

export interface FdbState {
  index: number;
  mac: string;
  dst: string | null;
}

export interface VxlanSpec {
  vni: number;
  port: number;
  local?: string;
  group?: string;
  learning: boolean;
  /** Underlay link index (IFLA_VXLAN_LINK). */
  link?: number;
}

export interface CreateLinkSpec {
  name: string;
  kind: 'bridge' | 'vxlan' | 'vlan' | 'veth';
  mtu?: number;
  master?: number;
  mac?: string;
  alias?: string;
  up?: boolean;
  vxlan?: VxlanSpec;
  vlan?: { id: number; link: number };
  veth?: { peerName: string; peerMac?: string; peerNetnsFd?: number; peerMtu?: number; peerAlias?: string };
}

export interface LinkChange {
  mtu?: number;
  master?: number;
  mac?: string;
  alias?: string;
  up?: boolean;
}

function toBuf(sd: unknown): Buffer {
  const s = new AttrStream();
  s.emit(sd as Parameters<AttrStream['emit']>[0]);
  return Buffer.concat(s.bufs);
}

function info(kind: string, data?: Buffer): Buffer {
  return toBuf(ifla.formatInfo(data ? { kind, data } : { kind }));
}

function vxlanData(v: VxlanSpec): Buffer {
  const d: ifla.Vxlan = { id: v.vni, port: putU16be(v.port), learning: v.learning ? 1 : 0 };
  if (v.link !== undefined) d.link = v.link;
  if (v.local) {
    if (familyOf(v.local) === 'inet6') d.local6 = ipToBuf(v.local);
    else d.local = ipToBuf(v.local);
  }
  if (v.group) {
    if (familyOf(v.group) === 'inet6') d.group6 = ipToBuf(v.group);
    else d.group = ipToBuf(v.group);
  }
  return toBuf(ifla.formatVxlan(d));
}

function linkAttrs(spec: LinkChange & { name?: string }): ifla.LinkAttrs {
  const a: ifla.LinkAttrs = {};
  if (spec.name !== undefined) a.ifname = spec.name;
  if (spec.mtu !== undefined) a.mtu = spec.mtu;
  if (spec.master !== undefined) a.master = spec.master;
  if (spec.mac !== undefined) a.address = macToBuf(spec.mac);
  if (spec.alias !== undefined) a.ifalias = spec.alias;
  return a;
}

export class Rtnl {
  #sock: RtNetlinkSocket;
  /** Requests sent on this socket (dumps count once). */
  messages = 0;
  readonly netns: string | undefined;

  private constructor(sock: RtNetlinkSocket, netns: string | undefined) {
    this.#sock = sock;
    this.netns = netns;
  }

  /** Opens a socket in `netns` (undefined = our own namespace). */
  static open(netns?: string): Rtnl {
    return new Rtnl(inNetns(netns, () => createRtNetlink()), netns);
  }

  close(): void {
    this.#sock.socket.close();
  }

  // netlink@0.3.0 groups a dump's parts by arrival: any other reply (an ACK of a concurrent
  // request) arriving mid-dump cuts it short ("Multipart message not terminated properly"). So a
  // dump is exclusive on its socket: it waits for in-flight requests to drain and holds new ones
  // back until it is done; ordinary requests run concurrently with each other.
  #active = 0;
  #exclusive: Promise<void> | null = null;
  #drained: (() => void)[] = [];

  async #dump<T>(object: string, fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    let release!: () => void;
    this.#exclusive = new Promise<void>((r) => (release = r));
    try {
      if (this.#active > 0) await new Promise<void>((r) => this.#drained.push(r));
      return await this.#call('list', object, fn);
    } finally {
      this.#exclusive = null;
      release();
    }
  }

  async #shared<T>(op: string, object: string, fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    this.#active++;
    try {
      return await this.#call(op, object, fn);
    } finally {
      if (--this.#active === 0) for (const r of this.#drained.splice(0)) r();
    }
  }

  async #call<T>(op: string, object: string, fn: () => Promise<T>): Promise<T> {
    this.messages++;
    try {
      return await fn();
    } catch (e) {
      throw NetlinkError.from(e, op, object);
    }
  }

  /** All links. The dump is requested and parsed here rather than through the package's typed
   *  getLinks(): that parser decodes every attribute of every link (stats, af-spec, ...) and was
   *  most of the cost of a no-op apply on a large host; we scan the TLVs for the eight we use. */
  async links(): Promise<LinkState[]> {
    const req = new AttrStream();
    // RTEXT_FILTER_SKIP_STATS: the statistics blocks are most of each link's bytes; never read.
    rt.formatLinkMessage({ kind: 'link', data: {}, attrs: { extMask: putU32(RTEXT_FILTER_SKIP_STATS) } }, req);
    const [msgs] = await this.#dump('links', () => this.#sock.socket.request(rt.MessageType.GETLINK, req.bufs, { flags: FlagsGet.DUMP }));
    const out: LinkState[] = [];
    for (const m of msgs) {
      if (m.type !== rt.MessageType.NEWLINK || m.data.length < 16) continue;
      const d = m.data;
      const l: LinkState = { index: d.readInt32LE(4), name: '', kind: null, up: (d.readUInt32LE(8) & IFF_UP) !== 0, mtu: 0, group: 0, master: null, mac: null, alias: null };
      let linkinfo: Buffer | null = null;
      let lower: number | null = null;
      forEachAttr(d, 16, (type, v) => {
        switch (type) {
          case IFLA_IFNAME:
            l.name = cstr(v);
            break;
          case IFLA_MTU:
            l.mtu = v.readUInt32LE(0);
            break;
          case IFLA_MASTER:
            l.master = v.readUInt32LE(0) || null;
            break;
          case IFLA_ADDRESS:
            if (v.length === 6) l.mac = bufToMac(v);
            break;
          case IFLA_IFALIAS:
            l.alias = cstr(v) || null;
            break;
          case IFLA_GROUP:
            l.group = v.readUInt32LE(0);
            break;
          case IFLA_LINK:
            lower = v.readUInt32LE(0);
            break;
          case IFLA_LINKINFO:
            linkinfo = v;
            break;
        }
      });
      if (linkinfo) {
        const li = ifla.parseInfo(linkinfo);
        l.kind = li.kind ?? null;
        if (li.kind === 'vxlan' && li.data) {
          const v = ifla.parseVxlan(li.data);
          const local = v.local ?? v.local6;
          const group = v.group ?? v.group6;
          l.vxlan = {
            vni: v.id ?? 0,
            port: v.port ? v.port.readUInt16BE(0) : 0,
            local: local && local.some((x) => x !== 0) ? bufToIp(local) : null,
            group: group && group.some((x) => x !== 0) ? bufToIp(group) : null,
            learning: Boolean(v.learning),
          };
        } else if (li.kind === 'vlan' && li.data) {
          l.vlan = { id: ifla.parseVlan(li.data).id ?? 0, link: lower };
        }
      }
      if (l.name) out.push(l);
    }
    return out;
  }

  async addresses(): Promise<AddrState[]> {
    const msgs = await this.#dump('addresses', () => this.#sock.getAddresses());
    const out: AddrState[] = [];
    for (const m of msgs) {
      const buf = m.attrs.local ?? m.attrs.address;
      if (!buf || m.data.index === undefined) continue;
      const af: Family = m.data.family === AF_INET6 ? 'inet6' : 'inet';
      out.push({ index: m.data.index, af, addr: bufToIp(buf), len: m.data.prefixlen ?? 0, scope: m.data.scope ?? 0 });
    }
    return out;
  }

  /** The bridge-family FDB entries that carry a remote destination (vxlan default-destination
   *  entries live here). Parsed by hand like links(): a host with thousands of ports has several
   *  FDB entries per port, and we only keep the few with NDA_DST. */
  async fdb(): Promise<FdbState[]> {
    const req = new AttrStream();
    rt.formatNeighborMessage({ kind: 'neighbor', data: { family: AF_BRIDGE }, attrs: {} }, req);
    const [msgs] = await this.#dump('fdb', () => this.#sock.socket.request(rt.MessageType.GETNEIGH, req.bufs, { flags: FlagsGet.DUMP }));
    const out: FdbState[] = [];
    for (const m of msgs) {
      if (m.type !== rt.MessageType.NEWNEIGH || m.data.length < 12 || m.data[0] !== AF_BRIDGE) continue;
      let mac: string | null = null;
      let dst: string | null = null;
      forEachAttr(m.data, 12, (type, v) => {
        if (type === NDA_LLADDR && v.length === 6) mac = bufToMac(v);
        else if (type === NDA_DST && (v.length === 4 || v.length === 16)) dst = bufToIp(v);
      });
      if (mac && dst) out.push({ index: m.data.readInt32LE(4), mac, dst });
    }
    return out;
  }

  async createLink(spec: CreateLinkSpec): Promise<void> {
    let li: Buffer;
    switch (spec.kind) {
      case 'bridge':
        li = info('bridge');
        break;
      case 'vxlan':
        if (!spec.vxlan) throw new TypeError('vxlan spec missing');
        li = info('vxlan', vxlanData(spec.vxlan));
        break;
      case 'vlan':
        if (!spec.vlan) throw new TypeError('vlan spec missing');
        li = info('vlan', toBuf(ifla.formatVlan({ id: spec.vlan.id })));
        break;
      case 'veth': {
        const p = spec.veth;
        if (!p) throw new TypeError('veth spec missing');
        const pa: ifla.LinkAttrs = { ifname: p.peerName };
        if (p.peerMac) pa.address = macToBuf(p.peerMac);
        if (p.peerMtu) pa.mtu = p.peerMtu;
        if (p.peerAlias) pa.ifalias = p.peerAlias;
        if (p.peerNetnsFd !== undefined) pa.netNsFd = p.peerNetnsFd;
        const peer = Buffer.concat([rt.formatLink({}), toBuf(ifla.formatLinkAttrs(pa))]);
        li = info('veth', toBuf(ifla.formatVethInfo({ peer })));
        break;
      }
    }
    const attrs = { ...linkAttrs({ ...spec }), ifname: spec.name, linkinfo: li };
    if (spec.kind === 'vlan' && spec.vlan) attrs.link = putU32(spec.vlan.link);
    const data: rt.Link = spec.up ? { flags: { up: true }, change: { up: true } } : {};
    await this.#shared(`create ${spec.kind}`, spec.name, () =>
      this.#sock.newLink(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.EXCL }),
    );
  }

  async setLink(index: number, name: string, change: LinkChange): Promise<void> {
    const data: rt.Link = { index };
    if (change.up !== undefined) {
      data.change = { up: true };
      data.flags = change.up ? { up: true } : {};
    }
    await this.#shared('configure', name, () => this.#sock.setLink(data, linkAttrs(change)));
  }

  async deleteLink(index: number, name: string): Promise<void> {
    await this.#shared('delete', name, () => this.#sock.delLink({ index }));
  }

  /** Puts a link into device group `group` (IFLA_GROUP). */
  async setGroup(index: number, name: string, group: number): Promise<void> {
    await this.#shared('set group of', name, () => this.#sock.setLink({ index }, { group }));
  }

  /** Deletes every link of device group `group` in one request: the kernel unregisters them as
   *  one batch (one RCU grace period instead of one per device, which dominates teardown). */
  async deleteGroup(group: number): Promise<void> {
    await this.#shared('delete', `link group ${group}`, () => this.#sock.delLink({}, { group }));
  }

  async addAddress(index: number, link: string, addr: string, len: number): Promise<void> {
    const af = familyOf(addr);
    const b = ipToBuf(addr);
    const attrs: rt.AddressAttrs = af === 'inet' ? { local: b, address: b } : { address: b };
    // nodad: a gateway on a bridge without carrier would otherwise stay tentative and unusable.
    if (af === 'inet6') attrs.flags = { nodad: true };
    await this.#shared('add address', `${addr}/${len} on ${link}`, () =>
      this.#sock.newAddress(
        { family: af === 'inet' ? AF_INET : AF_INET6, prefixlen: len, index, scope: RT_SCOPE_UNIVERSE, flags: af === 'inet6' ? { nodad: true } : {} },
        attrs,
        { flags: FlagsNew.CREATE | FlagsNew.EXCL },
      ),
    );
  }

  async delAddress(index: number, link: string, addr: string, len: number): Promise<void> {
    const af = familyOf(addr);
    const b = ipToBuf(addr);
    await this.#shared('delete address', `${addr}/${len} on ${link}`, () =>
      this.#sock.delAddress({ family: af === 'inet' ? AF_INET : AF_INET6, prefixlen: len, index }, af === 'inet' ? { local: b, address: b } : { address: b }),
    );
  }

  /** `bridge fdb append MAC dev LINK dst DST` (NTF_SELF: the vxlan device's own table). */
  async addFdb(index: number, link: string, mac: string, dst: string): Promise<void> {
    await this.#shared('add fdb entry', `${mac} dst ${dst} on ${link}`, () =>
      this.#sock.newNeighbor(
        { family: AF_BRIDGE, ifindex: index, state: { permanent: true }, flags: { self: true } },
        { lladdr: macToBuf(mac), dst: ipToBuf(dst) },
        { flags: FlagsNew.CREATE | FlagsNew.APPEND },
      ),
    );
  }

  async delFdb(index: number, link: string, mac: string, dst: string): Promise<void> {
    await this.#shared('delete fdb entry', `${mac} dst ${dst} on ${link}`, () =>
      this.#sock.delNeighbor({ family: AF_BRIDGE, ifindex: index, state: { permanent: true }, flags: { self: true } }, { lladdr: macToBuf(mac), dst: ipToBuf(dst) }),
    );
  }

  async addDefaultRoute(index: number, link: string, gateway: string): Promise<void> {
    const af = familyOf(gateway);
    await this.#shared('add default route', `via ${gateway} dev ${link}`, () =>
      this.#sock.newRoute(
        { family: af === 'inet' ? AF_INET : AF_INET6, dstLen: 0, table: 254, protocol: 'STATIC', scope: 'UNIVERSE', type: 'UNICAST' },
        { gateway: ipToBuf(gateway), oif: index },
        { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
      ),
    );
  }

  async defaultRoutes(): Promise<{ af: Family; gateway: string; oif: number }[]> {
    const out: { af: Family; gateway: string; oif: number }[] = [];
    for (const family of [AF_INET, AF_INET6]) {
      const msgs = await this.#dump('routes', () => this.#sock.getRoutes({ family }));
      for (const m of msgs) {
        if ((m.data.dstLen ?? 0) !== 0 || !m.attrs.gateway || m.attrs.table !== 254) continue;
        out.push({ af: family === AF_INET ? 'inet' : 'inet6', gateway: bufToIp(m.attrs.gateway), oif: m.attrs.oif ?? 0 });
      }
    }
    return out;
  }
}

