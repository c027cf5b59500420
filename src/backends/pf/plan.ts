// Backend layer (pf): the /dev/pf transaction as data, and the code that runs it against a device.
// planLoad() turns an IR into the ioctl sequence of pf-semantics §4 — DIOCXBEGIN over every ruleset
// being replaced (or only a tenant's anchors), DIOCRINADEFINE per table, DIOCADDRULE per kernel
// rule with its ruleset's ticket, the staged options (status interface, skip flags), DIOCXCOMMIT —
// as a list of steps whose tickets are filled in from the DIOCXBEGIN array at run time.
// executePlan() runs it: any failure after BEGIN rolls back with the same array; a dry run does
// everything but commit and then rolls back, so the kernel validates the whole load and nothing
// changes. readCounters() walks DIOCGETRULES / DIOCGETRULE, restarts on EBUSY and always ends the
// cursor with DIOCXEND. Everything here is pure TS over an IoctlDevice, so it runs on Linux against
// the simulated kernel; only the device itself is OpenBSD-specific.
import type { Ir } from '../../policy/ir.js';
import { StructView } from './abi/layout.js';
import { PATH_MAX, PF, type IoctlName, type PfRelease } from './abi/releases.js';
import { decodeRule, type DecodedRule } from './decode.js';
import { checkAnchorRoot, encodeIr, encodePfiocRule, kernelPath, orderedPaths, type EncodeOptions, type KernelRule } from './encode.js';
import { BackendError, PfIoctlError } from './errors.js';
import {
  decodeRuleCounters,
  encodeIface,
  encodeTable,
  encodeTrans,
  encodeU32,
  transTicket,
  type RuleCounters,
  type TransElement,
} from './ioctl-args.js';

/**
 * One open /dev/pf. `ioctl` updates `arg` (and the payload) in place like the kernel does and
 * throws an Error carrying `errno` (a name such as "EBUSY") on failure. When `payload` is given,
 * the device stores the payload's address at `arg[payload.ptrOffset]` before the call.
 */
export interface IoctlDevice {
  ioctl(request: number, arg: Buffer, payload?: { ptrOffset: number; buf: Buffer }): void;
}

export interface PlanStep {
  ioctl: IoctlName;
  request: number;
  arg: Buffer;
  payload?: { ptrOffset: number; buf: Buffer };
  /** Copy the ticket of DIOCXBEGIN element `element` into `arg` at `argOffset` before the call. */
  ticket?: { element: number; argOffset: number };
  /** What the step does, for dry-run output and error messages. */
  what: string;
  /** IR rule this step loads (DIOCADDRULE only). */
  irId?: number;
  /** Staged by the kernel outside the ruleset transaction (interface flags, status interface):
   *  DIOCXROLLBACK does not undo it, so a dry run must not send it. */
  outsideTransaction?: boolean;
}

export type PlanScope = { kind: 'full' } | { kind: 'tenant'; anchor: string };

export interface PfPlan {
  release: PfRelease;
  scope: PlanScope;
  elements: TransElement[];
  begin: PlanStep;
  steps: PlanStep[];
  commit: PlanStep;
  rollback: PlanStep;
  /** Kernel rules per kernel anchor in load order: index = the rule's number in that anchor. */
  kernelRules: Map<string, KernelRule[]>;
  /** Things that load fine but work less well (e.g. anchor names pflog truncates). */
  warnings: string[];
}

/** pfloghdr.ruleset is 16 bytes and holds the anchor's own name: longer ones are truncated. */
export const PFLOG_RULESET_MAX = 15;

export interface PlanOptions extends Omit<EncodeOptions, 'release'> {
  release: PfRelease;
  scope?: PlanScope;
}

/** Upper bounds that keep one load well inside the kernel's own limits (pf-semantics §2). */
export const PLAN_LIMITS = { rules: 200_000, tables: 1000, tableEntries: 200_000, anchors: 512 } as const;

