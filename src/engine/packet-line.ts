// Engine layer: the one-line packet grammar read by `ztb-enforce test` and used by tests and
// generators to write packets compactly:
//   <in|out> on <ifname> <tcp|udp|icmp|icmp6|NUM> <src>[:<sport>] > <dst>[:<dport>]
//     [flags <FSRPAUEW>] [len N] [vlan N] [vni N] [icmp-type N [code N]] [id N]
// IPv6 addresses go in brackets when a port follows ([2001:db8::1]:443). TCP and UDP need both
// ports; other protocols take none. TCP without `flags` is a SYN. Errors name the line and the
// column where the problem starts, so one bad line can be reported while the rest still run.
import { ZtbError } from '../errors.js';
import type { AddressFamily } from '../policy/ir.js';
import { TCP_FLAG_BITS } from '../policy/ir.js';
import type { EvalPacket } from './packet.js';
import { formatAddr, parseAddr } from './reference-addr.js';

export class PacketLineError extends ZtbError {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly detail: string;
  constructor(file: string, line: number, col: number, detail: string) {
    super('ERR_ZTB_PACKET_LINE', `${file}:${line}:${col}: ${detail}`);
    this.file = file;
    this.line = line;
    this.col = col;
    this.detail = detail;
  }
}

/** Longest accepted line: a packet line is short; anything longer is garbage, not a packet. */
export const MAX_PACKET_LINE = 512;

const PROTOS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmp6: 58 };
const PROTO_NAMES: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmp6' };
const FLAG_LETTERS = 'FSRPAUEW';

interface Tok {
  text: string;
  col: number;
}

function tokenize(line: string): Tok[] {
  const out: Tok[] = [];
  const re = /\S+/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push({ text: m[0], col: m.index + 1 });
  return out;
}

/** Is this line empty or a comment (skipped, not an error)? */
export function isBlankPacketLine(line: string): boolean {
  const t = line.trim();
  return t === '' || t.startsWith('#');
}

interface Endpoint {
  af: AddressFamily;
  addr: string;
  port: number | null;
  portCol: number;
}

