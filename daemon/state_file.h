// Where managed threads were before the daemon touched them, kept on disk (/run/cpuclassd/state)
// so that a daemon restarted after a crash can still restore them on stop.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "base/error.h"

namespace cpuclass::daemon {

struct Original {
  uint64_t start_time = 0;  // with the tid, identifies the thread across TID reuse
  int policy = 0;
  int nice = 0;
  std::string cgroups;  // the thread's /proc/<tid>/cgroup text when first seen
  bool operator==(const Original&) const = default;
};
using Originals = std::map<pid_t, Original>;

// One line per thread: "tid start policy nice cgroups", with '\' and newlines escaped in cgroups.
std::string encodeOriginals(const Originals& originals);
Result<Originals> decodeOriginals(const std::string& text);

class StateFile {
 public:
  explicit StateFile(std::string path) : path_(std::move(path)) {}
  // A missing file is an empty state.
  Result<Originals> load() const;
  // Atomic: written to a temporary file, then renamed over the old one.
  Result<void> save(const Originals& originals) const;
  Result<void> remove() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace cpuclass::daemon
