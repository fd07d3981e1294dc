// One mounted cgroup hierarchy (v1 or v2) and the few operations the daemon needs on it.
//
// Mechanism only: it knows files and kernel rules, never classes or policy. Paths are relative to
// the hierarchy's root as seen in /proc/<pid>/cgroup, without the leading '/'.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cgroups/dir.h"
#include "cgroups/outcome.h"

namespace cpuclass::cgroups {

enum class CgroupVersion { kV1, kV2 };

struct CpuSettings {
  uint32_t weight = 100;  // v2 cpu.weight scale 1..10000
  bool idle = false;      // cpu.idle=1: the group only gets CPU nobody else wants
  bool realtime = false;  // its threads may run SCHED_FIFO/RR: a real-time budget where the kernel wants one
  bool operator==(const CpuSettings&) const = default;
};

// v1 cpu.shares for a v2 weight: weight * 1024 / 100, clamped to the kernel's 2..262144.
uint64_t sharesFromWeight(uint32_t weight);

class Hierarchy {
 public:
  Hierarchy(Dir root, CgroupVersion version) : root_(std::move(root)), version_(version) {}

  CgroupVersion version() const { return version_; }
  const Dir& root() const { return root_; }

  // mkdir -p; returns false when the group already existed (adopted).
  Result<bool> makeGroup(std::string_view group) const;
  // rmdir; a real-time budget (v1 cpu.rt_runtime_us) is handed back first, since the kernel
  // counts a removed group's budget against its parent for a while after the rmdir.
  Result<void> removeGroup(std::string_view group) const;
  Result<std::vector<std::string>> children(std::string_view group) const;
  bool exists(std::string_view group) const { return root_.exists(group); }

  // v2 only (no-ops on v1): `threaded` is one-way; a group already threaded is left alone.
  Result<void> makeThreaded(std::string_view group) const;
  // v2 only: "+controller" into group's cgroup.subtree_control unless already enabled.
  Result<void> enableController(std::string_view group, std::string_view controller) const;

  // v2 only: "-controller" unless already disabled.
  Result<void> disableController(std::string_view group, std::string_view controller) const;
  // v2: whether systemd (or an admin, the same way) delegated the group: the trusted.delegate
  // or user.delegate xattr systemd sets on Delegate=yes units. v1: always true.
  Result<bool> isDelegated(std::string_view group) const;

  // Writes cpu.weight (v2) or cpu.shares (v1) and cpu.idle. cpu.idle is cleared before the
  // weight is written: while idle, weight writes fail, and on v1 clearing idle resets shares.
  // `realtime` grants a real-time budget (grantRealtimeBudget); it is never taken back here.
  Result<void> applyCpuSettings(std::string_view group, CpuSettings settings) const;
  // cgroup v1 with RT group scheduling (cpu.rt_runtime_us exists): a thread may turn
  // SCHED_FIFO/RR only in a group with a real-time budget, and the budgets of a group's children
  // may add up to at most its own. Gives the group and each ancestor without a budget all that
  // their parent has free; ENOSPC when nothing is. A no-op where there are no budgets.
  Result<void> grantRealtimeBudget(std::string_view group) const;
  Result<CpuSettings> readCpuSettings(std::string_view group) const;
  // CFS bandwidth: at most `quota` of CPU time per kQuotaPeriod (nullopt: no limit). ENOTSUP
  // where the kernel has no CPU bandwidth control (v1 cpu.cfs_quota_us, v2 cpu.max).
  static constexpr std::chrono::microseconds kQuotaPeriod{100000};
  Result<void> setCpuQuota(std::string_view group, std::optional<std::chrono::microseconds> quota) const;
  Result<std::optional<std::chrono::microseconds>> cpuQuota(std::string_view group) const;

  // Moves one thread: v2 cgroup.threads (never cgroup.procs, which moves the whole process),
  // v1 tasks. ESRCH is kGone; a real-time thread refused by the kernel is kRealTime.
  Result<Outcome> moveThread(std::string_view group, pid_t tid) const;
  // Many moves through one open file: writes in a burst are far cheaper than isolated ones.
  Result<std::vector<BatchItem>> moveThreads(std::string_view group, std::span<const pid_t> tids) const;
  // For moves into one group again and again: its threads file kept open, and a move through it.
  Result<KeptFile> keepThreadsFile(std::string_view group) const;
  Result<Outcome> moveThread(const KeptFile& threads_file, std::string_view group, pid_t tid) const;
  // Moves a whole process (v2 cgroup.procs, v1 cgroup.procs).
  Result<void> moveProcess(std::string_view group, pid_t pid) const;
  // PIDs of the processes in the group itself (cgroup.procs).
  Result<std::vector<pid_t>> processes(std::string_view group) const;
  // TIDs in the group itself (not its children).
  Result<std::vector<pid_t>> threads(std::string_view group) const;

  // Total CPU time of the group and its children: v2 cpu.stat usage_usec, v1 cpuacct.usage.
  Result<std::chrono::nanoseconds> cpuUsage(std::string_view group) const;
  // v2 only: PSI cpu "some" total, time some thread of the group was runnable without a CPU.
  Result<std::chrono::microseconds> cpuPressure(std::string_view group) const;
  // The same through cpu.pressure kept open, for a read every poll (ENOTSUP on v1).
  Result<KeptFile> keepPressureFile(std::string_view group) const;
  static Result<std::chrono::microseconds> cpuPressure(const KeptFile& pressure_file);

 private:
  std::string threadsFile() const { return version_ == CgroupVersion::kV2 ? "cgroup.threads" : "tasks"; }
  std::string file(std::string_view group, std::string_view name) const;
  Result<std::vector<pid_t>> readIds(const std::string& path) const;
  Result<Outcome> classifyMoveError(pid_t tid, int err, std::string_view group) const;
  Result<uint64_t> realtimeRuntime(std::string_view group) const;

  Dir root_;
  CgroupVersion version_;
};

}  // namespace cpuclass::cgroups
