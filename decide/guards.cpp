#include "decide/guards.h"

#include <algorithm>

namespace cpuclass::decide {
namespace {
// A busy group "waits" when its PSI some total grew by at least this fraction of a window: the
// short waits any wake-up costs do not count (judged per 10 ms poll, they squeezed offload off a
// half-idle machine).
constexpr double kSqueezeWaitShare = 0.25;
}  // namespace

std::optional<double> Rates::next(const std::string& key, Nanos total, Nanos now) {
  const auto [seen, first] = readings_.try_emplace(key, Reading{total, now});
  if (first || now <= seen->second.at) return std::nullopt;
  const double rate = static_cast<double>((total - seen->second.total).count()) /
                      static_cast<double>((now - seen->second.at).count());
  seen->second = {total, now};
  return rate;
}

bool squeezeIdleGroups(const std::vector<double>& busy_wait_rates) {
  return std::any_of(busy_wait_rates.begin(), busy_wait_rates.end(), [](double r) { return r >= kSqueezeWaitShare; });
}

bool overRealtimeLimit(double cpu_rate, double cpus, double limit) { return cpu_rate / cpus > limit; }

}  // namespace cpuclass::decide
