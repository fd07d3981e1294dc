// What the running kernel offers the daemon, probed once at start and reported in status and
// metrics so an operator sees which mechanisms are in force.
#pragma once

#include <string>
#include <vector>

#include "cgroups/class_tree.h"
#include "cgroups/mount_info.h"

namespace cpuclass::cgroups {

struct Features {
  bool cpu_idle = false;           // cgroup cpu.idle (Linux 5.15)
  bool threaded_cgroups = false;   // cgroup2 threaded groups (cgroup.threads)
  bool cpu_controller_v2 = false;  // cpu listed in the cgroup2 root's cgroup.controllers
  bool pidfd = false;              // pidfd_open(2) (Linux 5.3)
  bool proc_connector = false;     // netlink proc connector bind (root, or Linux 6.6)
  bool proc_connector_filter = false;  // kernel-side event filter (Linux 6.6)
  bool psi = false;                // /proc/pressure/cpu
  bool accounting_mirror = false;  // per-class usage comes from a mirror hierarchy
};

// Probes the live system. `tree` tells where the cpu controller is (cpu.idle is probed there).
Features probeFeatures(const CgroupLayout& layout, const ClassTree& tree);

// "name=yes" pairs in a stable order, for status output and the metrics info series.
std::vector<std::pair<std::string, bool>> featureList(const Features& f);

}  // namespace cpuclass::cgroups
