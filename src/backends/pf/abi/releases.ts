// Backend layer (pf ABI): the per-release layout table. For each supported OpenBSD pfvar.h revision
// it lists the userland-visible structs the loader passes through /dev/pf (field order and C types
// as pfvar.h declares them, for amd64), the ioctl request numbers derived from them with
// _IOWR('D', n, sizeof(arg)), and the constants the encoders write. The request number embeds the
// argument size and struct pf_rule changes between releases, so a binary built for one release must
// refuse another: getRelease() throws a BackendError for anything not in this table.
//
// Adding a release: copy the closest entry, edit the struct field lists to match that pfvar.h, give
// it an id and an honest label, then extend the golden tests (sizes, key offsets, DIOCADDRULE).
import { BackendError } from '../errors.js';
import {
  array,
  chars,
  i32,
  i64,
  layoutOf,
  ptr,
  struct,
  u16,
  u32,
  u64,
  u8,
  union,
  type CType,
  type StructLayout,
} from './layout.js';

export const IFNAMSIZ = 16;
export const PATH_MAX = 1024;
export const PF_TABLE_NAME_SIZE = 32;
export const PF_ANCHOR_NAME_SIZE = 64;
export const PF_RULE_LABEL_SIZE = 64;
export const PF_QNAME_SIZE = 64;
export const PF_TAG_NAME_SIZE = 64;
export const PF_SKIP_COUNT = 9;
export const PFTM_MAX = 20;
export const RTLABEL_LEN = 32;
export const PF_MD5_DIGEST_LENGTH = 16;

/** OpenBSD's values, never the host's: Linux has AF_INET6 = 10. */
export const AF = { unspec: 0, inet: 2, inet6: 24 } as const;

/** Constants shared by every release in the table (pfvar.h enums and flag bits). */
export const PF = {
  dir: { inout: 0, in: 1, out: 2 },
  action: { pass: 0, drop: 1, match: 12 },
  trans: { ruleset: 0, table: 1 },
  op: { none: 0, irg: 1, eq: 2, ne: 3, lt: 4, le: 5, gt: 6, ge: 7, xrg: 8, rrg: 9 },
  pool: { none: 0, bitmask: 1, random: 2, srchash: 3, roundrobin: 4 },
  addr: { addrmask: 0, noroute: 1, dyniftl: 2, table: 3, rtlabel: 4, urpffailed: 5, range: 6, none: 7 },
  aflag: { network: 0x01, broadcast: 0x02, peer: 0x04, noalias: 0x08 },
  log: { log: 0x01, all: 0x02, user: 0x04, force: 0x08, matches: 0x10 },
  state: { none: 0, normal: 1, modulate: 2, synproxy: 3 },
  ruleFlag: { drop: 0, returnRst: 0x01, returnIcmp: 0x04, return: 0x08, ifBound: 0x00010000 },
  scrub: { nodf: 0x0020, randomId: 0x0080, scrubTcp: 0x0100 },
  tflag: { persist: 0x01, const: 0x02 },
  rflag: { dummy: 0x02, addrsToo: 0x10 },
  iflag: { skip: 0x0100 },
  get: { none: 0, clrCntr: 1 },
  pfrkeType: { plain: 0 },
  /** Source-port range pfctl gives every nat-to pool (host byte order in pf_pool.proxy_port). */
  natProxyPorts: [50001, 65535] as const,
  /** pfctl's defaults for `block return`: ICMP unreach/port and ICMP6 dst-unreach/noport, (type<<8)|code. */
  returnIcmp: (3 << 8) | 3,
  returnIcmp6: (1 << 8) | 4,
} as const;

// ---- struct definitions (pfvar.h r1.543, amd64) ----------------------------------------------

const pfAddr = union('pf_addr', [
  ['v6', chars(16)],
  ['addr32', array(u32, 4)],
]);

