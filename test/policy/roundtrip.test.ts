// Round trip: renderPfConf(ir) parsed again gives the same IR (ignoring positions and origins),
// on every example and on random policies. Random runs print their seed; replay one with
// ZTB_SEED=<seed> npx vitest run test/policy/roundtrip.test.ts
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compilePf } from '../../src/policy/compile.js';
import type { Ir } from '../../src/policy/ir.js';
import { loadPolicyFile } from '../../src/policy/load.js';
import { renderAnchor, renderPfConf } from '../../src/policy/render.js';

/** The IR without what depends on where things were written. */
function shape(ir: Ir): unknown {
  const rulesets: Record<string, unknown[]> = {};
  for (const [path, rs] of Object.entries(ir.rulesets)) {
    rulesets[path] = rs.rules.map((id) => {
      const { id: _i, origin: _o, pos: _p, ...rest } = ir.rules[id]!;
      return rest;
    });
  }
  const tables = Object.fromEntries(Object.entries(ir.tables).map(([k, t]) => [k, { ...t, pos: null }]));
  return { options: ir.options, rulesets, tables, n: ir.rules.length };
}

function roundTrip(ir: Ir): Ir {
  return compilePf({ units: [{ file: 'rendered.pf.conf', text: renderPfConf(ir), ruleset: '' }] });
}