function step(release: PfRelease, ioctl: IoctlName, arg: Buffer, what: string, extra: Partial<PlanStep> = {}): PlanStep {
  return { ioctl, request: release.ioctls[ioctl].request, arg, what, ...extra };
}

function scopePaths(ir: Ir, scope: PlanScope): string[] {
  const all = orderedPaths(ir);
  if (scope.kind === 'full') return all;
  const a = scope.anchor;
  if (a === '') throw new BackendError('a tenant-only load needs a tenant anchor, not the main ruleset', 'ERR_ZTB_PF_PLAN');
  const mine = all.filter((p) => p === a || p.startsWith(`${a}/`));
  if (mine.length === 0) throw new BackendError(`the policy has no ruleset "${a}"`, 'ERR_ZTB_PF_PLAN');
  return mine;
}

/** Builds the transaction for an IR (all of it, or one tenant's anchor subtree). */
export function planLoad(ir: Ir, opts: PlanOptions): PfPlan {
  const { release } = opts;
  const scope = opts.scope ?? { kind: 'full' };
  const root = opts.anchorRoot ?? '';
  checkAnchorRoot(root);
  const paths = scopePaths(ir, scope);
  if (paths.length > PLAN_LIMITS.anchors) {
    throw new BackendError(`${paths.length} rulesets exceed the limit of ${PLAN_LIMITS.anchors}`, 'ERR_ZTB_PF_PLAN');
  }
  for (const p of paths) {
    const k = kernelPath(p, root);
    if (Buffer.byteLength(k) >= PATH_MAX) throw new BackendError(`anchor path "${k.slice(0, 40)}…" is ${Buffer.byteLength(k)} bytes; pf holds at most ${PATH_MAX - 1}`, 'ERR_ZTB_PF_PLAN');
  }
  const encoded = encodeIr(ir, opts, paths);
  const nRules = [...encoded.byAnchor.values()].reduce((n, l) => n + l.length, 0);
  if (nRules > PLAN_LIMITS.rules) throw new BackendError(`${nRules} kernel rules exceed the limit of ${PLAN_LIMITS.rules}`, 'ERR_ZTB_PF_PLAN');

  // Elements: every replaced ruleset, then the table set of each. Tickets come back per element.
  const anchors = paths.map((p) => kernelPath(p, root));
  const elements: TransElement[] = [
    ...anchors.map((anchor) => ({ type: 'ruleset' as const, anchor })),
    ...anchors.map((anchor) => ({ type: 'table' as const, anchor })),
  ];
  const rulesetEl = new Map(anchors.map((a, i) => [a, i]));
  const tableEl = new Map(anchors.map((a, i) => [a, anchors.length + i]));
  const trans = encodeTrans(release, elements);
  const steps: PlanStep[] = [];

  // Tables. IR tables are global; pf looks a name up in the calling anchor and then in the main
  // ruleset, so they are defined once in the main ruleset — which only a full load replaces.
  const tables = scope.kind === 'full' ? Object.values(ir.tables) : [];
  const tableDefs = [
    ...tables.map((t) => ({
      anchor: '',
      name: t.name,
      flags: (t.persist ? PF.tflag.persist : 0) | (t.constant ? PF.tflag.const : 0),
      entries: t.entries,
    })),
    ...encoded.autoTables.map((t) => ({ anchor: t.anchor, name: t.name, flags: 0, entries: t.entries })),
  ];
  if (tableDefs.length > PLAN_LIMITS.tables) throw new BackendError(`${tableDefs.length} tables exceed the limit of ${PLAN_LIMITS.tables}`, 'ERR_ZTB_PF_PLAN');
  let nEntries = 0;
  const tableOff = release.structs.pfioc_table.fields.get('pfrio_ticket')!.offset;
  for (const t of tableDefs) {
    nEntries += t.entries.length;
    if (nEntries > PLAN_LIMITS.tableEntries) {
      throw new BackendError(`table entries exceed the limit of ${PLAN_LIMITS.tableEntries}`, 'ERR_ZTB_PF_PLAN');
    }
    const el = tableEl.get(t.anchor);
    if (el === undefined) throw new BackendError(`table <${t.name}> belongs to anchor "${t.anchor}" outside this load`, 'ERR_ZTB_PF_PLAN');
    const a = encodeTable(release, { anchor: t.anchor, name: t.name, tableFlags: t.flags, ioFlags: PF.rflag.addrsToo, entries: t.entries });
    steps.push(step(release, 'DIOCRINADEFINE', a.arg, `define table <${t.name}> in "${t.anchor}" (${t.entries.length} addresses)`, {
      payload: a.payload,
      ticket: { element: el, argOffset: tableOff },
    }));
  }

  // Rules, ruleset by ruleset, each with its ruleset's ticket.
  const ruleTicketOff = release.structs.pfioc_rule.fields.get('ticket')!.offset;
  for (const [anchor, list] of encoded.byAnchor) {
    const el = rulesetEl.get(anchor)!;
    list.forEach((k, i) => {
      const arg = encodePfiocRule(release, { anchor, anchorCall: k.anchorCall, rule: k.rule });
      const call = k.anchorCall ? ` -> anchor "${k.anchorCall}"` : '';
      steps.push(step(release, 'DIOCADDRULE', arg, `rule ${i} of "${anchor}" (IR ${k.irId})${call}`, {
        ticket: { element: el, argOffset: ruleTicketOff },
        irId: k.irId,
      }));
    });
  }

  // Staged options apply at commit with the rulesets; only a full load owns them.
  if (scope.kind === 'full') {
    const skip = PF.iflag.skip;
    const outside = { outsideTransaction: true };
    steps.push(step(release, 'DIOCCLRIFFLAG', encodeIface(release, '', skip), 'clear `set skip` on all interfaces', outside));
    for (const i of ir.options.skip) {
      steps.push(step(release, 'DIOCSETIFFLAG', encodeIface(release, i, skip), `set skip on ${i}`, outside));
    }
    // Only a named interface is staged: pf_ioctl.c clears the status interface at once for an
    // empty name, outside the transaction (so even a dry run or a rollback would change it).
    // pfctl sends nothing for `none` either; the previous status interface then stays.
    if (ir.options.loginterface) {
      steps.push(step(release, 'DIOCSETSTATUSIF', encodeIface(release, ir.options.loginterface),
        `set loginterface ${ir.options.loginterface}`, outside));
    }
  }

  // pflog records only the anchor's own name (last path component), truncated to 15 bytes.
  const warnings: string[] = [];
  const byLogName = new Map<string, string[]>();
  for (const a of anchors.filter((x) => x !== '')) {
    const name = a.slice(a.lastIndexOf('/') + 1);
    if (Buffer.byteLength(name) > PFLOG_RULESET_MAX) {
      warnings.push(`anchor "${a}": its name is longer than ${PFLOG_RULESET_MAX} bytes and pflog records it truncated`);
    }
    const key = Buffer.from(name).subarray(0, PFLOG_RULESET_MAX).toString();
    byLogName.set(key, [...(byLogName.get(key) ?? []), a]);
  }
  for (const [key, list] of byLogName) {
    if (list.length > 1) warnings.push(`anchors ${list.map((x) => `"${x}"`).join(', ')} all appear as "${key}" in pflog; log lines cannot tell them apart`);
  }

  return {
    release,
    scope,
    warnings,
    elements,
    begin: step(release, 'DIOCXBEGIN', trans.arg, `begin ${elements.length} elements`, { payload: trans.payload }),
    steps,
    commit: step(release, 'DIOCXCOMMIT', trans.arg, 'commit', { payload: trans.payload }),
    rollback: step(release, 'DIOCXROLLBACK', trans.arg, 'roll back', { payload: trans.payload }),
    kernelRules: encoded.byAnchor,
  };
}

