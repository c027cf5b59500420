// Test helper (engine): builds IR objects by hand, so the reference evaluator can be tested without
// the pf compiler and on IR shapes the compiler would never emit (deep anchors, odd tables).
import type { AddrMatch, Ir, IrOptions, IrRule, IrTable, PortMatch, PortOp, Tenant } from '../../src/policy/ir.js';
import { TCP_FLAG_BITS } from '../../src/policy/ir.js';

export type RuleSpec = Partial<Omit<IrRule, 'id' | 'ruleset' | 'nr'>> & { action: IrRule['action'] };

export const ANY: AddrMatch = { neg: false, host: { type: 'any' } };

export function addr(cidr: string, neg = false): AddrMatch {
  const [a, l] = cidr.split('/');
  const af = a!.includes(':') ? 'inet6' : 'inet';
  const len = l === undefined ? (af === 'inet' ? 32 : 128) : Number(l);
  return { neg, host: { type: 'prefix', prefix: { af, addr: a!, len } } };
}

export function table(name: string, neg = false): AddrMatch {
  return { neg, host: { type: 'table', name } };
}

export function port(op: PortOp, lo: number, hi = lo): PortMatch {
  return { op, lo, hi };
}

const SSA = { bits: TCP_FLAG_BITS.S, mask: TCP_FLAG_BITS.S | TCP_FLAG_BITS.A };

export interface IrExtras {
  options?: Partial<IrOptions>;
  tables?: Record<string, { neg?: boolean; cidr: string }[]>;
  groups?: Record<string, string[]>;
  tenants?: Tenant[];
}

/** Rulesets in evaluation order; rule ids are assigned in the order the rulesets are given. */
export function buildIr(sets: Record<string, RuleSpec[]>, extras: IrExtras = {}): Ir {
  const rules: IrRule[] = [];
  const rulesets: Ir['rulesets'] = {};
  if (!('' in sets)) rulesets[''] = { path: '', rules: [] };
  for (const [path, specs] of Object.entries(sets)) {
    rulesets[path] = { path, rules: [] };
    specs.forEach((s, nr) => {
      const id = rules.length;
      const stateful = s.action === 'pass' && (s.state ?? 'keep') !== 'none';
      const r: IrRule = {
        id,
        origin: s.origin ?? id,
        pos: { file: 'test.pf.conf', line: id + 1, col: 1 },
        ruleset: path,
        nr,
        action: s.action,
        blockPolicy: s.action === 'block' ? (s.blockPolicy ?? 'drop') : undefined,
        dir: s.dir ?? null,
        quick: s.quick ?? false,
        log: null,
        iface: s.iface ?? null,
        af: s.af ?? null,
        proto: s.proto ?? null,
        src: s.src ?? ANY,
        srcPort: s.srcPort ?? null,
        dst: s.dst ?? ANY,
        dstPort: s.dstPort ?? null,
        flags: s.flags !== undefined ? s.flags : stateful ? SSA : null,
        icmpType: s.icmpType ?? null,
        state: s.action === 'pass' ? (s.state ?? 'keep') : 'none',
        natTo: s.natTo ?? null,
        rdrTo: s.rdrTo ?? null,
        scrub: null,
        call: s.call ?? null,
        text: s.text ?? `${s.action} #${id}`,
      };
      rules.push(r);
      rulesets[path]!.rules.push(id);
    });
  }
  const tables: Record<string, IrTable> = {};
  for (const [name, entries] of Object.entries(extras.tables ?? {})) {
    tables[name] = {
      name,
      entries: entries.map((e) => ({ neg: e.neg ?? false, prefix: (addr(e.cidr).host as { prefix: IrTable['entries'][0]['prefix'] }).prefix })),
      persist: false,
      constant: false,
      pos: { file: 'test.pf.conf', line: 1, col: 1 },
    };
  }
  return {
    version: 1,
    options: { skip: [], blockPolicy: 'drop', loginterface: null, statePolicy: 'floating', ...extras.options },
    rules,
    rulesets,
    tables,
    origins: rules.map((r) => ({ text: r.text, pos: r.pos, ruleset: r.ruleset })),
    tenants: extras.tenants ?? [],
    groups: extras.groups ?? {},
    isolation: null,
    sources: ['test.pf.conf'],
  };
}

export function anchorCall(name: string, targets: string[] = [name]): RuleSpec['call'] {
  return { name, wildcard: name.endsWith('/*'), targets };
}
