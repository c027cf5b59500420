// OpenBSD implementation of native/io/pf_dev.h. Built only on OpenBSD (the _openbsd suffix keeps it
// out of other builds) and not exercised by the Linux test suite; see docs/pf-backend.md.
#include "io/pf_dev.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace ztb::io {

Result<int> pf_open(const std::string& path, bool writable) {
  int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return Status(Errc::kSystem, "open " + path + ": " + std::strerror(e), e);
  }
  return fd;
}

int pf_ioctl(int fd, unsigned long request, uint8_t* arg, size_t arg_len, size_t ptr_offset, uint8_t* payload) {
  if (payload != nullptr) {
    if (ptr_offset > arg_len || arg_len - ptr_offset < sizeof(void*)) return EINVAL;
    void* p = payload;
    std::memcpy(arg + ptr_offset, &p, sizeof p);
  }
  if (::ioctl(fd, request, arg) == -1) return errno;
  return 0;
}

void pf_close(int fd) {
  if (fd >= 0) ::close(fd);
}

}  // namespace ztb::io