export interface ExecuteResult {
  committed: boolean;
  /** Tickets DIOCXBEGIN returned, per element. */
  tickets: number[];
  /** Steps run between BEGIN and COMMIT/ROLLBACK. */
  steps: number;
}

function errnoOf(e: unknown): string | undefined {
  if (e && typeof e === 'object' && 'errno' in e) {
    const v = (e as { errno: unknown }).errno;
    if (typeof v === 'string') return v;
  }
  return undefined;
}

function run(device: IoctlDevice, s: PlanStep): void {
  try {
    device.ioctl(s.request, s.arg, s.payload);
  } catch (e) {
    if (e instanceof PfIoctlError) throw e;
    const errno = errnoOf(e);
    if (errno) throw new PfIoctlError(s.ioctl, errno, s.what, { cause: e });
    throw e;
  }
}

/**
 * Runs a plan. On any failure after DIOCXBEGIN the same element array is rolled back, so the
 * kernel's inactive rulesets are released and the running policy is untouched; the original
 * error is rethrown. `dryRun` = validate the rulesets and tables in the kernel, then roll back.
 * A dry run leaves out the steps staged outside the transaction (interface skip flags, status
 * interface): pf keeps those staged values across DIOCXROLLBACK and applies them at the next
 * commit, whoever makes it, so sending them would break "a dry run changes nothing".
 */
