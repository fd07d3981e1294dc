#include "daemon/manager.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <regex>
#include <utility>

#include "cgroups/sched.h"

namespace cpuclass::daemon {
namespace {

using cgroups::Outcome;
using cgroups::ProcEvent;

int kernelPolicy(policy::ThreadSched s) {
  switch (s) {
    case policy::ThreadSched::kOther: return cgroups::kSchedOther;
    case policy::ThreadSched::kBatch: return cgroups::kSchedBatch;
    case policy::ThreadSched::kIdle: return cgroups::kSchedIdle;
  }
  return cgroups::kSchedOther;
}

uint64_t monotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

std::string errnoName(int code) {
  const char* name = ::strerrorname_np(code);
  return name != nullptr ? name : "E" + std::to_string(code);
}

// Where a thread goes when we hold no record of its origin: the root of every hierarchy.
const std::vector<cgroups::CgroupEntry>& rootEntries() {
  static const std::vector<cgroups::CgroupEntry> entries{
      {1, {"cpu"}, "/"}, {2, {"cpuacct"}, "/"}, {0, {}, "/"}};
  return entries;
}

}  // namespace

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
// Every this many periodic rescans, every thread is read again; in between only changed ones.
constexpr uint64_t kFullRescanEvery = 5;
// A forked server process retitles itself within milliseconds of its fork (a PostgreSQL backend
// once its client is authenticated). Until the periodic rescan reads the new title it runs in
// its worker's default class: a pg_dump's backend ran its COPY as foreground for most of each
// 2 s rescan interval (docs/engines.md). So a new child is re-read at every starvation poll until
// its title first changes, for this long at most.
constexpr Nanos kNewChildTitleWatch = std::chrono::seconds(2);
// The squeeze of idle class groups (squeezeIdleGroups): the CPU they may use per period while a
// busy class group waits (the kernel's minimum quota), and how long it outlasts the last wait.
constexpr std::chrono::microseconds kSqueezeQuota{1000};
constexpr Nanos kSqueezeWindow = std::chrono::milliseconds(100);
// A busy group "waits" when its PSI some total grew by at least this fraction (1/4) of a window.
constexpr int kSqueezeWaitDivisor = 4;
// The guard of realtime classes judges their CPU time over windows this long (guardRealtime).
constexpr Nanos kRealtimeWindow = std::chrono::milliseconds(100);

BoostLimits limitsOf(const policy::BoostSpec& b) {
  return {std::chrono::duration_cast<Nanos>(b.window), std::chrono::duration_cast<Nanos>(b.cooldown),
          std::chrono::duration_cast<Nanos>(b.max_cooldown), b.max_per_worker, b.max_total, b.max_per_second};
}
}  // namespace

Manager::Manager(policy::Policy policy, cgroups::ClassTree tree, cgroups::ProcFs proc, StateFile state, Logger& log)
    : policy_(std::move(policy)), tree_(std::move(tree)), proc_(std::move(proc)), state_(std::move(state)), log_(log) {}

Result<std::string> Manager::prepareBase(pid_t pid, const std::string& worker, const policy::ProcessFacts& facts) {
  using cgroups::ClassTree;
  if (tree_.control().version() != cgroups::CgroupVersion::kV2) return ClassTree::v1Base(policy_.daemon.cgroup_prefix, worker);
  // DESIGN.md §4: classes live inside the worker's own cgroup, which must be delegated to us.
  const std::string point = ClassTree::delegationPointOf(facts.cgroup);
  auto delegated = tree_.control().isDelegated(point);
  if (delegated && !*delegated && unit_delegates) delegated = unit_delegates(pid);
  if (!delegated) return tl::unexpected(delegated.error());
  if (!*delegated) {
    const auto slash = point.rfind('/');
    const std::string unit = point.substr(slash == std::string::npos ? 0 : slash + 1);
    const bool is_unit = unit.ends_with(".service") || unit.ends_with(".scope");
    return fail(EPERM, fmt::format("cgroup /{} is not delegated; fix: {}", point,
                                   is_unit ? fmt::format("cpuclassctl delegate {} and restart it, or start the worker "
                                                         "with cpuclassctl run",
                                                         unit)
                                           : std::string("start the worker with cpuclassctl run, or in a unit with Delegate=yes")));
  }
  const std::string base = ClassTree::v2Base(point);
  if (auto r = tree_.enterBase(base); !r) return tl::unexpected(r.error());
  return base;
}

std::string Manager::status() const {
  uint64_t failures = 0;
  for (const auto& [k, v] : stats_.failures) failures += v;
  std::string line = fmt::format("{} workers' processes, {} threads managed; {} moves, {} gone, {} failures",
                                 processes_.size(), threads_.size(), stats_.moves, stats_.gone, failures);
  if (!left_alone_.empty()) {
    line += fmt::format("; {} worker processes left alone ({})", left_alone_.size(), left_alone_.begin()->second.reason);
  }
  return line;
}

std::vector<ClassGroupCount> Manager::classGroups() const {
  // Boosted threads count in their class: the boost group is a place, not a class. Counted again
  // only when a thread was placed, reclassified or forgotten: every publish (each boost's start
  // and end) walking 10,000 threads was 40% of the daemon's CPU (docs/boosting.md, "Round 10").
  auto& counts = class_counts_;
  if (class_counts_version_ != placements_version_) {
    counts.clear();
    for (const auto& [tid, t] : threads_) {
      if (t.applied_group) ++counts[classGroupOf(t)];
    }
    class_counts_version_ = placements_version_;
  }
  std::vector<ClassGroupCount> out;
  for (const auto& group : ensured_) {
    const auto slash = group.rfind('/');
    const std::string base = group.substr(0, slash), cls = group.substr(slash + 1);
    const auto owner = bases_.find(base);
    if (cls == kBoostGroup || owner == bases_.end()) continue;
    const auto c = boost_counters_.find(group);
    out.push_back({owner->second, cls, base, counts[group], c == boost_counters_.end() ? BoostCounters{} : c->second});
  }
  return out;
}

void Manager::start() {
  stats_.last_reload_success_seconds = static_cast<double>(::time(nullptr));
  if (auto loaded = state_.load()) {
    originals_ = std::move(*loaded);
  } else {
    log_.warning("{}, starting without it: threads an earlier run moved go to the root group on stop",
                 loaded.error().message);
  }
  rescan();
  restoreLeftovers();
  saveOriginals();
}

void Manager::considerProcess(pid_t pid, std::string_view why) {
  // Every rescan comes here for every process: one stat read settles the known ones.
  const auto st = proc_.stat(pid, pid);
  if (!st) return;  // exited, or not a process (a thread id): nothing to do
  if (const auto it = processes_.find(pid); it != processes_.end()) {
    if (it->second.start_time == st->start_time) {
      it->second.num_threads = st->num_threads;
      return;
    }
    forgetProcess(pid);  // the PID was reused
  }
  if (st->kthread) return;
  // An unmatched process is looked at again once its parent is managed: a child process.
  if (const auto it = unmatched_.find(pid);
      it != unmatched_.end() && it->second.start_time == st->start_time && !processes_.contains(st->ppid)) {
    return;
  }
  if (const auto it = left_alone_.find(pid); it != left_alone_.end() && it->second.start_time == st->start_time) return;
  const auto groups = proc_.cgroups(pid, pid);  // only a process still to match needs them
  if (!groups) return;

  policy::ProcessFacts facts;
  facts.comm = st->comm;
  facts.exe = proc_.exe(pid).value_or("");
  facts.cmdline = proc_.cmdline(pid).value_or("");
  facts.cgroup = cgroups::cgroupPathOf(*groups, "").value_or(cgroups::cgroupPathOf(*groups, "cpu").value_or(""));
  addContainerMeta(facts);

  // A child of a managed process belongs to the parent's worker, even if it matches a worker
  // itself (a helper in the same systemd unit, say): process rules then decide its class.
  if (const auto parent = processes_.find(st->ppid); parent != processes_.end()) {
    const std::string owner = parent->second.worker;
    if (addProcess(pid, st->start_time, owner, true, std::move(facts),
                   fmt::format("a child process of pid {} (worker {})", st->ppid, owner))) {
      processes_[pid].parent = st->ppid;  // where it came from, for restore (recordOriginal)
    }
    return;
  }
  const auto* worker = policy::matchWorker(policy_, facts);
  if (worker == nullptr) {
    // Most processes never match; the few that still could once a silent fact changes keep
    // their facts for the rescan's cheap re-read (recheckSilentFacts).
    auto& u = unmatched_[pid];
    u.start_time = st->start_time;
    u.rechecks = 0;
    u.watch = policy::silentFactsToWatch(policy_, facts);
    u.facts = u.watch.any() ? std::move(facts) : policy::ProcessFacts{};
    return;
  }
  (void)addProcess(pid, st->start_time, worker->name, false, std::move(facts), matchedWhy(*worker, why));
}

