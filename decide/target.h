// Pure: what a classified thread should be (its group, scheduling and slice, and the settings of
// the group), from its class and what the daemon holds about it (a boost, a held-back realtime
// class, the slice it was given). No reads, no writes: reconcile gathers the inputs.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "decide/planner.h"
#include "policy/policy.h"

namespace cpuclass::decide {

// Where boosted threads of a worker run: a non-idle group beside the classes. Class names start
// with a letter, so no class can take this name.
inline constexpr const char* kBoostGroup = "_boost";

// A class group's cgroup settings (cgroups::CpuSettings, which this module does not see).
struct GroupSettings {
  uint32_t weight = 100;
  bool idle = false;
  bool realtime = false;
  bool operator==(const GroupSettings&) const = default;
};

struct TargetInput {
  const policy::ClassSpec& spec;  // its class
  const policy::ClassSpec& host;  // the class whose group it runs in: spec, or spec.run_in's
  std::string base;               // where its worker's class groups hang
  bool boosted = false;
  bool explicit_wait = false;       // the boost was asked for (a wait report, an operator)
  bool realtime_held_back = false;  // its realtime class ran over realtime_limit: fair for now
  bool kernel_has_slices = true;    // Linux 6.12+ custom EEVDF slices
  bool slice_ours = false;          // it holds a slice the daemon gave it
};

struct Target {
  ThreadTarget thread;
  GroupSettings settings;  // of thread.group
};

Target targetFor(const TargetInput& in);

// The slice to hold a fair thread to: its class's, the default back for one that had ours, else
// nothing (a slice its owner chose stays). Real-time threads and old kernels: nothing.
std::optional<std::chrono::nanoseconds> sliceFor(const policy::ClassSpec& spec, bool realtime, bool kernel_has_slices,
                                                 bool slice_ours);

}  // namespace cpuclass::decide
