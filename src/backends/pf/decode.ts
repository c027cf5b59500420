// Backend layer (pf): struct pf_rule image -> a plain object of the fields we set, with addresses
// and ports turned back into text. Used to print a dry-run plan readably, by the simulated kernel
// to validate what it is given, and by the golden tests to state expectations field by field.
import { StructView } from './abi/layout.js';
import { AF, PF, type PfRelease } from './abi/releases.js';

export interface DecodedAddrWrap {
  type: 'addrmask' | 'dyniftl' | 'table' | 'none' | `type${number}`;
  addr?: string;
  mask?: string;
  ifname?: string;
  tblname?: string;
  iflags: number;
}

export interface DecodedRuleAddr extends DecodedAddrWrap {
  neg: number;
  portOp: number;
  /** Host-order values of the network-order port fields. */
  port: [number, number];
}

export interface DecodedPool extends DecodedAddrWrap {
  opts: number;
  proxyPort: [number, number];
  portOp: number;
}

export interface DecodedRule {
  action: number;
  direction: number;
  quick: number;
  log: number;
  logif: number;
  ifname: string;
  ifnot: number;
  af: number;
  proto: number;
  src: DecodedRuleAddr;
  dst: DecodedRuleAddr;
  flags: number;
  flagset: number;
  type: number;
  code: number;
  keepState: number;
  ruleFlag: number;
  returnIcmp: number;
  returnIcmp6: number;
  scrubFlags: number;
  maxMss: number;
  minTtl: number;
  rtableid: number;
  onrdomain: number;
  nat: DecodedPool;
  rdr: DecodedPool;
  route: DecodedPool;
}

const TYPE_NAMES: Record<number, DecodedAddrWrap['type']> = {
  [PF.addr.addrmask]: 'addrmask',
  [PF.addr.dyniftl]: 'dyniftl',
  [PF.addr.table]: 'table',
  [PF.addr.none]: 'none',
};

function addrText(b: Buffer, af: number): string {
  if (af === AF.inet6) {
    const g: string[] = [];
    for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i).toString(16));
    return g.join(':');
  }
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

function decodeWrap(v: StructView, path: string, af: number): DecodedAddrWrap {
  const t = v.u8(`${path}.type`);
  const out: DecodedAddrWrap = { type: TYPE_NAMES[t] ?? `type${t}`, iflags: v.u8(`${path}.iflags`) };
  if (t === PF.addr.addrmask) {
    out.addr = addrText(v.bytes(`${path}.v.a.addr`), af);
    out.mask = addrText(v.bytes(`${path}.v.a.mask`), af);
  } else if (t === PF.addr.dyniftl) {
    out.ifname = v.string(`${path}.v.ifname`);
  } else if (t === PF.addr.table) {
    out.tblname = v.string(`${path}.v.tblname`);
  }
  return out;
}

function decodeRuleAddr(v: StructView, side: 'src' | 'dst', af: number): DecodedRuleAddr {
  return {
    ...decodeWrap(v, `${side}.addr`, af),
    neg: v.u8(`${side}.neg`),
    portOp: v.u8(`${side}.port_op`),
    port: [v.u16be(`${side}.port`, 0), v.u16be(`${side}.port`, 1)],
  };
}

function decodePool(v: StructView, which: 'nat' | 'rdr' | 'route', af: number): DecodedPool {
  return {
    ...decodeWrap(v, `${which}.addr`, af),
    opts: v.u8(`${which}.opts`),
    proxyPort: [v.u16(`${which}.proxy_port`, 0), v.u16(`${which}.proxy_port`, 1)],
    portOp: v.u8(`${which}.port_op`),
  };
}

/** Decodes a pf_rule image (pass `base` to read one embedded in a pfioc_rule). */
export function decodeRule(release: PfRelease, buf: Buffer, base = 0): DecodedRule {
  const v = new StructView(release.structs.pf_rule, buf, base);
  const af = v.u8('af');
  return {
    action: v.u8('action'),
    direction: v.u8('direction'),
    quick: v.u8('quick'),
    log: v.u8('log'),
    logif: v.u8('logif'),
    ifname: v.string('ifname'),
    ifnot: v.u8('ifnot'),
    af,
    proto: v.u8('proto'),
    src: decodeRuleAddr(v, 'src', af),
    dst: decodeRuleAddr(v, 'dst', af),
    flags: v.u8('flags'),
    flagset: v.u8('flagset'),
    type: v.u16('type'),
    code: v.u16('code'),
    keepState: v.u8('keep_state'),
    ruleFlag: v.u32('rule_flag'),
    returnIcmp: v.u16('return_icmp'),
    returnIcmp6: v.u16('return_icmp6'),
    scrubFlags: v.u16('scrub_flags'),
    maxMss: v.u16('max_mss'),
    minTtl: v.u8('min_ttl'),
    rtableid: v.i32('rtableid'),
    onrdomain: v.i32('onrdomain'),
    nat: decodePool(v, 'nat', af),
    rdr: decodePool(v, 'rdr', af),
    route: decodePool(v, 'route', af),
  };
}
