// Policy layer: the rule IR. This is the single input of every consumer — the reference evaluator,
// the native engine, the nftables backend and the pf backend — so pf's semantics are made explicit
// here instead of being re-derived by each of them:
//
//  - Lists are expanded (pfctl's cartesian product): one IrRule per interface x af x proto x
//    src host x src port x dst host x dst port x redirect. `origin` ties the expansion back to the
//    written rule (counters sum over an origin), `pos` to its place in the source.
//  - Macros are substituted; `set block-policy` is folded into each block rule's `blockPolicy`.
//  - `pass` rules carry their implied state (`keep`) and, for stateful pass rules, the implied TCP
//    flags S/SA unless flags were written or `no state` was given. `flags` is tested on TCP only.
//  - Anchors stay a tree of rulesets (pf evaluates them as a tree and its quick-anchor rule depends
//    on it), but every anchor rule names, in `call.targets`, the ruleset paths it evaluates, in
//    order: `anchor "a"` -> ["a"], `anchor "t/*"` -> the direct children of t in alphabetical
//    order. Inline anchors are rulesets like any other. Paths are absolute ("" is the main ruleset,
//    "tenant1", "tenant1/web").
//  - Addresses are canonical (lower-case, compressed IPv6, host bits checked zero) and typed.
//
// Evaluation, in short (docs/semantics.md has the long form): skip-listed interface -> pass; state
// match -> follow the state; otherwise walk `rulesets[""]` from the top: every rule whose criteria
// match is recorded (pass/block: becomes the decision, last match wins; match: its translations
// apply at once and later rules see translated addresses), `quick` on a matching rule ends the
// whole walk, an anchor rule whose criteria match evaluates call.targets in order and, when it is
// quick, ends the walk if the decision was made by a rule directly inside one of its targets.
// No decision -> pass without state.

/** A place in a source document; line and col are 1-based. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

export type AddressFamily = 'inet' | 'inet6';
export type Direction = 'in' | 'out';

/** A CIDR prefix in canonical form: `addr` has zero host bits. */
export interface Prefix {
  af: AddressFamily;
  addr: string;
  len: number;
}

/** `(if)` = all addresses of the interface, `(if:network)` = its attached networks,
 *  `(if:broadcast)`, `(if:peer)`, `(if:0)` = primary address only (pf's NOALIAS). Resolved when a
 *  policy is loaded into an engine or backend, from the interface address map it is given. */
export type DynIfMode = 'address' | 'network' | 'broadcast' | 'peer' | 'primary';

export type HostSpec =
  | { type: 'any' }
  | { type: 'prefix'; prefix: Prefix }
  | { type: 'table'; name: string }
  | { type: 'dynif'; ifname: string; mode: DynIfMode }
  /** pf's `self` and bare interface names as addresses: resolved at load from the address map. */
  | { type: 'ifaddr'; ifname: string }
  /** A prefix that belongs to no family in this expansion can never match (e.g. an inet6 host in a
   *  rule expanded for inet). pfctl drops such expansions; we do too, so this never appears in a
   *  compiled IR. Listed for completeness of the type. */
  | { type: 'none' };

export interface AddrMatch {
  neg: boolean;
  host: HostSpec;
}

/**
 * Port operators, as pf writes them. Unary operators use `lo` only (hi === lo):
 *   '='  p == lo      '!=' p != lo
 *   '<'  p <  lo      '<=' p <= lo      '>'  p > lo       '>=' p >= lo
 * Binary:
 *   ':'  lo <= p <= hi (inclusive range)
 *   '><' lo <  p <  hi (exclusive range)
 *   '<>' p < lo || p > hi (outside the range)
 * A rule with a port test never matches a packet without ports (ICMP, non-first fragments).
 */
export type PortOp = '=' | '!=' | '<' | '<=' | '>' | '>=' | ':' | '><' | '<>';

export interface PortMatch {
  op: PortOp;
  lo: number;
  hi: number;
}

/** TCP flag bits in pf's order (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80). */
export const TCP_FLAG_BITS = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10, U: 0x20, E: 0x40, W: 0x80 } as const;

/** `flags bits/mask`: a TCP packet matches when (pkt.flags & mask) === bits. */
export interface FlagsMatch {
  bits: number;
  mask: number;
}

/** A translation target (nat-to / rdr-to). Several hosts = a pool (pf: round-robin). */
export interface Redirect {
  hosts: HostSpec[];
  /** rdr-to ... port N[:M]: new destination port (range start/end); nat-to: unused. */
  port?: { lo: number; hi: number };
}

export interface ScrubOptions {
  noDf?: boolean;
  randomId?: boolean;
  maxMss?: number;
  minTtl?: number;
  reassembleTcp?: boolean;
}

export interface LogOptions {
  /** log (all): every packet of the state, not only the first. */
  all: boolean;
  /** log (matches): also log the match rules seen on the way. */
  matches: boolean;
  user: boolean;
  to?: string;
}

export type RuleAction = 'pass' | 'block' | 'match' | 'anchor';

