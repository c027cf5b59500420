// Backend layer (pf): read-only views of the running pf — global status (DIOCGETSTATUS, 520 bytes
// in r1.543: running flag, state count, the status interface and its counters) and the anchor
// tree (DIOCGETRULESETS / DIOCGETRULESET, one child name per call). Used to check what is loaded
// against a plan (anchors we own that the kernel lacks, or foreign ones under our root).
import { StructView } from './abi/layout.js';
import type { PfRelease } from './abi/releases.js';
import { BackendError, PfIoctlError } from './errors.js';
import type { IoctlDevice } from './plan.js';

function call(device: IoctlDevice, release: PfRelease, name: 'DIOCGETSTATUS' | 'DIOCGETRULESETS' | 'DIOCGETRULESET', arg: Buffer, what: string): void {
  try {
    device.ioctl(release.ioctls[name].request, arg);
  } catch (e) {
    const errno = (e as { errno?: unknown }).errno;
    throw new PfIoctlError(name, typeof errno === 'string' ? errno : 'EIO', what, { cause: e });
  }
}

export interface PfStatus {
  running: boolean;
  states: number;
  srcNodes: number;
  /** The `set loginterface` interface ("" = none). */
  ifname: string;
  /** Per status interface, [inet, inet6][in, out] packets passed (pcounters[af][dir][PF_PASS]). */
  passedPackets: bigint[][];
  /** [inet, inet6][in, out] bytes. */
  bytes: bigint[][];
  since: bigint;
}

export function getStatus(release: PfRelease, device: IoctlDevice): PfStatus {
  const v = new StructView(release.structs.pf_status);
  call(device, release, 'DIOCGETSTATUS', v.buf, 'status');
  // pcounters[2][2][3] (af, dir, pass/drop/...) and bcounters[2][2] (af, dir), flattened.
  return {
    running: v.u32('running') !== 0,
    states: v.u32('states'),
    srcNodes: v.u32('src_nodes'),
    ifname: v.string('ifname'),
    passedPackets: [0, 1].map((af) => [0, 1].map((dir) => v.u64('pcounters', af * 6 + dir * 3))),
    bytes: [0, 1].map((af) => [0, 1].map((dir) => v.u64('bcounters', af * 2 + dir))),
    since: v.u64('since'),
  };
}

/** Direct child anchor names of `path` ("" = the main ruleset), in the kernel's order. */
export function listChildAnchors(release: PfRelease, device: IoctlDevice, path: string): string[] {
  const l = release.structs.pfioc_ruleset;
  const head = new StructView(l).setString('path', path);
  call(device, release, 'DIOCGETRULESETS', head.buf, `anchor "${path}"`);
  const n = head.u32('nr');
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const q = new StructView(l).setString('path', path).setU32('nr', i);
    call(device, release, 'DIOCGETRULESET', q.buf, `child ${i} of "${path}"`);
    out.push(q.string('name'));
  }
  return out;
}

/** Every anchor path below `root` (depth first, parents first), bounded against runaway trees. */
export function listAnchorTree(release: PfRelease, device: IoctlDevice, root = '', limit = 4096): string[] {
  const out: string[] = [];
  const walk = (path: string, depth: number): void => {
    if (depth > 64) throw new BackendError(`anchor tree below "${root}" is deeper than pf allows`, 'ERR_ZTB_PF_STATUS');
    for (const name of listChildAnchors(release, device, path)) {
      const child = path ? `${path}/${name}` : name;
      out.push(child);
      if (out.length > limit) throw new BackendError(`more than ${limit} anchors below "${root}"`, 'ERR_ZTB_PF_STATUS');
      walk(child, depth + 1);
    }
  };
  walk(root, 0);
  return out;
}
