// Randomized check of the encoder against the IR it encodes: every kernel rule of random compiled
// policies (test/helpers/gen-policy.ts) is decoded and each field compared with the IR rule it
// came from, written out independently of the encoder (OpenBSD constants, host-order views of
// network-order ports, address text). Prints its seed; replay with ZTB_SEED.
import { describe, expect, it } from 'vitest';
import { getRelease } from '../../../src/backends/pf/abi/releases.js';
import { decodeRule, type DecodedRule } from '../../../src/backends/pf/decode.js';
import { encodeIr } from '../../../src/backends/pf/encode.js';
import { compilePf } from '../../../src/policy/compile.js';
import type { AddrMatch, IrRule, PortMatch } from '../../../src/policy/ir.js';
import { randomPolicy, testSeed } from '../../helpers/gen-policy.js';

const R = getRelease('pfvar-1.543');
const OPS: Record<PortMatch['op'], number> = { '=': 2, '!=': 3, '<': 4, '<=': 5, '>': 6, '>=': 7, ':': 9, '><': 1, '<>': 8 };
const MODES = { address: 0, network: 1, broadcast: 2, peer: 4, primary: 8 } as const;

function v6Full(addr: string): string {
  // The decoder prints all eight groups without compression; expand the IR's canonical form.
  const [head, tail] = addr.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16).toString(16)).join(':');
}

function maskText(af: 'inet' | 'inet6', len: number): string {
  const bytes = new Array<number>(af === 'inet' ? 4 : 16).fill(0);
  for (let i = 0; i < len; i++) bytes[i >> 3]! |= 0x80 >> (i & 7);
  if (af === 'inet') return bytes.join('.');
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return g.join(':');
}

function checkAddr(m: AddrMatch, d: DecodedRule['src'], where: string): void {
  expect(d.neg, `${where} neg`).toBe(m.neg ? 1 : 0);
  const h = m.host;
  switch (h.type) {
    case 'any':
      expect([d.type, d.addr?.replace(/[0:.]/g, ''), d.mask?.replace(/[0:.]/g, '')], where).toEqual(['addrmask', '', '']);
      break;
    case 'prefix':
      expect(d.type, where).toBe('addrmask');
      expect(d.addr, where).toBe(h.prefix.af === 'inet' ? h.prefix.addr : v6Full(h.prefix.addr));
      expect(d.mask, where).toBe(maskText(h.prefix.af, h.prefix.len));
      break;
    case 'table':
      expect([d.type, d.tblname], where).toEqual(['table', h.name]);
      break;
    case 'dynif':
      expect([d.type, d.ifname, d.iflags], where).toEqual(['dyniftl', h.ifname, MODES[h.mode]]);
      break;
    case 'ifaddr':
      expect([d.type, d.ifname], where).toEqual(['dyniftl', h.ifname]);
      break;
    default:
      throw new Error(`${where}: unexpected host ${h.type}`);
  }
}

function checkPort(p: PortMatch | null, d: DecodedRule['src'], where: string): void {
  if (!p) {
    expect([d.portOp, d.port], where).toEqual([0, [0, 0]]);
    return;
  }
  const binary = p.op === ':' || p.op === '><' || p.op === '<>';
  expect([d.portOp, d.port], where).toEqual([OPS[p.op], [p.lo, binary ? p.hi : 0]]);
}

function check(r: IrRule, d: DecodedRule): void {
  const w = `IR ${r.id} "${r.text}"`;
  expect(d.action, w).toBe({ pass: 0, block: 1, match: 12, anchor: 0 }[r.action]);
  expect(d.direction, w).toBe(r.dir === 'in' ? 1 : r.dir === 'out' ? 2 : 0);
  expect(d.quick, w).toBe(r.quick ? 1 : 0);
  expect([d.ifname, d.ifnot], w).toEqual(r.iface ? [r.iface.name, r.iface.neg ? 1 : 0] : ['', 0]);
  if (r.af) expect(d.af, w).toBe(r.af === 'inet' ? 2 : 24);
  else expect([0, 2, 24], w).toContain(d.af);
  expect(d.proto, w).toBe(r.proto ?? 0);
  checkAddr(r.src, d.src, `${w} src`);
  checkAddr(r.dst, d.dst, `${w} dst`);
  checkPort(r.srcPort, d.src, `${w} src port`);
  checkPort(r.dstPort, d.dst, `${w} dst port`);
  expect([d.flags, d.flagset], w).toEqual(r.flags ? [r.flags.bits, r.flags.mask] : [0, 0]);
  expect(d.keepState, w).toBe({ none: 0, keep: 1, modulate: 2, synproxy: 3 }[r.state]);
  expect(d.ruleFlag & 0x08, w).toBe(r.action === 'block' && r.blockPolicy === 'return' ? 0x08 : 0);
  expect(d.log & 0x01, w).toBe(r.log ? 1 : 0);
  if (r.icmpType) expect([d.type, d.code], w).toEqual([r.icmpType.type + 1, r.icmpType.code === null ? 0 : r.icmpType.code + 1]);
  expect([d.rtableid, d.onrdomain, d.route.type], w).toEqual([-1, -1, 'none']);
  expect(d.nat.type === 'none', w).toBe(r.natTo === null);
  expect(d.rdr.type === 'none', w).toBe(r.rdrTo === null);
  if (r.natTo) expect(d.nat.proxyPort, w).toEqual([50001, 65535]);
  if (r.rdrTo?.port) expect(d.rdr.proxyPort[0], w).toBe(r.rdrTo.port.lo);
  const sf = (r.scrub?.noDf ? 0x20 : 0) | (r.scrub?.randomId ? 0x80 : 0) | (r.scrub?.reassembleTcp ? 0x100 : 0);
  expect(d.scrubFlags, w).toBe(sf);
  expect(d.maxMss, w).toBe(r.scrub?.maxMss ?? 0);
}

describe('encoder vs IR on random policies', () => {
  it('every field of every kernel rule matches its IR rule', () => {
    const base = testSeed('pf encode random');
    let checked = 0;
    for (let i = 0; i < 60; i++) {
      const seed = (base + i) >>> 0;
      const info = randomPolicy(seed);
      const ir = compilePf({ units: [{ file: `random-${seed}.pf.conf`, text: info.text, ruleset: '' }] });
      try {
        for (const rules of encodeIr(ir, { release: R }).byAnchor.values()) {
          for (const k of rules) {
            check(ir.rules[k.irId]!, decodeRule(R, k.rule));
            checked++;
          }
        }
      } catch (e) {
        throw new Error(`seed ${seed} (replay with ZTB_SEED=${seed}): ${(e as Error).message}\n--- policy ---\n${info.text}`);
      }
    }
    expect(checked).toBeGreaterThan(100);
  });
});
