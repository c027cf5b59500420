// Randomized tests over compiled pf text from test/helpers/gen-policy.ts: list expansion equals
// the written-out rules, skip steps never change a verdict, every created state lets its reply
// through (translated back), and the generator honours its feature switches. Seeds are printed;
// replay with ZTB_SEED=<seed>.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { EvalPacket, EvalResult } from '../../src/engine/packet.js';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { parsePacketLine, formatPacketLine } from '../../src/engine/packet-line.js';
import { arbPacketSeq, arbPolicy, randomPackets, randomPolicy, Rng, testSeed } from '../helpers/gen-policy.js';
import { compile } from './pf-text.js';

describe('list expansion equals the written-out rules', () => {
  it('verdicts, states and deciding rule text agree', () => {
    const seed = testSeed('list expansion');
    const r = new Rng(seed);
    for (let round = 0; round < 150; round++) {
      const ifs = r.chance(0.5) ? ['em0', 'em1'] : [r.pick(['em0', 'em1'])];
      const srcs = r.chance(0.5) ? ['10.1.0.0/16', '10.2.0.0/16'] : [r.pick(['10.1.0.0/16', '10.0.0.0/8'])];
      const ports = r.chance(0.6) ? [80, 443, r.pick([22, 8080])] : [r.pick([80, 443])];
      const proto = r.pick(['tcp', 'udp']);
      const action = r.pick(['pass', 'block']);
      const quick = r.chance(0.5) ? ' quick' : '';
      const list = (xs: (string | number)[]) => (xs.length === 1 ? String(xs[0]) : `{ ${xs.join(' ')} }`);
      const head = `${r.pick(['block all', 'pass all', 'pass in proto tcp to port 443'])}\n`;
      const tail = r.chance(0.5) ? `${r.pick(['block in proto udp', 'pass out', 'block from 10.2.0.0/16'])}\n` : '';
      const written = `${head}${action} in${quick} on ${list(ifs)} proto ${proto} from ${list(srcs)} to port ${list(ports)}\n${tail}`;
      let expanded = head;
      for (const i of ifs) for (const s of srcs) for (const p of ports) expanded += `${action} in${quick} on ${i} proto ${proto} from ${s} to port ${p}\n`;
      expanded += tail;
      const irA = compile(written);
      const irB = compile(expanded);
      expect(irA.rules.map((x) => x.text)).toEqual(irB.rules.map((x) => x.text));
      const a = new ReferenceEvaluator(irA);
      const b = new ReferenceEvaluator(irB);
      for (let k = 0; k < 40; k++) {
        const line = `${r.pick(['in', 'out'])} on ${r.pick(['em0', 'em1', 'em2'])} ${r.pick(['tcp', 'udp'])} ${r.pick(['10.1.2.3', '10.2.0.9', '10.3.0.1', '192.168.0.1'])}:${r.int(1000, 1003)} > 10.9.9.9:${r.pick([80, 443, 22, 8080, 81])}`;
        const ra = a.evaluate(parsePacketLine(line));
        const rb = b.evaluate(parsePacketLine(line));
        const strip = (x: EvalResult, ir: typeof irA) => ({ ...x, ruleId: x.ruleId === null ? null : ir.rules[x.ruleId]!.text, anchorRuleId: null });
        expect(strip(ra, irA), `seed ${seed} round ${round}\n${written}${line}`).toEqual(strip(rb, irB));
      }
    }
  });
});

function replyOf(p: EvalPacket, res: EvalResult): EvalPacket {
  const t = res.translated ?? { src: p.src, sport: p.sport, dst: p.dst, dport: p.dport };
  const icmp = p.proto === 1 || p.proto === 58;
  return {
    ...p,
    dir: p.dir === 'in' ? 'out' : 'in',
    src: t.dst,
    dst: t.src,
    sport: icmp ? p.sport : t.dport,
    dport: icmp ? p.dport : t.sport,
    tcpFlags: p.proto === 6 ? 0x12 : 0,
  };
}

