// Pure parsers for the /proc files the daemon reads per thread. Tested on captured samples.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace cpuclass::cgroups {

// Kernel policy numbers (include/uapi/linux/sched.h).
inline constexpr int kSchedOther = 0;
inline constexpr int kSchedFifo = 1;
inline constexpr int kSchedRr = 2;
inline constexpr int kSchedBatch = 3;
inline constexpr int kSchedIdle = 5;
inline constexpr int kSchedDeadline = 6;
// FIFO, RR and DEADLINE threads cannot enter a child cpu cgroup (RT group scheduling).
bool isRealtimePolicy(int policy);

// /proc/<pid>/task/<tid>/stat (proc_pid_stat(5)).
struct ThreadStat {
  std::string comm;
  char state = '?';         // R, S, D, ...
  pid_t ppid = 0;           // field 4
  bool kthread = false;     // PF_KTHREAD in the flags (field 9)
  int nice = 0;             // field 19
  int num_threads = 0;      // field 20: of the whole process
  uint64_t start_time = 0;  // field 22, clock ticks after boot; with the tid, a thread's identity
  int rt_priority = 0;      // field 40
  int policy = 0;           // field 41
};
Result<ThreadStat> parseStat(std::string_view text);

// /proc/<pid>/task/<tid>/schedstat: on-CPU time, run-queue wait (lazy, see KERNEL_NOTES), slices.
struct SchedStat {
  uint64_t runtime_ns = 0;
  uint64_t run_delay_ns = 0;
  uint64_t timeslices = 0;
};
Result<SchedStat> parseSchedStat(std::string_view text);

// voluntary_ctxt_switches from /proc/<pid>/task/<tid>/status: how often the thread slept.
Result<uint64_t> parseVoluntarySwitches(std::string_view status_text);

// One line of /proc/<pid>/task/<tid>/cgroup: "hierarchy-id:controllers:path".
struct CgroupEntry {
  int hierarchy_id = 0;
  std::vector<std::string> controllers;  // empty for the cgroup2 line ("0::/path")
  std::string path;
};
Result<std::vector<CgroupEntry>> parseProcCgroup(std::string_view text);

// The path of the hierarchy that has `controller`, or of the cgroup2 line for "" (unified).
std::optional<std::string> cgroupPathOf(const std::vector<CgroupEntry>& entries,
                                        std::string_view controller);

}  // namespace cpuclass::cgroups
