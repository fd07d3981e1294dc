// Reads processes, threads and per-thread facts below an opened /proc (or a fake copy of it).
#pragma once

#include <sys/types.h>

#include <vector>

#include "cgroups/dir.h"
#include "cgroups/proc_parse.h"

namespace cpuclass::cgroups {

// What the daemon knows about one thread at one moment. (tid, start_time) identifies the thread
// across TID reuse.
struct ThreadFacts {
  pid_t tid = 0;
  pid_t tgid = 0;
  std::string comm;
  char state = '?';
  pid_t ppid = 0;
  bool kthread = false;
  uint64_t start_time = 0;
  int policy = 0;
  int nice = 0;
  int rt_priority = 0;
  bool realtime = false;
  uint64_t runtime_ns = 0;
  std::vector<CgroupEntry> cgroups;
};

class ProcFs {
 public:
  explicit ProcFs(Dir proc_root) : root_(std::move(proc_root)) {}
  static Result<ProcFs> openSystem();  // /proc

  Result<std::vector<pid_t>> processes() const;
  // Errors with isGone() true when the process exited.
  Result<std::vector<pid_t>> threads(pid_t pid) const;
  // Reads stat and cgroup, and with `runtime` also schedstat (one more file per thread).
  Result<ThreadFacts> thread(pid_t pid, pid_t tid, bool runtime = false) const;
  Result<ThreadStat> stat(pid_t pid, pid_t tid) const;  // stat alone: one read
  Result<std::vector<CgroupEntry>> cgroups(pid_t pid, pid_t tid) const;  // cgroup alone
  Result<std::string> cmdline(pid_t pid) const;  // NUL separators turned into spaces
  Result<std::string> exe(pid_t pid) const;      // readlink of /proc/<pid>/exe
  Result<pid_t> tgidOf(pid_t tid) const;         // the process of any thread (status: Tgid)
  Result<uint64_t> voluntarySwitches(pid_t pid, pid_t tid) const;  // times the thread slept
  Result<std::string> read(pid_t pid, pid_t tid, std::string_view file) const;

  const Dir& root() const { return root_; }

  // pidfd_open(2): a handle that keeps naming this process even after its PID is reused.
  static Result<UniqueFd> openPidfd(pid_t pid);
  // Whether the process a pidfd names is still alive (pidfd_send_signal with signal 0).
  static bool pidfdAlive(const UniqueFd& pidfd);
  // Whether tid is a thread of process pid.
  bool hasThread(pid_t pid, pid_t tid) const;

  // Cgroup paths (in /proc/PID/cgroup and mountinfo) read relative to the reader's cgroup
  // namespace: from a container's own (Kubernetes gives every container one on cgroup v2), other
  // processes' groups read as "/../..". A daemon sharing the host's PID namespace joins PID 1's
  // before it starts any thread (setns acts on the calling thread; later threads inherit it).
  // True when it joined; false when PID 1's groups read as the host's already (or PID 1 is the
  // container's own: no host PID namespace); an error when it cannot join.
  Result<bool> joinInitialCgroupNamespace() const;

 private:
  Dir root_;
};

}  // namespace cpuclass::cgroups
