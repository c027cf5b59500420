// Test helper (nftables backend): builds small IRs by hand so the renderer and the kernel
// semantics tests do not depend on the pf parser. Every rule gets the defaults pf would give it
// (pass = keep state + flags S/SA, block = drop) unless the test overrides them.
import type { Ir, IrRule, IrTable, Prefix } from '../../../src/policy/ir.js';

export type RuleSpec = Partial<Omit<IrRule, 'id' | 'origin' | 'nr' | 'pos'>> & { action: IrRule['action'] };

export function prefix(cidr: string): Prefix {
  const [addr, len] = cidr.split('/') as [string, string | undefined];
  const af = addr.includes(':') ? 'inet6' : 'inet';
  return { af, addr, len: len === undefined ? (af === 'inet' ? 32 : 128) : Number(len) };
}

export function host(cidr: string, neg = false): IrRule['src'] {
  return { neg, host: { type: 'prefix', prefix: prefix(cidr) } };
}

export const ANY: IrRule['src'] = { neg: false, host: { type: 'any' } };

export function buildIr(
  rulesets: Record<string, RuleSpec[]>,
  extra: { tables?: Record<string, Omit<IrTable, 'pos'>>; skip?: string[]; groups?: Record<string, string[]> } = {},
): Ir {
  const rules: IrRule[] = [];
  const irRulesets: Ir['rulesets'] = {};
  let line = 1;
  for (const path of Object.keys(rulesets)) {
    irRulesets[path] = { path, rules: [] };
    rulesets[path]!.forEach((spec, nr) => {
      const id = rules.length;
      const action = spec.action;
      const stateful = action === 'pass' && spec.state !== 'none';
      const { action: _a, ...rest } = spec;
      const rule: IrRule = {
        id,
        origin: id,
        pos: { file: 'test.pf', line: line++, col: 1 },
        ruleset: path,
        nr,
        action: spec.action,
        blockPolicy: action === 'block' ? 'drop' : undefined,
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
        flags: stateful ? { bits: 0x02, mask: 0x12 } : null,
        icmpType: null,
        state: stateful ? 'keep' : 'none',
        natTo: null,
        rdrTo: null,
        scrub: null,
        call: null,
        text: spec.text ?? `${action} rule ${id}`,
        ...rest,
      };
      if (rule.state === 'none' && spec.flags === undefined) rule.flags = null;
      rules.push(rule);
      irRulesets[path]!.rules.push(id);
    });
  }
  if (!irRulesets['']) irRulesets[''] = { path: '', rules: [] };
  const tables: Ir['tables'] = {};
  for (const [name, t] of Object.entries(extra.tables ?? {})) tables[name] = { ...t, pos: { file: 'test.pf', line: 1, col: 1 } };
  return {
    version: 1,
    options: { skip: extra.skip ?? [], blockPolicy: 'drop', loginterface: null, statePolicy: 'floating' },
    rules,
    rulesets: irRulesets,
    tables,
    origins: rules.map((r) => ({ text: r.text, pos: r.pos, ruleset: r.ruleset })),
    tenants: [],
    groups: extra.groups ?? {},
    isolation: null,
    sources: ['test.pf'],
  };
}
