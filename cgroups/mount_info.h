// Where the cgroup hierarchies are mounted, derived purely from /proc/self/mountinfo text.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace cpuclass::cgroups {

enum class CgroupMode {
  kV2,      // only cgroup2 (the production target)
  kHybrid,  // v1 controller mounts plus a cgroup2 mount
  kV1,      // v1 only
};
std::string_view toString(CgroupMode mode);

struct CgroupMount {
  std::string mount_point;               // unescaped, e.g. /sys/fs/cgroup/cpu
  std::string root;                      // the mount's root inside the hierarchy, usually "/"
  int version = 1;                       // 1 or 2
  std::vector<std::string> controllers;  // v1 only (from the super options); v2 reads cgroup.controllers
  bool has(std::string_view controller) const;
};

struct CgroupLayout {
  CgroupMode mode = CgroupMode::kV2;
  CgroupMount cpu;  // the hierarchy the cpu controller is bound to (the unified mount on pure v2)
  std::optional<CgroupMount> unified;  // the cgroup2 mount, if any
  // A v1 cpuacct mount separate from cpu; per-class usage then needs a mirror (see ClassTree).
  std::optional<CgroupMount> separate_cpuacct;
};

// Parses the lines of /proc/self/mountinfo that describe cgroup and cgroup2 mounts.
std::vector<CgroupMount> parseCgroupMounts(std::string_view mountinfo);

// Decides the mode and where `cpu` lives. On v2 the caller still has to check that `cpu` is in
// the root's cgroup.controllers; this function only sees mounts.
Result<CgroupLayout> detectLayout(std::string_view mountinfo);

}  // namespace cpuclass::cgroups
