#include "daemon/guards.h"

#include <unistd.h>

#include <algorithm>

namespace cpuclass::daemon {
namespace {
// The squeeze of idle class groups: the CPU they may use per period while a busy class group
// waits (the kernel's minimum quota), and the window it is judged over.
constexpr std::chrono::microseconds kSqueezeQuota{1000};
constexpr Nanos kSqueezeWindow = std::chrono::milliseconds(100);
// The guard of realtime classes judges their CPU time over windows this long.
constexpr Nanos kRealtimeWindow = std::chrono::milliseconds(100);
}  // namespace

Guards::Guards(const policy::Policy& policy, Registry& reg, Placer& placer, Stats& stats, Logger& log)
    : policy_(policy), reg_(reg), placer_(placer), stats_(stats), log_(log) {}

void Guards::check(Nanos now) {
  squeezeIdleGroups(now);
  guardRealtime(now);
}

bool Guards::hasWork() const {
  const auto& groups = placer_.ensured();
  return std::any_of(groups.begin(), groups.end(), [&](const ClassGroup& group) {
    const auto* spec = policy_.findClass(group.cls);
    return spec != nullptr && ((spec->idle && spec->squeeze && spec->run_in.empty()) || spec->realtime > 0);
  });
}

// Offload only on idle CPU. A SCHED_IDLE thread in a cpu.idle group still runs whenever its CPU
// has nothing else queued, and the load balancer, counting a heavy foreground group as load,
// leaves background threads queued on the other CPU: bulk offload took 5-25% of a machine whose
// background threads were waiting (docs/boosting.md, "Round 4"). So in every kSqueezeWindow in
// which a busy (non-idle) class group waited for CPU (decide::squeezeIdleGroups), idle groups
// are capped to kSqueezeQuota per period for the next window: their CPU goes really idle and the
// balancer pulls a waiting thread over at once. Boosted threads are in _boost, outside the cap.
// No PSI, no squeeze.
void Guards::squeezeIdleGroups(Nanos now) {
  if (now < next_squeeze_check_) return;
  next_squeeze_check_ = now + kSqueezeWindow;
  for (const auto& g : placer_.takeReconfigured()) squeezed_.erase(g);  // ensureClass lifted its cap
  const auto& ensured = placer_.ensured();
  std::vector<double> busy_waits;
  std::vector<ClassGroup> idle_groups;
  for (const auto& group : ensured) {
    const auto* spec = policy_.findClass(group.cls);
    if (spec == nullptr || !spec->run_in.empty()) continue;  // _boost, or an accounting group only
    if (spec->idle) {
      if (spec->squeeze) idle_groups.push_back(group);
      continue;
    }
    if (const auto psi = placer_.pressure(group)) {
      if (const auto rate = busy_pressure_.next(group.path(), *psi, now)) busy_waits.push_back(*rate);
    }
  }
  busy_pressure_.keepOnly([&](const std::string& path) { return ensured.contains(ClassGroup::of(path)); });
  std::erase_if(squeezed_, [&](const ClassGroup& g) { return !ensured.contains(g); });
  const bool waited = decide::squeezeIdleGroups(busy_waits);
  for (const auto& group : idle_groups) {
    if (squeezed_.contains(group) == waited) continue;
    if (auto r = placer_.setCpuQuota(group, waited ? std::optional(kSqueezeQuota) : std::nullopt); !r) {
      if (!std::exchange(squeeze_failed_, true)) {
        log_.warning("cannot squeeze {} (logged once): {}", group.path(), r.error().message);
      }
      continue;
    }
    if (waited) {
      squeezed_.insert(group);
    } else {
      squeezed_.erase(group);
    }
  }
}

// A realtime class runs ahead of every fair thread on the host, the daemon's own included; the
// kernel's own limit (sched_rt_runtime_us) still leaves fair threads only 5%. So a worker's
// realtime class group that used more than its realtime_limit of all CPUs in a kRealtimeWindow
// runs fair (its class's sched, nice and weight) from then on, until a window under the limit.
// Light request work keeps the real-time wake-ups; a busy class cannot hold the machine.
void Guards::guardRealtime(Nanos now) {
  if (now < next_realtime_check_) return;
  next_realtime_check_ = now + kRealtimeWindow;
  static const double cpus = static_cast<double>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  const auto& ensured = placer_.ensured();
  std::set<ClassGroup> changed;
  for (const auto& group : ensured) {
    const auto* spec = policy_.findClass(group.cls);
    if (spec == nullptr || spec->realtime == 0) continue;
    const auto usage = placer_.tree().usage(group.base, group.cls);
    if (!usage) continue;  // gone with its worker; ensured forgets it
    const auto rate = realtime_usage_.next(group.path(), *usage, now);
    if (!rate) continue;
    const bool over = decide::overRealtimeLimit(*rate, cpus, spec->realtime_limit);
    if (over == realtime_held_back_.contains(group)) continue;
    // Said once per group at info (a class near its limit switches often), then at debug.
    const bool first_time = realtime_limit_logged_.insert(group).second;
    if (over) {
      realtime_held_back_.insert(group);
      ++stats_.realtime_held_back;
      log_.log(first_time ? LogLevel::kInfo : LogLevel::kDebug,
               "{} used {:.0f}% of the CPUs, over its realtime_limit: fair scheduling until a window under it",
               group.path(), *rate / cpus * 100);
    } else {
      realtime_held_back_.erase(group);
      log_.debug("{} is under its realtime_limit again: real-time", group.path());
    }
    changed.insert(group);
  }
  realtime_usage_.keepOnly([&](const std::string& path) { return ensured.contains(ClassGroup::of(path)); });
  std::erase_if(realtime_held_back_, [&](const ClassGroup& g) { return !ensured.contains(g); });
  std::erase_if(realtime_limit_logged_, [&](const ClassGroup& g) { return !ensured.contains(g); });
  if (changed.empty()) return;
  for (const auto& [tid, t] : reg_.threads) {
    if (changed.contains(t.group)) reg_.markDirty(tid, t.tgid);
  }
}

void Guards::releaseAll() {
  for (const auto& group : squeezed_) (void)placer_.setCpuQuota(group, std::nullopt);
  squeezed_.clear();
  for (const auto& [tid, t] : reg_.threads) {
    if (t.spec == nullptr || t.spec->realtime == 0) continue;
    realtime_held_back_.insert(t.group);
    reg_.markDirty(tid, t.tgid);
  }
}

}  // namespace cpuclass::daemon
