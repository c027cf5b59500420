// Test helper (engine): compile pf.conf text to IR and run packet lines through a reference
// evaluator, so conformance tests read like the pf.conf(5) examples they check.
import { compilePf } from '../../src/policy/compile.js';
import type { Ir } from '../../src/policy/ir.js';
import type { EvalResult } from '../../src/engine/packet.js';
import { ReferenceEvaluator, type EvaluatorOptions } from '../../src/engine/reference.js';
import { parsePacketLine } from '../../src/engine/packet-line.js';

export function compile(text: string, file = 'test.pf.conf'): Ir {
  return compilePf({ units: [{ file, text, ruleset: '' }] });
}

export interface Harness {
  ir: Ir;
  ev: ReferenceEvaluator;
  /** Evaluates one packet line. */
  run(line: string): EvalResult;
  /** The text of the rule a result names. */
  text(res: EvalResult): string | null;
}

export function harness(pf: string, opts: EvaluatorOptions = {}): Harness {
  const ir = compile(pf);
  const ev = new ReferenceEvaluator(ir, opts);
  return {
    ir,
    ev,
    run: (line) => ev.evaluate(parsePacketLine(line)),
    text: (res) => (res.ruleId === null ? null : ir.rules[res.ruleId]!.text),
  };
}