export function executePlan(plan: PfPlan, device: IoctlDevice, opts: { dryRun?: boolean } = {}): ExecuteResult {
  const { release } = plan;
  run(device, plan.begin);
  const arr = plan.begin.payload!.buf;
  const tickets = plan.elements.map((_, i) => transTicket(release, arr, i));
  let n = 0;
  try {
    for (const s of plan.steps) {
      if (opts.dryRun && s.outsideTransaction) continue;
      if (s.ticket) s.arg.writeUInt32LE(tickets[s.ticket.element]!, s.ticket.argOffset);
      run(device, s);
      n++;
    }
    if (opts.dryRun) {
      run(device, plan.rollback);
      return { committed: false, tickets, steps: n };
    }
    run(device, plan.commit);
    return { committed: true, tickets, steps: n };
  } catch (e) {
    try {
      run(device, plan.rollback);
    } catch {
      // The first error is the one to report; a failed rollback leaves only inactive rulesets,
      // which the next BEGIN on the same anchors replaces.
    }
    throw e;
  }
}

export interface ReadCountersOptions {
  /** Zero the counters while reading them (PF_GET_CLR_CNTR). */
  clear?: boolean;
  /** How often to restart after EBUSY (the ruleset changed under us). */
  maxRestarts?: number;
}

/** Reads the counters of every rule in one kernel anchor, in kernel rule order. */
export function readAnchorCounters(
  release: PfRelease,
  device: IoctlDevice,
  anchor: string,
  opts: ReadCountersOptions = {},
): { counters: RuleCounters[]; rules: DecodedRule[] } {
  const maxRestarts = opts.maxRestarts ?? 5;
  const rs = release.structs.pfioc_rule;
  const ruleOff = rs.fields.get('rule')!.offset;
  for (let attempt = 0; ; attempt++) {
    const head = new StructView(rs);
    head.setString('anchor', anchor);
    try {
      device.ioctl(release.ioctls.DIOCGETRULES.request, head.buf);
    } catch (e) {
      throw new PfIoctlError('DIOCGETRULES', errnoOf(e) ?? 'EIO', `anchor "${anchor}"`, { cause: e });
    }
    const ticket = head.u32('ticket');
    const nr = head.u32('nr');
    if (nr > PLAN_LIMITS.rules) {
      try {
        device.ioctl(release.ioctls.DIOCXEND.request, encodeU32(release, ticket));
      } catch {
        // reported below
      }
      throw new BackendError(`anchor "${anchor}" reports ${nr} rules, more than the ${PLAN_LIMITS.rules} we read`, 'ERR_ZTB_PF_COUNTERS');
    }
    const counters: RuleCounters[] = [];
    const rules: DecodedRule[] = [];
    let busy = false;
    try {
      // Stop at the announced count rather than probing for ENOENT: kernels before the cursor
      // rework answered an out-of-range nr with EBUSY, which would read as "ruleset changed".
      for (let i = 0; i < nr; i++) {
        const q = new StructView(rs);
        q.setString('anchor', anchor).setU32('ticket', ticket).setU32('nr', i);
        if (opts.clear) q.setU32('action', PF.get.clrCntr);
        try {
          device.ioctl(release.ioctls.DIOCGETRULE.request, q.buf);
        } catch (e) {
          const errno = errnoOf(e);
          if (errno === 'ENOENT') break;
          if (errno === 'EBUSY') {
            busy = true;
            break;
          }
          throw new PfIoctlError('DIOCGETRULE', errno ?? 'EIO', `rule ${i} of "${anchor}"`, { cause: e });
        }
        counters.push(decodeRuleCounters(release, q.buf));
        rules.push(decodeRule(release, q.buf, ruleOff));
      }
    } finally {
      // Cursors are a kernel resource (limit 512): end this one whatever happened.
      try {
        device.ioctl(release.ioctls.DIOCXEND.request, encodeU32(release, ticket));
      } catch {
        // Nothing more to release; the read result (or its error) stands.
      }
    }
    if (!busy) return { counters, rules };
    if (attempt >= maxRestarts) {
      throw new PfIoctlError('DIOCGETRULE', 'EBUSY', `"${anchor}" kept changing during ${maxRestarts + 1} reads`);
    }
  }
}

