// Backend layer (nftables): a throw-away network lab for proving enforcement with real packets — a
// "gateway" namespace (where table inet ztb is loaded) joined by veth pairs to endpoint namespaces
// (stand-ins for workloads, cluster hosts or the internet), with addresses, routes and forwarding
// set up. Used by the nft tests, the equivalence test and `probe` (its internet stand-in). Links are
// made with `ip` by argv inside namespaces we create and always delete; nothing touches the
// caller's namespace. Also the async wrappers around the packet agent (sniff/send/serve/connect).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NftCommandError } from './errors.js';
import { agentArgv } from './agent.js';

export function sh(argv: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  const res = spawnSync(argv[0]!, argv.slice(1), { input: opts.input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (!opts.allowFail && (res.error || res.status !== 0)) throw new NftCommandError(argv, res.status ?? null, res.stderr || String(res.error ?? ''));
  return res.stdout ?? '';
}

export function uniqueNs(prefix: string): string {
  return `${prefix}${randomBytes(3).toString('hex')}`;
}

export interface LabEndpointSpec {
  /** Short name (used in the namespace name). */
  name: string;
  /** Interface name on the gateway side (policies refer to it). */
  gwIf: string;
  /** IPv4 subnet, e.g. "10.1.0.0/24": gateway .1, endpoint .2. */
  v4: string;
  /** Optional IPv6 /64 prefix, e.g. "fd00:1::": gateway ::1, endpoint ::2. */
  v6?: string;
  /** Route everything else through this endpoint from the gateway (an "internet" side). */
  defaultRoute?: boolean;
}

export interface LabEndpoint extends LabEndpointSpec {
  ns: string;
  addr4: string;
  gw4: string;
  addr6?: string;
  gw6?: string;
}

export class Lab {
  readonly gw: string;
  readonly endpoints = new Map<string, LabEndpoint>();
  #namespaces: string[] = [];

  private constructor(gw: string) {
    this.gw = gw;
  }

  /** Creates the gateway namespace and the endpoints; deletes everything again on failure. */
  static create(prefix: string, specs: LabEndpointSpec[], opts: { gwNs?: string } = {}): Lab {
    const lab = new Lab(opts.gwNs ?? uniqueNs(prefix));
    try {
      if (!opts.gwNs) lab.#addNs(lab.gw);
      // Forwarding on, reverse-path filtering off (tests send from arbitrary sources), and the
      // defaults set before the links exist so every new interface inherits them.
      sh(['ip', 'netns', 'exec', lab.gw, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0',
        'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.default.send_redirects=0']);
      for (const s of specs) lab.addEndpoint(prefix, s);
    } catch (e) {
      lab.destroy();
      throw e;
    }
    return lab;
  }

  #addNs(ns: string): void {
    sh(['ip', 'netns', 'add', ns]);
    this.#namespaces.push(ns);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }

  addEndpoint(prefix: string, s: LabEndpointSpec): LabEndpoint {
    const ns = uniqueNs(`${prefix}${s.name.slice(0, 3)}`);
    this.#addNs(ns);
    const [net, len] = s.v4.split('/') as [string, string];
    const base = net.split('.').map(Number);
    const gw4 = [...base.slice(0, 3), base[3]! + 1].join('.');
    const addr4 = [...base.slice(0, 3), base[3]! + 2].join('.');
    sh(['ip', '-n', this.gw, 'link', 'add', s.gwIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0']);
    sh(['ip', '-n', this.gw, 'addr', 'add', `${gw4}/${len}`, 'dev', s.gwIf]);
    sh(['ip', '-n', ns, 'addr', 'add', `${addr4}/${len}`, 'dev', 'eth0']);
    const ep: LabEndpoint = { ...s, ns, addr4, gw4 };
    if (s.v6) {
      ep.gw6 = `${s.v6}1`;
      ep.addr6 = `${s.v6}2`;
      sh(['ip', '-n', this.gw, 'addr', 'add', `${ep.gw6}/64`, 'dev', s.gwIf, 'nodad']);
      sh(['ip', '-n', ns, 'addr', 'add', `${ep.addr6}/64`, 'dev', 'eth0', 'nodad']);
    }
    if (!s.v6) {
      // No IPv6 on this link: no router/neighbour solicitations to blur counters and sniffers.
      sh(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.eth0.disable_ipv6=1']);
      sh(['ip', 'netns', 'exec', this.gw, 'sysctl', '-q', '-w', `net.ipv6.conf.${s.gwIf.replace(/\./g, '/')}.disable_ipv6=1`]);
    }
    sh(['ip', '-n', this.gw, 'link', 'set', s.gwIf, 'up']);
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', gw4]);
    if (ep.gw6) sh(['ip', '-n', ns, '-6', 'route', 'add', 'default', 'via', ep.gw6]);
    if (s.defaultRoute) {
      sh(['ip', '-n', this.gw, 'route', 'add', 'default', 'via', addr4]);
      if (ep.addr6) sh(['ip', '-n', this.gw, '-6', 'route', 'add', 'default', 'via', ep.addr6]);
    }
    this.endpoints.set(s.name, ep);
    return ep;
  }

  /**
   * Pins the IPv6 neighbours of every link (gateway <-> endpoint) so no neighbour discovery is
   * needed: a random policy may well block ICMPv6, as pf would.
   */
  pinNeighbours(): void {
    const mac = (ns: string, dev: string) => (JSON.parse(sh(['ip', '-j', '-n', ns, 'link', 'show', dev])) as { address: string }[])[0]!.address;
    for (const ep of this.endpoints.values()) {
      if (!ep.addr6 || !ep.gw6) continue;
      sh(['ip', '-n', this.gw, '-6', 'neigh', 'replace', ep.addr6, 'lladdr', mac(ep.ns, 'eth0'), 'dev', ep.gwIf, 'nud', 'permanent']);
      sh(['ip', '-n', ep.ns, '-6', 'neigh', 'replace', ep.gw6, 'lladdr', mac(this.gw, ep.gwIf), 'dev', 'eth0', 'nud', 'permanent']);
    }
  }

  ep(name: string): LabEndpoint {
    const e = this.endpoints.get(name);
    if (!e) throw new Error(`no lab endpoint ${name}`);
    return e;
  }

  /** Deletes every namespace this lab created (their links go with them). */
  destroy(): void {
    for (const ns of this.#namespaces.reverse()) sh(['ip', 'netns', 'del', ns], { allowFail: true });
    this.#namespaces = [];
  }
}

export interface SniffedPacket {
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  flags: number;
  token: string;
  icmpType?: number;
  icmpCode?: number;
}

export interface CraftedPacket {
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  flags?: number;
  icmpType?: number;
  icmpCode?: number;
  /** 8 characters identifying the packet at the receiver. */
  token: string;
}

function waitReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('"ready"')) {
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready: ${err.trim()}`)));
    child.once('error', reject);
  });
}

export class Sniffer {
  #child: ChildProcess;
  #lines: string[] = [];
  #partial = '';
  private constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout!.on('data', (d: Buffer) => {
      const text = this.#partial + d.toString();
      const parts = text.split('\n');
      this.#partial = parts.pop() ?? '';
      this.#lines.push(...parts.filter((l) => l.trim() !== ''));
    });
  }

  static async start(netns: string | null, ifname: string): Promise<Sniffer> {
    const argv = agentArgv(netns, 'sniff', ifname);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const s = new Sniffer(child);
    await waitReady(child, `sniffer on ${ifname}`);
    return s;
  }

  /** Packets seen so far (the ready line excluded). */
  packets(): SniffedPacket[] {
    return this.#lines.map((l) => JSON.parse(l) as SniffedPacket & { ready?: boolean }).filter((p) => !p.ready);
  }

  clear(): void {
    this.#lines = [];
  }

  async stop(): Promise<SniffedPacket[]> {
    await new Promise((r) => setTimeout(r, 150));
    const done = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.stdin!.end();
    const t = setTimeout(() => this.#child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(t);
    return this.packets();
  }
}

function runAgent(netns: string | null, mode: string, input: string, env: Record<string, string> = {}): Promise<string> {
  const argv = agentArgv(netns, mode);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new NftCommandError(argv.slice(0, 5), code, err))));
    child.stdin.end(input);
  });
}

/** Sends crafted packets from a namespace (raw sockets: any source, flags and ports). */
export async function sendPackets(netns: string | null, pkts: CraftedPacket[], gapSeconds = 0.0005): Promise<void> {
  await runAgent(netns, 'send', JSON.stringify(pkts), { ZTB_AGENT_GAP: String(gapSeconds) });
}

export interface ConnectProbe {
  proto: 'tcp' | 'udp' | 'icmp';
  dst: string;
  port: number;
}

/** Real connections (TCP handshake + echo, UDP echo, ICMP echo) from a namespace. */
export async function connectProbes(netns: string | null, probes: ConnectProbe[], timeoutSeconds = 1, parallel = 1): Promise<{ ok: boolean; detail: string }[]> {
  const out = await runAgent(netns, 'connect', JSON.stringify(probes), { ZTB_AGENT_TIMEOUT: String(timeoutSeconds), ZTB_AGENT_PARALLEL: String(parallel) });
  return JSON.parse(out) as { ok: boolean; detail: string }[];
}

/** A TCP stream of echoed messages for `seconds` from a namespace (see the agent's `stream`). */
export function tcpStream(netns: string | null, dst: string, port: number, seconds: number): Promise<{ sent: number; echoed: number; error: string }> {
  const argv = agentArgv(netns, 'stream', dst, String(port), String(seconds));
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as { sent: number; echoed: number; error: string }) : reject(new NftCommandError(argv.slice(0, 5), code, err))));
  });
}

/** Starts a TCP/UDP echo server on `port`(s) in a namespace; resolves once it listens. */
export async function startServer(netns: string | null, port: number | number[]): Promise<{ stop(): Promise<void> }> {
  const argv = agentArgv(netns, 'serve', (Array.isArray(port) ? port : [port]).join(','));
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  await waitReady(child, `server on port ${port}`);
  return {
    stop: async () => {
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await done;
      clearTimeout(t);
    },
  };
}

/** A long-lived sender in one namespace: each batch costs no process start. */
export class Sender {
  #child: ChildProcess;
  #buf = '';
  #waiters: (() => void)[] = [];
  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async start(netns: string | null): Promise<Sender> {
    const argv = agentArgv(netns, 'sendloop');
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ZTB_AGENT_GAP: '0.0002' } });
    await waitReady(child, 'sender');
    const s = new Sender(child);
    child.stdout!.on('data', (d: Buffer) => {
      s.#buf += d.toString();
      let i;
      while ((i = s.#buf.indexOf('\n')) >= 0) {
        const line = s.#buf.slice(0, i);
        s.#buf = s.#buf.slice(i + 1);
        if (line.includes('"sent"')) s.#waiters.shift()?.();
      }
    });
    return s;
  }

  send(pkts: CraftedPacket[]): Promise<void> {
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#child.stdin!.write(JSON.stringify(pkts) + '\n');
    });
  }

  async stop(): Promise<void> {
    const done = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.stdin!.end();
    const t = setTimeout(() => this.#child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(t);
  }
}
