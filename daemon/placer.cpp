#include "daemon/placer.h"

#include <algorithm>
#include <utility>

namespace cpuclass::daemon {
namespace {

using cgroups::Outcome;

// Where a thread goes when we hold no record of its origin: the root of every hierarchy.
const std::vector<cgroups::CgroupEntry>& rootEntries() {
  static const std::vector<cgroups::CgroupEntry> entries{
      {1, {"cpu"}, "/"}, {2, {"cpuacct"}, "/"}, {0, {}, "/"}};
  return entries;
}

cgroups::CpuSettings cpuSettings(decide::GroupSettings s) { return {s.weight, s.idle, s.realtime}; }

}  // namespace

Placer::Placer(cgroups::ClassTree tree, const cgroups::ProcFs& proc, StateFile state, Scheduler& sched,
               const Clock& clock, Stats& stats, Logger& log)
    : tree_(std::move(tree)), proc_(proc), state_(std::move(state)), sched_(sched), clock_(clock), stats_(stats), log_(log) {}

void Placer::loadOriginals() {
  if (auto loaded = state_.load()) {
    originals_ = std::move(*loaded);
  } else {
    log_.warning("{}, starting without it: threads an earlier run moved go to the root group on stop",
                 loaded.error().message);
  }
}

Result<std::string> Placer::baseFor(pid_t pid, const std::string& worker, const policy::ProcessFacts& facts,
                                    const std::string& prefix) {
  using cgroups::ClassTree;
  std::string base;
  if (tree_.control().version() != cgroups::CgroupVersion::kV2) {
    base = ClassTree::v1Base(prefix, worker);
  } else {
    // DESIGN.md §4: classes live inside the worker's own cgroup, which must be delegated to us.
    const std::string point = ClassTree::delegationPointOf(facts.cgroup);
    auto delegated = tree_.control().isDelegated(point);
    if (delegated && !*delegated && ask_unit_delegates) {
      auto answer = unitAnswer(pid, point);
      if (!answer) return fail(EAGAIN, fmt::format("asking systemd whether the unit of cgroup /{} delegates it", point));
      delegated = std::move(*answer);
    }
    if (!delegated) return tl::unexpected(delegated.error());
    if (!*delegated) {
      const auto slash = point.rfind('/');
      const std::string unit = point.substr(slash == std::string::npos ? 0 : slash + 1);
      const bool is_unit = unit.ends_with(".service") || unit.ends_with(".scope");
      return fail(EPERM, fmt::format("cgroup /{} is not delegated; fix: {}", point,
                                     is_unit ? fmt::format("cpuclassctl delegate {} and restart it, or start the "
                                                           "worker with cpuclassctl run",
                                                           unit)
                                             : std::string("start the worker with cpuclassctl run, or in a unit with "
                                                           "Delegate=yes")));
    }
    base = ClassTree::v2Base(point);
    if (auto r = tree_.enterBase(base); !r) return tl::unexpected(r.error());
  }
  bases_[base] = worker;
  pending_removal_.erase(base);
  return base;
}

std::optional<Result<bool>> Placer::unitAnswer(pid_t pid, const std::string& point) {
  if (const auto a = unit_answers_.find(point); a != unit_answers_.end()) return a->second;
  if (!unit_asked_.insert(point).second) return std::nullopt;  // asked already
  asking_now_ = true;
  ask_unit_delegates(pid, [this, point](Result<bool> answer) {
    unit_asked_.erase(point);
    unit_answers_.insert_or_assign(point, std::move(answer));
    // An answer later from the loop: the processes left alone meanwhile are looked at again.
    if (!asking_now_ && on_unit_answer) on_unit_answer(point);
  });
  asking_now_ = false;
  const auto a = unit_answers_.find(point);  // answered at once (the query could not be sent)
  return a == unit_answers_.end() ? std::nullopt : std::optional(a->second);
}

const std::string* Placer::ownerOf(const std::string& base) const {
  const auto it = bases_.find(base);
  return it == bases_.end() ? nullptr : &it->second;
}

decide::PlanItem Placer::observe(pid_t tid, Thread& t, const Registry& reg, const cgroups::ThreadFacts& facts,
                                 decide::ThreadTarget target) {
  if (const auto o = originals_.find(tid); o == originals_.end() || o->second.start_time != facts.start_time) {
    recordOriginal(tid, t.tgid, reg, facts);
  }
  const std::string& base = reg.processes.at(t.tgid).base;
  const bool first_look = t.policy == -1;
  t.comm = facts.comm;
  t.policy = target.policy;
  t.nice = target.nice;
  t.priority = target.priority;
  if (facts.policy == t.policy && facts.nice == t.nice && facts.rt_priority == t.priority) {
    t.sched_drifted = false;  // back already: nothing put back
  }
  // SCHED_RR inside our groups at this run's first look, from an origin that was not
  // real-time: set by an earlier run of the daemon (origins survive a restart in the state file).
  const auto o = originals_.find(tid);
  const auto observed_group = tree_.controlGroupOf(facts.cgroups);
  t.realtime_ours |= first_look && facts.policy == cgroups::kSchedRr && observed_group &&
                     observed_group->starts_with(base + "/") && o != originals_.end() &&
                     !cgroups::isRealtimePolicy(o->second.policy);
  decide::PlanItem item{tid, std::move(target),
                        {observed_group, tree_.accountingGroupOf(facts.cgroups), facts.policy, facts.nice,
                         facts.rt_priority, facts.realtime, facts.realtime && t.realtime_ours}};
  // The slice is not in /proc: asked only where one is to be held.
  if (item.target.slice) item.observed.slice = sched_.customSlice(tid).value_or(Nanos(0));
  return item;
}

void Placer::apply(const decide::Plan& p, const std::map<std::string, decide::GroupSettings>& settings, Registry& reg) {
  for (const pid_t tid : p.realtime) {
    if (auto& t = reg.threads[tid]; !t.realtime_reported) {
      t.realtime_reported = true;
      ++stats_.realtime_skipped;
      log_.notice("tid {} is real-time (SCHED_FIFO/RR/DEADLINE); the kernel keeps it out of class groups, skipping",
                  tid);
    }
  }
  // Moves to one group go out as one batch: one open file, writes in a burst.
  std::map<std::pair<std::string, std::string>, std::vector<pid_t>> moves;  // (group, accounting class)
  for (const auto& a : p.actions) {
    if (a.kind != decide::Action::Kind::kMove) continue;
    const auto& acct = a.target.accounting_group;
    moves[{a.target.group, acct.empty() ? std::string() : ClassGroup::of(acct).cls}].push_back(a.tid);
  }
  setScheduling(p.before_moves, reg);
  for (const auto& [to, tids] : moves) placeBatch(ClassGroup::of(to.first), to.second, tids, settings.at(to.first), reg);
  setScheduling(p.actions, reg);
  saveOriginals();
}

void Placer::setScheduling(const std::vector<decide::Action>& actions, Registry& reg) {
  for (const auto& a : actions) {
    if (a.kind != decide::Action::Kind::kSetSched) continue;
    const auto t = reg.threads.find(a.tid);
    const bool ours = t != reg.threads.end() && t->second.realtime_ours;
    auto r = sched_.set(a.tid, {a.target.policy, a.target.nice, a.target.priority, a.target.slice}, ours);
    if (!r) {
      countFailure(r.error(), "set scheduling");
    } else if (*r == Outcome::kGone) {
      ++stats_.threads_gone;
    } else if (*r == Outcome::kDone) {
      ++stats_.sched_changes;
      if (t == reg.threads.end()) continue;
      t->second.realtime_ours = a.target.priority > 0;
      if (a.target.slice) t->second.slice_ours = a.target.slice->count() > 0;
      if (t->second.sched_drifted) {
        t->second.sched_drifted = false;
        ++stats_.drift_corrections;
        log_.info("tid {} was re-prioritised by someone else; put back", a.tid);
      }
    }
  }
}

void Placer::recordOriginal(pid_t tid, pid_t tgid, const Registry& reg, const cgroups::ThreadFacts& facts) {
  // Threads inherit their creator's cgroups and policy (KERNEL_NOTES), so a thread first seen
  // inside our tree was born there: its origin is its process's, and a child process's main
  // thread's (a PostgreSQL backend forked after the daemon placed the postmaster) is its parent
  // process's. The state file keeps origins across a crash; a thread with no known origin goes
  // to the root on restore.
  const auto group = tree_.controlGroupOf(facts.cgroups);
  const auto process = reg.processes.find(tgid);
  const bool born_inside = group && process != reg.processes.end() && group->starts_with(process->second.base + "/");
  Original o{facts.start_time, facts.policy, facts.nice, {}};
  if (born_inside) {
    const pid_t origin = tid != tgid ? tgid : process->second.parent;
    const auto from = origin != 0 ? originals_.find(origin) : originals_.end();
    if (from != originals_.end()) {
      o = from->second;
      o.start_time = facts.start_time;
    } else {
      o.policy = cgroups::kSchedOther;
      o.nice = 0;
    }
  } else {
    for (const auto& e : facts.cgroups) {
      std::string controllers;
      for (const auto& c : e.controllers) controllers += (controllers.empty() ? "" : ",") + c;
      o.cgroups += std::to_string(e.hierarchy_id) + ":" + controllers + ":" + e.path + "\n";
    }
  }
  originals_[tid] = std::move(o);
  originals_dirty_ = true;
}

Result<void> Placer::ensure(const ClassGroup& g, bool control, decide::GroupSettings settings) {
  if (ensured_.contains(g)) return {};
  // A class running in another's group has only its accounting group (none on pure v2).
  auto r = control ? tree_.ensureClass(g.base, g.cls, cpuSettings(settings)) : tree_.ensureAccounting(g.base, g.cls);
  if (!r) {
    log_.error("cannot set up group {}: {}", g.path(), r.error().message);
    return r;
  }
  ensured_.insert(g);
  reconfigured_.insert(g);  // ensureClass lifted any cap
  return {};
}

void Placer::placeBatch(const ClassGroup& group, const std::string& accounting_class, const std::vector<pid_t>& tids,
                        decide::GroupSettings settings, Registry& reg) {
  const std::string accounting = accounting_class.empty() ? group.cls : accounting_class;
  auto ensured = ensure(group, true, settings);
  if (ensured) ensured = ensure({group.base, accounting}, accounting == group.cls, settings);
  if (!ensured) {
    for (size_t i = 0; i < tids.size(); ++i) daemon::countFailure(stats_, ensured.error());
    return;
  }
  // A boost moves the control group only: the accounting mirror keeps the thread in its class,
  // so class CPU stays exact while boosted.
  const std::string path = group.path();
  auto placed = group.cls == kBoostGroup ? tree_.control().moveThreads(path, tids).map([](auto items) {
    return cgroups::ClassTree::Placement{std::move(items), 0};
  })
                                         : tree_.place(group.base, group.cls, tids, accounting);
  if (!placed) {
    countFailure(placed.error(), "move threads");
    return;
  }
  stats_.accounting_failures += placed->accounting_failures;
  const auto now = static_cast<uint64_t>(clock_.now().count());
  for (const auto& item : placed->items) {
    Thread& t = reg.threads[item.tid];
    if (!item.result) {
      countFailure(item.result.error(), "move tid " + std::to_string(item.tid));
    } else if (*item.result == Outcome::kGone) {
      ++stats_.threads_gone;
      log_.debug("tid {} exited before its move", item.tid);
    } else if (*item.result == Outcome::kRealTime) {  // turned real-time since we looked
      log_.warning("tid {} is real-time and the kernel keeps it out of {}; looked at again at the next rescan", item.tid, path);
    } else if (*item.result == Outcome::kDone) {
      ++stats_.placements;
      if (t.applied_group == path) {
        ++stats_.drift_corrections;
        log_.info("tid {} was moved out of {} by someone else; put back", item.tid, path);
      }
      reg.placements_version += !t.applied_group;
      t.applied_group = path;
      if (t.created_ns != 0 && now > t.created_ns) {
        stats_.placement_latency_seconds.observe(static_cast<double>(now - t.created_ns) / 1e9);
        stats_.placement_latency_us.push_back(static_cast<uint32_t>(std::min<uint64_t>((now - t.created_ns) / 1000, UINT32_MAX)));
        if (stats_.placement_latency_us.size() > 1'000'000) stats_.placement_latency_us.clear();
      }
      t.created_ns = 0;
      log_.debug("tid {} -> {} ({})", item.tid, path, t.decision.reason);
    }
  }
}

void Placer::markOutOfPlace(Registry& reg, bool check_drift,
                            const std::function<Result<cgroups::ThreadStat>(pid_t tgid, pid_t tid)>& stat) {
  // Member lists, each read once and sorted: control groups always, accounting groups when
  // checking drift (then only the groups asked for).
  const auto sorted = [](Result<std::vector<pid_t>> tids) {
    auto v = std::move(tids).value_or(std::vector<pid_t>{});
    std::sort(v.begin(), v.end());
    return v;
  };
  std::map<std::string, std::vector<pid_t>> members;
  std::map<std::string, std::vector<pid_t>> mirror_members;
  for (const auto& group : ensured_) members.emplace(group.path(), sorted(tree_.control().threads(group.path())));
  const auto in_place = [&](const Thread& t, pid_t tid) {
    const auto it = t.applied_group ? members.find(*t.applied_group) : members.end();
    return it != members.end() && std::binary_search(it->second.begin(), it->second.end(), tid);
  };
  const auto in_mirror = [&](const std::string& group, pid_t tid) {
    const auto* mirror = tree_.accounting();
    if (mirror == nullptr) return true;
    auto it = mirror_members.find(group);
    if (it == mirror_members.end()) it = mirror_members.emplace(group, sorted(mirror->threads(group))).first;
    return std::binary_search(it->second.begin(), it->second.end(), tid);
  };
  // Its stat differs from its last reconcile (or is unreadable).
  const auto drifted = [&](pid_t tid, Thread& t) {
    const auto st = stat(t.tgid, tid);
    if (!st) return true;  // gone or unreadable: reconcile finds out which and says so
    if (st->start_time != t.start_time || st->comm != t.comm) return true;
    const bool differs = st->policy != t.policy || st->nice != t.nice || st->rt_priority != t.priority;
    // Real-time ones are skipped, not put back, unless we made them real-time.
    t.sched_drifted = differs && (!cgroups::isRealtimePolicy(st->policy) || t.realtime_ours);
    return differs;
  };
  // A process whose thread count (from the stat this rescan read) matches the threads we know
  // needs no listing of /proc/<pid>/task, the rescan's biggest cost at 2,000 threads. A thread
  // the events missed changes the count; a missed exit plus a missed start would not, but the
  // kernel loses events only with ENOBUFS, which is reported and rescans everything.
  std::map<pid_t, std::vector<pid_t>> known;
  for (const auto& [tid, t] : reg.threads) known[t.tgid].push_back(tid);
  for (const auto& [pid, p] : reg.processes) {
    std::vector<pid_t> tids = std::move(known[pid]);
    if (std::cmp_not_equal(tids.size(), p.num_threads)) {
      auto listed = proc_.threads(pid);
      if (!listed) continue;
      tids = std::move(*listed);
    }
    for (const pid_t tid : tids) {
      const auto t = reg.threads.find(tid);
      if (t == reg.threads.end() || !in_place(t->second, tid) ||
          (check_drift && (drifted(tid, t->second) || !in_mirror(t->second.group.path(), tid)))) {
        reg.markDirty(tid, pid);
      }
    }
  }
}

void Placer::restoreThread(pid_t tid, const Registry& reg) {
  const auto o = originals_.find(tid);
  if (o == originals_.end()) return;
  auto entries = cgroups::parseProcCgroup(o->second.cgroups);
  const auto& where = entries && !entries->empty() ? *entries : rootEntries();
  const Thread* t = reg.thread(tid);
  const Process* p = reg.processOf(tid);
  const std::string home = p == nullptr ? std::string() : p->base;
  // Scheduling first: a thread we made real-time may not enter a group without a real-time
  // budget (cgroup v1 RT group scheduling). One we do not know is from an earlier run, which
  // made it real-time if anyone did: its origin was not.
  if (!cgroups::isRealtimePolicy(o->second.policy)) {
    const bool ours = t == nullptr || t->realtime_ours;
    const auto slice = t != nullptr && t->slice_ours ? std::optional(Nanos(0)) : std::nullopt;
    if (auto r = sched_.set(tid, {o->second.policy, o->second.nice, 0, slice}, ours); !r) {
      countFailure(r.error(), "restore scheduling of tid " + std::to_string(tid));
    }
  }
  if (auto r = tree_.restore(tid, where, home); !r) countFailure(r.error(), "restore tid " + std::to_string(tid));
}

void Placer::restoreForeign(pid_t tid) {
  // A thread left in our groups by an earlier run for a process nobody manages now.
  const auto o = originals_.find(tid);
  auto facts = proc_.thread(tid, tid);  // any tid can be read as /proc/<tid>/task/<tid>
  const bool known = o != originals_.end() && facts && facts->start_time == o->second.start_time;
  if (known) {
    restoreThread(tid, Registry{});
  } else if (auto r = tree_.restore(tid, rootEntries()); !r) {
    countFailure(r.error(), "restore tid " + std::to_string(tid));
  }
  forget(tid);
}

void Placer::restoreLeftovers(const Registry& reg, const std::string& prefix) {
  if (!tree_.control().exists(prefix)) return;
  std::set<std::string> active;
  for (const auto& [pid, p] : reg.processes) active.insert(p.worker);
  for (const auto& worker : tree_.children(prefix).value_or(std::vector<std::string>{})) {
    for (const auto& cls : tree_.children(prefix + "/" + worker).value_or(std::vector<std::string>{})) {
      for (const pid_t tid : tree_.control().threads(prefix + "/" + worker + "/" + cls).value_or(std::vector<pid_t>{})) {
        if (!reg.threads.contains(tid)) restoreForeign(tid);
      }
    }
    if (!active.contains(worker)) {
      log_.info("removing groups of worker {} left by an earlier run", worker);
      const std::string base = cgroups::ClassTree::v1Base(prefix, worker);
      bases_.emplace(base, worker);
      tryRemoveGroups(base, reg);
    }
  }
  // Originals of threads that no longer exist are of no use.
  originals_dirty_ |= std::erase_if(originals_, [&](const auto& e) { return !reg.threads.contains(e.first); }) > 0;
  saveOriginals();
}

void Placer::tryRemoveGroups(const std::string& base, const Registry& reg) {
  if (std::any_of(reg.processes.begin(), reg.processes.end(), [&](const auto& e) { return e.second.base == base; })) {
    return;
  }
  const auto owner = bases_.find(base);
  const std::string worker = owner != bases_.end() ? owner->second : base;
  // Exiting threads can hold a group for a moment (EBUSY): retried at the next rescan.
  if (auto r = tree_.removeBase(base); !r) {
    pending_removal_.insert(base);
    return;
  }
  pending_removal_.erase(base);
  bases_.erase(base);
  std::erase_if(ensured_, [&](const ClassGroup& g) { return g.base == base; });
  std::erase_if(pressure_files_, [&](const auto& e) { return e.first.base == base; });
  log_.info("worker {} has no processes left in {}; removed its groups", worker, base);
}

void Placer::retryRemovals(const Registry& reg) {
  for (const auto& base : std::set<std::string>(pending_removal_)) tryRemoveGroups(base, reg);
}

std::set<ClassGroup> Placer::beginReload(const policy::Policy& policy) {
  std::set<ClassGroup> old_groups = std::exchange(ensured_, {});
  pressure_files_.clear();
  // Class settings are rewritten in place on groups that stay.
  for (const auto& group : old_groups) {
    const auto* spec = policy.findClass(group.cls);
    if (spec == nullptr || !spec->run_in.empty()) continue;
    if (auto r = tree_.ensureClass(group.base, spec->name, {spec->cpu_weight, spec->idle}); r) {
      ensured_.insert(group);
      reconfigured_.insert(group);
    } else {
      log_.error("cannot update group {}: {}", group.path(), r.error().message);
    }
  }
  return old_groups;
}

void Placer::endReload(const std::set<ClassGroup>& old_groups) {
  // Groups of classes that no longer exist are empty now.
  for (const auto& group : old_groups) {
    if (ensured_.contains(group)) continue;
    (void)tree_.control().removeGroup(group.path());
    if (const auto* acct = tree_.accounting()) (void)acct->removeGroup(group.path());
  }
}

void Placer::restoreAll(const Registry& reg, const std::string& prefix) {
  for (const auto& [tid, t] : reg.threads) restoreThread(tid, reg);
  std::set<std::string> bases = pending_removal_;
  for (const auto& [pid, p] : reg.processes) bases.insert(p.base);
  for (const auto& base : bases) {
    if (auto r = tree_.removeBase(base); !r) log_.warning("{}, ignoring", r.error().message);
  }
  for (const cgroups::Hierarchy* h : {&tree_.control(), tree_.accounting()}) {
    if (h != nullptr && h->children(prefix).value_or(std::vector<std::string>{"x"}).empty()) {
      (void)h->removeGroup(prefix);
    }
  }
  if (auto r = state_.remove(); !r) log_.warning("{}, ignoring", r.error().message);
}

std::optional<Nanos> Placer::pressure(const ClassGroup& group) {
  auto it = pressure_files_.find(group);
  if (it == pressure_files_.end()) {
    auto opened = tree_.keepPressureFile(group.base, group.cls);
    if (!opened) return std::nullopt;  // v1, or no PSI: no gate
    it = pressure_files_.emplace(group, std::move(*opened)).first;
  }
  auto total = cgroups::Hierarchy::cpuPressure(it->second);
  if (!total) {
    pressure_files_.erase(it);  // a group removed and made again: opened anew next time
    return std::nullopt;
  }
  return *total;
}

Result<void> Placer::setCpuQuota(const ClassGroup& group, std::optional<std::chrono::microseconds> quota) {
  return tree_.control().setCpuQuota(group.path(), quota);
}

// A boost of a class with a group of its own moves the thread, and an isolated move waits for an
// RCU grace period (~6.5 ms here): most of a wait report's latency, and part of detection's.
// Kept warm every poll, the move takes ~20 us (docs/boosting.md, "Round 7").
void Placer::keepMovesFast() {
  if (moves_fast_failed_) return;
  Result<void> kept;
  if (!move_keeper_) {
    auto opened = cgroups::MoveKeeper::forCallingThread(proc_);
    kept = opened.map([&](auto& k) { move_keeper_ = std::move(k); });
  }
  if (kept) kept = move_keeper_->keep(tree_);
  if (!kept) {
    moves_fast_failed_ = true;
    log_.warning("boost moves stay slow until restart (fast_moves): {}", kept.error().message);
  }
}

void Placer::countFailure(const Error& e, std::string_view what) {
  daemon::countFailure(stats_, e);
  if (!what.empty()) log_.warning("{}: {}", what, e.message);
}

void Placer::saveOriginals() {
  if (!originals_dirty_) return;
  if (auto r = state_.save(originals_); !r) {
    log_.warning("{}, ignoring: a crash now would lose where threads came from", r.error().message);
    return;
  }
  originals_dirty_ = false;
}

}  // namespace cpuclass::daemon