export interface IrRuleCounters extends RuleCounters {
  /** Kernel rules summed into this entry (more than one when an address expanded at load). */
  kernelRules: number;
}

/**
 * Reads counters for every anchor of a loaded plan and maps them back to IR rule ids (summing
 * kernel rules that came from one IR rule). A rule count that differs from what we loaded means
 * somebody else replaced the anchor; that is reported, not guessed around.
 */
export function readCounters(plan: PfPlan, device: IoctlDevice, opts: ReadCountersOptions = {}): Map<number, IrRuleCounters> {
  const out = new Map<number, IrRuleCounters>();
  for (const [anchor, loaded] of plan.kernelRules) {
    const { counters } = readAnchorCounters(plan.release, device, anchor, opts);
    if (counters.length !== loaded.length) {
      throw new BackendError(
        `anchor "${anchor}" holds ${counters.length} rules, we loaded ${loaded.length}: it was replaced outside ztb-enforce`,
        'ERR_ZTB_PF_COUNTERS',
      );
    }
    counters.forEach((c, i) => {
      const id = loaded[i]!.irId;
      const acc = out.get(id);
      if (!acc) {
        out.set(id, { ...c, packets: [...c.packets], bytes: [...c.bytes], kernelRules: 1 });
      } else {
        acc.evaluations += c.evaluations;
        acc.packets = [acc.packets[0] + c.packets[0], acc.packets[1] + c.packets[1]];
        acc.bytes = [acc.bytes[0] + c.bytes[0], acc.bytes[1] + c.bytes[1]];
        acc.statesCur += c.statesCur;
        acc.kernelRules++;
      }
    });
  }
  return out;
}

/** A readable listing of a plan (what `apply --backend pf --dry-run` prints on a host without pf). */
export function formatPlan(plan: PfPlan): string {
  const lines: string[] = [];
  const hex = (n: number): string => `0x${(n >>> 0).toString(16).toUpperCase()}`;
  lines.push(`# pf transaction (${plan.release.label})`);
  lines.push(`${plan.begin.ioctl} ${hex(plan.begin.request)}  ${plan.elements.map((e) => `${e.type}:"${e.anchor}"`).join(' ')}`);
  for (const s of plan.steps) {
    const t = s.ticket ? `  [ticket of element ${s.ticket.element}]` : '';
    const o = s.outsideTransaction ? '  [staged outside the transaction: not sent by a dry run]' : '';
    lines.push(`${s.ioctl} ${hex(s.request)}  ${s.what}${t}${o}`);
  }
  lines.push(`${plan.commit.ioctl} ${hex(plan.commit.request)}  (on error: ${plan.rollback.ioctl} ${hex(plan.rollback.request)})`);
  return `${lines.join('\n')}\n`;
}
