// Round trips through the pf backend's two forms, using the real compiler: every example policy
// and random policies (test/helpers/gen-policy.ts) are compiled, rendered as the text backend's
// per-anchor pf.conf texts, parsed back, and must give the same IR (up to positions and text) —
// and the same kernel bytes from the ioctl encoder, so pfctl loading our text and our own ioctl
// loader produce the same pf state; the ioctl plan of each must also load on the simulated kernel.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getRelease } from '../../../src/backends/pf/abi/releases.js';
import { encodeIr } from '../../../src/backends/pf/encode.js';
import { executePlan, planLoad } from '../../../src/backends/pf/plan.js';
import { SimulatedPfDevice } from '../../../src/backends/pf/sim-device.js';
import { renderPfText, reRoot } from '../../../src/backends/pf/text.js';
import { compilePf } from '../../../src/policy/compile.js';
import { loadPolicyFile } from '../../../src/policy/load.js';
import type { Ir } from '../../../src/policy/ir.js';
import { randomPolicy, testSeed } from '../../helpers/gen-policy.js';

const R = getRelease('pfvar-1.543');
const examplesDir = join(__dirname, '..', '..', '..', 'examples');
const examples = readdirSync(examplesDir).filter((f) => f.endsWith('.pf.conf')).sort();

/** What the kernel and the evaluator see: everything but positions, texts and origin numbering. */
function semantic(ir: Ir): unknown {
  return {
    options: ir.options,
    tables: Object.values(ir.tables).map(({ pos: _p, ...t }) => t),
    rulesets: Object.fromEntries(
      Object.entries(ir.rulesets).filter(([, rs]) => rs.rules.length > 0).map(([path, rs]) => [
        path,
        rs.rules.map((id) => {
          const { id: _id, origin: _o, pos: _pos, text: _t, ...rest } = ir.rules[id]!;
          return rest;
        }),
      ]),
    ),
  };
}

function reparse(ir: Ir): Ir {
  const b = renderPfText(ir);
  return compilePf({
    units: [
      { file: 'main.pf.conf', text: b.main, ruleset: '' },
      ...b.anchors.map((a) => ({ file: `${a.anchor}.pf.conf`, text: a.text, ruleset: a.anchor })),
    ],
  });
}

function kernelBytes(ir: Ir, anchorRoot: string): Record<string, string[]> {
  const enc = encodeIr(ir, { release: R, anchorRoot });
  return Object.fromEntries([...enc.byAnchor].filter(([, l]) => l.length > 0).map(([a, l]) => [a, l.map((k) => `${k.anchorCall}|${k.rule.toString('hex')}`)]));
}

function checkRoundTrip(ir: Ir): void {
  const back = reparse(ir);
  expect(semantic(back)).toEqual(semantic(reRoot(ir, 'ztb')));
  expect(kernelBytes(back, '')).toEqual(kernelBytes(ir, 'ztb'));
  const whole = compilePf({ units: [{ file: 'whole.pf.conf', text: renderPfText(ir).whole, ruleset: '' }] });
  expect(semantic(whole)).toEqual(semantic(ir));
  // and the ioctl form loads on the simulated kernel, whose field checks every rule must pass
  const dev = new SimulatedPfDevice(R);
  expect(executePlan(planLoad(ir, { release: R }), dev).committed).toBe(true);
}

describe('text backend round trip', () => {
  it('covers the seed examples', () => {
    expect(examples).toEqual(['vmm-gateway.pf.conf', 'zerotrust-anchor-snippet.pf.conf', 'zerotrust-multitenant.pf.conf']);
  });
  for (const f of examples) {
    it(f, () => {
      const ir = compilePf({ units: [{ file: f, text: readFileSync(join(examplesDir, f), 'utf8'), ruleset: '' }] });
      expect(ir.rules.length).toBeGreaterThan(0);
      checkRoundTrip(ir);
    });
  }

  for (const f of readdirSync(examplesDir).filter((x) => x.endsWith('.toml')).sort()) {
    it(`${f} (pf generated from TOML)`, () => {
      const ir = loadPolicyFile(join(examplesDir, f));
      expect(ir.rules.length).toBeGreaterThan(0);
      checkRoundTrip(ir);
    });
  }

  it('random policies', () => {
    const base = testSeed('pf text round trip');
    for (let i = 0; i < 40; i++) {
      const seed = (base + i) >>> 0;
      const info = randomPolicy(seed);
      let ir: Ir;
      try {
        ir = compilePf({ units: [{ file: `random-${seed}.pf.conf`, text: info.text, ruleset: '' }] });
      } catch (e) {
        throw new Error(`seed ${seed}: generated policy does not compile: ${(e as Error).message}\n${info.text}`);
      }
      try {
        checkRoundTrip(ir);
      } catch (e) {
        throw new Error(`seed ${seed} (replay with ZTB_SEED=${seed}): ${(e as Error).message}\n--- policy ---\n${info.text}`);
      }
    }
  });
});
