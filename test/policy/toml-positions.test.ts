// The TOML position scanner: every value smol-toml parses has a recorded position, and the
// position points at that value's text in the document (checked on the examples and on documents
// with the tricky parts of TOML: dotted and quoted keys, sub-tables of array elements, inline
// tables in arrays, multi-line strings with quotes, brackets inside strings and comments).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'smol-toml';
import { type PathSeg, TomlPositions, formatPath } from '../../src/policy/toml-positions.js';

const root = resolve(__dirname, '..', '..');

function leaves(v: unknown, path: PathSeg[] = [], out: { path: PathSeg[]; value: unknown }[] = []): typeof out {
  if (Array.isArray(v)) v.forEach((x, i) => leaves(x, [...path, i], out));
  else if (typeof v === 'object' && v !== null && !(v instanceof Date) && Object.getPrototypeOf(v) !== Date.prototype && !('toISOString' in v)) {
    for (const [k, x] of Object.entries(v)) leaves(x, [...path, k], out);
  } else out.push({ path, value: v });
  return out;
}

function offsetOf(text: string, line: number, col: number): number {
  let off = 0;
  for (let l = 1; l < line; l++) off = text.indexOf('\n', off) + 1;
  return off + col - 1;
}

/** Every leaf has a position; strings' content position starts with their first character,
 *  numbers' and booleans' value position starts with their text. */
function checkDocument(text: string): void {
  const pos = new TomlPositions(text);
  const data = parse(text);
  for (const { path, value } of leaves(data)) {
    const e = pos.get(path);
    expect(e, formatPath(path)).toBeDefined();
    if (typeof value === 'string') {
      expect(e!.content, formatPath(path)).toBeDefined();
      if (value.length > 0 && !e!.content!.escaped) {
        const off = offsetOf(text, e!.content!.line, e!.content!.col);
        expect(text.slice(off, off + value.length), formatPath(path)).toBe(value);
      }
    } else if (typeof value === 'number' || typeof value === 'boolean') {
      const off = offsetOf(text, e!.value.line, e!.value.col);
      expect(text.slice(off).replace(/_/g, ''), formatPath(path)).toMatch(new RegExp(`^[+]?${String(value).replace('.', '\\.')}`));
    }
  }
}

const TRICKY = `
# [not.a.table] in a comment, and "quotes"
title = "a [bracket] # not a comment"
a.b.c = 1
"quoted key".x = true
'literal key' = 'x'

[[tenants]]
id = "one"
rules = """
pass "quoted" ""
"""

[tenants.vxlan]
remotes = [
  "192.0.2.1", # first
  "192.0.2.2",
]

[[tenants.workloads]]
name = "w0"

[[tenants.workloads]]
name = "w1"
ips = ["10.0.0.1", "10.0.0.2"]

[[tenants]]
id = "two"
rules = '''
pass in on ztbr2 all ''
'''
vxlan = { remotes = ["192.0.2.9"], dstport = 4_789, learning = false }

[[tenants.workloads]]
name = "x"

[isolation]
allowed_ports = [ { protocol = "udp", port = 53 }, { protocol = "tcp", port = 53, direction = "both" } ]
nested = [[1, 2], [3, [4, 5]]]
`;

describe('TOML positions', () => {
  it('records every value of the examples at its text', () => {
    for (const f of ['examples/two-tenant.toml', 'examples/blixard-isolation.toml']) checkDocument(readFileSync(join(root, f), 'utf8'));
  });

  it('handles dotted/quoted keys, sub-tables of array elements, inline tables in arrays, multi-line strings', () => {
    checkDocument(TRICKY);
    const pos = new TomlPositions(TRICKY);
    expect(pos.get(['tenants', 0, 'vxlan', 'remotes', 1])?.value).toEqual({ line: 17, col: 3 });
    expect(pos.get(['tenants', 0, 'workloads', 1, 'ips', 1])?.value).toEqual({ line: 25, col: 20 });
    expect(pos.get(['tenants', 1, 'workloads', 0])?.key).toEqual({ line: 34, col: 1 });
    expect(pos.get(['tenants', 1, 'vxlan', 'dstport'])?.value).toEqual({ line: 32, col: 46 });
    expect(pos.get(['isolation', 'allowed_ports', 1, 'direction'])?.key).toEqual({ line: 38, col: 83 });
    expect(pos.get(['tenants', 0, 'rules'])?.content).toEqual({ line: 11, col: 1, escaped: false });
    expect(pos.get(['tenants', 1, 'rules'])?.content).toEqual({ line: 30, col: 1, escaped: false });
    expect(pos.get(['"quoted key"'])).toBeUndefined();
    expect(pos.get(['quoted key', 'x'])?.key).toEqual({ line: 5, col: 1 });
  });

  it('handles CRLF line endings', () => {
    const crlf = TRICKY.replace(/\n/g, '\r\n');
    checkDocument(crlf);
    const pos = new TomlPositions(crlf);
    expect(pos.get(['tenants', 0, 'rules'])?.content).toEqual({ line: 11, col: 1, escaped: false });
    expect(pos.get(['isolation', 'allowed_ports', 1, 'direction'])?.key).toEqual({ line: 38, col: 83 });
  });

  it('locates a missing path at its nearest recorded ancestor', () => {
    const pos = new TomlPositions(TRICKY);
    expect(pos.locate(['tenants', 0, 'workloads', 1, 'mac'])).toEqual({ line: 23, col: 1 });
    expect(pos.locate(['nothing', 'here'])).toEqual({ line: 1, col: 1 });
    expect(formatPath(['tenants', 3, 'a b', 'c'])).toBe('tenants[3]."a b".c');
  });

  it('marks basic strings with escapes', () => {
    const pos = new TomlPositions('a = "x\\ty"\nb = """\nl1\\\n  l2"""\nc = \'no\\escape\'\n');
    expect(pos.get(['a'])?.content?.escaped).toBe(true);
    expect(pos.get(['b'])?.content).toEqual({ line: 3, col: 1, escaped: true });
    expect(pos.get(['c'])?.content?.escaped).toBe(false);
  });
});
