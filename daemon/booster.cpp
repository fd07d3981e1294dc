#include "daemon/booster.h"

#include <algorithm>

namespace cpuclass::daemon {
namespace {
// Class groups this small are looked at whole every poll while they wait at all; larger ones are
// swept at a SweepPace, which bounds the poll's cost for large pools.
constexpr size_t kUngatedGroupSize = 16;
// A class group whose PSI "some" total did not grow for this many polls is quiet: its threads
// waited for no CPU, so none starves and no boost of it is near (sweepIdle, keepMovesFast).
constexpr uint64_t kQuietPolls = 10;
// After a wait report, moves are kept fast this long for the next one even while all is quiet.
constexpr Nanos kReportsKeepMovesWarm = std::chrono::seconds(10);
// A thread that woke and ran a little since the last poll is judged again after poll / 10.
constexpr int kRecheckDivisor = 10;
}  // namespace

Booster::Booster(const policy::Policy& policy, Registry& reg, const cgroups::ProcFs& proc, Placer& placer, Logger& log)
    : policy_(policy), reg_(reg), proc_(proc), placer_(placer), log_(log) {}

decide::BoostLimits Booster::limitsOf(const policy::BoostSpec& b) {
  return {std::chrono::duration_cast<Nanos>(b.window), std::chrono::duration_cast<Nanos>(b.cooldown),
          std::chrono::duration_cast<Nanos>(b.max_cooldown), b.max_per_worker, b.max_total, b.max_per_second};
}

Booster::Poll Booster::poll(Nanos now, bool squeezing) {
  Poll out;
  for (const auto& e : book_.expire(now, [this](pid_t tid) { return sleptSinceBoost(tid); })) {
    finish(e);
    out.changed = true;
  }
  // Every poll looks at the threads runnable or boosted at their last look and at some idle
  // ones; in between, only threads due for a recheck. Nothing here walks all managed threads.
  look_.clear();
  swept_.clear();
  if (now >= next_full_poll_) {
    next_full_poll_ = now + policy_.daemon.starvation_poll;
    ++polls_;
    refreshBoostable();
    // A thread cooling down would be refused a boost anyway (bulk work, mostly): not looked at.
    for (const pid_t tid : hot_) {
      if (!book_.coolingDown(tid, now)) look_.push_back(tid);
    }
    for (const pid_t tid : book_.boostedThreads()) look_.push_back(tid);
    const bool waited = sweepIdle(now);
    // Warm before the boosts this poll's looks may start, and for wait reports while they come;
    // not while every boostable group is quiet and nobody reports (its /proc read and move were
    // a third of the poll's cost: docs/boosting.md, "Round 10").
    const bool reports = last_report_ && now - *last_report_ < kReportsKeepMovesWarm;
    if (boosts_move_ && policy_.daemon.fast_moves && (waited || reports || book_.active() > 0)) placer_.keepMovesFast();
    // Nothing waited lately and nothing is boosted, squeezed or due: every other poll is skipped,
    // which halves the wake-ups of a quiet host; a first wait is seen at most a poll later.
    if (!waited && book_.active() == 0 && recheck_.empty() && !squeezing) {
      next_full_poll_ += policy_.daemon.starvation_poll;
    }
  }
  for (auto it = recheck_.begin(); it != recheck_.end();) {  // keyed by tid: every entry is checked
    if (it->second > now) {
      ++it;
      continue;
    }
    look_.push_back(it->first);
    it = recheck_.erase(it);
  }
  std::sort(look_.begin(), look_.end());
  look_.erase(std::unique(look_.begin(), look_.end()), look_.end());
  for (const pid_t tid : look_) out.changed |= lookAt(tid, now);
  for (const auto& [sweep, tid] : swept_) sweep->pace.looked(sweep->group_size, hot_.contains(tid));
  out.next = next_full_poll_;
  for (const auto& [tid, due] : recheck_) out.next = std::min(out.next, due);
  return out;
}

bool Booster::hasWork() const {
  return boostable_stale_ || !boostable_.empty() || book_.active() > 0 || !recheck_.empty();
}

BoostVerdict Booster::request(pid_t tid, Nanos now, decide::BoostLimits limits, bool explicit_wait, bool pin) {
  const Thread& t = reg_.threads.at(tid);
  auto& counters = counters_[t.group];
  const auto verdict = book_.request(tid, reg_.processes.at(t.tgid).worker, now, limits, explicit_wait,
                                     [this](pid_t other) { return sleptSinceBoost(other); });
  if (pin && !decide::refused(verdict)) pinned_.insert(tid);
  if (verdict == BoostVerdict::kStarted) {
    ++counters.boosts_started;
    switches_at_boost_[tid] = proc_.voluntarySwitches(t.tgid, tid).value_or(UINT64_MAX);
    reg_.markDirty(tid);  // reconcile moves it to the boost group
    if (on_boost) on_boost(tid, true);
  } else if (verdict == BoostVerdict::kAlreadyBoosted && explicit_wait) {
    reg_.markDirty(tid);  // a detected boost becomes an asked-for one: wait_nice
  } else if (decide::refused(verdict)) {
    ++counters.boosts_refused;
  }
  return verdict;
}

BoostVerdict Booster::reportWait(pid_t waiter, pid_t holder, Nanos now) {
  waiters_[holder].insert(waiter);
  last_report_ = now;
  return request(holder, now, limitsOf(*reg_.threads.at(holder).spec->boost), true);
}

Result<void> Booster::endWait(pid_t waiter, pid_t holder, Nanos now) {
  const auto w = waiters_.find(holder);
  if (w == waiters_.end() || w->second.erase(waiter) == 0) {
    return fail(ENOENT, "thread " + std::to_string(waiter) + " reported no wait on " + std::to_string(holder));
  }
  if (w->second.empty()) {
    waiters_.erase(w);
    end(holder, now);
  }
  return {};
}

void Booster::end(pid_t tid, Nanos now) {
  if (auto e = book_.end(tid, now)) finish(*e);
}

void Booster::endAll(Nanos now) {
  for (const pid_t tid : book_.boostedThreads()) end(tid, now);
}

void Booster::finish(const decide::EndedBoost& e) {
  pinned_.erase(e.tid);
  if (on_boost) on_boost(e.tid, false);
  if (const auto* t = reg_.thread(e.tid)) {
    counters_[t->group].boosted_seconds += std::chrono::duration<double>(e.duration).count();
    reg_.markDirty(e.tid);  // reconcile moves it back to its class
  }
}

void Booster::forget(pid_t tid, Nanos now) {
  if (auto e = book_.end(tid, now)) {
    if (const auto* t = reg_.thread(tid)) {
      counters_[t->group].boosted_seconds += std::chrono::duration<double>(e->duration).count();
    }
  }
  book_.forget(tid);
  probes_.erase(tid);
  pinned_.erase(tid);
  switches_at_boost_.erase(tid);
  detector_.forget(tid);
  hot_.erase(tid);
  recheck_.erase(tid);
  boostable_stale_ = true;
  waiters_.erase(tid);
  for (auto& [holder, ws] : waiters_) ws.erase(tid);
}

Result<cgroups::ThreadStat> Booster::stat(pid_t tgid, pid_t tid) {
  const auto probe = probes_.find(tid);
  return probe != probes_.end() ? probe->second.stat() : proc_.stat(tgid, tid);
}

// Voluntary context switches since its last boost began: it slept (a boost that ran out its
// window may have served items back to back, faster than a poll could see it asleep).
bool Booster::sleptSinceBoost(pid_t tid) const {
  const auto* t = reg_.thread(tid);
  const auto at = switches_at_boost_.find(tid);
  if (t == nullptr || at == switches_at_boost_.end()) return false;
  const auto n = proc_.voluntarySwitches(t->tgid, tid);
  return n && *n > at->second;
}

void Booster::refreshBoostable() {
  if (!boostable_stale_) return;
  boostable_.clear();
  boosts_move_ = false;
  for (const auto& [tid, t] : reg_.threads) {
    if (t.spec == nullptr || !t.spec->boost) continue;
    boostable_[t.group].push_back(tid);
    boosts_move_ |= t.spec->run_in.empty();
  }
  std::erase_if(sweeps_, [&](const auto& e) { return !boostable_.contains(e.first); });
  std::erase_if(pressure_seen_, [&](const auto& e) { return !boostable_.contains(e.first); });
  boostable_stale_ = false;
}

bool Booster::sweepIdle(Nanos now) {
  bool waited = false;
  for (const auto& [group, tids] : boostable_) {
    // PSI gate: a class group whose "some" total did not grow had no thread waiting for a CPU
    // since the last poll. A small group is looked at whole until it has been quiet for
    // kQuietPolls: the kernel weights each CPU's pressure by its non-idle time in whole jiffies,
    // so a wait shorter than a tick between two reads may never show in the total (KERNEL_NOTES);
    // a starving thread's does, so the first look after a quiet spell comes at most a poll later.
    const bool paced = tids.size() > kUngatedGroupSize;
    const uint64_t quiet = quietPolls(group, paced);
    waited |= quiet < kQuietPolls;
    if (quiet >= (paced ? 1 : kQuietPolls)) continue;
    // Round-robin from where the last sweep of this group stopped.
    Sweep& sweep = sweeps_[group];
    sweep.group_size = tids.size();
    const size_t budget = paced ? sweep.pace.perPoll() : tids.size();
    size_t i = static_cast<size_t>(std::lower_bound(tids.begin(), tids.end(), sweep.cursor) - tids.begin());
    size_t picked = 0;
    for (size_t steps = 0; steps < tids.size() && picked < budget; ++steps, ++i) {
      if (i == tids.size()) i = 0;
      if (hot_.contains(tids[i]) || book_.boosted(tids[i]) || book_.coolingDown(tids[i], now)) continue;
      look_.push_back(tids[i]);
      if (paced) swept_.emplace_back(&sweep, tids[i]);
      ++picked;
    }
    sweep.cursor = i < tids.size() ? tids[i] : 0;
  }
  return waited;
}

// Polls since the group's PSI "some" total was last seen to grow; 0 where it has no PSI (no gate).
// A read costs about what the look at a thread does (the kernel sums every CPU's times), so a
// group that waits is read only every kQuietPolls polls (enough to tell when it goes quiet),
// unless `every_poll`; a quiet group is read every poll, to see its first wait at once.
uint64_t Booster::quietPolls(const ClassGroup& group, bool every_poll) {
  auto& seen = pressure_seen_[group];
  const bool quiet = polls_ - seen.grew_at >= kQuietPolls;
  if (every_poll || quiet || polls_ - seen.read_at >= kQuietPolls) {
    const auto psi = placer_.pressure(group);
    if (!psi) return 0;
    const auto total = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(*psi).count());
    if (total != seen.total) seen.grew_at = polls_;
    seen.total = total;
    seen.read_at = polls_;
  }
  return polls_ - seen.grew_at;
}

