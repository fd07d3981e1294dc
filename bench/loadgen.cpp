// cpuclass-loadgen: a synthetic database-like worker for bench/compare.
//
// Threads, named like a real server's:
//   fg-req-N      foreground: open-loop requests (Poisson arrivals), each SERVICE of CPU; latency
//                 = scheduled arrival -> done, so wake-up delay and queueing behind it count.
//   bg-merge-N    background: merge-like CPU work in 100 us units (throughput counter). bg-merge-0
//                 also hands a 1 ms item to the offload helper every AWAIT ms and waits for it
//                 (the RavenDB pattern: inversion latency = submit -> the waiter runs again;
//                 also reported: submit -> the helper finished, without the waiter's own wake-up).
//   offload-bulk-N  offload: always has work (1 ms chunks), should only get idle CPU.
//   offload-help  offload: serves the awaited items, sleeps otherwise.
//   fg-conn-N     a short-lived foreground thread started every 250 ms by bg-accept: time until
//                 the kernel shows it in its class group (placement latency; --expect-group).
// Options (all optional): --seconds=S (measured, after 1 s warm-up) --fg=N --rate=R (requests/s
// per fg thread) --service-us=U --bg=N --offload=N --await-ms=A --spinners-per-cpu=K (bg and
// offload K per CPU each, instead of --bg/--offload) --fg-slice-us=U (fg threads ask the kernel
// for a U us EEVDF slice themselves, Linux 6.12+) --cgroup=DIR (creates DIR, marks it delegated
// with the user.delegate xattr and moves this process into it first: a worker cgroup on a pure
// v2 host without systemd) --fg-spread (fg-req-N pins itself to CPU N mod CPUs)
// --self=nice19|idle (bg and offload threads set it themselves, like ananicy / TuneD rules do
// from outside) --libcpuclass (threads tag themselves and waits are reported through
// libcpuclass) --expect-group (measure placement) --tag=T (for the policy's cmdline match).
// Prints one line of key=value results; idle_share is the machine's idle CPU time over the
// measured seconds (/proc/stat), which tells offload CPU that was really idle from leakage.
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "cgroups/sched.h"
#include "cpuclass.h"

using namespace std::chrono;
using cpuclass::bench::burnCpu;
using cpuclass::bench::percentile;

namespace {

struct Options {
  double seconds = 10;
  int fg = 2, bg = 4, offload = 2;  // 4 bg: the CPUs stay saturated while bg-merge-0 waits
  double rate = 150;  // per fg thread
  int service_us = 1000;
  int await_ms = 20;
  int fg_slice_us = 0;  // 0: the kernel's default slice
  bool fg_spread = false;  // fg-req-N pinned to CPU N mod CPUs
  std::string self;  // "", nice19, idle
  std::string cgroup;  // a delegated cgroup to run in (pure v2 without systemd)
  bool lib = false, expect_group = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    const std::string key = a.substr(0, eq), value = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (key == "--seconds") o.seconds = std::atof(value.c_str());
    else if (key == "--fg") o.fg = std::atoi(value.c_str());
    else if (key == "--bg") o.bg = std::atoi(value.c_str());
    else if (key == "--offload") o.offload = std::atoi(value.c_str());
    else if (key == "--rate") o.rate = std::atof(value.c_str());
    else if (key == "--service-us") o.service_us = std::atoi(value.c_str());
    else if (key == "--await-ms") o.await_ms = std::atoi(value.c_str());
    else if (key == "--spinners-per-cpu") o.bg = o.offload = std::atoi(value.c_str()) * static_cast<int>(std::thread::hardware_concurrency());
    else if (key == "--fg-slice-us") o.fg_slice_us = std::atoi(value.c_str());
    else if (key == "--cgroup") o.cgroup = value;
    else if (key == "--fg-spread") o.fg_spread = true;
    else if (key == "--self") o.self = value;
    else if (key == "--libcpuclass") o.lib = true;
    else if (key == "--expect-group") o.expect_group = true;
    else if (key == "--tag") continue;
    else {
      std::fprintf(stderr, "cpuclass-loadgen: unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
  if (!o.self.empty() && o.self != "nice19" && o.self != "idle") {
    std::fprintf(stderr, "cpuclass-loadgen: --self takes nice19 or idle\n");
    std::exit(2);
  }
  return o;
}

uint64_t threadRuntimeNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

class Loadgen {
 public:
  // Joins `dir` and executes itself again without --cgroup: the daemon matches a process at its
  // exec, and one found outside a delegated cgroup is left alone.
  static void joinDelegatedCgroup(const std::string& dir, int argc, char** argv) {
    const auto die = [&](const char* what) {
      std::fprintf(stderr, "cpuclass-loadgen: %s %s: %s\n", what, dir.c_str(), std::strerror(errno));
      std::exit(1);
    };
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) die("cannot create");
    if (::setxattr(dir.c_str(), "user.delegate", "1", 1, 0) != 0) die("cannot mark delegated");
    FILE* procs = std::fopen((dir + "/cgroup.procs").c_str(), "w");
    if (procs == nullptr || std::fprintf(procs, "%d\n", ::getpid()) < 0 || std::fclose(procs) != 0) die("cannot join");
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
      if (std::strncmp(argv[i], "--cgroup=", 9) != 0) args.push_back(argv[i]);
    }
    args.push_back(nullptr);
    ::execv("/proc/self/exe", args.data());
    die("cannot execute itself again in");
  }

