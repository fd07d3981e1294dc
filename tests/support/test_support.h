// Helpers shared by the test tiers: fixtures, temporary trees, real threads, kernel-test guards.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cpuclass::testing {

std::string readFixture(const std::string& relative);  // below tests/fixtures
std::string readFile(const std::filesystem::path& path);
void writeFile(const std::filesystem::path& path, const std::string& content);

// A temporary directory removed with everything below it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Real threads that park until released; each reports its TID and can be named.
class ParkedThreads {
 public:
  explicit ParkedThreads(size_t count, const std::string& name_prefix = "parked");
  ~ParkedThreads();
  const std::vector<pid_t>& tids() const { return tids_; }
  // Lets thread i exit and joins it.
  void finish(size_t i);

 private:
  struct Slot {
    std::thread thread;
    bool release = false;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  std::vector<pid_t> tids_;
};

// The cgroup path of tid in the hierarchy with `controller` ("" for the cgroup2 line).
std::string procCgroupOf(pid_t tid, const std::string& controller);
// Fields 19 (nice) and 41 (policy) of /proc/self/task/<tid>/stat.
int procNice(pid_t tid);
int procPolicy(pid_t tid);

// A name no other test run or user shares: cpuclass-test-<pid>-<n>.
std::string uniqueGroupName();

// Empty when kernel-tier tests can run here; otherwise why not (for GTEST_SKIP).
std::string kernelTierUnavailable();
// Empty when threaded children of the cgroup2 root can be used here (v2 code path on real kernel).
std::string unifiedThreadedUnavailable();
std::string unifiedMountPoint();

}  // namespace cpuclass::testing
