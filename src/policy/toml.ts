// Policy layer: the TOML policy document loader. It parses the document (smol-toml), validates it
// against the schema (toml-schema.ts) and the cross-checks (toml-model.ts), reporting every problem
// as `file:line:col: path: message`, then turns it into the pf compiler's input: generated pf units
// for `[policy]`, the tenant tables and the isolation settings (isolation.ts), the document's own
// global rules (`pf_file`, then `rules`), and one anchor body per tenant with `rules`, each
// positioned at the TOML string so pf errors inside it point into the TOML file.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { Ir, IsolationSettings, SourcePos, Tenant } from './ir.js';
import { type Diagnostic, DiagnosticSink, PolicyError } from './errors.js';
import { TomlPositions, formatPath } from './toml-positions.js';
import { INVALID, type Issue, LIMITS, type TomlTenant, documentSchema, tenantSection } from './toml-schema.js';
import { type PolicyModel, buildModel, irTenant, tenantRuleInterfaces } from './toml-model.js';
import { TENANTS_GROUP, generateMainUnits } from './isolation.js';
import { toIrPrefix } from './toml-addr.js';
import { type CompileInput, type PfUnit, compilePf } from './compile.js';

/** Everything the pf compiler needs from a TOML document. */
export interface TomlCompileInput extends CompileInput {
  units: PfUnit[];
  tenants: Tenant[];
  groups: Record<string, string[]>;
  isolation: IsolationSettings | null;
}

export interface LoadedTomlPolicy {
  input: TomlCompileInput;
  model: PolicyModel;
  /** The units generated from `[policy]`, tenants and isolation (a prefix of input.units). */
  generated: PfUnit[];
}

function fail(file: string, diags: { line: number; col: number; message: string }[]): never {
  const list: Diagnostic[] = diags.map((d) => ({ pos: { file, line: d.line, col: d.col }, message: d.message }));
  list.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  throw new PolicyError(list.slice(0, DiagnosticSink.MAX));
}

function issueDiags(issues: Issue[], pos: TomlPositions): { line: number; col: number; message: string }[] {
  return issues.map((i) => {
    const lc = pos.locate(i.path, i.at ?? 'value');
    const message = i.at === 'key' || i.path.length === 0 ? i.message : `${formatPath(i.path)}: ${i.message}`;
    return { ...lc, message };
  });
}

