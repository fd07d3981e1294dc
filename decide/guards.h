// Pure decisions of the guards (daemon/guards.cpp reads the counters and writes the caps):
// whether idle class groups are squeezed, whether a realtime class ran over its limit.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cpuclass::decide {

using Nanos = std::chrono::nanoseconds;

// Growth rates of counters in nanoseconds (PSI totals, CPU time) per nanosecond of the clock,
// between one reading of each and the next.
class Rates {
 public:
  // The rate since the last reading of `key`; nullopt at the first (a baseline) or when the clock
  // did not move.
  std::optional<double> next(const std::string& key, Nanos total, Nanos now);
  // Forgets the counters whose key `keep` says no to (groups gone).
  template <typename Keep>
  void keepOnly(Keep keep) {
    std::erase_if(readings_, [&](const auto& e) { return !keep(e.first); });
  }

 private:
  struct Reading {
    Nanos total;
    Nanos at;
  };
  std::map<std::string, Reading> readings_;
};

// Offload only on idle CPU (docs/boosting.md, "Round 4"): idle groups are capped for the next
// window once any busy class group waited for CPU (its PSI some) a quarter of the last window
// or more. `busy_wait_rates`: each busy group's PSI growth over the window.
bool squeezeIdleGroups(const std::vector<double>& busy_wait_rates);

// A realtime class group ran over its limit: it used more than `limit` of all `cpus` CPUs over
// the window its CPU-time growth rate `cpu_rate` was measured in.
bool overRealtimeLimit(double cpu_rate, double cpus, double limit);

}  // namespace cpuclass::decide
