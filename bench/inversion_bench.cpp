// cpuclass-inversion-bench CPUCLASSD [REPS] [ITEMS] [CONFIG...]: priority inversion under the real daemon.
//
// This process is the worker: 4 SCHED_OTHER hogs (background) saturate 2 CPUs; a background
// waiter hands 1 ms CPU items to an offload thread (SCHED_IDLE in a cpu.idle group) and waits.
// Per configuration, in random order, REPS times, it starts cpuclassd with a policy and measures:
//   item latency p50/p99 (submit -> done),
//   offload's share of the machine while it spins with the hogs saturating (3 s),
//   the daemon's CPU over the whole configuration.
// Configurations: none (offload boost: false), detect (the daemon's starvation detection), and,
// when DBUS_SYSTEM_BUS_ADDRESS is set (bench/with_private_bus), wait (the waiter reports each wait
// through libcpuclass; detection stays on). shared-none, shared-detect, shared-wait: the same with
// `offload: {run_in: background}` (SCHED_IDLE inside the hogs' group; a boost is sched only).
// CPUCLASS_BENCH_POLL (e.g. 5ms) sets the daemon's starvation_poll, CPUCLASS_BENCH_WAIT_NICE the
// offload class's boost wait_nice, CPUCLASS_BENCH_POLICY a policy drop-in of any other settings
// (e.g. 'daemon: {fast_moves: false}').
// Needs root and a cgroup v1 cpu hierarchy; uses cgroup prefix cpuclass-inv-<pid>.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "cpuclass.h"

using namespace std::chrono;
using Clock = steady_clock;

namespace {

using cpuclass::bench::burnCpu;
using cpuclass::bench::percentile;
using cpuclass::bench::slurp;

uint64_t runtimeNs(pid_t pid, pid_t tid) {
  return std::strtoull(slurp("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/schedstat").c_str(),
                       nullptr, 10);
}

uint64_t processRuntimeNs(pid_t pid) {
  uint64_t sum = 0;
  std::ifstream tasks;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  // Threads of the daemon (the exposer has some); summed from each thread's schedstat.
  if (FILE* ls = ::popen(("ls " + dir).c_str(), "r")) {
    char line[64];
    while (std::fgets(line, sizeof line, ls) != nullptr) sum += runtimeNs(pid, static_cast<pid_t>(std::atoi(line)));
    ::pclose(ls);
  }
  return sum;
}

struct Worker {
  std::atomic<bool> stop{false};
  std::atomic<bool> offload_spin{false};
  std::mutex mu;
  std::condition_variable cv;
  bool pending = false, done = false;
  std::atomic<pid_t> offload_tid{0}, waiter_tid{0};
  std::vector<std::thread> threads;

  void start() {
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([this, i] {
        pthread_setname_np(pthread_self(), ("hog-" + std::to_string(i)).c_str());
        while (!stop) burnCpu(milliseconds(1));
      });
    }
    threads.emplace_back([this] {
      pthread_setname_np(pthread_self(), "offload-0");
      offload_tid = ::gettid();
      std::unique_lock lock(mu);
      while (!stop) {
        cv.wait_for(lock, milliseconds(50), [&] { return pending || stop || offload_spin; });
        if (offload_spin) {
          lock.unlock();
          while (offload_spin && !stop) burnCpu(milliseconds(1));
          lock.lock();
          continue;
        }
        if (!pending) continue;
        lock.unlock();
        burnCpu(milliseconds(1));
        lock.lock();
        pending = false;
        done = true;
        cv.notify_all();
      }
    });
    while (offload_tid == 0) std::this_thread::yield();
  }

  // With a client, the wait is reported before it starts and ended after (the RavenDB pattern).
  double item(cpuclass_client* client) {
    const auto t0 = Clock::now();
    std::unique_lock lock(mu);
    pending = true;
    done = false;
    cv.notify_all();
    if (client != nullptr) {
      lock.unlock();
      (void)cpuclass_report_wait(client, 0, offload_tid);
      lock.lock();
    }
    cv.wait(lock, [&] { return done; });
    const double ms = duration<double, std::milli>(Clock::now() - t0).count();
    if (client != nullptr) {
      lock.unlock();
      (void)cpuclass_end_wait(client, 0, offload_tid);
    }
    return ms;
  }

  ~Worker() {
    stop = true;
    cv.notify_all();
    for (auto& t : threads) t.join();
  }
};

struct Result {
  double p50, p99, offload_share, daemon_cpu;
};