std::string Manager::matchedWhy(const policy::WorkerSpec& worker, std::string_view why) const {
  std::string text = "matched by worker " + worker.name + " at " + worker.where.str();
  if (!why.empty()) text.append(" ").append(why);
  return text;
}

void Manager::addContainerMeta(policy::ProcessFacts& facts) {
  if (!policy::needsContainerMeta(policy_)) return;
  const auto c = policy::parseContainer(facts.cgroup);
  facts.container_meta = c && !c->id.empty() ? containers_.lookup(c->id) : std::nullopt;
}

void Manager::recheckSilentFacts() {
  // Unmatched processes that a changed title or cgroup could still make a worker's: re-read what
  // changed without an event, match again. A server retitles itself when it starts, so a process
  // older than a minute is re-read only at every kOldTitleEvery-th rescan: re-reading 2,000 at
  // every rescan cost ~1% of a core (bench/host_cost_bench; docs/engines.md).
  constexpr uint64_t kYoungSeconds = 60;
  constexpr uint32_t kOldTitleEvery = 8;
  // Process start times are in clock ticks since boot (proc(5)).
  static const auto ticks_per_second = static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  timespec boot{};
  ::clock_gettime(CLOCK_BOOTTIME, &boot);
  const uint64_t now_ticks = static_cast<uint64_t>(boot.tv_sec) * ticks_per_second;
  std::vector<std::pair<pid_t, std::string>> changed;
  for (auto& [pid, u] : unmatched_) {
    if (!u.watch.any()) continue;
    const bool young = u.start_time + kYoungSeconds * ticks_per_second >= now_ticks;
    if (!young && ++u.rechecks % kOldTitleEvery != 0) continue;
    std::string why;
    if (u.watch.cmdline) {
      if (auto now = proc_.cmdline(pid); now && *now != u.facts.cmdline) {
        why = fmt::format("after its command line became '{}'", *now);
        u.facts.cmdline = std::move(*now);
      }
    }
    if (u.watch.cgroup) {
      if (const auto groups = proc_.cgroups(pid, pid)) {
        auto now = cgroups::cgroupPathOf(*groups, "").value_or(cgroups::cgroupPathOf(*groups, "cpu").value_or(""));
        if (now != u.facts.cgroup) {
          why = fmt::format("after it moved to cgroup {}", now);
          u.facts.cgroup = std::move(now);
          addContainerMeta(u.facts);
        }
      }
    }
    if (!why.empty() && policy::matchWorker(policy_, u.facts) != nullptr) changed.emplace_back(pid, std::move(why));
  }
  for (auto& [pid, why] : changed) {
    unmatched_.erase(pid);
    considerProcess(pid, why);
  }
  // Child processes whose worker classifies them by title: a changed title reclassifies them
  // (a backend that becomes a parallel worker, an autovacuum worker).
  for (auto& [pid, p] : processes_) {
    if (p.child && readsTitle(p)) retitled(pid, p);
  }
}

bool Manager::readsTitle(const Process& p) const {
  const auto* spec = workerSpec(p.worker);
  return spec != nullptr && policy::processRulesReadCmdline(*spec);
}

bool Manager::retitled(pid_t pid, Process& p) {
  auto now = proc_.cmdline(pid);
  if (!now || *now == p.facts.cmdline) return false;
  log_.debug("pid {} of worker {}: its command line is now '{}'", pid, p.worker, *now);
  p.facts.cmdline = std::move(*now);
  markThreadsDirty(pid);
  return true;
}

bool Manager::retitleNewChildren(Nanos now) {
  bool changed = false;
  for (auto it = new_children_.begin(); it != new_children_.end();) {
    const auto p = processes_.find(it->first);
    if (p == processes_.end() || it->second <= now) {
      it = new_children_.erase(it);
    } else if (retitled(it->first, p->second)) {
      changed = true;
      it = new_children_.erase(it);
    } else {
      ++it;
    }
  }
  if (changed) reconcile();
  return changed;
}

Result<void> Manager::addProcess(pid_t pid, uint64_t start_time, std::string worker, bool child, policy::ProcessFacts facts,
                                 std::string why) {
  unmatched_.erase(pid);
  auto base = prepareBase(pid, worker, facts);
  if (!base) {
    log_.warning("worker {}: leaving pid {} ({}) alone: {}", worker, pid, facts.comm, base.error().message);
    left_alone_[pid] = {worker, facts.cgroup, base.error().message, start_time};
    return tl::unexpected(base.error());
  }
  left_alone_.erase(pid);
  bases_[*base] = worker;
  pending_removal_.erase(*base);
  Process p{start_time, std::move(worker), std::move(*base), child, std::move(facts), {}};
  p.why = std::move(why);
  if (auto fd = cgroups::ProcFs::openPidfd(pid)) p.pidfd = std::move(*fd);
  log_.info("managing pid {} ({}): {}", pid, p.facts.comm, p.why);
  if (child && readsTitle(p)) new_children_[pid] = Nanos(monotonicNs()) + kNewChildTitleWatch;
  processes_.emplace(pid, std::move(p));
  markThreadsDirty(pid);
  return {};
}

void Manager::markThreadsDirty(pid_t pid) {
  if (auto tids = proc_.threads(pid)) {
    for (const pid_t tid : *tids) dirty_.emplace(tid, pid);
  }
}

void Manager::markChangedThreadsDirty(bool check_drift) {
  // Member lists, each read once and sorted: control groups always, accounting groups when
  // checking drift (then only the groups asked for).
  const auto sorted = [](Result<std::vector<pid_t>> tids) {
    auto v = std::move(tids).value_or(std::vector<pid_t>{});
    std::sort(v.begin(), v.end());
    return v;
  };
  std::map<std::string, std::vector<pid_t>> members;
  std::map<std::string, std::vector<pid_t>> mirror_members;
  for (const auto& group : ensured_) members.emplace(group, sorted(tree_.control().threads(group)));
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
  // A process whose thread count (from the stat this rescan read) matches the threads we know
  // needs no listing of /proc/<pid>/task, the rescan's biggest cost at 2,000 threads. A thread
  // the events missed changes the count; a missed exit plus a missed start would not, but the
  // kernel loses events only with ENOBUFS, which is reported and rescans everything.
  std::map<pid_t, std::vector<pid_t>> known;
  for (const auto& [tid, t] : threads_) known[t.tgid].push_back(tid);
  for (const auto& [pid, p] : processes_) {
    std::vector<pid_t> tids = std::move(known[pid]);
    if (std::cmp_not_equal(tids.size(), p.num_threads)) {
      auto listed = proc_.threads(pid);
      if (!listed) continue;
      tids = std::move(*listed);
    }
    for (const pid_t tid : tids) {
      const auto t = threads_.find(tid);
      if (t == threads_.end() || !in_place(t->second, tid) ||
          (check_drift && (drifted(tid, t->second) || !in_mirror(t->second.class_group, tid)))) {
        dirty_.emplace(tid, pid);
      }
    }
  }
}

