// cpuclassd end to end on the real kernel (tier `kernel`): the real daemon binary, the real test
// worker, real cgroups; what a user would check in /proc.
#include "tests/daemon/daemon_fixture.h"

#include "cgroups/proc_events.h"
#include "cgroups/sched.h"

namespace cpuclass {
namespace {

TEST_F(DaemonTest, ExistingThreadsArePlacedBeforeReady) {
  const pid_t fg = spawn("fg-1"), bg = spawn("bg-1"), off = spawn("off-1");
  startDaemon();
  // READY=1 comes after the first scan and placement: at that moment everything is in place.
  EXPECT_TRUE(placedAs(fg, "foreground"));
  EXPECT_TRUE(placedAs(bg, "background"));
  EXPECT_TRUE(placedAs(off, "offload"));
  EXPECT_TRUE(placedAs(worker_->pid(), "foreground"));  // the main thread: the worker's default
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(ready_after_).count();
  RecordProperty("start_to_ready_ms", static_cast<int>(ms));
  std::printf("daemon start to READY=1 with all threads placed: %lld ms\n", static_cast<long long>(ms));
  EXPECT_LT(ms, 2000) << "far slower than the 50 ms the dev build takes";
  EXPECT_EQ(problems(), "");
}

TEST_F(DaemonTest, BurstOf1000ThreadsAllPlaced) {
  startDaemon();
  EXPECT_EQ(worker_->ask("burst 1000 off"), "burst 1000");
  std::vector<pid_t> misplaced;
  const bool all = waitUntil([&] {
    misplaced.clear();
    for (const pid_t tid : workerThreads()) {
      if (tid != worker_->pid() && !placedAs(tid, "offload")) misplaced.push_back(tid);
    }
    return misplaced.empty();
  }, 20s);
  EXPECT_TRUE(all) << misplaced.size() << " threads not placed";
  EXPECT_EQ(workerThreads().size(), 1001u);
  EXPECT_EQ(problems(), "");
}

TEST_F(DaemonTest, RenamedThreadIsReclassified) {
  startDaemon();
  const pid_t tid = spawn("bg-merge");
  ASSERT_TRUE(waitUntil([&] { return placedAs(tid, "background"); }, 5s));
  EXPECT_EQ(worker_->ask("rename " + std::to_string(tid) + " off-helper"), "ok");
  EXPECT_TRUE(waitUntil([&] { return placedAs(tid, "offload"); }, 5s)) << where(tid).group;
  EXPECT_EQ(worker_->ask("rename " + std::to_string(tid) + " query-7"), "ok");
  EXPECT_TRUE(waitUntil([&] { return placedAs(tid, "foreground"); }, 5s)) << where(tid).group;
}

TEST_F(DaemonTest, ThreadsExitingMidOperationCauseNothingButCounters) {
  startDaemon();
  EXPECT_EQ(worker_->ask("churn 500 bg-short"), "churned 500");
  const pid_t tid = spawn("bg-last");
  ASSERT_TRUE(waitUntil([&] { return placedAs(tid, "background"); }, 5s));
  EXPECT_EQ(worker_->ask("exit " + std::to_string(tid)), "ok");
  daemon_->signal(SIGUSR1);
  ASSERT_TRUE(waitUntil([&] { return daemonLog().find("placement latency") != std::string::npos; }, 5s));
  EXPECT_TRUE(daemon_->running());
  EXPECT_EQ(problems(), "");
  EXPECT_NE(daemonLog().find("0 failures"), std::string::npos) << daemonLog();
}

TEST_F(DaemonTest, ReloadMovesThreadsAndABrokenPolicyKeepsTheOld) {
  const pid_t merge = spawn("bg-merge"), compact = spawn("compact-1");
  startDaemon();
  ASSERT_TRUE(placedAs(merge, "background"));
  ASSERT_TRUE(placedAs(compact, "foreground"));
  writePolicy("compact-.*", "");
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(notify_->waitFor("RELOADING=1", 5s));
  EXPECT_TRUE(notify_->waitFor("READY=1", 5s));
  EXPECT_TRUE(waitUntil([&] { return placedAs(compact, "background") && placedAs(merge, "foreground"); }, 5s))
      << daemonLog();

  writePolicy("compact-.*", "    default_class: nonexistent\n");
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(notify_->waitFor("READY=1", 5s));
  EXPECT_TRUE(waitUntil([&] { return daemonLog().find("previous policy stays in force") != std::string::npos; }, 5s));
  EXPECT_NE(daemonLog().find("policy.yaml:9:20: class 'nonexistent' is not defined"), std::string::npos) << daemonLog();
  EXPECT_TRUE(daemon_->running());
  EXPECT_TRUE(placedAs(compact, "background"));
  const pid_t later = spawn("compact-2");  // the old policy still classifies new threads
  EXPECT_TRUE(waitUntil([&] { return placedAs(later, "background"); }, 5s));
}

TEST_F(DaemonTest, RestartAfterKillAdoptsAndTermRestoresEverything) {
  const pid_t fg = spawn("fg-1"), bg = spawn("bg-1"), off = spawn("off-1");
  const auto before = where(bg);
  startDaemon();
  ASSERT_TRUE(placedAs(bg, "background"));
  daemon_->signal(SIGKILL);
  daemon_->wait(5s);
  daemon_.reset();
  const pid_t born_meanwhile = spawn("bg-2");  // inherits the creator's (main thread's) group
  startDaemon();
  for (const auto& [tid, cls] : std::map<pid_t, std::string>{{fg, "foreground"}, {bg, "background"}, {off, "offload"},
                                                             {born_meanwhile, "background"}}) {
    EXPECT_TRUE(placedAs(tid, cls)) << tid << " " << where(tid).group;
  }
  // Adopted, not duplicated: exactly one worker directory with one group per class in use.
  const fs::path top = fs::path(layout_.cpu.mount_point) / prefix_;
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(top)) {
    if (e.is_directory()) found.push_back(fs::relative(e.path(), top).string());
  }
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<std::string>{"tw", "tw/background", "tw/foreground", "tw/offload"}));

  daemon_->signal(SIGTERM);
  EXPECT_TRUE(notify_->waitFor("STOPPING=1", 5s));
  stopDaemon();  // on_stop: restore
  for (const pid_t tid : {fg, bg, off, born_meanwhile, worker_->pid()}) {
    const auto p = where(tid);
    EXPECT_EQ(p.group, before.group) << tid;
    EXPECT_EQ(p.policy, before.policy) << tid;
    EXPECT_EQ(p.nice, before.nice) << tid;
  }
  EXPECT_FALSE(fs::exists(top));
  if (layout_.unified) {
    EXPECT_FALSE(fs::exists(fs::path(layout_.unified->mount_point) / prefix_));
  }
  EXPECT_FALSE(fs::exists(dir_.path() / "state" / "state"));
}

