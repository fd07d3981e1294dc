#include "daemon/discovery.h"

#include <time.h>
#include <unistd.h>

#include <regex>
#include <utility>

namespace cpuclass::daemon {
namespace {

using cgroups::ProcEvent;

// A forked server process retitles itself within milliseconds of its fork (a PostgreSQL backend
// once its client is authenticated). Until the periodic rescan reads the new title it runs in
// its worker's default class: a pg_dump's backend ran its COPY as foreground for most of each
// 2 s rescan interval (docs/engines.md). So a new child is re-read at every starvation poll until
// its title first changes, for this long at most.
constexpr Nanos kNewChildTitleWatch = std::chrono::seconds(2);

std::string cgroupOf(const std::vector<cgroups::CgroupEntry>& groups) {
  return cgroups::cgroupPathOf(groups, "").value_or(cgroups::cgroupPathOf(groups, "cpu").value_or(""));
}

}  // namespace

Discovery::Discovery(const policy::Policy& policy, const cgroups::ProcFs& proc, const Clock& clock, Stats& stats,
                     Logger& log, Listener& listener)
    : policy_(policy), proc_(proc), clock_(clock), stats_(stats), log_(log), listener_(listener) {}

void Discovery::considerProcess(pid_t pid, std::string_view why) {
  // Every rescan comes here for every process: one stat read settles the known ones.
  const auto st = proc_.stat(pid, pid);
  if (!st) return;  // exited, or not a process (a thread id): nothing to do
  if (const auto it = reg_.processes.find(pid); it != reg_.processes.end()) {
    if (it->second.start_time == st->start_time) {
      it->second.num_threads = st->num_threads;
      return;
    }
    forgetProcess(pid);  // the PID was reused
  }
  if (st->kthread) return;
  // An unmatched process is looked at again once its parent is managed: a child process.
  if (const auto it = unmatched_.find(pid);
      it != unmatched_.end() && it->second.start_time == st->start_time && !reg_.processes.contains(st->ppid)) {
    return;
  }
  if (const auto it = left_alone_.find(pid); it != left_alone_.end() && it->second.start_time == st->start_time) return;
  const auto groups = proc_.cgroups(pid, pid);  // only a process still to match needs them
  if (!groups) return;

  policy::ProcessFacts facts;
  facts.comm = st->comm;
  facts.exe = proc_.exe(pid).value_or("");
  facts.cmdline = proc_.cmdline(pid).value_or("");
  facts.cgroup = cgroupOf(*groups);
  addContainerMeta(facts);

  // A child of a managed process belongs to the parent's worker, even if it matches a worker
  // itself (a helper in the same systemd unit, say): process rules then decide its class.
  if (const auto parent = reg_.processes.find(st->ppid); parent != reg_.processes.end()) {
    const std::string owner = parent->second.worker;
    if (addProcess(pid, st->start_time, owner, true, std::move(facts),
                   fmt::format("a child process of pid {} (worker {})", st->ppid, owner))) {
      reg_.processes[pid].parent = st->ppid;  // where it came from, for restore (Placer::recordOriginal)
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

std::string Discovery::matchedWhy(const policy::WorkerSpec& worker, std::string_view why) const {
  std::string text = "matched by worker " + worker.name + " at " + worker.where.str();
  if (!why.empty()) text.append(" ").append(why);
  return text;
}

void Discovery::addContainerMeta(policy::ProcessFacts& facts) {
  if (!policy::needsContainerMeta(policy_)) return;
  const auto c = policy::parseContainer(facts.cgroup);
  facts.container_meta = c && !c->id.empty() ? containers_.lookup(c->id) : std::nullopt;
}

void Discovery::recheckSilentFacts() {
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
        if (auto now = cgroupOf(*groups); now != u.facts.cgroup) {
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
  for (auto& [pid, p] : reg_.processes) {
    if (p.child && readsTitle(p)) retitled(pid, p);
  }
}

bool Discovery::readsTitle(const Process& p) const {
  const auto* spec = workerSpec(p.worker);
  return spec != nullptr && policy::processRulesReadCmdline(*spec);
}

bool Discovery::retitled(pid_t pid, Process& p) {
  auto now = proc_.cmdline(pid);
  if (!now || *now == p.facts.cmdline) return false;
  log_.debug("pid {} of worker {}: its command line is now '{}'", pid, p.worker, *now);
  p.facts.cmdline = std::move(*now);
  markThreadsDirty(pid);
  return true;
}

bool Discovery::retitleNewChildren(Nanos now) {
  bool changed = false;
  for (auto it = new_children_.begin(); it != new_children_.end();) {
    const auto p = reg_.processes.find(it->first);
    if (p == reg_.processes.end() || it->second <= now) {
      it = new_children_.erase(it);
    } else if (retitled(it->first, p->second)) {
      changed = true;
      it = new_children_.erase(it);
    } else {
      ++it;
    }
  }
  return changed;
}

Result<void> Discovery::addProcess(pid_t pid, uint64_t start_time, std::string worker, bool child,
                                   policy::ProcessFacts facts, std::string why) {
  unmatched_.erase(pid);
  auto base = listener_.baseFor(pid, worker, facts);
  if (!base) {
    // EAGAIN: an answer is on its way (retryLeftAlone); anything else stays until exec or reload.
    log_.log(base.error().code == EAGAIN ? LogLevel::kDebug : LogLevel::kWarning, "worker {}: leaving pid {} ({}) alone: {}",
             worker, pid, facts.comm, base.error().message);
    left_alone_[pid] = {worker, facts.cgroup, base.error().message, start_time};
    return tl::unexpected(base.error());
  }
  left_alone_.erase(pid);
  Process p{start_time, std::move(worker), std::move(*base), child, std::move(facts), {}};
  p.why = std::move(why);
  if (auto fd = cgroups::ProcFs::openPidfd(pid)) p.pidfd = std::move(*fd);
  log_.info("managing pid {} ({}): {}", pid, p.facts.comm, p.why);
  if (child && readsTitle(p)) new_children_[pid] = clock_.now() + kNewChildTitleWatch;
  reg_.processes.emplace(pid, std::move(p));
  markThreadsDirty(pid);
  return {};
}

void Discovery::markThreadsDirty(pid_t pid) {
  if (auto tids = proc_.threads(pid)) {
    for (const pid_t tid : *tids) reg_.markDirty(tid, pid);
  }
}

void Discovery::markAllDirty() {
  for (const auto& [pid, p] : reg_.processes) markThreadsDirty(pid);
}

void Discovery::forgetThread(pid_t tid) {
  listener_.threadForgotten(tid);
  reg_.dirty.erase(tid);
  reg_.placements_version += reg_.threads.erase(tid);
}

void Discovery::forgetProcess(pid_t pid) {
  const auto it = reg_.processes.find(pid);
  if (it == reg_.processes.end()) return;
  const std::string base = it->second.base;
  const std::string worker = it->second.worker;
  reg_.processes.erase(it);
  new_children_.erase(pid);
  std::vector<pid_t> tids;
  for (const auto& [tid, t] : reg_.threads) {
    if (t.tgid == pid) tids.push_back(tid);
  }
  for (const pid_t tid : tids) forgetThread(tid);
  // A registration ends with its worker's last process.
  const auto uses = [&](auto pred) { return std::any_of(reg_.processes.begin(), reg_.processes.end(), pred); };
  if (!uses([&](const auto& e) { return e.second.worker == worker; })) registered_.erase(worker);
  if (!uses([&](const auto& e) { return e.second.base == base; })) listener_.baseUnused(base);
}

void Discovery::releaseProcess(pid_t pid) {
  listener_.releasing(pid);
  log_.info("released pid {}: its threads are back where they were", pid);
  forgetProcess(pid);
}

void Discovery::handleEvents(const std::vector<ProcEvent>& events) {
  for (const auto& ev : events) {
    ++stats_.proc_events;
    switch (ev.kind) {
      case ProcEvent::Kind::kFork:
        if (ev.isNewThread()) {
          if (reg_.processes.contains(ev.tgid)) {
            reg_.markDirty(ev.tid, ev.tgid);
            reg_.threads[ev.tid].created_ns = ev.timestamp_ns;
            reg_.threads[ev.tid].tgid = ev.tgid;
          }
        } else if (reg_.processes.contains(ev.parent_tgid)) {
          considerProcess(ev.tgid);
        }
        break;
      case ProcEvent::Kind::kExec:
        // A new program: looked at afresh, also one left alone (a launcher that moved itself into
        // a delegated cgroup and then executed the worker).
        unmatched_.erase(ev.tgid);
        left_alone_.erase(ev.tgid);
        if (const auto it = reg_.processes.find(ev.tgid); it != reg_.processes.end() && !it->second.child) {
          releaseProcess(ev.tgid);  // a new program: match it again from scratch
        } else if (it != reg_.processes.end()) {
          forgetProcess(ev.tgid);  // children are re-added below, with their new comm and exe
        }
        considerProcess(ev.tgid, "after exec");
        break;
      case ProcEvent::Kind::kComm:
        if (ev.tid == ev.tgid) {
          renamedProcess(ev.tgid, ev.comm);
        } else if (reg_.processes.contains(ev.tgid)) {
          reg_.markDirty(ev.tid, ev.tgid);
        }
        break;
      case ProcEvent::Kind::kExit:
        if (ev.tid == ev.tgid) {
          unmatched_.erase(ev.tgid);
          forgetProcess(ev.tgid);
        } else if (reg_.threads.contains(ev.tid)) {
          forgetThread(ev.tid);
        }
        break;
    }
  }
}

void Discovery::renamedProcess(pid_t pid, const std::string& comm) {
  // The main thread's name is the process's comm, which worker matches and process rules read.
  const std::string why = fmt::format("after it renamed itself to '{}'", comm);
  const auto it = reg_.processes.find(pid);
  if (it == reg_.processes.end()) {
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
  reg_.markDirty(pid, pid);  // thread rules see the main thread's new name
  if (registered_.contains(p.worker)) return;
  const auto* w = policy::matchWorker(policy_, p.facts);
  if (w != nullptr && w->name == p.worker) return;
  log_.info("pid {} renamed itself to '{}' and is no longer worker {}'s: matching it again", pid, comm, p.worker);
  releaseProcess(pid);
  considerProcess(pid, why);
}

bool Discovery::scanProcesses() {
  auto pids = proc_.processes();
  if (!pids) {
    countFailure(stats_, pids.error());
    log_.warning("list /proc: {}", pids.error().message);
    return false;
  }
  const std::set<pid_t> live(pids->begin(), pids->end());
  std::vector<pid_t> gone;
  for (const auto& [pid, p] : reg_.processes) {
    if (!live.contains(pid)) gone.push_back(pid);
  }
  for (const pid_t pid : gone) forgetProcess(pid);
  std::erase_if(unmatched_, [&](const auto& e) { return !live.contains(e.first); });
  std::erase_if(left_alone_, [&](const auto& e) { return !live.contains(e.first); });
  // Parents before children: repeat while a pass adds processes, so a child seen before its
  // parent (PID wrap-around) is still found.
  for (size_t before = SIZE_MAX; before != reg_.processes.size();) {
    before = reg_.processes.size();
    for (const pid_t pid : *pids) considerProcess(pid);
  }
  recheckSilentFacts();
  return true;
}

void Discovery::rematch() {
  unmatched_.clear();
  left_alone_.clear();  // looked at again: a worker may be delegated now
  // Workers are matched again first, so that classification only meets known workers.
  std::vector<pid_t> pids;
  for (const auto& [pid, p] : reg_.processes) pids.push_back(pid);
  for (const pid_t pid : pids) {
    const auto it = reg_.processes.find(pid);
    if (it == reg_.processes.end() || it->second.child || registered_.contains(it->second.worker)) continue;
    const auto* w = policy::matchWorker(policy_, it->second.facts);
    if (w == nullptr || w->name != it->second.worker) releaseProcess(pid);
  }
  for (auto& [name, spec] : registered_) {
    if (policy_.findClass(spec.default_class) == nullptr) spec.default_class = "foreground";
  }
  std::vector<pid_t> orphans;
  for (const auto& [pid, p] : reg_.processes) {
    if (workerSpec(p.worker) == nullptr) orphans.push_back(pid);  // children of released workers
  }
  for (const pid_t pid : orphans) releaseProcess(pid);
}

void Discovery::retryLeftAlone(const std::function<bool(const LeftAlone&)>& which) {
  std::vector<pid_t> pids;
  for (const auto& [pid, p] : left_alone_) {
    if (which(p)) pids.push_back(pid);
  }
  for (const pid_t pid : pids) {
    left_alone_.erase(pid);
    considerProcess(pid, "after systemd answered");
  }
}

std::optional<Discovery::Seen> Discovery::look(pid_t tid, pid_t tgid) {
  const auto process = reg_.processes.find(tgid);
  if (process == reg_.processes.end()) return std::nullopt;
  auto facts = proc_.thread(tgid, tid);
  if (!facts) {
    if (!isGone(facts.error())) {
      countFailure(stats_, facts.error());
      log_.warning("read thread: {}", facts.error().message);
    }
    forgetThread(tid);
    return std::nullopt;
  }
  Thread& t = reg_.threads[tid];
  if (t.start_time != 0 && t.start_time != facts->start_time) {  // TID reused
    t = Thread{};
    ++reg_.placements_version;
  }
  t.tgid = tgid;
  t.start_time = facts->start_time;
  return Seen{t, process->second, std::move(*facts)};
}

Thread* Discovery::find(pid_t tid) {
  if (const auto it = reg_.threads.find(tid); it != reg_.threads.end()) return &it->second;
  // A call can overtake the proc connector event of a thread or process just started (a thread
  // that tags itself as it starts). Its process is its Tgid: a thread's TID names no process.
  const auto tgid = proc_.tgidOf(tid);
  if (!tgid) return nullptr;
  considerProcess(*tgid);
  if (reg_.processes.contains(*tgid)) reg_.markDirty(tid, *tgid);
  return nullptr;
}

const policy::WorkerSpec* Discovery::workerSpec(const std::string& name) const {
  if (const auto* w = policy_.findWorker(name)) return w;
  const auto it = registered_.find(name);
  return it == registered_.end() ? nullptr : &it->second;
}

Result<void> Discovery::registerWorker(pid_t pid, const std::string& name, const std::string& default_class) {
  static const std::regex kName("[a-z0-9][a-z0-9_.-]{0,63}");
  if (!std::regex_match(name, kName)) return fail(EINVAL, "worker name '" + name + "' must match [a-z0-9][a-z0-9_.-]{0,63}");
  if (policy_.findWorker(name) != nullptr) return fail(EINVAL, "worker name '" + name + "' belongs to the policy");
  if (policy_.findClass(default_class) == nullptr) return fail(ENOENT, "no class named '" + default_class + "'");
  if (const auto p = reg_.processes.find(pid); p != reg_.processes.end()) {
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
  auto r = addProcess(pid, main->start_time, name, false, std::move(facts), "registered itself as worker " + name);
  if (!r && !known_name) registered_.erase(name);
  return r;
}

Result<void> Discovery::unregisterWorker(pid_t pid) {
  const auto p = reg_.processes.find(pid);
  if (p == reg_.processes.end() || !registered_.contains(p->second.worker)) {
    return fail(ESRCH, "process " + std::to_string(pid) + " did not register as a worker");
  }
  releaseProcess(pid);
  return {};
}

}  // namespace cpuclass::daemon