bool Manager::drifted(pid_t tid, Thread& t) {
  // Offload threads have their stat open already (the starvation probe): a pread, no open.
  const auto probe = probes_.find(tid);
  const auto st = probe != probes_.end() ? probe->second.stat() : proc_.stat(t.tgid, tid);
  if (!st) return true;  // gone or unreadable: reconcile finds out which and says so
  if (st->start_time != t.start_time || st->comm != t.comm) return true;
  const bool differs = st->policy != t.policy || st->nice != t.nice || st->rt_priority != t.priority;
  // Real-time ones are skipped, not put back, unless we made them real-time.
  t.sched_drifted = differs && (!cgroups::isRealtimePolicy(st->policy) || t.realtime_ours);
  return differs;
}

void Manager::forgetProcess(pid_t pid) {
  const auto it = processes_.find(pid);
  if (it == processes_.end()) return;
  const std::string base = it->second.base;
  processes_.erase(it);
  new_children_.erase(pid);
  for (auto t = threads_.begin(); t != threads_.end();) {
    if (t->second.tgid == pid) {
      forgetBoostState(t->first);
      originals_dirty_ |= originals_.erase(t->first) > 0;
      dirty_.erase(t->first);
      t = threads_.erase(t);
      ++placements_version_;
    } else {
      ++t;
    }
  }
  tryRemoveGroups(base);
}

void Manager::releaseProcess(pid_t pid) {
  for (const auto& [tid, t] : threads_) {
    if (t.tgid == pid) restoreThread(tid);
  }
  log_.info("released pid {}: its threads are back where they were", pid);
  forgetProcess(pid);
}

void Manager::tryRemoveGroups(const std::string& base) {
  const auto uses = [&](auto pred) {
    return std::any_of(processes_.begin(), processes_.end(), [&](const auto& e) { return pred(e.second); });
  };
  if (uses([&](const Process& p) { return p.base == base; })) return;
  const auto owner = bases_.find(base);
  const std::string worker = owner != bases_.end() ? owner->second : base;
  if (!uses([&](const Process& p) { return p.worker == worker; })) registered_.erase(worker);  // ends with its last process
  // Exiting threads can hold a group for a moment (EBUSY): retried at the next rescan.
  if (auto r = tree_.removeBase(base); !r) {
    pending_removal_.insert(base);
    return;
  }
  pending_removal_.erase(base);
  bases_.erase(base);
  for (auto it = ensured_.begin(); it != ensured_.end();) {
    it = it->starts_with(base + "/") ? ensured_.erase(it) : std::next(it);
  }
  log_.info("worker {} has no processes left in {}; removed its groups", worker, base);
}

void Manager::handleEvents(const std::vector<ProcEvent>& events, bool lost) {
  for (const auto& ev : events) {
    ++stats_.events;
    switch (ev.kind) {
      case ProcEvent::Kind::kFork:
        if (ev.isNewThread()) {
          if (processes_.contains(ev.tgid)) {
            dirty_.emplace(ev.tid, ev.tgid);
            threads_[ev.tid].created_ns = ev.timestamp_ns;
            threads_[ev.tid].tgid = ev.tgid;
          }
        } else if (processes_.contains(ev.parent_tgid)) {
          considerProcess(ev.tgid);
        }
        break;
      case ProcEvent::Kind::kExec:
        // A new program: looked at afresh, also one left alone (a launcher that moved itself into
        // a delegated cgroup and then executed the worker).
        unmatched_.erase(ev.tgid);
        left_alone_.erase(ev.tgid);
        if (const auto it = processes_.find(ev.tgid); it != processes_.end() && !it->second.child) {
          releaseProcess(ev.tgid);  // a new program: match it again from scratch
        } else if (it != processes_.end()) {
          forgetProcess(ev.tgid);  // children are re-added below, with their new comm and exe
        }
        considerProcess(ev.tgid, "after exec");
        break;
      case ProcEvent::Kind::kComm:
        if (ev.tid == ev.tgid) {
          renamedProcess(ev.tgid, ev.comm);
        } else if (processes_.contains(ev.tgid)) {
          dirty_.emplace(ev.tid, ev.tgid);
        }
        break;
      case ProcEvent::Kind::kExit:
        if (ev.tid == ev.tgid) {
          unmatched_.erase(ev.tgid);
          forgetProcess(ev.tgid);
        } else if (threads_.erase(ev.tid) > 0) {
          ++placements_version_;
          forgetBoostState(ev.tid);
          dirty_.erase(ev.tid);
          originals_dirty_ |= originals_.erase(ev.tid) > 0;
        }
        break;
    }
  }
  if (lost) {
    ++stats_.events_lost;
    log_.notice("the kernel dropped proc connector events; rescanning /proc");
    unmatched_.clear();
    rescan();
    return;
  }
  reconcile();
}

void Manager::renamedProcess(pid_t pid, const std::string& comm) {
  // The main thread's name is the process's comm, which worker matches and process rules read.
  const std::string why = fmt::format("after it renamed itself to '{}'", comm);
  const auto it = processes_.find(pid);
  if (it == processes_.end()) {
    unmatched_.erase(pid);  // a server that names itself after exec (prctl PR_SET_NAME)
    considerProcess(pid, why);
    return;
  }
  Process& p = it->second;
  p.facts.comm = comm;
  if (p.child) {
    markThreadsDirty(pid);  // process rules match the process's name: every thread may change class
    return;
  }
  dirty_.emplace(pid, pid);  // thread rules see the main thread's new name
  if (registered_.contains(p.worker)) return;
  const auto* w = policy::matchWorker(policy_, p.facts);
  if (w != nullptr && w->name == p.worker) return;
  log_.info("pid {} renamed itself to '{}' and is no longer worker {}'s: matching it again", pid, comm, p.worker);
  releaseProcess(pid);
  considerProcess(pid, why);
}

void Manager::rescan(bool full) {
  ++stats_.rescans;
  auto pids = proc_.processes();
  if (!pids) {
    countFailure(pids.error(), "list /proc");
    return;
  }
  const std::set<pid_t> live(pids->begin(), pids->end());
  std::vector<pid_t> gone;
  for (const auto& [pid, p] : processes_) {
    if (!live.contains(pid)) gone.push_back(pid);
  }
  for (const pid_t pid : gone) forgetProcess(pid);
  for (auto it = unmatched_.begin(); it != unmatched_.end();) it = live.contains(it->first) ? std::next(it) : unmatched_.erase(it);
  for (auto it = left_alone_.begin(); it != left_alone_.end();) it = live.contains(it->first) ? std::next(it) : left_alone_.erase(it);

  // Parents before children: repeat while a pass adds processes, so a child seen before its
  // parent (PID wrap-around) is still found.
  for (size_t before = SIZE_MAX; before != processes_.size();) {
    before = processes_.size();
    for (const pid_t pid : *pids) considerProcess(pid);
  }
  recheckSilentFacts();
  // A full rescan (start, reload, lost events) reconciles every thread again. A periodic one
  // reconciles only threads that are new, unplaced, or gone from the group they were placed in,
  // found with one read of each group's member list; every kFullRescanEvery-th also reads each
  // thread's stat for what no event reports (scheduling drift, a missed comm change) and the
  // accounting groups' member lists. Reconciling every thread cost the daemon ~2% of a core
  // at 2,000 threads every 2 s (docs/boosting.md, "Daemon CPU at scale").
  if (full) {
    for (const auto& [pid, p] : processes_) markThreadsDirty(pid);
  } else {
    markChangedThreadsDirty(++light_rescans_ % kFullRescanEvery == 0);
  }
  for (const auto& base : std::set<std::string>(pending_removal_)) tryRemoveGroups(base);
  reconcile();
}