// A realtime class: its threads run SCHED_RR at the class's priority in its group; one that
// keeps a CPU busy is held back on fair scheduling by the guard and is real-time again once it
// sleeps; a restart takes back the RR the earlier run set; a reload into a fair class and the stop
// put it back (fair first, then the move: on cgroup v1 RT group scheduling a real-time thread may
// not enter a group without a real-time budget).
TEST_F(DaemonTest, ARealtimeClassRunsRoundRobinAndItsGuardHoldsABusyThreadBack) {
  writePolicy("bg-.*", "", "background: {sched: batch, nice: 5}, foreground: {realtime: 7, realtime_limit: 20}");
  // The worker starts in a group of ours without a real-time budget, as in a service's cgroup.
  const fs::path origin = fs::path(layout_.cpu.mount_point) / (prefix_ + "-origin");
  ASSERT_TRUE(fs::create_directory(origin));
  std::ofstream(origin / "cgroup.procs") << worker_->pid() << std::endl;
  struct Cleanup {
    fs::path origin, root;
    ~Cleanup() {
      std::ifstream tasks(origin / "tasks");
      for (pid_t tid = 0; tasks >> tid;) std::ofstream(root / "tasks") << tid << std::endl;
      ::rmdir(origin.c_str());
    }
  } cleanup{origin, layout_.cpu.mount_point};
  const pid_t req = spawn("req-1");
  const auto before = where(req);
  ASSERT_EQ(before.group, "/" + prefix_ + "-origin");
  const auto rr = [&](pid_t tid) {
    const auto f = proc_->thread(worker_->pid(), tid);
    return f && f->policy == cgroups::kSchedRr && f->rt_priority == 7 &&
           cgroups::cgroupPathOf(f->cgroups, "cpu") == group("foreground");
  };
  const auto fair = [&](pid_t tid) {
    const auto p = where(tid);
    return p.policy == cgroups::kSchedOther && p.group == group("foreground");
  };
  startDaemon();
  ASSERT_TRUE(rr(req)) << daemonLog();

  worker_->ask("spin " + std::to_string(req));  // one CPU of two: 50%, over the limit of 20%
  EXPECT_TRUE(waitUntil([&] { return fair(req); }, 2s)) << daemonLog();
  worker_->ask("park " + std::to_string(req));
  EXPECT_TRUE(waitUntil([&] { return rr(req); }, 2s)) << daemonLog();
  EXPECT_NE(daemonLog().find("over its realtime_limit"), std::string::npos) << daemonLog();

  // Killed, and started again with a fair foreground: the RR it set is its own to take back.
  daemon_->signal(SIGKILL);
  daemon_->wait(5s);
  daemon_.reset();
  writePolicy("bg-.*", "");
  startDaemon();
  EXPECT_TRUE(fair(req)) << daemonLog();
  const std::string realtime = "background: {sched: batch, nice: 5}, foreground: {realtime: 7, realtime_limit: 20}";
  writePolicy("bg-.*", "", realtime);
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(waitUntil([&] { return rr(req); }, 5s)) << daemonLog();
  writePolicy("req-.*", "", realtime);
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(waitUntil([&] { return placedAs(req, "background"); }, 5s)) << daemonLog();
  writePolicy("bg-.*", "", realtime);
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(waitUntil([&] { return rr(req); }, 5s)) << daemonLog();

  stopDaemon();  // on_stop: restore
  const auto after = where(req);
  EXPECT_EQ(after.group, before.group);
  EXPECT_EQ(after.policy, before.policy);
  EXPECT_EQ(after.nice, before.nice);
  EXPECT_EQ(problems(), "");
}

