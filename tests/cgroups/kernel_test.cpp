// The kernel layer against the real kernel, as root (tier `kernel`). Every test works in its own
// uniquely named groups and removes them, also when it fails.
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>

#include "cgroups/class_tree.h"
#include "cgroups/features.h"
#include "cgroups/proc_fs.h"
#include "cgroups/sched.h"
#include "cgroups/thread_probe.h"
#include "tests/support/child_process.h"
#include "tests/support/test_support.h"

namespace cpuclass::cgroups {
namespace {

using testing::ParkedThreads;
using testing::procCgroupOf;
using testing::procNice;
using testing::procPolicy;
using testing::readFile;

class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto why = testing::kernelTierUnavailable(); !why.empty()) GTEST_SKIP() << why;
    auto layout = detectLayout(readFile("/proc/self/mountinfo"));
    ASSERT_TRUE(layout) << layout.error().message;
    layout_ = *layout;
    auto tree = ClassTree::openSystem(layout_);
    ASSERT_TRUE(tree) << tree.error().message;
    tree_.emplace(std::move(*tree));
    base_ = testing::uniqueGroupName() + "/worker";
  }

  void TearDown() override {
    if (!tree_) return;
    // Threads still inside (a failed test) go back to the root so the groups can be removed.
    for (const Hierarchy* h : {&tree_->control(), tree_->accounting()}) {
      if (h == nullptr || !h->exists(base_)) continue;
      for (const auto& cls : h->children(base_).value_or(std::vector<std::string>{})) {
        for (const pid_t tid : h->threads(base_ + "/" + cls).value_or(std::vector<pid_t>{})) {
          (void)h->moveThread("", tid);
        }
      }
    }
    EXPECT_TRUE(tree_->removeBase(base_));
    const std::string top = base_.substr(0, base_.find('/'));
    for (const Hierarchy* h : {&tree_->control(), tree_->accounting()}) {
      if (h == nullptr) continue;
      EXPECT_TRUE(h->removeGroup(top));
      EXPECT_FALSE(h->exists(top));
    }
  }

  std::string controlPath(const std::string& cls) const { return "/" + base_ + "/" + cls; }
  // Where the accounting mirror shows the thread: the cgroup2 line or the cpuacct line.
  std::string accountingController() const {
    return tree_->accounting()->version() == CgroupVersion::kV2 ? "" : "cpuacct";
  }

  CgroupLayout layout_;
  std::optional<ClassTree> tree_;
  std::string base_;
};

TEST_F(KernelTest, ThreadsLandInTheirClassGroupsWithPolicyAndNice) {
  ParkedThreads threads(3, "ktest");
  const auto& t = threads.tids();
  ASSERT_TRUE(tree_->ensureClass(base_, "fg", {1000, false}));
  ASSERT_TRUE(tree_->ensureClass(base_, "bg", {100, false}));
  ASSERT_TRUE(tree_->ensureClass(base_, "offload", {100, true}));
  for (const auto& [cls, tid] : {std::pair{"fg", t[0]}, {"bg", t[1]}, {"offload", t[2]}}) {
    const auto placed = tree_->place(base_, cls, std::vector<pid_t>{tid});
    ASSERT_TRUE(placed) << placed.error().message;
    ASSERT_EQ(placed->items.at(0).result, Outcome::kDone);
    EXPECT_EQ(placed->accounting_failures, 0u);
    EXPECT_EQ(procCgroupOf(tid, layout_.cpu.version == 2 ? "" : "cpu"), controlPath(cls));
    if (tree_->accounting()) {
      EXPECT_EQ(procCgroupOf(tid, accountingController()), controlPath(cls));
    }
  }
  EXPECT_EQ(setThreadSched(t[1], {kSchedBatch, 10}), Outcome::kDone);
  EXPECT_EQ(setThreadSched(t[2], {kSchedIdle, 0}), Outcome::kDone);
  EXPECT_EQ(procPolicy(t[1]), kSchedBatch);
  EXPECT_EQ(procNice(t[1]), 10);
  EXPECT_EQ(procPolicy(t[2]), kSchedIdle);
  EXPECT_EQ(procPolicy(t[0]), kSchedOther);
  EXPECT_EQ(*readThreadSched(t[2]), (ThreadSched{kSchedIdle, 0}));

  const auto fg = tree_->control().readCpuSettings(base_ + "/fg");
  EXPECT_EQ(*fg, (CpuSettings{1000, false}));
  const auto offload = tree_->control().readCpuSettings(base_ + "/offload");
  EXPECT_TRUE(offload->idle);
  if (layout_.cpu.version == 1) {
    EXPECT_EQ(readFile(layout_.cpu.mount_point + "/" + base_ + "/fg/cpu.shares"), "10240\n");
    // KERNEL_NOTES: with cpu.idle=1 the kernel reports shares as 3.
    EXPECT_EQ(readFile(layout_.cpu.mount_point + "/" + base_ + "/offload/cpu.shares"), "3\n");
  }
  EXPECT_EQ(setThreadSched(t[1], {kSchedOther, 0}), Outcome::kDone);
  EXPECT_EQ(setThreadSched(t[2], {kSchedOther, 0}), Outcome::kDone);
}

