// The fixture of the daemon's end-to-end tests: a test worker, the real cpuclassd with its own
// policy and cgroup prefix, and checks of what /proc shows. Cleans up even when a test fails.
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "cgroups/class_tree.h"
#include "cgroups/proc_fs.h"
#include "daemon/log.h"
#include "daemon/manager.h"
#include "policy/policy_loader.h"
#include "tests/support/child_process.h"
#include "tests/support/test_support.h"

namespace cpuclass {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::NotifySocket;
using testing::waitUntil;

struct Placement {
  std::string group;  // control hierarchy path
  int policy = -1;
  int nice = 99;
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto why = testing::kernelTierUnavailable(); !why.empty()) GTEST_SKIP() << why;
    auto layout = cgroups::detectLayout(testing::readFile("/proc/self/mountinfo"));
    ASSERT_TRUE(layout);
    if (layout->cpu.version == 2) GTEST_SKIP() << "the daemon places threads on cgroup v1/hybrid only so far";
    layout_ = *layout;
    proc_.emplace(*cgroups::ProcFs::openSystem());
    prefix_ = testing::uniqueGroupName();
    writePolicy("bg-.*", "");
    worker_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{CPUCLASS_TEST_WORKER, "--tag=" + prefix_}, std::vector<std::string>{}, true,
        (dir_.path() / "worker.log").string());
  }

  void TearDown() override {
    if (daemon_) stopDaemon();
    worker_.reset();
    // Whatever a failed test left behind: move threads to the root, remove groups bottom-up.
    for (const auto* mount : {&layout_.cpu, layout_.unified ? &*layout_.unified : nullptr}) {
      if (mount == nullptr || prefix_.empty()) continue;
      const fs::path top = fs::path(mount->mount_point) / prefix_;
      if (!fs::exists(top)) continue;
      std::vector<fs::path> dirs;
      for (const auto& e : fs::recursive_directory_iterator(top)) {
        if (e.is_directory()) dirs.push_back(e.path());
      }
      std::sort(dirs.rbegin(), dirs.rend());
      dirs.push_back(top);
      for (const auto& d : dirs) {
        // A real-time budget goes back first: a removed group's would still count for a while.
        if (fs::exists(d / "cpu.rt_runtime_us")) std::ofstream(d / "cpu.rt_runtime_us") << "0" << std::endl;
        // The worker's child processes die by PR_SET_PDEATHSIG, after the worker: a moment.
        waitUntil([&] { return ::rmdir(d.c_str()) == 0 || errno == ENOENT; }, 3s);
      }
      EXPECT_FALSE(fs::exists(top)) << "cannot remove " << top;
    }
  }

  // Threads named like `bg_pattern` are background; `extra` is appended to the worker entry.
  void writePolicy(const std::string& bg_pattern, const std::string& extra,
                   const std::string& classes = "background: {sched: batch, nice: 5}") {
    std::ofstream(dir_.path() / "policy.yaml")
        << "daemon: {cgroup_prefix: " << prefix_ << ", rescan_interval: 500ms, log_level: info, metrics_listen: '127.0.0.1:0', starvation_poll: 10ms}\n"
        << "classes: {" << classes << "}\n"
        << "workers:\n"
        << "  - name: tw\n"
        << "    match: {cmdline: '.*--tag=" << prefix_ << "'}\n"
        << "    threads:\n"
        << "      - {comm: '" << bg_pattern << "', class: background}\n"
        << "      - {comm: 'off-.*', class: offload}\n"
        << extra;
  }

  void startDaemon() {
    notify_.reset();  // its destructor unlinks the path the new one binds
    notify_ = std::make_unique<NotifySocket>((dir_.path() / "notify").string());
    started_ = std::chrono::steady_clock::now();
    daemon_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{CPUCLASSD, "--policy", (dir_.path() / "policy.yaml").string(), "--state-dir",
                                 (dir_.path() / "state").string()},
        daemonEnv(), false, logPath());
    ASSERT_TRUE(notify_->waitFor("READY=1", 10s)) << daemonLog();
    ready_after_ = std::chrono::steady_clock::now() - started_;
  }

  virtual std::vector<std::string> daemonEnv() const { return {"NOTIFY_SOCKET=" + notify_->path()}; }

  void stopDaemon() {
    daemon_->signal(SIGTERM);
    const int status = daemon_->wait(10s);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n" << daemonLog();
    daemon_.reset();
  }

  // The port the daemon logged for /metrics (policies here ask for any free port).
  int metricsPort() const {
    std::smatch m;
    const std::string log = daemonLog();
    if (!std::regex_search(log, m, std::regex(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)"))) return 0;
    return std::stoi(m[1].str());
  }

  std::string logPath() const { return (dir_.path() / "daemon.log").string(); }
  std::string daemonLog() const { return fs::exists(logPath()) ? testing::readFile(logPath()) : ""; }

  // The Manager in-process, on the test's policy (adjusted by `tune`), for synchronous checks.
  std::unique_ptr<daemon::Manager> inProcessManager(const std::function<void(policy::Policy&)>& tune = {}) {
    auto loaded = policy::loadPolicy((dir_.path() / "policy.yaml").string(), "/nonexistent");
    EXPECT_TRUE(loaded.policy);
    if (tune) tune(*loaded.policy);
    auto tree = cgroups::ClassTree::openSystem(layout_);
    EXPECT_TRUE(tree);
    auto m = std::make_unique<daemon::Manager>(std::move(*loaded.policy), std::move(*tree), *cgroups::ProcFs::openSystem(),
                                               daemon::StateFile((dir_.path() / "state-in-process").string()), log_);
    m->start();
    return m;
  }
  daemon::Logger log_{policy::LogLevel::kWarning};

  pid_t spawn(const std::string& name) {
    const auto reply = worker_->ask("spawn " + name);
    EXPECT_EQ(reply.rfind("tid ", 0), 0u) << reply;
    return std::stoi(reply.substr(4));
  }

  Placement where(pid_t tid) const {
    const auto f = proc_->thread(worker_->pid(), tid);
    if (!f) return {"<gone>", -1, 99};
    return {cgroups::cgroupPathOf(f->cgroups, "cpu").value_or("?"), f->policy, f->nice};
  }
  std::string group(const std::string& cls) const { return "/" + prefix_ + "/tw/" + cls; }
  bool placedAs(pid_t tid, const std::string& cls) const {
    const auto p = where(tid);
    const int policy = cls == "offload" ? cgroups::kSchedIdle : cls == "background" ? cgroups::kSchedBatch : 0;
    return p.group == group(cls) && p.policy == policy && p.nice == (cls == "background" ? 5 : 0);
  }
  std::vector<pid_t> workerThreads() const { return proc_->threads(worker_->pid()).value_or(std::vector<pid_t>{}); }
  // Lines of the daemon's log at warning level or worse ("<4>", "<3>").
  std::string problems() const {
    std::istringstream in(daemonLog());
    std::string line, out;
    while (std::getline(in, line)) {
      if (line.rfind("<3>", 0) == 0 || line.rfind("<4>", 0) == 0) out += line + "\n";
    }
    return out;
  }

  testing::TempDir dir_;
  cgroups::CgroupLayout layout_;
  std::optional<cgroups::ProcFs> proc_;
  std::string prefix_;
  std::unique_ptr<ChildProcess> worker_;
  std::unique_ptr<NotifySocket> notify_;
  std::unique_ptr<ChildProcess> daemon_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::duration ready_after_{};
};

}  // namespace cpuclass
