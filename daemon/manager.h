// The daemon's model of the managed workers and the steps of DESIGN.md's data flow:
// discover (scan, events) -> classify (policy) -> plan (pure) -> place (kernel layer).
//
// Single-threaded by design: called from the one sd_event loop only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "cgroups/thread_probe.h"
#include "daemon/boost.h"
#include "daemon/container_metadata.h"
#include "cgroups/class_tree.h"
#include "cgroups/proc_events.h"
#include "cgroups/proc_fs.h"
#include "daemon/log.h"
#include "daemon/planner.h"
#include "daemon/state_file.h"
#include "metrics/sample.h"
#include "policy/classifier.h"
#include "policy/policy.h"

namespace cpuclass::daemon {

// Counters only grow; they are what metrics and status report.
struct Stats {
  uint64_t moves = 0;              // threads placed in a class group
  uint64_t sched_changes = 0;      // sched_setattr calls that changed a thread
  uint64_t gone = 0;               // threads that exited before we could act (normal)
  uint64_t realtime_skipped = 0;   // RT threads left alone (counted once per thread)
  uint64_t realtime_held_back = 0;  // times a worker's realtime class ran over its limit and went fair
  uint64_t drift_corrections = 0;  // threads someone else moved or re-prioritised, put back
  uint64_t accounting_failures = 0;
  uint64_t events = 0;
  uint64_t events_lost = 0;  // ENOBUFS from the proc connector, each followed by a rescan
  uint64_t rescans = 0;
  uint64_t reloads = 0;
  uint64_t reload_failures = 0;
  std::map<std::string, uint64_t> failures;  // by errno name, e.g. "EACCES"
  std::map<std::string, uint64_t> bus_refusals;  // D-Bus calls refused, by error name (NotAuthorized, ...)
  double last_reload_success_seconds = 0;  // Unix time of the last good policy load
  // New threads: kernel fork timestamp to the end of their move, in microseconds; the sample
  // SIGUSR1 reports and restarts. The histograms are what /metrics shows.
  std::vector<uint32_t> placement_latency_us;
  metrics::Histogram placement_latency_seconds = metrics::Sample{}.placement_latency_seconds;
  metrics::Histogram reconcile_seconds = metrics::Sample{}.reconcile_seconds;
};

struct BoostCounters {
  uint64_t starvation_events = 0;  // a runnable thread of the class found not running
  uint64_t boosts_started = 0;
  uint64_t boosts_refused = 0;     // refused by a budget (per worker, total, per second)
  double boosted_seconds = 0;      // summed duration of ended boosts
};

// One class group of one worker, with the threads the daemon has placed in it.
struct ClassGroupCount {
  std::string worker;
  std::string cls;
  std::string base;
  uint64_t threads = 0;
  BoostCounters boosts;
};

// Where boosted threads of a worker run: a non-idle group beside the classes. Class names start
// with a letter, so no class can take this name.
inline constexpr const char* kBoostGroup = "_boost";

class Manager {
 public:
  Manager(policy::Policy policy, cgroups::ClassTree tree, cgroups::ProcFs proc, StateFile state, Logger& log);

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
  struct LeftAlone {
    std::string worker;
    std::string cgroup;
    std::string reason;  // with the fix, e.g. "not delegated: cpuclassctl delegate x.service, then restart it"
    uint64_t start_time = 0;
  };
  const std::map<pid_t, LeftAlone>& leftAlone() const { return left_alone_; }
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
  std::function<Result<bool>(pid_t pid)> unit_delegates;
  // Whether the kernel takes custom EEVDF slices (Linux 6.12+; the daemon tries its own at
  // start). Without, a class's `slice` is ignored and said so once.
  bool kernel_has_slices = true;

  const Stats& stats() const { return stats_; }
  Stats& mutableStats() { return stats_; }
  const policy::Policy& policy() const { return policy_; }
  size_t managedProcesses() const { return processes_.size(); }
  size_t managedThreads() const { return threads_.size(); }
  std::string status() const;  // one line for sd_notify STATUS= and logs
  // Every class group in use under the current policy, with its thread count.
  std::vector<ClassGroupCount> classGroups() const;