TEST_F(KernelTest, NiceIsSetAlsoWhenTheTargetPolicyIsIdle) {
  // sched_setattr ignores sched_nice for SCHED_IDLE; a batch nice 5 thread must still end at 0.
  ParkedThreads threads(1, "nice");
  const pid_t tid = threads.tids()[0];
  ASSERT_EQ(setThreadSched(tid, {kSchedBatch, 5}), Outcome::kDone);
  ASSERT_EQ(setThreadSched(tid, {kSchedIdle, 0}), Outcome::kDone);
  EXPECT_EQ(procPolicy(tid), kSchedIdle);
  EXPECT_EQ(procNice(tid), 0);
  ASSERT_EQ(setThreadSched(tid, {kSchedIdle, 7}), Outcome::kDone);
  EXPECT_EQ(procNice(tid), 7);
  ASSERT_EQ(setThreadSched(tid, {kSchedOther, 0}), Outcome::kDone);
  EXPECT_EQ(procPolicy(tid), kSchedOther);
  EXPECT_EQ(procNice(tid), 0);
}

TEST_F(KernelTest, ASliceKeepsPolicyAndNice) {
  ParkedThreads threads(2, "slice");
  const pid_t tid = threads.tids()[0];
  ASSERT_EQ(setThreadSched(tid, {kSchedBatch, 5}), Outcome::kDone);
  const auto taken = setThreadSlice(tid, std::chrono::microseconds(200));
  ASSERT_TRUE(taken) << taken.error().message;
  if (!*taken) GTEST_SKIP() << "this kernel has no custom slices (Linux 6.12+)";
  EXPECT_EQ(*readThreadSlice(tid), std::chrono::microseconds(200));
  EXPECT_EQ(*readThreadSched(tid), (ThreadSched{kSchedBatch, 5}));
  EXPECT_NE(*readThreadSlice(threads.tids()[1]), std::chrono::microseconds(200));  // per thread
  sched_param param{};
  param.sched_priority = 1;
  ASSERT_EQ(::sched_setscheduler(tid, SCHED_FIFO, &param), 0) << "cannot make a SCHED_FIFO thread";
  EXPECT_EQ(setThreadSlice(tid, std::chrono::microseconds(300)), false);
  EXPECT_EQ(procPolicy(tid), kSchedFifo);
}

// A policy change (a placement, a boost, its end) keeps what the thread's owner set: a custom
// slice and reset-on-fork. A thread without a custom slice keeps the default one.
TEST_F(KernelTest, APolicyChangeKeepsTheOwnersSliceAndResetOnFork) {
  ParkedThreads threads(2, "owned");
  const pid_t custom = threads.tids()[0], plain = threads.tids()[1];
  const auto taken = setThreadSlice(custom, std::chrono::milliseconds(2));
  ASSERT_TRUE(taken) << taken.error().message;
  if (!*taken) GTEST_SKIP() << "this kernel has no custom slices (Linux 6.12+)";
  const auto default_slice = readThreadSlice(plain);
  ASSERT_TRUE(default_slice);
  ASSERT_NE(*default_slice, std::chrono::milliseconds(2)) << "the default slice is the test's custom one";
  sched_param param{};
  ASSERT_EQ(::sched_setscheduler(plain, SCHED_OTHER | SCHED_RESET_ON_FORK, &param), 0);
  for (const int policy : {kSchedIdle, kSchedOther, kSchedBatch}) {
    ASSERT_EQ(setThreadSched(custom, {policy, 0}), Outcome::kDone);
    ASSERT_EQ(setThreadSched(plain, {policy, 0}), Outcome::kDone);
    EXPECT_EQ(*readThreadSlice(custom), std::chrono::milliseconds(2)) << schedPolicyName(policy);
    EXPECT_EQ(*readThreadSlice(plain), *default_slice) << schedPolicyName(policy);
    EXPECT_EQ(::sched_getscheduler(plain), policy | SCHED_RESET_ON_FORK) << schedPolicyName(policy);
    EXPECT_EQ(::sched_getscheduler(custom), policy) << schedPolicyName(policy);
  }
}

