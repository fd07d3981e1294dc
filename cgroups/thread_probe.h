// A thread's state and on-CPU time, re-read cheaply: /proc's stat and schedstat kept open and
// read again with pread(fd, 0) instead of an open per look.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "cgroups/dir.h"
#include "cgroups/proc_fs.h"
#include "cgroups/proc_parse.h"

namespace cpuclass::cgroups {

// Pure: the state letter from stat text (after the last ')').
char parseStatState(std::string_view stat_text);

// Keeps stat open, and schedstat and cgroup once asked for. Formatting stat costs the kernel ~3x
// what schedstat costs (~1.2-1.5 us against ~0.5 us per pread), so callers read the runtime first
// where it can answer alone. isGone() errors once the thread has exited.
class ThreadProbe {
 public:
  static Result<ThreadProbe> open(const ProcFs& proc, pid_t pid, pid_t tid);
  Result<char> state();
  Result<ThreadStat> stat();  // all of stat: the drift check's comm, start time, policy, nice
  Result<uint64_t> runtimeNs();
  Result<std::vector<CgroupEntry>> cgroups();

 private:
  ThreadProbe(KeptFile stat, int proc_fd, std::string dir, std::string proc_path)
      : stat_(std::move(stat)), proc_fd_(proc_fd), dir_(std::move(dir)), proc_path_(std::move(proc_path)) {}
  Result<std::string_view> reread(std::optional<KeptFile>& file, std::string_view name, std::span<char> buf);
  KeptFile stat_;
  std::optional<KeptFile> schedstat_;
  std::optional<KeptFile> cgroup_;
  int proc_fd_;             // the /proc directory the probe was opened under (owned by its ProcFs)
  std::string dir_;         // "<pid>/task/<tid>/"
  std::string proc_path_;   // of that /proc, for messages
};

}  // namespace cpuclass::cgroups
