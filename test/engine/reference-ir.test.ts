// Reference evaluator on hand-built IR: pf's evaluation order, anchors, translations, states,
// timeouts and counters, independent of the pf compiler.
import { describe, expect, it } from 'vitest';
import { ReferenceEvaluator } from '../../src/engine/reference.js';
import { parsePacketLine } from '../../src/engine/packet-line.js';
import { addr, anchorCall, ANY, buildIr, port, table } from './ir-builder.js';

const P = (l: string) => parsePacketLine(l);
const TCP = 6;
const UDP = 17;

function clock(start = 1_000_000) {
  let t = start;
  const f = () => t;
  f.advance = (s: number) => {
    t += s * 1000;
  };
  return f;
}

describe('ReferenceEvaluator: rule walk', () => {
  it('passes without state when nothing matches', () => {
    const ev = new ReferenceEvaluator(buildIr({ '': [] }));
    const r = ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80'));
    expect(r).toMatchObject({ verdict: 'pass', reason: 'default', ruleId: null, stateCreated: false });
    expect(ev.states()).toHaveLength(0);
  });

  it('last match wins, quick stops', () => {
    const ir = buildIr({
      '': [
        { action: 'block' },
        { action: 'pass', proto: TCP, dstPort: port('=', 443) },
        { action: 'block', quick: true, src: addr('10.9.0.0/16') },
        { action: 'pass', src: addr('10.9.0.0/16') },
      ],
    });
    const ev = new ReferenceEvaluator(ir);
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:443'))).toMatchObject({ verdict: 'pass', ruleId: 1 });
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80'))).toMatchObject({ verdict: 'block', ruleId: 0 });
    expect(ev.evaluate(P('in on em0 tcp 10.9.0.1:1000 > 10.0.0.2:443'))).toMatchObject({ verdict: 'block', ruleId: 2 });
  });

  it('quick anchor stops only when a rule directly inside decided', () => {
    const ir = buildIr({
      '': [{ action: 'anchor', quick: true, call: anchorCall('a') }, { action: 'block' }],
      a: [{ action: 'pass', proto: TCP, dstPort: port('=', 22) }, { action: 'anchor', call: anchorCall('a/deep') }],
      'a/deep': [{ action: 'pass', proto: TCP, dstPort: port('=', 23) }],
    });
    const ev = new ReferenceEvaluator(ir);
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:1 > 2.2.2.2:22'))).toMatchObject({ verdict: 'pass', ruleId: 2, anchorRuleId: 0 });
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:1 > 2.2.2.2:80'))).toMatchObject({ verdict: 'block', ruleId: 1 });
    // Decided inside the deeper non-quick anchor: the quick anchor does not stop; block wins.
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:1 > 2.2.2.2:23'))).toMatchObject({ verdict: 'block', ruleId: 1 });
  });

  it('wildcard anchors run children in order and a quick rule stops before later ones', () => {
    const ir = buildIr({
      '': [{ action: 'anchor', call: anchorCall('t/*', ['t/a', 't/b', 't/c']) }],
      't/a': [{ action: 'block' }],
      't/b': [{ action: 'pass', quick: true, proto: UDP }],
      't/c': [{ action: 'block', proto: UDP }],
    });
    const ev = new ReferenceEvaluator(ir);
    const r = ev.evaluate(P('in on em0 udp 1.1.1.1:1 > 2.2.2.2:53'));
    expect(r).toMatchObject({ verdict: 'pass', ruleId: 2, anchorRuleId: 0, tenant: 't' });
    expect(ev.counters()[3]!.evaluations).toBe(0);
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:1 > 2.2.2.2:53'))).toMatchObject({ verdict: 'block', ruleId: 1 });
  });

  it('drops when anchors nest deeper than 64', () => {
    const sets: Record<string, Parameters<typeof buildIr>[0][string]> = {};
    let path = '';
    for (let d = 0; d <= 65; d++) {
      const child = path === '' ? 'x' : `${path}/x`;
      sets[path] = [{ action: 'anchor', call: anchorCall(child) }];
      path = child;
    }
    sets[path] = [{ action: 'pass' }];
    const ev = new ReferenceEvaluator(buildIr(sets));
    expect(ev.evaluate(P('in on em0 udp 1.1.1.1:1 > 2.2.2.2:53')).verdict).toBe('block');
    expect(ev.stats().anchorOverflowDrops).toBe(1);
  });

  it('match rdr-to changes what later rules see; non-final pass rdr-to does not translate', () => {
    const ir = buildIr({
      '': [
        { action: 'match', dir: 'in', proto: TCP, dstPort: port('=', 80), rdrTo: { hosts: [addr('192.168.30.2').host], port: { lo: 8080, hi: 8080 } } },
        { action: 'block' },
        { action: 'pass', dst: addr('192.168.30.2'), proto: TCP, dstPort: port('=', 8080) },
        { action: 'pass', proto: TCP, dstPort: port('=', 443), rdrTo: { hosts: [addr('192.168.30.3').host] } },
        { action: 'block', proto: TCP, dstPort: port('=', 443), src: addr('10.66.0.0/16') },
      ],
    });
    const ev = new ReferenceEvaluator(ir);
    const r = ev.evaluate(P('in on em0 tcp 10.0.0.9:5000 > 1.2.3.4:80'));
    expect(r).toMatchObject({ verdict: 'pass', ruleId: 2, matchRuleIds: [0], translated: { src: '10.0.0.9', sport: 5000, dst: '192.168.30.2', dport: 8080 } });
    // The reply from the server leaves with the original address restored.
    const back = ev.evaluate(P('out on em0 tcp 192.168.30.2:8080 > 10.0.0.9:5000 flags SA'));
    expect(back).toMatchObject({ verdict: 'pass', reason: 'state', translated: { src: '1.2.3.4', sport: 80, dst: '10.0.0.9', dport: 5000 } });
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.9:5000 > 1.2.3.4:443'))).toMatchObject({ verdict: 'pass', ruleId: 3, translated: { dst: '192.168.30.3' } });
    expect(ev.evaluate(P('in on em0 tcp 10.66.0.9:5000 > 1.2.3.4:443'))).toMatchObject({ verdict: 'block', ruleId: 4, translated: null });
  });

  it('nat-to: wire key is translated, replies come back to the original source', () => {
    const ir = buildIr({
      '': [{ action: 'pass', dir: 'out', natTo: { hosts: [addr('203.0.113.1').host] } }],
    });
    const ev = new ReferenceEvaluator(ir);
    const r = ev.evaluate(P('out on em0 udp 10.0.0.5:5353 > 8.8.8.8:53'));
    expect(r.translated).toEqual({ src: '203.0.113.1', sport: 50001, dst: '8.8.8.8', dport: 53 });
    const r2 = ev.evaluate(P('out on em0 udp 10.0.0.6:5353 > 8.8.8.8:53'));
    expect(r2.translated?.sport).toBe(50002);
    const reply = ev.evaluate(P('in on em0 udp 8.8.8.8:53 > 203.0.113.1:50001'));
    expect(reply).toMatchObject({ reason: 'state', translated: { src: '8.8.8.8', sport: 53, dst: '10.0.0.5', dport: 5353 } });
    // The untranslated reply address has no state (and no rule for inbound): default pass.
    expect(ev.evaluate(P('in on em0 udp 8.8.8.8:53 > 10.0.0.5:5353')).reason).toBe('default');
  });

  it('translation pools: round-robin over several hosts, (if:0) primary, empty pool drops', () => {
    const ir = buildIr({
      '': [
        { action: 'match', dir: 'out', dstPort: port('=', 1), proto: UDP, natTo: { hosts: [addr('203.0.113.1').host, addr('203.0.113.2').host] } },
        { action: 'match', dir: 'out', dstPort: port('=', 2), proto: UDP, natTo: { hosts: [{ type: 'dynif', ifname: 'egress', mode: 'primary' }] } },
        { action: 'match', dir: 'out', dstPort: port('=', 3), proto: UDP, natTo: { hosts: [{ type: 'dynif', ifname: 'nope0', mode: 'address' }] } },
        { action: 'match', dir: 'in', dstPort: port(':', 8000, 8009), proto: TCP, rdrTo: { hosts: [addr('10.9.0.1').host], port: { lo: 9000, hi: 9009 } } },
        { action: 'pass', flags: null },
      ],
    });
    const ev = new ReferenceEvaluator(ir, { groups: { egress: ['em0'] }, ifaddrs: { em0: ['198.51.100.7/24', '198.51.100.9/24'] } });
    const srcs = [1, 2, 3].map((i) => ev.evaluate(P(`out on em0 udp 10.0.0.${i}:5 > 8.8.8.8:1`)).translated?.src);
    expect(srcs).toEqual(['203.0.113.1', '203.0.113.2', '203.0.113.1']);
    expect(ev.evaluate(P('out on em0 udp 10.0.0.1:5 > 8.8.8.8:2')).translated?.src).toBe('198.51.100.7');
    expect(ev.evaluate(P('out on em0 udp 10.0.0.1:5 > 8.8.8.8:3'))).toMatchObject({ verdict: 'block', reason: 'rule', ruleId: 2 });
    expect(ev.stats().translationFailures).toBe(1);
    // rdr-to port range: offset from the rule's first port.
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:5 > 2.2.2.2:8004')).translated).toEqual({ src: '1.1.1.1', sport: 5, dst: '10.9.0.1', dport: 9004 });
  });

  it('block return: RST for TCP, ICMP unreachable otherwise; drop gives neither', () => {
    const ir = buildIr({
      '': [
        { action: 'block', blockPolicy: 'return' },
        { action: 'block', blockPolicy: 'drop', dstPort: port('=', 9), proto: UDP },
      ],
    });
    const ev = new ReferenceEvaluator(ir);
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:1 > 2.2.2.2:80')).returnAction).toBe('rst');
    expect(ev.evaluate(P('in on em0 udp 1.1.1.1:1 > 2.2.2.2:80')).returnAction).toBe('icmp-unreach');
    expect(ev.evaluate(P('in on em0 udp 1.1.1.1:1 > 2.2.2.2:9')).returnAction).toBeNull();
  });

  it('skip interfaces move no counters', () => {
    const ev = new ReferenceEvaluator(buildIr({ '': [{ action: 'block' }] }, { options: { skip: ['lo'] } }));
    expect(ev.evaluate(P('in on lo tcp 127.0.0.1:1 > 127.0.0.1:80'))).toMatchObject({ verdict: 'pass', reason: 'skip' });
    expect(ev.counters()[0]).toMatchObject({ evaluations: 0, packets: [0, 0] });
    expect(ev.evaluate(P('in on em0 tcp 127.0.0.1:1 > 127.0.0.1:80')).verdict).toBe('block');
  });

  it('normalisation drops before state lookup', () => {
    const ev = new ReferenceEvaluator(buildIr({ '': [{ action: 'pass', flags: null }] }));
    for (const l of [
      'in on em0 udp 1.1.1.1:1 > 2.2.2.2:0',
      'in on em0 tcp 1.1.1.1:1 > 2.2.2.2:80 flags SR',
      'in on em0 tcp 1.1.1.1:1 > 2.2.2.2:80 flags F',
      'in on em0 tcp 1.1.1.1:1 > 2.2.2.2:80 flags P',
      'in on em0 tcp 1.1.1.1:1 > 2.2.2.2:80 flags -',
      'in on em0 tcp 1.1.1.1:1 > 2.2.2.2:80 flags SU',
    ]) {
      expect(ev.evaluate(P(l)), l).toMatchObject({ verdict: 'block', reason: 'normalize' });
    }
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:1 > 2.2.2.2:80 flags SF')).verdict).toBe('pass');
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:2 > 2.2.2.2:80 flags R')).verdict).toBe('pass');
  });

  it('interface groups, negation and tables with exceptions', () => {
    const ir = buildIr(
      {
        '': [
          { action: 'block' },
          { action: 'pass', iface: { name: 'tenants', neg: false }, src: table('ok') },
          { action: 'pass', iface: { name: 'em0', neg: true }, src: addr('10.1.0.0/16', true), proto: UDP },
        ],
      },
      { groups: { tenants: ['vether0.10'] }, tables: { ok: [{ cidr: '10.0.0.0/8' }, { cidr: '10.5.0.0/16', neg: true }, { cidr: '10.5.5.0/24' }] } },
    );
    const ev = new ReferenceEvaluator(ir);
    expect(ev.evaluate(P('in on vether0.10 tcp 10.1.1.1:1 > 2.2.2.2:80')).ruleId).toBe(1);
    expect(ev.evaluate(P('in on vether0.10 tcp 10.5.1.1:1 > 2.2.2.2:80')).ruleId).toBe(0);
    expect(ev.evaluate(P('in on vether0.10 tcp 10.5.5.1:1 > 2.2.2.2:80')).ruleId).toBe(1);
    expect(ev.evaluate(P('in on vether0.11 tcp 10.1.1.1:2 > 2.2.2.2:80')).ruleId).toBe(0);
    expect(ev.evaluate(P('in on em1 udp 10.2.1.1:1 > 2.2.2.2:80')).ruleId).toBe(2);
    expect(ev.evaluate(P('in on em1 udp 10.1.1.1:1 > 2.2.2.2:80')).ruleId).toBe(0);
    expect(ev.evaluate(P('in on em0 udp 10.2.1.1:3 > 2.2.2.2:80')).ruleId).toBe(0);
  });

  it('dynamic interface addresses resolve from the address map; unresolved never match', () => {
    const ir = buildIr({
      '': [
        { action: 'block' },
        { action: 'pass', dst: { neg: false, host: { type: 'dynif', ifname: 'egress', mode: 'address' } } },
        { action: 'pass', src: { neg: false, host: { type: 'dynif', ifname: 'em1', mode: 'network' } } },
        { action: 'pass', src: { neg: false, host: { type: 'dynif', ifname: 'nope', mode: 'address' } } },
      ],
    });
    const ev = new ReferenceEvaluator(ir, { ifaddrs: { em0: ['198.51.100.7/24', '198.51.100.8/24'], em1: ['10.4.0.1/16'] }, groups: { egress: ['em0'] } });
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:1 > 198.51.100.8:80')).ruleId).toBe(1);
    expect(ev.evaluate(P('in on em0 tcp 1.1.1.1:1 > 198.51.100.9:80')).ruleId).toBe(0);
    expect(ev.evaluate(P('in on em0 tcp 10.4.200.1:1 > 1.1.1.1:80')).ruleId).toBe(2);
  });
});