// on_stop: keep leaves threads in their classes, but nothing the daemon guards outlives it: a
// realtime class runs fair from then on.
TEST_F(DaemonTest, KeepOnStopLeavesARealtimeClassFair) {
  writePolicy("bg-.*", "", "foreground: {realtime: 4}");
  const pid_t req = spawn("req-1");
  auto m = inProcessManager([](policy::Policy& p) { p.daemon.on_stop = policy::OnStop::kKeep; });
  const auto f = proc_->thread(worker_->pid(), req);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->policy, cgroups::kSchedRr);
  m->stop();
  EXPECT_EQ(where(req).policy, cgroups::kSchedOther);
  EXPECT_EQ(where(req).group, group("foreground"));
}

TEST_F(DaemonTest, DriftIsCorrectedAtTheNextRescan) {
  const pid_t off = spawn("off-1");
  startDaemon();
  ASSERT_TRUE(placedAs(off, "offload"));
  // Someone else moves the thread out and makes it SCHED_OTHER again.
  std::ofstream(layout_.cpu.mount_point + "/tasks") << off << std::endl;
  ASSERT_EQ(cgroups::setThreadSched(off, {cgroups::kSchedOther, 0}), cgroups::Outcome::kDone);
  ASSERT_EQ(where(off).group, "/");
  EXPECT_TRUE(waitUntil([&] { return placedAs(off, "offload"); }, 3s)) << where(off).group;  // rescan: 500 ms
  const int port = metricsPort();
  EXPECT_TRUE(waitUntil([&] {
    return testing::httpGet(port, "/metrics").find("cpuclass_drift_corrections_total 1") != std::string::npos;
  }, 3s));
  EXPECT_NE(daemonLog().find("was moved out of"), std::string::npos);
}

