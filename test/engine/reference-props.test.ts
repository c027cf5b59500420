// Property tests of the reference evaluator on hand-built IR: each property compares the evaluator
// with a tiny independent model of one pf rule (quick/last match, negation, port operators, state
// direction, TCP teardown and timeouts, state limit, reload). Seeds are printed; replay with
// ZTB_SEED=<seed>.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { EvalPacket } from '../../src/engine/packet.js';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { parsePacketLine } from '../../src/engine/packet-line.js';
import type { PortOp } from '../../src/policy/ir.js';
import { testSeed } from '../helpers/gen-policy.js';
import { addr, buildIr, port, table, type RuleSpec } from './ir-builder.js';

const P = (l: string) => parsePacketLine(l);
const NUM_RUNS = 200;
const v4 = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');

function run(label: string, prop: fc.IProperty<unknown> | fc.IAsyncProperty<unknown>): void {
  const seed = testSeed(label);
  fc.assert(prop as fc.IProperty<unknown>, { seed, numRuns: NUM_RUNS });
}

describe('properties: rule walk', () => {
  it('quick precedence and last match win', () => {
    // Each rule matches iff its bit is set in the packet's source address (10.0.0.x: bit i of x).
    const arbRule = fc.record({ action: fc.constantFrom('pass', 'block'), quick: fc.boolean(), bit: fc.integer({ min: 0, max: 7 }) });
    run(
      'quick/last match',
      fc.property(fc.array(arbRule, { maxLength: 12 }), fc.integer({ min: 0, max: 255 }), (rules, x) => {
        const specs: RuleSpec[] = rules.map((r) => ({
          action: r.action as 'pass' | 'block',
          quick: r.quick,
          src: table(`b${r.bit}`),
          state: 'none',
        }));
        const tables: Record<string, { cidr: string }[]> = {};
        for (let b = 0; b < 8; b++) {
          tables[`b${b}`] = [];
          for (let y = 0; y < 256; y++) if (y & (1 << b)) tables[`b${b}`]!.push({ cidr: `10.0.0.${y}/32` });
        }
        const ev = new ReferenceEvaluator(buildIr({ '': specs }, { tables }));
        const res = ev.evaluate(P(`in on em0 udp 10.0.0.${x}:1 > 10.9.9.9:53`));
        // Model: the first quick matching rule, else the last matching rule, else default pass.
        const matching = rules.map((r, i) => ({ ...r, i })).filter((r) => x & (1 << r.bit));
        const q = matching.find((r) => r.quick);
        const decider = q ?? matching[matching.length - 1];
        expect(res.ruleId).toBe(decider?.i ?? null);
        expect(res.verdict).toBe(decider ? decider.action : 'pass');
      }),
    );
  });

  it('skip steps change evaluation counts only, never verdicts', () => {
    const arbSpec: fc.Arbitrary<RuleSpec> = fc.record({
      action: fc.constantFrom('pass', 'block', 'match') as fc.Arbitrary<'pass' | 'block' | 'match'>,
      quick: fc.boolean(),
      dir: fc.constantFrom('in', 'out', null) as fc.Arbitrary<'in' | 'out' | null>,
      proto: fc.constantFrom(6, 17, null),
      src: fc.constantFrom(addr('10.0.0.0/8'), addr('10.1.0.0/16', true), addr('0.0.0.0/0')),
      dstPort: fc.constantFrom(null, port('=', 80), port('<', 1024)),
      state: fc.constantFrom('none', 'keep') as fc.Arbitrary<'none' | 'keep'>,
    }).map((r) => ({ ...r, proto: r.dstPort ? (r.proto ?? 6) : r.proto }));
    const arbPkt = fc.record({
      dir: fc.constantFrom('in', 'out'),
      proto: fc.constantFrom('tcp', 'udp'),
      a: fc.integer({ min: 0, max: 3 }),
      p: fc.constantFrom(22, 80, 1023, 1024, 8080),
    });
    run(
      'skip steps',
      fc.property(fc.array(arbSpec, { maxLength: 15 }), fc.array(arbPkt, { minLength: 1, maxLength: 20 }), (specs, pkts) => {
        const ir = buildIr({ '': specs });
        const a = new ReferenceEvaluator(ir);
        const b = new ReferenceEvaluator(ir, { skipSteps: false });
        for (const p of pkts) {
          const src = ['10.1.2.3', '10.2.0.1', '192.168.0.1', '10.1.0.0'][p.a]!;
          const pkt = P(`${p.dir} on em0 ${p.proto} ${src}:4000 > 10.9.9.9:${p.p}`);
          expect(a.evaluate(pkt)).toEqual(b.evaluate(pkt));
        }
        const ca = a.counters();
        const cb = b.counters();
        ca.forEach((c, i) => {
          expect(c.evaluations).toBeLessThanOrEqual(cb[i]!.evaluations);
          expect({ ...c, evaluations: 0 }).toEqual({ ...cb[i]!, evaluations: 0 });
        });
      }),
    );
  });

  it('negation: ! prefix, ! table (with ! entries), ! interface', () => {
    run(
      'negation',
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 32 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.boolean(),
        fc.constantFrom('em0', 'em1', 'vether0'),
        (base, len, x, neg, ifname) => {
          const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
          const net = (base & mask) >>> 0;
          const inside = ((x & mask) >>> 0) === net;
          const ir = buildIr(
            {
              '': [
                { action: 'block' },
                { action: 'pass', src: addr(`${v4(net)}/${len}`, neg), proto: 17, dstPort: port('=', 1) },
                { action: 'pass', src: table('t', neg), proto: 17, dstPort: port('=', 2) },
                { action: 'pass', iface: { name: 'em0', neg }, proto: 17, dstPort: port('=', 3) },
              ],
            },
            // The table holds the prefix with its first half carved out again by a `!` entry.
            { tables: { t: len < 32 ? [{ cidr: `${v4(net)}/${len}` }, { cidr: `${v4(net)}/${len + 1}`, neg: true }] : [{ cidr: `${v4(net)}/32` }] } },
          );
          const ev = new ReferenceEvaluator(ir);
          const inTable = inside && (len === 32 || ((x >>> (31 - len)) & 1) === 1);
          const pass = (dport: number) => ev.evaluate(P(`in on ${ifname} udp ${v4(x)}:7 > 10.9.9.9:${dport}`)).verdict === 'pass';
          expect(pass(1)).toBe(inside !== neg);
          expect(pass(2)).toBe(inTable !== neg);
          expect(pass(3)).toBe((ifname === 'em0') !== neg);
        },
      ),
    );
  });

  it('port operators at their boundaries', () => {
    const ops: PortOp[] = ['=', '!=', '<', '<=', '>', '>=', ':', '><', '<>'];
    // The model enumerates the admitted ports as a set, by the words of pf.conf(5).
    const admitted = (op: PortOp, lo: number, hi: number, p: number): boolean => {
      const inRange = (a: number, b: number) => p >= a && p <= b;
      switch (op) {
        case '=':
          return inRange(lo, lo);
        case '!=':
          return !inRange(lo, lo);
        case '<':
          return inRange(0, lo - 1);
        case '<=':
          return inRange(0, lo);
        case '>':
          return inRange(lo + 1, 65535);
        case '>=':
          return inRange(lo, 65535);
        case ':':
          return inRange(lo, hi);
        case '><':
          return inRange(lo + 1, hi - 1);
        case '<>':
          return !inRange(lo, hi);
      }
    };
    run(
      'port boundaries',
      fc.property(fc.constantFrom(...ops), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), fc.boolean(), (op, a, b, onSrc) => {
        const binary = op === ':' || op === '><' || op === '<>';
        const lo = binary ? Math.min(a, b) : a;
        const hi = binary ? Math.max(a, b) : a;
        const m = port(op, lo, hi);
        const ev = new ReferenceEvaluator(
          buildIr({ '': [{ action: 'block' }, { action: 'pass', proto: 6, state: 'none', flags: null, ...(onSrc ? { srcPort: m } : { dstPort: m }) }] }),
        );
        for (const p of [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, 65535]) {
          if (p < 0 || p > 65535) continue;
          if (!onSrc && p === 0) continue;
          const pkt = onSrc ? P(`in on em0 tcp 10.0.0.1:${p} > 10.0.0.2:80`) : P(`in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:${p}`);
          expect(ev.evaluate(pkt).verdict, `${op} ${lo} ${hi} port ${p}`).toBe(admitted(op, lo, hi, p) ? 'pass' : 'block');
        }
        // A rule with a port test never matches a portless packet.
        expect(ev.evaluate(P('in on em0 icmp 10.0.0.1 > 10.0.0.2')).verdict).toBe('block');
      }),
    );
  });
});