describe('ReferenceEvaluator: states', () => {
  const ir = buildIr({ '': [{ action: 'block' }, { action: 'pass', dir: 'in', proto: TCP }, { action: 'pass', dir: 'in', proto: UDP }] });

  it('matches the same direction and replies, not forwarded copies or reverse packets', () => {
    const ev = new ReferenceEvaluator(ir);
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80'))).toMatchObject({ verdict: 'pass', stateCreated: true });
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80 flags A'))).toMatchObject({ verdict: 'pass', reason: 'state' });
    expect(ev.evaluate(P('out on em1 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags SA'))).toMatchObject({ verdict: 'pass', reason: 'state' });
    expect(ev.evaluate(P('out on em1 tcp 10.0.0.1:1000 > 10.0.0.2:80 flags A'))).toMatchObject({ verdict: 'block', reason: 'rule' });
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags A'))).toMatchObject({ verdict: 'block', reason: 'rule' });
  });

  it('if-bound states only match on their interface', () => {
    const ev = new ReferenceEvaluator({ ...ir, options: { ...ir.options, statePolicy: 'if-bound' } });
    ev.evaluate(P('in on em0 udp 10.0.0.1:1000 > 10.0.0.2:53'));
    expect(ev.evaluate(P('out on em0 udp 10.0.0.2:53 > 10.0.0.1:1000')).reason).toBe('state');
    expect(ev.evaluate(P('out on em1 udp 10.0.0.2:53 > 10.0.0.1:1000')).verdict).toBe('block');
  });

  it('TCP handshake, FIN teardown and timeouts follow pf', () => {
    const c = clock();
    const ev = new ReferenceEvaluator(ir, { clock: c });
    ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80'));
    const st = () => ev.states()[0]!;
    expect(st()).toMatchObject({ peers: ['SYN_SENT', 'CLOSED'], timeout: 'tcp.first' });
    ev.evaluate(P('out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags SA'));
    expect(st()).toMatchObject({ peers: ['ESTABLISHED', 'SYN_SENT'], timeout: 'tcp.opening' });
    ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80 flags A'));
    expect(st()).toMatchObject({ peers: ['ESTABLISHED', 'ESTABLISHED'], timeout: 'tcp.established' });
    c.advance(86399);
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80 flags FA')).reason).toBe('state');
    expect(st()).toMatchObject({ peers: ['CLOSING', 'ESTABLISHED'], timeout: 'tcp.closing' });
    ev.evaluate(P('out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags FA'));
    expect(st()).toMatchObject({ peers: ['FIN_WAIT_2', 'CLOSING'], timeout: 'tcp.finwait' });
    ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80 flags A'));
    expect(st()).toMatchObject({ peers: ['FIN_WAIT_2', 'FIN_WAIT_2'], timeout: 'tcp.closed' });
    c.advance(89);
    expect(ev.states()).toHaveLength(1);
    c.advance(1);
    expect(ev.states()).toHaveLength(0);
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80 flags A')).verdict).toBe('block');
  });

  it('an RST passes and closes the state', () => {
    const c = clock();
    const ev = new ReferenceEvaluator(ir, { clock: c });
    ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80'));
    expect(ev.evaluate(P('out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags RA')).reason).toBe('state');
    expect(ev.states()[0]).toMatchObject({ peers: ['TIME_WAIT', 'TIME_WAIT'], timeout: 'tcp.closed' });
    c.advance(90);
    expect(ev.evaluate(P('out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags A')).verdict).toBe('block');
  });

  it('UDP single/multiple timeouts', () => {
    const c = clock();
    const ev = new ReferenceEvaluator(ir, { clock: c });
    ev.evaluate(P('in on em0 udp 10.0.0.1:1000 > 10.0.0.2:53'));
    expect(ev.states()[0]!.timeout).toBe('udp.first');
    c.advance(59);
    ev.evaluate(P('out on em0 udp 10.0.0.2:53 > 10.0.0.1:1000'));
    expect(ev.states()[0]).toMatchObject({ timeout: 'udp.single', peers: ['MULTIPLE', 'SINGLE'] });
    ev.evaluate(P('in on em0 udp 10.0.0.1:1000 > 10.0.0.2:53'));
    expect(ev.states()[0]).toMatchObject({ timeout: 'udp.multiple' });
    c.advance(60);
    expect(ev.states()).toHaveLength(0);
  });

  it('every timeout class expires exactly at its pf default', () => {
    const irAll = buildIr({ '': [{ action: 'pass', flags: null }] });
    const cases: [string, string[], string, number][] = [
      ['tcp.first', ['in on em0 tcp 10.0.0.1:1 > 10.0.0.2:80'], 'tcp.first', 120],
      ['tcp.opening', ['in on em0 tcp 10.0.0.1:1 > 10.0.0.2:80', 'out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1 flags SA'], 'tcp.opening', 30],
      ['tcp.closing', ['in on em0 tcp 10.0.0.1:1 > 10.0.0.2:80', 'out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1 flags SA', 'in on em0 tcp 10.0.0.1:1 > 10.0.0.2:80 flags A', 'in on em0 tcp 10.0.0.1:1 > 10.0.0.2:80 flags FA'], 'tcp.closing', 900],
      ['udp.first', ['in on em0 udp 10.0.0.1:1 > 10.0.0.2:53'], 'udp.first', 60],
      ['udp.single', ['in on em0 udp 10.0.0.1:1 > 10.0.0.2:53', 'in on em0 udp 10.0.0.1:1 > 10.0.0.2:53'], 'udp.single', 30],
      ['icmp.first', ['in on em0 icmp 10.0.0.1 > 10.0.0.2 icmp-type 8 id 3'], 'icmp.first', 20],
      ['icmp.error', ['in on em0 icmp 10.0.0.1 > 10.0.0.2 icmp-type 8 id 3', 'out on em0 icmp 10.0.0.2 > 10.0.0.1 icmp-type 0 id 3'], 'icmp.error', 10],
      ['other.first', ['in on em0 47 10.0.0.1 > 10.0.0.2'], 'other.first', 60],
      ['other.single', ['in on em0 47 10.0.0.1 > 10.0.0.2', 'out on em0 47 10.0.0.2 > 10.0.0.1'], 'other.single', 30],
      ['other.multiple', ['in on em0 47 10.0.0.1 > 10.0.0.2', 'out on em0 47 10.0.0.2 > 10.0.0.1', 'in on em0 47 10.0.0.1 > 10.0.0.2'], 'other.multiple', 60],
    ];
    for (const [name, lines, timeout, secs] of cases) {
      const c = clock();
      const ev = new ReferenceEvaluator(irAll, { clock: c });
      for (const l of lines) ev.evaluate(P(l));
      expect(ev.states(), name).toHaveLength(1);
      expect(ev.states()[0]!.timeout, name).toBe(timeout);
      expect(ev.states()[0]!.expiresAt - c(), name).toBe(secs * 1000);
      c.advance(secs - 1);
      expect(ev.expire(), name).toBe(0);
      c.advance(1);
      expect(ev.expire(), name).toBe(1);
    }
  });

  it('a new SYN on a fully closed connection is filtered anew (pf port reuse)', () => {
    const ev = new ReferenceEvaluator(ir);
    ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80'));
    ev.evaluate(P('out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags RA'));
    const again = ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80'));
    expect(again).toMatchObject({ reason: 'rule', stateCreated: true });
    expect(ev.states()).toHaveLength(1);
    expect(ev.states()[0]!.peers).toEqual(['SYN_SENT', 'CLOSED']);
  });

  it('refuses new states when the table is full', () => {
    const ev = new ReferenceEvaluator(ir, { maxStates: 2 });
    ev.evaluate(P('in on em0 udp 10.0.0.1:1 > 10.0.0.2:53'));
    ev.evaluate(P('in on em0 udp 10.0.0.1:2 > 10.0.0.2:53'));
    expect(ev.evaluate(P('in on em0 udp 10.0.0.1:3 > 10.0.0.2:53'))).toMatchObject({ verdict: 'block', reason: 'state-limit', ruleId: 2 });
    expect(ev.stats().stateLimitDrops).toBe(1);
    expect(ev.evaluate(P('in on em0 udp 10.0.0.1:1 > 10.0.0.2:53')).reason).toBe('state');
  });

  it('reload keeps states on their old rule; counters of the new ruleset start at zero', () => {
    const ev = new ReferenceEvaluator(ir);
    ev.evaluate(P('in on em0 tcp 10.0.0.1:1000 > 10.0.0.2:80'));
    ev.reload(buildIr({ '': [{ action: 'block', quick: true }] }));
    const r = ev.evaluate(P('out on em0 tcp 10.0.0.2:80 > 10.0.0.1:1000 flags SA'));
    expect(r).toMatchObject({ verdict: 'pass', reason: 'state', ruleId: 1 });
    expect(ev.states()[0]).toMatchObject({ generation: 0, ruleId: 1 });
    expect(ev.evaluate(P('in on em0 tcp 10.0.0.1:1001 > 10.0.0.2:80')).verdict).toBe('block');
    expect(ev.counters()).toHaveLength(1);
  });

  it('counts state traffic on the creating rule, its anchor rule and match rules', () => {
    const ir2 = buildIr({
      '': [{ action: 'match', dir: 'in' }, { action: 'anchor', call: anchorCall('t') }],
      t: [{ action: 'pass', proto: UDP }],
    });
    const ev = new ReferenceEvaluator(ir2);
    ev.evaluate({ ...P('in on em0 udp 10.0.0.1:1 > 10.0.0.2:53'), length: 100 });
    ev.evaluate({ ...P('out on em0 udp 10.0.0.2:53 > 10.0.0.1:1'), length: 200 });
    const c = ev.counters();
    for (const id of [0, 1, 2]) expect(c[id], `rule ${id}`).toMatchObject({ packets: [1, 1], bytes: [100, 200], states: 1, statesTotal: 1 });
    expect(c[2]).toMatchObject({ evaluations: 1, matches: 1 });
  });

  it('stateless decisions count on the rule and anchor rule, not on match rules', () => {
    const ev = new ReferenceEvaluator(
      buildIr({ '': [{ action: 'match' }, { action: 'anchor', call: anchorCall('t') }], t: [{ action: 'block', proto: UDP }, { action: 'pass', proto: TCP, state: 'none' }] }),
    );
    ev.evaluate(P('in on em0 udp 10.0.0.1:1 > 10.0.0.2:53'));
    ev.evaluate(P('out on em0 tcp 10.0.0.1:1 > 10.0.0.2:53'));
    const c = ev.counters();
    expect(c.map((x) => x.packets)).toEqual([[0, 0], [1, 1], [1, 0], [0, 1]]);
    expect(c[0]!.matches).toBe(2);
  });

  it('regression: a redirected flow whose stack key a same-direction state owns is dropped (pf STATEINS)', () => {
    const ev = new ReferenceEvaluator(
      buildIr({ '': [{ action: 'pass', dir: 'in', proto: UDP, rdrTo: { hosts: [addr('192.168.30.2').host], port: { lo: 53, hi: 53 } } }] }),
    );
    expect(ev.evaluate(P('in on em0 udp 10.0.0.1:999 > 1.1.1.1:53')).stateCreated).toBe(true);
    expect(ev.evaluate(P('in on em0 udp 10.0.0.1:999 > 2.2.2.2:53'))).toMatchObject({ verdict: 'block', reason: 'state-limit', ruleId: 0 });
    expect(ev.stats().stateInsertFailures).toBe(1);
    expect(ev.evaluate(P('out on em1 udp 192.168.30.2:53 > 10.0.0.1:999')).translated).toMatchObject({ src: '1.1.1.1' });
  });

  it('ICMP echo states key on the id', () => {
    const ev = new ReferenceEvaluator(buildIr({ '': [{ action: 'block', dir: 'in' }, { action: 'pass', dir: 'out', proto: 1 }] }));
    ev.evaluate(P('out on em0 icmp 10.0.0.1 > 10.0.0.2 icmp-type 8 id 7'));
    expect(ev.evaluate(P('in on em0 icmp 10.0.0.2 > 10.0.0.1 icmp-type 0 id 7')).reason).toBe('state');
    expect(ev.evaluate(P('in on em0 icmp 10.0.0.2 > 10.0.0.1 icmp-type 0 id 8')).verdict).toBe('block');
    // Errors neither create states nor match them.
    expect(ev.evaluate(P('out on em0 icmp 10.0.0.1 > 10.0.0.3 icmp-type 3 code 3'))).toMatchObject({ verdict: 'pass', reason: 'rule', stateCreated: false });
    expect(ev.evaluate(P('in on em0 icmp 10.0.0.2 > 10.0.0.1 icmp-type 11 id 7')).verdict).toBe('block');
  });
});

