#include "cgroups/thread_probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/text.h"

namespace cpuclass::cgroups {

char parseStatState(std::string_view text) {
  const auto close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= text.size()) return '?';
  return text[close + 2];
}

Result<ThreadProbe> ThreadProbe::open(const ProcFs& proc, pid_t pid, pid_t tid) {
  std::string dir = std::to_string(pid) + "/task/" + std::to_string(tid) + "/";
  UniqueFd stat(::openat(proc.root().fd(), (dir + "stat").c_str(), O_RDONLY | O_CLOEXEC));
  if (!stat.valid()) return failErrno("open " + proc.root().pathOf(dir + "stat"));
  return ThreadProbe(std::move(stat), proc.root().fd(), std::move(dir));
}

Result<char> ThreadProbe::state() {
  char buf[1024];
  const ssize_t n = ::pread(stat_.get(), buf, sizeof buf - 1, 0);
  if (n <= 0) return n == 0 ? fail(ESRCH, "thread gone") : failErrno("pread stat");
  return parseStatState(std::string_view(buf, static_cast<size_t>(n)));
}

Result<uint64_t> ThreadProbe::runtimeNs() {
  if (!schedstat_.valid()) {
    schedstat_.reset(::openat(proc_fd_, (dir_ + "schedstat").c_str(), O_RDONLY | O_CLOEXEC));
    if (!schedstat_.valid()) return failErrno("open schedstat of " + dir_);
  }
  char buf[128];
  const ssize_t n = ::pread(schedstat_.get(), buf, sizeof buf - 1, 0);
  if (n <= 0) return n == 0 ? fail(ESRCH, "thread gone") : failErrno("pread schedstat");
  const auto fields = splitFields(std::string_view(buf, static_cast<size_t>(n)));
  const auto runtime = fields.empty() ? std::nullopt : parseUint(fields[0]);
  if (!runtime) return fail(EINVAL, "schedstat: malformed");
  return *runtime;
}

}  // namespace cpuclass::cgroups
