// Backend layer (pf): the entry point `ztb-enforce apply POLICY --backend pf [--dry-run]` calls
// (applyBackend, the hook src/cli/commands/apply.ts looks up). applyPf() picks the ABI table (explicit, ZTB_PF_RELEASE, or the running OpenBSD's release),
// plans the transaction and runs it on /dev/pf (or on a device the caller passes). On a host
// without pf, a dry run validates the plan against the simulated kernel and returns it for
// printing; anything else is a BackendError, because there is no kernel to load into.
import { release as osRelease } from 'node:os';
import type { InterfaceAddressMap, Ir } from '../../policy/ir.js';
import { DEFAULT_RELEASE, getRelease, releaseForOsRelease, type PfRelease } from './abi/releases.js';
import { NativePfDevice, NO_PF_MESSAGE } from './device.js';
import { BackendError } from './errors.js';
import { executePlan, formatPlan, planLoad, type IoctlDevice, type PfPlan, type PlanScope } from './plan.js';
import { SimulatedPfDevice } from './sim-device.js';
import { DEFAULT_ANCHOR_ROOT, renderPfText } from './text.js';

export interface ApplyPfOptions {
  dryRun?: boolean;
  /** Device to load into; default: /dev/pf on OpenBSD. */
  device?: IoctlDevice;
  /** Layout table id (e.g. "pfvar-1.543"); default: ZTB_PF_RELEASE, else the running release. */
  release?: string;
  scope?: PlanScope;
  addressMap?: InterfaceAddressMap;
  /** Kernel anchor the IR's anchors go under; default "ztb", the same as the text form, so
   *  either route leaves the same anchors in pf. "" = the IR's own paths. */
  anchorRoot?: string;
  /** For tests: the platform to behave as (default process.platform). */
  platform?: NodeJS.Platform;
}

export interface ApplyPfResult {
  release: string;
  plan: PfPlan;
  /** formatPlan(plan): what a dry run prints. */
  planText: string;
  /** Where the transaction ran: the real kernel, a caller's device, or the simulator (dry run off OpenBSD). */
  ranOn: 'kernel' | 'device' | 'simulator';
  committed: boolean;
}

function pickRelease(opts: ApplyPfOptions, onOpenBsd: boolean): PfRelease {
  const explicit = opts.release ?? process.env.ZTB_PF_RELEASE;
  if (explicit) return getRelease(explicit);
  if (onOpenBsd) return releaseForOsRelease(osRelease());
  return getRelease(DEFAULT_RELEASE);
}

export async function applyPf(ir: Ir, opts: ApplyPfOptions = {}): Promise<ApplyPfResult> {
  const platform = opts.platform ?? process.platform;
  const onOpenBsd = platform === 'openbsd';
  if (!opts.device && !onOpenBsd && !opts.dryRun) throw new BackendError(NO_PF_MESSAGE, 'ERR_ZTB_PF_UNAVAILABLE');
  const release = pickRelease(opts, onOpenBsd);
  const plan = planLoad(ir, { release, scope: opts.scope, addressMap: opts.addressMap, anchorRoot: opts.anchorRoot ?? DEFAULT_ANCHOR_ROOT });
  const planText = formatPlan(plan);
  const dryRun = opts.dryRun ?? false;

  if (opts.device) {
    const r = executePlan(plan, opts.device, { dryRun });
    return { release: release.id, plan, planText, ranOn: 'device', committed: r.committed };
  }
  if (!onOpenBsd) {
    // Dry run without pf: the simulator checks tickets, sizes and field ranges, then rolls back.
    executePlan(plan, new SimulatedPfDevice(release), { dryRun: true });
    return { release: release.id, plan, planText, ranOn: 'simulator', committed: false };
  }
  const dev = NativePfDevice.open();
  try {
    const r = executePlan(plan, dev, { dryRun });
    return { release: release.id, plan, planText, ranOn: 'kernel', committed: r.committed };
  } finally {
    dev.close();
  }
}

/** The slice of the CLI's io this hook writes to (structural, so backends do not import cli). */
interface HookIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Hook for `ztb-enforce apply POLICY --backend pf [--dry-run] [--json]`. */
export async function applyBackend(
  ir: Ir,
  opts: { netns?: string; dryRun: boolean; json: boolean; net?: unknown },
  io: HookIo,
): Promise<number> {
  if (opts.netns && !opts.dryRun) {
    throw new BackendError('pf has no network namespaces; --netns cannot be combined with --backend pf', 'ERR_ZTB_PF_USAGE');
  }
  const r = await applyPf(ir, { dryRun: opts.dryRun });
  if (opts.json) {
    io.stdout.write(
      `${JSON.stringify(
        {
          backend: 'pf',
          release: r.release,
          ranOn: r.ranOn,
          committed: r.committed,
          elements: r.plan.elements,
          steps: [r.plan.begin, ...r.plan.steps, r.plan.commit].map((s) => ({ ioctl: s.ioctl, request: s.request, what: s.what })),
          warnings: r.plan.warnings,
          // The same load through pfctl, for hosts where it is preferred to our ioctl path.
          pfctl: renderPfText(ir, { dryRun: opts.dryRun }).commands,
        },
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  for (const w of r.plan.warnings) io.stderr.write(`warning: ${w}\n`);
  io.stdout.write(r.planText);
  const n = r.plan.steps.filter((s) => s.ioctl === 'DIOCADDRULE').length;
  if (r.committed) io.stdout.write(`pf: committed ${n} rules in ${r.plan.elements.length / 2} rulesets (${r.release})\n`);
  else if (r.ranOn === 'simulator') io.stdout.write(`pf: dry run, plan validated on the simulated kernel (${r.release}); nothing loaded\n`);
  else io.stdout.write(`pf: dry run, the kernel validated ${n} rules and rolled back (${r.release})\n`);
  return 0;
}
