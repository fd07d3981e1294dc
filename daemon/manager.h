// The daemon's coordinator: the steps of DESIGN.md's data flow, discover (Discovery: scan,
// events) -> classify (policy) -> plan (decide/) -> place (Placer), with boosts (Booster) and
// guards (Guards) beside them, and the control API behind D-Bus.
//
// Single-threaded by design: called from the one sd_event loop only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cgroups/class_tree.h"
#include "cgroups/proc_events.h"
#include "cgroups/proc_fs.h"
#include "daemon/booster.h"
#include "daemon/discovery.h"
#include "daemon/guards.h"
#include "daemon/log.h"
#include "daemon/model.h"
#include "daemon/placer.h"
#include "daemon/state_file.h"
#include "daemon/stats.h"
#include "policy/policy.h"

namespace cpuclass::daemon {

class Manager : private Discovery::Listener {
 public:
  // `sched` and `clock`: the kernel's and CLOCK_MONOTONIC unless a test hands in its own.
  Manager(policy::Policy policy, cgroups::ClassTree tree, cgroups::ProcFs proc, StateFile state, Logger& log,
          Scheduler* sched = nullptr, const Clock* clock = nullptr);

  // Loads the originals of an earlier run, scans, places every thread, and restores threads an
  // earlier run left in groups nobody manages any more.
  void start();
  void handleEvents(const std::vector<cgroups::ProcEvent>& events, bool lost);
  // /proc scan: finds what events missed and corrects drift. A periodic one (`full` false) reads
  // every thread only every kFullRescanEvery-th time, else only threads that changed group.
  void rescan(bool full = true);
  // Applies a new, already validated policy in place.
  void reload(policy::Policy policy);
  // Per policy: `restore` puts every thread back and removes the groups; `keep` leaves them.
  void stop();

  // One starvation poll (DESIGN.md §6): ends expired boosts, finds starving threads of classes
  // with a boost section, boosts within budget. `now` is CLOCK_MONOTONIC. Between full polls
  // (every starvation_poll) a call only rechecks threads due. `next`: when to call again.
  struct StarvationPoll {
    bool changed = false;  // a boost started or ended
    Nanos next{};
  };
  StarvationPoll pollStarvation(Nanos now);
  // Thread `waiter` of a worker now waits on `holder`: boost the holder at once, within budget.
  // Errors: ESRCH for an unmanaged thread, EINVAL when the holder's class has no boost section.
  Result<BoostVerdict> reportWait(pid_t waiter, pid_t holder, Nanos now);
  // The wait ended: the holder's boost ends once nobody waits on it any more.
  Result<void> endWait(pid_t waiter, pid_t holder, Nanos now);

  // New child processes whose class depends on their title, re-read until it first changes
  // (called at every starvation poll). Whether a class changed.
  bool retitleNewChildren(Nanos now);
  // Whether the poll has anything to watch: threads of a class with a boost, a boost, a recheck,
  // a new child's title, a group to squeeze or a realtime class to guard. Without, the loop lets
  // the poll sleep until something changes (docs/boosting.md, "Round 10").
  bool pollHasWork() const;

  // The control API behind D-Bus. Errors: ESRCH (thread not managed, after an on-demand look at
  // its process), ENOENT (no such class).
  Result<void> setThreadClass(pid_t tid, const std::string& cls);
  Result<void> resetThreadClass(pid_t tid);
  struct Explanation {
    std::string worker;
    std::string cls;
    std::string reason;
    std::string group;  // where the thread is now (control hierarchy)
    bool boosted = false;
  };
  Result<Explanation> explain(pid_t tid);
  struct WorkerInfo {
    std::string name;
    pid_t pid = 0;
    uint64_t threads = 0;
    bool child = false;
  };
  std::vector<WorkerInfo> workers() const;
  // Worker processes the daemon cannot manage, by cgroup: status, metrics and logs name the fix.
  using LeftAlone = Discovery::LeftAlone;
  const std::map<pid_t, LeftAlone>& leftAlone() const { return discovery_.leftAlone(); }
  // A process not matched by the policy makes itself a worker named `name` with a default class.
  // Errors: EINVAL (bad name, or a policy worker's name), ENOENT (no such class), ESRCH (no such
  // process), EBUSY (already managed).
  Result<void> registerWorker(pid_t pid, const std::string& name, const std::string& default_class);
  Result<void> unregisterWorker(pid_t pid);
  struct ThreadInfo {
    pid_t tid = 0;
    pid_t pid = 0;
    std::string comm;
    std::string cls;
    std::string group;
    bool boosted = false;
  };
  // Managed threads of one worker (all workers for ""); comm read now from /proc.
  std::vector<ThreadInfo> threadsOf(const std::string& worker) const;
  // An operator's boost of one thread for `window`, within the class's budgets.
  Result<BoostVerdict> boost(pid_t tid, Nanos window, Nanos now);
  // Current CPU time of a class group (for status views); nullopt where unreadable.
  std::optional<double> classCpuSeconds(const std::string& base, const std::string& cls) const;