Result<decide::LiveSample> Booster::sample(cgroups::ThreadProbe& probe, pid_t tid, Nanos now, double starved_below) {
  decide::LiveSample s;
  const bool boosted = book_.boosted(tid);
  if (hot_.contains(tid) || boosted) {
    // Runnable at the last look: the runtime first; it often tells the state without stat.
    auto runtime = probe.runtimeNs();
    if (!runtime) return tl::unexpected(runtime.error());
    s.runtime_ns = *runtime;
    s.has_runtime = true;
    const auto implied = detector_.impliedState(tid, now, *runtime, starved_below);
    // A boost ends when the thread sleeps, which only 'R' rules out.
    if (implied && (!boosted || *implied == 'R')) {
      s.state = *implied;
      return s;
    }
    auto state = probe.state();
    if (!state) return tl::unexpected(state.error());
    s.state = *state;
    return s;
  }
  // Idle at the last look: most still sleep, which stat alone tells.
  auto state = probe.state();
  if (!state) return tl::unexpected(state.error());
  s.state = *state;
  if (s.state != 'R') return s;
  auto runtime = probe.runtimeNs();
  if (!runtime) return tl::unexpected(runtime.error());
  s.runtime_ns = *runtime;
  s.has_runtime = true;
  return s;
}

bool Booster::lookAt(pid_t tid, Nanos now) {
  const auto found = reg_.threads.find(tid);
  const auto* spec = found == reg_.threads.end() ? nullptr : found->second.spec;
  if (spec == nullptr || !spec->boost) {  // exited, or its class has no boost any more
    hot_.erase(tid);
    return false;
  }
  const Thread& t = found->second;
  auto probe = probes_.find(tid);
  if (probe == probes_.end()) {
    auto opened = cgroups::ThreadProbe::open(proc_, t.tgid, tid);
    if (!opened) {  // exited: the exit event or the next rescan cleans up
      hot_.erase(tid);
      return false;
    }
    probe = probes_.emplace(tid, std::move(*opened)).first;
  }
  const auto s = sample(probe->second, tid, now, spec->boost->starved_below);
  if (!s) {
    probes_.erase(probe);
    hot_.erase(tid);
    return false;
  }
  if (s->state == 'R' || s->state == '?') {
    hot_.insert(tid);
  } else {
    hot_.erase(tid);
  }
  const decide::Look verdict = detector_.observe(tid, now, *s, spec->boost->starved_below);
  if (book_.boosted(tid)) {
    // Done with its work: asleep again. A holder someone waits on keeps its boost.
    const auto w = waiters_.find(tid);
    if (s->state != 'R' && (w == waiters_.end() || w->second.empty()) && !pinned_.contains(tid)) {
      end(tid, now);
      return true;
    }
    return false;
  }
  if (verdict == decide::Look::kRecheck) recheck_[tid] = now + policy_.daemon.starvation_poll / kRecheckDivisor;
  if (verdict != decide::Look::kStarving) return false;
  ++counters_[t.group].starvation_events;
  if (!reg_.processes.contains(t.tgid)) return false;
  const auto verdict_of_book = request(tid, now, limitsOf(*spec->boost), false);
  if (verdict_of_book == BoostVerdict::kStarted) log_.debug("tid {} starves in {}; boosted", tid, t.group.path());
  return verdict_of_book == BoostVerdict::kStarted;
}

}  // namespace cpuclass::daemon