  explicit Loadgen(Options o) : o_(std::move(o)) {}

  void run() {
    if (o_.lib && cpuclass_open(&client_) < 0) {
      std::fprintf(stderr, "cpuclass-loadgen: cannot reach cpuclassd over D-Bus\n");
      std::exit(1);
    }
    start_ = steady_clock::now();
    measure_from_ = start_ + seconds(1);
    end_ = measure_from_ + duration_cast<nanoseconds>(duration<double>(o_.seconds));
    if (o_.bg > 0) {  // the helper first: the waiter reports waits on its TID
      threads_.emplace_back([this] { offloadHelper(); });
      while (helper_tid_ == 0) std::this_thread::yield();
    }
    for (int i = 0; i < o_.fg; ++i) threads_.emplace_back([this, i] { foreground(i); });
    for (int i = 0; i < o_.bg; ++i) threads_.emplace_back([this, i] { background(i); });
    for (int i = 0; i < o_.offload; ++i) threads_.emplace_back([this, i] { offloadBulk(i); });
    if (o_.expect_group) threads_.emplace_back([this] { spawnConnections(); });
    std::this_thread::sleep_until(measure_from_);
    const auto idle_at_start = idleJiffies();
    std::this_thread::sleep_until(end_);
    const auto idle_at_end = idleJiffies();
    idle_share_ = static_cast<double>(idle_at_end.first - idle_at_start.first) /
                  static_cast<double>(std::max<uint64_t>(1, idle_at_end.second - idle_at_start.second));
    for (auto& t : threads_) t.join();
    report();
    cpuclass_close(client_);
  }

 private:
  // Every thread names itself; bg and offload apply the --self emulation; with --libcpuclass
  // every thread tags itself.
  void become(const std::string& name, const char* cls, bool lowered) {
    pthread_setname_np(pthread_self(), name.c_str());
    if (lowered && o_.self == "nice19") ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);
    if (lowered && o_.self == "idle") {
      sched_param p{};
      ::sched_setscheduler(0, SCHED_IDLE, &p);
    }
    if (o_.lib) (void)cpuclass_set_thread_class(client_, 0, cls);
  }

  // (idle + iowait, all) jiffies of the whole machine from /proc/stat's first line.
  static std::pair<uint64_t, uint64_t> idleJiffies() {
    const std::string stat = cpuclass::bench::slurp("/proc/stat");
    std::istringstream in(stat.substr(0, stat.find('\n')));
    std::string cpu;
    in >> cpu;
    uint64_t idle = 0, all = 0, v = 0;
    for (int i = 0; in >> v; ++i) {
      if (i == 3 || i == 4) idle += v;  // idle, iowait
      if (i < 8) all += v;              // guest time is already in user
    }
    return {idle, all};
  }

  bool measuring(steady_clock::time_point t) const { return t >= measure_from_ && t < end_; }

