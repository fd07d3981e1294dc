// What /metrics shows, as plain values: the daemon fills a Sample at scrape time and this module
// turns it into Prometheus families. Knows nothing of cgroups or the daemon.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cpuclass::metrics {

// Fixed buckets, counted by the daemon on its own thread and copied into a Sample.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  // per bucket, last is +Inf
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct ClassSeries {
  std::string worker;  // empty when workers are aggregated
  std::string cls;
  std::optional<double> cpu_seconds;       // from cgroup accounting; absent when unreadable
  std::optional<double> pressure_seconds;  // PSI "some" total of the class group, where the kernel has it
  uint64_t threads = 0;
  uint64_t starvation_events = 0;
  uint64_t boosts_started = 0;
  uint64_t boosts_refused = 0;
  double boosted_seconds = 0;
};

// What the daemon counts, as /metrics shows it. The daemon counts into one (daemon::Stats) and
// the publisher hands it over whole.
struct Counters {
  uint64_t placements = 0;          // threads placed in a class group
  uint64_t sched_changes = 0;       // sched_setattr calls that changed a thread
  uint64_t threads_gone = 0;        // threads that exited before the daemon could act (normal)
  uint64_t realtime_skipped = 0;    // RT threads left alone (counted once per thread)
  uint64_t realtime_held_back = 0;  // times a worker's realtime class ran over its limit and went fair
  uint64_t drift_corrections = 0;   // threads someone else moved or re-prioritised, put back
  uint64_t accounting_failures = 0;
  std::map<std::string, uint64_t> failures;      // errno name -> count
  std::map<std::string, uint64_t> bus_refusals;  // D-Bus error name (NotAuthorized, ...) -> count
  uint64_t proc_events = 0;
  uint64_t proc_events_lost = 0;  // ENOBUFS from the proc connector, each followed by a rescan
  uint64_t rescans = 0;
  uint64_t reloads = 0;
  uint64_t reload_failures = 0;
  double last_reload_success_seconds = 0;  // Unix time of the last good policy load
  Histogram reconcile_seconds{{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1}};
  // New threads: kernel fork timestamp to the end of their move.
  Histogram placement_latency_seconds{{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5}};
};

struct Sample : Counters {
  std::string version;
  std::string cgroup_mode;
  std::vector<std::pair<std::string, bool>> features;
  std::vector<ClassSeries> classes;
  uint64_t managed_threads = 0;
  uint64_t managed_processes = 0;
  std::map<std::string, uint64_t> left_alone;    // worker -> processes it may not manage (v2, not delegated)
};

// Sums series with the same worker and class (a worker can have class groups in several
// cgroups on v2), or, without `per_worker`, every worker's series of a class into one with an
// empty worker label.
std::vector<ClassSeries> aggregateWorkers(const std::vector<ClassSeries>& series, bool per_worker = false);

}  // namespace cpuclass::metrics
