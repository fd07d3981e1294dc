#include "cgroups/features.h"

#include <linux/connector.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>

#include "base/text.h"
#include "base/unique_fd.h"

namespace cpuclass::cgroups {
namespace {

bool kernelAtLeast(int major, int minor) {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

bool pidfdWorks() {
  const long fd = ::syscall(SYS_pidfd_open, ::getpid(), 0);
  if (fd < 0) return false;
  ::close(static_cast<int>(fd));
  return true;
}

bool procConnectorBinds() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR));
  if (!fd.valid()) return false;
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = CN_IDX_PROC;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

}  // namespace

Features probeFeatures(const CgroupLayout& layout, const ClassTree& tree) {
  Features f;
  // cpu.idle exists in every non-root cpu group and, on v1, in the root too; a v2 root lacks it.
  f.cpu_idle = tree.control().root().exists("cpu.idle") ||
               (tree.control().version() == CgroupVersion::kV2 && kernelAtLeast(5, 15));
  if (layout.unified) {
    auto root = Dir::open(layout.unified->mount_point);
    if (root) {
      f.threaded_cgroups = root->exists("cgroup.threads");
      if (auto controllers = root->read("cgroup.controllers")) {
        for (const auto c : splitFields(*controllers)) f.cpu_controller_v2 |= c == "cpu";
      }
    }
  }
  f.pidfd = pidfdWorks();
  f.proc_connector = procConnectorBinds();
  f.proc_connector_filter = f.proc_connector && kernelAtLeast(6, 6);
  f.psi = ::access("/proc/pressure/cpu", R_OK) == 0;
  f.accounting_mirror = tree.accounting() != nullptr;
  return f;
}

std::vector<std::pair<std::string, bool>> featureList(const Features& f) {
  return {{"cpu_idle", f.cpu_idle},
          {"threaded_cgroups", f.threaded_cgroups},
          {"cpu_controller_v2", f.cpu_controller_v2},
          {"pidfd", f.pidfd},
          {"proc_connector", f.proc_connector},
          {"proc_connector_filter", f.proc_connector_filter},
          {"psi", f.psi},
          {"accounting_mirror", f.accounting_mirror}};
}

}  // namespace cpuclass::cgroups
