// Input caps: written pf text is capped at 1 MiB; text generated from a TOML document (bounded by
// the TOML loader's own caps) has a separate, larger cap so large tenant sets fit.
import { describe, expect, it } from 'vitest';
import { compilePf, LIMITS } from '../../src/policy/compile.js';
import { PolicyError } from '../../src/policy/errors.js';

function bigText(bytes: number): string {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const l = `pass in quick on vether0 inet proto tcp from 10.${(i >> 8) & 255}.${i & 255}.0/24 to any port ${1 + (i % 60000)}   # padding padding`;
    lines.push(l);
    n += l.length + 1;
  }
  return lines.join('\n') + '\n';
}

describe('input caps', () => {
  const text = bigText(LIMITS.inputBytes + 4096);
  it('rejects more than 1 MiB of written policy text with a position', () => {
    try {
      compilePf({ units: [{ file: 'big.conf', text, ruleset: '' }] });
      expect.unreachable('must throw');
    } catch (e) {
      expect(e).toBeInstanceOf(PolicyError);
      expect((e as PolicyError).message).toMatch(/^big\.conf:1:1: policy input larger than 1048576 bytes/);
    }
  });
  it('accepts the same amount of generated text (TOML isolation rules)', () => {
    const ir = compilePf({ units: [{ file: 'p.toml', text, ruleset: '', line: 3, col: 1, generated: true }] });
    expect(ir.rules.length).toBeGreaterThan(5000);
  });
});