export interface AnchorCall {
  /** As written: "tenant1", "tenant1/*", relative names already made absolute. */
  name: string;
  wildcard: boolean;
  /** Ruleset paths evaluated, in order. May be empty (an anchor with nothing loaded into it). */
  targets: string[];
}

export interface IrRule {
  /** Unique in the IR; equal to the rule's index in IR.rules. Stable for a given source. */
  id: number;
  /** Index of the written statement this rule was expanded from (IR.origins). */
  origin: number;
  /** Where the written statement starts. */
  pos: SourcePos;
  /** Ruleset path that contains this rule ("" = main). */
  ruleset: string;
  /** Position inside its ruleset, 0-based (pf's rule number within the anchor). */
  nr: number;

  action: RuleAction;
  /** Only for block: resolved from the rule or `set block-policy`. */
  blockPolicy?: 'drop' | 'return';
  /** null = both directions. */
  dir: Direction | null;
  quick: boolean;
  log: LogOptions | null;

  /** Interface criterion after list expansion; null = any interface. `ifname` may be a group name
   *  (e.g. egress): groups are resolved at load from the group map; an interface is always a member
   *  of the group with its own name. */
  iface: { name: string; neg: boolean } | null;
  af: AddressFamily | null;
  /** IP protocol number; null = any. */
  proto: number | null;
  src: AddrMatch;
  srcPort: PortMatch | null;
  dst: AddrMatch;
  dstPort: PortMatch | null;
  /** Tested on TCP packets only; null = no flag test. */
  flags: FlagsMatch | null;
  /** ICMP type/code tests (icmp-type / icmp6-type); null = none. */
  icmpType: { type: number; code: number | null } | null;

  /** 'none' for block, match and anchor rules, and for `pass ... no state`. */
  state: 'none' | 'keep' | 'modulate' | 'synproxy';
  natTo: Redirect | null;
  rdrTo: Redirect | null;
  scrub: ScrubOptions | null;
  /** Only for action === 'anchor'. */
  call: AnchorCall | null;

  /** This one expanded rule in canonical pf syntax (what `check` prints). */
  text: string;
}

export interface IrRuleset {
  path: string;
  /** IR.rules ids, in evaluation order. */
  rules: number[];
  /** Where the anchor body was written (inline anchor or TOML tenant rules); undefined for main. */
  pos?: SourcePos;
}

export interface TableEntry {
  neg: boolean;
  prefix: Prefix;
}

export interface IrTable {
  name: string;
  /** Tables are global in our IR: a name refers to the same table from every ruleset. */
  entries: TableEntry[];
  persist: boolean;
  constant: boolean;
  pos: SourcePos;
}

export interface Workload {
  name: string;
  ips: string[];
  mac?: string;
  /** Tap (or sandbox veth host end) name; must start with `tn<net_id>`. */
  tap: string;
}

export interface TenantVxlan {
  vni: number;
  /** Remote VTEP addresses (unicast peers); empty with `group` for multicast. */
  remotes: string[];
  group?: string;
  local?: string;
  dstport: number;
  learning: boolean;
}

export interface Tenant {
  id: string;
  netId: number;
  subnets: Prefix[];
  /** Gateway addresses on the tenant bridge (one per family at most), in CIDR form with the
   *  subnet's prefix length, e.g. "10.10.10.1/24". */
  gateways: string[];
  vxlan: TenantVxlan | null;
  vlan: number | null;
  workloads: Workload[];
  /** Interfaces that belong to this tenant (its bridge, taps, and any written in the document);
   *  ingress on one of them classifies a packet to the tenant. */
  interfaces: string[];
  /** Ruleset path holding the tenant's own rules ("" if it has none). */
  anchor: string;
  pos: SourcePos;
}

export interface IsolationSettings {
  clusterNetworks: Prefix[];
  tenantIsolation: boolean;
  interVmIsolation: boolean;
  allowInternet: boolean;
  allowedPorts: { protocol: 'tcp' | 'udp'; port: number; direction: 'inbound' | 'outbound' | 'both' }[];
}

export interface IrOptions {
  /** `set skip on`: interfaces (or groups) pf ignores completely. */
  skip: string[];
  blockPolicy: 'drop' | 'return';
  loginterface: string | null;
  /** `set state-policy`: states float across interfaces unless if-bound. */
  statePolicy: 'floating' | 'if-bound';
}

export interface Origin {
  /** The written statement in canonical pf syntax, before list expansion. */
  text: string;
  pos: SourcePos;
  ruleset: string;
}

export interface Ir {
  version: 1;
  options: IrOptions;
  /** Every rule of every ruleset; rules[i].id === i. */
  rules: IrRule[];
  /** Keyed by path; "" is always present. */
  rulesets: Record<string, IrRuleset>;
  tables: Record<string, IrTable>;
  origins: Origin[];
  tenants: Tenant[];
  /** Interface groups written in the policy (TOML) or given on the command line: name -> members. */
  groups: Record<string, string[]>;
  isolation: IsolationSettings | null;
  /** The documents this IR was compiled from, for messages. */
  sources: string[];
}

/** Interface addresses used to resolve (if), (if:network), (if:0), bare interface names and `self`. */
export type InterfaceAddressMap = Record<string, string[] /* CIDR, first = primary */>;
