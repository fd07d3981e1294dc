#include "daemon/manager.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace cpuclass::daemon {
namespace {

// Every this many periodic rescans, every thread is read again; in between only changed ones.
constexpr uint64_t kFullRescanEvery = 5;

Scheduler& kernelScheduler() {
  static KernelScheduler sched;
  return sched;
}

const Clock& monotonicClock() {
  static const decide::MonotonicClock clock;
  return clock;
}

Result<void> notManaged(pid_t tid) { return fail(ESRCH, "thread " + std::to_string(tid) + " is not managed"); }

}  // namespace

Manager::Manager(policy::Policy policy, cgroups::ClassTree tree, cgroups::ProcFs proc, StateFile state, Logger& log,
                 Scheduler* sched, const Clock* clock)
    : policy_(std::move(policy)),
      proc_(std::move(proc)),
      log_(log),
      clock_(clock != nullptr ? *clock : monotonicClock()),
      placer_(std::move(tree), proc_, std::move(state), sched != nullptr ? *sched : kernelScheduler(), clock_, stats_, log),
      discovery_(policy_, proc_, clock_, stats_, log, *this),
      booster_(policy_, discovery_.registry(), proc_, placer_, log),
      guards_(policy_, discovery_.registry(), placer_, stats_, log) {
  booster_.on_boost = [this](pid_t tid, bool started) {
    if (on_boost) on_boost(tid, started);
  };
}

void Manager::setUnitDelegates(std::function<void(pid_t pid, Placer::UnitAnswer done)> ask) {
  placer_.ask_unit_delegates = std::move(ask);
  placer_.on_unit_answer = [this](const std::string& point) {
    discovery_.retryLeftAlone(
        [&](const LeftAlone& p) { return cgroups::ClassTree::delegationPointOf(p.cgroup) == point; });
    placer_.forgetUnitAnswer(point);
    reconcile();
  };
}

std::string Manager::status() const {
  uint64_t failures = 0;
  for (const auto& [k, v] : stats_.failures) failures += v;
  std::string line = fmt::format("{} workers' processes, {} threads managed; {} moves, {} gone, {} failures",
                                 reg().processes.size(), reg().threads.size(), stats_.placements, stats_.threads_gone, failures);
  if (const auto& left = leftAlone(); !left.empty()) {
    line += fmt::format("; {} worker processes left alone ({})", left.size(), left.begin()->second.reason);
  }
  return line;
}

std::vector<ClassGroupCount> Manager::classGroups() const {
  // Boosted threads count in their class: the boost group is a place, not a class. Counted again
  // only when a thread was placed, reclassified or forgotten: every publish (each boost's start
  // and end) walking 10,000 threads was 40% of the daemon's CPU (docs/boosting.md, "Round 10").
  if (class_counts_version_ != reg().placements_version) {
    class_counts_.clear();
    for (const auto& [tid, t] : reg().threads) {
      if (t.applied_group) ++class_counts_[t.group];
    }
    class_counts_version_ = reg().placements_version;
  }
  std::vector<ClassGroupCount> out;
  for (const auto& group : placer_.ensured()) {
    const auto* owner = placer_.ownerOf(group.base);
    if (group.cls == kBoostGroup || owner == nullptr) continue;
    const auto c = booster_.counters().find(group);
    out.push_back({*owner, group.cls, group.base, class_counts_[group],
                   c == booster_.counters().end() ? BoostCounters{} : c->second});
  }
  return out;
}

void Manager::start() {
  stats_.last_reload_success_seconds = static_cast<double>(::time(nullptr));
  placer_.loadOriginals();
  rescan();
  placer_.restoreLeftovers(reg(), policy_.daemon.cgroup_prefix);
}

Result<std::string> Manager::baseFor(pid_t pid, const std::string& worker, const policy::ProcessFacts& facts) {
  return placer_.baseFor(pid, worker, facts, policy_.daemon.cgroup_prefix);
}

void Manager::releasing(pid_t pid) {
  for (const auto& [tid, t] : reg().threads) {
    if (t.tgid == pid) placer_.restoreThread(tid, reg());
  }
}

void Manager::threadForgotten(pid_t tid) {
  booster_.forget(tid, clock_.now());
  placer_.forget(tid);
}

void Manager::baseUnused(const std::string& base) { placer_.tryRemoveGroups(base, reg()); }

void Manager::handleEvents(const std::vector<cgroups::ProcEvent>& events, bool lost) {
  discovery_.handleEvents(events);
  if (lost) {
    ++stats_.proc_events_lost;
    log_.notice("the kernel dropped proc connector events; rescanning /proc");
    discovery_.lookAgainAtUnmatched();
    rescan();
    return;
  }
  reconcile();
}