describe('round trip', () => {
  const files = readdirSync('examples').filter((f) => f.endsWith('.pf.conf'));
  test.each(files)('examples/%s', (f) => {
    const ir = compilePf({ units: [{ file: f, text: readFileSync(`examples/${f}`, 'utf8'), ruleset: '' }] });
    const again = roundTrip(ir);
    expect(shape(again)).toEqual(shape(ir));
    // and the rendering is a fixed point
    expect(renderPfConf(again)).toBe(renderPfConf(ir));
  });

  const tomls = readdirSync('examples').filter((f) => f.endsWith('.toml'));
  test.each(tomls)('examples/%s (TOML-generated units render to one pf.conf)', (f) => {
    const ir = loadPolicyFile(`examples/${f}`);
    expect(shape(roundTrip(ir))).toEqual(shape(ir));
  });

  test('renderAnchor gives a ruleset body that compiles to the same rules', () => {
    const ir = compilePf({ units: [{ file: 'f', text: readFileSync('examples/zerotrust-multitenant.pf.conf', 'utf8'), ruleset: '' }] });
    const body = renderAnchor(ir, 'tenant1');
    expect(body.split('\n')[0]).toBe('pass in quick on vether0.10 inet proto tcp from 10.10.10.0/24 to any port = 443 flags S/SA keep state');
    const again = compilePf({ units: [{ file: 'g', text: body, ruleset: 'tenant1' }] });
    expect((shape(again) as { rulesets: Record<string, unknown> }).rulesets['tenant1']).toEqual(
      (shape(ir) as { rulesets: Record<string, unknown> }).rulesets['tenant1'],
    );
    expect(() => renderAnchor(ir, 'nope')).toThrow(RangeError);
  });

  test('rendered pf.conf uses the multi-line anchor form', () => {
    const ir = compilePf({ units: [{ file: 'f', text: 'anchor "a" { pass in all }\n', ruleset: '' }] });
    expect(renderPfConf(ir)).toBe('set block-policy drop\nanchor "a" all {\n  pass in all flags S/SA keep state\n}\n');
  });

  test('options and tables, including an empty table, survive the round trip', () => {
    const ir = compilePf({
      units: [{ file: 'f', text: 'set skip on { lo0 enc0 }\nset state-policy if-bound\nset loginterface em0\ntable <e> persist\ntable <c> const { 10.0.0.0/8 !10.1.0.0/16 }\nblock in from <e> to <c>\n', ruleset: '' }],
    });
    const text = renderPfConf(ir);
    expect(text).toBe(
      'set skip on { lo0 enc0 }\nset block-policy drop\nset loginterface em0\nset state-policy if-bound\ntable <e> persist\n' +
        'table <c> const { 10.0.0.0/8 !10.1.0.0/16 }\nblock drop in from <e> to <c>\n',
    );
    expect(shape(roundTrip(ir))).toEqual(shape(ir));
  });

  // ---- random policies -----------------------------------------------------------------------
  const v4 = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 32 }))
    .map(([a, b, len]) => `10.${a}.${b}.${(a * 7) & 255}/${len}`);
  const v6 = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 128 }))
    .map(([g, len]) => `fd00:${g.toString(16)}::${(g & 0xff).toString(16)}/${len}`);
  const host = fc.oneof(
    v4, v6,
    fc.constant('any'), fc.constant('<tbl>'), fc.constant('(em0)'), fc.constant('(em0:network)'), fc.constant('(em0:0)'),
    fc.constant('(em1:broadcast)'), fc.constant('(em1:peer)'), fc.constant('self'), fc.constant('vether0'),
  );
  const neg = fc.boolean().map((b) => (b ? '!' : ''));
  const hosts = fc.oneof(
    fc.tuple(neg, host).map(([n, h]) => (h === 'any' ? 'any' : n + h)),
    fc.array(fc.tuple(neg, host).map(([n, h]) => (h === 'any' ? 'any' : n + h)), { minLength: 2, maxLength: 3 }).map((a) => `{ ${a.join(' ')} }`),
  );
  const portItem = fc.oneof(
    fc.integer({ min: 0, max: 65535 }).map(String),
    fc.tuple(fc.constantFrom('=', '!=', '<', '<=', '>', '>='), fc.integer({ min: 0, max: 65535 })).map(([o, p]) => `${o} ${p}`),
    fc.tuple(fc.integer({ min: 0, max: 30000 }), fc.integer({ min: 0, max: 30000 })).map(([a, b]) => `${a}:${a + b}`),
    fc.tuple(fc.constantFrom('<>', '><'), fc.integer({ min: 0, max: 30000 }), fc.integer({ min: 0, max: 30000 })).map(([o, a, b]) => `${a} ${o} ${a + b}`),
    fc.constantFrom('ssh', 'domain', 'http', 'https', 'ntp', 'smtp'),
  );
  const ports = fc.oneof(portItem, fc.array(portItem, { minLength: 2, maxLength: 3 }).map((a) => `{ ${a.join(' ')} }`));
  const iface = fc.constantFrom('em0', 'em1', 'vether0.10', 'egress', '!lo0', '{ em0 em1 }');
  const flagset = fc.constantFrom('flags S/SA', 'flags any', 'flags /SA', 'flags SA/SAFR', '');
  const state = fc.constantFrom('keep state', 'modulate state', 'synproxy state', 'no state', '');
  const log = fc.constantFrom('', 'log', 'log (all)', 'log (matches, to pflog1)', 'log (user)');

  const rule = fc.record({
    action: fc.constantFrom('pass', 'block', 'block drop', 'block return', 'match'),
    dir: fc.constantFrom('', 'in', 'out'),
    log, quick: fc.boolean(), iface: fc.option(iface), af: fc.constantFrom('', 'inet', 'inet6'),
    proto: fc.constantFrom('', 'tcp', 'udp', 'icmp', '{ tcp udp }', '47'),
    from: fc.option(hosts), fromPort: fc.option(ports), to: fc.option(hosts), toPort: fc.option(ports),
    flags: flagset, state, nat: fc.option(fc.constantFrom('192.0.2.1', '(em0:0)', '{ 192.0.2.1 192.0.2.2 }', '2001:db8::1')),
    rdrPort: fc.option(fc.integer({ min: 1, max: 65535 })),
    scrub: fc.constantFrom('', 'scrub (no-df)', 'scrub (random-id max-mss 1400)', 'scrub (min-ttl 3 reassemble tcp)'),
  }).map((r) => {
    const tcpudp = r.proto === 'tcp' || r.proto === 'udp' || r.proto === '{ tcp udp }';
    const w: string[] = [r.action];
    if (r.dir) w.push(r.dir);
    if (r.log) w.push(r.log);
    if (r.quick) w.push('quick');
    if (r.iface) w.push(`on ${r.iface}`);
    if (r.af) w.push(r.af);
    if (r.proto) w.push(`proto ${r.proto}`);
    const fp = tcpudp && r.fromPort ? ` port ${r.fromPort}` : '';
    const tp = tcpudp && r.toPort ? ` port ${r.toPort}` : '';
    if (r.from || fp) w.push(`from ${r.from ?? 'any'}${fp}`);
    if (r.to || tp) w.push(`to ${r.to ?? 'any'}${tp}`);
    if (!r.from && !fp && !r.to && !tp) w.push('all');
    if (r.flags && (r.proto === '' || r.proto === 'tcp')) w.push(r.flags);
    if (r.action === 'pass' && r.state) w.push(r.state);
    const stateful = r.action === 'match' || (r.action === 'pass' && r.state !== 'no state');
    if (r.nat && stateful && r.dir === 'out') w.push(`nat-to ${r.nat}`);
    if (r.nat && stateful && r.dir === 'in') w.push(`rdr-to ${r.nat}${r.rdrPort ? ` port ${r.rdrPort}` : ''}`);
    if (r.scrub && r.action === 'match') w.push(r.scrub);
    return w.join(' ');
  });
  const icmpRule = fc.tuple(fc.constantFrom('pass', 'block', 'match'), fc.constantFrom('in', 'out'), fc.boolean(),
    fc.constantFrom('echoreq', '{ echoreq unreach }', '3 code 1', 'timex'))
    .map(([a, d, v6, t]) => (v6 ? `${a} ${d} inet6 proto icmp6 icmp6-type ${t === '3 code 1' ? '1 code 4' : t.replace('unreach', 'toobig')}` : `${a} ${d} proto icmp icmp-type ${t}`));
  const inner = fc.oneof({ weight: 4, arbitrary: rule }, { weight: 1, arbitrary: icmpRule });
  const nested = fc.tuple(fc.constantFrom('x', 'y'), fc.array(inner, { maxLength: 2 }))
    .map(([n, rs]) => `anchor "${n}" in {\n${rs.map((r) => `    ${r}\n`).join('')}  }`);
  const anchorBlock = fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.array(fc.oneof({ weight: 3, arbitrary: inner }, { weight: 1, arbitrary: nested }, { weight: 1, arbitrary: fc.constantFrom('anchor "*"', 'anchor "/c"', 'anchor "x"') }), { maxLength: 3 }), fc.boolean(), fc.constantFrom('', ' out'), fc.constantFrom('', ' on em0', ' inet proto tcp'))
    .map(([n, rs, q, dir, crit]) => `anchor "${n}"${dir}${q ? ' quick' : ''}${crit} {\n${rs.map((r) => `  ${r}\n`).join('')}}`);
  const policy = fc.array(fc.oneof({ weight: 4, arbitrary: inner }, { weight: 1, arbitrary: anchorBlock }, { weight: 1, arbitrary: fc.constantFrom('anchor "a/*"', 'anchor "ext"') }), { maxLength: 8 })
    .chain((stmts) => fc.constantFrom('drop', 'return').map((bp) => `set block-policy ${bp}\ntable <tbl> persist { 10.0.0.0/8 !10.1.0.0/16 fd00::/8 }\n${stmts.join('\n')}\n`));

  test('random policies', () => {
    const seed = process.env.ZTB_SEED ? Number(process.env.ZTB_SEED) : Date.now() % 2 ** 31;
    console.log(`roundtrip seed=${seed} (replay: ZTB_SEED=${seed})`);
    let compiled = 0;
    fc.assert(
      fc.property(policy, (text) => {
        let ir: Ir;
        try {
          ir = compilePf({ units: [{ file: 'r', text, ruleset: '' }] });
        } catch (e) {
          // Only family mismatches make a generated rule invalid (e.g. inet6 with a v4 host).
          expect((e as Error).message).toMatch(/no valid combination|icmp-type|only applies/);
          return;
        }
        compiled++;
        const again = roundTrip(ir);
        expect(shape(again)).toEqual(shape(ir));
        // Each written statement's canonical text compiles to the same expanded rules.
        const header = `set block-policy ${ir.options.blockPolicy}\ntable <tbl> { 10.0.0.0/8 }\n`;
        for (const [i, o] of ir.origins.entries()) {
          const mine = ir.rules.filter((r) => r.origin === i);
          if (o.ruleset !== '' || mine[0]!.action === 'anchor') continue;
          const alone = compilePf({ units: [{ file: 'o', text: header + o.text, ruleset: '' }] });
          const strip = (rs: Ir['rules']) => rs.map(({ id: _i, origin: _o, pos: _p, nr: _n, ...rest }) => rest);
          expect(strip(alone.rules)).toEqual(strip(mine));
        }
      }),
      { seed, numRuns: 300 },
    );
    expect(compiled).toBeGreaterThan(100);
  });
});
