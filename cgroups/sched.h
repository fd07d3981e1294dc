// Per-thread scheduling policy and nice, through sched_setattr(2) on a TID.
#pragma once

#include <sys/types.h>

#include <string_view>

#include "base/error.h"
#include "cgroups/outcome.h"

namespace cpuclass::cgroups {

struct ThreadSched {
  int policy = 0;  // kernel number: kSchedOther, kSchedBatch, kSchedIdle, ...
  int nice = 0;
  bool operator==(const ThreadSched&) const = default;
};

// Reads policy and nice with sched_getattr(2).
Result<ThreadSched> readThreadSched(pid_t tid);

// Sets policy (OTHER, BATCH or IDLE) and nice in one sched_setattr(2). A real-time thread is left
// as it is and reported as kRealTime: demoting it would silently break its owner's latency
// guarantees, and the kernel keeps it out of child cpu cgroups anyway.
Result<Outcome> setThreadSched(pid_t tid, ThreadSched sched);

std::string_view schedPolicyName(int policy);

}  // namespace cpuclass::cgroups