describe('ReferenceEvaluator: tenants', () => {
  it('classifies by interface, VLAN, then longest subnet (destination for out)', () => {
    const t = (id: string, subnets: string[], interfaces: string[], vlan: number | null) => ({
      id,
      netId: 1,
      subnets: subnets.map((s) => (addr(s).host as { prefix: { af: 'inet'; addr: string; len: number } }).prefix),
      gateways: [],
      vxlan: null,
      vlan,
      workloads: [],
      interfaces,
      anchor: '',
      pos: { file: 't', line: 1, col: 1 },
    });
    const ir = buildIr({ '': [] }, { tenants: [t('a', ['10.0.0.0/8'], ['tn1br'], 10), t('b', ['10.1.0.0/16'], [], null)] });
    const ev = new ReferenceEvaluator(ir);
    expect(ev.evaluate(P('in on tn1br udp 10.1.0.1:1 > 8.8.8.8:53')).tenant).toBe('a');
    expect(ev.evaluate(P('in on em0 udp 10.1.0.1:1 > 8.8.8.8:53')).tenant).toBe('b');
    expect(ev.evaluate(P('in on em0 udp 10.2.0.1:1 > 8.8.8.8:53')).tenant).toBe('a');
    expect(ev.evaluate(P('in on em0 udp 10.1.0.1:1 > 8.8.8.8:53 vlan 10')).tenant).toBe('a');
    expect(ev.evaluate(P('out on em0 udp 8.8.8.8:53 > 10.1.0.1:1')).tenant).toBe('b');
    expect(ev.evaluate(P('out on em0 udp 10.1.0.1:1 > 8.8.8.8:53')).tenant).toBeNull();
  });
});

describe('ReferenceEvaluator: input validation', () => {
  it('rejects malformed packets', () => {
    const ev = new ReferenceEvaluator(buildIr({ '': [{ action: 'pass', src: ANY }] }));
    const base = P('in on em0 udp 10.0.0.1:1 > 10.0.0.2:53');
    expect(() => ev.evaluate({ ...base, src: '10.0.0.256' })).toThrow(/source address/);
    expect(() => ev.evaluate({ ...base, af: 'inet6' })).toThrow(/inet6/);
    expect(() => ev.evaluate({ ...base, dport: 70000 })).toThrow(/dport/);
    expect(() => ev.evaluate({ ...base, vlan: 4096 })).toThrow(/vlan/);
    expect(() => ev.evaluate({ ...base, length: -1 })).toThrow(/length/);
    expect(() => ev.evaluate({ ...base, ifname: 'averyveryverylongname0' })).toThrow(/interface/);
    expect(ev.stats().packets).toBe(0);
  });
});