// Scheduling alone drifted (the thread stayed in its group): only a full rescan reads it, every
// 5th periodic one (2.5 s at the test's 500 ms rescan_interval).
// Rescans are the net behind the proc connector. A periodic one lists a process's threads only
// when its thread count (from stat) differs from the threads the daemon knows; a thread the
// events missed changes the count and must be found. In-process, the Manager gets no events.
TEST_F(DaemonTest, AThreadTheEventsMissedIsFoundByTheNextRescan) {
  const pid_t early = spawn("bg-early");
  auto m = inProcessManager();
  ASSERT_TRUE(placedAs(early, "background")) << where(early).group;
  const pid_t late = spawn("bg-late");
  EXPECT_FALSE(placedAs(late, "background")) << "placed without a rescan?";
  m->rescan(false);
  EXPECT_TRUE(placedAs(late, "background")) << where(late).group;
  EXPECT_EQ(m->managedThreads(), static_cast<size_t>(std::count_if(
      fs::directory_iterator("/proc/" + std::to_string(worker_->pid()) + "/task"), fs::directory_iterator{},
      [](const auto&) { return true; })));
}

TEST_F(DaemonTest, SchedulingDriftIsCorrectedAtAFullRescan) {
  const pid_t off = spawn("off-1");
  startDaemon();
  ASSERT_TRUE(placedAs(off, "offload"));
  ASSERT_EQ(cgroups::setThreadSched(off, {cgroups::kSchedOther, 0}), cgroups::Outcome::kDone);
  ASSERT_EQ(where(off).policy, cgroups::kSchedOther);
  EXPECT_TRUE(waitUntil([&] { return placedAs(off, "offload"); }, 6s)) << where(off).policy;
  // Counted and logged right after the change the line above saw.
  const int port = metricsPort();
  EXPECT_TRUE(waitUntil([&] {
    return testing::httpGet(port, "/metrics").find("cpuclass_drift_corrections_total 1") != std::string::npos;
  }, 3s));
  EXPECT_TRUE(waitUntil([&] { return daemonLog().find("was re-prioritised by someone else") != std::string::npos; }, 3s))
      << daemonLog();
}

// A worker's child processes are classified as a whole by process rules: one that exists when
// the daemon starts (found after its parent), and one born later (a fork event).
TEST_F(DaemonTest, ChildProcessesFollowProcessRules) {
  writePolicy("bg-.*", "    processes: [{comm: sleep, class: background}]\n");
  const auto child = [&] {
    const std::string reply = worker_->ask("child");  // "pid PID"
    return static_cast<pid_t>(std::stoi(reply.substr(reply.find(' ') + 1)));
  };
  const auto placed = [&](pid_t pid) {
    const auto f = proc_->thread(pid, pid);
    return f && cgroups::cgroupPathOf(f->cgroups, "cpu") == group("background") && f->policy == cgroups::kSchedBatch &&
           f->nice == 5;
  };
  const pid_t before = child();
  startDaemon();
  EXPECT_TRUE(waitUntil([&] { return placed(before); }, 3s)) << daemonLog();
  const pid_t after = child();
  EXPECT_TRUE(waitUntil([&] { return placed(after); }, 3s)) << daemonLog();
  EXPECT_NE(daemonLog().find("a child process of pid " + std::to_string(worker_->pid()) + " (worker tw)"),
            std::string::npos)
      << daemonLog();
}

// A server forks after the daemon placed it (PostgreSQL's backends): the child is born in its
// parent's class group, and on stop goes back to where its parent came from, so that no group
// is left behind.
TEST_F(DaemonTest, AChildForkedInsideItsWorkersGroupsIsRestoredWithIt) {
  writePolicy("bg-.*", "    processes: [{comm: sleep, class: background}]\n");
  const std::string origin = where(worker_->pid()).group;
  startDaemon();
  ASSERT_TRUE(placedAs(worker_->pid(), "foreground"));
  const std::string reply = worker_->ask("child");  // forked inside tw/foreground
  const auto child = static_cast<pid_t>(std::stoi(reply.substr(reply.find(' ') + 1)));
  const auto group_of_child = [&] {
    const auto f = proc_->thread(child, child);
    return f ? cgroups::cgroupPathOf(f->cgroups, "cpu").value_or("?") : "<gone>";
  };
  ASSERT_TRUE(waitUntil([&] { return group_of_child() == group("background"); }, 3s)) << group_of_child();
  stopDaemon();
  EXPECT_EQ(group_of_child(), origin);
  EXPECT_EQ(where(worker_->pid()).group, origin);
  EXPECT_FALSE(fs::exists(fs::path(layout_.cpu.mount_point) / prefix_ / "tw")) << "a group was left behind";
  EXPECT_EQ(problems(), "");
}

