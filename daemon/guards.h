// The guards of the host against the classes: the squeeze of idle class groups while a busy one
// waits, and the guard of realtime classes. Their decisions are decide/guards.h's; this reads
// the class groups' PSI and CPU time and writes the caps through the Placer.
#pragma once

#include <set>

#include "daemon/log.h"
#include "daemon/model.h"
#include "daemon/placer.h"
#include "daemon/stats.h"
#include "decide/guards.h"

namespace cpuclass::daemon {

class Guards {
 public:
  Guards(const policy::Policy& policy, Registry& reg, Placer& placer, Stats& stats, Logger& log);

  // At each full starvation poll; each guard judges one window at a time.
  void check(Nanos now);
  bool squeezing() const { return !squeezed_.empty(); }
  bool heldBack(const ClassGroup& group) const { return realtime_held_back_.contains(group); }
  // Whether any class group in use has a guard to run.
  bool hasWork() const;
  // Stop (on_stop: keep): no cap and no real-time outlives the daemon; realtime classes' threads
  // are marked to go fair.
  void releaseAll();

 private:
  void squeezeIdleGroups(Nanos now);
  void guardRealtime(Nanos now);

  const policy::Policy& policy_;
  Registry& reg_;
  Placer& placer_;
  Stats& stats_;
  Logger& log_;
  decide::Rates busy_pressure_;          // non-idle class group -> its PSI some total
  std::set<ClassGroup> squeezed_;        // idle class groups capped now
  Nanos next_squeeze_check_{};
  bool squeeze_failed_ = false;          // warned once
  decide::Rates realtime_usage_;         // realtime class group -> its CPU time
  std::set<ClassGroup> realtime_held_back_;
  std::set<ClassGroup> realtime_limit_logged_;
  Nanos next_realtime_check_{};
};

}  // namespace cpuclass::daemon