Result runConfig(const std::string& cpuclassd, const std::string& dir, const std::string& tag, bool boost, bool report,
                 bool shared, Worker& w, int items) {
  const char* poll = std::getenv("CPUCLASS_BENCH_POLL");  // e.g. 5ms; default: the policy default
  const char* wait_nice = std::getenv("CPUCLASS_BENCH_WAIT_NICE");  // e.g. -20; default: the policy default
  std::ofstream(dir + "/policy.yaml") << "daemon: {cgroup_prefix: " << tag << ", metrics_listen: 'off'"
                                      << (poll != nullptr ? std::string(", starvation_poll: ") + poll : "") << "}\n"
                                      << "classes: {offload: {boost: "
                                      << (!boost ? "false" : wait_nice != nullptr ? std::string("{wait_nice: ") + wait_nice + "}" : "true")
                                      << (shared ? ", run_in: background" : "") << "}}\n"
                                      << "workers:\n  - name: inv\n    match: {cmdline: '.*--tag=" << tag << "'}\n"
                                      << "    default_class: background\n"
                                      << "    threads: [{comm: 'offload-.*', class: offload}]\n";
  if (const char* dropin = std::getenv("CPUCLASS_BENCH_POLICY")) {
    std::filesystem::create_directories(dir + "/policy.d");
    std::ofstream(dir + "/policy.d/90-bench.yaml") << dropin << "\n";
  }
  const pid_t daemon = cpuclass::bench::spawnDaemon(cpuclassd, dir);
  // Wait until the offload thread is in its idle group.
  const std::string cg = "/proc/self/task/" + std::to_string(w.offload_tid.load()) + "/cgroup";
  for (int i = 0; i < 500 && slurp(cg).find("/offload") == std::string::npos; ++i) std::this_thread::sleep_for(milliseconds(10));
  cpuclass_client* client = nullptr;
  if (report) {  // until the daemon is on the bus
    for (int i = 0; i < 200; ++i, std::this_thread::sleep_for(milliseconds(25))) {
      if (client == nullptr && cpuclass_open(&client) < 0) continue;
      if (cpuclass_set_thread_class(client, 0, "background") == 0) break;
    }
  }
  const uint64_t daemon_start = processRuntimeNs(daemon);
  const auto t_start = Clock::now();

  std::vector<double> lat;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> gap(5, 25);
  for (int i = 0; i < items; ++i) {
    std::this_thread::sleep_for(milliseconds(gap(rng)));
    lat.push_back(w.item(client));
  }
  // Offload spinning while the hogs saturate both CPUs: how much of the machine does it get?
  const uint64_t before = runtimeNs(::getpid(), w.offload_tid);
  w.offload_spin = true;
  w.cv.notify_all();
  std::this_thread::sleep_for(seconds(3));
  w.offload_spin = false;
  const double share = static_cast<double>(runtimeNs(::getpid(), w.offload_tid) - before) / 6e9;  // 3 s x 2 CPUs

  const double wall = duration<double>(Clock::now() - t_start).count();
  const double daemon_cpu = static_cast<double>(processRuntimeNs(daemon) - daemon_start) / 1e9 / wall;
  cpuclass_close(client);
  ::kill(daemon, SIGTERM);
  ::waitpid(daemon, nullptr, 0);
  return {percentile(lat, 0.5), percentile(lat, 0.99), share, daemon_cpu};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: cpuclass-inversion-bench CPUCLASSD [REPS] [ITEMS]\n"), 2;
  const std::string tag = cpuclass::bench::tagOrReexec(argc, argv, "cpuclass-inv");
  const std::string cpuclassd = argv[1];
  const int reps = argc > 3 && argv[2][0] != '-' ? std::atoi(argv[2]) : 3;
  const int items = argc > 4 && argv[3][0] != '-' ? std::atoi(argv[3]) : 100;
  char tmpl[] = "/tmp/cpuclass-inv-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);

  Worker w;
  w.start();
  std::this_thread::sleep_for(milliseconds(200));
  std::vector<std::string> configs;
  for (int i = 4; i < argc; ++i) {
    if (argv[i][0] != '-') configs.push_back(argv[i]);  // not the --tag= of the re-exec
  }
  if (configs.empty()) {
    configs = {"none", "detect", "shared-none", "shared-detect"};
    if (std::getenv("DBUS_SYSTEM_BUS_ADDRESS") != nullptr) configs.insert(configs.end(), {"wait", "shared-wait"});
  }
  std::map<std::string, std::vector<Result>> results;
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  for (int r = 0; r < reps; ++r) {
    std::shuffle(configs.begin(), configs.end(), rng);
    for (const auto& c : configs) {
      const bool shared = c.starts_with("shared-");
      const std::string mode = shared ? c.substr(7) : c;
      const Result res = runConfig(cpuclassd, dir, tag, mode != "none", mode == "wait", shared, w, items);
      results[c].push_back(res);
      std::printf("rep %d %-18s item p50 %7.2f ms  p99 %7.2f ms  offload share %5.2f%%  daemon CPU %5.2f%%\n", r + 1,
                  c.c_str(), res.p50, res.p99, 100 * res.offload_share, 100 * res.daemon_cpu);
      std::fflush(stdout);
    }
  }
  std::printf("\n| configuration (median of %d) | item p50 | item p99 | offload share of machine, bg saturating | daemon CPU |\n"
              "|---|---|---|---|---|\n", reps);
  for (const auto& [c, rs] : results) {
    std::vector<double> p50, p99, share, cpu;
    for (const auto& x : rs) p50.push_back(x.p50), p99.push_back(x.p99), share.push_back(x.offload_share), cpu.push_back(x.daemon_cpu);
    std::printf("| %s | %.2f ms | %.2f ms | %.2f%% | %.2f%% |\n", c.c_str(), percentile(p50, 0.5), percentile(p99, 0.5),
                100 * percentile(share, 0.5), 100 * percentile(cpu, 0.5));
  }
  std::system(("rm -rf " + dir).c_str());
  return 0;
}
