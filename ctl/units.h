// What cpuclassctl asks of systemd (not of cpuclassd): delegating a unit's cgroup, and starting
// a worker as a transient unit with a delegated cgroup (DESIGN.md §4).
#pragma once

#include <systemd/sd-bus.h>

#include <string>
#include <vector>

#include "base/error.h"

namespace cpuclass::ctl {

// Writes <dropin_root>/<unit>.d/50-cpuclass-delegate.conf with Delegate=yes and asks systemd to
// reload its units. Returns the drop-in's path. The unit applies it at its next restart.
Result<std::string> delegateUnit(sd_bus* bus, const std::string& unit, const std::string& dropin_root = "/etc/systemd/system");

struct RunOptions {
  std::string unit;  // empty: cpuclass-run-<pid>.service
  std::string description;
  std::vector<std::string> command;  // command[0] found in PATH unless it has a '/'
};
// Starts the command as a transient service in cpuclass.slice with Delegate=yes and waits
// until it runs or fails. Returns the unit's name.
Result<std::string> runUnit(sd_bus* bus, const RunOptions& options);

}  // namespace cpuclass::ctl
