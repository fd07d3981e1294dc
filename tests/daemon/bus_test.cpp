// The D-Bus API against a private system-like dbus-daemon started by the test, with Debian's
// deny-by-default system policy and the project's policy file (tier `bus`). Callers: busctl as
// root, busctl as another uid (setpriv), and an sd-bus client in this process for floods.
#include <systemd/sd-bus.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include "tests/daemon/daemon_fixture.h"

namespace cpuclass {
namespace {

struct Reply {
  int status = -1;
  std::string out;
};

class BusTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (const char* tool : {"/usr/bin/dbus-daemon", "/usr/bin/busctl", "/usr/bin/setpriv"}) {
      if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is missing";
    }
    // The socket directory must be reachable by the unprivileged caller too.
    fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    socket_ = (dir_.path() / "system_bus_socket").string();
    std::string conf = testing::readFile("/usr/share/dbus-1/system.conf");
    conf = std::regex_replace(conf, std::regex("<listen>[^<]*</listen>"), "<listen>unix:path=" + socket_ + "</listen>");
    conf = std::regex_replace(conf, std::regex("<includedir>[^<]*</includedir>"), "");
    conf = std::regex_replace(conf, std::regex("<(user|pidfile|servicehelper)>[^<]*</(user|pidfile|servicehelper)>"), "");
    conf = std::regex_replace(conf, std::regex("<syslog/>"), "");
    // polkit's name may be taken by a stand-in (root) and asked by the daemon, as polkit's own
    // policy file allows on a real system.
    conf = std::regex_replace(conf, std::regex("</busconfig>"),
                              "<includedir>" + std::string(CPUCLASS_SOURCE_DIR) + "/packaging/dbus</includedir>\n"
                              "<policy user=\"root\"><allow own=\"org.freedesktop.PolicyKit1\"/></policy>\n"
                              "<policy context=\"default\"><allow send_destination=\"org.freedesktop.PolicyKit1\"/></policy>\n"
                              "</busconfig>");
    std::ofstream(dir_.path() / "bus.conf") << conf;
    bus_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/bin/dbus-daemon", "--config-file=" + (dir_.path() / "bus.conf").string(), "--nofork"},
        std::vector<std::string>{}, false, (dir_.path() / "bus.log").string());
    ASSERT_TRUE(waitUntil([&] { return fs::exists(socket_); }, 5s)) << testing::readFile(dir_.path() / "bus.log");
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", address().c_str(), 1);
  }
  void TearDown() override {
    DaemonTest::TearDown();  // the daemon first, then its bus
    bus_.reset();
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
  }
  std::vector<std::string> daemonEnv() const override {
    auto env = DaemonTest::daemonEnv();
    env.push_back("DBUS_SYSTEM_BUS_ADDRESS=" + address());
    return env;
  }
  std::string address() const { return "unix:path=" + socket_; }

  // busctl call; `as` is a command prefix such as setpriv, `shell` wraps it in sh -c.
  Reply call(const std::string& method, const std::string& args, const std::string& as = "") const {
    const std::string cmd = as + " /usr/bin/busctl --address=" + address() +
                            " call org.cpuclass1 /org/cpuclass1 org.cpuclass1.Manager " + method + " " + args + " 2>&1";
    return run(cmd);
  }
  static Reply run(const std::string& cmd) {
    Reply r;
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) r.out += buf;
    r.status = ::pclose(p);
    return r;
  }
  std::string nobody() const { return "/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups"; }

  std::string socket_;
  std::unique_ptr<ChildProcess> bus_;
};