void Manager::rescan(bool full) {
  ++stats_.rescans;
  if (!discovery_.scanProcesses()) return;
  // A full rescan (start, reload, lost events) reconciles every thread again. A periodic one
  // reconciles only threads that are new, unplaced, or gone from the group they were placed in,
  // found with one read of each group's member list; every kFullRescanEvery-th also reads each
  // thread's stat for what no event reports (scheduling drift, a missed comm change) and the
  // accounting groups' member lists. Reconciling every thread cost the daemon ~2% of a core
  // at 2,000 threads every 2 s (docs/boosting.md, "Daemon CPU at scale").
  if (full) {
    discovery_.markAllDirty();
  } else {
    placer_.markOutOfPlace(reg(), ++light_rescans_ % kFullRescanEvery == 0,
                           [this](pid_t tgid, pid_t tid) { return booster_.stat(tgid, tid); });
  }
  placer_.retryRemovals(reg());
  reconcile();
}

void Manager::reconcile() {
  if (reg().dirty.empty()) return;
  const Nanos started = clock_.now();
  std::vector<decide::PlanItem> items;
  std::map<std::string, decide::GroupSettings> settings;  // per target group
  for (const auto& [tid, tgid] : std::exchange(reg().dirty, {})) {
    auto seen = discovery_.look(tid, tgid);
    if (!seen) continue;
    if (discovery_.workerSpec(seen->process.worker) == nullptr) continue;  // reload re-matches every process first
    auto target = classify(tid, seen->thread, seen->process, seen->facts);
    settings[target.thread.group] = target.settings;
    auto item = placer_.observe(tid, seen->thread, reg(), seen->facts, std::move(target.thread));
    // Born in its target group (threads inherit their creator's): in place without a move.
    if (item.observed.group == item.target.group) {
      reg().placements_version += !seen->thread.applied_group;
      seen->thread.applied_group = item.target.group;
    }
    items.push_back(std::move(item));
  }
  placer_.apply(decide::plan(items), settings, reg());
  stats_.reconcile_seconds.observe(std::chrono::duration<double>(clock_.now() - started).count());
}

decide::Target Manager::classify(pid_t tid, Thread& t, const Process& process, const cgroups::ThreadFacts& facts) {
  const auto* worker = discovery_.workerSpec(process.worker);
  const std::string previous_class = t.decision.class_name;
  t.decision = policy::classifyThread(
      policy_, {.worker = worker,
                .comm = facts.comm,
                .child_process = process.child ? &process.facts : nullptr,
                .requested_class = t.requested_class ? std::optional<std::string_view>(*t.requested_class) : std::nullopt});
  if (!previous_class.empty() && previous_class != t.decision.class_name && on_class_changed) {
    on_class_changed({tid, worker->name, t.decision.class_name});
  }
  const auto* spec = policy_.findClass(t.decision.class_name);
  ClassGroup group{process.base, spec->name};
  if (t.spec != spec || t.group != group) booster_.reclassified();
  if (t.group != group) ++reg().placements_version;
  t.spec = spec;
  t.group = std::move(group);
  if (booster_.boosted(tid) && !spec->boost) booster_.end(tid, clock_.now());  // its class changed
  if (spec->slice.count() > 0 && !kernel_has_slices && !std::exchange(slice_ignored_said_, true)) {
    log_.notice("class {} has a slice, but this kernel has no custom EEVDF slices (Linux 6.12+): ignored", spec->name);
  }
  return decide::targetFor({.spec = *spec,
                            .host = spec->run_in.empty() ? *spec : *policy_.findClass(spec->run_in),
                            .base = process.base,
                            .boosted = booster_.boosted(tid),
                            .explicit_wait = booster_.explicitWait(tid),
                            .realtime_held_back = guards_.heldBack(t.group),
                            .kernel_has_slices = kernel_has_slices,
                            .slice_ours = t.slice_ours});
}

void Manager::reload(policy::Policy next) {
  policy_ = std::move(next);
  // Cached class pointers point into the old policy: dropped now, set again by the rescan below.
  for (auto& [tid, t] : reg().threads) t.spec = nullptr;
  booster_.reclassified();
  stats_.last_reload_success_seconds = static_cast<double>(::time(nullptr));
  ++stats_.reloads;
  discovery_.rematch();
  const auto old_groups = placer_.beginReload(policy_);
  rescan();
  placer_.endReload(old_groups);
}

void Manager::stop() {
  if (policy_.daemon.on_stop == policy::OnStop::kKeep) {
    // Boosts, squeezes and real-time never outlive the daemon: boosted threads go back to their
    // classes, realtime classes keep their groups but run fair.
    booster_.endAll(clock_.now());
    guards_.releaseAll();
    reconcile();
    placer_.saveOriginals();
    log_.info("stopping; threads keep their classes (on_stop: keep)");
    return;
  }
  placer_.restoreAll(reg(), policy_.daemon.cgroup_prefix);
  log_.info("stopped; {} threads restored to their original groups and scheduling", reg().threads.size());
}

Manager::StarvationPoll Manager::pollStarvation(Nanos now) {
  if (booster_.fullPollDue(now)) guards_.check(now);
  const auto poll = booster_.poll(now, guards_.squeezing());
  reconcile();
  return {poll.changed, poll.next};
}

