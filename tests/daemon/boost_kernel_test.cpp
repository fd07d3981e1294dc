// Starvation boosting on the real kernel (tier `kernel`): the real daemon detects a starving
// offload thread and boosts it within budget; the wait-report core boosts a holder at once.
#include "tests/daemon/daemon_fixture.h"

#include "cgroups/sched.h"

#include <cstdio>
#include <iomanip>
#include <sstream>

namespace cpuclass {
namespace {

class BoostTest : public DaemonTest {
 protected:
  bool inBoost(pid_t tid) const {
    const auto p = where(tid);
    return p.group == "/" + prefix_ + "/tw/_boost" && p.policy == cgroups::kSchedOther;
  }
  // A spinning offload thread is boosted once for the window, then not again until it sleeps
  // (bulk work). With the default 50 ms, a test that samples /proc from a loaded machine can
  // miss the one boost it waits for; 300 ms leaves it seen. Detection is unchanged.
  void writeObservableBoostPolicy() {
    writePolicy("bg-.*", "", "background: {sched: batch, nice: 5}, offload: {boost: {window: 300ms}}");
  }
  std::vector<pid_t> spinHogs(int n) {
    std::vector<pid_t> hogs;
    for (int i = 0; i < n; ++i) {
      hogs.push_back(spawn("bg-hog-" + std::to_string(i)));
      EXPECT_EQ(worker_->ask("spin " + std::to_string(hogs.back())), "ok");
    }
    return hogs;
  }
};

TEST_F(BoostTest, StarvingOffloadThreadIsBoostedAndRevertedWhenDone) {
  writeObservableBoostPolicy();
  spinHogs(4);  // 4 SCHED_OTHER hogs on 2 CPUs
  const pid_t off = spawn("off-1");
  startDaemon();
  ASSERT_TRUE(placedAs(off, "offload"));
  EXPECT_EQ(worker_->ask("spin " + std::to_string(off)), "ok");  // runnable, in an idle group: starves
  EXPECT_TRUE(waitUntil([&] { return inBoost(off); }, 5s)) << where(off).group << daemonLog();
  const int port = metricsPort();
  std::string text;
  EXPECT_TRUE(waitUntil([&] {
    text = testing::httpGet(port, "/metrics");
    return text.find("cpuclass_class_boosts_total{class=\"offload\",worker=\"tw\"} 0") == std::string::npos &&
           text.find("cpuclass_class_starvation_events_total{class=\"offload\",worker=\"tw\"} 0") == std::string::npos;
  }, 5s)) << text;
  // Parked again: the boost ends and the thread is back in its class.
  EXPECT_EQ(worker_->ask("park " + std::to_string(off)), "ok");
  EXPECT_TRUE(waitUntil([&] { return placedAs(off, "offload"); }, 5s)) << where(off).group;
  EXPECT_EQ(problems(), "");
}

// A large pool (over 16 threads) is not looked at whole every poll: its PSI gates the idle
// sweep, and sweep rounds that find no runnable thread slow it to 4 threads a poll. Here a bulk
// thread of the pool spins all along (as in bench/poll_cost_bench), so the gate stays open and
// the sweep slows; a parked thread of it that starts to starve must still be found.
TEST_F(BoostTest, AThreadOfALargeQuietPoolThatStartsToStarveIsFound) {
  writeObservableBoostPolicy();
  spinHogs(4);
  ASSERT_EQ(worker_->ask("burst 60 off"), "burst 60");
  const pid_t bulk = spawn("off-bulk");
  const pid_t off = spawn("off-late");
  startDaemon();
  ASSERT_TRUE(placedAs(off, "offload"));
  EXPECT_EQ(worker_->ask("spin " + std::to_string(bulk)), "ok");
  // Rounds of ~60 looks at 16, then 8 a poll: the slowest pace after ~120 ms.
  std::this_thread::sleep_for(1s);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(worker_->ask("spin " + std::to_string(off)), "ok");
  EXPECT_TRUE(waitUntil([&] { return inBoost(off); }, 5s)) << where(off).group;
  // 62 threads at 4 a poll: ~16 polls; allow for the PSI gate and a loaded machine.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_EQ(worker_->ask("park " + std::to_string(off)), "ok");
  EXPECT_EQ(worker_->ask("park " + std::to_string(bulk)), "ok");
  EXPECT_EQ(problems(), "");
}

// A small pool whose group's PSI stayed flat for 10 polls is not looked at (docs/boosting.md,
// "Round 10"); the first of its threads to starve after that quiet spell must still be found,
// by the total it makes grow.
TEST_F(BoostTest, AThreadOfAQuietSmallPoolThatStartsToStarveIsFound) {
  writeObservableBoostPolicy();
  spinHogs(4);
  const pid_t off = spawn("off-late");
  spawn("off-parked-1");
  spawn("off-parked-2");
  startDaemon();
  ASSERT_TRUE(placedAs(off, "offload"));
  std::this_thread::sleep_for(1s);  // parked threads wait for no CPU: the group goes quiet
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(worker_->ask("spin " + std::to_string(off)), "ok");
  EXPECT_TRUE(waitUntil([&] { return inBoost(off); }, 5s)) << where(off).group;
  const auto found = std::chrono::steady_clock::now() - started;
  std::cout << "boosted after " << std::chrono::duration<double, std::milli>(found).count() << " ms\n";
  EXPECT_LT(found, 1s);  // a poll or two later than a look at every poll; allow a loaded machine
  EXPECT_EQ(worker_->ask("park " + std::to_string(off)), "ok");
  EXPECT_EQ(problems(), "");
}

TEST_F(BoostTest, ABoostNeverOutlivesItsWindow) {
  writeObservableBoostPolicy();
  spinHogs(4);
  const pid_t off = spawn("off-1");
  startDaemon();
  EXPECT_EQ(worker_->ask("spin " + std::to_string(off)), "ok");
  ASSERT_TRUE(waitUntil([&] { return inBoost(off); }, 5s));
  // Still runnable, so only the 300 ms window (plus a poll) can end it; it must end.
  EXPECT_TRUE(waitUntil([&] { return !inBoost(off); }, 1s));
  EXPECT_EQ(worker_->ask("park " + std::to_string(off)), "ok");
}

// The wait-report core, driven in-process (synchronous: no bus, no poll in between).
TEST_F(BoostTest, WaitReportBoostsTheHolderAtOnceWithinBudget) {
  const pid_t waiter = spawn("bg-waiter"), holder = spawn("off-holder"), other = spawn("off-other");
  auto m = inProcessManager([](policy::Policy& p) {
    ASSERT_EQ(p.classes[2].name, "offload");
    p.classes[2].boost->max_per_worker = 1;
  });
  auto& manager = *m;
  ASSERT_TRUE(placedAs(holder, "offload"));
  const auto now = daemon::Nanos(std::chrono::steady_clock::now().time_since_epoch());
  EXPECT_EQ(manager.reportWait(waiter, holder, now), daemon::BoostVerdict::kStarted);
  EXPECT_TRUE(inBoost(holder));  // synchronously: no poll in between
  EXPECT_EQ(where(holder).nice, -10);  // a reported wait boosts at wait_nice
  EXPECT_EQ(manager.reportWait(waiter, other, now), daemon::BoostVerdict::kWorkerBudget);
  EXPECT_EQ(manager.reportWait(waiter, waiter, now).error().code, EINVAL);  // background has no boost
  EXPECT_EQ(manager.reportWait(waiter, 999999, now).error().code, ESRCH);
  ASSERT_TRUE(manager.endWait(waiter, holder, now));
  EXPECT_TRUE(placedAs(holder, "offload"));
  EXPECT_EQ(manager.endWait(waiter, holder, now).error().code, ENOENT);
  manager.stop();
  EXPECT_EQ(where(holder).group, "/");
}

// A boost of offload (a group of its own) is a cgroup move, which waits for an RCU grace period
// unless the kernel's migration lock was taken shortly before; `fast_moves` keeps it so at every
// poll. Timed against the same steps without it, so that a host that keeps moves fast by itself
// cannot make this pass, and against a floor (the steps right after another move, so the lock is
// warm without `fast_moves`), so that a busy machine's slowness is not taken for the wait.
TEST_F(BoostTest, FastMovesMakeAReportedWaitsBoostQuick) {
  const pid_t waiter = spawn("bg-waiter"), holder = spawn("off-holder");
  const auto medianBoostTime = [&](bool fast_moves, std::chrono::milliseconds cool) {
    auto m = inProcessManager([&](policy::Policy& p) { p.daemon.fast_moves = fast_moves; });
    std::vector<double> ms;
    for (int i = 0; i < 5; ++i) {
      for (auto slept = 0ms; slept < cool; slept += 10ms) {  // 60 ms lets the lock cool without it
        std::this_thread::sleep_for(10ms);
        m->pollStarvation(daemon::Nanos(std::chrono::steady_clock::now().time_since_epoch()));
      }
      const auto t0 = std::chrono::steady_clock::now();
      EXPECT_EQ(m->reportWait(waiter, holder, daemon::Nanos(t0.time_since_epoch())), daemon::BoostVerdict::kStarted);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      EXPECT_TRUE(inBoost(holder));
      EXPECT_TRUE(m->endWait(waiter, holder, daemon::Nanos(std::chrono::steady_clock::now().time_since_epoch())));
    }
    m->stop();
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  const double warm = medianBoostTime(false, 0ms);  // endWait's move has just warmed the lock
  const double slow = medianBoostTime(false, 60ms);
  std::cout << "median reportWait: " << slow << " ms without fast_moves, " << warm << " ms right after a move\n";
  if (slow < 2 || slow < 8 * warm) {
    // Below 8x the floor a broken fast_moves (about the cooled time) and a working one (measured at
    // 1.3 to 3.3x the floor: its last poll's move is up to 10 ms old) cannot be told apart.
    GTEST_SKIP() << std::fixed << std::setprecision(2) << "cannot tell: a cooled move (" << slow << " ms) is " << slow / warm
                 << "x one right after another (" << warm << " ms); judging needs >= 2 ms and >= 8x: "
                 << "the host keeps moves fast by itself, or is too busy to time them";
  }
  const double fast = medianBoostTime(true, 60ms);
  EXPECT_LT(fast, slow / 2) << "median boost " << fast << " ms with fast_moves, " << slow << " ms without";
  std::cout << "median reportWait with fast_moves: " << fast << " ms\n";
}

// While background threads wait for CPU, the offload group is capped (squeezed), so its CPU goes
// idle and the balancer moves a waiting thread there; once nothing busy waits, the cap goes.
TEST_F(BoostTest, OffloadGroupIsSqueezedWhileBackgroundWaits) {
  const auto hogs = spinHogs(4);  // 4 background hogs on 2 CPUs: background always has a waiter
  const pid_t off = spawn("off-1");
  startDaemon();
  ASSERT_TRUE(placedAs(off, "offload"));
  if (!layout_.unified || !fs::exists(fs::path(layout_.unified->mount_point) / prefix_ / "tw" / "background" / "cpu.pressure")) {
    GTEST_SKIP() << "no PSI for the class groups (cgroup2 mirror with cpu.pressure): the daemon does not squeeze";
  }
  const fs::path quota = fs::path(layout_.cpu.mount_point) / prefix_ / "tw" / "offload" / "cpu.cfs_quota_us";
  EXPECT_TRUE(waitUntil([&] { return testing::readFile(quota) == "1000\n"; }, 5s)) << testing::readFile(quota);
  for (const pid_t hog : hogs) EXPECT_EQ(worker_->ask("park " + std::to_string(hog)), "ok");
  EXPECT_TRUE(waitUntil([&] { return testing::readFile(quota) == "-1\n"; }, 5s)) << testing::readFile(quota);
  stopDaemon();
  EXPECT_EQ(problems(), "");
}

// A CPU nobody busy wants is offload's: one background hog on 2 CPUs leaves the offload group
// uncapped, and the offload thread gets most of the CPU that nobody else used. On a busy machine
// (a build, a spinner beside the suite) there may be no such CPU: measured, and the share is
// then not judged (said so); nor is "not capped" when others made the background hog wait.
TEST_F(BoostTest, OffloadGroupIsNotSqueezedOnAHalfIdleMachine) {
  const auto hogs = spinHogs(1);
  const pid_t off = spawn("off-1");
  startDaemon();
  ASSERT_TRUE(placedAs(off, "offload"));
  EXPECT_EQ(worker_->ask("spin " + std::to_string(off)), "ok");
  const fs::path quota = fs::path(layout_.cpu.mount_point) / prefix_ / "tw" / "offload" / "cpu.cfs_quota_us";
  // A thread's schedstat: seconds run, seconds waited on a run queue.
  const auto schedstat = [&](pid_t tid) {
    std::istringstream in(testing::readFile("/proc/" + std::to_string(worker_->pid()) + "/task/" + std::to_string(tid) + "/schedstat"));
    double ran = 0, waited = 0;
    in >> ran >> waited;
    return std::pair{ran / 1e9, waited / 1e9};
  };
  const auto runtime = [&] { return schedstat(off).first; };
  const auto hogWaited = [&] { return schedstat(hogs.front()).second; };
  // The machine's idle CPU time so far, in seconds (/proc/stat: idle and iowait, in ticks).
  const auto idleSeconds = [] {
    std::istringstream cpu(testing::readFile("/proc/stat"));
    std::string label;
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0;
    cpu >> label >> user >> nice >> system >> idle >> iowait;
    return (idle + iowait) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  };
  std::this_thread::sleep_for(300ms);  // past its one boost
  const double off_before = runtime(), idle_before = idleSeconds(), hog_waited_before = hogWaited();
  const auto started = std::chrono::steady_clock::now();
  bool capped = false;
  while (std::chrono::steady_clock::now() - started < 1500ms) {
    capped |= testing::readFile(quota) != "-1\n";
    std::this_thread::sleep_for(20ms);
  }
  const double off_got = runtime() - off_before, left_idle = idleSeconds() - idle_before;
  const double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // Squeezing is right when background waits for CPU: on a busy machine others make the hog wait,
  // and then "not capped" is not this test's to judge (said so).
  const double hog_waited = hogWaited() - hog_waited_before;
  if (hog_waited < 0.05 * window) {
    EXPECT_FALSE(capped) << "the background hog waited only " << hog_waited / window << " of the window";
  } else {
    std::printf("[ NOTE     ] \"not capped\" is not judged: others made the background hog wait %.2f of the window\n",
                hog_waited / window);
  }
  // What nobody but offload wanted: what it got plus what stayed idle. Squeezed, offload would
  // get ~1% of it and the rest would stay idle.
  const double spare = off_got + left_idle;
  if (spare < 0.3 * window) {
    std::printf("[ NOTE     ] the share is not judged: others left only %.2f of a CPU spare\n", spare / window);
  } else {
    EXPECT_GT(off_got / spare, 0.5) << "the offload thread got " << off_got / window << " of a CPU, "
                                    << spare / window << " of a CPU was spare";
  }
  for (const pid_t tid : {hogs[0], off}) EXPECT_EQ(worker_->ask("park " + std::to_string(tid)), "ok");
  stopDaemon();
  EXPECT_EQ(problems(), "");
}

// offload `run_in: background`: the thread runs SCHED_IDLE in background's control group, is
// accounted in its own mirror group, and a wait report boosts it by scheduling alone.
TEST_F(BoostTest, ClassRunningInAnotherGroupIsBoostedInPlace) {
  writePolicy("bg-.*", "", "background: {sched: batch, nice: 5}, offload: {run_in: background}");
  const pid_t waiter = spawn("bg-waiter"), holder = spawn("off-holder");
  startDaemon();
  const auto inBackgroundGroup = [&](int policy) {
    const auto p = where(holder);
    return p.group == group("background") && p.policy == policy;
  };
  ASSERT_TRUE(waitUntil([&] { return inBackgroundGroup(cgroups::kSchedIdle); }, 5s)) << where(holder).group;
  const auto f = proc_->thread(worker_->pid(), holder);
  ASSERT_TRUE(f);
  if (layout_.unified) {  // the accounting mirror keeps the class apart
    EXPECT_EQ(cgroups::cgroupPathOf(f->cgroups, ""), group("offload"));
  }
  EXPECT_FALSE(fs::exists(fs::path(layout_.cpu.mount_point) / prefix_ / "tw" / "offload")) << "no control group of its own";

  stopDaemon();  // the in-process Manager below takes over the same groups
  auto m = inProcessManager();
  auto& manager = *m;
  ASSERT_TRUE(inBackgroundGroup(cgroups::kSchedIdle));
  const auto now = daemon::Nanos(std::chrono::steady_clock::now().time_since_epoch());
  EXPECT_EQ(manager.reportWait(waiter, holder, now), daemon::BoostVerdict::kStarted);
  EXPECT_TRUE(inBackgroundGroup(cgroups::kSchedOther)) << "boosted in place: " << where(holder).group;
  EXPECT_EQ(where(holder).nice, -10);
  ASSERT_TRUE(manager.endWait(waiter, holder, now));
  EXPECT_TRUE(inBackgroundGroup(cgroups::kSchedIdle));
  manager.stop();
  EXPECT_EQ(where(holder).group, "/");
}

}  // namespace
}  // namespace cpuclass
