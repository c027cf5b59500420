// Backend layer (pf): a simulated /dev/pf for hosts without pf (Linux CI, dry runs). It decodes
// every request by number against one release's layout table, keeps rulesets with active/inactive
// halves and tickets the way pf_ioctl.c does, validates what it is given (esize, tickets, field
// ranges), records every call, and lets tests inject failures (EBUSY, EINVAL, ...) and counter
// values. It is a model of the kernel contract we rely on, not of pf's packet path: passing here
// says the transaction is well-formed for the release, not that a real kernel accepted it.
import { StructView } from './abi/layout.js';
import { AF, PF, type IoctlName, type PfRelease } from './abi/releases.js';
import { decodeRule } from './decode.js';
import type { IoctlDevice } from './plan.js';
import type { RuleCounters } from './ioctl-args.js';

export class SimErrno extends Error {
  readonly errno: string;
  constructor(errno: string, why: string) {
    super(`${errno}: ${why}`);
    this.errno = errno;
  }
}

export interface SimCall {
  ioctl: IoctlName;
  request: number;
  anchor?: string;
  ticket?: number;
  errno?: string;
}

interface SimRuleset {
  active: Buffer[];
  activeCounters: RuleCounters[];
  version: number;
  inactive: Buffer[] | null;
  inactiveTicket: number | null;
}

interface SimTable {
  entries: number;
  flags: number;
  stats?: { match: bigint; packets: bigint[][] };
}

interface SimTableSet {
  active: Map<string, SimTable>;
  inactive: Map<string, SimTable> | null;
  ticket: number | null;
}

interface Fault {
  ioctl: IoctlName;
  errno: string;
  /** Fail the n-th (1-based) matching call from now. */
  nth: number;
  seen: number;
}

const ZERO_COUNTERS = (): RuleCounters => ({ evaluations: 0n, packets: [0n, 0n], bytes: [0n, 0n], statesCur: 0 });

export class SimulatedPfDevice implements IoctlDevice {
  readonly release: PfRelease;
  readonly calls: SimCall[] = [];
  readonly rulesets = new Map<string, SimRuleset>();
  readonly tables = new Map<string, SimTableSet>();
  statusIf = '';
  readonly skip = new Set<string>();
  #stagedStatusIf: string | null = null;
  #stagedSkip: Set<string> | null = null;
  #nextTicket = 1000;
  readonly cursors = new Map<number, { anchor: string; version: number }>();
  #faults: Fault[] = [];
  /** Called before each DIOCGETRULE; tests use it to change a ruleset mid-read. */
  onGetRule: ((anchor: string, nr: number) => void) | null = null;
  static readonly CURSOR_LIMIT = 512;

  constructor(release: PfRelease) {
    this.release = release;
    this.#ruleset('');
  }

  /** Makes the n-th next call of `ioctl` fail with `errno`. */
  failOn(ioctl: IoctlName, errno: string, nth = 1): this {
    this.#faults.push({ ioctl, errno, nth, seen: 0 });
    return this;
  }

  /** Sets the counters the kernel will report for active rule `nr` of `anchor`. */
  setCounters(anchor: string, nr: number, c: Partial<RuleCounters>): void {
    const rs = this.rulesets.get(anchor);
    if (!rs || nr >= rs.active.length) throw new Error(`no active rule ${nr} in "${anchor}"`);
    rs.activeCounters[nr] = { ...ZERO_COUNTERS(), ...c };
  }

  /** Sets what DIOCRGETTSTATS reports for an active table. */
  setTableStats(anchor: string, name: string, stats: { match: bigint; packets: bigint[][] }): void {
    const t = this.tables.get(anchor)?.active.get(name);
    if (!t) throw new Error(`no active table <${name}> in "${anchor}"`);
    t.stats = stats;
  }

  /** Replaces an anchor's active rules behind the loader's back (another pfctl, say). */
  replaceActive(anchor: string, rules: Buffer[]): void {
    const rs = this.#ruleset(anchor);
    rs.active = rules;
    rs.activeCounters = rules.map(ZERO_COUNTERS);
    rs.version++;
  }

  names(): IoctlName[] {
    return this.calls.map((c) => c.ioctl);
  }

