// Golden layout tests for the pf ABI tables: the sizes, offsets and ioctl request numbers that the
// OpenBSD kernel checks (the request number embeds sizeof(arg)), computed by our layout calculator
// from the per-release field lists and compared with the values pfvar.h r1.543 / r1.548 imply.
import { describe, expect, it } from 'vitest';
import { StructView, layoutOf, struct, u8, u32, u64 } from '../../../src/backends/pf/abi/layout.js';
import { AF, RELEASES, getRelease, io, iowr, releaseForOsRelease } from '../../../src/backends/pf/abi/releases.js';
import { BackendError } from '../../../src/backends/pf/errors.js';

const r543 = getRelease('pfvar-1.543');
const r548 = getRelease('pfvar-1.548');

describe('struct sizes', () => {
  const common: Record<string, number> = {
    pf_addr_wrap: 48,
    pf_rule_addr: 56,
    pf_pool: 136,
    pfioc_trans: 16,
    pfioc_trans_e: 1032,
    pfr_table: 1064,
    pfr_addr: 52,
    pfr_tstats: 1232,
    pfioc_table: 1104,
    pf_status: 520,
    pfioc_iface: 40,
  };
  for (const r of [r543, r548]) {
    it(`${r.id}: shared structs`, () => {
      for (const [name, size] of Object.entries(common)) {
        expect([name, r.structs[name as keyof typeof r.structs].size]).toEqual([name, size]);
      }
    });
  }
  it('pf_rule and pfioc_rule differ per release', () => {
    expect(r543.structs.pf_rule.size).toBe(1344);
    expect(r543.structs.pfioc_rule.size).toBe(3408);
    expect(r548.structs.pf_rule.size).toBe(1360);
    expect(r548.structs.pfioc_rule.size).toBe(3424);
  });
});

describe('key offsets', () => {
  const ruleOffsets: Record<string, number> = {
    skip: 112,
    label: 184,
    nat: 584,
    rdr: 720,
    route: 856,
    evaluations: 1008,
    packets: 1016,
    bytes: 1032,
    states_cur: 1172,
    rtableid: 1084,
    onrdomain: 1088,
    action: 1280,
    direction: 1281,
    log: 1282,
    quick: 1284,
    keep_state: 1287,
    af: 1288,
    proto: 1289,
    flags: 1294,
    flagset: 1295,
  };
  for (const r of [r543, r548]) {
    it(`${r.id}: pf_rule`, () => {
      const got = Object.fromEntries(Object.keys(ruleOffsets).map((k) => [k, r.structs.pf_rule.fields.get(k)?.offset]));
      expect(got).toEqual(ruleOffsets);
    });
    it(`${r.id}: pfioc_rule`, () => {
      const f = r.structs.pfioc_rule.fields;
      expect([f.get('anchor')?.offset, f.get('anchor_call')?.offset, f.get('rule')?.offset]).toEqual([12, 1036, 2064]);
      expect(f.get('rule.evaluations')?.offset).toBe(2064 + 1008);
    });
    it(`${r.id}: nested address fields`, () => {
      const w = r.structs.pf_addr_wrap.fields;
      expect([w.get('v.a.addr')?.offset, w.get('v.a.mask')?.offset, w.get('v.ifname')?.offset, w.get('p')?.offset, w.get('type')?.offset, w.get('iflags')?.offset]).toEqual([0, 16, 0, 32, 40, 41]);
      const a = r.structs.pf_rule_addr.fields;
      expect([a.get('port')?.offset, a.get('neg')?.offset, a.get('port_op')?.offset]).toEqual([48, 52, 53]);
      const p = r.structs.pf_pool.fields;
      expect([p.get('proxy_port')?.offset, p.get('port_op')?.offset, p.get('opts')?.offset]).toEqual([126, 130, 131]);
      const t = r.structs.pfioc_table.fields;
      expect([t.get('pfrio_buffer')?.offset, t.get('pfrio_esize')?.offset, t.get('pfrio_flags')?.offset, t.get('pfrio_ticket')?.offset]).toEqual([1064, 1072, 1096, 1100]);
      const e = r.structs.pfioc_trans_e.fields;
      expect([e.get('anchor')?.offset, e.get('ticket')?.offset]).toEqual([4, 1028]);
    });
  }
  it('r1.548 limiter slots and the shifted tail', () => {
    const f = r548.structs.pf_rule.fields;
    expect([f.get('statelim')?.offset, f.get('sourcelim')?.offset, f.get('divert')?.offset, f.get('exptime')?.offset]).toEqual([1312, 1320, 1328, 1352]);
    const g = r543.structs.pf_rule.fields;
    expect([g.has('statelim'), g.get('divert')?.offset, g.get('exptime')?.offset]).toEqual([false, 1312, 1336]);
  });
});

