// Test helper: privileged tests (network namespaces, nftables, taps). Without root they are skipped
// locally; with ZTB_REQUIRE_PRIVILEGED=1 (CI) a missing capability or tool is a failure.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

function haveRootAndNetns(): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not running as root';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 (ip) is not installed';
  }
  return null;
}

export const privilegeProblem: string | null = haveRootAndNetns();
export const requirePrivileged = process.env.ZTB_REQUIRE_PRIVILEGED === '1';

/** True when privileged tests must be skipped (local run without root). Throws in CI. */
export function skipPrivileged(extraTool?: string): boolean {
  let problem = privilegeProblem;
  if (!problem && extraTool) {
    try {
      execFileSync('sh', ['-c', `command -v ${extraTool}`], { stdio: 'ignore' });
    } catch {
      problem = `${extraTool} is not installed`;
    }
  }
  if (!problem) return false;
  if (requirePrivileged) throw new Error(`privileged test required (ZTB_REQUIRE_PRIVILEGED=1) but ${problem}`);
  return true;
}

/** A short unique name with the given prefix, valid as a netns or link name (<= 15 bytes). */
export function uniqueName(prefix: string): string {
  const id = randomBytes(3).toString('hex');
  const name = `${prefix}${id}`;
  if (name.length > 15) throw new Error(`name ${name} too long for an interface`);
  return name;
}
