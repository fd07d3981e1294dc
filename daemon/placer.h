// Placement: the class groups, the threads' origins (with the state file that keeps them across
// a crash), placing threads in their groups and putting them back. The only daemon code that
// writes to cgroups and threads' scheduling: through the ClassTree (which a test builds on a fake
// tree) and the Scheduler (which a test replaces with a record).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cgroups/class_tree.h"
#include "cgroups/proc_fs.h"
#include "cgroups/sched.h"
#include "daemon/log.h"
#include "daemon/model.h"
#include "daemon/state_file.h"
#include "daemon/stats.h"
#include "decide/planner.h"

namespace cpuclass::daemon {

// Threads' scheduling in the kernel: sched_setattr(2) in the daemon.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual Result<cgroups::Outcome> set(pid_t tid, const cgroups::ThreadSched& sched, bool realtime_ours) = 0;
  virtual Result<Nanos> customSlice(pid_t tid) = 0;
};

class KernelScheduler final : public Scheduler {
 public:
  Result<cgroups::Outcome> set(pid_t tid, const cgroups::ThreadSched& sched, bool realtime_ours) override {
    return cgroups::setThreadSched(tid, sched, realtime_ours);
  }
  Result<Nanos> customSlice(pid_t tid) override { return cgroups::readCustomSlice(tid); }
};

class Placer {
 public:
  Placer(cgroups::ClassTree tree, const cgroups::ProcFs& proc, StateFile state, Scheduler& sched, const Clock& clock,
         Stats& stats, Logger& log);

  // Loads the originals an earlier run saved.
  void loadOriginals();
  // The base for a new process of `worker`: on v2 inside its delegated cgroup, which becomes the
  // process's home (enterBase). Errors say why the process is left alone and how to fix it.
  Result<std::string> baseFor(pid_t pid, const std::string& worker, const policy::ProcessFacts& facts,
                              const std::string& prefix);
  // v2: asked when the delegation xattr is not visible (trusted.* needs CAP_SYS_ADMIN): whether
  // the unit of `pid` delegates its cgroup, answered later through `done` (systemd over D-Bus).
  // Meanwhile the process is left alone (EAGAIN); `on_unit_answer` hears of the answer, which
  // baseFor then uses for the processes of that cgroup. Unset: the xattr alone decides.
  using UnitAnswer = std::function<void(Result<bool>)>;
  std::function<void(pid_t pid, UnitAnswer done)> ask_unit_delegates;
  std::function<void(const std::string& delegation_point)> on_unit_answer;
  // Answers used by the processes that waited for them: a later process asks again.
  void forgetUnitAnswer(const std::string& point) { unit_answers_.erase(point); }

  // A thread read for reconcile: its origin recorded at first sight, then what it is now
  // against its target (where it was born in its target group, it counts as placed).
  decide::PlanItem observe(pid_t tid, Thread& t, const Registry& reg, const cgroups::ThreadFacts& facts,
                           decide::ThreadTarget target);
  // Carries a plan out: scheduling due first, then moves (one batch per group), then the rest.
  void apply(const decide::Plan& plan, const std::map<std::string, decide::GroupSettings>& settings, Registry& reg);

  // Threads to reconcile after a periodic rescan: new, unplaced, or not in their placed group;
  // with `check_drift` also those whose name, scheduling or accounting group changed.
  // `stat` reads a thread's stat (the booster's probes have many open).
  void markOutOfPlace(Registry& reg, bool check_drift,
                      const std::function<Result<cgroups::ThreadStat>(pid_t tgid, pid_t tid)>& stat);

  void restoreThread(pid_t tid, const Registry& reg);
  // At start: threads in our groups that no managed process owns go back; groups of workers
  // without processes go.
  void restoreLeftovers(const Registry& reg, const std::string& prefix);
  // Removes the groups of `base` once no managed process uses it (retried while threads exit).
  void tryRemoveGroups(const std::string& base, const Registry& reg);
  void retryRemovals(const Registry& reg);
  // Reload: class settings rewritten in place on groups whose class stays (`before`), and the
  // groups of classes that went removed (`after`, once the rescan placed every thread).
  std::set<ClassGroup> beginReload(const policy::Policy& policy);
  void endReload(const std::set<ClassGroup>& old_groups);
  // Stop (on_stop: restore): every thread back, every group removed, the state file too.
  void restoreAll(const Registry& reg, const std::string& prefix);
  void forget(pid_t tid) { originals_dirty_ |= originals_.erase(tid) > 0; }
  void saveOriginals();

  const std::set<ClassGroup>& ensured() const { return ensured_; }
  // Groups (re)configured since last asked: ensureClass lifted any cap on them.
  std::set<ClassGroup> takeReconfigured() { return std::exchange(reconfigured_, {}); }
  // The worker whose groups hang at `base`; nullptr for none.
  const std::string* ownerOf(const std::string& base) const;
  const cgroups::ClassTree& tree() const { return tree_; }
  // PSI some total of a class group, its cpu.pressure kept open; nullopt without PSI (v1).
  std::optional<Nanos> pressure(const ClassGroup& group);
  Result<void> setCpuQuota(const ClassGroup& group, std::optional<std::chrono::microseconds> quota);
  // Keeps the calling thread's cgroup moves fast (an RCU grace period otherwise): false once
  // that failed, warned once.
  void keepMovesFast();

 private:
  // systemd's answer for a delegation point, asked for once; nullopt while asked.
  std::optional<Result<bool>> unitAnswer(pid_t pid, const std::string& point);
  void recordOriginal(pid_t tid, pid_t tgid, const Registry& reg, const cgroups::ThreadFacts& facts);
  void setScheduling(const std::vector<decide::Action>& actions, Registry& reg);
  void placeBatch(const ClassGroup& group, const std::string& accounting_class, const std::vector<pid_t>& tids,
                  decide::GroupSettings settings, Registry& reg);
  Result<void> ensure(const ClassGroup& g, bool control, decide::GroupSettings settings);
  void restoreForeign(pid_t tid);
  void countFailure(const Error& e, std::string_view what);

  cgroups::ClassTree tree_;
  const cgroups::ProcFs& proc_;
  StateFile state_;
  Scheduler& sched_;
  const Clock& clock_;
  Stats& stats_;
  Logger& log_;
  Originals originals_;
  bool originals_dirty_ = false;
  std::set<ClassGroup> ensured_;           // groups created and configured under this policy
  std::set<ClassGroup> reconfigured_;      // for takeReconfigured
  std::set<std::string> pending_removal_;  // bases whose groups still hold exiting threads
  std::map<std::string, std::string> bases_;  // base -> worker, for every base with groups
  std::map<ClassGroup, cgroups::KeptFile> pressure_files_;
  std::map<std::string, Result<bool>> unit_answers_;  // delegation point -> systemd's answer
  std::set<std::string> unit_asked_;                  // delegation points asked, not answered yet
  bool asking_now_ = false;                           // inside ask_unit_delegates
  std::optional<cgroups::MoveKeeper> move_keeper_;  // opened at the first keepMovesFast
  bool moves_fast_failed_ = false;
};

}  // namespace cpuclass::daemon
