// Linux implementation of native/io/tap.h: /dev/net/tun ioctls and setns/unshare for named network
// namespaces. Every fd is closed on every path; errno is carried in the Status so TypeScript can
// name it (EPERM without CAP_NET_ADMIN, EBUSY for a tap already attached elsewhere).
#include "io/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ztb::io {
namespace {

Status sys_error(const std::string& what) {
  int e = errno;
  return Status(Errc::kSystem, what + ": " + strerror(e), e);
}

// Closes an fd when the scope ends, so early returns cannot leak it.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

bool valid_ifname(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return false;
  for (char c : name) {
    if (c == '/' || c == ':' || c == ' ' || c == '\0') return false;
  }
  return name != "." && name != "..";
}

// Namespace names are file names under /run/netns, not interface names: no 15-byte limit.
bool valid_nsname(const std::string& name) {
  if (name.empty() || name.size() > 200 || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '/' || c == '\0') return false;
  }
  return true;
}

}  // namespace

Result<std::string> tap_create(const std::string& name, const TapOptions& opts) {
  if (!valid_ifname(name)) return Status(Errc::kInvalidArgument, "invalid interface name '" + name + "'");
  Fd tun(open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (tun.fd < 0) return sys_error("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(tun.fd, TUNSETIFF, &ifr) < 0) return sys_error("TUNSETIFF " + name);
  // Owner and group must be set before the device is made persistent: once we close the fd only
  // the owner (or CAP_NET_ADMIN) may attach to it.
  if (opts.owner >= 0 && ioctl(tun.fd, TUNSETOWNER, opts.owner) < 0) return sys_error("TUNSETOWNER " + name);
  if (opts.group >= 0 && ioctl(tun.fd, TUNSETGROUP, opts.group) < 0) return sys_error("TUNSETGROUP " + name);
  if (ioctl(tun.fd, TUNSETPERSIST, 1) < 0) return sys_error("TUNSETPERSIST " + name);
  return std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
}

NetnsGuard::~NetnsGuard() { restore(); }

Status NetnsGuard::enter(const std::string& path) {
  if (saved_fd_ >= 0) return Status(Errc::kInvalidArgument, "already inside a namespace");
  int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved < 0) return sys_error("open /proc/thread-self/ns/net");
  Fd target(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (target.fd < 0) {
    Status st = sys_error("open " + path);
    close(saved);
    return st;
  }
  if (setns(target.fd, CLONE_NEWNET) < 0) {
    Status st = sys_error("setns " + path);
    close(saved);
    return st;
  }
  saved_fd_ = saved;
  return Status::ok();
}

Status NetnsGuard::restore() {
  if (saved_fd_ < 0) return Status::ok();
  Status st;
  if (setns(saved_fd_, CLONE_NEWNET) < 0) st = sys_error("setns back to the original namespace");
  close(saved_fd_);
  saved_fd_ = -1;
  return st;
}

Status netns_create(const std::string& dir, const std::string& name) {
  if (!valid_nsname(name)) return Status(Errc::kInvalidArgument, "invalid namespace name '" + name + "'");
  if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) return sys_error("mkdir " + dir);
  // Like iproute2: make the directory a shared mount so namespaces mounted here propagate into
  // mount namespaces created later (ip netns exec), binding it onto itself first if it is not a
  // mount point yet.
  bool bound = false;
  while (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) < 0) {
    if (errno != EINVAL || bound) return sys_error("mount --make-shared " + dir);
    if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) < 0) return sys_error("bind " + dir);
    bound = true;
  }
  const std::string path = dir + "/" + name;
  {
    Fd f(open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0));
    if (f.fd < 0) {
      if (errno == EEXIST) return Status(Errc::kExists, "namespace " + name + " exists", EEXIST);
      return sys_error("create " + path);
    }
  }
  Fd saved(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (saved.fd < 0) {
    Status st = sys_error("open /proc/thread-self/ns/net");
    unlink(path.c_str());
    return st;
  }
  if (unshare(CLONE_NEWNET) < 0) {
    Status st = sys_error("unshare(CLONE_NEWNET)");
    unlink(path.c_str());
    return st;
  }
  Status st;
  if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) < 0) {
    st = sys_error("bind-mount namespace onto " + path);
  }
  // Always go back: the thread must not stay in the new namespace whatever happened.
  if (setns(saved.fd, CLONE_NEWNET) < 0 && st.is_ok()) st = sys_error("setns back");
  if (!st.is_ok()) unlink(path.c_str());
  return st;
}

Status netns_delete(const std::string& dir, const std::string& name) {
  if (!valid_nsname(name)) return Status(Errc::kInvalidArgument, "invalid namespace name '" + name + "'");
  const std::string path = dir + "/" + name;
  if (umount2(path.c_str(), MNT_DETACH) < 0) {
    if (errno == ENOENT) return Status(Errc::kNotFound, "namespace " + name + " does not exist", ENOENT);
    if (errno != EINVAL) return sys_error("umount " + path);
  }
  if (unlink(path.c_str()) < 0 && errno != ENOENT) return sys_error("unlink " + path);
  return Status::ok();
}

}  // namespace ztb::io