bool Manager::retitleNewChildren(Nanos now) {
  const bool changed = discovery_.retitleNewChildren(now);
  if (changed) reconcile();
  return changed;
}

bool Manager::pollHasWork() const {
  return booster_.hasWork() || discovery_.watchingNewChildren() || guards_.hasWork();
}

Thread* Manager::managedThread(pid_t tid) {
  if (Thread* t = discovery_.find(tid)) return t;
  reconcile();  // its process was just found: its threads are placed now
  const auto it = reg().threads.find(tid);
  return it == reg().threads.end() ? nullptr : &it->second;
}

Result<Thread*> Manager::boostableThread(pid_t tid) {
  Thread* t = managedThread(tid);
  if (t == nullptr || !reg().processes.contains(t->tgid)) return tl::unexpected(notManaged(tid).error());
  if (t->spec == nullptr || !t->spec->boost) {
    return fail(EINVAL, "thread " + std::to_string(tid) + " is in class " + t->decision.class_name + ", which has no boost");
  }
  return t;
}

Result<BoostVerdict> Manager::reportWait(pid_t waiter, pid_t holder, Nanos now) {
  auto h = boostableThread(holder);
  if (!h && h.error().code == ESRCH) return tl::unexpected(h.error());
  if (managedThread(waiter) == nullptr) return tl::unexpected(notManaged(waiter).error());
  if (!h) return tl::unexpected(h.error());
  const auto verdict = booster_.reportWait(waiter, holder, now);
  reconcile();
  return verdict;
}

Result<void> Manager::endWait(pid_t waiter, pid_t holder, Nanos now) {
  auto r = booster_.endWait(waiter, holder, now);
  reconcile();
  return r;
}

Result<BoostVerdict> Manager::boost(pid_t tid, Nanos window, Nanos now) {
  auto t = boostableThread(tid);
  if (!t) return tl::unexpected(t.error());
  auto limits = Booster::limitsOf(*(*t)->spec->boost);
  limits.window = window;
  const auto verdict = booster_.request(tid, now, limits, true, true);
  reconcile();
  return verdict;
}

Result<void> Manager::setThreadClass(pid_t tid, const std::string& cls) {
  if (policy_.findClass(cls) == nullptr) return fail(ENOENT, "no class named '" + cls + "'");
  Thread* t = managedThread(tid);
  if (t == nullptr) return notManaged(tid);
  t->requested_class = cls;
  reg().markDirty(tid, t->tgid);
  reconcile();
  return {};
}

Result<void> Manager::resetThreadClass(pid_t tid) {
  Thread* t = managedThread(tid);
  if (t == nullptr) return notManaged(tid);
  t->requested_class.reset();
  reg().markDirty(tid, t->tgid);
  reconcile();
  return {};
}

Result<Manager::Explanation> Manager::explain(pid_t tid) {
  const Thread* t = managedThread(tid);
  const Process* p = t == nullptr ? nullptr : reg().processOf(tid);
  if (p == nullptr) return tl::unexpected(notManaged(tid).error());
  return Explanation{p->worker, t->decision.class_name,
                     fmt::format("{}; its process {} is managed: {}", t->decision.reason, t->tgid, p->why),
                     t->applied_group.value_or(""), booster_.boosted(tid)};
}

std::vector<Manager::WorkerInfo> Manager::workers() const {
  std::map<pid_t, uint64_t> counts;
  for (const auto& [tid, t] : reg().threads) ++counts[t.tgid];
  std::vector<WorkerInfo> out;
  for (const auto& [pid, p] : reg().processes) {
    const auto c = counts.find(pid);
    out.push_back({p.worker, pid, c == counts.end() ? 0 : c->second, p.child});
  }
  return out;
}

Result<void> Manager::registerWorker(pid_t pid, const std::string& name, const std::string& default_class) {
  auto r = discovery_.registerWorker(pid, name, default_class);
  if (r) reconcile();
  return r;
}

Result<void> Manager::unregisterWorker(pid_t pid) { return discovery_.unregisterWorker(pid); }

std::vector<Manager::ThreadInfo> Manager::threadsOf(const std::string& worker) const {
  std::vector<ThreadInfo> out;
  for (const auto& [tid, t] : reg().threads) {
    const auto p = reg().processes.find(t.tgid);
    if (p == reg().processes.end() || (!worker.empty() && p->second.worker != worker)) continue;
    auto facts = proc_.thread(t.tgid, tid);
    out.push_back({tid, t.tgid, facts ? facts->comm : "?", t.decision.class_name, t.applied_group.value_or(""),
                   booster_.boosted(tid)});
  }
  return out;
}

std::optional<double> Manager::classCpuSeconds(const std::string& base, const std::string& cls) const {
  auto usage = placer_.tree().usage(base, cls);
  if (!usage) return std::nullopt;
  return static_cast<double>(usage->count()) / 1e9;
}

}  // namespace cpuclass::daemon