  #ruleset(anchor: string): SimRuleset {
    let rs = this.rulesets.get(anchor);
    if (!rs) {
      rs = { active: [], activeCounters: [], version: 1, inactive: null, inactiveTicket: null };
      this.rulesets.set(anchor, rs);
    }
    return rs;
  }

  #tableset(anchor: string): SimTableSet {
    let t = this.tables.get(anchor);
    if (!t) {
      t = { active: new Map(), inactive: null, ticket: null };
      this.tables.set(anchor, t);
    }
    return t;
  }

  ioctl(request: number, arg: Buffer, payload?: { ptrOffset: number; buf: Buffer }): void {
    const info = this.release.byRequest.get(request >>> 0);
    const call: SimCall = { ioctl: info?.name ?? ('?' as IoctlName), request };
    this.calls.push(call);
    try {
      if (!info) throw new SimErrno('ENOTTY', `request 0x${request.toString(16)} is not a pf ioctl of ${this.release.id}`);
      const size = this.release.structs[info.arg].size;
      if (arg.length !== size) throw new SimErrno('EFAULT', `${info.name} argument is ${arg.length} bytes, expected ${size}`);
      const fault = this.#faults.find((f) => f.ioctl === info.name && ++f.seen === f.nth);
      if (fault) {
        this.#faults = this.#faults.filter((f) => f !== fault);
        throw new SimErrno(fault.errno, 'injected');
      }
      this.#dispatch(info.name, arg, payload, call);
    } catch (e) {
      if (e instanceof SimErrno) call.errno = e.errno;
      throw e;
    }
  }

  #dispatch(name: IoctlName, arg: Buffer, payload: { ptrOffset: number; buf: Buffer } | undefined, call: SimCall): void {
    const S = this.release.structs;
    switch (name) {
      case 'DIOCXBEGIN':
      case 'DIOCXCOMMIT':
      case 'DIOCXROLLBACK': {
        const t = new StructView(S.pfioc_trans, arg);
        if (t.i32('esize') !== S.pfioc_trans_e.size) throw new SimErrno('ENODEV', `esize ${t.i32('esize')}`);
        const n = t.i32('size');
        if (!payload || payload.buf.length !== n * S.pfioc_trans_e.size) throw new SimErrno('EFAULT', 'element array size');
        const els = Array.from({ length: n }, (_, i) => new StructView(S.pfioc_trans_e, payload.buf, i * S.pfioc_trans_e.size));
        if (name === 'DIOCXBEGIN') return this.#begin(els);
        if (name === 'DIOCXCOMMIT') return this.#commit(els);
        return this.#rollback(els);
      }
      case 'DIOCADDRULE': {
        const p = new StructView(S.pfioc_rule, arg);
        const anchor = p.string('anchor');
        call.anchor = anchor;
        call.ticket = p.u32('ticket');
        const rs = this.rulesets.get(anchor);
        if (!rs || rs.inactiveTicket === null || rs.inactiveTicket !== p.u32('ticket')) throw new SimErrno('EBUSY', `stale ticket for "${anchor}"`);
        const ruleOff = p.field('rule').offset;
        this.#validateRule(arg, ruleOff, p.string('anchor_call'));
        rs.inactive!.push(Buffer.from(arg.subarray(ruleOff, ruleOff + S.pf_rule.size)));
        return;
      }
      case 'DIOCRINADEFINE': {
        const t = new StructView(S.pfioc_table, arg);
        const anchor = t.string('pfrio_table.pfrt_anchor');
        call.anchor = anchor;
        call.ticket = t.u32('pfrio_ticket');
        const ts = this.tables.get(anchor);
        if (!ts || ts.ticket === null || ts.ticket !== t.u32('pfrio_ticket')) throw new SimErrno('EBUSY', `stale table ticket for "${anchor}"`);
        if (t.i32('pfrio_esize') !== S.pfr_addr.size) throw new SimErrno('ENODEV', 'pfr_addr esize');
        const n = t.i32('pfrio_size');
        if (n < 0 || !payload || payload.buf.length !== n * S.pfr_addr.size) throw new SimErrno('EINVAL', 'address buffer size');
        if (!(t.i32('pfrio_flags') & PF.rflag.addrsToo) && n > 0) throw new SimErrno('EINVAL', 'addresses without PFR_FLAG_ADDRSTOO');
        const tname = t.string('pfrio_table.pfrt_name');
        if (!tname) throw new SimErrno('EINVAL', 'empty table name');
        // PFR_TFLAG_USRMASK: only persist, const and counters may come from userland.
        if (t.u32('pfrio_table.pfrt_flags') & ~0x43) throw new SimErrno('EINVAL', 'table flags outside PFR_TFLAG_USRMASK');
        for (let i = 0; i < n; i++) {
          const a = new StructView(S.pfr_addr, payload.buf, i * S.pfr_addr.size);
          const af = a.u8('pfra_af');
          if (af !== AF.inet && af !== AF.inet6) throw new SimErrno('EINVAL', `pfr_addr af ${af}`);
          if (a.u8('pfra_net') > (af === AF.inet ? 32 : 128)) throw new SimErrno('EINVAL', 'pfr_addr net');
        }
        ts.inactive!.set(tname, { entries: n, flags: t.u32('pfrio_table.pfrt_flags') });
        return;
      }
      case 'DIOCRSETADDRS': {
        const t = new StructView(S.pfioc_table, arg);
        const anchor = t.string('pfrio_table.pfrt_anchor');
        const tname = t.string('pfrio_table.pfrt_name');
        call.anchor = anchor;
        const cur = this.tables.get(anchor)?.active.get(tname);
        if (!cur) throw new SimErrno('ESRCH', `no table <${tname}> in "${anchor}"`);
        if (t.i32('pfrio_esize') !== S.pfr_addr.size) throw new SimErrno('ENODEV', 'pfr_addr esize');
        const n = t.i32('pfrio_size');
        if (n < 0 || !payload || payload.buf.length !== n * S.pfr_addr.size) throw new SimErrno('EINVAL', 'address buffer size');
        t.setI32('pfrio_nadd', Math.max(0, n - cur.entries)).setI32('pfrio_ndel', Math.max(0, cur.entries - n)).setI32('pfrio_nchange', 0);
        cur.entries = n;
        return;
      }
      case 'DIOCRADDTABLES': {
        const t = new StructView(S.pfioc_table, arg);
        if (t.i32('pfrio_esize') !== S.pfr_table.size) throw new SimErrno('ENODEV', 'pfr_table esize');
        const n = t.i32('pfrio_size');
        if (n < 0 || !payload || payload.buf.length !== n * S.pfr_table.size) throw new SimErrno('EINVAL', 'table buffer size');
        let added = 0;
        for (let i = 0; i < n; i++) {
          const e = new StructView(S.pfr_table, payload.buf, i * S.pfr_table.size);
          const ts = this.#tableset(e.string('pfrt_anchor'));
          const nm = e.string('pfrt_name');
          if (!nm) throw new SimErrno('EINVAL', 'empty table name');
          if (!ts.active.has(nm)) {
            ts.active.set(nm, { entries: 0, flags: e.u32('pfrt_flags') });
            added++;
          }
        }
        t.setI32('pfrio_nadd', added);
        return;
      }
      case 'DIOCRGETTSTATS': {
        const t = new StructView(S.pfioc_table, arg);
        const anchor = t.string('pfrio_table.pfrt_anchor');
        call.anchor = anchor;
        if (t.i32('pfrio_esize') !== S.pfr_tstats.size) throw new SimErrno('ENODEV', 'pfr_tstats esize');
        const list: [string, SimTable][] = [...(this.tables.get(anchor)?.active ?? new Map<string, SimTable>()).entries()];
        const cap = t.i32('pfrio_size');
        t.setI32('pfrio_size', list.length);
        if (list.length > cap) return;
        if (!payload || payload.buf.length < list.length * S.pfr_tstats.size) throw new SimErrno('EFAULT', 'stats buffer');
        list.forEach(([nm, info], i) => {
          const s = new StructView(S.pfr_tstats, payload.buf, i * S.pfr_tstats.size);
          s.setString('pfrts_t.pfrt_anchor', anchor).setString('pfrts_t.pfrt_name', nm).setU32('pfrts_t.pfrt_flags', info.flags);
          s.setI32('pfrts_cnt', info.entries);
          if (info.stats) {
            s.setU64('pfrts_match', info.stats.match);
            info.stats.packets.forEach((row, d) => row.forEach((v, o) => s.setU64('pfrts_packets', v, d * 4 + o)));
          }
        });
        return;
      }
      case 'DIOCGETSTATUS': {
        const st = new StructView(S.pf_status, arg);
        st.setU32('running', 1).setString('ifname', this.statusIf);
        let states = 0;
        for (const rs of this.rulesets.values()) for (const c of rs.activeCounters) states += c.statesCur;
        st.setU32('states', states);
        return;
      }
      case 'DIOCGETRULESETS':
      case 'DIOCGETRULESET': {
        const q = new StructView(S.pfioc_ruleset, arg);
        const path = q.string('path');
        if (path !== '' && !this.rulesets.has(path)) throw new SimErrno('ENOENT', `no anchor "${path}"`);
        const prefix = path === '' ? '' : `${path}/`;
        const children = [...this.rulesets.keys()]
          .filter((k) => k !== '' && k.startsWith(prefix) && !k.slice(prefix.length).includes('/'))
          .map((k) => k.slice(prefix.length))
          .sort();
        if (name === 'DIOCGETRULESETS') {
          q.setU32('nr', children.length);
          return;
        }
        const i = q.u32('nr');
        if (i >= children.length) throw new SimErrno('EBUSY', 'no such child');
        q.setString('name', children[i]!);
        return;
      }
      case 'DIOCSETSTATUSIF': {
        const nm = new StructView(S.pfioc_iface, arg).string('pfiio_name');
        // As pf_ioctl.c: an empty name clears the status interface at once, unstaged.
        if (nm === '') this.statusIf = '';
        else this.#stagedStatusIf = nm;
        return;
      }
      case 'DIOCSETIFFLAG':
      case 'DIOCCLRIFFLAG': {
        const f = new StructView(S.pfioc_iface, arg);
        if (f.i32('pfiio_flags') !== PF.iflag.skip) throw new SimErrno('EINVAL', 'only PFI_IFLAG_SKIP is settable');
        this.#stagedSkip ??= new Set(this.skip);
        const nm = f.string('pfiio_name');
        if (name === 'DIOCCLRIFFLAG') {
          if (nm === '') this.#stagedSkip.clear();
          else this.#stagedSkip.delete(nm);
        } else {
          if (nm === '') throw new SimErrno('EINVAL', 'set skip needs an interface');
          this.#stagedSkip.add(nm);
        }
        return;
      }
      case 'DIOCGETRULES': {
        const p = new StructView(S.pfioc_rule, arg);
        const anchor = p.string('anchor');
        call.anchor = anchor;
        const rs = this.rulesets.get(anchor);
        if (!rs) throw new SimErrno('EINVAL', `no anchor "${anchor}"`);
        if (this.cursors.size >= SimulatedPfDevice.CURSOR_LIMIT) throw new SimErrno('EBUSY', 'too many open rule cursors');
        const ticket = this.#nextTicket++;
        this.cursors.set(ticket, { anchor, version: rs.version });
        p.setU32('ticket', ticket).setU32('nr', rs.active.length);
        call.ticket = ticket;
        return;
      }
      case 'DIOCGETRULE': {
        const p = new StructView(S.pfioc_rule, arg);
        const anchor = p.string('anchor');
        const ticket = p.u32('ticket');
        call.anchor = anchor;
        call.ticket = ticket;
        const cur = this.cursors.get(ticket);
        if (!cur || cur.anchor !== anchor) throw new SimErrno('ENXIO', 'no such cursor');
        const nr = p.u32('nr');
        this.onGetRule?.(anchor, nr);
        const rs = this.rulesets.get(anchor)!;
        if (rs.version !== cur.version) throw new SimErrno('EBUSY', 'ruleset changed');
        if (nr >= rs.active.length) throw new SimErrno('ENOENT', 'end of ruleset');
        const off = p.field('rule').offset;
        rs.active[nr]!.copy(arg, off);
        const c = rs.activeCounters[nr]!;
        const r = new StructView(S.pf_rule, arg, off);
        r.setU64('evaluations', c.evaluations).setU64('packets', c.packets[0], 0).setU64('packets', c.packets[1], 1);
        r.setU64('bytes', c.bytes[0], 0).setU64('bytes', c.bytes[1], 1).setU32('states_cur', c.statesCur);
        if (p.u32('action') === PF.get.clrCntr) rs.activeCounters[nr] = { ...ZERO_COUNTERS(), statesCur: c.statesCur };
        return;
      }
      case 'DIOCXEND': {
        const ticket = new StructView(S.u_int32_t, arg).u32('value');
        call.ticket = ticket;
        if (!this.cursors.delete(ticket)) throw new SimErrno('ENOENT', 'no such cursor');
        return;
      }
      default:
        throw new SimErrno('ENOTTY', `${name} is not simulated`);
    }
  }

  #begin(els: StructView[]): void {
    for (const e of els) {
      const anchor = e.string('anchor');
      const type = e.i32('type');
      if (anchor.split('/').some((c) => c.startsWith('_'))) throw new SimErrno('EINVAL', `reserved anchor name "${anchor}"`);
      const ticket = this.#nextTicket++;
      if (type === PF.trans.ruleset) {
        const rs = this.#ruleset(anchor);
        rs.inactive = [];
        rs.inactiveTicket = ticket;
      } else if (type === PF.trans.table) {
        const ts = this.#tableset(anchor);
        ts.inactive = new Map();
        ts.ticket = ticket;
      } else {
        throw new SimErrno('EINVAL', `transaction element type ${type}`);
      }
      e.setU32('ticket', ticket);
    }
  }

  #ticketCurrent(e: StructView): boolean {
    const anchor = e.string('anchor');
    const t = e.u32('ticket');
    if (e.i32('type') === PF.trans.ruleset) return this.rulesets.get(anchor)?.inactiveTicket === t;
    return this.tables.get(anchor)?.ticket === t;
  }

  #commit(els: StructView[]): void {
    // pf checks every ticket before touching anything: a stale one fails the whole commit.
    for (const e of els) if (!this.#ticketCurrent(e)) throw new SimErrno('EBUSY', `stale ticket for "${e.string('anchor')}"`);
    for (const e of els) {
      const anchor = e.string('anchor');
      if (e.i32('type') === PF.trans.ruleset) {
        const rs = this.rulesets.get(anchor)!;
        rs.active = rs.inactive!;
        rs.activeCounters = rs.active.map(ZERO_COUNTERS);
        rs.version++;
        rs.inactive = null;
        rs.inactiveTicket = null;
      } else {
        const ts = this.tables.get(anchor)!;
        ts.active = ts.inactive!;
        ts.inactive = null;
        ts.ticket = null;
      }
    }
    if (this.#stagedStatusIf !== null) this.statusIf = this.#stagedStatusIf;
    if (this.#stagedSkip) {
      this.skip.clear();
      for (const s of this.#stagedSkip) this.skip.add(s);
    }
    this.#stagedStatusIf = null;
    this.#stagedSkip = null;
  }

  #rollback(els: StructView[]): void {
    for (const e of els) {
      if (!this.#ticketCurrent(e)) continue;
      const anchor = e.string('anchor');
      if (e.i32('type') === PF.trans.ruleset) {
        const rs = this.rulesets.get(anchor)!;
        rs.inactive = null;
        rs.inactiveTicket = null;
      } else {
        const ts = this.tables.get(anchor)!;
        ts.inactive = null;
        ts.ticket = null;
      }
    }
    // Like pf: a rollback releases rulesets and tables only; staged interface flags and the
    // staged status interface survive and are applied by the next commit.
  }

  /** The checks pf_rule_copyin / pf_addr_setup would fail with EINVAL (and a few of pfctl's). */
  #validateRule(arg: Buffer, off: number, anchorCall: string): void {
    const d = decodeRule(this.release, arg, off);
    const bad = (why: string): never => {
      throw new SimErrno('EINVAL', why);
    };
    if (![PF.action.pass, PF.action.drop, PF.action.match].includes(d.action as 0 | 1 | 12)) bad(`action ${d.action}`);
    if (d.direction > PF.dir.out) bad(`direction ${d.direction}`);
    if (![AF.unspec, AF.inet, AF.inet6].includes(d.af as 0 | 2 | 24)) bad(`af ${d.af}`);
    for (const side of [d.src, d.dst]) {
      if (side.type === 'none' || side.type.startsWith('type')) bad(`address type ${side.type}`);
      if (side.portOp > PF.op.rrg) bad(`port_op ${side.portOp}`);
      if (side.portOp !== PF.op.none && d.proto !== 6 && d.proto !== 17) bad('ports without tcp/udp');
      if (side.type === 'dyniftl' && !side.ifname) bad('dynamic address without interface');
      if (side.type === 'table' && !side.tblname) bad('table address without name');
    }
    for (const pool of [d.nat, d.rdr, d.route]) {
      if (pool.type.startsWith('type')) bad(`pool address type ${pool.type}`);
    }
    if (d.rtableid < -1 || d.onrdomain < -1) bad('rtableid/onrdomain');
    if (d.returnIcmp >> 8 > 40 || d.returnIcmp6 >> 8 > 255) bad('return_icmp type');
    if (d.keepState > PF.state.synproxy) bad(`keep_state ${d.keepState}`);
    if (d.keepState !== PF.state.none && d.action !== PF.action.pass) bad('state on a non-pass rule');
    if (d.flags & ~d.flagset && d.flagset !== 0) bad('flags outside flagset');
    if (anchorCall && d.keepState !== PF.state.none) bad('state on an anchor rule');
    if (anchorCall) this.#ruleset(anchorCall.replace(/^\//, '').replace(/\/\*$/, ''));
    if (d.nat.type !== 'none' && d.direction === PF.dir.in) bad('nat-to on an inbound rule');
    if (d.rdr.type !== 'none' && d.direction === PF.dir.out) bad('rdr-to on an outbound rule');
  }
}
