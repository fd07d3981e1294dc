#include "cgroups/hierarchy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "base/text.h"
#include "cgroups/proc_parse.h"
#include "cgroups/sched.h"

namespace cpuclass::cgroups {
namespace {
constexpr std::string_view kRtRuntime = "cpu.rt_runtime_us";

// "+cpu" / "-cpu" for cgroup.subtree_control. Built by append: GCC 12 at -O3 reports a false
// -Wrestrict for "+" + std::string(...) (GCC PR105651).
std::string controlWord(char sign, std::string_view controller) {
  std::string word(1, sign);
  word.append(controller);
  return word;
}
}  // namespace

uint64_t sharesFromWeight(uint32_t weight) {
  const uint64_t shares = uint64_t{weight} * 1024 / 100;
  return std::clamp<uint64_t>(shares, 2, 262144);
}

std::string Hierarchy::file(std::string_view group, std::string_view name) const {
  if (group.empty()) return std::string(name);
  return std::string(group) + "/" + std::string(name);
}

Result<bool> Hierarchy::makeGroup(std::string_view group) const { return root_.makeDirs(group); }

Result<void> Hierarchy::removeGroup(std::string_view group) const {
  if (const auto budget = realtimeRuntime(group); budget && *budget > 0) {
    (void)root_.write(file(group, kRtRuntime), "0");  // when it fails, so does the rmdir, and says why
  }
  return root_.removeDir(group);
}

Result<uint64_t> Hierarchy::realtimeRuntime(std::string_view group) const {
  auto text = root_.read(file(group, kRtRuntime));
  if (!text) return tl::unexpected(text.error());
  const auto value = parseInt(trim(*text));  // -1: unlimited, only the root can have it
  if (!value) return fail(EINVAL, root_.pathOf(file(group, kRtRuntime)) + ": not a number");
  return *value < 0 ? UINT64_MAX : static_cast<uint64_t>(*value);
}

Result<void> Hierarchy::grantRealtimeBudget(std::string_view group) const {
  if (version_ != CgroupVersion::kV1 || !root_.exists(file(group, kRtRuntime))) return {};
  for (size_t end = group.find('/');; end = group.find('/', end + 1)) {
    const std::string_view g = group.substr(0, end);
    auto own = realtimeRuntime(g);
    if (!own) return tl::unexpected(own.error());
    if (*own == 0) {
      const size_t slash = g.rfind('/');
      const std::string_view parent = slash == std::string_view::npos ? std::string_view() : g.substr(0, slash);
      auto free = realtimeRuntime(parent);
      if (!free) return tl::unexpected(free.error());
      auto siblings = children(parent);
      if (!siblings) return tl::unexpected(siblings.error());
      for (const auto& name : *siblings) {
        const auto taken = realtimeRuntime(file(parent, name));
        if (taken) *free -= std::min(*free, *taken);
      }
      // A budget is per period, and the parent's may be unlimited (-1, the root's sysctl).
      const auto period = root_.read(file(g, "cpu.rt_period_us"));
      if (const auto us = period ? parseUint(trim(*period)) : std::nullopt) *free = std::min(*free, *us);
      if (*free == 0) {
        return fail(ENOSPC, "no real-time budget left for " + root_.pathOf(g) + ": the cpu.rt_runtime_us of the groups beside it add up to their parent's");
      }
      if (auto r = root_.write(file(g, kRtRuntime), std::to_string(*free)); !r) return r;
    }
    if (end == std::string_view::npos) return {};
  }
}

Result<std::vector<std::string>> Hierarchy::children(std::string_view group) const {
  return root_.subdirs(group);
}

Result<void> Hierarchy::makeThreaded(std::string_view group) const {
  if (version_ == CgroupVersion::kV1) return {};
  auto type = root_.read(file(group, "cgroup.type"));
  if (!type) return tl::unexpected(type.error());
  if (trim(*type) == "threaded") return {};
  return root_.write(file(group, "cgroup.type"), "threaded");
}

Result<void> Hierarchy::enableController(std::string_view group, std::string_view controller) const {
  if (version_ == CgroupVersion::kV1) return {};
  auto enabled = root_.read(file(group, "cgroup.subtree_control"));
  if (!enabled) return tl::unexpected(enabled.error());
  for (const auto c : splitFields(*enabled)) {
    if (c == controller) return {};
  }
  return root_.write(file(group, "cgroup.subtree_control"), controlWord('+', controller));
}

Result<void> Hierarchy::disableController(std::string_view group, std::string_view controller) const {
  if (version_ == CgroupVersion::kV1) return {};
  auto enabled = root_.read(file(group, "cgroup.subtree_control"));
  if (!enabled) return tl::unexpected(enabled.error());
  for (const auto c : splitFields(*enabled)) {
    if (c == controller) return root_.write(file(group, "cgroup.subtree_control"), controlWord('-', controller));
  }
  return {};
}

Result<bool> Hierarchy::isDelegated(std::string_view group) const {
  if (version_ == CgroupVersion::kV1) return true;
  for (const char* name : {"trusted.delegate", "user.delegate"}) {
    auto has = root_.hasXattr(group, name);
    if (!has || *has) return has;
  }
  return false;
}

Result<void> Hierarchy::applyCpuSettings(std::string_view group, CpuSettings settings) const {
  // A squeeze (Manager) is dynamic: a group (re)configured starts without one, so a daemon
  // killed while squeezing leaves no cap behind once it has started again.
  if (const auto quota = cpuQuota(group); quota && *quota) {
    if (auto r = setCpuQuota(group, std::nullopt); !r) return r;
  }
  const std::string idle_file = file(group, "cpu.idle");
  const bool has_idle = root_.exists(idle_file);
  if (settings.idle) {
    if (!has_idle) return fail(ENOTSUP, root_.pathOf(idle_file) + " is missing (cpu.idle needs Linux 5.15)");
    return root_.write(idle_file, "1");
  }
  if (has_idle) {
    auto current = root_.read(idle_file);
    if (!current) return tl::unexpected(current.error());
    if (trim(*current) != "0") {
      if (auto r = root_.write(idle_file, "0"); !r) return r;
    }
  }
  if (settings.realtime) {
    if (auto r = grantRealtimeBudget(group); !r) return r;
  }
  if (version_ == CgroupVersion::kV2) {
    if (settings.weight < 1 || settings.weight > 10000) return fail(EINVAL, "cpu.weight must be in 1..10000");
    return root_.write(file(group, "cpu.weight"), std::to_string(settings.weight));
  }
  return root_.write(file(group, "cpu.shares"), std::to_string(sharesFromWeight(settings.weight)));
}

Result<void> Hierarchy::setCpuQuota(std::string_view group, std::optional<std::chrono::microseconds> quota) const {
  const std::string period = std::to_string(kQuotaPeriod.count());
  if (version_ == CgroupVersion::kV2) {
    const std::string max_file = file(group, "cpu.max");
    if (!root_.exists(max_file)) return fail(ENOTSUP, root_.pathOf(max_file) + " is missing (no CPU bandwidth control)");
    return root_.write(max_file, (quota ? std::to_string(quota->count()) : "max") + " " + period);
  }
  const std::string quota_file = file(group, "cpu.cfs_quota_us");
  if (!root_.exists(quota_file)) {
    return fail(ENOTSUP, root_.pathOf(quota_file) + " is missing (no CPU bandwidth control)");
  }
  if (quota) {
    if (auto r = root_.write(file(group, "cpu.cfs_period_us"), period); !r) return r;
  }
  return root_.write(quota_file, quota ? std::to_string(quota->count()) : "-1");
}

Result<std::optional<std::chrono::microseconds>> Hierarchy::cpuQuota(std::string_view group) const {
  const std::string name = file(group, version_ == CgroupVersion::kV2 ? "cpu.max" : "cpu.cfs_quota_us");
  auto text = root_.read(name);
  if (!text) return tl::unexpected(text.error());
  const std::string_view line = trim(*text);
  const std::string_view value = line.substr(0, line.find(' '));  // v2: "<quota|max> <period>"
  if (value == "max" || value == "-1") return std::optional<std::chrono::microseconds>{};
  const auto us = parseUint(value);
  if (!us) return fail(EINVAL, root_.pathOf(name) + ": not a quota");
  return std::optional<std::chrono::microseconds>{std::chrono::microseconds(*us)};
}

Result<CpuSettings> Hierarchy::readCpuSettings(std::string_view group) const {
  CpuSettings s;
  const std::string idle_file = file(group, "cpu.idle");
  if (root_.exists(idle_file)) {
    auto idle = root_.read(idle_file);
    if (!idle) return tl::unexpected(idle.error());
    s.idle = trim(*idle) == "1";
  }
  const std::string weight_file = file(group, version_ == CgroupVersion::kV2 ? "cpu.weight" : "cpu.shares");
  auto text = root_.read(weight_file);
  if (!text) return tl::unexpected(text.error());
  const auto value = parseUint(trim(*text));
  if (!value) return fail(EINVAL, root_.pathOf(weight_file) + ": not a number");
  // v1 reports shares; map back to the weight scale (exact for weights written by us).
  s.weight = static_cast<uint32_t>(version_ == CgroupVersion::kV2 ? *value : (*value * 100 + 1023) / 1024);
  return s;
}

Result<Outcome> Hierarchy::classifyMoveError(pid_t tid, int err, std::string_view group) const {
  if (err == ESRCH) return Outcome::kGone;
  // RT group scheduling rejects FIFO/RR threads in child cpu groups with EINVAL.
  if (err == EINVAL) {
    auto sched = readThreadSched(tid);
    if (!sched && isGone(sched.error())) return Outcome::kGone;
    if (sched && isRealtimePolicy(sched->policy)) return Outcome::kRealTime;
  }
  errno = err;
  return failErrno("move tid " + std::to_string(tid) + " to " + root_.pathOf(file(group, threadsFile())));
}

Result<Outcome> Hierarchy::moveThread(std::string_view group, pid_t tid) const {
  auto items = moveThreads(group, std::span<const pid_t>(&tid, 1));
  if (!items) return tl::unexpected(items.error());
  return std::move(items->front().result);
}

Result<std::vector<BatchItem>> Hierarchy::moveThreads(std::string_view group,
                                                      std::span<const pid_t> tids) const {
  auto threads_file = keepThreadsFile(group);
  if (!threads_file) return tl::unexpected(threads_file.error());
  std::vector<BatchItem> out;
  out.reserve(tids.size());
  for (const pid_t tid : tids) out.push_back({tid, moveThread(*threads_file, group, tid)});
  return out;
}

Result<KeptFile> Hierarchy::keepThreadsFile(std::string_view group) const {
  return root_.keep(file(group, threadsFile()), O_WRONLY | O_TRUNC);
}

Result<Outcome> Hierarchy::moveThread(const KeptFile& threads_file, std::string_view group, pid_t tid) const {
  // The kernel takes one TID per write(2).
  if (threads_file.write(std::to_string(tid) + "\n")) return Outcome::kDone;
  return classifyMoveError(tid, errno, group);
}

Result<void> Hierarchy::moveProcess(std::string_view group, pid_t pid) const {
  return root_.write(file(group, "cgroup.procs"), std::to_string(pid));
}

Result<std::vector<pid_t>> Hierarchy::processes(std::string_view group) const {
  return readIds(file(group, "cgroup.procs"));
}

Result<std::vector<pid_t>> Hierarchy::threads(std::string_view group) const {
  return readIds(file(group, threadsFile()));
}

Result<std::vector<pid_t>> Hierarchy::readIds(const std::string& path) const {
  auto text = root_.read(path);
  if (!text) return tl::unexpected(text.error());
  std::vector<pid_t> out;
  for (const auto f : splitFields(*text)) {
    if (const auto v = parseInt(f)) out.push_back(static_cast<pid_t>(*v));
  }
  return out;
}

Result<std::chrono::nanoseconds> Hierarchy::cpuUsage(std::string_view group) const {
  if (version_ == CgroupVersion::kV1) {
    auto text = root_.read(file(group, "cpuacct.usage"));
    if (!text) return tl::unexpected(text.error());
    const auto ns = parseUint(trim(*text));
    if (!ns) return fail(EINVAL, root_.pathOf(file(group, "cpuacct.usage")) + ": not a number");
    return std::chrono::nanoseconds(*ns);
  }
  auto text = root_.read(file(group, "cpu.stat"));
  if (!text) return tl::unexpected(text.error());
  for (const auto line : splitLines(*text)) {
    const auto f = splitFields(line);
    if (f.size() == 2 && f[0] == "usage_usec") {
      if (const auto us = parseUint(f[1])) return std::chrono::microseconds(*us);
    }
  }
  return fail(EINVAL, root_.pathOf(file(group, "cpu.stat")) + ": no usage_usec");
}

Result<std::chrono::microseconds> Hierarchy::cpuPressure(std::string_view group) const {
  auto pressure_file = keepPressureFile(group);
  if (!pressure_file) return tl::unexpected(pressure_file.error());
  return cpuPressure(*pressure_file);
}

Result<KeptFile> Hierarchy::keepPressureFile(std::string_view group) const {
  if (version_ == CgroupVersion::kV1) return fail(ENOTSUP, "PSI needs cgroup v2");
  return root_.keep(file(group, "cpu.pressure"), O_RDONLY);
}

Result<std::chrono::microseconds> Hierarchy::cpuPressure(const KeptFile& pressure_file) {
  std::array<char, 512> buf;
  auto text = pressure_file.reread(buf);
  if (!text) return tl::unexpected(text.error());
  // "some avg10=0.00 avg60=0.00 avg300=0.00 total=12345"
  for (const auto line : splitLines(*text)) {
    const auto f = splitFields(line);
    if (f.empty() || f[0] != "some") continue;
    for (const auto field : f) {
      if (field.starts_with("total=")) {
        if (const auto us = parseUint(field.substr(6))) return std::chrono::microseconds(*us);
      }
    }
  }
  return fail(EINVAL, pressure_file.path() + ": no some total");
}

}  // namespace cpuclass::cgroups
