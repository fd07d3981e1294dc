#include "daemon/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/text.h"
#include "base/unique_fd.h"

namespace cpuclass::daemon {

std::string encodeOriginals(const Originals& originals) {
  std::string out;
  for (const auto& [tid, o] : originals) {
    out += std::to_string(tid) + " " + std::to_string(o.start_time) + " " + std::to_string(o.policy) + " " +
           std::to_string(o.nice) + " ";
    for (const char c : o.cgroups) {
      if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    out += "\n";
  }
  return out;
}

Result<Originals> decodeOriginals(const std::string& text) {
  Originals out;
  int line_no = 0;
  for (const auto line : splitLines(text)) {
    ++line_no;
    if (trim(line).empty()) continue;
    const auto fields = splitFields(line, " ");
    const auto bad = [&] { return fail(EINVAL, "state line " + std::to_string(line_no) + " is malformed"); };
    if (fields.size() != 5) return bad();
    const auto tid = parseInt(fields[0]);
    const auto start = parseUint(fields[1]);
    const auto policy = parseInt(fields[2]);
    const auto nice = parseInt(fields[3]);
    if (!tid || !start || !policy || !nice) return bad();
    Original o{*start, static_cast<int>(*policy), static_cast<int>(*nice), {}};
    const auto esc = fields[4];
    for (size_t i = 0; i < esc.size(); ++i) {
      if (esc[i] == '\\' && i + 1 < esc.size()) {
        o.cgroups += esc[i + 1] == 'n' ? '\n' : esc[i + 1];
        ++i;
      } else {
        o.cgroups += esc[i];
      }
    }
    out[static_cast<pid_t>(*tid)] = std::move(o);
  }
  return out;
}

Result<Originals> StateFile::load() const {
  std::ifstream in(path_);
  if (!in) return errno == ENOENT ? Result<Originals>(Originals{}) : failErrno("open " + path_);
  std::stringstream ss;
  ss << in.rdbuf();
  auto decoded = decodeOriginals(ss.str());
  if (!decoded) return fail(EINVAL, path_ + ": " + decoded.error().message);
  return decoded;
}

Result<void> StateFile::save(const Originals& originals) const {
  const std::string tmp = path_ + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return failErrno("open " + tmp);
  const std::string text = encodeOriginals(originals);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) return failErrno("write " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return failErrno("rename " + tmp);
  return {};
}

Result<void> StateFile::remove() const {
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return failErrno("unlink " + path_);
  return {};
}

}  // namespace cpuclass::daemon