const pfAddrWrap = struct('pf_addr_wrap', [
  [
    'v',
    union('pf_addr_wrap.v', [
      ['a', struct('pf_addr_wrap.v.a', [['addr', pfAddr], ['mask', pfAddr]])],
      ['ifname', chars(IFNAMSIZ)],
      ['tblname', chars(PF_TABLE_NAME_SIZE)],
      ['rtlabelname', chars(RTLABEL_LEN)],
      ['rtlabel', u32],
    ]),
  ],
  ['p', union('pf_addr_wrap.p', [['dyn', ptr], ['tbl', ptr], ['dyncnt', i32], ['tblcnt', i32]])],
  ['type', u8],
  ['iflags', u8],
]);

const pfRuleAddr = struct('pf_rule_addr', [
  ['addr', pfAddrWrap],
  ['port', array(u16, 2)],
  ['neg', u8],
  ['port_op', u8],
  ['weight', u16],
]);

const pfPool = struct('pf_pool', [
  ['addr', pfAddrWrap],
  ['key', chars(16)],
  ['counter', pfAddr],
  ['ifname', chars(IFNAMSIZ)],
  ['kif', ptr],
  ['tblidx', i32],
  ['states', u64],
  ['curweight', i32],
  ['weight', u16],
  ['proxy_port', array(u16, 2)],
  ['port_op', u8],
  ['opts', u8],
]);

const pfThreshold = struct('pf_threshold', [['limit', u32], ['seconds', u32], ['count', u32], ['last', u32]]);
const pfRuleUid = struct('pf_rule_uid', [['uid', array(u32, 2)], ['op', u8]]);
const pfRuleGid = struct('pf_rule_gid', [['gid', array(u32, 2)], ['op', u8]]);
const pfRulePtr = union('pf_rule_ptr', [['ptr', ptr], ['nr', u32]]);

/** struct pf_rule fields from src up to rcvifnot: identical in r1.543 and r1.548. */
const pfRuleCommon: (readonly [string, CType])[] = [
  ['src', pfRuleAddr],
  ['dst', pfRuleAddr],
  ['skip', array(pfRulePtr, PF_SKIP_COUNT)],
  ['label', chars(PF_RULE_LABEL_SIZE)],
  ['ifname', chars(IFNAMSIZ)],
  ['rcv_ifname', chars(IFNAMSIZ)],
  ['qname', chars(PF_QNAME_SIZE)],
  ['pqname', chars(PF_QNAME_SIZE)],
  ['tagname', chars(PF_TAG_NAME_SIZE)],
  ['match_tagname', chars(PF_TAG_NAME_SIZE)],
  ['overload_tblname', chars(PF_TABLE_NAME_SIZE)],
  ['entries', array(ptr, 2)],
  ['nat', pfPool],
  ['rdr', pfPool],
  ['route', pfPool],
  ['pktrate', pfThreshold],
  ['evaluations', u64],
  ['packets', array(u64, 2)],
  ['bytes', array(u64, 2)],
  ['kif', ptr],
  ['rcv_kif', ptr],
  ['anchor', ptr],
  ['overload_tbl', ptr],
  ['os_fingerprint', u32],
  ['rtableid', i32],
  ['onrdomain', i32],
  ['timeout', array(u32, PFTM_MAX)],
  ['states_cur', u32],
  ['states_tot', u32],
  ['max_states', u32],
  ['src_nodes', u32],
  ['max_src_nodes', u32],
  ['max_src_states', u32],
  ['max_src_conn', u32],
  ['max_src_conn_rate', struct('max_src_conn_rate', [['limit', u32], ['seconds', u32]])],
  ['qid', u32],
  ['pqid', u32],
  ['rt_listid', u32],
  ['nr', u32],
  ['prob', u32],
  ['cuid', u32],
  ['cpid', i32],
  ['return_icmp', u16],
  ['return_icmp6', u16],
  ['max_mss', u16],
  ['tag', u16],
  ['match_tag', u16],
  ['scrub_flags', u16],
  ['delay', u16],
  ['uid', pfRuleUid],
  ['gid', pfRuleGid],
  ['rule_flag', u32],
  ['action', u8],
  ['direction', u8],
  ['log', u8],
  ['logif', u8],
  ['quick', u8],
  ['ifnot', u8],
  ['match_tag_not', u8],
  ['keep_state', u8],
  ['af', u8],
  ['proto', u8],
  ['type', u16],
  ['code', u16],
  ['flags', u8],
  ['flagset', u8],
  ['min_ttl', u8],
  ['allow_opts', u8],
  ['rt', u8],
  ['return_ttl', u8],
  ['tos', u8],
  ['set_tos', u8],
  ['anchor_relative', u8],
  ['anchor_wildcard', u8],
  ['flush', u8],
  ['prio', u8],
  ['set_prio', array(u8, 2)],
  ['naf', u8],
  ['rcvifnot', u8],
];