  // Observers of changes (the D-Bus service turns them into signals). Called on the loop thread.
  struct ClassChange {
    pid_t tid;
    std::string worker, cls;
  };
  std::function<void(const ClassChange&)> on_class_changed;
  std::function<void(pid_t tid, bool started)> on_boost;
  // v2: asked when the delegation xattr is not visible (reading trusted.* needs CAP_SYS_ADMIN):
  // whether the unit of `pid` delegates its cgroup. Unset: the xattr alone decides.
  // v2: where the delegation xattr is not visible (reading trusted.* needs CAP_SYS_ADMIN), asks
  // asynchronously whether the unit of a process delegates its cgroup (SystemdUnits); the
  // process waits, left alone, for the answer. Unset: the xattr alone decides.
  void setUnitDelegates(std::function<void(pid_t pid, Placer::UnitAnswer done)> ask);
  // Whether the kernel takes custom EEVDF slices (Linux 6.12+; the daemon tries its own at
  // start). Without, a class's `slice` is ignored and said so once.
  bool kernel_has_slices = true;

  const Stats& stats() const { return stats_; }
  // Counted where they happen, reported with the Manager's: the bus's refusals by error name,
  // the loop's failed reloads.
  void countBusRefusal(std::string_view name) { ++stats_.bus_refusals[std::string(name)]; }
  void countReloadFailure() { ++stats_.reload_failures; }
  // The placement latencies since the last call: SIGUSR1's report restarts the sample.
  std::vector<uint32_t> takePlacementLatencies() { return std::exchange(stats_.placement_latency_us, {}); }
  const Clock& clock() const { return clock_; }
  const policy::Policy& policy() const { return policy_; }
  size_t managedProcesses() const { return reg().processes.size(); }
  size_t managedThreads() const { return reg().threads.size(); }
  std::string status() const;  // one line for sd_notify STATUS= and logs
  // Every class group in use under the current policy, with its thread count.
  std::vector<ClassGroupCount> classGroups() const;

 private:
  // Discovery::Listener: what discovery's changes mean for placement and boosts.
  Result<std::string> baseFor(pid_t pid, const std::string& worker, const policy::ProcessFacts& facts) override;
  void releasing(pid_t pid) override;
  void threadForgotten(pid_t tid) override;
  void baseUnused(const std::string& base) override;

  const Registry& reg() const { return discovery_.registry(); }
  Registry& reg() { return discovery_.registry(); }
  // Classifies and places every thread marked dirty.
  void reconcile();
  // Its class under the current policy, and the target that follows (decide::targetFor).
  decide::Target classify(pid_t tid, Thread& t, const Process& process, const cgroups::ThreadFacts& facts);
  // Finds tid among managed threads, looking at its process first if events have not yet.
  Thread* managedThread(pid_t tid);
  // A managed thread whose class has a boost section; ESRCH / EINVAL otherwise.
  Result<Thread*> boostableThread(pid_t tid);

  policy::Policy policy_;
  cgroups::ProcFs proc_;
  Logger& log_;
  Stats stats_;
  const Clock& clock_;
  Placer placer_;
  Discovery discovery_;
  Booster booster_;
  Guards guards_;
  uint64_t light_rescans_ = 0;       // periodic rescans, for the full one every kFullRescanEvery
  bool slice_ignored_said_ = false;  // "no custom slices on this kernel", said once
  // Threads per class group for classGroups(), counted again when the registry's
  // placements_version moved on.
  mutable uint64_t class_counts_version_ = 0;
  mutable std::map<ClassGroup, uint64_t> class_counts_;
};

}  // namespace cpuclass::daemon
