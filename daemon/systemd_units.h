// Asks systemd, over its D-Bus API, whether the unit holding a process delegates its cgroup.
//
// systemd marks delegated cgroups with the trusted.delegate xattr, but reading trusted.* needs
// CAP_SYS_ADMIN, which the hardened service does not have; the unit's Delegate property says
// the same thing without privileges.
#pragma once

#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <functional>
#include <memory>

#include "base/error.h"


namespace cpuclass::daemon {

class SystemdUnits {
 public:
  // A private connection to the system bus, served by `event`'s loop; ENOENT-like errors when
  // there is none.
  static Result<std::unique_ptr<SystemdUnits>> connect(sd_event* event);
  ~SystemdUnits();
  SystemdUnits(const SystemdUnits&) = delete;
  SystemdUnits& operator=(const SystemdUnits&) = delete;

  // Whether the service or scope unit of `pid` has Delegate=yes: asked asynchronously, `done`
  // called from the loop with the answer or the error (a PID 1 that does not answer: ETIMEDOUT
  // after 2 s). Nothing waits meanwhile.
  using Answer = std::function<void(Result<bool>)>;
  void askDelegates(pid_t pid, Answer done);

 private:
  struct Query;
  explicit SystemdUnits(sd_bus* bus) : bus_(bus) {}
  // The next step of a query: the Delegate property on the next unit interface.
  void askProperty(std::unique_ptr<Query> q);
  static int onUnit(sd_bus_message* reply, void* userdata, sd_bus_error* error);
  static int onProperty(sd_bus_message* reply, void* userdata, sd_bus_error* error);
  sd_bus* bus_;
};

}  // namespace cpuclass::daemon
