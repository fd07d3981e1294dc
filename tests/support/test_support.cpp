#include "tests/support/test_support.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/text.h"
#include "cgroups/mount_info.h"
#include "cgroups/proc_parse.h"

namespace cpuclass::testing {

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path);
  out << content;
}

std::string readFixture(const std::string& relative) {
  return readFile(std::filesystem::path(CPUCLASS_FIXTURES_DIR) / relative);
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "cpuclass-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

ParkedThreads::ParkedThreads(size_t count, const std::string& name_prefix)
    : slots_(count), tids_(count, 0) {
  for (size_t i = 0; i < count; ++i) {
    const std::string name = (name_prefix + "-" + std::to_string(i)).substr(0, 15);
    slots_[i].thread = std::thread([this, i, name] {
      pthread_setname_np(pthread_self(), name.c_str());
      std::unique_lock lock(mu_);
      tids_[i] = static_cast<pid_t>(::syscall(SYS_gettid));
      cv_.notify_all();
      cv_.wait(lock, [&] { return slots_[i].release; });
    });
  }
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] {
    for (const pid_t t : tids_) {
      if (t == 0) return false;
    }
    return true;
  });
}

void ParkedThreads::finish(size_t i) {
  {
    std::lock_guard lock(mu_);
    slots_[i].release = true;
  }
  cv_.notify_all();
  if (slots_[i].thread.joinable()) slots_[i].thread.join();
}

ParkedThreads::~ParkedThreads() {
  for (size_t i = 0; i < slots_.size(); ++i) finish(i);
}

std::string procCgroupOf(pid_t tid, const std::string& controller) {
  const auto entries = cgroups::parseProcCgroup(readFile("/proc/self/task/" + std::to_string(tid) + "/cgroup"));
  if (!entries) return "<unreadable>";
  return cgroups::cgroupPathOf(*entries, controller).value_or("<none>");
}

static cgroups::ThreadStat statOf(pid_t tid) {
  auto st = cgroups::parseStat(readFile("/proc/self/task/" + std::to_string(tid) + "/stat"));
  if (!st) throw std::runtime_error(st.error().message);
  return *st;
}

int procNice(pid_t tid) { return statOf(tid).nice; }
int procPolicy(pid_t tid) { return statOf(tid).policy; }

std::string uniqueGroupName() {
  static std::atomic<int> counter{0};
  return "cpuclass-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::string kernelTierUnavailable() {
  if (::geteuid() != 0) return "kernel tier needs root (it creates cgroups and changes thread policies)";
  const auto layout = cgroups::detectLayout(readFile("/proc/self/mountinfo"));
  if (!layout) return "no cgroup hierarchy: " + layout.error().message;
  if (layout->cpu.version == 2) {
    const auto controllers = readFile(layout->cpu.mount_point + "/cgroup.controllers");
    if (controllers.find("cpu") == std::string::npos) return "cgroup2 has no cpu controller here";
  }
  if (::access((layout->cpu.mount_point + "/cgroup.procs").c_str(), W_OK) != 0) {
    return "the cpu hierarchy at " + layout->cpu.mount_point + " is not writable";
  }
  return {};
}

std::string unifiedThreadedUnavailable() {
  if (::geteuid() != 0) return "needs root to create cgroups";
  const auto layout = cgroups::detectLayout(readFile("/proc/self/mountinfo"));
  if (!layout || !layout->unified) return "no cgroup2 mount";
  if (::access((layout->unified->mount_point + "/cgroup.threads").c_str(), W_OK) != 0) {
    return "cgroup2 at " + layout->unified->mount_point + " has no writable cgroup.threads";
  }
  if (procCgroupOf(static_cast<pid_t>(::syscall(SYS_gettid)), "") != "/") {
    return "this process is not in the cgroup2 root, whose threaded children the test uses";
  }
  return {};
}

std::string unifiedMountPoint() {
  const auto layout = cgroups::detectLayout(readFile("/proc/self/mountinfo"));
  return layout && layout->unified ? layout->unified->mount_point : std::string();
}

}  // namespace cpuclass::testing
