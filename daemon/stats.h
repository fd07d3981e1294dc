// What the daemon counts: the counters status and /metrics report, and the errno naming of failures.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "metrics/sample.h"

namespace cpuclass::daemon {

// Counters only grow; they are what metrics and status report (metrics::Counters), and the
// sample of placement latencies SIGUSR1 reports and restarts (microseconds).
struct Stats : metrics::Counters {
  std::vector<uint32_t> placement_latency_us;
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

// Counts a failure by its errno name (e.g. "EACCES").
void countFailure(Stats& stats, const Error& e);

}  // namespace cpuclass::daemon
