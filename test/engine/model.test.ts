// A second, independently written model of pf's rule walk, compared with the reference evaluator
// on random compiled policies (no translations, so the walk does not depend on state). The model
// is deliberately built differently: an explicit frame stack instead of recursion, node's
// net.BlockList for prefix containment, port operators as interval sets, no skip steps.
import { BlockList } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { EvalPacket, EvalResult } from '../../src/engine/packet.js';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { formatPacketLine } from '../../src/engine/packet-line.js';
import type { AddrMatch, Ir, IrRule, PortMatch, Prefix } from '../../src/policy/ir.js';
import { randomPackets, randomPolicy, testSeed } from '../helpers/gen-policy.js';
import { compile } from './pf-text.js';

function inPrefix(p: Prefix, addr: string, af: 'inet' | 'inet6'): boolean {
  if (p.af !== af) return false;
  const bl = new BlockList();
  bl.addSubnet(p.addr, p.len, af === 'inet' ? 'ipv4' : 'ipv6');
  return bl.check(addr, af === 'inet' ? 'ipv4' : 'ipv6');
}

function addrOk(ir: Ir, m: AddrMatch, addr: string, af: 'inet' | 'inet6'): boolean {
  let hit: boolean;
  const h = m.host;
  if (h.type === 'any') hit = true;
  else if (h.type === 'prefix') hit = inPrefix(h.prefix, addr, af);
  else if (h.type === 'table') {
    // Longest containing entry decides; among equals a negated one wins.
    const containing = (ir.tables[h.name]?.entries ?? []).filter((e) => inPrefix(e.prefix, addr, af));
    containing.sort((x, y) => y.prefix.len - x.prefix.len || Number(y.neg) - Number(x.neg));
    hit = containing.length > 0 && !containing[0]!.neg;
  } else throw new Error(`model does not know ${h.type}`);
  return m.neg ? !hit : hit;
}

function portOk(m: PortMatch, p: number): boolean {
  const intervals: [number, number][] = {
    '=': [[m.lo, m.lo]],
    '!=': [[0, m.lo - 1], [m.lo + 1, 65535]],
    '<': [[0, m.lo - 1]],
    '<=': [[0, m.lo]],
    '>': [[m.lo + 1, 65535]],
    '>=': [[m.lo, 65535]],
    ':': [[m.lo, m.hi]],
    '><': [[m.lo + 1, m.hi - 1]],
    '<>': [[0, m.lo - 1], [m.hi + 1, 65535]],
  }[m.op] as [number, number][];
  return intervals.some(([a, b]) => a <= p && p <= b);
}

function matches(ir: Ir, r: IrRule, p: EvalPacket, flags: number): boolean {
  if (r.iface) {
    const member = r.iface.name === p.ifname || (ir.groups[r.iface.name] ?? []).includes(p.ifname);
    if (member === r.iface.neg) return false;
  }
  if (r.dir && r.dir !== p.dir) return false;
  if (r.af && r.af !== p.af) return false;
  if (r.proto !== null && r.proto !== p.proto) return false;
  if (!addrOk(ir, r.src, p.src, p.af) || !addrOk(ir, r.dst, p.dst, p.af)) return false;
  const hasPorts = p.proto === 6 || p.proto === 17;
  if (r.srcPort && (!hasPorts || !portOk(r.srcPort, p.sport))) return false;
  if (r.dstPort && (!hasPorts || !portOk(r.dstPort, p.dport))) return false;
  if (r.flags && p.proto === 6 && (flags & r.flags.mask) !== r.flags.bits) return false;
  if (r.icmpType) throw new Error('model does not know icmp-type');
  return true;
}

interface Frame {
  rules: number[];
  at: number;
  /** The anchor rule that opened this frame (null for main). */
  via: IrRule | null;
  /** Remaining targets of `via` after this one. */
  rest: string[];
}

/** pf's walk for one packet, as a frame machine. */
function model(ir: Ir, p: EvalPacket): Partial<EvalResult> {
  const F = 0x01, S = 0x02, R = 0x04, PSH = 0x08, A = 0x10, U = 0x20;
  let flags = p.tcpFlags;
  if (p.proto === 17 && p.dport === 0) return { verdict: 'block', reason: 'normalize' };
  if (p.proto === 6) {
    if (flags & S && flags & R) return { verdict: 'block', reason: 'normalize' };
    if (flags & S) flags &= ~F;
    if (!(flags & (S | A | R))) return { verdict: 'block', reason: 'normalize' };
    if (!(flags & A) && flags & (F | PSH | U)) return { verdict: 'block', reason: 'normalize' };
  }
  let decision: IrRule | null = null;
  let decisionVia: IrRule | null = null;
  const matchIds: number[] = [];
  const stack: Frame[] = [{ rules: ir.rulesets['']!.rules, at: 0, via: null, rest: [] }];
  outer: while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.at >= f.rules.length) {
      stack.pop();
      if (f.rest.length > 0) {
        const [next, ...rest] = f.rest;
        stack.push({ rules: ir.rulesets[next!]?.rules ?? [], at: 0, via: f.via, rest });
        continue;
      }
      // Leaving an anchor rule's last target: a quick plain anchor stops if it decided directly
      // (pf does not apply this to wildcard anchors: only a quick rule stops those).
      if (f.via && f.via.quick && !f.via.call?.wildcard && decision && decisionVia === f.via) break outer;
      continue;
    }
    const r = ir.rules[f.rules[f.at++]!]!;
    if (!matches(ir, r, p, flags)) continue;
    if (r.action === 'anchor') {
      const targets = r.call?.targets ?? [];
      if (stack.length > 64) return { verdict: 'block', reason: 'rule', ruleId: r.id };
      if (targets.length === 0) {
        continue;
      }
      const [first, ...rest] = targets;
      stack.push({ rules: ir.rulesets[first!]?.rules ?? [], at: 0, via: r, rest });
      continue;
    }
    if (r.action === 'match') matchIds.push(r.id);
    else {
      decision = r;
      decisionVia = f.via;
    }
    if (r.quick) break;
  }
  if (!decision) return { verdict: 'pass', reason: 'default', ruleId: null, matchRuleIds: matchIds };
  const pass = decision.action === 'pass';
  return {
    verdict: pass ? 'pass' : 'block',
    reason: 'rule',
    ruleId: decision.id,
    anchorRuleId: decisionVia?.id ?? null,
    matchRuleIds: matchIds,
    stateCreated: pass && decision.state !== 'none' && !(p.proto === 1 && [3, 4, 5, 11, 12].includes(p.icmpType ?? -1)) && !(p.proto === 58 && [1, 2, 3, 4, 137].includes(p.icmpType ?? -1)),
    returnAction: !pass && decision.blockPolicy === 'return' ? (p.proto === 6 ? 'rst' : 'icmp-unreach') : null,
  };
}

describe('independent model of the rule walk', () => {
  it('agrees with the reference evaluator on every packet that goes through the rules', () => {
    const seed = testSeed('model');
    let compared = 0;
    for (let k = 0; k < 150; k++) {
      const info = randomPolicy((seed + k) >>> 0, { translations: false });
      const ir = compile(info.text);
      const ev = new ReferenceEvaluator(ir);
      for (const p of randomPackets((seed + k) >>> 0, 150, info)) {
        const got = ev.evaluate(p);
        if (got.reason === 'state') continue;
        const want = model(ir, p);
        expect(got, `policy seed ${info.seed}: ${formatPacketLine(p)}\n${info.text}`).toMatchObject(want);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(10_000);
  });
});
