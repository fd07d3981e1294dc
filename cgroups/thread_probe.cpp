#include "cgroups/thread_probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <span>

#include "base/text.h"

namespace cpuclass::cgroups {

char parseStatState(std::string_view text) {
  const auto close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= text.size()) return '?';
  return text[close + 2];
}

Result<ThreadProbe> ThreadProbe::open(const ProcFs& proc, pid_t pid, pid_t tid) {
  std::string dir = std::to_string(pid) + "/task/" + std::to_string(tid) + "/";
  auto stat = proc.root().keep(dir + "stat", O_RDONLY);
  if (!stat) return tl::unexpected(stat.error());
  return ThreadProbe(std::move(*stat), proc.root().fd(), std::move(dir), proc.root().path());
}

Result<std::string_view> ThreadProbe::reread(std::optional<KeptFile>& file, std::string_view name, std::span<char> buf) {
  if (!file) {
    const std::string rel = dir_ + std::string(name);
    auto opened = KeptFile::open(proc_fd_, rel, O_RDONLY, proc_path_ + "/" + rel);
    if (!opened) return tl::unexpected(opened.error());
    file = std::move(*opened);
  }
  return file->reread(buf);
}

Result<char> ThreadProbe::state() {
  std::array<char, 1024> buf;
  auto text = stat_.reread(buf);
  if (!text) return tl::unexpected(text.error());
  return parseStatState(*text);
}

Result<ThreadStat> ThreadProbe::stat() {
  std::array<char, 2048> buf;
  auto text = stat_.reread(buf);
  if (!text) return tl::unexpected(text.error());
  return parseStat(*text);
}

Result<uint64_t> ThreadProbe::runtimeNs() {
  std::array<char, 128> buf;
  auto text = reread(schedstat_, "schedstat", buf);
  if (!text) return tl::unexpected(text.error());
  const auto fields = splitFields(*text);
  const auto runtime = fields.empty() ? std::nullopt : parseUint(fields[0]);
  if (!runtime) return fail(EINVAL, "schedstat: malformed");
  return *runtime;
}

Result<std::vector<CgroupEntry>> ThreadProbe::cgroups() {
  std::array<char, 8192> buf;
  auto text = reread(cgroup_, "cgroup", buf);
  if (!text) return tl::unexpected(text.error());
  if (text->size() == buf.size()) return fail(EOVERFLOW, proc_path_ + "/" + dir_ + "cgroup: longer than 8 KiB");
  return parseProcCgroup(*text);
}

}  // namespace cpuclass::cgroups
