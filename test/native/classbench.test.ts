// ClassBench proof through the optimised addon: for every vendored rule set with a trace (primary
// and alt-6field, 1K and 10K) every header's classifier result equals the linear first match, the
// primary trace's last column (1-based), and, for alt-6field, is no later than the generating rule
// (0-based), through the batch path at batch sizes 32/256/1024; the 100K-class sets build under the
// memory budget and agree with the linear scan on a generated trace. Also argument checking.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CLASSBENCH_DIMS,
  NativeClassifier,
  NO_MATCH,
  generateClassbenchTrace,
  parseClassbenchRules,
  parseClassbenchTrace,
  readClassbenchFile,
} from '../../src/engine/classbench.js';
import { NativeError } from '../../src/engine/native.js';

const DIR = process.env.ZTB_CLASSBENCH_DIR ?? join(import.meta.dirname, '..', '..', 'bench', 'classbench');

function find(rel: string): string {
  for (const p of [join(DIR, rel), join(DIR, rel + '.gz')]) if (existsSync(p)) return p;
  throw new Error(`ClassBench file ${rel} not found under ${DIR}`);
}

function lookupAll(c: NativeClassifier, keys: Uint32Array, batch: number): Uint32Array {
  const n = keys.length / CLASSBENCH_DIMS;
  const out = new Uint32Array(n);
  const slice = new Uint32Array(batch);
  for (let i = 0; i < n; i += batch) {
    const m = Math.min(batch, n - i);
    c.lookupBatch(keys.subarray(i * CLASSBENCH_DIMS, (i + m) * CLASSBENCH_DIMS), slice);
    out.set(slice.subarray(0, m), i);
  }
  return out;
}

const SETS: Array<{ name: string; primary: boolean }> = [
  ...['acl1', 'fw1', 'ipc1'].flatMap((f) => [
    { name: `${f}_1k`, primary: true },
    { name: `${f}_10k`, primary: true },
    { name: `alt-6field/${f}_1k`, primary: false },
  ]),
  { name: 'alt-6field/fw1_10k', primary: false },
  { name: 'alt-6field/ipc1_10k', primary: false },
];

describe('ClassBench: classifier == linear first match == trace', () => {
  for (const set of SETS) {
    it(set.name, () => {
      const rules = parseClassbenchRules(readClassbenchFile(find(`${set.name}.rules`)));
      const trace = parseClassbenchTrace(readClassbenchFile(find(`${set.name}.trace`)));
      const nRules = rules.length / (2 + 2 * CLASSBENCH_DIMS);
      expect(trace.alt).toBe(!set.primary);
      const fast = NativeClassifier.build(rules, CLASSBENCH_DIMS);
      const info = fast.info();
      expect(info.invariants).toBe('ok');
      expect(info.nRules).toBe(nRules);
      expect(info.memoryBytes).toBeLessThan(64 * 2 ** 20);
      const linear = NativeClassifier.build(rules, CLASSBENCH_DIMS, { linear: true });
      const want = lookupAll(linear, trace.keys, 4096);
      const n = trace.last.length;
      let bad = 0;
      for (let i = 0; i < n; i++) {
        const w = want[i]!;
        const ok = set.primary ? w !== NO_MATCH && w + 1 === trace.last[i] : w !== NO_MATCH && w <= trace.last[i]!;
        if (!ok) bad++;
      }
      expect(bad).toBe(0);
      for (const batch of [32, 256, 1024]) {
        const got = lookupAll(fast, trace.keys, batch);
        let diff = 0;
        for (let i = 0; i < n; i++) if (got[i] !== want[i]) diff++;
        expect(diff, `batch ${batch}`).toBe(0);
      }
      const scalar = NativeClassifier.build(rules, CLASSBENCH_DIMS, { simd: 'scalar' });
      const got = lookupAll(scalar, trace.keys, 256);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    });
  }

  for (const name of ['acl1_100k', 'fw1_100k']) {
    it(`large/${name}: builds under budget, agrees with linear on a generated trace`, () => {
      const rules = parseClassbenchRules(readClassbenchFile(find(`large/${name}.rules`)));
      const fast = NativeClassifier.build(rules, CLASSBENCH_DIMS);
      const info = fast.info();
      expect(info.invariants).toBe('ok');
      expect(info.memoryBytes).toBeLessThanOrEqual(64 * 2 ** 20);
      const keys = generateClassbenchTrace(rules, 20_000, 7);
      const linear = NativeClassifier.build(rules, CLASSBENCH_DIMS, { linear: true });
      const want = lookupAll(linear, keys, 4096);
      const got = lookupAll(fast, keys, 256);
      let diff = 0;
      let none = 0;
      for (let i = 0; i < want.length; i++) {
        if (got[i] !== want[i]) diff++;
        if (want[i] === NO_MATCH) none++;
      }
      expect(diff).toBe(0);
      expect(none).toBe(0); // every generated header is a corner of some rule
    });
  }
});

describe('classifier binding', () => {
  it('for_each_match through the binding matches the linear oracle', () => {
    const rules = parseClassbenchRules(readClassbenchFile(find('ipc1_1k.rules')));
    const trace = parseClassbenchTrace(readClassbenchFile(find('ipc1_1k.trace')));
    const fast = NativeClassifier.build(rules, CLASSBENCH_DIMS, { maxGroupRules: 256 });
    expect(fast.info().groups).toBeGreaterThan(1);
    const linear = NativeClassifier.build(rules, CLASSBENCH_DIMS, { linear: true });
    for (let i = 0; i < 500; i++) {
      const key = trace.keys.subarray(i * 5, i * 5 + 5);
      const minPrio = (i * 37) % 900;
      expect(fast.matches(key, minPrio)).toEqual(linear.matches(key, minPrio));
      expect(fast.matches(key, 0, 2)).toEqual(linear.matches(key, 0, 2));
    }
  });

  it('rejects bad arguments with typed errors', () => {
    const rules = new Uint32Array([0, 7, 1, 2, 3]); // 5 words: not a multiple of 2 + 2*2
    expect(() => NativeClassifier.build(rules, 2)).toThrow(NativeError);
    try {
      NativeClassifier.build(new Uint32Array([0, 7, 5, 4]), 1);
      expect.unreachable();
    } catch (e) {
      expect((e as NativeError).code).toBe('ERR_ZTB_INVALID_RULE');
    }
    expect(() => NativeClassifier.build(new Uint32Array(0), 17)).toThrow(/nDims/);
    expect(() => NativeClassifier.build(new Uint32Array(0), 1, { bogus: 1 } as never)).toThrow(/unknown/);
    const c = NativeClassifier.build(new Uint32Array([0, 7, 5, 9]), 1);
    const out = new Uint32Array(2);
    expect(c.lookupBatch(new Uint32Array([6, 10]), out)).toBe(2);
    expect([...out]).toEqual([7, NO_MATCH]);
    expect(() => c.lookupBatch(new Uint32Array([6, 10]), new Uint32Array(1))).toThrow(NativeError);
    expect(() => c.lookupBatch(new Float64Array(2) as never, out)).toThrow(TypeError);
    expect(() => parseClassbenchRules('@1.2.3.4/33 0.0.0.0/0 0 : 1 0 : 1 0x06/0xFF\n')).toThrow(/^1:\d+: /);
  });
});