/** Parses and validates a TOML policy document; throws PolicyError listing every problem. */
export function loadTomlPolicy(text: string, file: string): LoadedTomlPolicy {
  const bytes = Buffer.byteLength(text);
  if (bytes > LIMITS.documentBytes) {
    fail(file, [{ line: 1, col: 1, message: `document is ${bytes} bytes, more than the limit of ${LIMITS.documentBytes}` }]);
  }
  let raw: unknown;
  try {
    raw = parseToml(text, { unsafeKeyBehaviour: 'throw', maxDepth: 32, integersAsBigInt: true });
  } catch (e) {
    if (e instanceof TomlError) {
      // smol-toml's message carries a code excerpt after the first line; ours is one line.
      const first = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      fail(file, [{ line: e.line, col: e.column, message: `TOML syntax error: ${first}` }]);
    }
    throw e;
  }
  const positions = new TomlPositions(text);
  const issues: Issue[] = [];
  const doc = documentSchema.parse(raw, [], issues);
  if (doc === INVALID || issues.length > 0) {
    salvageTenantChecks(raw, issues);
    fail(file, issueDiags(issues, positions));
  }
  const model = buildModel(doc, issues);
  if (issues.length > 0) fail(file, issueDiags(issues, positions));

  const at = (path: (string | number)[], which: 'key' | 'value' = 'key'): SourcePos => ({ file, ...positions.locate(path, which) });
  const generated: PfUnit[] = generateMainUnits(model).map((u) => {
    const p = at(u.path);
    return { file, text: u.text, ruleset: '', line: p.line, col: p.col, generated: true };
  });
  const units: PfUnit[] = [...generated];

  if (model.pfFile !== undefined) {
    const path = resolve(dirname(file), model.pfFile);
    let pfText: string;
    try {
      pfText = readFileSync(path, 'utf8');
    } catch (e) {
      const p = at(['pf_file'], 'value');
      const why = (e as NodeJS.ErrnoException).code ?? String(e);
      fail(file, [{ line: p.line, col: p.col, message: `pf_file: cannot read ${path}: ${why}` }]);
    }
    if (Buffer.byteLength(pfText) > LIMITS.documentBytes) {
      const p = at(['pf_file'], 'value');
      fail(file, [{ line: p.line, col: p.col, message: `pf_file: ${path} is larger than ${LIMITS.documentBytes} bytes` }]);
    }
    units.push({ file: path, text: pfText, ruleset: '' });
  }
  if (model.rules !== undefined) units.push(stringUnit(file, model.rules, '', positions.get(['rules'])?.content));
  for (const t of model.tenants) {
    if (t.rules !== undefined) units.push(stringUnit(file, t.rules, t.id, positions.get(['tenants', t.index, 'rules'])?.content));
  }

  const tenants = model.tenants.map((t) => irTenant(t, at(['tenants', t.index])));
  const groups: Record<string, string[]> = {};
  if (model.tenants.length > 0) groups[TENANTS_GROUP] = model.tenants.flatMap(tenantRuleInterfaces);
  const iso = model.isolation;
  const isolation: IsolationSettings | null = iso && {
    clusterNetworks: iso.clusterNetworks.map(toIrPrefix),
    tenantIsolation: iso.tenantIsolation,
    interVmIsolation: iso.interVmIsolation,
    allowInternet: iso.allowInternet,
    allowedPorts: iso.allowedPorts.map((p) => ({ protocol: p.protocol, port: p.port, direction: p.direction })),
  };
  return { input: { units, tenants, groups, isolation }, model, generated };
}

/** After schema errors, the tenants that are valid on their own are still cross-checked (unique
 *  ids, overlaps, addresses...), so one run reports every problem, not only the schema's. */
function salvageTenantChecks(raw: unknown, issues: Issue[]): void {
  const list = (raw as { tenants?: unknown } | null)?.tenants;
  if (!Array.isArray(list) || list.length > LIMITS.tenants) return;
  const valid: TomlTenant[] = [];
  const index: number[] = [];
  list.forEach((t, i) => {
    const scratch: Issue[] = [];
    const r = tenantSection.parse(t, ['tenants', i], scratch);
    if (r !== INVALID) {
      valid.push(r);
      index.push(i);
    }
  });
  if (valid.length > 1) buildModel({ tenants: valid }, issues, index);
}

/** Compiles a TOML policy document to the IR (load.ts dispatches `.toml` files here). Throws
 *  PolicyError with every problem, TOML and pf alike, at its place in the TOML file. */
export function compileTomlPolicy(text: string, file: string): Ir {
  return compilePf(loadTomlPolicy(text, file).input);
}

function stringUnit(
  file: string,
  text: string,
  ruleset: string,
  content: { line: number; col: number; escaped: boolean } | undefined,
): PfUnit {
  const u: PfUnit = { file, text, ruleset };
  if (content) {
    u.line = content.line;
    u.col = content.col;
    // After an escape the decoded text no longer lines up with the file; rather than report
    // wrong lines, every position in such a string is its start (docs/toml.md advises '''...''').
    if (content.escaped) u.generated = true;
  }
  return u;
}

/** The generated units as pf text, each headed by the TOML position that caused it (goldens). */
export function renderGeneratedUnits(loaded: LoadedTomlPolicy): string {
  return loaded.generated.map((u) => `# ${u.file}:${u.line ?? 1}:${u.col ?? 1}\n${u.text}`).join('');
}
