#include "cgroups/thread_probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <span>

#include "base/text.h"

namespace cpuclass::cgroups {

namespace {

// The file again from its start; ESRCH once the thread has exited (the read then returns 0).
Result<std::string_view> rereadInto(const UniqueFd& fd, std::span<char> buf, std::string_view what) {
  const ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), 0);
  if (n <= 0) return n == 0 ? fail(ESRCH, "thread gone") : failErrno("pread " + std::string(what));
  return std::string_view(buf.data(), static_cast<size_t>(n));
}

}  // namespace

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
  std::array<char, 1024> buf;
  auto text = rereadInto(stat_, buf, "stat");
  if (!text) return tl::unexpected(text.error());
  return parseStatState(*text);
}

Result<ThreadStat> ThreadProbe::stat() {
  std::array<char, 2048> buf;
  auto text = rereadInto(stat_, buf, "stat");
  if (!text) return tl::unexpected(text.error());
  return parseStat(*text);
}

Result<uint64_t> ThreadProbe::runtimeNs() {
  if (!schedstat_.valid()) {
    schedstat_.reset(::openat(proc_fd_, (dir_ + "schedstat").c_str(), O_RDONLY | O_CLOEXEC));
    if (!schedstat_.valid()) return failErrno("open schedstat of " + dir_);
  }
  std::array<char, 128> buf;
  auto text = rereadInto(schedstat_, buf, "schedstat");
  if (!text) return tl::unexpected(text.error());
  const auto fields = splitFields(*text);
  const auto runtime = fields.empty() ? std::nullopt : parseUint(fields[0]);
  if (!runtime) return fail(EINVAL, "schedstat: malformed");
  return *runtime;
}

}  // namespace cpuclass::cgroups
