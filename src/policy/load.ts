// Policy layer: the entry point that turns a policy document into the IR. The format comes from
// the caller (`--format`) or the file extension (.toml => toml, anything else => pf.conf); pf
// text goes straight to compilePf, TOML documents go through the TOML loader, which generates pf
// units and compiles them the same way. Read errors become PolicyErrors naming the file, so the
// CLI prints one line and no stack.
import { readFileSync, statSync } from 'node:fs';
import type { Ir } from './ir.js';
import { PolicyError } from './errors.js';
import { LIMITS, compilePf } from './compile.js';
import { compileTomlPolicy } from './toml.js';

export type PolicyFormat = 'pf' | 'toml';

export function formatFromPath(path: string): PolicyFormat {
  return path.toLowerCase().endsWith('.toml') ? 'toml' : 'pf';
}

export function compilePolicyText(text: string, file: string, format?: PolicyFormat): Ir {
  const fmt = format ?? formatFromPath(file);
  if (fmt === 'toml') return compileTomlPolicy(text, file);
  return compilePf({ units: [{ file, text, ruleset: '' }] });
}

export function loadPolicyFile(path: string, opts?: { format?: PolicyFormat }): Ir {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
    if (st.size > LIMITS.inputBytes) {
      throw new PolicyError([{ pos: { file: path, line: 1, col: 1 }, message: `policy file larger than ${LIMITS.inputBytes} bytes` }]);
    }
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof PolicyError) throw e;
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new PolicyError([{ pos: { file: path, line: 1, col: 1 }, message: `cannot read policy: ${why}` }]);
  }
  return compilePolicyText(text, path, opts?.format);
}