TEST_F(BusTest, EveryMethodWorksForRoot) {
  const pid_t bg = spawn("bg-1"), waiter = spawn("bg-waiter"), holder = spawn("off-holder");
  // A boost lasts its window (50 ms by default), less than a busctl start on a busy machine: this
  // test looks at the boost from the next call, so the window is long.
  writePolicy("bg-.*", "", "background: {sched: batch, nice: 5}, offload: {boost: {window: 10s}}");
  startDaemon();
  ASSERT_NE(daemonLog().find("D-Bus API org.cpuclass1"), std::string::npos) << daemonLog();
  const std::string b = std::to_string(bg), w = std::to_string(waiter), h = std::to_string(holder);

  auto r = call("GetStatus", "");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("ssuua{sb} \"hybrid\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"proc_connector\" true"), std::string::npos) << r.out;
  r = call("ListWorkers", "");
  EXPECT_NE(r.out.find("\"tw\" " + std::to_string(worker_->pid()) + " 4 false"), std::string::npos) << r.out;
  r = call("Explain", "u " + h);
  // busctl prints single quotes escaped.
  EXPECT_NE(r.out.find("\"tw\" \"offload\" \"thread rule 2 (comm \\'off-.*\\')"), std::string::npos) << r.out;

  r = call("SetThreadClass", "us " + b + " foreground");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(placedAs(bg, "foreground"));
  EXPECT_NE(call("Explain", "u " + b).out.find("\"requested by the worker; its process "), std::string::npos);
  EXPECT_EQ(call("ResetThreadClass", "u " + b).status, 0);
  EXPECT_TRUE(placedAs(bg, "background"));

  r = call("ReportWait", "uu " + w + " " + h);
  EXPECT_EQ(r.out, "s \"started\"\n");
  EXPECT_EQ(where(holder).group, "/" + prefix_ + "/tw/_boost");
  r = call("Explain", "u " + h);
  EXPECT_NE(r.out.find("true"), std::string::npos) << r.out;
  EXPECT_EQ(call("EndWait", "uu " + w + " " + h).status, 0);
  EXPECT_TRUE(placedAs(holder, "offload"));

  EXPECT_EQ(call("Reload", "").out, "b true\n");
  EXPECT_TRUE(daemon_->running());
}

// polkit is asked asynchronously: one that never answers holds only the call that asked it,
// while the loop answers other calls and places new threads at its usual pace.
TEST_F(BusTest, APolkitThatNeverAnswersHoldsOnlyTheCallThatAskedIt) {
  using Clock = std::chrono::steady_clock;
  const pid_t bg = spawn("bg-1");
  startDaemon();
  sd_bus* standin = nullptr;  // owns polkit's name and never reads a message
  ASSERT_GE(sd_bus_open_system(&standin), 0);
  ASSERT_GE(sd_bus_request_name(standin, "org.freedesktop.PolicyKit1", 0), 0);
  const auto asked = Clock::now();
  auto held = std::async(std::launch::async, [&] { return call("SetThreadClass", "us " + std::to_string(bg) + " foreground", nobody()); });
  std::this_thread::sleep_for(300ms);  // the daemon has asked by now
  ASSERT_EQ(held.wait_for(0s), std::future_status::timeout) << "answered before polkit did";
  std::vector<double> status_ms, placement_ms;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    EXPECT_EQ(call("GetStatus", "").status, 0);
    status_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    t0 = Clock::now();
    const pid_t fresh = spawn("bg-new" + std::to_string(i));
    EXPECT_TRUE(waitUntil([&] { return placedAs(fresh, "background"); }, 1500ms)) << fresh;
    placement_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  const auto refused = held.get();
  const double held_ms = std::chrono::duration<double, std::milli>(Clock::now() - asked).count();
  // Blocking, the daemon would have stood still for polkit's 2 s timeout at the first call.
  EXPECT_LT(*std::max_element(status_ms.begin(), status_ms.end()), 1000.0);
  EXPECT_LT(*std::max_element(placement_ms.begin(), placement_ms.end()), 1500.0);
  EXPECT_GE(held_ms, 1900.0);  // the asking call waited out polkit's timeout ...
  EXPECT_NE(refused.out.find("is not a thread of the calling process"), std::string::npos) << refused.out;  // ... and was refused
  EXPECT_TRUE(placedAs(bg, "background"));
  std::printf("while polkit hung for %.0f ms: GetStatus %.1f/%.1f/%.1f ms, new thread placed in %.1f/%.1f/%.1f ms\n",
              held_ms, status_ms[0], status_ms[1], status_ms[2], placement_ms[0], placement_ms[1], placement_ms[2]);
  sd_bus_flush_close_unref(standin);
}

