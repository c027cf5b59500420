// Backend layer (pf): the text form of the pf backend. The IR's anchors are loaded under one kernel
// anchor root (default "ztb": IR ruleset "tenant1" becomes pf anchor "ztb/tenant1"), so our rules
// never collide with a host's own anchors; the main ruleset carries the options, the (global)
// tables and the main rules, whose anchor rules call "ztb/<t>". The pf.conf text itself comes from
// the policy layer's renderer (renderAnchor / renderPfConf) run on a copy of the IR whose paths are
// re-rooted — this file adds no syntax of its own. It also produces the exact pfctl invocations
// (argv arrays and the text each reads on stdin; no shell), children before parents and anchors
// before the main ruleset, so nothing calls an anchor that is not loaded yet.
import type { Ir, IrRule } from '../../policy/ir.js';
import { renderAnchor, renderPfConf } from '../../policy/render.js';
import { checkAnchorRoot, kernelPath, orderedPaths } from './encode.js';
import { BackendError } from './errors.js';
import type { PlanScope } from './plan.js';

export const DEFAULT_ANCHOR_ROOT = 'ztb';

export interface PfctlCommand {
  argv: string[];
  /** Text pfctl reads from stdin (`-f -`). */
  stdin: string;
  what: string;
}

export interface PfTextBundle {
  anchorRoot: string;
  /** Options, tables and main-ruleset rules (anchor rules call `<root>/<t>`). */
  main: string;
  /** One entry per IR ruleset below main, in load order (deepest first). */
  anchors: { irPath: string; anchor: string; text: string }[];
  /** The policy as one pf.conf at its own paths, inline anchors in the multi-line form. */
  whole: string;
  /** pfctl runs that load the bundle (anchors first, then main), or check it with -n. */
  commands: PfctlCommand[];
}

export interface PfTextOptions {
  anchorRoot?: string;
  scope?: PlanScope;
  dryRun?: boolean;
  /** pfctl binary (default "pfctl", found on PATH by the caller's spawn). */
  pfctl?: string;
}

function mapCallName(name: string, root: string): string {
  const wildcard = name.endsWith('/*');
  const base = wildcard ? name.slice(0, -2) : name;
  return `${kernelPath(base, root)}${wildcard ? '/*' : ''}`;
}

/** A copy of the IR with every ruleset path below main moved under `root`. */
export function reRoot(ir: Ir, root: string): Ir {
  if (root === '') return ir;
  checkAnchorRoot(root);
  const p = (x: string): string => (x === '' ? '' : kernelPath(x, root));
  const rules: IrRule[] = ir.rules.map((r) => ({
    ...r,
    ruleset: p(r.ruleset),
    call: r.call ? { ...r.call, name: mapCallName(r.call.name, root), targets: r.call.targets.map(p) } : null,
  }));
  const rulesets: Ir['rulesets'] = {};
  for (const [path, rs] of Object.entries(ir.rulesets)) rulesets[p(path)] = { ...rs, path: p(path) };
  return {
    ...ir,
    rules,
    rulesets,
    origins: ir.origins.map((o) => ({ ...o, ruleset: p(o.ruleset) })),
    tenants: ir.tenants.map((t) => ({ ...t, anchor: p(t.anchor) })),
  };
}

/** Main-ruleset text: options and tables (from the renderer's header) plus the main rules. */
function mainText(rooted: Ir): string {
  // renderPfConf prints options and tables first and then the rules; a re-rooted anchor path
  // contains "/" and is therefore never inlined, so only the trailing comment blocks it adds for
  // uninlined rulesets need to go — those rulesets are loaded by their own pfctl runs.
  const whole = renderPfConf(rooted);
  return whole
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');
}

export function renderPfText(ir: Ir, opts: PfTextOptions = {}): PfTextBundle {
  const root = opts.anchorRoot ?? DEFAULT_ANCHOR_ROOT;
  if (root === '') throw new BackendError('the text backend loads anchors under a root anchor; it cannot be empty', 'ERR_ZTB_PF_TEXT');
  const rooted = reRoot(ir, root);
  const scope = opts.scope ?? { kind: 'full' };
  const irPaths = orderedPaths(ir).filter((x) => x !== '');
  const selected =
    scope.kind === 'full' ? irPaths : irPaths.filter((x) => x === scope.anchor || x.startsWith(`${scope.anchor}/`));
  if (scope.kind === 'tenant' && selected.length === 0) {
    throw new BackendError(`the policy has no ruleset "${scope.anchor}"`, 'ERR_ZTB_PF_TEXT');
  }
  // Children before parents, and every anchor before main: a ruleset that calls another is only
  // replaced once what it calls is in place, so a reload never leaves a call to a stale child.
  const depth = (x: string): number => x.split('/').length;
  const loadOrder = [...selected].sort((a, b) => depth(b) - depth(a) || (a < b ? -1 : a > b ? 1 : 0));
  const anchors = loadOrder.map((irPath) => {
    const anchor = kernelPath(irPath, root);
    return { irPath, anchor, text: renderAnchor(rooted, anchor) };
  });
  const main = mainText(rooted);
  const pfctl = opts.pfctl ?? 'pfctl';
  const n = opts.dryRun ? ['-n'] : [];
  const commands: PfctlCommand[] = anchors.map((a) => ({
    argv: [pfctl, ...n, '-a', a.anchor, '-f', '-'],
    stdin: a.text,
    what: `${opts.dryRun ? 'check' : 'load'} anchor ${a.anchor}`,
  }));
  if (scope.kind === 'full') {
    commands.push({
      argv: opts.dryRun ? [pfctl, '-nf', '-'] : [pfctl, '-f', '-'],
      stdin: main,
      what: `${opts.dryRun ? 'check' : 'load'} the main ruleset`,
    });
  }
  return { anchorRoot: root, main, anchors, whole: renderPfConf(ir), commands };
}
