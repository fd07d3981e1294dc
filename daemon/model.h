// The daemon's shared model: the managed processes and threads, and where their class groups
// hang. Discovery keeps it; classification, placement, boosts and guards read it and mark
// threads to reconcile.
#pragma once

#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "decide/clock.h"
#include "decide/starvation.h"
#include "decide/target.h"
#include "policy/classifier.h"
#include "policy/policy.h"

namespace cpuclass::daemon {

using decide::BoostVerdict;
using decide::Clock;
using decide::kBoostGroup;
using decide::Nanos;

// One class group of one worker: `cls` under `base` (ClassTree::v1Base or v2Base). Also the
// boost group (kBoostGroup) and accounting-only groups of classes that run in another's group.
struct ClassGroup {
  std::string base;
  std::string cls;
  std::string path() const { return base + "/" + cls; }
  // "<base>/<class>", as the planner's targets name groups.
  static ClassGroup of(std::string_view path) {
    const auto slash = path.rfind('/');
    return {std::string(path.substr(0, slash)), std::string(path.substr(slash + 1))};
  }
  auto operator<=>(const ClassGroup&) const = default;
};

struct Process {
  uint64_t start_time = 0;
  std::string worker;
  std::string base;  // where its class groups hang
  bool child = false;  // a child process of a worker process: process rules apply
  policy::ProcessFacts facts;
  UniqueFd pidfd;  // keeps naming this process across PID reuse
  int num_threads = 0;  // as the last rescan's stat read it (0: not read yet)
  std::string why;  // how it came to its worker, for `explain`
  pid_t parent = 0;  // a child process's parent, managed when it was found
};

struct Thread {
  pid_t tgid = 0;
  uint64_t start_time = 0;
  std::optional<std::string> requested_class;
  policy::Decision decision;
  ClassGroup group;  // of the decision, kept with it (hot in the poll)
  const policy::ClassSpec* spec = nullptr;  // the decision's class under the current policy
  std::optional<std::string> applied_group;
  uint64_t created_ns = 0;  // fork event time, until placed
  bool realtime_reported = false;
  // As of its last reconcile: its name and the scheduling it was given (or had right). A
  // periodic full rescan compares one stat read with these (Placer::outOfPlace).
  std::string comm;
  int policy = -1;
  int nice = 0;
  int priority = 0;
  bool realtime_ours = false;  // we made it SCHED_RR (a realtime class): ours to change back
  bool slice_ours = false;     // we gave it its class's custom slice: ours to reset
  bool sched_drifted = false;  // someone else changed its policy or nice: counted once put back
};

struct Registry {
  std::map<pid_t, Process> processes;
  std::map<pid_t, Thread> threads;
  std::map<pid_t, pid_t> dirty;  // tid -> tgid: to classify and place at the next reconcile
  // Moves on whenever a thread is placed for the first time, reclassified or forgotten: the
  // class counts are counted again only then.
  uint64_t placements_version = 1;

  void markDirty(pid_t tid, pid_t tgid) { dirty.emplace(tid, tgid); }
  void markDirty(pid_t tid) {
    if (const auto t = threads.find(tid); t != threads.end()) dirty.emplace(tid, t->second.tgid);
  }
  const Thread* thread(pid_t tid) const {
    const auto it = threads.find(tid);
    return it == threads.end() ? nullptr : &it->second;
  }
  // The worker a managed thread's process belongs to; nullptr where either is unknown.
  const Process* processOf(pid_t tid) const {
    const auto* t = thread(tid);
    const auto p = t == nullptr ? processes.end() : processes.find(t->tgid);
    return p == processes.end() ? nullptr : &p->second;
  }
};

}  // namespace cpuclass::daemon
