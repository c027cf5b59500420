// pf-semantics.md §6: the conformance list, in pf.conf text, through the compiler and the reference
// evaluator. Item numbers are the list's.
import { describe, expect, it } from 'vitest';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { parsePacketLine } from '../../src/engine/packet-line.js';
import { compile, harness } from './pf-text.js';

describe('pf conformance (pf-semantics.md §6)', () => {
  it('1: no rules -> pass, no state', () => {
    const h = harness('# empty\n');
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80')).toMatchObject({ verdict: 'pass', reason: 'default', stateCreated: false });
    expect(h.ev.states()).toEqual([]);
  });

  it('2: block all, pass to port 443 -> last match wins', () => {
    const h = harness('block all\npass proto tcp to port 443\n');
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:443')).toMatchObject({ verdict: 'pass', ruleId: 1, stateCreated: true });
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80')).toMatchObject({ verdict: 'block', ruleId: 0 });
    expect(h.run('out on em0 udp 10.0.0.1:1000 > 10.0.0.2:443')).toMatchObject({ verdict: 'block', ruleId: 0 });
  });

  it('3: block quick before pass -> drop', () => {
    const h = harness('block quick all\npass all\n');
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:443')).toMatchObject({ verdict: 'block', ruleId: 0 });
    expect(h.ev.counters()[1]!.evaluations).toBe(0);
  });

  it('4: quick anchor with a matching rule inside stops; otherwise the later block decides', () => {
    const h = harness('anchor "a" quick {\n  pass in proto tcp to port 22\n}\nblock all\n');
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22')).toMatchObject({ verdict: 'pass', ruleId: 1, anchorRuleId: 0, tenant: 'a' });
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80')).toMatchObject({ verdict: 'block', ruleId: 2 });
  });

  it('5: a nested non-quick anchor inside a quick anchor does not stop the walk', () => {
    const h = harness('anchor "a" quick {\n  anchor "b" {\n    pass in proto tcp to port 22\n  }\n}\nblock all\n');
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22')).toMatchObject({ verdict: 'block', ruleId: 3 });
    // ... while a rule directly inside the quick anchor would have stopped it.
    const h2 = harness('anchor "a" quick {\n  pass in proto tcp to port 22\n  anchor "b" {\n    pass in proto tcp to port 23\n  }\n}\nblock all\n');
    expect(h2.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22').verdict).toBe('pass');
    expect(h2.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:23').verdict).toBe('block');
  });

  it('6: anchor "t/*" runs the children alphabetically; a quick rule in t/b stops before t/c', () => {
    // The children are written c, b, a; the wildcard must still run a, b, c. Anchor "t" itself
    // is never entered (its interface does not exist).
    const pf = [
      'anchor "t" on nonexist0 {',
      '  anchor "c" {\n    block quick all\n  }',
      '  anchor "b" {\n    pass quick proto udp\n  }',
      '  anchor "a" {\n    block all\n  }',
      '}',
      'anchor "t/*"',
      '',
    ].join('\n');
    const h = harness(pf);
    const udp = h.run('in on em0 udp 10.0.0.1:1000 > 10.0.0.2:53');
    expect(udp).toMatchObject({ verdict: 'pass', reason: 'rule', tenant: 't' });
    expect(h.ir.rules[udp.ruleId!]!.ruleset).toBe('t/b');
    const cT = h.ir.rules.find((r) => r.ruleset === 't/c')!;
    expect(h.ev.counters()[cT.id]!.evaluations).toBe(0);
    const tcp = h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80');
    expect(h.ir.rules[tcp.ruleId!]!.ruleset).toBe('t/c');
    expect(tcp.verdict).toBe('block');
  });

  it('6b: `anchor "t/*" quick` stops only on a quick rule inside (pf applies the direct-decision test to plain anchors only)', () => {
    const body = (rule: string) =>
      ['anchor "t" on nonexist0 {', `  anchor "a" {\n    ${rule}\n  }`, '}'].join('\n');
    // Non-quick decision inside a wildcard quick anchor: the walk goes on and `block all` decides.
    const wild = harness(`${body('pass in proto tcp to port 22')}\nanchor "t/*" quick\nblock all\n`);
    expect(wild.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22')).toMatchObject({ verdict: 'block', reason: 'rule' });
    // The same child called through a plain quick anchor stops the walk with its decision.
    const plain = harness(`${body('pass in proto tcp to port 22')}\nanchor "t/a" quick\nblock all\n`);
    expect(plain.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22')).toMatchObject({ verdict: 'pass', reason: 'rule' });
    // A quick rule inside the wildcard's child still stops everything.
    const quickRule = harness(`${body('pass in quick proto tcp to port 22')}\nanchor "t/*" quick\nblock all\n`);
    expect(quickRule.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22')).toMatchObject({ verdict: 'pass', reason: 'rule' });
  });

  it('7: match rdr-to, then pass to the translated destination', () => {
    const h = harness('match in proto tcp to port 80 rdr-to 192.168.30.2\nblock all\npass in proto tcp to 192.168.30.2 port 80\n');
    const r = h.run('in on em0 tcp 198.51.100.9:40000 > 203.0.113.5:80');
    expect(r).toMatchObject({ verdict: 'pass', ruleId: 2, matchRuleIds: [0], translated: { dst: '192.168.30.2', dport: 80 } });
    expect(h.run('out on em0 tcp 192.168.30.2:80 > 198.51.100.9:40000 flags SA')).toMatchObject({
      reason: 'state',
      translated: { src: '203.0.113.5', sport: 80 },
    });
  });

  it('8: a non-quick pass rdr-to overridden by a later block does not translate', () => {
    const h = harness('pass in proto tcp to port 80 rdr-to 192.168.30.2\nblock in proto tcp to port 80\n');
    expect(h.run('in on em0 tcp 198.51.100.9:40000 > 203.0.113.5:80')).toMatchObject({ verdict: 'block', ruleId: 1, translated: null });
    const h2 = harness('pass in proto tcp to port 80 rdr-to 192.168.30.2\n');
    expect(h2.run('in on em0 tcp 198.51.100.9:40000 > 203.0.113.5:80').translated).toMatchObject({ dst: '192.168.30.2' });
  });

  it('9: block-policy return gives RST for TCP and ICMP unreachable for UDP; block drop overrides', () => {
    const h = harness('set block-policy return\nblock all\nblock drop proto udp to port 9\n');
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80')).toMatchObject({ verdict: 'block', returnAction: 'rst' });
    expect(h.run('in on em0 udp 10.0.0.1:1000 > 10.0.0.2:80')).toMatchObject({ verdict: 'block', returnAction: 'icmp-unreach' });
    expect(h.run('in on em0 icmp 10.0.0.1 > 10.0.0.2 icmp-type 8')).toMatchObject({ verdict: 'block', returnAction: 'icmp-unreach' });
    expect(h.run('in on em0 udp 10.0.0.1:1000 > 10.0.0.2:9')).toMatchObject({ verdict: 'block', returnAction: null });
  });

  it('10: set skip on lo -> no counters move on lo', () => {
    const h = harness('set skip on lo\nblock all\npass proto tcp\n');
    expect(h.run('in on lo tcp 127.0.0.1:1000 > 127.0.0.1:80')).toMatchObject({ verdict: 'pass', reason: 'skip' });
    expect(h.run('out on lo udp 127.0.0.1:1000 > 127.0.0.1:80')).toMatchObject({ verdict: 'pass', reason: 'skip' });
    for (const c of h.ev.counters()) expect(c).toMatchObject({ evaluations: 0, matches: 0, packets: [0, 0], bytes: [0, 0], statesTotal: 0 });
    expect(h.ev.states()).toEqual([]);
    expect(h.run('in on em0 udp 127.0.0.1:1000 > 127.0.0.1:80').verdict).toBe('block');
  });

  it('11: an established flow survives a ruleset reload', () => {
    const ev = new ReferenceEvaluator(compile('block all\npass in proto tcp to port 22\n'));
    const P = (l: string) => ev.evaluate(parsePacketLine(l));
    P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22');
    P('out on em0 tcp 10.0.0.2:22 > 10.0.0.1:1000 flags SA');
    P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22 flags A');
    ev.reload(compile('block quick all\n'));
    expect(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:22 flags PA')).toMatchObject({ verdict: 'pass', reason: 'state', ruleId: 1 });
    expect(P('out on em0 tcp 10.0.0.2:22 > 10.0.0.1:1000 flags PA')).toMatchObject({ verdict: 'pass', reason: 'state' });
    expect(P('in on em0 tcp 10.0.0.1:1001 > 10.0.0.2:22')).toMatchObject({ verdict: 'block', ruleId: 0 });
  });

  it('12: per-policy counters sum over the expanded rules', () => {
    const h = harness('block all\npass in on { em0 em1 } proto tcp to port { 80 443 }\n');
    expect(h.ir.rules.filter((r) => r.origin === 1)).toHaveLength(4);
    const lines = [
      'in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80 len 100',
      'in on em1 tcp 10.0.0.1:1001 > 10.0.0.2:443 len 200',
      'in on em1 tcp 10.0.0.1:1002 > 10.0.0.2:80 len 300',
      'out on em1 tcp 10.0.0.2:80 > 10.0.0.1:1002 flags SA len 400',
      'in on em0 tcp 10.0.0.1:1003 > 10.0.0.2:22 len 500',
    ];
    for (const l of lines) h.run(l);
    const per = h.ev.counters().filter((c) => c.origin === 1);
    const sum = h.ev.originCounters().find((c) => c.origin === 1)!;
    expect(sum.packets).toEqual([per.reduce((a, c) => a + c.packets[0], 0), per.reduce((a, c) => a + c.packets[1], 0)]);
    expect(sum).toMatchObject({ packets: [3, 1], bytes: [600, 400], states: 3, statesTotal: 3 });
    expect(h.ev.originCounters().find((c) => c.origin === 0)).toMatchObject({ packets: [1, 0], bytes: [500, 0] });
  });
});

describe('pf-semantics: states by direction (a forwarded copy needs its own rule)', () => {
  it('in A->B state: reply out B->A matches; out A->B (forwarded) and in B->A do not', () => {
    const h = harness('block all\npass in on em0 proto tcp from 10.0.0.0/8\n');
    expect(h.run('in on em0 tcp 10.0.0.1:1000 > 192.0.2.1:80').stateCreated).toBe(true);
    expect(h.run('out on em0 tcp 192.0.2.1:80 > 10.0.0.1:1000 flags SA').reason).toBe('state');
    expect(h.run('out on em1 tcp 10.0.0.1:1000 > 192.0.2.1:80 flags A')).toMatchObject({ verdict: 'block', reason: 'rule' });
    expect(h.run('in on em0 tcp 192.0.2.1:80 > 10.0.0.1:1000 flags A')).toMatchObject({ verdict: 'block', reason: 'rule' });
  });
});

describe('inet6 and interface groups through pf text', () => {
  it('inet6 rules, tables mixing families, and states keyed on canonical IPv6', () => {
    const h = harness('table <v6ok> { 2001:db8::/32 !2001:db8:bad::/48 10.0.0.0/8 }\nblock all\npass in inet6 proto tcp from <v6ok> to port 443\npass in inet proto tcp from <v6ok> to port 443\n');
    expect(h.run('in on em0 tcp [2001:db8::5]:1000 > [2001:db8::1]:443')).toMatchObject({ verdict: 'pass', ruleId: 1, stateCreated: true });
    expect(h.run('in on em0 tcp [2001:db8:bad::5]:1000 > [2001:db8::1]:443')).toMatchObject({ verdict: 'block', ruleId: 0 });
    expect(h.run('in on em0 tcp 10.1.1.1:1000 > 10.0.0.1:443')).toMatchObject({ verdict: 'pass', ruleId: 2 });
    // The reply, written in a non-canonical spelling, still finds the state.
    expect(h.run('out on em0 tcp [2001:DB8:0::1]:443 > [2001:db8:0:0:0:0:0:5]:1000 flags SA')).toMatchObject({ reason: 'state', ruleId: 1 });
  });

  it('egress as a group on rules and in set skip', () => {
    const ir = compile('set skip on tenants\nblock all\npass out on egress proto udp\n');
    const ev = new ReferenceEvaluator(ir, { groups: { egress: ['em1'], tenants: ['tn1', 'tn2'] } });
    const P = (l: string) => ev.evaluate(parsePacketLine(l));
    expect(P('out on em1 udp 10.0.0.1:1 > 8.8.8.8:53')).toMatchObject({ verdict: 'pass', ruleId: 1 });
    expect(P('out on em0 udp 10.0.0.1:3 > 8.8.8.8:53')).toMatchObject({ verdict: 'block', ruleId: 0 });
    expect(P('in on tn2 udp 10.0.0.1:1 > 8.8.8.8:53')).toMatchObject({ verdict: 'pass', reason: 'skip' });
    // A group named like an interface: egress itself is also a member of the group "egress".
    expect(P('out on egress udp 10.0.0.1:2 > 8.8.8.8:53')).toMatchObject({ verdict: 'pass', ruleId: 1 });
  });
});