const pfRuleTail: (readonly [string, CType])[] = [
  ['divert', struct('pf_rule.divert', [['addr', pfAddr], ['port', u16], ['type', u8]])],
  ['exptime', i64],
];

const pfRule1543 = struct('pf_rule', [...pfRuleCommon, ...pfRuleTail]);

// r1.548 adds the state and source limiters right after rcvifnot. The note gives their offsets
// (1312, 1320) and the new total (1360) but not their inner layout, so each is an opaque 8-byte
// slot that we leave zero (= no limiter); divert and exptime move down by 16 accordingly.
const pfRule1548 = struct('pf_rule', [
  ...pfRuleCommon,
  ['statelim', u64],
  ['sourcelim', u64],
  ...pfRuleTail,
]);

const pfiocRule = (rule: CType): CType =>
  struct('pfioc_rule', [
    ['action', u32],
    ['ticket', u32],
    ['nr', u32],
    ['anchor', chars(PATH_MAX)],
    ['anchor_call', chars(PATH_MAX)],
    ['rule', rule],
  ]);

const pfiocTransE = struct('pfioc_trans_e', [['type', i32], ['anchor', chars(PATH_MAX)], ['ticket', u32]]);
const pfiocTrans = struct('pfioc_trans', [['size', i32], ['esize', i32], ['array', ptr]]);

const pfrTable = struct('pfr_table', [
  ['pfrt_anchor', chars(PATH_MAX)],
  ['pfrt_name', chars(PF_TABLE_NAME_SIZE)],
  ['pfrt_flags', u32],
  ['pfrt_fback', u8],
]);

const pfrAddr = struct('pfr_addr', [
  ['pfra_u', union('pfra_u', [['_pfra_ip4addr', chars(4)], ['_pfra_ip6addr', chars(16)]])],
  ['pfra_ifname', chars(IFNAMSIZ)],
  ['pfra_states', u32],
  ['pfra_weight', u16],
  ['pfra_af', u8],
  ['pfra_net', u8],
  ['pfra_not', u8],
  ['pfra_fback', u8],
  ['pfra_type', u8],
  ['pad', chars(7)],
]);

const PFR_DIR_MAX = 2;
const PFR_OP_TABLE_MAX = 4;
const pfrTstats = struct('pfr_tstats', [
  ['pfrts_t', pfrTable],
  ['pfrts_packets', array(u64, PFR_DIR_MAX * PFR_OP_TABLE_MAX)],
  ['pfrts_bytes', array(u64, PFR_DIR_MAX * PFR_OP_TABLE_MAX)],
  ['pfrts_match', u64],
  ['pfrts_nomatch', u64],
  ['pfrts_tzero', i64],
  ['pfrts_cnt', i32],
  ['pfrts_refcnt', array(i32, 2)],
]);

const pfiocTable = struct('pfioc_table', [
  ['pfrio_table', pfrTable],
  ['pfrio_buffer', ptr],
  ['pfrio_esize', i32],
  ['pfrio_size', i32],
  ['pfrio_size2', i32],
  ['pfrio_nadd', i32],
  ['pfrio_ndel', i32],
  ['pfrio_nchange', i32],
  ['pfrio_flags', i32],
  ['pfrio_ticket', u32],
]);

