// Test fixtures for the pf backend: hand-built IR rules and policies in the exact shape the compiler
// produces (src/policy/ir.ts), so the encoders and the planner can be tested field by field without
// depending on the parser.
import type { AddrMatch, Ir, IrRule, IrTable, Prefix } from '../../../src/policy/ir.js';

export const ANY: AddrMatch = { neg: false, host: { type: 'any' } };

export function prefix(text: string): Prefix {
  const [addr, len] = text.split('/');
  const af = addr!.includes(':') ? 'inet6' : 'inet';
  return { af, addr: addr!, len: len === undefined ? (af === 'inet' ? 32 : 128) : Number(len) };
}

export function net(text: string, neg = false): AddrMatch {
  return { neg, host: { type: 'prefix', prefix: prefix(text) } };
}

export function rule(p: Partial<IrRule> & Pick<IrRule, 'action'>): IrRule {
  return {
    id: 0,
    origin: 0,
    pos: { file: 'test.pf.conf', line: 1, col: 1 },
    ruleset: '',
    nr: 0,
    blockPolicy: p.action === 'block' ? 'drop' : undefined,
    dir: null,
    quick: false,
    log: null,
    iface: null,
    af: null,
    proto: null,
    src: ANY,
    srcPort: null,
    dst: ANY,
    dstPort: null,
    flags: null,
    icmpType: null,
    state: 'none',
    natTo: null,
    rdrTo: null,
    scrub: null,
    call: null,
    text: `${p.action} ...`,
    ...p,
  };
}

/** Assembles an IR from rules listed per ruleset, numbering ids and nrs as the compiler does. */
export function policy(
  rulesets: Record<string, Partial<IrRule>[]>,
  extra: { tables?: IrTable[]; skip?: string[]; loginterface?: string | null; statePolicy?: 'floating' | 'if-bound' } = {},
): Ir {
  const rules: IrRule[] = [];
  const rs: Ir['rulesets'] = {};
  for (const [path, list] of Object.entries(rulesets)) {
    rs[path] = { path, rules: [] };
    list.forEach((r, nr) => {
      const id = rules.length;
      rules.push(rule({ action: 'pass', ...r, id, origin: id, ruleset: path, nr }));
      rs[path]!.rules.push(id);
    });
  }
  if (!rs['']) rs[''] = { path: '', rules: [] };
  return {
    version: 1,
    options: {
      skip: extra.skip ?? [],
      blockPolicy: 'drop',
      loginterface: extra.loginterface ?? null,
      statePolicy: extra.statePolicy ?? 'floating',
    },
    rules,
    rulesets: rs,
    tables: Object.fromEntries((extra.tables ?? []).map((t) => [t.name, t])),
    origins: rules.map((r) => ({ text: r.text, pos: r.pos, ruleset: r.ruleset })),
    tenants: [],
    groups: {},
    isolation: null,
    sources: ['test.pf.conf'],
  };
}

export const SA = { bits: 0x02, mask: 0x12 };
