// A thread's state and on-CPU time, re-read cheaply: /proc's stat and schedstat kept open and
// read again with pread(fd, 0) (~0.5 us each instead of an open per look).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "base/unique_fd.h"
#include "cgroups/proc_fs.h"

namespace cpuclass::cgroups {

struct LiveSample {
  char state = '?';         // stat field 3: R runnable or running, S, D, ...
  uint64_t runtime_ns = 0;  // schedstat field 1
};

// Pure: the state letter from stat text (after the last ')').
char parseStatState(std::string_view stat_text);

class ThreadProbe {
 public:
  static Result<ThreadProbe> open(const ProcFs& proc, pid_t pid, pid_t tid);
  // isGone() errors once the thread has exited.
  Result<LiveSample> read() const;

 private:
  ThreadProbe(UniqueFd stat, UniqueFd schedstat) : stat_(std::move(stat)), schedstat_(std::move(schedstat)) {}
  UniqueFd stat_;
  UniqueFd schedstat_;
};

}  // namespace cpuclass::cgroups
