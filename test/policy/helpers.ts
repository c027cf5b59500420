// Test helpers for the pf.conf compiler tests: compile a text, collect diagnostics.
import { compilePf } from '../../src/policy/compile.js';
import { PolicyError, formatDiagnostic } from '../../src/policy/errors.js';
import type { Ir, IrRule } from '../../src/policy/ir.js';

export function pf(text: string, file = 't.pf.conf'): Ir {
  return compilePf({ units: [{ file, text, ruleset: '' }] });
}

export function diags(text: string, file = 't.pf.conf'): string[] {
  try {
    compilePf({ units: [{ file, text, ruleset: '' }] });
  } catch (e) {
    if (e instanceof PolicyError) return e.diagnostics.map(formatDiagnostic);
    throw e;
  }
  throw new Error(`expected errors, but compiled:\n${text}`);
}

export function texts(ir: Ir, ruleset = ''): string[] {
  return ir.rulesets[ruleset]!.rules.map((id) => ir.rules[id]!.text);
}

export function rulesOf(ir: Ir, ruleset = ''): IrRule[] {
  return ir.rulesets[ruleset]!.rules.map((id) => ir.rules[id]!);
}
