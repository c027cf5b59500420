// Backend layer (pf): typed errors. BackendError is what every pf backend failure is (unknown
// release, a policy the kernel encoding cannot express, no /dev/pf on this host); PfIoctlError adds
// the failed ioctl's request name and errno so callers can tell a stale ticket (EBUSY) from a field
// the kernel rejected (EINVAL) without parsing the message.
import { ZtbError } from '../../errors.js';

export class BackendError extends ZtbError {
  constructor(message: string, code = 'ERR_ZTB_PF', options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** errno names we act on; anything else is carried through as reported by the device. */
export type PfErrno = 'EBUSY' | 'EINVAL' | 'ENOENT' | 'ENODEV' | 'EPERM' | 'EACCES' | 'ENOMEM' | 'EEXIST' | string;

export class PfIoctlError extends BackendError {
  readonly errno: PfErrno;
  readonly request: string;
  constructor(request: string, errno: PfErrno, detail?: string, options?: { cause?: unknown }) {
    super(`pf ioctl ${request} failed: ${errno}${detail ? ` (${detail})` : ''}`, 'ERR_ZTB_PF_IOCTL', options);
    this.errno = errno;
    this.request = request;
  }
}
