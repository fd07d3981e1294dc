// Asks systemd, over its D-Bus API, whether the unit holding a process delegates its cgroup.
//
// systemd marks delegated cgroups with the trusted.delegate xattr, but reading trusted.* needs
// CAP_SYS_ADMIN, which the hardened service does not have; the unit's Delegate property says
// the same thing without privileges.
#pragma once

#include <sys/types.h>

#include <memory>

#include "base/error.h"

struct sd_bus;

namespace cpuclass::daemon {

class SystemdUnits {
 public:
  // A private connection to the system bus; ENOENT-like errors when there is none.
  static Result<std::unique_ptr<SystemdUnits>> connect();
  ~SystemdUnits();
  SystemdUnits(const SystemdUnits&) = delete;
  SystemdUnits& operator=(const SystemdUnits&) = delete;

  // Whether the service or scope unit of `pid` has Delegate=yes.
  Result<bool> delegates(pid_t pid) const;

 private:
  explicit SystemdUnits(sd_bus* bus) : bus_(bus) {}
  sd_bus* bus_;
};

}  // namespace cpuclass::daemon
