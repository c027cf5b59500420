// Backend layer (pf): live table operations outside a ruleset transaction (pf-semantics §4 "Live
// updates" and "Reading counters"): atomically replace a table's addresses (DIOCRSETADDRS, how
// tenant membership changes without a reload), create persistent tables (DIOCRADDTABLES), and read
// table statistics (DIOCRGETTSTATS, growing the buffer to the size the kernel reports).
import type { TableEntry } from '../../policy/ir.js';
import { StructView } from './abi/layout.js';
import { PF, type PfRelease } from './abi/releases.js';
import { BackendError, PfIoctlError } from './errors.js';
import { encodeTable } from './ioctl-args.js';
import type { IoctlDevice } from './plan.js';

function call(device: IoctlDevice, release: PfRelease, name: 'DIOCRSETADDRS' | 'DIOCRADDTABLES' | 'DIOCRGETTSTATS', arg: Buffer, payload: { ptrOffset: number; buf: Buffer }, what: string): void {
  try {
    device.ioctl(release.ioctls[name].request, arg, payload);
  } catch (e) {
    const errno = (e as { errno?: unknown }).errno;
    throw new PfIoctlError(name, typeof errno === 'string' ? errno : 'EIO', what, { cause: e });
  }
}

export interface SetAddrsResult {
  added: number;
  deleted: number;
  changed: number;
}

/** Replaces the contents of table <name> in `anchor` atomically. */
export function setTableAddrs(release: PfRelease, device: IoctlDevice, anchor: string, name: string, entries: readonly TableEntry[]): SetAddrsResult {
  const a = encodeTable(release, { anchor, name, entries });
  call(device, release, 'DIOCRSETADDRS', a.arg, a.payload, `table <${name}> in "${anchor}"`);
  const v = new StructView(release.structs.pfioc_table, a.arg);
  return { added: v.i32('pfrio_nadd'), deleted: v.i32('pfrio_ndel'), changed: v.i32('pfrio_nchange') };
}

/** Creates tables (persistent unless flags say otherwise); returns how many were new. */
export function addTables(release: PfRelease, device: IoctlDevice, anchor: string, names: readonly string[], flags: number = PF.tflag.persist): number {
  const tl = release.structs.pfr_table;
  const buf = Buffer.alloc(tl.size * names.length);
  names.forEach((n, i) => {
    new StructView(tl, buf, i * tl.size).setString('pfrt_anchor', anchor).setString('pfrt_name', n).setU32('pfrt_flags', flags);
  });
  const v = new StructView(release.structs.pfioc_table);
  v.setI32('pfrio_esize', tl.size).setI32('pfrio_size', names.length);
  call(device, release, 'DIOCRADDTABLES', v.buf, { ptrOffset: v.field('pfrio_buffer').offset, buf }, `${names.length} tables in "${anchor}"`);
  return v.i32('pfrio_nadd');
}

export interface TableStats {
  anchor: string;
  name: string;
  flags: number;
  /** Addresses in the table. */
  count: number;
  /** [dir in/out][block, match, pass, xpass] */
  packets: bigint[][];
  bytes: bigint[][];
  match: bigint;
  nomatch: bigint;
}

/** Table statistics of `anchor` (DIOCRGETTSTATS), retrying with a bigger buffer when needed. */
export function getTableStats(release: PfRelease, device: IoctlDevice, anchor: string, opts: { initial?: number; maxTables?: number } = {}): TableStats[] {
  const sl = release.structs.pfr_tstats;
  const maxTables = opts.maxTables ?? 1000;
  let cap = Math.max(1, opts.initial ?? 16);
  for (let attempt = 0; attempt < 4; attempt++) {
    const buf = Buffer.alloc(sl.size * cap);
    const v = new StructView(release.structs.pfioc_table);
    v.setString('pfrio_table.pfrt_anchor', anchor).setI32('pfrio_esize', sl.size).setI32('pfrio_size', cap);
    call(device, release, 'DIOCRGETTSTATS', v.buf, { ptrOffset: v.field('pfrio_buffer').offset, buf }, `anchor "${anchor}"`);
    const n = v.i32('pfrio_size');
    if (n < 0) throw new BackendError(`DIOCRGETTSTATS returned size ${n}`, 'ERR_ZTB_PF_COUNTERS');
    if (n > cap) {
      // The kernel reports how many there are when the buffer is too small: grow and ask again.
      if (n > maxTables) throw new BackendError(`anchor "${anchor}" has ${n} tables, more than the ${maxTables} we read`, 'ERR_ZTB_PF_COUNTERS');
      cap = n;
      continue;
    }
    const out: TableStats[] = [];
    for (let i = 0; i < n; i++) {
      const s = new StructView(sl, buf, i * sl.size);
      const grid = (f: string): bigint[][] => [0, 1].map((d) => [0, 1, 2, 3].map((o) => s.u64(f, d * 4 + o)));
      out.push({
        anchor: s.string('pfrts_t.pfrt_anchor'),
        name: s.string('pfrts_t.pfrt_name'),
        flags: s.u32('pfrts_t.pfrt_flags'),
        count: s.i32('pfrts_cnt'),
        packets: grid('pfrts_packets'),
        bytes: grid('pfrts_bytes'),
        match: s.u64('pfrts_match'),
        nomatch: s.u64('pfrts_nomatch'),
      });
    }
    return out;
  }
  throw new BackendError(`the table list of "${anchor}" kept growing while we read it`, 'ERR_ZTB_PF_COUNTERS');
}
