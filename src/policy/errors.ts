// Policy layer: errors with source positions. Parsing and compiling collect every problem they
// find (not only the first) as Diagnostics and throw one PolicyError carrying all of them; its
// message is the diagnostics formatted `file:line:col: message`, one per line, which is exactly
// what the CLI prints.
import { ZtbError } from '../errors.js';
import type { SourcePos } from './ir.js';

export interface Diagnostic {
  pos: SourcePos;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.pos.file}:${d.pos.line}:${d.pos.col}: ${d.message}`;
}

export class PolicyError extends ZtbError {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    super('ERR_ZTB_POLICY', diagnostics.map(formatDiagnostic).join('\n'));
    this.diagnostics = diagnostics;
  }
}

/** Collects diagnostics during a pass; `throwIfAny` ends the pass with one PolicyError. */
export class DiagnosticSink {
  readonly items: Diagnostic[] = [];
  /** Hard cap so a pathological input cannot produce an unbounded error list. */
  static readonly MAX = 200;
  error(pos: SourcePos, message: string): void {
    if (this.items.length < DiagnosticSink.MAX) this.items.push({ pos, message });
  }
  get count(): number {
    return this.items.length;
  }
  throwIfAny(): void {
    if (this.items.length > 0) {
      const sorted = [...this.items].sort(
        (a, b) => a.pos.file.localeCompare(b.pos.file) || a.pos.line - b.pos.line || a.pos.col - b.pos.col,
      );
      throw new PolicyError(sorted);
    }
  }
}