const PFRES_MAX = 17;
const LCNT_MAX = 10;
const pfStatus = struct('pf_status', [
  ['counters', array(u64, PFRES_MAX)],
  ['lcounters', array(u64, LCNT_MAX)],
  ['fcounters', array(u64, 3)],
  ['scounters', array(u64, 3)],
  ['ncounters', array(u64, 3)],
  ['pcounters', array(u64, 12)],
  ['bcounters', array(u64, 4)],
  ['stateid', u64],
  ['syncookies_inflight', array(u64, 2)],
  ['since', i64],
  ['running', u32],
  ['states', u32],
  ['states_halfopen', u32],
  ['src_nodes', u32],
  ['fragments', u32],
  ['debug', u32],
  ['hostid', u32],
  ['reass', u32],
  ['syncookies_active', u8],
  ['syncookies_mode', u8],
  ['pad', chars(2)],
  ['ifname', chars(IFNAMSIZ)],
  ['pf_chksum', chars(PF_MD5_DIGEST_LENGTH)],
]);

const pfiocIface = struct('pfioc_iface', [
  ['pfiio_name', chars(IFNAMSIZ)],
  ['pfiio_buffer', ptr],
  ['pfiio_esize', i32],
  ['pfiio_size', i32],
  ['pfiio_nzero', i32],
  ['pfiio_flags', i32],
]);

const pfiocRuleset = struct('pfioc_ruleset', [
  ['nr', u32],
  ['path', chars(PATH_MAX)],
  ['name', chars(PF_ANCHOR_NAME_SIZE)],
]);

const u32Arg = struct('u_int32_t', [['value', u32]]);

// ---- ioctl numbers ---------------------------------------------------------------------------

const IOC_VOID = 0x20000000;
const IOC_INOUT = 0xc0000000;
const IOCPARM_MASK = 0x1fff;

/** <sys/ioccom.h>: _IOWR(g, n, t) = IOC_INOUT | ((sizeof(t) & IOCPARM_MASK) << 16) | (g << 8) | n. */
export function iowr(group: string, n: number, size: number): number {
  if (size > IOCPARM_MASK) throw new RangeError(`ioctl argument of ${size} bytes does not fit IOCPARM_MASK`);
  return (IOC_INOUT | ((size & IOCPARM_MASK) << 16) | (group.charCodeAt(0) << 8) | n) >>> 0;
}
/** <sys/ioccom.h>: _IO(g, n) = IOC_VOID | (g << 8) | n. */
export function io(group: string, n: number): number {
  return (IOC_VOID | (group.charCodeAt(0) << 8) | n) >>> 0;
}

export type StructName =
  | 'pf_addr_wrap'
  | 'pf_rule_addr'
  | 'pf_pool'
  | 'pf_rule'
  | 'pfioc_rule'
  | 'pfioc_trans'
  | 'pfioc_trans_e'
  | 'pfr_table'
  | 'pfr_addr'
  | 'pfr_tstats'
  | 'pfioc_table'
  | 'pf_status'
  | 'pfioc_iface'
  | 'pfioc_ruleset'
  | 'u_int32_t';

/** The ioctls the loader, the counter reader and the table updater use, with their number and arg. */
const IOCTL_DEFS = {
  DIOCADDRULE: [4, 'pfioc_rule'],
  DIOCGETRULES: [6, 'pfioc_rule'],
  DIOCGETRULE: [7, 'pfioc_rule'],
  DIOCSETSTATUSIF: [20, 'pfioc_iface'],
  DIOCGETSTATUS: [21, 'pf_status'],
  DIOCGETRULESETS: [58, 'pfioc_ruleset'],
  DIOCGETRULESET: [59, 'pfioc_ruleset'],
  DIOCRADDTABLES: [61, 'pfioc_table'],
  DIOCRGETTSTATS: [64, 'pfioc_table'],
  DIOCRADDADDRS: [67, 'pfioc_table'],
  DIOCRDELADDRS: [68, 'pfioc_table'],
  DIOCRSETADDRS: [69, 'pfioc_table'],
  DIOCRINADEFINE: [77, 'pfioc_table'],
  DIOCXBEGIN: [81, 'pfioc_trans'],
  DIOCXCOMMIT: [82, 'pfioc_trans'],
  DIOCXROLLBACK: [83, 'pfioc_trans'],
  DIOCSETIFFLAG: [89, 'pfioc_iface'],
  DIOCCLRIFFLAG: [90, 'pfioc_iface'],
  DIOCXEND: [100, 'u_int32_t'],
} as const satisfies Record<string, readonly [number, StructName]>;