describe('random policies', () => {
  it('skip steps never change verdicts; replies of created states pass through the state', () => {
    const seed = testSeed('random policies');
    fc.assert(
      fc.property(
        fc.boolean().chain((ifAddresses) => arbPolicy({ ifAddresses })).chain((info) => fc.tuple(fc.constant(info), arbPacketSeq(info, 120))),
        ([info, pkts]) => {
          const ir = compile(info.text);
          const a = new ReferenceEvaluator(ir, { ifaddrs: info.ifaddrs });
          const b = new ReferenceEvaluator(ir, { ifaddrs: info.ifaddrs, skipSteps: false });
          for (const p of pkts) {
            const ra = a.evaluate(p);
            expect(ra, `policy seed ${info.seed}: ${formatPacketLine(p)}`).toEqual(b.evaluate(p));
            // A reply to source port 0 is UDP to port 0, which normalisation drops first.
            if (ra.stateCreated && !(p.proto === 17 && (ra.translated ?? p).sport === 0)) {
              const reply = replyOf(p, ra);
              const rr = a.evaluate(reply);
              // Usually the reply finds this very state; when an older state of the opposite
              // direction shares the key (an rdr-ed inbound flow), pf lets the oldest win.
              expect(rr, `policy seed ${info.seed}: reply to ${formatPacketLine(p)}: ${formatPacketLine(reply)}`).toMatchObject({ verdict: 'pass', reason: 'state' });
              if (rr.ruleId === ra.ruleId && ra.translated) expect(rr.translated).toMatchObject({ src: p.dst, dst: p.src });
              b.evaluate(reply);
            }
          }
          const ca = a.counters();
          b.counters().forEach((c, i) => expect({ ...ca[i]!, evaluations: 0 }).toEqual({ ...c, evaluations: 0 }));
        },
      ),
      { seed, numRuns: 60 },
    );
  });

  it('randomPolicy/randomPackets are deterministic per seed and parse back from packet lines', () => {
    const seed = testSeed('determinism');
    expect(randomPolicy(seed).text).toBe(randomPolicy(seed).text);
    const pk = randomPackets(seed, 500);
    expect(randomPackets(seed, 500)).toEqual(pk);
    for (const p of pk) expect(parsePacketLine(formatPacketLine(p))).toEqual(p);
  });

  it('feature switches restrict the policy to what a kernel path supports', () => {
    const seed = testSeed('restricted generator');
    for (let s = seed; s < seed + 200; s++) {
      const info = randomPolicy(s >>> 0, { match: false, translations: false, inet6: false, anchors: false, interfaces: ['veth0', 'veth1'], ifaceLists: false });
      const ir = compile(info.text);
      for (const r of ir.rules) {
        expect(r.action).not.toBe('match');
        expect(r.action).not.toBe('anchor');
        expect(r.natTo ?? r.rdrTo).toBeNull();
        expect(r.af).not.toBe('inet6');
        if (r.iface) expect(['veth0', 'veth1']).toContain(r.iface.name);
      }
      for (const p of randomPackets(s >>> 0, 50, info)) expect(p.af).toBe('inet');
    }
  });

  it('the full generator exercises every feature somewhere', () => {
    const seed = testSeed('generator coverage');
    const seen = new Set<string>();
    for (let s = seed; s < seed + 300; s++) {
      const ir = compile(randomPolicy(s >>> 0, { ifAddresses: s % 2 === 0 }).text);
      for (const r of ir.rules) {
        for (const h of [r.src.host, r.dst.host]) if (h.type === 'dynif' || h.type === 'ifaddr') seen.add(h.type);
        seen.add(r.action);
        if (r.quick) seen.add('quick');
        if (r.af === 'inet6') seen.add('inet6');
        if (r.natTo) seen.add('nat-to');
        if (r.rdrTo) seen.add('rdr-to');
        if (r.call?.wildcard) seen.add('wildcard');
        if (r.action === 'anchor' && r.quick) seen.add('quick anchor');
        if (r.ruleset.includes('/')) seen.add('nested anchor');
        if (r.src.neg || r.dst.neg) seen.add('negation');
        if (r.src.host.type === 'table' || r.dst.host.type === 'table') seen.add('table');
        if (r.iface?.neg) seen.add('iface negation');
        if (r.blockPolicy === 'return') seen.add('return');
        if (r.action === 'pass' && r.state === 'none') seen.add('no state');
        for (const pm of [r.srcPort, r.dstPort]) if (pm) seen.add(`port ${pm.op}`);
      }
    }
    for (const f of ['dynif', 'ifaddr', 'pass', 'block', 'match', 'anchor', 'quick', 'inet6', 'nat-to', 'rdr-to', 'wildcard', 'quick anchor', 'nested anchor', 'negation', 'table', 'iface negation', 'return', 'no state']) {
      expect(seen, f).toContain(f);
    }
    for (const op of ['=', '!=', '<', '<=', '>', '>=', ':', '><', '<>']) expect(seen).toContain(`port ${op}`);
  });
});