TEST_F(BusTest, AnotherUserIsRefusedForAnotherProcessesThreads) {
  const pid_t bg = spawn("bg-1"), holder = spawn("off-holder");
  startDaemon();
  auto r = call("SetThreadClass", "us " + std::to_string(bg) + " foreground", nobody());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("is not a thread of the calling process"), std::string::npos) << r.out;
  EXPECT_TRUE(placedAs(bg, "background"));
  r = call("ReportWait", "uu " + std::to_string(bg) + " " + std::to_string(holder), nobody());
  EXPECT_NE(r.out.find("is not a thread of the calling process"), std::string::npos) << r.out;
  r = call("Reload", "", nobody());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("ccess denied"), std::string::npos) << r.out;  // sd-bus: CAP_SYS_ADMIN needed
  // Reading is open to everyone.
  EXPECT_EQ(call("GetStatus", "", nobody()).status, 0);
  // Its own thread passes authorization (busctl calls with its own PID, via exec from sh's $$),
  // then meets the next check: busctl is no managed worker.
  r = run(nobody() + " sh -c 'exec /usr/bin/busctl --address=" + address() +
          " call org.cpuclass1 /org/cpuclass1 org.cpuclass1.Manager SetThreadClass us $$ foreground' 2>&1");
  EXPECT_NE(r.out.find("is not managed"), std::string::npos) << r.out;
}

// Owning a thread is enough to ask for a fair class, not for a realtime one.
TEST_F(BusTest, AWorkersOwnRequestForARealtimeClassTakesRoot) {
  writePolicy("bg-.*", "  - name: cli\n    match: {comm: busctl}\n", "interactive: {realtime: 2}");
  startDaemon();
  const auto ask = [&](const std::string& cls) {  // busctl, as nobody, for its own thread ($$ before the exec)
    return run(nobody() + " sh -c 'exec /usr/bin/busctl --address=" + address() +
               " call org.cpuclass1 /org/cpuclass1 org.cpuclass1.Manager SetThreadClass us $$ " + cls + "' 2>&1");
  };
  auto r = ask("interactive");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("is realtime: asking for it takes root"), std::string::npos) << r.out;
  r = ask("background");
  EXPECT_EQ(r.status, 0) << r.out << daemonLog();
}

TEST_F(BusTest, BadArgumentsGetNamedErrors) {
  const pid_t bg = spawn("bg-1"), gone = spawn("bg-gone");
  startDaemon();
  EXPECT_EQ(worker_->ask("exit " + std::to_string(gone)), "ok");
  auto r = call("SetThreadClass", "us " + std::to_string(bg) + " turbo");
  EXPECT_NE(r.out.find("no class named 'turbo'"), std::string::npos) << r.out;
  r = call("SetThreadClass", "us 999999 foreground");
  EXPECT_NE(r.out.find("thread 999999 is not managed"), std::string::npos) << r.out;
  r = call("Explain", "u " + std::to_string(gone));
  EXPECT_NE(r.out.find("is not managed"), std::string::npos) << r.out;
  r = call("Explain", "s nonsense");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("nvalid"), std::string::npos) << r.out;  // rejected by sd-bus: wrong signature
  r = call("EndWait", "uu " + std::to_string(bg) + " " + std::to_string(bg));
  EXPECT_NE(r.out.find("reported no wait"), std::string::npos) << r.out;
  r = call("ReportWait", "uu " + std::to_string(bg) + " " + std::to_string(bg));
  EXPECT_NE(r.out.find("which has no boost"), std::string::npos) << r.out;
  EXPECT_TRUE(daemon_->running());
}