  void foreground(int i) {
    become("fg-req-" + std::to_string(i), "foreground", false);
    if (o_.fg_slice_us > 0) (void)cpuclass::cgroups::setThreadSlice(0, microseconds(o_.fg_slice_us));
    if (o_.fg_spread) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(static_cast<unsigned>(i) % std::thread::hardware_concurrency(), &one);
      (void)::sched_setaffinity(0, sizeof one, &one);
    }
    std::mt19937_64 rng(static_cast<uint64_t>(i) * 7919 + 1);
    std::exponential_distribution<double> gap(o_.rate);
    std::vector<double> lat;
    lat.reserve(static_cast<size_t>(o_.rate * (o_.seconds + 2) * 1.5));
    auto next = steady_clock::now();
    while (true) {
      next += duration_cast<nanoseconds>(duration<double>(gap(rng)));
      if (next >= end_) break;
      std::this_thread::sleep_until(next);
      burnCpu(microseconds(o_.service_us));
      if (measuring(next)) lat.push_back(duration<double, std::milli>(steady_clock::now() - next).count());
    }
    std::lock_guard lock(mu_);
    fg_latency_.insert(fg_latency_.end(), lat.begin(), lat.end());
  }

  void background(int i) {
    become("bg-merge-" + std::to_string(i), "background", true);
    uint64_t units = 0, cpu_at_start = 0;
    bool counting = false;
    auto next_item = steady_clock::now() + milliseconds(o_.await_ms);
    std::vector<double> inv, inv_done;
    for (auto now = steady_clock::now(); now < end_; now = steady_clock::now()) {
      if (!counting && now >= measure_from_) counting = true, cpu_at_start = threadRuntimeNs(), units = 0;
      burnCpu(microseconds(100));
      ++units;
      if (i == 0 && now >= next_item) {
        const auto [ms, done_ms] = awaitItem();
        if (measuring(now)) inv.push_back(ms), inv_done.push_back(done_ms);
        next_item = steady_clock::now() + milliseconds(o_.await_ms);
      }
    }
    std::lock_guard lock(mu_);
    bg_cpu_ns_ += threadRuntimeNs() - cpu_at_start;
    bg_units_ += units;
    inversion_.insert(inversion_.end(), inv.begin(), inv.end());
    item_finished_.insert(item_finished_.end(), inv_done.begin(), inv_done.end());
  }

  // Submit -> the waiter runs again, and submit -> the helper finished the item.
  std::pair<double, double> awaitItem() {
    const auto t0 = steady_clock::now();
    std::unique_lock lock(item_mu_);
    item_pending_ = true;
    item_done_ = false;
    item_cv_.notify_all();
    if (o_.lib) {
      lock.unlock();
      (void)cpuclass_report_wait(client_, 0, helper_tid_.load());
      lock.lock();
    }
    item_cv_.wait(lock, [&] { return item_done_ || stopping_; });
    const double ms = duration<double, std::milli>(steady_clock::now() - t0).count();
    const double done_ms = item_done_ ? duration<double, std::milli>(item_done_at_ - t0).count() : ms;
    if (o_.lib) {
      lock.unlock();
      (void)cpuclass_end_wait(client_, 0, helper_tid_.load());
    }
    return {ms, done_ms};
  }

  void offloadHelper() {
    helper_tid_ = ::gettid();
    become("offload-help", "offload", true);
    uint64_t cpu_at_start = 0;
    bool counting = false;
    std::unique_lock lock(item_mu_);
    while (steady_clock::now() < end_) {
      item_cv_.wait_for(lock, milliseconds(50), [&] { return item_pending_; });
      if (!counting && steady_clock::now() >= measure_from_) counting = true, cpu_at_start = threadRuntimeNs();
      if (!item_pending_) continue;
      lock.unlock();
      burnCpu(milliseconds(1));
      lock.lock();
      item_pending_ = false;
      item_done_ = true;
      item_done_at_ = steady_clock::now();
      item_cv_.notify_all();
    }
    stopping_ = true;  // a waiter still waiting when the run ends is let go
    item_cv_.notify_all();
    lock.unlock();
    std::lock_guard g(mu_);
    offload_cpu_ns_ += counting ? threadRuntimeNs() - cpu_at_start : 0;
  }

  void offloadBulk(int i) {
    become("offload-bulk-" + std::to_string(i), "offload", true);
    uint64_t cpu_at_start = 0;
    bool counting = false;
    for (auto now = steady_clock::now(); now < end_; now = steady_clock::now()) {
      if (!counting && now >= measure_from_) counting = true, cpu_at_start = threadRuntimeNs();
      burnCpu(milliseconds(1));
    }
    std::lock_guard lock(mu_);
    offload_bulk_cpu_ns_ += counting ? threadRuntimeNs() - cpu_at_start : 0;
  }

  // A connection thread per 250 ms: how long until it is in the foreground group?
  void spawnConnections() {
    // A background thread accepts, so connection threads are born outside foreground and the
    // daemon has to move them.
    become("bg-accept", "background", false);
    for (int n = 0; steady_clock::now() + milliseconds(300) < end_; ++n) {
      std::this_thread::sleep_for(milliseconds(250));
      std::thread([this, n] {
        const auto born = steady_clock::now();
        become("fg-conn-" + std::to_string(n), "foreground", false);
        const std::string path = "/proc/thread-self/cgroup";
        while (cpuclass::bench::slurp(path).find("/foreground") == std::string::npos) {
          if (steady_clock::now() - born > seconds(1)) return;  // not placed: counted below
          std::this_thread::sleep_for(microseconds(100));
        }
        const double ms = duration<double, std::milli>(steady_clock::now() - born).count();
        std::lock_guard lock(mu_);
        placement_.push_back(ms);
      }).join();
      ++connections_;
    }
  }

  void report() {
    const double machine_ns = o_.seconds * 1e9 * static_cast<double>(std::thread::hardware_concurrency());
    std::printf("fg_p50_ms=%.3f fg_p99_ms=%.3f fg_p999_ms=%.3f fg_p9999_ms=%.3f fg_requests=%zu bg_share=%.4f bg_units=%llu "
                "idle_share=%.4f offload_share=%.4f offload_bulk_share=%.4f inv_p50_ms=%.3f inv_p99_ms=%.3f inv_done_p99_ms=%.3f inv_items=%zu placement_p50_ms=%.3f "
                "placement_max_ms=%.3f placed=%zu/%d\n",
                percentile(fg_latency_, 0.5), percentile(fg_latency_, 0.99), percentile(fg_latency_, 0.999),
                percentile(fg_latency_, 0.9999), fg_latency_.size(), static_cast<double>(bg_cpu_ns_) / machine_ns,
                static_cast<unsigned long long>(bg_units_), idle_share_, static_cast<double>(offload_cpu_ns_ + offload_bulk_cpu_ns_) / machine_ns,
                static_cast<double>(offload_bulk_cpu_ns_) / machine_ns,
                percentile(inversion_, 0.5), percentile(inversion_, 0.99), percentile(item_finished_, 0.99), inversion_.size(),
                percentile(placement_, 0.5), placement_.empty() ? 0.0 : *std::max_element(placement_.begin(), placement_.end()),
                placement_.size(), connections_);
  }

  const Options o_;
  cpuclass_client* client_ = nullptr;
  steady_clock::time_point start_, measure_from_, end_;
  std::vector<std::thread> threads_;

  std::mutex item_mu_;
  std::condition_variable item_cv_;
  bool item_pending_ = false, item_done_ = false, stopping_ = false;
  steady_clock::time_point item_done_at_;  // when the helper finished the last item
  std::atomic<pid_t> helper_tid_{0};

  std::mutex mu_;  // guards the results below
  std::vector<double> fg_latency_, inversion_, item_finished_, placement_;
  uint64_t bg_cpu_ns_ = 0, bg_units_ = 0;
  uint64_t offload_cpu_ns_ = 0, offload_bulk_cpu_ns_ = 0;  // the helper's (awaited items), the bulk threads'
  int connections_ = 0;
  double idle_share_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.cgroup.empty()) Loadgen::joinDelegatedCgroup(o.cgroup, argc, argv);
  Loadgen(o).run();
  return 0;
}
