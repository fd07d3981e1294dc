#include "decide/starvation.h"

#include <algorithm>

namespace cpuclass::decide {

void SweepPace::looked(size_t group_size, bool runnable) {
  if (runnable) {
    per_poll_ = kFastest;
    looked_in_round_ = 0;
    return;
  }
  if (++looked_in_round_ < group_size) return;
  per_poll_ = std::max(kSlowest, per_poll_ / 2);  // a whole round found nothing
  looked_in_round_ = 0;
}

bool StarvationDetector::ranLittle(const Previous& p, Nanos now, uint64_t runtime_ns, double starved_below) {
  const double elapsed = static_cast<double>((now - p.at).count());
  return static_cast<double>(runtime_ns - p.runtime_ns) < starved_below * elapsed;
}

Look StarvationDetector::observe(pid_t tid, Nanos now, LiveSample sample, double starved_below) {
  auto [it, first] = previous_.try_emplace(tid);
  Previous& p = it->second;
  const Previous before = p;
  p.state = sample.state;
  if (!sample.has_runtime) return Look::kFine;  // asleep and not measured: the baseline stays
  p.at = now;
  p.runtime_ns = sample.runtime_ns;
  p.has_runtime = true;
  // No baseline (or a reused TID, whose runtime starts again): judge a runnable thread soon.
  if (first || !before.has_runtime || now <= before.at || sample.runtime_ns < before.runtime_ns) {
    return sample.state == 'R' ? Look::kRecheck : Look::kFine;
  }
  if (sample.state != 'R') return Look::kFine;
  if (ranLittle(before, now, sample.runtime_ns, starved_below)) return Look::kStarving;
  const bool woke_since = before.state != 'R' && before.state != '?';
  return woke_since ? Look::kRecheck : Look::kFine;
}

std::optional<char> StarvationDetector::impliedState(pid_t tid, Nanos now, uint64_t runtime_ns,
                                                     double starved_below) const {
  const auto it = previous_.find(tid);
  if (it == previous_.end() || !it->second.has_runtime || now <= it->second.at ||
      runtime_ns < it->second.runtime_ns) {
    return std::nullopt;
  }
  const Previous& p = it->second;
  if (p.state == 'R' && runtime_ns == p.runtime_ns) return 'R';
  if ((p.state == 'R' || p.state == '?') && !ranLittle(p, now, runtime_ns, starved_below)) return '?';
  return std::nullopt;
}

bool refused(BoostVerdict v) {
  return v == BoostVerdict::kWorkerBudget || v == BoostVerdict::kTotalBudget || v == BoostVerdict::kRateLimited;
}

size_t BoostBook::activeFor(const std::string& worker) const {
  return static_cast<size_t>(
      std::count_if(active_.begin(), active_.end(), [&](const auto& a) { return a.second.worker == worker; }));
}

std::vector<pid_t> BoostBook::boostedThreads() const {
  std::vector<pid_t> out;
  for (const auto& [tid, a] : active_) out.push_back(tid);
  return out;
}

BoostVerdict BoostBook::request(pid_t tid, const std::string& worker, Nanos now, const BoostLimits& limits,
                                bool explicit_wait, const std::function<bool(pid_t)>& slept) {
  if (const auto it = active_.find(tid); it != active_.end()) {
    it->second.deadline = std::max(it->second.deadline, now + limits.window);
    it->second.explicit_wait |= explicit_wait;
    return BoostVerdict::kAlreadyBoosted;
  }
  if (const auto it = cooldowns_.find(tid); it != cooldowns_.end() && !explicit_wait) {
    Cooldown& c = it->second;
    if (now < c.until) return BoostVerdict::kCoolingDown;
    if (c.never_slept && !(slept && slept(tid))) {
      c.until = now + std::max(limits.max_cooldown, limits.cooldown);  // asked again after that
      return BoostVerdict::kCoolingDown;
    }
    c.never_slept = false;
  }
  if (activeFor(worker) >= limits.max_per_worker) return BoostVerdict::kWorkerBudget;
  if (active_.size() >= limits.max_total) return BoostVerdict::kTotalBudget;
  while (!recent_starts_.empty() && recent_starts_.front() <= now - std::chrono::seconds(1)) recent_starts_.pop_front();
  if (recent_starts_.size() >= limits.max_per_second) return BoostVerdict::kRateLimited;
  recent_starts_.push_back(now);
  active_[tid] = {worker, now, now + limits.window, limits.cooldown, limits.max_cooldown, explicit_wait};
  return BoostVerdict::kStarted;
}

std::optional<EndedBoost> BoostBook::end(pid_t tid, Nanos now) {
  const auto it = active_.find(tid);
  if (it == active_.end()) return std::nullopt;
  EndedBoost e{tid, it->second.worker, now - it->second.started};
  active_.erase(it);
  cooldowns_.erase(tid);  // it slept (or its wait ended): it was no CPU hog
  return e;
}

std::vector<EndedBoost> BoostBook::expire(Nanos now, const std::function<bool(pid_t)>& slept) {
  std::vector<EndedBoost> out;
  for (auto it = active_.begin(); it != active_.end();) {
    const Active& a = it->second;
    if (a.deadline > now) {
      ++it;
      continue;
    }
    out.push_back({it->first, a.worker, now - a.started});
    if (slept && slept(it->first)) {
      cooldowns_.erase(it->first);
      it = active_.erase(it);
      continue;
    }
    auto& c = cooldowns_[it->first];
    const Nanos cool = c.next.count() == 0 ? a.cooldown : c.next;
    c.until = now + cool;
    c.next = std::min(cool * 2, std::max(a.max_cooldown, a.cooldown));
    c.never_slept = true;
    it = active_.erase(it);
  }
  return out;
}

}  // namespace cpuclass::decide