TEST_F(KernelTest, ClearingIdleKeepsTheConfiguredWeight) {
  ASSERT_TRUE(tree_->ensureClass(base_, "c", {200, true}));
  const std::string group = base_ + "/c";
  // The raw kernel quirk (v1): clearing cpu.idle resets shares to 1024.
  if (layout_.cpu.version == 1) {
    ASSERT_TRUE(tree_->control().root().write(group + "/cpu.idle", "0"));
    EXPECT_EQ(readFile(layout_.cpu.mount_point + "/" + group + "/cpu.shares"), "1024\n");
    ASSERT_TRUE(tree_->control().root().write(group + "/cpu.idle", "1"));
  }
  ASSERT_TRUE(tree_->ensureClass(base_, "c", {200, false}));
  EXPECT_EQ(*tree_->control().readCpuSettings(group), (CpuSettings{200, false}));
}

TEST_F(KernelTest, RealtimeThreadIsRefusedAndLeftAlone) {
  ParkedThreads threads(1, "rt");
  const pid_t tid = threads.tids()[0];
  sched_param param{};
  param.sched_priority = 1;
  ASSERT_EQ(::sched_setscheduler(tid, SCHED_FIFO, &param), 0) << "cannot make a SCHED_FIFO thread";
  ASSERT_TRUE(tree_->ensureClass(base_, "bg", {100, false}));
  const auto placed = tree_->place(base_, "bg", std::vector<pid_t>{tid});
  ASSERT_TRUE(placed);
  EXPECT_EQ(placed->items.at(0).result, Outcome::kRealTime);
  EXPECT_EQ(setThreadSched(tid, {kSchedIdle, 0}), Outcome::kRealTime);
  EXPECT_EQ(procPolicy(tid), kSchedFifo);
  EXPECT_EQ(procCgroupOf(tid, layout_.cpu.version == 2 ? "" : "cpu"), "/");
}

// A realtime class (policy `realtime`): its group gets a real-time budget where the kernel has
// RT group scheduling (v1 cpu.rt_runtime_us; without it RR would be refused with EPERM), its
// thread runs SCHED_RR, and only a change the daemon calls its own may take it back. The budget
// goes back with the group: a new group gets one again at once.
TEST_F(KernelTest, ARealtimeClassGetsABudgetAndItsThreadRunsRoundRobin) {
  ParkedThreads threads(1, "rtclass");
  const pid_t tid = threads.tids()[0];
  const std::string budget = layout_.cpu.mount_point + "/" + base_ + "/fg/cpu.rt_runtime_us";
  const bool budgets = layout_.cpu.version == 1 && ::access((layout_.cpu.mount_point + "/cpu.rt_runtime_us").c_str(), F_OK) == 0;
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(tree_->ensureClass(base_, "fg", {1000, false, true}));
    if (budgets) {
      EXPECT_NE(readFile(budget), "0\n");
    }
    const auto placed = tree_->place(base_, "fg", std::vector<pid_t>{tid});
    ASSERT_TRUE(placed) << placed.error().message;
    ASSERT_EQ(placed->items.at(0).result, Outcome::kDone);
    const auto rr = setThreadSched(tid, {kSchedRr, 0, 3});
    ASSERT_TRUE(rr) << rr.error().message;
    EXPECT_EQ(*rr, Outcome::kDone);
    EXPECT_EQ(*readThreadSched(tid), (ThreadSched{kSchedRr, 0, 3}));
    // What it starts, a thread or a process (a server's forked worker), begins fair.
    EXPECT_EQ(::sched_getscheduler(tid), SCHED_RR | SCHED_RESET_ON_FORK);
    EXPECT_EQ(setThreadSched(tid, {kSchedOther, 0}), Outcome::kRealTime);  // not ours: left alone
    EXPECT_EQ(procPolicy(tid), kSchedRr);
    EXPECT_EQ(setThreadSched(tid, {kSchedOther, 0}, true), Outcome::kDone);
    EXPECT_EQ(*readThreadSched(tid), (ThreadSched{kSchedOther, 0, 0}));
    EXPECT_EQ(::sched_getscheduler(tid), SCHED_OTHER);  // the flag went with the real-time policy
    ASSERT_TRUE(tree_->control().moveThread("", tid));
    if (tree_->accounting()) {
      ASSERT_TRUE(tree_->accounting()->moveThread("", tid));
    }
    ASSERT_TRUE(tree_->removeBase(base_));
  }
  EXPECT_FALSE(setThreadSched(tid, {kSchedRr, 0, 0}));  // a priority is 1..99
  EXPECT_FALSE(setThreadSched(tid, {kSchedFifo, 0, 1}));  // RR is the one the daemon sets
}

