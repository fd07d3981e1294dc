#include "cgroups/proc_fs.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/text.h"

namespace cpuclass::cgroups {
namespace {

std::vector<pid_t> numericNames(const std::vector<std::string>& names) {
  std::vector<pid_t> out;
  for (const auto& n : names) {
    if (const auto v = parseInt(n); v && *v > 0) out.push_back(static_cast<pid_t>(*v));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string taskPath(pid_t pid, pid_t tid, std::string_view file) {
  return std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + std::string(file);
}

}  // namespace

Result<ProcFs> ProcFs::openSystem() {
  auto dir = Dir::open("/proc");
  if (!dir) return tl::unexpected(dir.error());
  return ProcFs(std::move(*dir));
}

Result<std::vector<pid_t>> ProcFs::processes() const {
  auto names = root_.subdirs("");
  if (!names) return tl::unexpected(names.error());
  return numericNames(*names);
}

Result<std::vector<pid_t>> ProcFs::threads(pid_t pid) const {
  auto names = root_.subdirs(std::to_string(pid) + "/task");
  if (!names) return tl::unexpected(names.error());
  return numericNames(*names);
}

Result<std::string> ProcFs::read(pid_t pid, pid_t tid, std::string_view file) const {
  return root_.read(taskPath(pid, tid, file));
}

Result<ThreadStat> ProcFs::stat(pid_t pid, pid_t tid) const {
  auto text = read(pid, tid, "stat");
  if (!text) return tl::unexpected(text.error());
  return parseStat(*text);
}

Result<std::vector<CgroupEntry>> ProcFs::cgroups(pid_t pid, pid_t tid) const {
  auto text = read(pid, tid, "cgroup");
  if (!text) return tl::unexpected(text.error());
  return parseProcCgroup(*text);
}

Result<ThreadFacts> ProcFs::thread(pid_t pid, pid_t tid, bool runtime) const {
  auto stat = this->stat(pid, tid);
  if (!stat) return tl::unexpected(stat.error());
  ThreadFacts f;
  f.tid = tid;
  f.tgid = pid;
  f.comm = std::move(stat->comm);
  f.state = stat->state;
  f.ppid = stat->ppid;
  f.kthread = stat->kthread;
  f.start_time = stat->start_time;
  f.policy = stat->policy;
  f.nice = stat->nice;
  f.realtime = isRealtimePolicy(stat->policy);
  f.rt_priority = stat->rt_priority;
  // schedstat is missing without CONFIG_SCHED_INFO: runtime then stays 0. A thread that exits
  // here is caught by the cgroup read below.
  if (runtime) {
    if (auto text = read(pid, tid, "schedstat")) {
      if (auto ss = parseSchedStat(*text)) f.runtime_ns = ss->runtime_ns;
    }
  }
  auto cg = cgroups(pid, tid);
  if (!cg) return tl::unexpected(cg.error());
  f.cgroups = std::move(*cg);
  return f;
}

Result<std::string> ProcFs::cmdline(pid_t pid) const {
  auto text = root_.read(std::to_string(pid) + "/cmdline");
  if (!text) return text;
  while (!text->empty() && text->back() == '\0') text->pop_back();
  std::replace(text->begin(), text->end(), '\0', ' ');
  return text;
}

Result<uint64_t> ProcFs::voluntarySwitches(pid_t pid, pid_t tid) const {
  auto text = root_.read(std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
  if (!text) return tl::unexpected(text.error());
  return parseVoluntarySwitches(*text);
}

Result<std::string> ProcFs::exe(pid_t pid) const {
  const std::string rel = std::to_string(pid) + "/exe";
  char buf[4096];
  const ssize_t n = ::readlinkat(root_.fd(), rel.c_str(), buf, sizeof buf);
  if (n < 0) return failErrno("readlink " + root_.pathOf(rel));
  return std::string(buf, static_cast<size_t>(n));
}

Result<pid_t> ProcFs::tgidOf(pid_t tid) const {
  // /proc/<tid> names any thread, though only processes are listed.
  auto text = root_.read(std::to_string(tid) + "/status");
  if (!text) return tl::unexpected(text.error());
  for (const auto line : splitLines(*text)) {
    if (!line.starts_with("Tgid:")) continue;
    if (const auto tgid = parseInt(trim(line.substr(5)))) return static_cast<pid_t>(*tgid);
  }
  return fail(EINVAL, "no Tgid in /proc/" + std::to_string(tid) + "/status");
}

Result<UniqueFd> ProcFs::openPidfd(pid_t pid) {
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return failErrno("pidfd_open " + std::to_string(pid));
  return UniqueFd(static_cast<int>(fd));
}

bool ProcFs::pidfdAlive(const UniqueFd& pidfd) {
  return ::syscall(SYS_pidfd_send_signal, pidfd.get(), 0, nullptr, 0) == 0;
}

Result<bool> ProcFs::joinInitialCgroupNamespace() const {
  // PID 1's groups read as "/.." from a namespace below its: the sign that paths are not the host's.
  const auto init_groups = cgroups(1, 1);
  if (!init_groups || std::none_of(init_groups->begin(), init_groups->end(),
                                   [](const CgroupEntry& e) { return e.path.starts_with("/.."); })) {
    return false;
  }
  const UniqueFd ns(::open("/proc/1/ns/cgroup", O_RDONLY | O_CLOEXEC));
  if (ns.get() < 0 || ::setns(ns.get(), CLONE_NEWCGROUP) != 0) {
    return failErrno("the daemon is in a cgroup namespace of its own (a container's), where other processes' "
                     "cgroups read as /..; joining PID 1's needs CAP_SYS_ADMIN and CAP_SYS_PTRACE, or run it in "
                     "the host's (podman --cgroupns=host; docs/kubernetes.md)");
  }
  return true;
}

bool ProcFs::hasThread(pid_t pid, pid_t tid) const {
  return pid > 0 && tid > 0 && root_.exists(std::to_string(pid) + "/task/" + std::to_string(tid));
}

}  // namespace cpuclass::cgroups