TEST_F(BusTest, FloodingPastTheRateLimitIsRefusedAndTheDaemonStaysHealthy) {
  spawn("bg-1");
  startDaemon();
  sd_bus* bus = nullptr;
  ASSERT_GE(sd_bus_open_system(&bus), 0);
  // Pipelined, 100 calls in flight (under the bus's 128 pending replies per connection), so the
  // calls arrive faster than the limit refills (2,000/s) however fast the machine is.
  struct Counts {
    int ok = 0, limited = 0, other = 0, sent = 0;
  } n;
  constexpr int kCalls = 6000;
  const auto on_reply = [](sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* c = static_cast<Counts*>(userdata);
    const sd_bus_error* e = sd_bus_message_get_error(m);
    if (e == nullptr) {
      ++c->ok;
    } else if (sd_bus_error_has_name(e, "org.cpuclass1.Error.RateLimited")) {
      ++c->limited;
    } else {
      ++c->other;
    }
    return 0;
  };
  const auto send = [&] {
    ++n.sent;
    return sd_bus_call_method_async(bus, nullptr, "org.cpuclass1", "/org/cpuclass1", "org.cpuclass1.Manager", "GetStatus",
                                    on_reply, &n, "");
  };
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) ASSERT_GE(send(), 0);
  const bool all = waitUntil([&] {
    while (sd_bus_process(bus, nullptr) > 0) {
    }
    while (n.sent < kCalls && n.sent - (n.ok + n.limited + n.other) < 100) send();
    return n.ok + n.limited + n.other == kCalls;
  }, 60s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  sd_bus_flush_close_unref(bus);
  std::printf("%d pipelined calls in %.2f s: %d answered, %d rate-limited, %d other errors\n", kCalls, seconds, n.ok,
              n.limited, n.other);
  EXPECT_TRUE(all);
  EXPECT_GE(n.ok, 1990);  // the burst allowance
  // The bucket (2,000, refilled at 2,000/s) allows at most this many in the time the calls took:
  // the rest must have been refused. A daemon slower than the limit (ASan on a loaded machine)
  // refuses none, rightly, and cannot show the limit.
  const double allowed = 2000 + 2000 * seconds;
  EXPECT_LE(n.ok, allowed + 10);
  EXPECT_EQ(n.other, 0);
  EXPECT_TRUE(daemon_->running());
  EXPECT_TRUE(waitUntil([&] { return call("GetStatus", "").status == 0; }, 5s));  // another caller, served
  if (kCalls <= allowed) {
    GTEST_SKIP() << "the daemon answered " << kCalls / seconds << " calls/s, under the limit: no refusal to show";
  }
  EXPECT_GT(n.limited, 0);
  // Every refusal is counted where operators look.
  const std::string metrics = testing::httpGet(metricsPort(), "/metrics");
  EXPECT_NE(metrics.find("cpuclass_bus_refusals_total{reason=\"RateLimited\"} " + std::to_string(n.limited)),
            std::string::npos)
      << metrics;
}

// A worker written in C tags its threads and reports a wait through libcpuclass.
TEST_F(BusTest, CWorkerTagsItsThreadsAndReportsAWait) {
  startDaemon();
  ChildProcess c({CPUCLASS_C_WORKER, "--tag=" + prefix_}, {"DBUS_SYSTEM_BUS_ADDRESS=" + address()}, true,
                 (dir_.path() / "c_worker.log").string());
  const std::string tids = c.readLine();  // after both threads tagged themselves
  ASSERT_EQ(tids.rfind("tids ", 0), 0u) << tids << testing::readFile(dir_.path() / "c_worker.log");
  int merger = 0, helper = 0;
  ASSERT_EQ(std::sscanf(tids.c_str(), "tids %d %d", &merger, &helper), 2);
  EXPECT_EQ(c.readLine(), "reported 1");
  const auto at = [&](int tid) {
    const auto f = proc_->thread(c.pid(), tid);
    return f ? std::pair{cgroups::cgroupPathOf(f->cgroups, "cpu").value_or("?"), f->policy} : std::pair{std::string("<gone>"), -1};
  };
  // The tag moved the merger out of the worker's default class (foreground) ...
  EXPECT_EQ(at(merger), (std::pair{group("background"), cgroups::kSchedBatch}));
  // ... and the reported wait boosted the helper at once: out of its idle group, SCHED_OTHER.
  EXPECT_EQ(at(helper), (std::pair{"/" + prefix_ + "/tw/_boost", cgroups::kSchedOther}));
  EXPECT_EQ(c.ask("end"), "ended 0");
  EXPECT_EQ(at(helper), (std::pair{group("offload"), cgroups::kSchedIdle}));
  EXPECT_EQ(c.ask("quit"), "bye");
  EXPECT_EQ(c.wait(5s), 0);
}

