// Boosts (DESIGN.md §6): all their state, the starvation poll's looks at offload threads, and
// one request path for the three ways a boost is asked for (detected starvation, a reported
// wait, an operator). Decisions are decide/'s (StarvationDetector, BoostBook, SweepPace); this
// reads the threads and marks the ones whose placement changes for reconcile.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "cgroups/proc_fs.h"
#include "cgroups/thread_probe.h"
#include "daemon/log.h"
#include "daemon/model.h"
#include "daemon/placer.h"
#include "daemon/stats.h"
#include "decide/starvation.h"

namespace cpuclass::daemon {

class Booster {
 public:
  Booster(const policy::Policy& policy, Registry& reg, const cgroups::ProcFs& proc, Placer& placer, Logger& log);

  // Whether the next poll at `now` is a full one (every starvation_poll; else rechecks only).
  bool fullPollDue(Nanos now) const { return now >= next_full_poll_; }
  // One poll: ends expired boosts, looks at hot, boosted, swept and due threads, boosts the
  // starving within budget. `squeezing`: idle groups are capped now (the poll keeps its pace).
  struct Poll {
    bool changed = false;  // a boost started or ended
    Nanos next{};
  };
  Poll poll(Nanos now, bool squeezing);
  // Whether the poll has anything to watch.
  bool hasWork() const;

  // A boost asked for: `explicit_wait` for a reported wait or an operator (no cooldown, and the
  // wait's nice), `pin` to last the whole window (an operator's). Counted in tid's class group;
  // tid is marked for reconcile where its placement changes.
  BoostVerdict request(pid_t tid, Nanos now, decide::BoostLimits limits, bool explicit_wait, bool pin = false);
  static decide::BoostLimits limitsOf(const policy::BoostSpec& b);
  // Thread `waiter` now waits on `holder` (both managed, holder's class boostable).
  BoostVerdict reportWait(pid_t waiter, pid_t holder, Nanos now);
  // The wait ended (ENOENT: it was not reported); the holder's boost ends with its last waiter.
  Result<void> endWait(pid_t waiter, pid_t holder, Nanos now);
  void end(pid_t tid, Nanos now);
  void endAll(Nanos now);
  void forget(pid_t tid, Nanos now);  // the thread is gone
  void reclassified() { boostable_stale_ = true; }

  // A thread's stat, through its probe where it has one open (a pread, no open).
  Result<cgroups::ThreadStat> stat(pid_t tgid, pid_t tid);
  bool boosted(pid_t tid) const { return book_.boosted(tid); }
  bool explicitWait(pid_t tid) const { return book_.explicitWait(tid); }
  const std::map<ClassGroup, BoostCounters>& counters() const { return counters_; }
  std::function<void(pid_t tid, bool started)> on_boost;

 private:
  struct Sweep {
    pid_t cursor = 0;  // where the group's next sweep starts
    size_t group_size = 0;
    decide::SweepPace pace;
  };
  struct PressureSeen {
    uint64_t total = 0;    // PSI some total (us) at the last read
    uint64_t read_at = 0;  // in polls_
    uint64_t grew_at = 0;  // the read that saw it grow last
  };

  void finish(const decide::EndedBoost& e);
  bool sleptSinceBoost(pid_t tid) const;
  void refreshBoostable();  // boostable_ and boosts_move_, when stale
  // Adds idle threads of class groups with CPU pressure to look_; whether any group waited lately.
  bool sweepIdle(Nanos now);
  uint64_t quietPolls(const ClassGroup& group, bool every_poll);  // PSI gate: polls since it grew
  Result<decide::LiveSample> sample(cgroups::ThreadProbe& probe, pid_t tid, Nanos now, double starved_below);
  bool lookAt(pid_t tid, Nanos now);  // one starvation look; whether a boost started or ended

  const policy::Policy& policy_;
  Registry& reg_;
  const cgroups::ProcFs& proc_;
  Placer& placer_;
  Logger& log_;

  decide::BoostBook book_;
  decide::StarvationDetector detector_;
  std::map<pid_t, cgroups::ThreadProbe> probes_;
  std::map<pid_t, std::set<pid_t>> waiters_;  // holder -> threads that reported waiting on it
  std::set<pid_t> pinned_;                     // operator boosts: they last their whole window
  std::map<pid_t, uint64_t> switches_at_boost_;  // voluntary context switches when its boost started
  std::map<ClassGroup, BoostCounters> counters_;
  std::map<ClassGroup, PressureSeen> pressure_seen_;  // boostable class group -> its gate
  std::set<pid_t> hot_;              // runnable (or running) at their last look: looked at every poll
  std::map<pid_t, Nanos> recheck_;   // tid -> when to judge it again (it woke and ran a little)
  std::map<ClassGroup, std::vector<pid_t>> boostable_;  // class group -> its threads, for the sweep
  bool boostable_stale_ = true;      // rebuilt from the registry when classes or threads changed
  bool boosts_move_ = false;         // some boostable thread's class has a group of its own
  std::optional<Nanos> last_report_;  // the last wait report: keeps moves fast a while
  std::map<ClassGroup, Sweep> sweeps_;
  std::vector<std::pair<Sweep*, pid_t>> swept_;  // this poll's sweep picks, for the pace
  Nanos next_full_poll_{};
  uint64_t polls_ = 0;               // full polls so far: the PSI gates' clock
  std::vector<pid_t> look_;          // the threads of one poll (kept: no allocation per poll)
};

}  // namespace cpuclass::daemon