 private:
  struct Process {
    uint64_t start_time = 0;
    std::string worker;
    std::string base;  // where its class groups hang: ClassTree::v1Base or v2Base
    bool child = false;  // a child process of a worker process: process rules apply
    policy::ProcessFacts facts;
    UniqueFd pidfd;  // keeps naming this process across PID reuse
    int num_threads = 0;  // as the last rescan's stat read it (0: not read yet)
    std::string why;  // how it came to its worker, for `explain`
    pid_t parent = 0;  // a child process's parent, managed when it was found
  };
  struct Unmatched {
    uint64_t start_time = 0;
    policy::SilentFacts watch;  // what the rescan re-reads; usually nothing
    policy::ProcessFacts facts;  // kept only while watched
    uint32_t rechecks = 0;  // rescans since it is no longer young
  };
  struct Thread {
    pid_t tgid = 0;
    uint64_t start_time = 0;
    std::optional<std::string> requested_class;
    policy::Decision decision;
    std::string class_group;  // "<base>/<class>" of the decision, kept with it (hot in the poll)
    const policy::ClassSpec* spec = nullptr;  // the decision's class under the current policy
    std::optional<std::string> applied_group;
    uint64_t created_ns = 0;  // fork event time, until placed
    bool realtime_reported = false;
    uint64_t switches_at_boost = 0;  // voluntary context switches when its boost started
    // As of its last reconcile: its name and the scheduling it was given (or had right). A
    // periodic full rescan compares one stat read with these (drifted()).
    std::string comm;
    int policy = -1;
    int nice = 0;
    int priority = 0;
    bool realtime_ours = false;  // we made it SCHED_RR (a realtime class): ours to change back
    bool slice_ours = false;     // we gave it its class's custom slice: ours to reset
    bool sched_drifted = false;  // someone else changed its policy or nice: counted once put back
  };

  // The base for a new process of `worker`: on v2 inside its delegated cgroup, which becomes the
  // process's home (enterBase). Errors say why the process is left alone and how to fix it.
  Result<std::string> prepareBase(pid_t pid, const std::string& worker, const policy::ProcessFacts& facts);
  // Matches a process not managed yet (a child of a managed one is the parent's worker's);
  // `why` says what made it look again, for the log and `explain`.
  void considerProcess(pid_t pid, std::string_view why = {});
  std::string matchedWhy(const policy::WorkerSpec& worker, std::string_view why) const;
  // The container's names and annotations, where a worker matches by them (policy::needsContainerMeta).
  void addContainerMeta(policy::ProcessFacts& facts);
  void renamedProcess(pid_t pid, const std::string& comm);  // its main thread's COMM event
  // Periodic: re-reads the command line and cgroup where a change could match a worker or
  // reclassify a child process (no kernel event reports those changes).
  void recheckSilentFacts();
  bool readsTitle(const Process& p) const;  // its worker's process rules read a child's title
  bool retitled(pid_t pid, Process& p);      // re-reads the title; whether it changed (threads marked)
  // The worker's spec: from the policy, or a registration.
  const policy::WorkerSpec* workerSpec(const std::string& name) const;
  // Finds tid among managed threads, looking at its process first if events have not yet.
  Thread* managedThread(pid_t tid);
  Result<void> addProcess(pid_t pid, uint64_t start_time, std::string worker, bool child, policy::ProcessFacts facts,
                          std::string why);
  void forgetProcess(pid_t pid);
  void releaseProcess(pid_t pid);  // restore its threads, then forget it
  void markThreadsDirty(pid_t pid);
  // Threads new, unplaced, or not in their placed group; with `check_drift` also those whose
  // name, scheduling or accounting group changed since their last reconcile.
  void markChangedThreadsDirty(bool check_drift);
  bool drifted(pid_t tid, Thread& t);  // its stat differs from its last reconcile (or is unreadable)
  void reconcile();
  void recordOriginal(pid_t tid, pid_t tgid, const cgroups::ThreadFacts& facts);
  std::optional<Nanos> sliceFor(const policy::ClassSpec& spec, const Thread& t, bool realtime);
  void setScheduling(const std::vector<Action>& actions);
  void placeBatch(const std::string& group, const std::string& accounting_class, const std::vector<pid_t>& tids,
                  cgroups::CpuSettings settings);
  const policy::ClassSpec* classOf(const Thread& t) const { return t.spec; }
  const std::string& classGroupOf(const Thread& t) const { return t.class_group; }  // "<base>/<class>"
  void endBoost(pid_t tid, Nanos now);
  bool sleptSinceBoost(pid_t tid) const;
  void refreshBoostable();    // boostable_ and boosts_move_, when stale
  // Adds idle threads of class groups with CPU pressure to look_; whether any group waited lately.
  bool sweepIdle(Nanos now);
  uint64_t quietPolls(const std::string& group, bool every_poll);  // PSI gate: polls since it grew
  void keepMovesFast();
  // PSI some total of a class group ("<base>/<class>"), its cpu.pressure kept open.
  std::optional<std::chrono::microseconds> pressureOf(const std::string& group);
  void squeezeIdleGroups(Nanos now);
  void guardRealtime(Nanos now);
  Result<LiveSample> sample(cgroups::ThreadProbe& probe, pid_t tid, Nanos now, double starved_below);
  bool lookAt(pid_t tid, Nanos now);  // one starvation look; whether a boost started or ended
  void boostStarted(pid_t tid, Thread& t);  // counters aside: signal, baseline, placement
  void forgetBoostState(pid_t tid);  // the thread exited
  void finishBoost(const EndedBoost& e);
  void restoreThread(pid_t tid);
  void restoreForeign(pid_t tid);  // a thread in our groups that we do not manage
  void restoreLeftovers();
  void tryRemoveGroups(const std::string& base);  // once no managed process uses the base
  void countFailure(const Error& e, std::string_view what);
  void saveOriginals();

