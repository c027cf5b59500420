// The text form of the pf backend: re-rooted anchors ("tenant1" -> "ztb/tenant1"), main ruleset
// calling them, pfctl argv arrays (anchors first, -n for dry runs), tenant-only loads.
import { describe, expect, it } from 'vitest';
import { BackendError } from '../../../src/backends/pf/errors.js';
import { renderPfText, reRoot } from '../../../src/backends/pf/text.js';
import { renderAnchor } from '../../../src/policy/render.js';
import { net, policy, SA } from './fixtures.js';

const ir = () => policy({
  '': [
    { action: 'block', blockPolicy: 'drop' },
    { action: 'anchor', quick: true, iface: { name: 'vether0.10', neg: false }, call: { name: 'tenant1', wildcard: false, targets: ['tenant1'] } },
    { action: 'anchor', call: { name: 'tenant2/*', wildcard: true, targets: ['tenant2/web'] } },
  ],
  tenant1: [
    { action: 'pass', dir: 'in', quick: true, af: 'inet', proto: 6, src: net('10.10.10.0/24'), dstPort: { op: '=', lo: 443, hi: 443 }, state: 'keep', flags: SA },
    { action: 'anchor', call: { name: 'tenant1/db', wildcard: false, targets: ['tenant1/db'] } },
  ],
  'tenant1/db': [{ action: 'block', blockPolicy: 'drop', dir: 'in' }],
  'tenant2/web': [{ action: 'pass', dir: 'out', state: 'none' }],
}, { skip: ['lo0'], loginterface: 'vether0' });

describe('renderPfText', () => {
  it('loads every IR ruleset under ztb/, children before parents, and the main ruleset last', () => {
    const b = renderPfText(ir());
    expect(b.anchors.map((a) => [a.irPath, a.anchor])).toEqual([
      ['tenant1/db', 'ztb/tenant1/db'],
      ['tenant2/web', 'ztb/tenant2/web'],
      ['tenant1', 'ztb/tenant1'],
    ]);
    expect(b.commands.map((c) => c.argv)).toEqual([
      ['pfctl', '-a', 'ztb/tenant1/db', '-f', '-'],
      ['pfctl', '-a', 'ztb/tenant2/web', '-f', '-'],
      ['pfctl', '-a', 'ztb/tenant1', '-f', '-'],
      ['pfctl', '-f', '-'],
    ]);
    expect(b.commands.at(-1)!.stdin).toBe(b.main);
    expect(b.main).toContain('set skip on lo0\n');
    expect(b.main).toContain('set loginterface vether0\n');
    expect(b.main).toMatch(/^anchor "ztb\/tenant1" quick on vether0\.10 all$/m);
    expect(b.main).toMatch(/^anchor "ztb\/tenant2\/\*" all$/m);
    expect(b.main).not.toContain('#');
    // inside ztb/tenant1 the sub-anchor stays relative, so it resolves to ztb/tenant1/db
    const t1 = b.anchors.find((a) => a.irPath === 'tenant1')!;
    expect(t1.text).toMatch(/^anchor "db" all$/m);
    expect(t1.text.split('\n')[0]).toBe(renderAnchor(ir(), 'tenant1').split('\n')[0]);
    expect(b.whole).toContain('anchor "tenant1" quick on vether0.10 all {\n');
  });

  it('dry run uses -n, tenant scope loads only that subtree', () => {
    const d = renderPfText(ir(), { dryRun: true });
    expect(d.commands.at(-1)!.argv).toEqual(['pfctl', '-nf', '-']);
    expect(d.commands[0]!.argv).toEqual(['pfctl', '-n', '-a', 'ztb/tenant1/db', '-f', '-']);
    const t = renderPfText(ir(), { scope: { kind: 'tenant', anchor: 'tenant1' }, anchorRoot: 'ztb' });
    expect(t.commands.map((c) => c.argv[2])).toEqual(['ztb/tenant1/db', 'ztb/tenant1']);
    expect(() => renderPfText(ir(), { scope: { kind: 'tenant', anchor: 'tenant9' } })).toThrow(BackendError);
    expect(() => renderPfText(ir(), { anchorRoot: '' })).toThrow(BackendError);
    expect(() => renderPfText(ir(), { anchorRoot: '_pf' })).toThrow(/not a valid pf anchor path/);
  });

  it('reRoot moves rulesets, calls and targets and leaves the original alone', () => {
    const src = ir();
    const r = reRoot(src, 'ztb');
    expect(Object.keys(r.rulesets).sort()).toEqual(['', 'ztb/tenant1', 'ztb/tenant1/db', 'ztb/tenant2/web']);
    expect(r.rules[2]!.call).toEqual({ name: 'ztb/tenant2/*', wildcard: true, targets: ['ztb/tenant2/web'] });
    expect(src.rules[2]!.call!.name).toBe('tenant2/*');
  });
});
