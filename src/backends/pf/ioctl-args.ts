// Backend layer (pf): encoders for the non-rule ioctl arguments — pfioc_trans and its element
// array, pfioc_table with its pfr_addr buffer, pfioc_iface, the DIOCXEND ticket — and decoders for
// what the kernel writes back (tickets, rule counters). Arguments that point at a second buffer
// (pfioc_trans.array, pfioc_table.pfrio_buffer) are returned as {arg, payload, ptrOffset}: the
// native call stores the payload's address at ptrOffset right before the ioctl, so no pointer ever
// lives in a JS-visible buffer.
import type { TableEntry } from '../../policy/ir.js';
import { addrBytes } from './addr.js';
import { StructView } from './abi/layout.js';
import { AF, PF, type PfRelease } from './abi/releases.js';

export interface PointerArg {
  arg: Buffer;
  payload: { ptrOffset: number; buf: Buffer };
}

export interface TransElement {
  type: 'ruleset' | 'table';
  anchor: string;
}

/** pfioc_trans{size, esize, array} with one pfioc_trans_e per element (tickets filled by DIOCXBEGIN). */
export function encodeTrans(release: PfRelease, elements: TransElement[]): PointerArg {
  const es = release.structs.pfioc_trans_e;
  const arr = Buffer.alloc(es.size * elements.length);
  elements.forEach((e, i) => {
    new StructView(es, arr, i * es.size)
      .setI32('type', e.type === 'ruleset' ? PF.trans.ruleset : PF.trans.table)
      .setString('anchor', e.anchor);
  });
  const v = new StructView(release.structs.pfioc_trans);
  v.setI32('size', elements.length).setI32('esize', es.size);
  return { arg: v.buf, payload: { ptrOffset: v.field('array').offset, buf: arr } };
}

/** The ticket the kernel wrote into element `i` of a pfioc_trans array. */
export function transTicket(release: PfRelease, array: Buffer, i: number): number {
  const es = release.structs.pfioc_trans_e;
  return new StructView(es, array, i * es.size).u32('ticket');
}

/** An array of pfr_addr for a table's initial contents. */
export function encodePfrAddrs(release: PfRelease, entries: readonly TableEntry[]): Buffer {
  const l = release.structs.pfr_addr;
  const buf = Buffer.alloc(l.size * entries.length);
  entries.forEach((e, i) => {
    const v = new StructView(l, buf, i * l.size);
    const a = addrBytes(e.prefix.af, e.prefix.addr);
    v.setBytes('pfra_u._pfra_ip6addr', a);
    v.setU8('pfra_af', e.prefix.af === 'inet' ? AF.inet : AF.inet6);
    v.setU8('pfra_net', e.prefix.len);
    v.setU8('pfra_not', e.neg ? 1 : 0);
    v.setU8('pfra_type', PF.pfrkeType.plain);
  });
  return buf;
}

export interface TableArgs {
  anchor: string;
  name: string;
  /** PFR_TFLAG_* of the table itself (persist, const). */
  tableFlags?: number;
  /** PFR_FLAG_* of the operation. */
  ioFlags?: number;
  ticket?: number;
  entries?: readonly TableEntry[];
}

/** pfioc_table for DIOCRINADEFINE / DIOCR*ADDRS: the table, its address buffer and the ticket. */
export function encodeTable(release: PfRelease, t: TableArgs): PointerArg {
  const v = new StructView(release.structs.pfioc_table);
  v.setString('pfrio_table.pfrt_anchor', t.anchor);
  v.setString('pfrio_table.pfrt_name', t.name);
  v.setU32('pfrio_table.pfrt_flags', t.tableFlags ?? 0);
  const entries = t.entries ?? [];
  v.setI32('pfrio_esize', release.structs.pfr_addr.size);
  v.setI32('pfrio_size', entries.length);
  v.setI32('pfrio_flags', t.ioFlags ?? 0);
  v.setU32('pfrio_ticket', t.ticket ?? 0);
  return { arg: v.buf, payload: { ptrOffset: v.field('pfrio_buffer').offset, buf: encodePfrAddrs(release, entries) } };
}

/** pfioc_iface naming one interface (or "" for all) with PFI_IFLAG_* flags. */
export function encodeIface(release: PfRelease, name: string, flags = 0): Buffer {
  return new StructView(release.structs.pfioc_iface).setString('pfiio_name', name).setI32('pfiio_flags', flags).buf;
}

export function encodeU32(release: PfRelease, value: number): Buffer {
  return new StructView(release.structs.u_int32_t).setU32('value', value).buf;
}

export interface RuleCounters {
  evaluations: bigint;
  /** [in, out] */
  packets: [bigint, bigint];
  bytes: [bigint, bigint];
  statesCur: number;
}

/** Counters of the pf_rule inside a pfioc_rule the kernel filled (DIOCGETRULE). */
export function decodeRuleCounters(release: PfRelease, pfiocRule: Buffer): RuleCounters {
  const v = new StructView(release.structs.pfioc_rule, pfiocRule);
  return {
    evaluations: v.u64('rule.evaluations'),
    packets: [v.u64('rule.packets', 0), v.u64('rule.packets', 1)],
    bytes: [v.u64('rule.bytes', 0), v.u64('rule.bytes', 1)],
    statesCur: v.u32('rule.states_cur'),
  };
}
