// Net layer: the typed errors of the orchestrator. A NetlinkError carries the errno (number and
// name), the operation and the object it was about, so a caller can branch on `code`
// (ERR_ZTB_NETLINK_EEXIST, ERR_ZTB_NETLINK_EPERM, ...) and a user reads which link failed and why.
// TopologyError reports problems of the desired topology (bad tap names, VNI clashes) before
// anything is touched; OwnershipError refuses to modify a link that is not ours.
import { constants } from 'node:os';
import { ZtbError } from '../errors.js';

const ERRNO_BY_NAME = constants.errno as Record<string, number>;

function errnoName(errno: number): string {
  for (const [name, n] of Object.entries(ERRNO_BY_NAME)) if (n === errno) return name;
  return `E${errno}`;
}

/** Human explanations for the errnos the orchestrator meets in practice. */
function explain(name: string, object: string, op: string): string {
  if (op === 'enter netns' && (name === 'EPERM' || name === 'EACCES')) return `not permitted to enter netns ${object}: CAP_SYS_ADMIN is required`;
  switch (name) {
    case 'EEXIST':
      return `${object} already exists`;
    case 'ENODEV':
      return `${object} does not exist (no such device)`;
    case 'ENOENT':
      return `${object} does not exist`;
    case 'EBUSY':
      return `${object} is busy (in use by another device or process)`;
    case 'EPERM':
    case 'EACCES':
      return `not permitted to change ${object}: CAP_NET_ADMIN is required`;
    case 'ENOTSUP':
    case 'EOPNOTSUPP':
      return `${object}: operation not supported by this kernel`;
    case 'EINVAL':
      return `${object}: invalid argument`;
    case 'ERANGE':
      return `${object}: value out of range`;
    default:
      return `${object}: ${name}`;
  }
}

export class NetlinkError extends ZtbError {
  readonly errno: number;
  readonly errnoName: string;
  readonly op: string;
  readonly object: string;
  constructor(op: string, object: string, errno: number, options?: { cause?: unknown; name?: string }) {
    const name = options?.name ?? errnoName(errno);
    super(`ERR_ZTB_NETLINK_${name}`, `${op} ${object}: ${explain(name, object, op)} (${name}, errno ${errno})`, options);
    this.errno = errno;
    this.errnoName = name;
    this.op = op;
    this.object = object;
  }

  /** Builds a NetlinkError from what the netlink package or our addon threw. */
  static from(e: unknown, op: string, object: string): NetlinkError | unknown {
    if (e instanceof NetlinkError) return e;
    const err = e as { message?: string; errno?: unknown };
    if (typeof err?.errno === 'number' && err.errno !== 0) return new NetlinkError(op, object, Math.abs(err.errno), { cause: e });
    // netlink@0.3.0 rejects with `Error("Request rejected: EEXIST")` and no errno property (see
    // docs/net.md); the name comes from getSystemErrorName, so it maps back exactly.
    const m = /^Request rejected: (\w+)$/.exec(err?.message ?? '');
    if (m) {
      const name = m[1]!;
      const n = /^\d+$/.test(name) ? Number(name) : (ERRNO_BY_NAME[name] ?? 0);
      return new NetlinkError(op, object, Math.abs(n), { cause: e, name: /^\d+$/.test(name) ? undefined : name });
    }
    return e;
  }
}

export class TopologyError extends ZtbError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super('ERR_ZTB_TOPOLOGY', problems.length === 1 ? problems[0]! : `invalid tenant topology:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

export class OwnershipError extends ZtbError {
  constructor(message: string) {
    super('ERR_ZTB_NOT_OWNED', message);
  }
}

export class UnsupportedError extends ZtbError {
  constructor(message: string) {
    super('ERR_ZTB_UNSUPPORTED', message);
  }
}

export class LockError extends ZtbError {
  constructor(message: string) {
    super('ERR_ZTB_LOCKED', message);
  }
}