TEST_F(BusTest, CpuclassctlShowsAndSteers) {
  const pid_t bg = spawn("bg-1"), off = spawn("off-1");
  const auto ctl = [&](const std::string& args) {
    return run("DBUS_SYSTEM_BUS_ADDRESS=" + address() + " " + CPUCLASSCTL + " " + args + " 2>&1");
  };
  auto r = ctl("status");  // before the daemon runs: systemctl-style failure
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.out, "Failed to get status: cpuclassd is not running\n");
  startDaemon();
  r = ctl("status");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^CGROUP MODE +THREADS +PROCESSES +STATUS +FEATURES\nhybrid +3 +1 +"))) << r.out;
  EXPECT_NE(r.out.find("cpu_idle=yes"), std::string::npos) << r.out;
  r = ctl("--json workers");
  EXPECT_NE(r.out.find("\"worker\": \"tw\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"threads\": 3"), std::string::npos) << r.out;
  r = ctl("threads tw");
  EXPECT_TRUE(std::regex_search(r.out, std::regex(std::to_string(off) + " +" + std::to_string(worker_->pid()) +
                                                  " +tw +off-1 +offload +" + prefix_ + "/tw/offload +false")))
      << r.out;
  r = ctl("explain " + std::to_string(bg));
  EXPECT_NE(r.out.find("is in class background"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("because: thread rule 1 (comm 'bg-.*')"), std::string::npos) << r.out;
  EXPECT_EQ(ctl("set-class " + std::to_string(bg) + " offload").status, 0);
  EXPECT_TRUE(placedAs(bg, "offload"));
  EXPECT_EQ(ctl("reset-class " + std::to_string(bg)).status, 0);
  EXPECT_TRUE(placedAs(bg, "background"));
  r = ctl("boost " + std::to_string(off) + " --duration 2000");
  EXPECT_EQ(r.out, "started\n");
  EXPECT_EQ(where(off).group, "/" + prefix_ + "/tw/_boost");
  r = ctl("set-class " + std::to_string(bg) + " turbo");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.out, "Failed to set class of thread " + std::to_string(bg) + ": no class named 'turbo'\n");
  r = ctl("top --iterations 2 --interval 0.2");
  EXPECT_NE(r.out.find("WORKER  CLASS       THREADS  CPU"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tw      offload"), std::string::npos) << r.out;
  EXPECT_EQ(ctl("reload").status, 0);
  r = ctl(std::string("check-policy ") + CPUCLASS_FIXTURES_DIR + "/policies/invalid/out_of_range.yaml");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("cpu_weight must be an integer in 1..10000, got '20000'"), std::string::npos) << r.out;
}

