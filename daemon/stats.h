// What the daemon counts: the counters status and /metrics report, and the errno naming of failures.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "metrics/sample.h"

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

// Counts a failure by its errno name (e.g. "EACCES").
void countFailure(Stats& stats, const Error& e);

}  // namespace cpuclass::daemon
