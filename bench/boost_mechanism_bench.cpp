// cpuclass-boost-mechanism-bench: which boost gets a starving offload thread its CPU fastest?
//
// 4 SCHED_OTHER hogs on 2 CPUs in a background-like group; an offload thread, SCHED_IDLE in a
// cpu.idle=1 group, serves 1 ms CPU items to a waiter; a poller every 10 ms marks the offload
// thread starving when it is runnable and its runtime grew by less than 10% of the interval
// (KERNEL_NOTES' live signal), applies a mechanism, and reverts it when the item is done or after
// 50 ms. Mechanisms, in random order per repetition:
//   none   no boost
//   sched  SCHED_IDLE -> SCHED_OTHER in place (the thread stays in the idle group)
//   move   move to a non-idle group (weight 100) + SCHED_OTHER, moved back after
//   flip   cpu.idle=0 on the whole offload group + SCHED_OTHER, idle again after
//   shared-none / shared  the offload thread lives SCHED_IDLE in the hogs' own (non-idle) group;
//          the boost is SCHED_OTHER in place (one sched_setattr, no cgroup write)
// Each run also measures offload's share of the machine while it spins with the hogs saturating.
// Prints item latency p50/p99 per mechanism and repetition, then medians. Needs root and a v1 cpu
// hierarchy; creates and removes cpuclass-boostbench-<pid>.
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "cgroups/class_tree.h"
#include "cgroups/proc_fs.h"
#include "cgroups/sched.h"

using namespace cpuclass;
using namespace cpuclass::cgroups;
using namespace std::chrono;
using Clock = steady_clock;