describe('ioctl request numbers', () => {
  it('follows _IOWR/_IO from <sys/ioccom.h>', () => {
    expect(iowr('D', 4, 3408)).toBe(0xcd504404);
    expect(iowr('D', 4, 3424)).toBe(0xcd604404);
    expect(io('D', 1)).toBe(0x20004401); // DIOCSTART
    expect(() => iowr('D', 1, 0x2000)).toThrow(RangeError);
  });
  it('r1.543', () => {
    const n = Object.fromEntries(Object.values(r543.ioctls).map((i) => [i.name, i.request >>> 0]));
    expect(n).toEqual({
      DIOCADDRULE: 0xcd504404,
      DIOCGETRULES: 0xcd504406,
      DIOCGETRULE: 0xcd504407,
      DIOCSETSTATUSIF: 0xc0284414,
      DIOCGETSTATUS: 0xc2084415,
      DIOCGETRULESETS: 0xc444443a,
      DIOCGETRULESET: 0xc444443b,
      DIOCRADDTABLES: 0xc450443d,
      DIOCRGETTSTATS: 0xc4504440,
      DIOCRADDADDRS: 0xc4504443,
      DIOCRDELADDRS: 0xc4504444,
      DIOCRSETADDRS: 0xc4504445,
      DIOCRINADEFINE: 0xc450444d,
      DIOCXBEGIN: 0xc0104451,
      DIOCXCOMMIT: 0xc0104452,
      DIOCXROLLBACK: 0xc0104453,
      DIOCSETIFFLAG: 0xc0284459,
      DIOCCLRIFFLAG: 0xc028445a,
      DIOCXEND: 0xc0044464,
    });
  });
  it('r1.548 changes exactly the pfioc_rule ioctls', () => {
    const changed = Object.values(r548.ioctls)
      .filter((i) => i.request !== r543.ioctls[i.name].request)
      .map((i) => [i.name, i.request >>> 0]);
    expect(changed).toEqual([
      ['DIOCADDRULE', 0xcd604404],
      ['DIOCGETRULES', 0xcd604406],
      ['DIOCGETRULE', 0xcd604407],
    ]);
  });
});

describe('release table', () => {
  it('refuses unknown releases with a typed error', () => {
    expect(() => getRelease('pfvar-1.400')).toThrow(BackendError);
    expect(() => getRelease('pfvar-1.400')).toThrow(/unknown pf ABI release "pfvar-1.400"; supported: pfvar-1.543, pfvar-1.548/);
    expect(() => releaseForOsRelease('6.9')).toThrow(BackendError);
    expect(releaseForOsRelease('7.7').id).toBe('pfvar-1.543');
  });
  it('lists both releases with labels', () => {
    expect([...RELEASES.keys()]).toEqual(['pfvar-1.543', 'pfvar-1.548']);
    for (const r of RELEASES.values()) expect(r.label).toMatch(/pfvar\.h r1\.54[38]/);
  });
  it('uses OpenBSD address family numbers, not the host ones', () => {
    expect(AF.inet6).toBe(24);
    expect(AF.inet).toBe(2);
  });
});

describe('layout calculator', () => {
  it('pads and aligns like C', () => {
    const l = layoutOf(struct('t', [['a', u8], ['b', u64], ['c', u32], ['d', u8]]));
    expect([l.fields.get('b')?.offset, l.fields.get('c')?.offset, l.fields.get('d')?.offset, l.size, l.align]).toEqual([8, 16, 20, 24, 8]);
  });
  it('StructView refuses unknown fields, wrong widths and overlong strings', () => {
    const v = new StructView(r543.structs.pfioc_iface);
    expect(() => v.setU8('nope', 1)).toThrow(/no field nope/);
    expect(() => v.setU8('pfiio_esize', 1)).toThrow(/4 bytes wide/);
    expect(() => v.setString('pfiio_name', 'x'.repeat(16))).toThrow(/at most 15/);
    expect(() => v.setI32('pfiio_flags', 2 ** 31)).toThrow(RangeError);
    v.setString('pfiio_name', 'vether0').setI32('pfiio_flags', 0x100);
    expect(v.string('pfiio_name')).toBe('vether0');
    expect(v.buf.readInt32LE(36)).toBe(0x100);
  });
});