TEST_F(KernelTest, ThreadThatExitedIsReportedGoneInsideABatch) {
  ParkedThreads threads(3, "gone");
  const auto tids = threads.tids();
  threads.finish(1);  // exits before the batch reaches it
  ASSERT_TRUE(tree_->ensureClass(base_, "bg", {100, false}));
  const auto placed = tree_->place(base_, "bg", tids);
  ASSERT_TRUE(placed);
  EXPECT_EQ(placed->items[0].result, Outcome::kDone);
  EXPECT_EQ(placed->items[1].result, Outcome::kGone);
  EXPECT_EQ(placed->items[2].result, Outcome::kDone);
  EXPECT_EQ(setThreadSched(tids[1], {kSchedIdle, 0}), Outcome::kGone);
  ProcFs proc = *ProcFs::openSystem();
  const auto facts = proc.thread(::getpid(), tids[1]);
  ASSERT_FALSE(facts);
  EXPECT_TRUE(isGone(facts.error()));
}

// The starvation probe re-reads files it keeps open: it follows the thread's changes, and says
// gone once the thread exits (a TID is not re-resolved behind its back).
TEST(ThreadProbeKernel, FollowsItsThreadAndReportsItGone) {
  ParkedThreads threads(1, "probed");
  const pid_t tid = threads.tids()[0];
  const ProcFs proc = *ProcFs::openSystem();
  auto probe = ThreadProbe::open(proc, ::getpid(), tid);
  ASSERT_TRUE(probe) << probe.error().message;
  // It parks on a condition variable right after it starts.
  EXPECT_TRUE(testing::waitUntil([&] { return probe->state() == 'S'; }, std::chrono::seconds(2)));
  ASSERT_EQ(setThreadSched(tid, {kSchedBatch, 7}), Outcome::kDone);
  const auto st = probe->stat();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->policy, kSchedBatch);
  EXPECT_EQ(st->nice, 7);
  const auto opened = proc.stat(::getpid(), tid);  // the same file, opened afresh
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(st->comm, opened->comm);
  EXPECT_EQ(st->start_time, opened->start_time);
  EXPECT_TRUE(probe->runtimeNs());
  threads.finish(0);
  for (const auto& error : {probe->state().error(), probe->stat().error(), probe->runtimeNs().error()}) {
    EXPECT_TRUE(isGone(error)) << error.message;
  }
}

TEST_F(KernelTest, RestoreReturnsThreadsWhereTheyWere) {
  ParkedThreads threads(2, "restore");
  ProcFs proc = *ProcFs::openSystem();
  const auto before = proc.thread(::getpid(), threads.tids()[0]);
  ASSERT_TRUE(before);
  ASSERT_TRUE(tree_->ensureClass(base_, "offload", {100, true}));
  ASSERT_TRUE(tree_->place(base_, "offload", threads.tids()));
  EXPECT_EQ(tree_->restore(threads.tids()[0], before->cgroups), Outcome::kDone);
  const auto after = proc.thread(::getpid(), threads.tids()[0]);
  ASSERT_TRUE(after);
  for (const char* controller : {"cpu", "cpuacct", ""}) {
    EXPECT_EQ(cgroupPathOf(after->cgroups, controller), cgroupPathOf(before->cgroups, controller)) << controller;
  }
}

