// An opened directory that does all its I/O relative to itself (openat and friends).
//
// The kernel layer opens each root once (/proc, a cgroup mount) and works below it, so the same
// code runs unchanged against a temporary tree in the fake_kernel tests. Relative paths must not
// start with '/'; an empty path or "." means the directory itself.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace cpuclass::cgroups {

class KeptFile;

class Dir {
 public:
  static Result<Dir> open(const std::string& absolute_path);

  Result<Dir> openDir(std::string_view rel) const;
  Result<std::string> read(std::string_view rel) const;
  // Opens with O_WRONLY|O_TRUNC (what a shell's '>' does; cgroupfs accepts it) and writes once.
  Result<void> write(std::string_view rel, std::string_view data) const;
  // For batches: one open, many writes (each write to cgroupfs is one request).
  Result<UniqueFd> openForWrite(std::string_view rel) const;
  // A file read again and again (O_RDONLY) or written again and again (O_WRONLY).
  Result<KeptFile> keep(std::string_view rel, int flags) const;
  // Creates every missing level; returns whether the last level was created (false: adopted).
  Result<bool> makeDirs(std::string_view rel) const;
  // rmdir; a directory that is already gone is success.
  Result<void> removeDir(std::string_view rel) const;
  bool exists(std::string_view rel) const;
  // Whether the directory rel carries the extended attribute `name` (ENODATA: false).
  Result<bool> hasXattr(std::string_view rel, const char* name) const;
  // Names of the subdirectories of rel (not files), sorted.
  Result<std::vector<std::string>> subdirs(std::string_view rel) const;

  const std::string& path() const { return path_; }
  std::string pathOf(std::string_view rel) const;
  int fd() const { return fd_.get(); }

 private:
  Dir(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

// A file kept open for what the daemon reads or writes every poll. /proc and cgroupfs build a
// file's text anew on each read from offset 0, so a pread sees it fresh, and costs a third of
// open+read+close (~1 us against ~3-4 us here; docs/boosting.md, "Round 8").
class KeptFile {
 public:
  // rel below the directory dir_fd; `path` names the file in messages.
  static Result<KeptFile> open(int dir_fd, std::string_view rel, int flags, std::string path);
  // The file from its start, into buf. Reading nothing is ESRCH: a /proc file of an exited thread.
  Result<std::string_view> reread(std::span<char> buf) const;
  // One write(2); false with errno set on failure, for the caller to classify.
  bool write(std::string_view data) const;
  const std::string& path() const { return path_; }

 private:
  KeptFile(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

}  // namespace cpuclass::cgroups
