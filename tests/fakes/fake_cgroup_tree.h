// Builds directory trees that look like cgroupfs or /proc to the kernel layer, in a temp dir.
//
// Real cgroupfs creates a group's files on mkdir; a plain directory does not, so tests create the
// groups (with the files the kernel would show) before handing the tree to the code under test.
#pragma once

#include <filesystem>
#include <string>

#include "tests/support/test_support.h"

namespace cpuclass::testing {

class FakeCgroupTree {
 public:
  explicit FakeCgroupTree(bool v2) : v2_(v2) { addGroup(""); }
  const std::filesystem::path& root() const { return dir_.path(); }

  // A group with default files: v2 cgroup.type domain, cpu.weight 100; v1 cpu.shares 1024.
  void addGroup(const std::string& group);
  void set(const std::string& group, const std::string& file, const std::string& content);
  std::string get(const std::string& group, const std::string& file) const;
  std::filesystem::path at(const std::string& group) const { return group.empty() ? root() : root() / group; }

 private:
  TempDir dir_;
  bool v2_;
};

// A fake /proc with processes and threads whose stat, schedstat and cgroup files are given.
class FakeProc {
 public:
  const std::filesystem::path& root() const { return dir_.path(); }
  void addThread(pid_t pid, pid_t tid, const std::string& comm, const std::string& cgroup,
                 int policy = 0, int nice = 0, uint64_t start_time = 1000);

 private:
  TempDir dir_;
};

}  // namespace cpuclass::testing