void Manager::reconcile() {
  if (dirty_.empty()) return;
  const uint64_t started = monotonicNs();
  std::vector<PlanItem> items;
  std::map<std::string, cgroups::CpuSettings> settings;  // per target group
  for (const auto& [tid, tgid] : dirty_) {
    const auto process = processes_.find(tgid);
    if (process == processes_.end()) continue;
    auto facts = proc_.thread(tgid, tid);
    if (!facts) {
      if (!isGone(facts.error())) countFailure(facts.error(), "read thread");
      placements_version_ += threads_.erase(tid);
      originals_dirty_ |= originals_.erase(tid) > 0;
      continue;
    }
    Thread& t = threads_[tid];
    if (t.start_time != 0 && t.start_time != facts->start_time) {  // TID reused
      t = Thread{};
      ++placements_version_;
    }
    t.tgid = tgid;
    t.start_time = facts->start_time;
    if (const auto o = originals_.find(tid); o == originals_.end() || o->second.start_time != facts->start_time) {
      recordOriginal(tid, tgid, *facts);
    }
    const auto* worker = workerSpec(process->second.worker);
    if (worker == nullptr) continue;  // cannot happen: reload re-matches every process first
    const std::string previous_class = t.decision.class_name;
    t.decision = policy::classifyThread(
        policy_, {.worker = worker,
                  .comm = facts->comm,
                  .child_process = process->second.child ? &process->second.facts : nullptr,
                  .requested_class = t.requested_class ? std::optional<std::string_view>(*t.requested_class) : std::nullopt});
    if (!previous_class.empty() && previous_class != t.decision.class_name && on_class_changed) {
      on_class_changed({tid, worker->name, t.decision.class_name});
    }
    const auto* spec = policy_.findClass(t.decision.class_name);
    const auto* host = spec->run_in.empty() ? spec : policy_.findClass(spec->run_in);  // whose group it runs in
    const std::string& base = process->second.base;
    std::string class_group = base + "/" + spec->name;
    if (t.spec != spec || t.class_group != class_group) boostable_stale_ = true;
    if (t.class_group != class_group) ++placements_version_;
    t.spec = spec;
    t.class_group = std::move(class_group);
    if (book_.boosted(tid) && !spec->boost) endBoost(tid, Nanos(monotonicNs()));  // class changed
    const bool boost = book_.boosted(tid);
    // A class in another's group is boosted in place (scheduling only); others move to _boost.
    const bool boost_moves = boost && spec->run_in.empty();
    const int nice = !boost ? spec->nice : book_.explicitWait(tid) ? spec->boost->wait_nice : spec->boost->nice;
    // A realtime class runs SCHED_RR, unless its guard holds it back on its fair settings.
    const int priority = realtime_held_back_.contains(t.class_group) ? 0 : spec->realtime;
    ThreadTarget target{base + "/" + (boost_moves ? kBoostGroup : host->name),
                        priority > 0 ? cgroups::kSchedRr : kernelPolicy(boost ? spec->boost->sched : spec->sched), nice,
                        priority, sliceFor(*spec, t, priority > 0), t.class_group};
    const bool first_look = t.policy == -1;
    t.comm = facts->comm;
    t.policy = target.policy;
    t.nice = target.nice;
    t.priority = target.priority;
    if (facts->policy == t.policy && facts->nice == t.nice && facts->rt_priority == t.priority) {
      t.sched_drifted = false;  // back already: nothing put back
    }
    // SCHED_RR inside our groups at this run's first look, from an origin that was not
    // real-time: set by an earlier run of the daemon (origins survive a restart in the state file).
    const auto o = originals_.find(tid);
    const auto observed_group = tree_.controlGroupOf(facts->cgroups);
    t.realtime_ours |= first_look && facts->policy == cgroups::kSchedRr && observed_group &&
                       observed_group->starts_with(base + "/") && o != originals_.end() &&
                       !cgroups::isRealtimePolicy(o->second.policy);
    settings[target.group] = boost_moves ? cgroups::CpuSettings{100, false}
                                         : cgroups::CpuSettings{host->cpu_weight, host->idle, host->realtime > 0};
    PlanItem item{tid, std::move(target),
                  {observed_group, tree_.accountingGroupOf(facts->cgroups), facts->policy, facts->nice,
                   facts->rt_priority, facts->realtime, facts->realtime && t.realtime_ours}};
    // The slice is not in /proc: asked only where one is to be held.
    if (item.target.slice) item.observed.slice = cgroups::readCustomSlice(tid).value_or(Nanos(0));
    // Born in its target group (threads inherit their creator's): in place without a move.
    if (item.observed.group == item.target.group) {
      placements_version_ += !t.applied_group;
      t.applied_group = item.target.group;
    }
    items.push_back(std::move(item));
  }
  dirty_.clear();

  const Plan p = plan(items);
  for (const pid_t tid : p.realtime) {
    if (auto& t = threads_[tid]; !t.realtime_reported) {
      t.realtime_reported = true;
      ++stats_.realtime_skipped;
      log_.notice("tid {} is real-time (SCHED_FIFO/RR/DEADLINE); the kernel keeps it out of class groups, skipping",
                  tid);
    }
  }
  // Moves to one group go out as one batch: one open file, writes in a burst.
  std::map<std::pair<std::string, std::string>, std::vector<pid_t>> moves;  // (group, accounting class)
  for (const auto& a : p.actions) {
    if (a.kind != Action::Kind::kMove) continue;
    const auto& acct = a.target.accounting_group;
    moves[{a.target.group, acct.empty() ? std::string() : acct.substr(acct.rfind('/') + 1)}].push_back(a.tid);
  }
  setScheduling(p.before_moves);
  for (const auto& [to, tids] : moves) placeBatch(to.first, to.second, tids, settings[to.first]);
  setScheduling(p.actions);
  saveOriginals();
  stats_.reconcile_seconds.observe(static_cast<double>(monotonicNs() - started) / 1e9);
}

