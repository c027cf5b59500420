// NativeEngine API: option validation, typed errors with codes, Uint16 outputs, header batches,
// counters (rule, tenant, engine), states surviving a reload, interface ids and `!` interfaces.
import { describe, expect, it } from 'vitest';
import { allocOutputs, HEADER_WORDS, NATIVE_REASONS, NativeEngine } from '../../src/engine/engine.js';
import { NativeError } from '../../src/engine/native.js';
import type { EvalPacket } from '../../src/engine/packet.js';
import { compilePolicyText } from '../../src/policy/load.js';

const tcp = (over: Partial<EvalPacket> = {}): EvalPacket => ({
  dir: 'in',
  ifname: 'em0',
  af: 'inet',
  proto: 6,
  src: '10.0.0.1',
  dst: '10.0.0.2',
  sport: 40000,
  dport: 443,
  tcpFlags: 0x02,
  ...over,
});

describe('NativeEngine API', () => {
  it('rejects unknown and bad options with typed errors', () => {
    expect(() => new NativeEngine({ bogus: 1 } as never)).toThrow(NativeError);
    expect(() => new NativeEngine({ maxStates: -1 })).toThrow(/non-negative/);
    try {
      new NativeEngine({ maxStates: 2 ** 30 });
      expect.fail('no error');
    } catch (e) {
      expect((e as NativeError).code).toBe('ERR_ZTB_LIMIT');
    }
  });

  it('decides, keeps state across a reload, and counts', () => {
    const ir1 = compilePolicyText('block all\npass in on em0 proto tcp to port 443\n', 'a.pf.conf');
    const ir2 = compilePolicyText('block all\n', 'b.pf.conf');
    const eng = new NativeEngine();
    eng.load(ir1);
    const first = eng.evaluate(tcp(), 0);
    expect(first).toMatchObject({ verdict: 'pass', reason: 'rule', ruleId: 1, stateCreated: true });
    expect(eng.states()).toMatchObject([
      {
        dir: 'in',
        ruleId: 1,
        peers: [2, 0],
        timeoutMs: 120_000,
        packets: [1, 0],
        forward: { src: '10.0.0.1', sport: 40000, dst: '10.0.0.2', dport: 443 },
        reply: { src: '10.0.0.2', sport: 443, dst: '10.0.0.1', dport: 40000 },
      },
    ]);
    expect(eng.evaluate(tcp({ dport: 80 }), 0)).toMatchObject({ verdict: 'block', ruleId: 0 });
    eng.load(ir2);
    // The reply follows the old state (rule 1 of the old ruleset); a new flow is blocked.
    const reply = tcp({ dir: 'out', src: '10.0.0.2', dst: '10.0.0.1', sport: 443, dport: 40000, tcpFlags: 0x12 });
    expect(eng.evaluate(reply, 1000)).toMatchObject({ verdict: 'pass', reason: 'state', ruleId: 1 });
    expect(eng.evaluate(tcp({ sport: 40001 }), 1000)).toMatchObject({ verdict: 'block', ruleId: 0 });
    // After tcp.opening (30 s idle) the state is gone.
    expect(eng.evaluate(reply, 1000 + 30_000)).toMatchObject({ verdict: 'block', reason: 'rule' });
    const c = eng.counters();
    expect(eng.states()).toEqual([]); // the dead state was freed by the lookup that found it
    expect(c.rules).toHaveLength(1);
    expect(c.rules[0]!.packets).toEqual([1, 1]);
    expect(c.stats.reasons.state).toBe(1);
    expect(c.stats.statesCreated).toBe(1);
    eng.close();
  });

  it('processes header batches into Uint16 tenant outputs, tenant by anchor', () => {
    const ir = compilePolicyText('anchor "t1" {\n pass in proto udp\n}\nanchor "t2" {\n block in proto tcp\n}\n', 't.pf.conf');
    const eng = new NativeEngine();
    eng.load(ir);
    const pkts = [tcp(), tcp({ proto: 17, dport: 53, tcpFlags: 0 }), tcp({ proto: 17, dport: 0, tcpFlags: 0 })];
    const headers = new Uint32Array(pkts.length * HEADER_WORDS);
    pkts.forEach((p, i) => eng.encodeHeader(p, headers, i));
    const out = { verdict: new Uint8Array(3), ruleId: new Uint32Array(3), tenant: new Uint16Array(3), reason: new Uint8Array(3) };
    expect(eng.processHeaders(headers, 0, out)).toBe(3);
    expect([...out.verdict]).toEqual([1, 0, 1]);
    expect(out.reason[2] !== undefined && NATIVE_REASONS[out.reason[2]]).toBe('normalize');
    expect([...out.tenant].map((t) => (t === 0xffff ? null : eng.tenantNames[t]))).toEqual(['t2', 't1', null]);
    const tenants = eng.counters().tenants;
    expect(tenants.find((t) => t.tenant === 't2')).toMatchObject({ packets: 1, blocked: 1 });
    // Output arrays shorter than the batch are refused, not overrun.
    const short = { verdict: new Uint8Array(1), ruleId: new Uint32Array(3), tenant: new Uint16Array(3), reason: new Uint8Array(3) };
    expect(() => eng.processHeaders(headers, 0, short)).toThrow(/shorter than the batch/);
    expect(() => eng.processHeaders(new Uint32Array(5), 0, out)).toThrow(/multiple of 16/);
    eng.close();
  });

  it('matches negated interfaces and groups through interface ids', () => {
    const ir = compilePolicyText('block all\npass in on ! em0 no state\npass in on lan no state\n', 'i.pf.conf');
    const eng = new NativeEngine();
    eng.load(ir, { ifindex: { em0: 2, em1: 3 }, groups: { lan: ['em0'] } });
    expect(eng.interfaceId('em0')).toBe(2);
    expect(eng.evaluate(tcp({ ifname: 'em1' }), 0)).toMatchObject({ verdict: 'pass', ruleId: 1 });
    expect(eng.evaluate(tcp({ ifname: 'never-seen' }), 0)).toMatchObject({ verdict: 'pass', ruleId: 1 });
    expect(eng.evaluate(tcp({ ifname: 'em0' }), 0)).toMatchObject({ verdict: 'pass', ruleId: 2 });
    expect(() => eng.load(ir, { ifindex: { em0: 2, em9: 2 } })).toThrow(/given to both/);
    eng.close();
  });
});
