// Linux device and namespace I/O for the tenant-network orchestrator (src/net): persistent tap
// devices through /dev/net/tun ioctls (rtnetlink refuses kind "tun"), and network-namespace
// switching for the calling thread, so that a netlink socket or a tap opened while switched lives
// in the target namespace.
//
// What: tap_create() makes a persistent tap (IFF_TAP|IFF_NO_PI) with optional owner/group;
//   NetnsGuard enters a namespace file (/run/netns/NAME) for the calling thread and restores the
//   previous namespace on destruction; netns_create()/netns_delete() manage named namespaces the
//   way iproute2 does (a bind mount of the thread's namespace onto /run/netns/NAME), so `ip netns`
//   sees ours and we see its.
// Invariants: a NetnsGuard always restores the thread's original namespace, even when the work in
//   between fails; no fd is leaked on any path.
// Thread-safety: setns() affects only the calling thread; callers run on the JS main thread and
//   keep the switched section synchronous.
#pragma once

#include <string>

#include "core/status.h"

namespace ztb::io {

struct TapOptions {
  long owner = -1;   // uid, -1 = leave unset
  long group = -1;   // gid, -1 = leave unset
};

// Creates (or re-attaches to) a persistent tap called `name` in the calling thread's network
// namespace. Returns the kernel's name for it.
Result<std::string> tap_create(const std::string& name, const TapOptions& opts);

// Enters the network namespace at `path` for the calling thread until destroyed.
class NetnsGuard {
 public:
  NetnsGuard() = default;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  ~NetnsGuard();
  Status enter(const std::string& path);
  Status restore();

 private:
  int saved_fd_ = -1;
};

// Creates the named namespace `dir`/`name` (dir is normally /run/netns).
Status netns_create(const std::string& dir, const std::string& name);
// Unmounts and removes `dir`/`name`. Missing -> kNotFound.
Status netns_delete(const std::string& dir, const std::string& name);

}  // namespace ztb::io
