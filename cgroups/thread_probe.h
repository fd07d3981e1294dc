// A thread's state and on-CPU time, re-read cheaply: /proc's stat and schedstat kept open and
// read again with pread(fd, 0) (~0.5 us each instead of an open per look).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/unique_fd.h"
#include "cgroups/proc_fs.h"

namespace cpuclass::cgroups {

struct LiveSample {
  char state = '?';         // stat field 3: R runnable or running, S, D, ...
  uint64_t runtime_ns = 0;  // schedstat field 1
  bool has_runtime = false;  // read for runnable threads, and for others when asked
};

// Pure: the state letter from stat text (after the last ')').
char parseStatState(std::string_view stat_text);

// Keeps stat open; schedstat is opened on the first look at a runnable thread, so an idle pool
// costs one fd and one pread per thread and look.
class ThreadProbe {
 public:
  static Result<ThreadProbe> open(const ProcFs& proc, pid_t pid, pid_t tid);
  // State only; runtime_ns is read (and schedstat opened) only when the thread is runnable.
  // isGone() errors once the thread has exited.
  // `runtime_always`: read schedstat also for a sleeping thread (one more pread).
  Result<LiveSample> read(bool runtime_always = false);

 private:
  ThreadProbe(UniqueFd stat, int proc_fd, std::string dir) : stat_(std::move(stat)), proc_fd_(proc_fd), dir_(std::move(dir)) {}
  UniqueFd stat_;
  UniqueFd schedstat_;
  int proc_fd_;      // the /proc directory the probe was opened under (owned by its ProcFs)
  std::string dir_;  // "<pid>/task/<tid>/"
};

}  // namespace cpuclass::cgroups
