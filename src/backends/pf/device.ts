// Backend layer (pf): the real /dev/pf as an IoctlDevice, over the addon's pfOpen/pfIoctl/pfClose
// exports, which exist only in OpenBSD builds. The addon reports a failed ioctl as its errno number;
// this file names it (OpenBSD's errno values) so the planner can raise a PfIoctlError that says
// which request failed and why. On any other system opening fails with a BackendError.
import { loadNative } from '../../engine/native.js';
import { BackendError } from './errors.js';
import type { IoctlDevice } from './plan.js';

declare module '../../engine/native.js' {
  interface NativeAddon {
    /** OpenBSD builds only. */
    pfOpen?(path: string, writable: boolean): number;
    /** Returns 0 or the errno; stores payload's address at arg[ptrOffset] first when given. */
    pfIoctl?(fd: number, request: number, arg: Buffer, ptrOffset: number, payload: Buffer | null): number;
    pfClose?(fd: number): void;
  }
}

/** <sys/errno.h> on OpenBSD (the values pf's ioctls return). */
const OPENBSD_ERRNO: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 5: 'EIO', 6: 'ENXIO', 9: 'EBADF', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT',
  16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 25: 'ENOTTY', 28: 'ENOSPC', 35: 'EAGAIN',
  45: 'EOPNOTSUPP', 46: 'EPFNOSUPPORT', 47: 'EAFNOSUPPORT', 63: 'ENAMETOOLONG',
};

export function errnoName(n: number): string {
  return OPENBSD_ERRNO[n] ?? `errno ${n}`;
}

export const NO_PF_MESSAGE = 'pf backend needs OpenBSD /dev/pf; use --dry-run to print the plan';

type IoctlFn = (fd: number, request: number, arg: Buffer, ptrOffset: number, payload: Buffer | null) => number;
type CloseFn = (fd: number) => void;

export class NativePfDevice implements IoctlDevice {
  readonly #fd: number;
  readonly #ioctl: IoctlFn;
  readonly #close: CloseFn;
  #open = true;

  private constructor(fd: number, ioctl: IoctlFn, close: CloseFn) {
    this.#fd = fd;
    this.#ioctl = ioctl;
    this.#close = close;
  }

  static open(opts: { path?: string; writable?: boolean } = {}): NativePfDevice {
    if (process.platform !== 'openbsd') throw new BackendError(NO_PF_MESSAGE, 'ERR_ZTB_PF_UNAVAILABLE');
    const addon = loadNative();
    if (!addon.pfOpen || !addon.pfIoctl || !addon.pfClose) {
      throw new BackendError('this build of the native addon has no pf support (rebuild it on OpenBSD)', 'ERR_ZTB_PF_UNAVAILABLE');
    }
    const fd = addon.pfOpen(opts.path ?? '/dev/pf', opts.writable ?? true);
    return new NativePfDevice(fd, addon.pfIoctl.bind(addon), addon.pfClose.bind(addon));
  }

  ioctl(request: number, arg: Buffer, payload?: { ptrOffset: number; buf: Buffer }): void {
    if (!this.#open) throw new BackendError('/dev/pf is closed', 'ERR_ZTB_PF_CLOSED');
    const e = this.#ioctl(this.#fd, request, arg, payload ? payload.ptrOffset : -1, payload ? payload.buf : null);
    if (e !== 0) throw Object.assign(new Error(`ioctl 0x${(request >>> 0).toString(16)}: ${errnoName(e)}`), { errno: errnoName(e) });
  }

  close(): void {
    if (this.#open) {
      this.#open = false;
      this.#close(this.#fd);
    }
  }
}
