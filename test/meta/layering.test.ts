// Checks the import graph of src/ against the layering in docs/style: policy imports nothing of
// ours but shared errors; engine imports policy; backends import policy (and engine types);
// net is independent of rules (it may read the IR's tenant *types*); cli and daemon compose.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..', '..', 'src');

function files(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

function layerOf(file: string): string {
  const rel = relative(root, file).split('/');
  if (rel.length === 1) return rel[0] === 'index.ts' ? 'index' : 'shared';
  if (rel[0] === 'backends') return `backends/${rel[1]}`;
  return rel[0]!;
}

// layer -> layers it may import at run time (type-only imports are listed separately)
const allowed: Record<string, string[]> = {
  shared: ['shared'],
  policy: ['shared', 'policy'],
  engine: ['shared', 'policy', 'engine'],
  net: ['shared', 'net', 'engine' /* native loader for taps */],
  'backends/nft': ['shared', 'policy', 'engine', 'backends/nft', 'net'],
  'backends/pf': ['shared', 'policy', 'backends/pf', 'engine'],
  daemon: ['*'],
  cli: ['*'],
  index: ['*'],
};
const typeOnlyAllowed: Record<string, string[]> = {
  net: ['policy'],
};

describe('import graph', () => {
  it('respects the layering', () => {
    const problems: string[] = [];
    for (const f of files(root)) {
      const from = layerOf(f);
      const src = readFileSync(f, 'utf8');
      const re = /^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"](\.[^'"]+)['"]/gm;
      for (const m of src.matchAll(re)) {
        const typeOnly = Boolean(m[2]);
        const target = resolve(dirname(f), m[3]!.replace(/\.js$/, '.ts'));
        const to = layerOf(target);
        const ok = allowed[from]?.includes('*') || allowed[from]?.includes(to) ||
          (typeOnly && typeOnlyAllowed[from]?.includes(to));
        if (!ok) problems.push(`${relative(root, f)} (${from}) imports ${relative(root, target)} (${to})`);
      }
    }
    expect(problems).toEqual([]);
  });
});