// Real servers change what a worker rule matches after they start, with no event for some of it.
// Each case must be managed within one rescan interval (500 ms here; 1 s more for a busy machine).
class DiscoveryTest : public DaemonTest {
 protected:
  static constexpr auto kWithinARescan = 1500ms;

  // A second test worker that the policy's `tw` does not match, once the daemon has looked at
  // it: it reads the proc connector's EXEC event within milliseconds, which nothing outside can
  // await, and a change before that would be matched "after exec" instead of by the path tested.
  std::unique_ptr<ChildProcess> startOther(const std::string& tag, std::vector<std::string> argv = {}) {
    if (argv.empty()) argv = {CPUCLASS_TEST_WORKER, "--tag=" + tag};
    auto other = std::make_unique<ChildProcess>(argv, std::vector<std::string>{}, true, (dir_.path() / (tag + ".log")).string());
    EXPECT_TRUE(waitUntil([&] { return groupOf(other->pid(), other->pid()) != "<gone>"; }, 2s));
    std::this_thread::sleep_for(300ms);
    return other;
  }
  std::string groupOf(pid_t pid, pid_t tid) const {
    const auto f = proc_->thread(pid, tid);
    return f ? cgroups::cgroupPathOf(f->cgroups, "cpu").value_or("?") : "<gone>";
  }
  // Waits until the process's main thread is in `group`; returns how long that took.
  std::optional<std::chrono::milliseconds> timeUntilIn(pid_t pid, const std::string& group) const {
    const auto t0 = std::chrono::steady_clock::now();
    if (!waitUntil([&] { return groupOf(pid, pid) == group; }, 5s)) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  }
};

TEST_F(DiscoveryTest, AProcessThatRenamesItselfAfterExecIsManaged) {
  const std::string name = "rn" + std::to_string(::getpid() % 100000);
  writePolicy("bg-.*", "  - name: renamed\n    match: {comm: '" + name + "'}\n");
  startDaemon();
  auto other = startOther(prefix_ + "-rn");
  EXPECT_EQ(groupOf(other->pid(), other->pid()).find("/" + prefix_), std::string::npos) << "matched before its rename";
  EXPECT_EQ(other->ask("name " + name), "ok");
  const auto took = timeUntilIn(other->pid(), "/" + prefix_ + "/renamed/foreground");
  ASSERT_TRUE(took) << daemonLog();
  EXPECT_LT(*took, kWithinARescan);
  EXPECT_NE(daemonLog().find("after it renamed itself to '" + name + "'"), std::string::npos) << daemonLog();
}

TEST_F(DiscoveryTest, AProcessThatRewritesItsTitleIsManagedAtTheNextRescan) {
  const std::string title = "dbtitle-" + prefix_;
  writePolicy("bg-.*", "  - name: titled\n    match: {cmdline: '" + title + ": main.*'}\n");
  startDaemon();
  auto other = startOther(prefix_ + "-title");
  EXPECT_EQ(other->ask("title " + title + ": main process"), "ok");
  const auto took = timeUntilIn(other->pid(), "/" + prefix_ + "/titled/foreground");
  ASSERT_TRUE(took) << daemonLog();
  EXPECT_LT(*took, kWithinARescan);
  EXPECT_NE(daemonLog().find("after its command line became '" + title + ": main process'"), std::string::npos)
      << daemonLog();
}

