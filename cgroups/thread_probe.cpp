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
  const std::string dir = std::to_string(pid) + "/task/" + std::to_string(tid) + "/";
  UniqueFd stat(::openat(proc.root().fd(), (dir + "stat").c_str(), O_RDONLY | O_CLOEXEC));
  if (!stat.valid()) return failErrno("open " + proc.root().pathOf(dir + "stat"));
  UniqueFd schedstat(::openat(proc.root().fd(), (dir + "schedstat").c_str(), O_RDONLY | O_CLOEXEC));
  if (!schedstat.valid()) return failErrno("open " + proc.root().pathOf(dir + "schedstat"));
  return ThreadProbe(std::move(stat), std::move(schedstat));
}

Result<LiveSample> ThreadProbe::read() const {
  char buf[1024];
  ssize_t n = ::pread(stat_.get(), buf, sizeof buf - 1, 0);
  if (n <= 0) return n == 0 ? fail(ESRCH, "thread gone") : failErrno("pread stat");
  LiveSample s;
  s.state = parseStatState(std::string_view(buf, static_cast<size_t>(n)));
  n = ::pread(schedstat_.get(), buf, sizeof buf - 1, 0);
  if (n <= 0) return n == 0 ? fail(ESRCH, "thread gone") : failErrno("pread schedstat");
  const auto fields = splitFields(std::string_view(buf, static_cast<size_t>(n)));
  const auto runtime = fields.empty() ? std::nullopt : parseUint(fields[0]);
  if (!runtime) return fail(EINVAL, "schedstat: malformed");
  s.runtime_ns = *runtime;
  return s;
}

}  // namespace cpuclass::cgroups
