// Per-thread scheduling policy and nice, through sched_setattr(2) on a TID.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string_view>

#include "base/error.h"
#include "cgroups/outcome.h"

namespace cpuclass::cgroups {

struct ThreadSched {
  int policy = 0;  // kernel number: kSchedOther, kSchedBatch, kSchedIdle, kSchedRr, ...
  int nice = 0;
  int priority = 0;  // SCHED_FIFO/RR priority 1..99; 0 for the others
  // A fair thread's custom EEVDF slice (Linux 6.12+): set to this, zero being the kernel's
  // default. Unset: whatever the thread has stays (its owner may have chosen one).
  std::optional<std::chrono::nanoseconds> slice;
  bool operator==(const ThreadSched&) const = default;
};

// Reads policy and nice with sched_getattr(2).
Result<ThreadSched> readThreadSched(pid_t tid);

// Sets policy (OTHER, BATCH, IDLE, or RR with a priority) and nice in one sched_setattr(2). A
// real-time thread is left as it is and reported as kRealTime, unless `realtime_is_ours` (the
// daemon made it real-time itself): demoting it would silently break its owner's latency
// guarantees, and the kernel keeps it out of child cpu cgroups anyway. A custom slice and
// reset-on-fork that the thread's owner set survive a change between fair policies.
Result<Outcome> setThreadSched(pid_t tid, ThreadSched sched, bool realtime_is_ours = false);

// Gives a thread a custom EEVDF slice (sched_attr.sched_runtime, Linux 6.12+), keeping its policy
// and nice. A thread with a shorter slice than the running one preempts it at wake-up instead of
// waiting for its slice to end (PREEMPT_SHORT). True when the kernel took it: older kernels ignore
// the field, and a real-time thread is left alone.
Result<bool> setThreadSlice(pid_t tid, std::chrono::nanoseconds slice);
// The slice of a fair-class thread as the kernel reports it (Linux 6.12+; zero before).
Result<std::chrono::nanoseconds> readThreadSlice(pid_t tid);
// Its custom slice: zero when it runs with the kernel's default (or is real-time).
Result<std::chrono::nanoseconds> readCustomSlice(pid_t tid);

std::string_view schedPolicyName(int policy);

}  // namespace cpuclass::cgroups
