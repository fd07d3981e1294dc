// Small helpers shared by the benchmark programs: CPU burning, percentiles, running cpuclassd,
// and the re-exec that lets a benchmark be a worker the daemon's policy matches by command line.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace cpuclass::bench {

// Spins on this thread's CPU clock until it has used `amount` of CPU.
inline void burnCpu(std::chrono::nanoseconds amount) {
  timespec a{}, b{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
  do {
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
  } while ((b.tv_sec - a.tv_sec) * 1'000'000'000L + (b.tv_nsec - a.tv_nsec) < amount.count());
}

// A whole (small) file, "" when unreadable.
inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Nearest-rank percentile, p in 0..1; 0 for an empty sample.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

// Returns the value of this process's --tag=VALUE argument; when there is none, re-executes
// itself with --tag=<prefix>-<pid> added (so the daemon can match it) and does not return.
inline std::string tagOrReexec(int argc, char** argv, const std::string& prefix) {
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--tag=", 0) == 0) return a.substr(6);
  }
  std::vector<char*> args(argv, argv + argc);
  std::string tag = "--tag=" + prefix + "-" + std::to_string(::getpid());
  args.push_back(tag.data());
  args.push_back(nullptr);
  ::execv("/proc/self/exe", args.data());
  ::_exit(127);
}

// Starts cpuclassd with DIR/policy.yaml, state in DIR/state, log in DIR/daemon.log; -1 on failure.
inline pid_t spawnDaemon(const std::string& cpuclassd, const std::string& dir) {
  std::vector<std::string> args{cpuclassd, "--policy", dir + "/policy.yaml", "--state-dir", dir + "/state"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, (dir + "/daemon.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  if (::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

}  // namespace cpuclass::bench
