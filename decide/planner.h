// Pure: from what each managed thread should be and what it is, the actions that close the gap.
// Used for new threads, reloads and drift (someone else moved or re-prioritised a thread).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace cpuclass::decide {

struct ThreadTarget {
  std::string group;  // control-hierarchy group, relative to its root: "<base>/<class>"
  int policy = 0;     // kernel policy number
  int nice = 0;
  int priority = 0;   // SCHED_RR priority; 0 for fair policies
  // A custom EEVDF slice to hold it to (zero: the kernel's default); unset: not ours to set.
  std::optional<std::chrono::nanoseconds> slice;
  // The accounting mirror's group (v1/hybrid), "<base>/<class>": differs from `group` for a
  // class that runs in another's group, and for boosts. Empty: no mirror to keep.
  std::string accounting_group;
  bool operator==(const ThreadTarget&) const = default;
};

struct ThreadObservation {
  std::optional<std::string> group;  // where /proc says the thread is (control hierarchy)
  std::optional<std::string> accounting_group;  // and in the accounting mirror, where there is one
  int policy = 0;
  int nice = 0;
  int priority = 0;
  bool realtime = false;       // SCHED_FIFO/RR/DEADLINE now
  bool realtime_ours = false;  // and the daemon made it so (a realtime class): it may change it
  std::chrono::nanoseconds slice{0};  // its custom slice; read only where the target has one
};

struct PlanItem {
  pid_t tid = 0;
  ThreadTarget target;
  ThreadObservation observed;
};

struct Action {
  enum class Kind { kMove, kSetSched };
  Kind kind = Kind::kMove;
  pid_t tid = 0;
  ThreadTarget target;
  bool operator==(const Action&) const = default;
};

struct Plan {
  std::vector<Action> actions;     // moves first, in input order, then scheduling changes
  // Scheduling changes due before the moves: a thread we made real-time that leaves its
  // realtime class goes fair first, since the kernel keeps real-time threads out of groups
  // without a real-time budget (cgroup v1 RT group scheduling).
  std::vector<Action> before_moves;
  std::vector<pid_t> realtime;     // skipped: real-time by its owner; the kernel keeps those out of child cpu groups
};

Plan plan(const std::vector<PlanItem>& items);

}  // namespace cpuclass::decide
