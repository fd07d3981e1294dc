#include "cgroups/class_tree.h"

#include <unistd.h>

#include <cerrno>

namespace cpuclass::cgroups {
namespace {

CgroupVersion versionOf(const CgroupMount& m) { return m.version == 2 ? CgroupVersion::kV2 : CgroupVersion::kV1; }

Result<Hierarchy> openMount(const CgroupMount& m) {
  if (m.root != "/") {
    return fail(ENOTSUP, "cgroup mount " + m.mount_point + " shows only " + m.root +
                             " of its hierarchy; run the daemon in the initial cgroup namespace");
  }
  auto dir = Dir::open(m.mount_point);
  if (!dir) return tl::unexpected(dir.error());
  return Hierarchy(std::move(*dir), versionOf(m));
}

std::string join(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  return std::string(a) + "/" + std::string(b);
}

std::string_view parentOf(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

}  // namespace

ClassTree::ClassTree(Hierarchy control, std::optional<Hierarchy> accounting)
    : control_(std::move(control)), accounting_(std::move(accounting)) {}

Result<ClassTree> ClassTree::openSystem(const CgroupLayout& layout) {
  auto control = openMount(layout.cpu);
  if (!control) return tl::unexpected(control.error());
  std::optional<Hierarchy> accounting;
  if (layout.cpu.version == 1 && !layout.cpu.has("cpuacct")) {
    if (layout.unified) {
      auto h = openMount(*layout.unified);
      if (!h) return tl::unexpected(h.error());
      accounting = std::move(*h);
    } else if (layout.separate_cpuacct) {
      auto h = openMount(*layout.separate_cpuacct);
      if (!h) return tl::unexpected(h.error());
      accounting = std::move(*h);
    }
  }
  return ClassTree(std::move(*control), std::move(accounting));
}

std::string ClassTree::v1Base(std::string_view prefix, std::string_view worker) {
  return join(prefix, worker);
}

std::string ClassTree::delegationPointOf(std::string_view process_cgroup) {
  std::string path(process_cgroup);
  if (!path.empty() && path.front() == '/') path.erase(0, 1);
  // "<C>/cpuclass" or "<C>/cpuclass/<class>": the part above our domain.
  // Appended, not "/" + std::string(...): GCC 12 at -O3 reports a false -Wrestrict there (PR105651).
  const std::string marker = std::string("/").append(kV2Domain);
  for (auto pos = path.find(marker); pos != std::string::npos; pos = path.find(marker, pos + 1)) {
    const auto end = pos + marker.size();
    if (end == path.size() || path[end] == '/') return path.substr(0, pos);
  }
  return path;
}

std::string ClassTree::v2Base(std::string_view delegation_point) { return join(delegation_point, kV2Domain); }

Result<void> ClassTree::enterBase(std::string_view base) const {
  if (control_.version() != CgroupVersion::kV2) return {};
  const std::string_view point = parentOf(base);
  if (auto r = control_.makeGroup(base); !r) return tl::unexpected(r.error());
  auto pids = control_.processes(point);
  if (!pids) return tl::unexpected(pids.error());
  for (const pid_t pid : *pids) {
    // ESRCH: it exited meanwhile; nothing to move.
    if (auto r = control_.moveProcess(base, pid); !r && r.error().code != ESRCH) return r;
  }
  return control_.enableController(point, "cpu");
}

Result<void> ClassTree::makeThreadedPath(const Hierarchy& h, std::string_view group) const {
  // Every level of a mirror is threaded, so the threads of a process in the root's threaded
  // domain can enter any of them.
  size_t pos = 0;
  while (pos <= group.size()) {
    auto slash = group.find('/', pos);
    if (slash == std::string_view::npos) slash = group.size();
    if (auto r = h.makeThreaded(group.substr(0, slash)); !r) return r;
    pos = slash + 1;
  }
  return {};
}

Result<void> ClassTree::ensureClass(std::string_view base, std::string_view cls, CpuSettings settings) const {
  const std::string group = join(base, cls);
  if (auto r = control_.makeGroup(group); !r) return tl::unexpected(r.error());
  if (control_.version() == CgroupVersion::kV2) {
    // cgroup-v2.rst: a controller reaches a group only when enabled in every ancestor's
    // subtree_control; we enable it just in the delegated worker cgroup and in base.
    if (auto r = control_.enableController(parentOf(base), "cpu"); !r) return r;
    if (auto r = control_.enableController(base, "cpu"); !r) return r;
    if (auto r = control_.makeThreaded(group); !r) return r;
  }
  if (auto r = control_.applyCpuSettings(group, settings); !r) return r;
  return ensureAccounting(base, cls);
}

Result<void> ClassTree::ensureAccounting(std::string_view base, std::string_view cls) const {
  if (!accounting_) return {};
  const std::string group = join(base, cls);
  if (auto r = accounting_->makeGroup(group); !r) return tl::unexpected(r.error());
  return makeThreadedPath(*accounting_, group);
}

Result<ClassTree::Placement> ClassTree::place(std::string_view base, std::string_view cls, std::span<const pid_t> tids,
                                             std::string_view accounting_cls) const {
  const std::string group = join(base, cls);
  auto items = control_.moveThreads(group, tids);
  if (!items) return tl::unexpected(items.error());
  Placement out{std::move(*items), 0};
  if (!accounting_) return out;
  std::vector<pid_t> moved;
  for (const auto& item : out.items) {
    if (item.result && *item.result == Outcome::kDone) moved.push_back(item.tid);
  }
  auto mirror = accounting_->moveThreads(join(base, accounting_cls.empty() ? cls : accounting_cls), moved);
  if (!mirror) {
    out.accounting_failures = moved.size();
    return out;
  }
  for (const auto& item : *mirror) {
    if (!item.result || *item.result == Outcome::kRealTime) ++out.accounting_failures;
  }
  return out;
}

std::optional<std::string> ClassTree::pathIn(const Hierarchy& h, const std::vector<CgroupEntry>& entries) const {
  const bool is_control = &h == &control_;
  std::optional<std::string> path;
  if (h.version() == CgroupVersion::kV2) {
    path = cgroupPathOf(entries, "");
  } else {
    path = cgroupPathOf(entries, is_control ? "cpu" : "cpuacct");
  }
  if (path && !path->empty() && path->front() == '/') path->erase(0, 1);
  return path;
}

std::optional<std::string> ClassTree::controlGroupOf(const std::vector<CgroupEntry>& entries) const {
  return pathIn(control_, entries);
}

std::optional<std::string> ClassTree::accountingGroupOf(const std::vector<CgroupEntry>& entries) const {
  if (!accounting_) return std::nullopt;
  return pathIn(*accounting_, entries);
}

Result<Outcome> ClassTree::restore(pid_t tid, const std::vector<CgroupEntry>& original, std::string_view home) const {
  if (control_.version() == CgroupVersion::kV2) {
    if (home.empty()) return fail(ENOENT, "tid " + std::to_string(tid) + " has no known process domain to return to");
    return control_.moveThread(home, tid);
  }
  const auto control_path = pathIn(control_, original);
  if (!control_path) return fail(ENOENT, "no original cpu cgroup recorded for tid " + std::to_string(tid));
  auto outcome = control_.moveThread(*control_path, tid);
  if (!outcome || *outcome != Outcome::kDone || !accounting_) return outcome;
  if (const auto acct_path = pathIn(*accounting_, original)) {
    auto r = accounting_->moveThread(*acct_path, tid);
    if (!r) return tl::unexpected(r.error());
  }
  return outcome;
}

Result<void> ClassTree::removeBase(std::string_view base) const {
  for (const Hierarchy* h : {&control_, accounting()}) {
    if (h == nullptr || !h->exists(base)) continue;
    auto classes = h->children(base);
    if (!classes) return tl::unexpected(classes.error());
    for (const auto& cls : *classes) {
      if (auto r = h->removeGroup(join(base, cls)); !r) return r;
    }
    if (h->version() == CgroupVersion::kV2 && h == &control_) {
      if (auto r = leaveBase(base); !r) return r;
    }
    if (auto r = h->removeGroup(base); !r) return r;
  }
  return {};
}

Result<void> ClassTree::leaveBase(std::string_view base) const {
  const std::string_view point = parentOf(base);
  if (auto r = control_.disableController(base, "cpu"); !r) return r;
  // The delegation point keeps +cpu if the worker made groups of its own beside ours.
  auto siblings = control_.children(point);
  if (!siblings) return tl::unexpected(siblings.error());
  if (siblings->size() != 1) return {};
  if (auto r = control_.disableController(point, "cpu"); !r) return r;
  auto pids = control_.processes(base);
  if (!pids) return tl::unexpected(pids.error());
  for (const pid_t pid : *pids) {
    if (auto r = control_.moveProcess(point, pid); !r && r.error().code != ESRCH) return r;
  }
  return {};
}

Result<std::chrono::nanoseconds> ClassTree::usage(std::string_view base, std::string_view cls) const {
  const std::string group = join(base, cls);
  // Without a mirror the control hierarchy counts: v2, or v1 cpu co-mounted with cpuacct.
  return (accounting_ ? *accounting_ : control_).cpuUsage(group);
}

Result<std::chrono::microseconds> ClassTree::pressure(std::string_view base, std::string_view cls) const {
  return (accounting_ ? *accounting_ : control_).cpuPressure(join(base, cls));
}

Result<KeptFile> ClassTree::keepPressureFile(std::string_view base, std::string_view cls) const {
  return (accounting_ ? *accounting_ : control_).keepPressureFile(join(base, cls));
}

Result<MoveKeeper> MoveKeeper::forCallingThread(const ProcFs& proc) {
  const pid_t tid = ::gettid();
  auto self = ThreadProbe::open(proc, ::getpid(), tid);
  if (!self) return tl::unexpected(self.error());
  return MoveKeeper(std::move(*self), tid);
}

Result<void> MoveKeeper::keep(const ClassTree& tree) {
  auto own = self_.cgroups();
  if (!own) return tl::unexpected(own.error());
  const auto group = tree.controlGroupOf(*own);
  if (!group) return fail(ENOENT, "the calling thread is in no group of the control hierarchy");
  if (!threads_file_ || group_ != *group) {
    auto opened = tree.control().keepThreadsFile(*group);
    if (!opened) return tl::unexpected(opened.error());
    threads_file_ = std::move(*opened);
    group_ = *group;
  }
  auto moved = tree.control().moveThread(*threads_file_, group_, tid_);
  if (!moved) return tl::unexpected(moved.error());
  if (*moved != Outcome::kDone) return fail(EPERM, "the kernel refused to rewrite the calling thread into " + group_);
  return {};
}

}  // namespace cpuclass::cgroups
