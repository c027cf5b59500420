// CLI layer: `ztb-enforce check POLICY [--format pf|toml] [--json]`. Compiles the policy and
// prints the compiled rules the way `pfctl -nvf` does — per ruleset, `@<id> <text>` with the
// source position — or the whole IR as JSON. An invalid policy prints every diagnostic on stderr
// and exits 1 (the dispatcher prints the PolicyError); bad arguments exit 2.
import type { CliIo } from '../main.js';
import { UsageError, flag, hasFlag, parseArgs } from '../usage.js';
import { type PolicyFormat, loadPolicyFile } from '../../policy/load.js';
import type { Ir } from '../../policy/ir.js';

export const usage = `usage: ztb-enforce check POLICY [--format pf|toml] [--json]

Validates POLICY and prints its compiled rules per ruleset: @<id> <rule>  # file:line:col
  --format pf|toml  input format (default: from the extension, .toml => toml, else pf)
  --json            print the compiled IR as JSON instead`;

/** pfctl -nv prints the options and tables before the rules; so do we. */
function header(ir: Ir): string[] {
  const o = ir.options;
  const out: string[] = [];
  if (o.skip.length) out.push(`set skip on ${o.skip.length === 1 ? o.skip[0] : `{ ${o.skip.join(' ')} }`}`);
  out.push(`set block-policy ${o.blockPolicy}`);
  if (o.loginterface) out.push(`set loginterface ${o.loginterface}`);
  out.push(`set state-policy ${o.statePolicy}`);
  for (const t of Object.values(ir.tables)) {
    const flags = `${t.persist ? ' persist' : ''}${t.constant ? ' const' : ''}`;
    out.push(`table <${t.name}>${flags} (${t.entries.length} entries)  # ${t.pos.file}:${t.pos.line}:${t.pos.col}`);
  }
  return out;
}

export function formatCheck(ir: Ir): string {
  const out: string[] = header(ir);
  const paths = Object.keys(ir.rulesets).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  for (const path of paths) {
    const rs = ir.rulesets[path]!;
    out.push(path === '' ? '# main ruleset' : `# anchor "${path}"`);
    for (const id of rs.rules) {
      const r = ir.rules[id]!;
      out.push(`@${r.id} ${r.text}  # ${r.pos.file}:${r.pos.line}:${r.pos.col}${path === '' ? '' : ` anchor ${path}`}`);
    }
  }
  return out.join('\n') + '\n';
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, { format: { value: true }, json: {} });
  if (args.positionals.length !== 1) throw new UsageError(args.positionals.length ? 'exactly one POLICY expected' : 'POLICY is required');
  const fmt = flag(args, 'format');
  if (fmt !== undefined && fmt !== 'pf' && fmt !== 'toml') throw new UsageError(`--format must be pf or toml, not '${fmt}'`);
  const ir = loadPolicyFile(args.positionals[0]!, fmt ? { format: fmt as PolicyFormat } : undefined);
  io.stdout.write(hasFlag(args, 'json') ? JSON.stringify(ir, null, 2) + '\n' : formatCheck(ir));
  return 0;
}