TEST_F(DiscoveryTest, AChildProcessWhoseTitleChangesIsReclassified) {
  writePolicy("bg-.*", "    processes: [{cmdline: 'autovac worker.*', class: background}]\n");
  startDaemon();
  const std::string reply = worker_->ask("titled-child autovac worker db1");  // "pid PID"
  const auto child = static_cast<pid_t>(std::stoi(reply.substr(reply.find(' ') + 1)));
  // Before its title changes it is a plain child of the worker: the worker's default class.
  EXPECT_TRUE(waitUntil([&] { return groupOf(child, child) == group("foreground"); }, 2s)) << groupOf(child, child);
  const auto took = timeUntilIn(child, group("background"));
  ASSERT_TRUE(took) << daemonLog();
  EXPECT_LT(*took, 300ms + kWithinARescan);
  // Its scheduling is set right after the move: wait for it rather than read once.
  std::optional<cgroups::ThreadFacts> f;
  EXPECT_TRUE(waitUntil([&] {
    auto read = proc_->thread(child, child);
    if (read) f = *read;
    return f && f->policy == cgroups::kSchedBatch && f->nice == 5;
  }, 2s)) << (f ? std::to_string(f->policy) + " nice " + std::to_string(f->nice) : "gone") << daemonLog();
}

TEST_F(DiscoveryTest, AProcessMovedIntoAMatchingCgroupIsManagedAtTheNextRescan) {
  if (!layout_.unified) GTEST_SKIP() << "needs the unified hierarchy (cgroup2) to move a process in";
  // Our own cgroup, like a unit or container the process is moved into after it started; beside
  // the daemon's groups (its accounting tree makes <prefix>/ threaded), removed also on failure.
  const fs::path unit = fs::path(layout_.unified->mount_point) / (prefix_ + "-unit");
  ASSERT_TRUE(fs::create_directories(unit));
  const std::shared_ptr<void> remove_unit(nullptr, [&](void*) {
    if (!waitUntil([&] { return ::rmdir(unit.c_str()) == 0 || errno == ENOENT; }, 3s)) ADD_FAILURE() << "cannot remove " << unit;
  });
  writePolicy("bg-.*", "  - name: moved\n    match: {cgroup: '/" + prefix_ + "-unit'}\n");
  startDaemon();
  auto other = startOther(prefix_ + "-moved");
  std::ofstream(unit / "cgroup.procs") << other->pid() << std::endl;
  ASSERT_EQ(groupOf(other->pid(), other->pid()).find("/" + prefix_), std::string::npos) << "matched before the move";
  const auto took = timeUntilIn(other->pid(), "/" + prefix_ + "/moved/foreground");
  ASSERT_TRUE(took) << daemonLog();
  EXPECT_LT(*took, kWithinARescan);
  EXPECT_NE(daemonLog().find("after it moved to cgroup /" + prefix_ + "-unit"), std::string::npos) << daemonLog();
  stopDaemon();
  other.reset();
}

TEST_F(DiscoveryTest, AProgramStartedThroughShIsTheWorkerNotTheShell) {
  const std::string tag = prefix_ + "-sh";
  writePolicy("bg-.*", "  - name: wrapped\n    match: {cmdline: '.*--tag=" + tag + "( .*)?'}\n");
  startDaemon();
  // No exec: sh forks the program and waits, with the program's command line in its own.
  auto sh = startOther(tag, {"/bin/sh", "-c", std::string(CPUCLASS_TEST_WORKER) + " --tag=" + tag + " --x; true"});
  pid_t program = 0;
  ASSERT_TRUE(waitUntil([&] {
    std::ifstream in("/proc/" + std::to_string(sh->pid()) + "/task/" + std::to_string(sh->pid()) + "/children");
    return static_cast<bool>(in >> program);
  }, 2s));
  EXPECT_EQ(sh->ask("spawn bg-1").rfind("tid ", 0), 0u);  // sh passes stdin through to it
  const auto took = timeUntilIn(program, "/" + prefix_ + "/wrapped/foreground");
  ASSERT_TRUE(took) << daemonLog();
  EXPECT_LT(*took, kWithinARescan);
  EXPECT_EQ(groupOf(sh->pid(), sh->pid()).find("/" + prefix_), std::string::npos) << "the shell was managed";
  EXPECT_NE(daemonLog().find("managing pid " + std::to_string(program) + " (cpuclass-test-w): matched by worker wrapped"),
            std::string::npos)
      << daemonLog();
  sh->ask("quit");
}

