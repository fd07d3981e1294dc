// Results of acting on another program's thread that are expected, not failures.
#pragma once

#include <sys/types.h>

#include <string_view>

#include "base/error.h"

namespace cpuclass::cgroups {

enum class Outcome {
  kDone,
  kGone,      // the thread exited first (ESRCH/ENOENT): normal, count it, log at debug level
  kRealTime,  // SCHED_FIFO/RR/DEADLINE: the kernel keeps these out of child cpu cgroups; skipped
};
std::string_view toString(Outcome outcome);

// One thread's result inside a batch: an Outcome, or an Error for real failures.
struct BatchItem {
  pid_t tid = 0;
  Result<Outcome> result;
};

}  // namespace cpuclass::cgroups