namespace {


using bench::burnCpu;
using bench::percentile;

struct Run {
  double p50_ms, p99_ms, share;
};

Run runOnce(const ClassTree& tree, const std::string& base, const std::string& mech, int items) {
  const Hierarchy& cpu = tree.control();
  std::atomic<bool> stop{false};
  std::vector<std::thread> hogs;
  for (int i = 0; i < 4; ++i) {
    hogs.emplace_back([&] {
      (void)tree.place(base, "hogs", std::vector<pid_t>{::gettid()});
      while (!stop) burnCpu(milliseconds(1));
    });
  }
  std::mutex mu;
  std::condition_variable cv;
  bool pending = false, done = false;
  std::atomic<bool> spin{false};
  std::atomic<pid_t> offload_tid{0};
  const bool shared = mech.starts_with("shared");
  std::thread offload([&] {
    offload_tid = ::gettid();
    (void)tree.place(base, shared ? "hogs" : "offload", std::vector<pid_t>{::gettid()});
    (void)setThreadSched(::gettid(), {kSchedIdle, 0});
    std::unique_lock lock(mu);
    while (!stop) {
      cv.wait(lock, [&] { return pending || stop || spin; });
      if (stop) break;
      if (spin) {
        lock.unlock();
        while (spin) burnCpu(milliseconds(1));
        lock.lock();
        continue;
      }
      lock.unlock();
      burnCpu(milliseconds(1));
      lock.lock();
      pending = false;
      done = true;
      cv.notify_all();
    }
  });
  while (offload_tid == 0) std::this_thread::yield();
  const pid_t tid = offload_tid;

  // The poller: like the daemon, in a high-weight group so it gets the CPU it needs.
  std::atomic<bool> boosted{false};
  std::thread poller([&] {
    (void)tree.place(base, "poller", std::vector<pid_t>{::gettid()});
    ProcFs proc = *ProcFs::openSystem();
    uint64_t last_runtime = 0;
    Clock::time_point boost_start{};
    while (!stop) {
      std::this_thread::sleep_for(milliseconds(10));
      auto f = proc.thread(::getpid(), tid, true);
      if (!f) continue;
      const bool starving = f->state == 'R' && f->runtime_ns - last_runtime < 1'000'000;  // < 10% of 10 ms
      last_runtime = f->runtime_ns;
      const bool should_end = boosted && (f->state != 'R' || Clock::now() - boost_start > milliseconds(50));
      if (!boosted && starving && mech != "none" && mech != "shared-none") {
        boost_start = Clock::now();
        boosted = true;
        if (mech == "move") (void)tree.place(base, "rescue", std::vector<pid_t>{tid});
        if (mech == "flip") (void)cpu.applyCpuSettings(base + "/offload", {100, false});
        (void)setThreadSched(tid, {kSchedOther, 0});
      } else if (should_end) {
        boosted = false;
        (void)setThreadSched(tid, {kSchedIdle, 0});
        if (mech == "move") (void)tree.place(base, "offload", std::vector<pid_t>{tid});
        if (mech == "flip") (void)cpu.applyCpuSettings(base + "/offload", {100, true});
      }
    }
  });

  std::vector<double> lat;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> gap(5, 25);
  std::this_thread::sleep_for(milliseconds(100));  // hogs saturate first
  for (int i = 0; i < items; ++i) {
    std::this_thread::sleep_for(milliseconds(gap(rng)));
    const auto t0 = Clock::now();
    std::unique_lock lock(mu);
    pending = true;
    done = false;
    cv.notify_all();
    cv.wait(lock, [&] { return done; });
    lat.push_back(duration<double, std::milli>(Clock::now() - t0).count());
  }
  // Offload spinning while the hogs saturate: its share of the 2-CPU machine over 2 s.
  ProcFs proc = *ProcFs::openSystem();
  const uint64_t r0 = proc.thread(::getpid(), tid, true)->runtime_ns;
  spin = true;
  cv.notify_all();
  std::this_thread::sleep_for(seconds(2));
  const uint64_t r1 = proc.thread(::getpid(), tid, true)->runtime_ns;
  spin = false;
  stop = true;
  cv.notify_all();
  for (auto& h : hogs) h.join();
  offload.join();
  poller.join();
  return {percentile(lat, 0.5), percentile(lat, 0.99), static_cast<double>(r1 - r0) / 4e9};
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  const int items = argc > 2 ? std::atoi(argv[2]) : 100;
  if (::geteuid() != 0) return std::fprintf(stderr, "needs root\n"), 2;
  auto self = Dir::open("/proc/self");
  auto layout = detectLayout(*self->read("mountinfo"));
  auto tree = ClassTree::openSystem(*layout);
  if (!tree || tree->control().version() != CgroupVersion::kV1) return std::fprintf(stderr, "needs cgroup v1 cpu\n"), 2;
  const std::string top = "cpuclass-boostbench-" + std::to_string(::getpid()), base = top + "/w";
  (void)tree->ensureClass(base, "hogs", {10, false});
  (void)tree->ensureClass(base, "offload", {100, true});
  (void)tree->ensureClass(base, "rescue", {100, false});
  (void)tree->ensureClass(base, "poller", {10000, false});
  (void)tree->ensureClass(base, "waiter", {10, false});
  (void)tree->place(base, "waiter", std::vector<pid_t>{::gettid()});
  std::vector<std::string> mechs{"none", "sched", "move", "flip", "shared-none", "shared"};
  if (argc > 3) mechs = std::vector<std::string>(argv + 3, argv + argc);
  std::map<std::string, std::vector<Run>> runs;
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  for (int r = 0; r < reps; ++r) {
    std::shuffle(mechs.begin(), mechs.end(), rng);
    for (const auto& m : mechs) {
      const Run run = runOnce(*tree, base, m, items);
      runs[m].push_back(run);
      std::printf("rep %d %-11s item p50 %7.2f ms  p99 %7.2f ms  offload share %5.2f%%\n", r + 1, m.c_str(), run.p50_ms,
                  run.p99_ms, 100 * run.share);
      std::fflush(stdout);
    }
  }
  std::printf("| mechanism | item p50 (median of %d) | item p99 (median of %d) | offload share, hogs saturating |\n"
              "|---|---|---|---|\n", reps, reps);
  for (const auto& [m, rs] : runs) {
    std::vector<double> p50, p99, share;
    for (const auto& r : rs) p50.push_back(r.p50_ms), p99.push_back(r.p99_ms), share.push_back(r.share);
    std::printf("| %s | %.2f ms | %.2f ms | %.2f%% |\n", m.c_str(), percentile(p50, 0.5), percentile(p99, 0.5), 100 * percentile(share, 0.5));
  }
  (void)tree->control().moveThread("", ::gettid());
  if (tree->accounting()) (void)tree->accounting()->moveThread("", ::gettid());
  (void)tree->removeBase(base);
  (void)tree->control().removeGroup(top);
  if (tree->accounting()) (void)tree->accounting()->removeGroup(top);
  return 0;
}