// On hybrid systems a thread is also in an accounting group (cgroup2, threaded). Someone moving
// it there leaves its cpu group alone, so only the full rescan's member lists see it.
TEST_F(DaemonTest, AccountingDriftIsCorrectedAtAFullRescan) {
  if (!layout_.unified) GTEST_SKIP() << "no cgroup2 accounting mirror on this machine";
  const pid_t off = spawn("off-1");
  startDaemon();
  ASSERT_TRUE(placedAs(off, "offload"));
  const auto accounting = [&] {
    const auto f = proc_->thread(worker_->pid(), off);
    for (const auto& e : f ? f->cgroups : std::vector<cgroups::CgroupEntry>{}) {
      if (e.hierarchy_id == 0) return e.path;
    }
    return std::string("?");
  };
  ASSERT_EQ(accounting(), group("offload"));
  // The threaded domain's root: the one place in the mirror a single thread may go.
  std::ofstream(layout_.unified->mount_point + "/" + prefix_ + "/tw/cgroup.threads") << off << std::endl;
  ASSERT_EQ(accounting(), "/" + prefix_ + "/tw");
  EXPECT_TRUE(waitUntil([&] { return accounting() == group("offload"); }, 6s)) << accounting();
  EXPECT_TRUE(placedAs(off, "offload"));
}

// The loop's thread preempts a CPU hog at wake-up (docs/boosting.md, "Round 5").
// A worker's call can overtake the proc connector's event for the thread it names (a thread
// that tags itself as it starts: libcpuclass). The in-process Manager handles no events, so a
// thread started after it is one it has not seen: the call must find it through its process
// (its Tgid), not take the thread for a process of its own.
TEST_F(DaemonTest, ACallAboutAThreadNotSeenYetFindsItsProcess) {
  ChildProcess registered({CPUCLASS_TEST_WORKER}, {}, true, (dir_.path() / "registered.log").string());
  auto m = inProcessManager();
  ASSERT_TRUE(m->registerWorker(registered.pid(), "selfreg", "background"));
  const auto fresh = registered.ask("spawn off-fresh");
  ASSERT_EQ(fresh.rfind("tid ", 0), 0u) << fresh;
  const pid_t tagged = std::stoi(fresh.substr(4));
  const auto tagged_ok = m->setThreadClass(tagged, "offload");
  ASSERT_TRUE(tagged_ok) << tagged_ok.error().message;
  const auto f = proc_->thread(registered.pid(), tagged);
  ASSERT_TRUE(f);
  EXPECT_EQ(cgroups::cgroupPathOf(f->cgroups, "cpu"), "/" + prefix_ + "/selfreg/offload");
  EXPECT_EQ(f->policy, cgroups::kSchedIdle);

  // A policy worker's new thread, waited on at once: found, and still one process.
  const pid_t waiter = spawn("fg-waiter"), holder = spawn("off-fresh");
  const auto now = daemon::Nanos(std::chrono::steady_clock::now().time_since_epoch());
  EXPECT_EQ(m->reportWait(waiter, holder, now), daemon::BoostVerdict::kStarted);
  EXPECT_TRUE(m->endWait(waiter, holder, now));
  EXPECT_TRUE(placedAs(holder, "offload"));
  EXPECT_EQ(m->status().rfind("2 workers' processes", 0), 0u) << m->status();
  EXPECT_EQ(m->setThreadClass(999999, "background").error().code, ESRCH);
  m->stop();
}

TEST_F(DaemonTest, TheLoopRunsWithAShortSlice) {
  // Kernels without custom slices report 0 for every fair thread, this one included.
  if (cgroups::readThreadSlice(0).value_or(0ns) == 0ns) GTEST_SKIP() << "this kernel has no custom slices (Linux 6.12+)";
  startDaemon();
  EXPECT_EQ(cgroups::readThreadSlice(daemon_->pid()), std::chrono::nanoseconds(100us));
}

