// OpenBSD /dev/pf access for the pf backend (src/backends/pf). Deliberately tiny: TypeScript owns
// the per-release struct layouts, the ioctl request numbers and the transaction logic, so nothing
// here includes <net/pfvar.h>; this layer opens the device, patches the one pointer some arguments
// carry (pfioc_trans.array, pfioc_table.pfrio_buffer) and makes the ioctl.
//
// What: pf_open() opens /dev/pf; pf_ioctl() stores `payload`'s address at `arg + ptr_offset` (when
//   a payload is given) and calls ioctl(fd, request, arg); pf_close() closes.
// Invariants: the pointer is written with memcpy (no alignment assumption) and only inside `arg`;
//   the kernel reads/writes at most arg_len bytes of arg because the request number encodes the
//   size, which the caller (TS) derives from the same table it sized `arg` with.
// Thread-safety: one fd per caller; calls are synchronous on the JS thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace ztb::io {

Result<int> pf_open(const std::string& path, bool writable);

// Returns 0 or the errno of the failed ioctl (never throws, never prints).
int pf_ioctl(int fd, unsigned long request, uint8_t* arg, size_t arg_len, size_t ptr_offset, uint8_t* payload);

void pf_close(int fd);

}  // namespace ztb::io
