// cpuclass-bus-roundtrip CPUCLASSD [CALLS]: round-trip latency of libcpuclass calls through the
// real D-Bus path (run it under bench/with_private_bus where there is no system bus).
//
// This process is the worker; it starts cpuclassd with a policy that manages it and times, per
// call: SetThreadClass to the class the thread already has (bus and daemon only, no kernel
// work), SetThreadClass alternating classes (includes the cgroup move), ReportWait on an offload
// helper (starts a boost: includes its move) and EndWait (ends it: includes the move back).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "cpuclass.h"

using namespace std::chrono;
using Clock = steady_clock;

namespace {

template <class F>
std::vector<double> timeCalls(int n, F&& f) {
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (f(i) < 0) return {};
    us.push_back(duration<double, std::micro>(Clock::now() - t0).count());
    std::this_thread::sleep_for(microseconds(1000));  // stay under the daemon's per-caller rate limit
  }
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::getenv("DBUS_SYSTEM_BUS_ADDRESS") == nullptr) {
    return std::fprintf(stderr, "usage: bench/with_private_bus cpuclass-bus-roundtrip CPUCLASSD [CALLS]\n"), 2;
  }
  const std::string tag = cpuclass::bench::tagOrReexec(argc, argv, "cpuclass-rt");
  const int calls = argc > 3 && argv[2][0] != '-' ? std::atoi(argv[2]) : 1000;
  char tmpl[] = "/tmp/cpuclass-rt-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  std::ofstream(dir + "/policy.yaml") << "daemon: {cgroup_prefix: " << tag << ", metrics_listen: 'off'}\n"
                                      << "classes: {offload: {boost: {max_per_second: 100000}}}\n"
                                      << "workers:\n  - name: rt\n    match: {cmdline: '.*--tag=" << tag << "'}\n"
                                      << "    threads: [{comm: 'helper', class: offload}]\n";
  const pid_t daemon = cpuclass::bench::spawnDaemon(argv[1], dir);
  if (daemon < 0) return std::perror("spawn"), 1;

  std::atomic<pid_t> helper{0};
  std::atomic<bool> stop{false};
  std::thread h([&] {
    pthread_setname_np(pthread_self(), "helper");
    helper = ::gettid();
    while (!stop) std::this_thread::sleep_for(milliseconds(5));
  });
  cpuclass_client* c = nullptr;
  int rc = 1;
  for (int i = 0; i < 200 && rc != 0; ++i) {  // until the daemon is on the bus and manages us
    std::this_thread::sleep_for(milliseconds(25));
    if (c == nullptr && cpuclass_open(&c) < 0) continue;
    rc = cpuclass_set_thread_class(c, 0, "foreground");
  }
  if (rc != 0) return std::fprintf(stderr, "the daemon never answered: %s\n", c ? cpuclass_last_error(c) : "no bus"), 1;
  const char* alt[] = {"background", "foreground"};
  const auto same = timeCalls(calls, [&](int) { return cpuclass_set_thread_class(c, 0, "foreground"); });
  const auto moving = timeCalls(calls, [&](int i) { return cpuclass_set_thread_class(c, 0, alt[i % 2]); });
  std::vector<double> report, end;
  for (int i = 0; i < calls; ++i) {
    auto t0 = Clock::now();
    if (cpuclass_report_wait(c, 0, helper) < 0) break;
    report.push_back(duration<double, std::micro>(Clock::now() - t0).count());
    t0 = Clock::now();
    if (cpuclass_end_wait(c, 0, helper) < 0) break;
    end.push_back(duration<double, std::micro>(Clock::now() - t0).count());
    std::this_thread::sleep_for(microseconds(1000));
  }
  if (same.empty() || moving.empty() || report.size() != static_cast<size_t>(calls)) {
    std::fprintf(stderr, "a call failed: %s\n", cpuclass_last_error(c));
  }
  std::printf("| call (%d each) | p50 | p99 |\n|---|---|---|\n", calls);
  for (const auto& [name, v] : {std::pair{"SetThreadClass, class unchanged (bus + daemon)", same},
                                {"SetThreadClass, class alternating (+ cgroup move)", moving},
                                {"ReportWait (starts a boost: + move)", report},
                                {"EndWait (ends it: + move back)", end}}) {
    if (!v.empty()) std::printf("| %s | %.0f us | %.0f us |\n", name, cpuclass::bench::percentile(v, 0.5), cpuclass::bench::percentile(v, 0.99));
  }
  stop = true;
  h.join();
  cpuclass_close(c);
  ::kill(daemon, SIGTERM);
  ::waitpid(daemon, nullptr, 0);
  std::system(("rm -rf " + dir).c_str());
  return 0;
}