export type IoctlName = keyof typeof IOCTL_DEFS;
export const IOCTL_NAMES = Object.keys(IOCTL_DEFS) as IoctlName[];

export interface IoctlInfo {
  name: IoctlName;
  nr: number;
  arg: StructName;
  request: number;
}

export interface PfRelease {
  /** Stable id used in options and messages, e.g. "pfvar-1.543". */
  id: string;
  /** What it corresponds to, stated no more precisely than we know it. */
  label: string;
  structs: Readonly<Record<StructName, StructLayout>>;
  ioctls: Readonly<Record<IoctlName, IoctlInfo>>;
  byRequest: ReadonlyMap<number, IoctlInfo>;
}

function makeRelease(id: string, label: string, rule: CType): PfRelease {
  const types: Record<StructName, CType> = {
    pf_addr_wrap: pfAddrWrap,
    pf_rule_addr: pfRuleAddr,
    pf_pool: pfPool,
    pf_rule: rule,
    pfioc_rule: pfiocRule(rule),
    pfioc_trans: pfiocTrans,
    pfioc_trans_e: pfiocTransE,
    pfr_table: pfrTable,
    pfr_addr: pfrAddr,
    pfr_tstats: pfrTstats,
    pfioc_table: pfiocTable,
    pf_status: pfStatus,
    pfioc_iface: pfiocIface,
    pfioc_ruleset: pfiocRuleset,
    u_int32_t: u32Arg,
  };
  const structs = Object.fromEntries(
    Object.entries(types).map(([k, t]) => [k, layoutOf(t)]),
  ) as Record<StructName, StructLayout>;
  const ioctls = {} as Record<IoctlName, IoctlInfo>;
  const byRequest = new Map<number, IoctlInfo>();
  for (const name of IOCTL_NAMES) {
    const [nr, arg] = IOCTL_DEFS[name];
    const info: IoctlInfo = { name, nr, arg, request: iowr('D', nr, structs[arg].size) };
    ioctls[name] = info;
    byRequest.set(info.request, info);
  }
  return Object.freeze({ id, label, structs, ioctls, byRequest });
}

export const RELEASES: ReadonlyMap<string, PfRelease> = new Map(
  [
    makeRelease('pfvar-1.543', 'OpenBSD 7.7-era (pfvar.h r1.543, 2025-04-14; release mapping not verified)', pfRule1543),
    makeRelease(
      'pfvar-1.548',
      'OpenBSD -current after pfvar.h r1.548 (statelim/sourcelim added; limiter layout per the note only)',
      pfRule1548,
    ),
  ].map((r) => [r.id, r]),
);

export const DEFAULT_RELEASE = 'pfvar-1.543';

export function getRelease(id: string): PfRelease {
  const r = RELEASES.get(id);
  if (!r) {
    throw new BackendError(
      `unknown pf ABI release "${id}"; supported: ${[...RELEASES.keys()].join(', ')} ` +
        '(the ioctl numbers embed struct sizes, so loading with the wrong table would be rejected or misread by the kernel)',
      'ERR_ZTB_PF_RELEASE',
    );
  }
  return r;
}

/**
 * Maps an OpenBSD kern.osrelease to a layout table. Only entries we can stand behind are listed;
 * an unlisted release must be named explicitly (ZTB_PF_RELEASE / --pf-release) after checking its
 * pfvar.h against the table.
 */
export const OSRELEASE_TO_LAYOUT: Readonly<Record<string, string>> = {
  '7.7': 'pfvar-1.543',
};

export function releaseForOsRelease(osrelease: string): PfRelease {
  const id = OSRELEASE_TO_LAYOUT[osrelease];
  if (!id) {
    throw new BackendError(
      `no pf layout table is known for OpenBSD ${osrelease}; name one explicitly (supported: ${[...RELEASES.keys()].join(', ')})`,
      'ERR_ZTB_PF_RELEASE',
    );
  }
  return getRelease(id);
}