describe('properties: states', () => {
  const tuple = fc.record({
    a: fc.integer({ min: 1, max: 0xfffffffe }),
    b: fc.integer({ min: 1, max: 0xfffffffe }),
    sp: fc.integer({ min: 1, max: 65535 }),
    dp: fc.integer({ min: 1, max: 65535 }),
    proto: fc.constantFrom('tcp', 'udp'),
    dir: fc.constantFrom('in', 'out'),
  }).filter((t) => t.a !== t.b);

  it('replies match, forwarded copies and reverse-direction packets do not', () => {
    run(
      'state direction',
      fc.property(tuple, fc.constantFrom('em0', 'em1'), (t, otherIf) => {
        const other = t.dir === 'in' ? 'out' : 'in';
        const ev = new ReferenceEvaluator(buildIr({ '': [{ action: 'block' }, { action: 'pass', dir: t.dir as 'in' | 'out', src: addr(v4(t.a)) }] }));
        const line = (dir: string, s: number, sp: number, d: number, dp: number, f: string) =>
          P(`${dir} on em0 ${t.proto} ${v4(s)}:${sp} > ${v4(d)}:${dp}${t.proto === 'tcp' ? ` flags ${f}` : ''}`);
        expect(ev.evaluate(line(t.dir, t.a, t.sp, t.b, t.dp, 'S')).stateCreated).toBe(true);
        const reply = { ...line(other, t.b, t.dp, t.a, t.sp, 'SA'), ifname: otherIf };
        expect(ev.evaluate(reply).reason).toBe('state');
        expect(ev.evaluate(line(t.dir, t.a, t.sp, t.b, t.dp, 'A')).reason).toBe('state');
        // Forwarded copy: same tuple, other direction (the rule is for one direction only).
        expect(ev.evaluate(line(other, t.a, t.sp, t.b, t.dp, 'A')).verdict).toBe('block');
        // Reverse packet in the creating direction.
        expect(ev.evaluate(line(t.dir, t.b, t.dp, t.a, t.sp, 'A'))).toMatchObject({ verdict: 'block', reason: 'rule', ruleId: 0 });
      }),
    );
  });

  it('TCP: RST and FIN teardown, timeouts with the injected clock', () => {
    run(
      'tcp teardown',
      fc.property(fc.boolean(), fc.integer({ min: 0, max: 200 }), (useRst, wait) => {
        let now = 5_000_000;
        const ev = new ReferenceEvaluator(buildIr({ '': [{ action: 'block' }, { action: 'pass', dir: 'in', proto: 6 }] }), { clock: () => now });
        const c2s = (f: string) => ev.evaluate(P(`in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80 flags ${f}`));
        const s2c = (f: string) => ev.evaluate(P(`out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags ${f}`));
        c2s('S');
        s2c('SA');
        c2s('A');
        expect(ev.states()[0]!.timeout).toBe('tcp.established');
        let expectTimeout: number;
        if (useRst) {
          expect(s2c('R').reason).toBe('state');
          expectTimeout = 90;
        } else {
          c2s('FA');
          s2c('A');
          s2c('FA');
          c2s('A');
          expectTimeout = 90;
        }
        expect(ev.states()[0]!.timeout).toBe('tcp.closed');
        now += wait * 1000;
        const alive = wait < expectTimeout;
        expect(ev.states()).toHaveLength(alive ? 1 : 0);
        // After expiry the next ACK goes through the rules (and is blocked: the pass needs SYN).
        expect(c2s('A').verdict).toBe(alive ? 'pass' : 'block');
      }),
    );
  });

  it('state limit: exactly maxStates states, the rest refused', () => {
    run(
      'state limit',
      fc.property(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }), (max, extra) => {
        const ev = new ReferenceEvaluator(buildIr({ '': [{ action: 'pass', proto: 17 }] }), { maxStates: max });
        const reasons = Array.from({ length: max + extra }, (_, i) => ev.evaluate(P(`in on em0 udp 10.0.0.1:${i + 1} > 10.0.0.2:53`)).reason);
        expect(reasons.filter((r) => r === 'rule')).toHaveLength(max);
        expect(reasons.filter((r) => r === 'state-limit')).toHaveLength(extra);
        expect(ev.states()).toHaveLength(max);
        expect(ev.stats().stateLimitDrops).toBe(extra);
      }),
    );
  });

  it('reload keeps states and their old rule ids', () => {
    run(
      'reload',
      fc.property(fc.array(tuple, { minLength: 1, maxLength: 10 }), fc.integer({ min: 0, max: 5 }), (ts, pad) => {
        const ev = new ReferenceEvaluator(buildIr({ '': [{ action: 'pass' }] }));
        const pkts: EvalPacket[] = ts.map((t) => P(`${t.dir} on em0 ${t.proto} ${v4(t.a)}:${t.sp} > ${v4(t.b)}:${t.dp}`));
        const created = pkts.map((p) => ev.evaluate(p).stateCreated);
        // The new ruleset blocks everything quick and has the pass rule elsewhere.
        ev.reload(buildIr({ '': [...Array.from({ length: pad }, () => ({ action: 'match' as const })), { action: 'block', quick: true }] }));
        pkts.forEach((p, i) => {
          const reply: EvalPacket = { ...p, dir: p.dir === 'in' ? 'out' : 'in', src: p.dst, dst: p.src, sport: p.dport, dport: p.sport, tcpFlags: p.proto === 6 ? 0x12 : 0 };
          const r = ev.evaluate(reply);
          if (created[i]) expect(r).toMatchObject({ verdict: 'pass', reason: 'state', ruleId: 0 });
        });
      }),
    );
  });
});
