#include "cgroups/sched.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "cgroups/proc_parse.h"

namespace cpuclass::cgroups {
namespace {

// glibc 2.36 (Debian 12) has no wrapper; the layout is the kernel's uapi struct sched_attr.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

constexpr uint64_t kResetOnFork = 0x01;  // SCHED_FLAG_RESET_ON_FORK

Result<SchedAttr> getAttr(pid_t tid) {
  SchedAttr attr{};
  if (::syscall(SYS_sched_getattr, tid, &attr, sizeof attr, 0) != 0) {
    return failErrno("sched_getattr tid " + std::to_string(tid));
  }
  return attr;
}

// sched_getattr reports a fair thread's slice whether its owner chose it or not (Linux 6.12+;
// zero before), and handing the default back would pin it as a custom value. So a slice counts
// as custom when it differs from the default, which PID 1's slice tells: it runs with the
// default unless someone gave it one. Read each time: the default is a knob (debugfs
// sched/base_slice_ns) and a thread without a custom slice follows it.
uint64_t customSlice(const SchedAttr& attr) {
  if (isRealtimePolicy(static_cast<int>(attr.sched_policy)) || attr.sched_runtime == 0) return 0;
  const auto init = getAttr(1);
  const uint64_t default_slice = init && !isRealtimePolicy(static_cast<int>(init->sched_policy)) ? init->sched_runtime : 0;
  return attr.sched_runtime == default_slice ? 0 : attr.sched_runtime;
}

}  // namespace

std::string_view toString(Outcome outcome) {
  switch (outcome) {
    case Outcome::kDone: return "done";
    case Outcome::kGone: return "gone";
    case Outcome::kRealTime: return "realtime";
  }
  return "unknown";
}

std::string_view schedPolicyName(int policy) {
  switch (policy) {
    case kSchedOther: return "other";
    case kSchedFifo: return "fifo";
    case kSchedRr: return "rr";
    case kSchedBatch: return "batch";
    case kSchedIdle: return "idle";
    case kSchedDeadline: return "deadline";
    default: return "unknown";
  }
}

Result<ThreadSched> readThreadSched(pid_t tid) {
  auto attr = getAttr(tid);
  if (!attr) return tl::unexpected(attr.error());
  return ThreadSched{static_cast<int>(attr->sched_policy), attr->sched_nice, static_cast<int>(attr->sched_priority)};
}

Result<bool> setThreadSlice(pid_t tid, std::chrono::nanoseconds slice) {
  auto attr = getAttr(tid);
  if (!attr) return tl::unexpected(attr.error());
  if (isRealtimePolicy(static_cast<int>(attr->sched_policy))) return false;
  attr->size = sizeof *attr;
  attr->sched_flags &= kResetOnFork;  // the only flag that is state, not a request
  attr->sched_runtime = static_cast<uint64_t>(slice.count());
  if (::syscall(SYS_sched_setattr, tid, &*attr, 0) != 0) return failErrno("sched_setattr tid " + std::to_string(tid) + " slice");
  auto now = readThreadSlice(tid);
  if (!now) return tl::unexpected(now.error());
  return *now == slice;
}

Result<std::chrono::nanoseconds> readThreadSlice(pid_t tid) {
  auto attr = getAttr(tid);
  if (!attr) return tl::unexpected(attr.error());
  return std::chrono::nanoseconds(attr->sched_runtime);
}

Result<std::chrono::nanoseconds> readCustomSlice(pid_t tid) {
  auto attr = getAttr(tid);
  if (!attr) return tl::unexpected(attr.error());
  return std::chrono::nanoseconds(customSlice(*attr));
}

Result<Outcome> setThreadSched(pid_t tid, ThreadSched sched, bool realtime_is_ours) {
  const bool to_realtime = sched.policy == kSchedRr;
  if (sched.policy != kSchedOther && sched.policy != kSchedBatch && sched.policy != kSchedIdle && !to_realtime) {
    return fail(EINVAL, "scheduling policy " + std::string(schedPolicyName(sched.policy)) +
                            " is not one the daemon sets");
  }
  if (sched.nice < -20 || sched.nice > 19) return fail(EINVAL, "nice must be in -20..19");
  if (to_realtime ? sched.priority < 1 || sched.priority > 99 : sched.priority != 0) {
    return fail(EINVAL, "a real-time priority is 1..99, and only SCHED_RR has one");
  }
  auto current = getAttr(tid);
  if (!current) return isGone(current.error()) ? Result<Outcome>(Outcome::kGone) : tl::unexpected(current.error());
  const bool was_realtime = isRealtimePolicy(static_cast<int>(current->sched_policy));
  if (was_realtime && !realtime_is_ours) return Outcome::kRealTime;
  // A real-time thread has no slice; a fair one keeps the one it has unless told otherwise.
  const uint64_t slice_now = customSlice(*current);
  const uint64_t slice = to_realtime ? 0 : sched.slice ? static_cast<uint64_t>(sched.slice->count()) : slice_now;
  const bool same_policy = static_cast<int>(current->sched_policy) == sched.policy &&
                           static_cast<int>(current->sched_priority) == sched.priority && (to_realtime || slice == slice_now);
  if (same_policy && current->sched_nice == sched.nice) return Outcome::kDone;
  // sched_setattr applies sched_nice to SCHED_OTHER/BATCH only; for SCHED_IDLE (and RR) the
  // kernel keeps the old nice, so nice goes first through setpriority(2), which is per thread.
  if (current->sched_nice != sched.nice && ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), sched.nice) != 0) {
    if (errno == ESRCH) return Outcome::kGone;
    return failErrno("setpriority tid " + std::to_string(tid) + " to nice " + std::to_string(sched.nice));
  }
  if (same_policy) return Outcome::kDone;
  SchedAttr attr{};
  attr.size = sizeof attr;
  attr.sched_policy = static_cast<uint32_t>(sched.policy);
  attr.sched_nice = sched.nice;
  attr.sched_priority = static_cast<uint32_t>(sched.priority);
  // What the thread's owner set stays: reset-on-fork, and a custom slice unless `sched` has one
  // (a zero runtime resets it to the default; a real-time thread has none). Real-time we set comes with
  // reset-on-fork, taken off again with it: a thread or process it starts is fair until placed
  // (PostgreSQL's postmaster forks every backend: they were born SCHED_RR, and as real-time
  // threads we did not make they were out of our reach).
  attr.sched_flags = current->sched_flags & kResetOnFork;
  if (to_realtime) attr.sched_flags |= kResetOnFork;
  if (was_realtime && !to_realtime) attr.sched_flags &= ~kResetOnFork;
  attr.sched_runtime = slice;
  if (::syscall(SYS_sched_setattr, tid, &attr, 0) != 0) {
    if (errno == ESRCH) return Outcome::kGone;
    // EPERM for RR: RT group scheduling and a group without a real-time budget (v1
    // cpu.rt_runtime_us; on cgroup v2 such a kernel allows RR in the root group only).
    return failErrno("sched_setattr tid " + std::to_string(tid) + " to " + std::string(schedPolicyName(sched.policy)) +
                     (to_realtime ? " priority " + std::to_string(sched.priority) : " nice " + std::to_string(sched.nice)));
  }
  return Outcome::kDone;
}

}  // namespace cpuclass::cgroups
