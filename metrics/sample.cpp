#include "metrics/sample.h"

#include <algorithm>

namespace cpuclass::metrics {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++counts_[static_cast<size_t>(it - bounds_.begin())];
  sum_ += value;
  ++count_;
}

std::vector<ClassSeries> aggregateWorkers(const std::vector<ClassSeries>& series, bool per_worker) {
  std::map<std::pair<std::string, std::string>, ClassSeries> by_class;
  for (const auto& s : series) {
    auto& a = by_class[{per_worker ? s.worker : std::string(), s.cls}];
    if (per_worker) a.worker = s.worker;
    a.cls = s.cls;
    a.threads += s.threads;
    a.starvation_events += s.starvation_events;
    a.boosts_started += s.boosts_started;
    a.boosts_refused += s.boosts_refused;
    a.boosted_seconds += s.boosted_seconds;
    if (s.cpu_seconds) a.cpu_seconds = a.cpu_seconds.value_or(0) + *s.cpu_seconds;
    if (s.pressure_seconds) a.pressure_seconds = a.pressure_seconds.value_or(0) + *s.pressure_seconds;
  }
  std::vector<ClassSeries> out;
  for (auto& [cls, a] : by_class) out.push_back(std::move(a));
  return out;
}

}  // namespace cpuclass::metrics