  policy::Policy policy_;
  cgroups::ClassTree tree_;
  cgroups::ProcFs proc_;
  ContainerMetadata containers_;
  StateFile state_;
  Logger& log_;
  Stats stats_;

  std::map<pid_t, Process> processes_;
  std::map<pid_t, Thread> threads_;
  Originals originals_;
  bool originals_dirty_ = false;
  std::map<pid_t, Unmatched> unmatched_;  // processes no worker matched
  std::map<pid_t, Nanos> new_children_;    // pid -> until when its title is re-read at each poll
  std::map<pid_t, pid_t> dirty_;         // tid -> tgid, to classify and place
  std::set<std::string> ensured_;        // groups created and configured under this policy
  std::set<std::string> pending_removal_;  // bases whose groups still hold exiting threads
  std::map<std::string, std::string> bases_;  // base -> worker, for every base with groups
  std::map<pid_t, LeftAlone> left_alone_;  // worker processes we may not touch (v2, not delegated)

  BoostBook book_;
  StarvationDetector detector_;
  std::map<pid_t, cgroups::ThreadProbe> probes_;
  std::map<pid_t, std::set<pid_t>> waiters_;  // holder -> threads that reported waiting on it
  std::set<pid_t> pinned_;                     // operator boosts: they last their whole window
  std::map<std::string, policy::WorkerSpec> registered_;  // workers that registered over D-Bus
  std::map<std::string, BoostCounters> boost_counters_;  // by class group
  struct PressureSeen {
    uint64_t total = 0;    // PSI some total (us) at the last read
    uint64_t read_at = 0;  // in polls_
    uint64_t grew_at = 0;  // the read that saw it grow last
  };
  std::map<std::string, PressureSeen> pressure_seen_;  // boostable class group -> its gate
  std::map<std::string, cgroups::KeptFile> pressure_files_;  // class group -> its cpu.pressure
  std::set<pid_t> hot_;              // runnable (or running) at their last look: looked at every poll
  std::map<pid_t, Nanos> recheck_;   // tid -> when to judge it again (it woke and ran a little)
  std::map<std::string, std::vector<pid_t>> boostable_;  // class group -> its threads, for the sweep
  bool boostable_stale_ = true;      // rebuilt from threads_ when classes or threads changed
  bool boosts_move_ = false;         // some boostable thread's class has a group of its own
  bool moves_fast_failed_ = false;   // keepMovesFast failed once: warned, not tried again
  std::optional<Nanos> last_report_;  // the last wait report: keeps moves fast a while
  bool slice_ignored_said_ = false;  // "no custom slices on this kernel", said once
  // Threads per class group for classGroups(), counted again when the version moved on (a thread
  // placed for the first time, reclassified or forgotten).
  uint64_t placements_version_ = 1;
  mutable uint64_t class_counts_version_ = 0;
  mutable std::map<std::string, uint64_t> class_counts_;
  std::optional<cgroups::MoveKeeper> move_keeper_;  // opened at the first keepMovesFast
  struct Sweep {
    pid_t cursor = 0;  // where the group's next sweep starts
    size_t group_size = 0;
    SweepPace pace;
  };
  std::map<std::string, Sweep> sweeps_;  // by class group
  std::vector<std::pair<Sweep*, pid_t>> swept_;  // this poll's sweep picks, for the pace
  Nanos next_full_poll_{};
  uint64_t polls_ = 0;               // full polls so far: the PSI gates' clock
  std::vector<pid_t> look_;          // the threads of one poll (kept: no allocation per poll)
  struct Reading {
    Nanos total;  // of a counter: PSI some total, CPU time
    Nanos at;
  };
  std::map<std::string, Reading> busy_pressure_seen_;  // non-idle class group -> last read
  std::set<std::string> squeezed_;   // idle class groups capped now
  Nanos next_squeeze_check_{};       // squeezeIdleGroups judges one window at a time
  bool squeeze_failed_ = false;      // warned once
  // The guard of realtime classes: each group's CPU time at the last window, and the groups that
  // ran over their limit and run fair for now.
  std::map<std::string, Reading> realtime_usage_seen_;
  std::set<std::string> realtime_held_back_;
  std::set<std::string> realtime_limit_logged_;
  Nanos next_realtime_check_{};
  uint64_t light_rescans_ = 0;       // periodic rescans, for the full one every kFullRescanEvery
};

}  // namespace cpuclass::daemon