// With nothing to watch (no thread of a class with a boost, no boost, no idle group to squeeze,
// no realtime class) the starvation poll sleeps; the first offload thread wakes it at once
// (docs/boosting.md, "Round 10"). Counted as the loop thread's sleeps, which no load changes.
TEST_F(DaemonTest, ThePollSleepsWhileItHasNothingToWatch) {
  spawn("bg-1");
  startDaemon();
  const auto sleeps_in_a_second = [&] {
    const pid_t loop = daemon_->pid();  // the loop runs on the main thread
    const auto before = proc_->voluntarySwitches(loop, loop);
    std::this_thread::sleep_for(1s);
    const auto after = proc_->voluntarySwitches(loop, loop);
    return before && after ? static_cast<int64_t>(*after - *before) : -1;
  };
  std::this_thread::sleep_for(300ms);  // the first polls after the start
  const auto idle = sleeps_in_a_second();
  EXPECT_GE(idle, 0);
  EXPECT_LT(idle, 20) << daemonLog();  // a 10 ms poll: ~100
  const pid_t off = spawn("off-1");
  ASSERT_TRUE(waitUntil([&] { return placedAs(off, "offload"); }, 5s)) << daemonLog();
  EXPECT_GT(sleeps_in_a_second(), 50) << daemonLog();
}

// A class's slice is held on its fair threads and handed back (the kernel's default) when they
// leave the class at a reload, and at stop (docs/boosting.md, "Round 10").
TEST_F(DaemonTest, AClassSliceIsHeldAndHandedBack) {
  if (cgroups::readThreadSlice(0).value_or(0ns) == 0ns) GTEST_SKIP() << "this kernel has no custom slices (Linux 6.12+)";
  const std::string sliced = "background: {sched: batch, nice: 5}, foreground: {slice: 200us}";
  writePolicy("bg-.*", "", sliced);
  const pid_t req = spawn("req-1"), bg = spawn("bg-1");
  const auto slice = [](pid_t tid) { return cgroups::readCustomSlice(tid).value_or(-1ns); };
  startDaemon();
  EXPECT_EQ(slice(req), 200us) << daemonLog();
  EXPECT_EQ(slice(bg), 0ns);
  writePolicy("req-.*", "", sliced);  // req goes to background, which has no slice
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(waitUntil([&] { return placedAs(req, "background") && slice(req) == 0ns; }, 5s)) << daemonLog();
  writePolicy("bg-.*", "", sliced);
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(waitUntil([&] { return slice(req) == 200us; }, 5s)) << daemonLog();
  stopDaemon();
  EXPECT_EQ(slice(req), 0ns);
  EXPECT_EQ(problems(), "");
}

TEST_F(DaemonTest, GroupsOfAnExitedWorkerAreRemoved) {
  spawn("bg-1");
  startDaemon();
  const fs::path worker_dir = fs::path(layout_.cpu.mount_point) / prefix_ / "tw";
  ASSERT_TRUE(fs::exists(worker_dir / "background"));
  worker_->ask("quit");
  EXPECT_TRUE(waitUntil([&] { return !fs::exists(worker_dir); }, 5s)) << daemonLog();
  EXPECT_TRUE(daemon_->running());
}

TEST(ProcConnectorKernel, SeesThreadForkRenameAndExit) {
  if (const auto why = testing::kernelTierUnavailable(); !why.empty()) GTEST_SKIP() << why;
  auto c = cgroups::ProcConnector::open(false);
  ASSERT_TRUE(c) << c.error().message;
  pid_t tid = 0;
  std::thread t([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    pthread_setname_np(pthread_self(), "conn-probe");
  });
  t.join();
  std::vector<cgroups::ProcEvent> seen;
  waitUntil([&] {
    bool lost = false;
    if (auto ev = c->drain(lost)) seen.insert(seen.end(), ev->begin(), ev->end());
    return std::count_if(seen.begin(), seen.end(), [&](const auto& e) { return e.tid == tid; }) >= 3;
  }, 5s);
  using K = cgroups::ProcEvent::Kind;
  auto has = [&](K kind) {
    return std::any_of(seen.begin(), seen.end(), [&](const auto& e) { return e.tid == tid && e.kind == kind; });
  };
  EXPECT_TRUE(has(K::kFork));
  EXPECT_TRUE(has(K::kComm));
  EXPECT_TRUE(has(K::kExit));
  for (const auto& e : seen) {
    if (e.tid != tid) continue;
    EXPECT_EQ(e.tgid, ::getpid());
    if (e.kind == K::kFork) {
      EXPECT_TRUE(e.isNewThread());
    }
    if (e.kind == K::kComm) {
      EXPECT_EQ(e.comm, "conn-probe");
    }
  }
}

}  // namespace
}  // namespace cpuclass