TEST_F(KernelTest, UsageOfAClassMatchesTheThreadsOwnCpuTime) {
  ASSERT_TRUE(tree_->ensureClass(base_, "bg", {100, false}));
  std::chrono::nanoseconds burned{};
  std::thread burner([&] {
    const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
    ASSERT_TRUE(tree_->place(base_, "bg", std::vector<pid_t>{tid}));
    timespec start{}, now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
    do {
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 100'000'000L);
    burned = std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
  });
  burner.join();  // exited threads still count in the group's usage
  const auto usage = tree_->usage(base_, "bg");
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_GE(usage->count(), burned.count() * 95 / 100);
  EXPECT_LE(usage->count(), burned.count() * 105 / 100 + 2'000'000);
}

TEST_F(KernelTest, FeaturesProbeMatchesTheFiles) {
  const auto f = probeFeatures(layout_, *tree_);
  EXPECT_EQ(f.cpu_idle, ::access((layout_.cpu.mount_point + "/cpu.idle").c_str(), F_OK) == 0 ||
                            layout_.cpu.version == 2);
  EXPECT_TRUE(f.pidfd);
  EXPECT_TRUE(f.proc_connector);  // root may always bind it
  EXPECT_EQ(f.psi, ::access("/proc/pressure/cpu", R_OK) == 0);
  EXPECT_EQ(f.accounting_mirror, tree_->accounting() != nullptr);
}

// The v2 code path on the real kernel: threaded children of the cgroup2 root.
class UnifiedThreadedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto why = testing::unifiedThreadedUnavailable(); !why.empty()) GTEST_SKIP() << why;
    auto dir = Dir::open(testing::unifiedMountPoint());
    ASSERT_TRUE(dir);
    h_.emplace(std::move(*dir), CgroupVersion::kV2);
    group_ = testing::uniqueGroupName();
  }
  void TearDown() override {
    if (!h_) return;
    for (const auto* g : {"/child", ""}) {
      for (const pid_t tid : h_->threads(group_ + g).value_or(std::vector<pid_t>{})) (void)h_->moveThread("", tid);
    }
    EXPECT_TRUE(h_->removeGroup(group_ + "/child"));
    EXPECT_TRUE(h_->removeGroup(group_));
    EXPECT_FALSE(h_->exists(group_));
  }
  std::optional<Hierarchy> h_;
  std::string group_;
};

TEST_F(UnifiedThreadedTest, DomainRefusesThreadsThreadedTakesExactlyOne) {
  ParkedThreads threads(2, "v2");
  const pid_t tid = threads.tids()[0];
  ASSERT_EQ(h_->makeGroup(group_ + "/child"), true);
  const auto refused = h_->moveThread(group_, tid);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, EOPNOTSUPP);  // domain group: cgroup.threads write refused
  EXPECT_EQ(testing::readFile(testing::unifiedMountPoint() + "/" + group_ + "/child/cgroup.type"),
            "domain\n");
  ASSERT_TRUE(h_->makeThreaded(group_));
  EXPECT_EQ(testing::readFile(testing::unifiedMountPoint() + "/" + group_ + "/child/cgroup.type"),
            "domain invalid\n");
  ASSERT_TRUE(h_->makeThreaded(group_ + "/child"));
  ASSERT_TRUE(h_->makeThreaded(group_ + "/child"));  // idempotent
  EXPECT_EQ(h_->moveThread(group_ + "/child", tid), Outcome::kDone);
  EXPECT_EQ(procCgroupOf(tid, ""), "/" + group_ + "/child");
  EXPECT_EQ(procCgroupOf(threads.tids()[1], ""), "/");  // exactly that thread, not the process
  EXPECT_EQ(*h_->threads(group_ + "/child"), std::vector<pid_t>{tid});
}

}  // namespace
}  // namespace cpuclass::cgroups