export function parsePacketLine(line: string, lineNo = 1, file = '<stdin>'): EvalPacket {
  const fail = (col: number, msg: string): never => {
    throw new PacketLineError(file, lineNo, col, msg);
  };
  if (line.length > MAX_PACKET_LINE) fail(MAX_PACKET_LINE + 1, `line longer than ${MAX_PACKET_LINE} characters`);
  // A trailing comment is allowed.
  const hash = line.indexOf('#');
  const body = hash >= 0 ? line.slice(0, hash) : line;
  const toks = tokenize(body);
  let i = 0;
  const endCol = body.trimEnd().length + 1;
  const next = (what: string): Tok => {
    const t = toks[i++];
    if (!t) return fail(endCol, `expected ${what}, got end of line`);
    return t;
  };
  const number = (what: string, max: number): number => {
    const t = next(what);
    if (!/^[0-9]{1,10}$/.test(t.text) || Number(t.text) > max) fail(t.col, `${what} must be an integer 0-${max}, got '${t.text}'`);
    return Number(t.text);
  };

  const dirTok = next("'in' or 'out'");
  if (dirTok.text !== 'in' && dirTok.text !== 'out') fail(dirTok.col, `expected 'in' or 'out', got '${dirTok.text}'`);
  const dir = dirTok.text as 'in' | 'out';
  const onTok = next("'on'");
  if (onTok.text !== 'on') fail(onTok.col, `expected 'on', got '${onTok.text}'`);
  const ifTok = next('an interface name');
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(ifTok.text)) fail(ifTok.col, `bad interface name '${ifTok.text}' (1-15 of A-Z a-z 0-9 _ . : -)`);
  const protoTok = next('a protocol (tcp, udp, icmp, icmp6 or a number)');
  let proto: number;
  if (protoTok.text in PROTOS) proto = PROTOS[protoTok.text]!;
  else if (/^[0-9]{1,3}$/.test(protoTok.text) && Number(protoTok.text) <= 255) proto = Number(protoTok.text);
  else return fail(protoTok.col, `unknown protocol '${protoTok.text}' (tcp, udp, icmp, icmp6 or 0-255)`);
  const hasPorts = proto === 6 || proto === 17;

  const endpoint = (what: string): Endpoint => {
    const t = next(`a ${what} address`);
    let addrText: string;
    let portText: string | null = null;
    let portCol = t.col + t.text.length;
    if (t.text.startsWith('[')) {
      const close = t.text.indexOf(']');
      if (close < 0) fail(t.col, `missing ']' after IPv6 address`);
      addrText = t.text.slice(1, close);
      const rest = t.text.slice(close + 1);
      if (rest !== '') {
        if (!rest.startsWith(':')) fail(t.col + close + 1, `expected ':PORT' after ']'`);
        portText = rest.slice(1);
        portCol = t.col + close + 2;
      }
    } else {
      const colons = t.text.split(':').length - 1;
      if (colons === 1) {
        const c = t.text.indexOf(':');
        addrText = t.text.slice(0, c);
        portText = t.text.slice(c + 1);
        portCol = t.col + c + 1;
      } else {
        // Zero colons: IPv4 without port; several: a bare IPv6 address without port.
        addrText = t.text;
      }
    }
    const a = parseAddr(addrText);
    if (!a) fail(t.col, `bad ${what} address '${addrText}'`);
    let port: number | null = null;
    if (portText !== null) {
      if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) fail(portCol, `bad ${what} port '${portText}' (0-65535)`);
      port = Number(portText);
    }
    if (hasPorts && port === null) fail(portCol, `${PROTO_NAMES[proto]} needs a ${what} port (ADDR:PORT)`);
    if (!hasPorts && port !== null) fail(portCol, `protocol ${protoTok.text} takes no ports`);
    return { af: a!.af, addr: formatAddr(a!), port, portCol };
  };

  const src = endpoint('source');
  const gt = next("'>'");
  if (gt.text !== '>') fail(gt.col, `expected '>', got '${gt.text}'`);
  const dstTokCol = toks[i]?.col ?? endCol;
  const dst = endpoint('destination');
  if (src.af !== dst.af) fail(dstTokCol, `source is ${src.af} but destination is ${dst.af}`);
  const af = src.af;
  if (proto === 1 && af !== 'inet') fail(protoTok.col, `icmp needs IPv4 addresses (use icmp6)`);
  if (proto === 58 && af !== 'inet6') fail(protoTok.col, `icmp6 needs IPv6 addresses (use icmp)`);

  const pkt: EvalPacket = {
    dir,
    ifname: ifTok.text,
    af,
    proto,
    src: src.addr,
    dst: dst.addr,
    sport: src.port ?? 0,
    dport: dst.port ?? 0,
    tcpFlags: proto === 6 ? TCP_FLAG_BITS.S : 0,
  };
  const seen = new Set<string>();
  while (i < toks.length) {
    const kw = toks[i++]!;
    if (seen.has(kw.text)) fail(kw.col, `'${kw.text}' given twice`);
    seen.add(kw.text);
    switch (kw.text) {
      case 'flags': {
        if (proto !== 6) fail(kw.col, `flags only with tcp`);
        const f = next('TCP flags (letters of FSRPAUEW, or -)');
        let bits = 0;
        // '-' writes "no flags at all" (which normalisation drops), for completeness.
        for (let k = 0; k < f.text.length && f.text !== '-'; k++) {
          const idx = FLAG_LETTERS.indexOf(f.text[k]!);
          if (idx < 0) fail(f.col + k, `unknown TCP flag '${f.text[k]}' (use FSRPAUEW)`);
          bits |= TCP_FLAG_BITS[f.text[k] as keyof typeof TCP_FLAG_BITS];
        }
        pkt.tcpFlags = bits;
        break;
      }
      case 'len':
        pkt.length = number('a length', 65535);
        break;
      case 'vlan':
        pkt.vlan = number('a VLAN id', 4095);
        break;
      case 'vni':
        pkt.vni = number('a VNI', 0xffffff);
        break;
      case 'icmp-type':
        if (proto !== 1 && proto !== 58) fail(kw.col, `icmp-type only with icmp or icmp6`);
        pkt.icmpType = number('an ICMP type', 255);
        if (toks[i]?.text === 'code') {
          i++;
          pkt.icmpCode = number('an ICMP code', 255);
        }
        break;
      case 'id':
        // The ICMP query id is what pf keys ICMP states on; the evaluator takes it as sport.
        if (proto !== 1 && proto !== 58) fail(kw.col, `id only with icmp or icmp6`);
        pkt.sport = number('an ICMP id', 65535);
        break;
      default:
        fail(kw.col, `unexpected '${kw.text}' (expected flags, len, vlan, vni, icmp-type or id)`);
    }
  }
  return pkt;
}

function flagText(bits: number): string {
  let s = '';
  for (const l of FLAG_LETTERS) if (bits & TCP_FLAG_BITS[l as keyof typeof TCP_FLAG_BITS]) s += l;
  return s === '' ? '-' : s;
}

/** The inverse of parsePacketLine: parsePacketLine(formatPacketLine(p)) deep-equals p for every
 *  packet the grammar can express. */
export function formatPacketLine(p: EvalPacket): string {
  const host = (a: string, port: number | null): string => {
    const h = p.af === 'inet6' && port !== null ? `[${a}]` : a;
    return port === null ? h : `${h}:${port}`;
  };
  const ports = p.proto === 6 || p.proto === 17;
  const parts = [
    p.dir,
    'on',
    p.ifname,
    PROTO_NAMES[p.proto] ?? String(p.proto),
    host(p.src, ports ? p.sport : null),
    '>',
    host(p.dst, ports ? p.dport : null),
  ];
  if (p.proto === 6 && p.tcpFlags !== TCP_FLAG_BITS.S) parts.push('flags', flagText(p.tcpFlags));
  if (p.length !== undefined) parts.push('len', String(p.length));
  if (p.vlan !== undefined) parts.push('vlan', String(p.vlan));
  if (p.vni !== undefined) parts.push('vni', String(p.vni));
  if (p.icmpType !== undefined) {
    parts.push('icmp-type', String(p.icmpType));
    if (p.icmpCode !== undefined) parts.push('code', String(p.icmpCode));
  }
  if ((p.proto === 1 || p.proto === 58) && p.sport !== 0) parts.push('id', String(p.sport));
  return parts.join(' ');
}