TEST_F(BusTest, AProcessRegistersItselfAsAWorker) {
  startDaemon();
  // Matched by no policy worker (no --tag), it registers and then tags and waits as a worker.
  ChildProcess c({CPUCLASS_C_WORKER, "--register", "selfreg"}, {"DBUS_SYSTEM_BUS_ADDRESS=" + address()}, true,
                 (dir_.path() / "c_worker.log").string());
  const std::string tids = c.readLine();
  ASSERT_EQ(tids.rfind("tids ", 0), 0u) << tids << daemonLog();
  int merger = 0, helper = 0;
  ASSERT_EQ(std::sscanf(tids.c_str(), "tids %d %d", &merger, &helper), 2);
  EXPECT_EQ(c.readLine(), "reported 1");
  const auto groupOf = [&](int tid) {
    const auto f = proc_->thread(c.pid(), tid);
    return f ? cgroups::cgroupPathOf(f->cgroups, "cpu").value_or("?") : "<gone>";
  };
  EXPECT_EQ(groupOf(c.pid()), "/" + prefix_ + "/selfreg/background");  // the registered default
  EXPECT_EQ(groupOf(helper), "/" + prefix_ + "/selfreg/_boost");
  auto r = call("Explain", "u " + std::to_string(c.pid()));
  EXPECT_NE(r.out.find("registered by the worker"), std::string::npos) << r.out;
  EXPECT_EQ(c.ask("end"), "ended 0");
  EXPECT_EQ(c.ask("quit"), "bye");
  EXPECT_EQ(c.wait(5s), 0);
  // The registration ended with the process: its groups go.
  EXPECT_TRUE(waitUntil([&] { return !fs::exists(fs::path(layout_.cpu.mount_point) / prefix_ / "selfreg"); }, 5s));

  // Another user may not register (no polkit on this bus to grant org.cpuclass1.manage).
  ChildProcess n({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CPUCLASS_C_WORKER, "--register",
                  "sneaky"},
                 {"DBUS_SYSTEM_BUS_ADDRESS=" + address()}, true, (dir_.path() / "c_worker2.log").string());
  const std::string refused = n.readLine();
  EXPECT_EQ(refused.rfind("error register -1 RegisterWorker: registering a worker takes root", 0), 0u) << refused;
}

TEST_F(BusTest, SignalsTellClassChangesAndBoosts) {
  const pid_t waiter = spawn("bg-waiter"), holder = spawn("off-holder");
  startDaemon();
  sd_bus* bus = nullptr;
  ASSERT_GE(sd_bus_open_system(&bus), 0);
  std::vector<std::string> seen;
  const auto on_signal = [](sd_bus_message* m, void* userdata, sd_bus_error*) {
    uint32_t tid = 0;
    sd_bus_message_read(m, "u", &tid);
    static_cast<std::vector<std::string>*>(userdata)->push_back(std::string(sd_bus_message_get_member(m)) + " " +
                                                                 std::to_string(tid));
    return 0;
  };
  ASSERT_GE(sd_bus_match_signal(bus, nullptr, "org.cpuclass1", "/org/cpuclass1", "org.cpuclass1.Manager", nullptr,
                                on_signal, &seen), 0);
  const std::string w = std::to_string(waiter), h = std::to_string(holder);
  EXPECT_EQ(call("ReportWait", "uu " + w + " " + h).status, 0);
  EXPECT_EQ(call("EndWait", "uu " + w + " " + h).status, 0);
  EXPECT_EQ(call("SetThreadClass", "us " + w + " foreground").status, 0);
  const std::vector<std::string> want{"BoostStarted " + h, "BoostEnded " + h, "ClassChanged " + w};
  EXPECT_TRUE(waitUntil([&] {
    while (sd_bus_process(bus, nullptr) > 0) {
    }
    return seen.size() >= want.size();
  }, 5s));
  EXPECT_EQ(seen, want);
  sd_bus_flush_close_unref(bus);
}

TEST(BusIntrospection, MatchesTheCheckedInFile) {
  FILE* p = ::popen((std::string(CPUCLASSD) + " --bus-introspect").c_str(), "r");
  std::string xml;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) xml += buf;
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_EQ(xml, testing::readFile(std::string(CPUCLASS_SOURCE_DIR) + "/packaging/dbus/org.cpuclass1.Manager.xml"));
}

}  // namespace
}  // namespace cpuclass