void Manager::setScheduling(const std::vector<Action>& actions) {
  for (const auto& a : actions) {
    if (a.kind != Action::Kind::kSetSched) continue;
    const auto t = threads_.find(a.tid);
    const bool ours = t != threads_.end() && t->second.realtime_ours;
    auto r = cgroups::setThreadSched(a.tid, {a.target.policy, a.target.nice, a.target.priority, a.target.slice}, ours);
    if (!r) {
      countFailure(r.error(), "set scheduling");
    } else if (*r == Outcome::kGone) {
      ++stats_.gone;
    } else if (*r == Outcome::kDone) {
      ++stats_.sched_changes;
      if (t == threads_.end()) continue;
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

// The class's slice for a fair thread, the default back for one that had ours, else nothing: a
// slice its owner chose stays.
std::optional<Nanos> Manager::sliceFor(const policy::ClassSpec& spec, const Thread& t, bool realtime) {
  if (spec.slice.count() > 0 && !kernel_has_slices) {
    if (!std::exchange(slice_ignored_said_, true)) {
      log_.notice("class {} has a slice, but this kernel has no custom EEVDF slices (Linux 6.12+): ignored", spec.name);
    }
    return std::nullopt;
  }
  if (realtime || !kernel_has_slices) return std::nullopt;
  if (spec.slice.count() > 0) return spec.slice;
  return t.slice_ours ? std::optional(Nanos(0)) : std::nullopt;
}

void Manager::recordOriginal(pid_t tid, pid_t tgid, const cgroups::ThreadFacts& facts) {
  // Threads inherit their creator's cgroups and policy (KERNEL_NOTES), so a thread first seen
  // inside our tree was born there: its origin is its process's, and a child process's main
  // thread's (a PostgreSQL backend forked after the daemon placed the postmaster) is its parent
  // process's. The state file keeps origins across a crash; a thread with no known origin goes
  // to the root on restore.
  const auto group = tree_.controlGroupOf(facts.cgroups);
  const auto process = processes_.find(tgid);
  const bool born_inside = group && process != processes_.end() && group->starts_with(process->second.base + "/");
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

void Manager::placeBatch(const std::string& group, const std::string& accounting_class, const std::vector<pid_t>& tids,
                         cgroups::CpuSettings settings) {
  const auto slash = group.rfind('/');
  const std::string base = group.substr(0, slash), cls = group.substr(slash + 1);
  const std::string accounting = accounting_class.empty() ? cls : accounting_class;
  for (const std::string& c : {cls, accounting}) {
    const std::string g = base + "/" + c;
    if (ensured_.contains(g)) continue;
    // A class running in another's group has only its accounting group (none on pure v2).
    auto r = c == cls ? tree_.ensureClass(base, c, settings) : tree_.ensureAccounting(base, c);
    if (!r) {
      log_.error("cannot set up group {}: {}", g, r.error().message);
      for (size_t i = 0; i < tids.size(); ++i) countFailure(r.error(), "");
      return;
    }
    ensured_.insert(g);
    squeezed_.erase(g);  // ensureClass lifted any cap
  }
  // A boost moves the control group only: the accounting mirror keeps the thread in its class,
  // so class CPU stays exact while boosted.
  auto placed = cls == kBoostGroup ? tree_.control().moveThreads(group, tids).map([](auto items) {
    return cgroups::ClassTree::Placement{std::move(items), 0};
  })
                                   : tree_.place(base, cls, tids, accounting);
  if (!placed) {
    countFailure(placed.error(), "move threads");
    return;
  }
  stats_.accounting_failures += placed->accounting_failures;
  const uint64_t now = monotonicNs();
  for (const auto& item : placed->items) {
    Thread& t = threads_[item.tid];
    if (!item.result) {
      countFailure(item.result.error(), "move tid " + std::to_string(item.tid));
    } else if (*item.result == Outcome::kGone) {
      ++stats_.gone;
      log_.debug("tid {} exited before its move", item.tid);
    } else if (*item.result == Outcome::kRealTime) {  // turned real-time since we looked
      log_.warning("tid {} is real-time and the kernel keeps it out of {}; looked at again at the next rescan", item.tid, group);
    } else if (*item.result == Outcome::kDone) {
      ++stats_.moves;
      if (t.applied_group == group) {
        ++stats_.drift_corrections;
        log_.info("tid {} was moved out of {} by someone else; put back", item.tid, group);
      }
      placements_version_ += !t.applied_group;
      t.applied_group = group;
      if (t.created_ns != 0 && now > t.created_ns) {
        stats_.placement_latency_seconds.observe(static_cast<double>(now - t.created_ns) / 1e9);
        stats_.placement_latency_us.push_back(static_cast<uint32_t>(std::min<uint64_t>((now - t.created_ns) / 1000, UINT32_MAX)));
        if (stats_.placement_latency_us.size() > 1'000'000) stats_.placement_latency_us.clear();
      }
      t.created_ns = 0;
      log_.debug("tid {} -> {} ({})", item.tid, group, t.decision.reason);
    }
  }
}

void Manager::restoreThread(pid_t tid) {
  const auto o = originals_.find(tid);
  if (o == originals_.end()) return;
  auto entries = cgroups::parseProcCgroup(o->second.cgroups);
  const auto& where = entries && !entries->empty() ? *entries : rootEntries();
  const auto t = threads_.find(tid);
  const auto p = t == threads_.end() ? processes_.end() : processes_.find(t->second.tgid);
  const std::string home = p == processes_.end() ? std::string() : p->second.base;
  // Scheduling first: a thread we made real-time may not enter a group without a real-time
  // budget (cgroup v1 RT group scheduling). One we do not know is from an earlier run, which
  // made it real-time if anyone did: its origin was not.
  if (!cgroups::isRealtimePolicy(o->second.policy)) {
    const bool ours = t == threads_.end() || t->second.realtime_ours;
    const bool slice_ours = t != threads_.end() && t->second.slice_ours;
    const auto slice = slice_ours ? std::optional(Nanos(0)) : std::nullopt;
    if (auto r = cgroups::setThreadSched(tid, {o->second.policy, o->second.nice, 0, slice}, ours); !r) {
      countFailure(r.error(), "restore scheduling of tid " + std::to_string(tid));
    } else if (t != threads_.end() && *r == Outcome::kDone) {
      t->second.realtime_ours = false;
    }
  }
  if (auto r = tree_.restore(tid, where, home); !r) countFailure(r.error(), "restore tid " + std::to_string(tid));
}

void Manager::restoreForeign(pid_t tid) {
  // A thread left in our groups by an earlier run for a process nobody manages now.
  const auto o = originals_.find(tid);
  auto facts = proc_.thread(tid, tid);  // any tid can be read as /proc/<tid>/task/<tid>
  const bool known = o != originals_.end() && facts && facts->start_time == o->second.start_time;
  if (known) {
    restoreThread(tid);
  } else if (auto r = tree_.restore(tid, rootEntries()); !r) {
    countFailure(r.error(), "restore tid " + std::to_string(tid));
  }
  originals_dirty_ |= originals_.erase(tid) > 0;
}

void Manager::restoreLeftovers() {
  const std::string& prefix = policy_.daemon.cgroup_prefix;
  if (!tree_.control().exists(prefix)) return;
  std::set<std::string> active;
  for (const auto& [pid, p] : processes_) active.insert(p.worker);
  for (const auto& worker : tree_.children(prefix).value_or(std::vector<std::string>{})) {
    for (const auto& cls : tree_.children(prefix + "/" + worker).value_or(std::vector<std::string>{})) {
      for (const pid_t tid : tree_.control().threads(prefix + "/" + worker + "/" + cls).value_or(std::vector<pid_t>{})) {
        if (!threads_.contains(tid)) restoreForeign(tid);
      }
    }
    if (!active.contains(worker)) {
      log_.info("removing groups of worker {} left by an earlier run", worker);
      const std::string base = cgroups::ClassTree::v1Base(prefix, worker);
      bases_.emplace(base, worker);
      tryRemoveGroups(base);
    }
  }
  // Originals of threads that no longer exist are of no use.
  for (auto it = originals_.begin(); it != originals_.end();) {
    if (threads_.contains(it->first)) {
      ++it;
    } else {
      it = originals_.erase(it);
      originals_dirty_ = true;
    }
  }
}

void Manager::reload(policy::Policy next) {
  const std::set<std::string> old_groups = ensured_;
  policy_ = std::move(next);
  // Cached class pointers point into the old policy: dropped now, set again by the rescan below.
  for (auto& [tid, t] : threads_) t.spec = nullptr;
  boostable_stale_ = true;
  stats_.last_reload_success_seconds = static_cast<double>(::time(nullptr));
  ensured_.clear();
  squeezed_.clear();  // groups that stay are configured again below, which lifts their caps
  unmatched_.clear();
  left_alone_.clear();  // looked at again: a worker may be delegated now
  ++stats_.reloads;
  // Workers are matched again first, so that classification below only meets known workers.
  std::vector<pid_t> pids;
  for (const auto& [pid, p] : processes_) pids.push_back(pid);
  for (const pid_t pid : pids) {
    const auto it = processes_.find(pid);
    if (it == processes_.end() || it->second.child || registered_.contains(it->second.worker)) continue;
    const auto* w = policy::matchWorker(policy_, it->second.facts);
    if (w == nullptr || w->name != it->second.worker) releaseProcess(pid);
  }
  for (auto it = registered_.begin(); it != registered_.end(); ++it) {
    if (policy_.findClass(it->second.default_class) == nullptr) it->second.default_class = "foreground";
  }
  std::vector<pid_t> orphans;
  for (const auto& [pid, p] : processes_) {
    if (workerSpec(p.worker) == nullptr) orphans.push_back(pid);  // children of released workers
  }
  for (const pid_t pid : orphans) releaseProcess(pid);
  // Class settings are rewritten in place on groups that stay.
  for (const auto& group : old_groups) {
    const auto slash = group.rfind('/');
    if (const auto* spec = policy_.findClass(group.substr(slash + 1)); spec != nullptr && spec->run_in.empty()) {
      if (auto r = tree_.ensureClass(group.substr(0, slash), spec->name, {spec->cpu_weight, spec->idle}); r) {
        ensured_.insert(group);
      } else {
        log_.error("cannot update group {}: {}", group, r.error().message);
      }
    }
  }
  rescan();
  // Groups of classes that no longer exist are empty now.
  for (const auto& group : old_groups) {
    if (!ensured_.contains(group)) {
      (void)tree_.control().removeGroup(group);
      if (const auto* acct = tree_.accounting()) (void)acct->removeGroup(group);
    }
  }
}

void Manager::stop() {
  if (policy_.daemon.on_stop == policy::OnStop::kKeep) {
    // Boosts and squeezes never outlive the daemon: boosted threads go back to their classes first.
    for (const pid_t tid : book_.boostedThreads()) endBoost(tid, Nanos(monotonicNs()));
    for (const auto& group : squeezed_) (void)tree_.control().setCpuQuota(group, std::nullopt);
    squeezed_.clear();
    // Nor does real-time outlive its guard: realtime classes keep their groups but run fair.
    for (const auto& [tid, t] : threads_) {
      if (t.spec == nullptr || t.spec->realtime == 0) continue;
      realtime_held_back_.insert(t.class_group);
      dirty_.emplace(tid, t.tgid);
    }
    reconcile();
    saveOriginals();
    log_.info("stopping; threads keep their classes (on_stop: keep)");
    return;
  }
  for (const auto& [tid, t] : threads_) restoreThread(tid);
  std::set<std::string> bases = pending_removal_;
  for (const auto& [pid, p] : processes_) bases.insert(p.base);
  for (const auto& base : bases) {
    if (auto r = tree_.removeBase(base); !r) log_.warning("{}, ignoring", r.error().message);
  }
  for (const cgroups::Hierarchy* h : {&tree_.control(), tree_.accounting()}) {
    if (h != nullptr && h->children(policy_.daemon.cgroup_prefix).value_or(std::vector<std::string>{"x"}).empty()) {
      (void)h->removeGroup(policy_.daemon.cgroup_prefix);
    }
  }
  if (auto r = state_.remove(); !r) log_.warning("{}, ignoring", r.error().message);
  log_.info("stopped; {} threads restored to their original groups and scheduling", threads_.size());
}

void Manager::forgetBoostState(pid_t tid) {
  if (auto e = book_.end(tid, Nanos(monotonicNs()))) {
    const auto t = threads_.find(tid);
    if (t != threads_.end()) {
      boost_counters_[classGroupOf(t->second)].boosted_seconds += std::chrono::duration<double>(e->duration).count();
    }
  }
  book_.forget(tid);
  probes_.erase(tid);
  pinned_.erase(tid);
  detector_.forget(tid);
  hot_.erase(tid);
  recheck_.erase(tid);
  boostable_stale_ = true;
  waiters_.erase(tid);
  for (auto& [holder, ws] : waiters_) ws.erase(tid);
}

void Manager::finishBoost(const EndedBoost& e) {
  pinned_.erase(e.tid);
  if (on_boost) on_boost(e.tid, false);
  if (const auto t = threads_.find(e.tid); t != threads_.end()) {
    boost_counters_[classGroupOf(t->second)].boosted_seconds += std::chrono::duration<double>(e.duration).count();
    dirty_.emplace(e.tid, t->second.tgid);  // reconcile moves it back to its class
  }
}

void Manager::boostStarted(pid_t tid, Thread& t) {
  t.switches_at_boost = proc_.voluntarySwitches(t.tgid, tid).value_or(UINT64_MAX);
  dirty_.emplace(tid, t.tgid);
  if (on_boost) on_boost(tid, true);
}

// Voluntary context switches since its last boost began: it slept (a boost that ran out its
// window may have served items back to back, faster than a poll could see it asleep).
bool Manager::sleptSinceBoost(pid_t tid) const {
  const auto t = threads_.find(tid);
  if (t == threads_.end()) return false;
  const auto n = proc_.voluntarySwitches(t->second.tgid, tid);
  return n && *n > t->second.switches_at_boost;
}

void Manager::endBoost(pid_t tid, Nanos now) {
  if (auto e = book_.end(tid, now)) finishBoost(*e);
}


Manager::StarvationPoll Manager::pollStarvation(Nanos now) {
  StarvationPoll out;
  for (const auto& e : book_.expire(now, [this](pid_t tid) { return sleptSinceBoost(tid); })) {
    finishBoost(e);
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
    squeezeIdleGroups(now);
    guardRealtime(now);
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
    if (boosts_move_ && policy_.daemon.fast_moves && (waited || reports || book_.active() > 0)) keepMovesFast();
    // Nothing waited lately and nothing is boosted, squeezed or due: every other poll is skipped,
    // which halves the wake-ups of a quiet host; a first wait is seen at most a poll later.
    if (!waited && book_.active() == 0 && recheck_.empty() && squeezed_.empty()) {
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
  reconcile();
  out.next = next_full_poll_;
  for (const auto& [tid, due] : recheck_) out.next = std::min(out.next, due);
  return out;
}

bool Manager::pollHasWork() const {
  if (boostable_stale_ || !boostable_.empty() || book_.active() > 0 || !recheck_.empty() || !new_children_.empty()) {
    return true;
  }
  return std::any_of(ensured_.begin(), ensured_.end(), [&](const std::string& group) {
    const auto* spec = policy_.findClass(group.substr(group.rfind('/') + 1));
    return spec != nullptr && ((spec->idle && spec->squeeze && spec->run_in.empty()) || spec->realtime > 0);
  });
}

// Offload only on idle CPU. A SCHED_IDLE thread in a cpu.idle group still runs whenever its CPU
// has nothing else queued, and the load balancer, counting a heavy foreground group as load,
// leaves background threads queued on the other CPU: bulk offload took 5-25% of a machine whose
// background threads were waiting (docs/boosting.md, "Round 4"). So in every kSqueezeWindow in
// which a busy (non-idle) class group waited for CPU a quarter of the time or more (its PSI),
// idle groups are capped to kSqueezeQuota per period for the next window: their CPU goes really
// idle and the balancer pulls a waiting thread over at once. The window is long enough that the
// short waits any wake-up costs do not count: judged per 10 ms poll, they squeezed offload off
// a half-idle machine. Boosted threads are in _boost, outside the cap. No PSI, no squeeze.
void Manager::squeezeIdleGroups(Nanos now) {
  if (now < next_squeeze_check_) return;
  next_squeeze_check_ = now + kSqueezeWindow;
  bool waited = false;
  std::vector<std::string> idle_groups;
  for (const auto& group : ensured_) {
    const auto slash = group.rfind('/');
    const auto* spec = policy_.findClass(group.substr(slash + 1));
    if (spec == nullptr || !spec->run_in.empty()) continue;  // _boost, or an accounting group only
    if (spec->idle) {
      if (spec->squeeze) idle_groups.push_back(group);
      continue;
    }
    if (const auto psi = pressureOf(group)) {
      const Nanos total = *psi;
      const auto [seen, first] = busy_pressure_seen_.try_emplace(group, Reading{total, now});
      if (first) continue;  // a baseline
      waited |= total - seen->second.total >= (now - seen->second.at) / kSqueezeWaitDivisor;
      seen->second = {total, now};
    }
  }
  std::erase_if(busy_pressure_seen_, [&](const auto& e) { return !ensured_.contains(e.first); });
  std::erase_if(pressure_files_, [&](const auto& e) { return !ensured_.contains(e.first); });
  std::erase_if(squeezed_, [&](const std::string& g) { return !ensured_.contains(g); });
  for (const auto& group : idle_groups) {
    if (squeezed_.contains(group) == waited) continue;
    if (auto r = tree_.control().setCpuQuota(group, waited ? std::optional(kSqueezeQuota) : std::nullopt); !r) {
      if (!std::exchange(squeeze_failed_, true)) log_.warning("cannot squeeze {} (logged once): {}", group, r.error().message);
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
void Manager::guardRealtime(Nanos now) {
  if (now < next_realtime_check_) return;
  next_realtime_check_ = now + kRealtimeWindow;
  static const double cpus = static_cast<double>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  std::set<std::string> changed;
  for (const auto& group : ensured_) {
    const auto slash = group.rfind('/');
    const auto* spec = policy_.findClass(group.substr(slash + 1));
    if (spec == nullptr || spec->realtime == 0) continue;
    const auto usage = tree_.usage(group.substr(0, slash), spec->name);
    if (!usage) continue;  // gone with its worker; ensured_ forgets it
    const auto [seen, first] = realtime_usage_seen_.try_emplace(group, Reading{*usage, now});
    if (first || now <= seen->second.at) continue;
    const double share = static_cast<double>((*usage - seen->second.total).count()) /
                         (static_cast<double>((now - seen->second.at).count()) * cpus);
    seen->second = {*usage, now};
    const bool over = share > spec->realtime_limit;
    if (over == realtime_held_back_.contains(group)) continue;
    // Said once per group at info (a class near its limit switches often), then at debug.
    const bool first_time = realtime_limit_logged_.insert(group).second;
    if (over) {
      realtime_held_back_.insert(group);
      ++stats_.realtime_held_back;
      log_.log(first_time ? LogLevel::kInfo : LogLevel::kDebug,
               "{} used {:.0f}% of the CPUs, over its realtime_limit: fair scheduling until a window under it", group,
               share * 100);
    } else {
      realtime_held_back_.erase(group);
      log_.debug("{} is under its realtime_limit again: real-time", group);
    }
    changed.insert(group);
  }
  std::erase_if(realtime_usage_seen_, [&](const auto& e) { return !ensured_.contains(e.first); });
  std::erase_if(realtime_held_back_, [&](const std::string& g) { return !ensured_.contains(g); });
  std::erase_if(realtime_limit_logged_, [&](const std::string& g) { return !ensured_.contains(g); });
  if (changed.empty()) return;
  for (const auto& [tid, t] : threads_) {
    if (changed.contains(t.class_group)) dirty_.emplace(tid, t.tgid);
  }
}

void Manager::refreshBoostable() {
  if (!boostable_stale_) return;
  boostable_.clear();
  boosts_move_ = false;
  for (const auto& [tid, t] : threads_) {
    if (t.spec == nullptr || !t.spec->boost) continue;
    boostable_[t.class_group].push_back(tid);
    boosts_move_ |= t.spec->run_in.empty();
  }
  std::erase_if(sweeps_, [&](const auto& e) { return !boostable_.contains(e.first); });
  std::erase_if(pressure_seen_, [&](const auto& e) { return !boostable_.contains(e.first); });
  boostable_stale_ = false;
}

// A boost of a class with a group of its own moves the thread, and an isolated move waits for an
// RCU grace period (~6.5 ms here): most of a wait report's latency, and part of detection's.
// Kept warm every poll, the move takes ~20 us (docs/boosting.md, "Round 7").
void Manager::keepMovesFast() {
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

std::optional<std::chrono::microseconds> Manager::pressureOf(const std::string& group) {
  auto it = pressure_files_.find(group);
  if (it == pressure_files_.end()) {
    const auto slash = group.rfind('/');
    auto opened = tree_.keepPressureFile(group.substr(0, slash), group.substr(slash + 1));
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

bool Manager::sweepIdle(Nanos now) {
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
uint64_t Manager::quietPolls(const std::string& group, bool every_poll) {
  auto& seen = pressure_seen_[group];
  const bool quiet = polls_ - seen.grew_at >= kQuietPolls;
  if (every_poll || quiet || polls_ - seen.read_at >= kQuietPolls) {
    const auto psi = pressureOf(group);
    if (!psi) return 0;
    const auto total = static_cast<uint64_t>(psi->count());
    if (total != seen.total) seen.grew_at = polls_;
    seen.total = total;
    seen.read_at = polls_;
  }
  return polls_ - seen.grew_at;
}

Result<LiveSample> Manager::sample(cgroups::ThreadProbe& probe, pid_t tid, Nanos now, double starved_below) {
  LiveSample s;
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

bool Manager::lookAt(pid_t tid, Nanos now) {
  const auto found = threads_.find(tid);
  const auto* spec = found == threads_.end() ? nullptr : classOf(found->second);
  if (spec == nullptr || !spec->boost) {  // exited, or its class has no boost any more
    hot_.erase(tid);
    return false;
  }
  Thread& t = found->second;
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
  const Look verdict = detector_.observe(tid, now, *s, spec->boost->starved_below);
  if (book_.boosted(tid)) {
    // Done with its work: asleep again. A holder someone waits on keeps its boost.
    const auto w = waiters_.find(tid);
    if (s->state != 'R' && (w == waiters_.end() || w->second.empty()) && !pinned_.contains(tid)) {
      endBoost(tid, now);
      return true;
    }
    return false;
  }
  if (verdict == Look::kRecheck) recheck_[tid] = now + policy_.daemon.starvation_poll / kRecheckDivisor;
  if (verdict != Look::kStarving) return false;
  auto& counters = boost_counters_[classGroupOf(t)];
  ++counters.starvation_events;
  const auto process = processes_.find(t.tgid);
  if (process == processes_.end()) return false;
  const auto verdict_of_book = book_.request(tid, process->second.worker, now, limitsOf(*spec->boost), false,
                                             [this](pid_t other) { return sleptSinceBoost(other); });
  if (verdict_of_book == BoostVerdict::kStarted) {
    ++counters.boosts_started;
    boostStarted(tid, t);
    log_.debug("tid {} starves in {}; boosted", tid, classGroupOf(t));
    return true;
  }
  if (refused(verdict_of_book)) ++counters.boosts_refused;
  return false;
}

Result<BoostVerdict> Manager::reportWait(pid_t waiter, pid_t holder, Nanos now) {
  Thread* const h = managedThread(holder);
  if (h == nullptr || managedThread(waiter) == nullptr) {
    return fail(ESRCH, "thread " + std::to_string(h == nullptr ? holder : waiter) + " is not managed");
  }
  const auto* spec = classOf(*h);
  if (spec == nullptr || !spec->boost) {
    return fail(EINVAL, "thread " + std::to_string(holder) + " is in class " + h->decision.class_name +
                            ", which has no boost");
  }
  waiters_[holder].insert(waiter);
  last_report_ = now;
  auto& counters = boost_counters_[classGroupOf(*h)];
  const auto process = processes_.find(h->tgid);
  if (process == processes_.end()) return fail(ESRCH, "thread " + std::to_string(holder) + " is not managed");
  const auto verdict = book_.request(holder, process->second.worker, now, limitsOf(*spec->boost), true);
  if (verdict == BoostVerdict::kStarted) {
    ++counters.boosts_started;
    boostStarted(holder, *h);
    reconcile();
  } else if (verdict == BoostVerdict::kAlreadyBoosted) {
    dirty_.emplace(holder, h->tgid);  // a detected boost becomes a reported one: wait_nice
    reconcile();
  } else if (refused(verdict)) {
    ++counters.boosts_refused;
  }
  return verdict;
}

Result<void> Manager::endWait(pid_t waiter, pid_t holder, Nanos now) {
  const auto w = waiters_.find(holder);
  if (w == waiters_.end() || w->second.erase(waiter) == 0) {
    return fail(ENOENT, "thread " + std::to_string(waiter) + " reported no wait on " + std::to_string(holder));
  }
  if (w->second.empty()) {
    waiters_.erase(w);
    if (book_.boosted(holder)) {
      endBoost(holder, now);
      reconcile();
    }
  }
  return {};
}

Manager::Thread* Manager::managedThread(pid_t tid) {
  if (const auto it = threads_.find(tid); it != threads_.end()) return &it->second;
  // A call can overtake the proc connector event of a thread or process just started (a thread
  // that tags itself as it starts). Its process is its Tgid: a thread's TID names no process.
  const auto tgid = proc_.tgidOf(tid);
  if (!tgid) return nullptr;
  considerProcess(*tgid);
  if (processes_.contains(*tgid)) {
    dirty_.emplace(tid, *tgid);
    reconcile();
  }
  const auto it = threads_.find(tid);
  return it == threads_.end() ? nullptr : &it->second;
}

Result<void> Manager::setThreadClass(pid_t tid, const std::string& cls) {
  if (policy_.findClass(cls) == nullptr) return fail(ENOENT, "no class named '" + cls + "'");
  Thread* t = managedThread(tid);
  if (t == nullptr) return fail(ESRCH, "thread " + std::to_string(tid) + " is not managed");
  t->requested_class = cls;
  dirty_.emplace(tid, t->tgid);
  reconcile();
  return {};
}

Result<void> Manager::resetThreadClass(pid_t tid) {
  Thread* t = managedThread(tid);
  if (t == nullptr) return fail(ESRCH, "thread " + std::to_string(tid) + " is not managed");
  t->requested_class.reset();
  dirty_.emplace(tid, t->tgid);
  reconcile();
  return {};
}

Result<Manager::Explanation> Manager::explain(pid_t tid) {
  const Thread* t = managedThread(tid);
  if (t == nullptr) return fail(ESRCH, "thread " + std::to_string(tid) + " is not managed");
  const auto p = processes_.find(t->tgid);
  if (p == processes_.end()) return fail(ESRCH, "thread " + std::to_string(tid) + " is not managed");
  return Explanation{p->second.worker, t->decision.class_name,
                     fmt::format("{}; its process {} is managed: {}", t->decision.reason, t->tgid, p->second.why),
                     t->applied_group.value_or(""), book_.boosted(tid)};
}

std::vector<Manager::WorkerInfo> Manager::workers() const {
  std::map<pid_t, uint64_t> counts;
  for (const auto& [tid, t] : threads_) ++counts[t.tgid];
  std::vector<WorkerInfo> out;
  for (const auto& [pid, p] : processes_) {
    const auto c = counts.find(pid);
    out.push_back({p.worker, pid, c == counts.end() ? 0 : c->second, p.child});
  }
  return out;
}

const policy::WorkerSpec* Manager::workerSpec(const std::string& name) const {
  if (const auto* w = policy_.findWorker(name)) return w;
  const auto it = registered_.find(name);
  return it == registered_.end() ? nullptr : &it->second;
}

Result<void> Manager::registerWorker(pid_t pid, const std::string& name, const std::string& default_class) {
  static const std::regex kName("[a-z0-9][a-z0-9_.-]{0,63}");
  if (!std::regex_match(name, kName)) return fail(EINVAL, "worker name '" + name + "' must match [a-z0-9][a-z0-9_.-]{0,63}");
  if (policy_.findWorker(name) != nullptr) return fail(EINVAL, "worker name '" + name + "' belongs to the policy");
  if (policy_.findClass(default_class) == nullptr) return fail(ENOENT, "no class named '" + default_class + "'");
  if (const auto p = processes_.find(pid); p != processes_.end()) {
    return fail(EBUSY, "process " + std::to_string(pid) + " is already managed as worker " + p->second.worker);
  }
  auto main = proc_.thread(pid, pid);
  if (!main) return fail(ESRCH, "no process " + std::to_string(pid));
  const bool known_name = registered_.contains(name);
  auto& spec = registered_[name];
  spec.name = name;
  spec.default_class = default_class;
  spec.default_where = {};
  policy::ProcessFacts facts;
  facts.comm = main->comm;
  facts.cgroup = cgroups::cgroupPathOf(main->cgroups, "").value_or("");
  if (auto r = addProcess(pid, main->start_time, name, false, std::move(facts), "registered itself as worker " + name);
      !r) {
    if (!known_name) registered_.erase(name);
    return r;
  }
  reconcile();
  return {};
}

Result<void> Manager::unregisterWorker(pid_t pid) {
  const auto p = processes_.find(pid);
  if (p == processes_.end() || !registered_.contains(p->second.worker)) {
    return fail(ESRCH, "process " + std::to_string(pid) + " did not register as a worker");
  }
  releaseProcess(pid);
  return {};
}

std::vector<Manager::ThreadInfo> Manager::threadsOf(const std::string& worker) const {
  std::vector<ThreadInfo> out;
  for (const auto& [tid, t] : threads_) {
    const auto p = processes_.find(t.tgid);
    if (p == processes_.end() || (!worker.empty() && p->second.worker != worker)) continue;
    auto facts = proc_.thread(t.tgid, tid);
    out.push_back({tid, t.tgid, facts ? facts->comm : "?", t.decision.class_name, t.applied_group.value_or(""),
                   book_.boosted(tid)});
  }
  return out;
}

Result<BoostVerdict> Manager::boost(pid_t tid, Nanos window, Nanos now) {
  Thread* t = managedThread(tid);
  if (t == nullptr) return fail(ESRCH, "thread " + std::to_string(tid) + " is not managed");
  const auto* spec = classOf(*t);
  if (spec == nullptr || !spec->boost) {
    return fail(EINVAL, "thread " + std::to_string(tid) + " is in class " + t->decision.class_name + ", which has no boost");
  }
  auto limits = limitsOf(*spec->boost);
  limits.window = window;
  const auto process = processes_.find(t->tgid);
  if (process == processes_.end()) return fail(ESRCH, "thread " + std::to_string(tid) + " is not managed");
  const auto verdict = book_.request(tid, process->second.worker, now, limits, true);
  auto& counters = boost_counters_[classGroupOf(*t)];
  if (!refused(verdict)) pinned_.insert(tid);
  if (verdict == BoostVerdict::kStarted) {
    ++counters.boosts_started;
    boostStarted(tid, *t);
    reconcile();
  } else if (refused(verdict)) {
    ++counters.boosts_refused;
  }
  return verdict;
}

std::optional<double> Manager::classCpuSeconds(const std::string& base, const std::string& cls) const {
  auto usage = tree_.usage(base, cls);
  if (!usage) return std::nullopt;
  return static_cast<double>(usage->count()) / 1e9;
}

void Manager::countFailure(const Error& e, std::string_view what) {
  ++stats_.failures[errnoName(e.code)];
  if (!what.empty()) log_.warning("{}: {}", what, e.message);
}

void Manager::saveOriginals() {
  if (!originals_dirty_) return;
  if (auto r = state_.save(originals_); !r) {
    log_.warning("{}, ignoring: a crash now would lose where threads came from", r.error().message);
    return;
  }
  originals_dirty_ = false;
}

}  // namespace cpuclass::daemon
