// cpuclass-move-bench: the kernel floor for placing threads. Measures, in one run, an isolated
// thread move (one write to tasks / cgroup.threads with nothing else moving nearby) against the
// per-thread cost of a 1,000-thread batch through one open file. Needs root; creates and removes
// its own groups (cpuclass-bench-<pid>).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bench/parked_threads.h"
#include "cgroups/class_tree.h"

using namespace cpuclass;
using namespace cpuclass::cgroups;
using Clock = std::chrono::steady_clock;

namespace {

double medianOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double usSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

int run(const ClassTree& tree, const std::string& base, int reps, size_t batch) {
  for (const char* cls : {"a", "b"}) {
    if (auto r = tree.ensureClass(base, cls, {100, false}); !r) {
      std::fprintf(stderr, "cpuclass-move-bench: %s\n", r.error().message.c_str());
      return 1;
    }
  }
  bench::ThreadPark one(1);
  std::vector<double> isolated;
  for (int i = 0; i < reps; ++i) {
    // 50 ms of quiet: longer than an RCU grace period, so every move is an isolated one.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto t0 = Clock::now();
    auto r = tree.control().moveThread(base + (i % 2 ? "/a" : "/b"), one.tids()[0]);
    isolated.push_back(usSince(t0));
    if (!r || *r != Outcome::kDone) return std::fprintf(stderr, "isolated move failed\n"), 1;
  }
  bench::ThreadPark many(batch);
  std::vector<double> per_thread;
  for (int i = 0; i < reps; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto t0 = Clock::now();
    auto items = tree.control().moveThreads(base + (i % 2 ? "/a" : "/b"), many.tids());
    per_thread.push_back(usSince(t0) / static_cast<double>(batch));
    if (!items) return std::fprintf(stderr, "batch move failed: %s\n", items.error().message.c_str()), 1;
  }
  std::printf("| measurement (control hierarchy, %d runs) | median | min | max |\n|---|---|---|---|\n", reps);
  std::printf("| isolated move, wall time of the write | %.0f us | %.0f us | %.0f us |\n", medianOf(isolated),
              *std::min_element(isolated.begin(), isolated.end()),
              *std::max_element(isolated.begin(), isolated.end()));
  std::printf("| %zu-thread batch, per thread | %.1f us | %.1f us | %.1f us |\n", batch, medianOf(per_thread),
              *std::min_element(per_thread.begin(), per_thread.end()),
              *std::max_element(per_thread.begin(), per_thread.end()));
  std::printf("ratio isolated / batched per thread: %.0fx\n", medianOf(isolated) / medianOf(per_thread));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 9;
  const size_t batch = argc > 2 ? static_cast<size_t>(std::atoi(argv[2])) : 1000;
  if (::geteuid() != 0) return std::fprintf(stderr, "cpuclass-move-bench: needs root\n"), 2;
  auto mountinfo = Dir::open("/proc/self");
  auto layout = detectLayout(*mountinfo->read("mountinfo"));
  if (!layout) return std::fprintf(stderr, "cpuclass-move-bench: %s\n", layout.error().message.c_str()), 1;
  auto tree = ClassTree::openSystem(*layout);
  if (!tree) return std::fprintf(stderr, "cpuclass-move-bench: %s\n", tree.error().message.c_str()), 1;
  if (tree->control().version() == CgroupVersion::kV2) {
    return std::fprintf(stderr, "cpuclass-move-bench: on pure cgroup v2 run it inside a delegated unit\n"), 2;
  }
  const std::string top = "cpuclass-bench-" + std::to_string(::getpid());
  const std::string base = top + "/w";
  const int rc = run(*tree, base, reps, batch);
  // Threads have exited (ThreadPark joined them), so the groups are empty and removable.
  if (auto r = tree->removeBase(base); !r) std::fprintf(stderr, "cleanup: %s\n", r.error().message.c_str());
  (void)tree->control().removeGroup(top);
  if (tree->accounting()) (void)tree->accounting()->removeGroup(top);
  return rc;
}
