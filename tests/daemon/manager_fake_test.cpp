// The Manager end to end on a fake host (tier fake_kernel): a fake cgroup tree of either layout
// (cgroup v1, or v2 with threaded class groups inside a delegated worker cgroup), a fake /proc,
// a recording scheduler and a fake clock. What only the kernel can show stays in the kernel tier.
//
// The fake host plays the kernel's part with the tree: a group made with mkdir gets the files
// cgroupfs would show, a group holding only those files can be removed, and settle() carries out
// the moves written to cgroup.procs, cgroup.threads and tasks since the last settle (procs first:
// a process enters its base before its threads are placed), rewriting every membership file and
// each thread's /proc/<pid>/task/<tid>/cgroup as the kernel would.
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "cgroups/class_tree.h"
#include "cgroups/proc_fs.h"
#include "daemon/manager.h"
#include "policy/policy_loader.h"
#include "tests/fakes/fake_cgroup_tree.h"

namespace cpuclass::testing {
namespace {

namespace fs = std::filesystem;
using daemon::Manager;
using Nanos = std::chrono::nanoseconds;

class FakeHost;
std::vector<FakeHost*>& hosts() {
  static std::vector<FakeHost*> all;
  return all;
}

std::string pathOfFd(int dirfd, const char* rel) {
  if (rel[0] == '/' || dirfd == AT_FDCWD) return rel;
  char buf[4096];
  const ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(dirfd)).c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return rel;
  return std::string(buf, static_cast<size_t>(n)) + "/" + rel;
}

class FakeHost {
 public:
  struct FakeThread {
    pid_t pid = 0;
    std::string comm;
    std::string group;  // control hierarchy, relative to its root
    int policy = SCHED_OTHER;
    int nice = 0;
    uint64_t start_time = 1000;
  };

  explicit FakeHost(bool v2) : v2_(v2), tree_(v2) { hosts().push_back(this); }
  ~FakeHost() { std::erase(hosts(), this); }
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  bool v2() const { return v2_; }
  FakeCgroupTree& tree() { return tree_; }
  const FakeThread& thread(pid_t tid) const { return threads_.at(tid); }

  // A group the host had before the daemon (a systemd unit's, say); `delegated`: marked as
  // systemd marks a unit with Delegate=yes.
  void addGroup(const std::string& group, bool delegated = false) {
    tree_.addGroup(group);
    if (delegated) {
      EXPECT_EQ(::setxattr(tree_.at(group).c_str(), "user.delegate", "1", 1, 0), 0) << std::strerror(errno);
    }
  }
  // Each change settles the writes before it first, as they happened before it.
  void spawn(pid_t pid, pid_t tid, const std::string& comm, const std::string& group) {
    settle();
    threads_[tid] = {pid, comm, group};
    rewrite();
  }
  // Someone else moves or re-prioritises a thread.
  void move(pid_t tid, const std::string& group) {
    settle();
    threads_.at(tid).group = group;
    rewrite();
  }
  void setSched(pid_t tid, int policy, int nice) {
    settle();
    threads_.at(tid).policy = policy;
    threads_.at(tid).nice = nice;
    rewrite();
  }

  // The moves written since the last settle, carried out; membership files and /proc rewritten.
  void settle() {
    if (settling_) return;
    settling_ = true;
    std::vector<std::pair<std::string, std::vector<pid_t>>> procs, tids;
    for (const auto& group : groups()) {
      // cgroup.subtree_control takes "+cpu" / "-cpu" and reads back the enabled set.
      if (v2_) {
        const std::string control = tree_.get(group, "cgroup.subtree_control");
        if (!control.empty() && (control[0] == '+' || control[0] == '-')) {
          tree_.set(group, "cgroup.subtree_control", control[0] == '+' ? control.substr(1) : "");
        }
      }
      for (const auto& [file, into] : {std::pair{std::string("cgroup.procs"), &procs}, {threadsFile(), &tids}}) {
        const std::string content = tree_.get(group, file);
        if (content != written_[group + "/" + file]) into->emplace_back(group, ids(content));
      }
    }
    for (const auto& [group, pids] : procs) {
      for (auto& [tid, t] : threads_) {
        if (std::find(pids.begin(), pids.end(), t.pid) != pids.end()) t.group = group;
      }
    }
    for (const auto& [group, moved] : tids) {
      for (const pid_t tid : moved) {
        if (threads_.contains(tid)) threads_[tid].group = group;
      }
    }
    rewrite();
    settling_ = false;
  }

  void onMkdir(const std::string& path) {
    if (const auto group = groupOf(path)) tree_.addGroup(*group);
  }
  // Like cgroupfs, a group goes with its kernel files, but not while threads are in it.
  int beforeRmdir(const std::string& path) {
    const auto group = groupOf(path);
    if (!group || !fs::is_directory(path)) return 0;
    settle();
    if (std::any_of(threads_.begin(), threads_.end(), [&](const auto& e) { return e.second.group == *group; })) {
      errno = EBUSY;
      return -1;
    }
    for (const auto& entry : fs::directory_iterator(path)) {
      if (entry.is_directory()) return 0;  // ENOTEMPTY from the real call
    }
    for (const auto& entry : fs::directory_iterator(path)) fs::remove(entry.path());
    return 0;
  }

  cgroups::ProcFs procFs() const { return cgroups::ProcFs(std::move(*cgroups::Dir::open(proc_.root().string()))); }
  cgroups::ClassTree classTree() const {
    return cgroups::ClassTree(
        cgroups::Hierarchy(std::move(*cgroups::Dir::open(tree_.root().string())),
                           v2_ ? cgroups::CgroupVersion::kV2 : cgroups::CgroupVersion::kV1),
        std::nullopt);
  }

 private:
  std::string threadsFile() const { return v2_ ? "cgroup.threads" : "tasks"; }
  std::optional<std::string> groupOf(const std::string& path) const {
    const std::string root = tree_.root().string();
    if (path.rfind(root + "/", 0) != 0) return std::nullopt;
    return path.substr(root.size() + 1);
  }
  std::vector<std::string> groups() const {
    std::vector<std::string> out{""};
    for (const auto& e : fs::recursive_directory_iterator(tree_.root())) {
      if (e.is_directory()) out.push_back(fs::relative(e.path(), tree_.root()).string());
    }
    return out;
  }
  static std::vector<pid_t> ids(const std::string& content) {
    std::vector<pid_t> out;
    std::istringstream in(content);
    for (pid_t id = 0; in >> id;) out.push_back(id);
    return out;
  }
  void rewrite() {
    written_.clear();
    for (const auto& group : groups()) {
      std::string threads, procs;
      std::set<pid_t> pids;
      for (const auto& [tid, t] : threads_) {
        if (t.group != group) continue;
        threads += std::to_string(tid) + "\n";
        if (pids.insert(t.pid).second) procs += std::to_string(t.pid) + "\n";
      }
      for (const auto& [file, content] : {std::pair{threadsFile(), threads}, {std::string("cgroup.procs"), procs}}) {
        tree_.set(group, file, content);
        written_[group + "/" + file] = content;
      }
    }
    for (const auto& [tid, t] : threads_) {
      const std::string line = v2_ ? "0::/" + t.group + "\n" : "2:cpu,cpuacct:/" + t.group + "\n0::/\n";
      proc_.addThread(t.pid, tid, t.comm, line, t.policy, t.nice, t.start_time);
    }
  }

  bool v2_;
  FakeCgroupTree tree_;
  FakeProc proc_;
  std::map<pid_t, FakeThread> threads_;
  std::map<std::string, std::string> written_;  // membership files as settle() last wrote them
  bool settling_ = false;
};

FakeHost* hostOf(const std::string& path) {
  for (auto* h : hosts()) {
    if (path.rfind(h->tree().root().string() + "/", 0) == 0) return h;
  }
  return nullptr;
}

}  // namespace
}  // namespace cpuclass::testing

// The kernel layer makes and removes groups with mkdirat/unlinkat and writes membership files
// through openat (cgroups/dir.cpp): on a fake host's tree they get cgroupfs's behaviour (a
// membership file opened for writing first settles the writes before it, which the truncation
// would lose). Everything else passes through.
extern "C" int openat(int dirfd, const char* path, int flags, ...) {
  static const auto real = reinterpret_cast<int (*)(int, const char*, int, ...)>(::dlsym(RTLD_NEXT, "openat"));
  mode_t mode = 0;
  if ((flags & (O_CREAT | O_TMPFILE)) != 0) {
    va_list args;
    va_start(args, flags);
    mode = static_cast<mode_t>(va_arg(args, unsigned int));
    va_end(args);
  }
  if ((flags & (O_WRONLY | O_RDWR)) != 0) {
    const std::string full = cpuclass::testing::pathOfFd(dirfd, path);
    const std::string name = full.substr(full.rfind('/') + 1);
    if (name == "tasks" || name == "cgroup.threads" || name == "cgroup.procs") {
      if (auto* h = cpuclass::testing::hostOf(full)) h->settle();
    }
  }
  return real(dirfd, path, flags, mode);
}

extern "C" int mkdirat(int dirfd, const char* path, mode_t mode) {
  static const auto real = reinterpret_cast<int (*)(int, const char*, mode_t)>(::dlsym(RTLD_NEXT, "mkdirat"));
  const int r = real(dirfd, path, mode);
  if (r == 0) {
    const std::string full = cpuclass::testing::pathOfFd(dirfd, path);
    if (auto* h = cpuclass::testing::hostOf(full)) h->onMkdir(full);
  }
  return r;
}

extern "C" int unlinkat(int dirfd, const char* path, int flags) {
  static const auto real = reinterpret_cast<int (*)(int, const char*, int)>(::dlsym(RTLD_NEXT, "unlinkat"));
  if ((flags & AT_REMOVEDIR) != 0) {
    const std::string full = cpuclass::testing::pathOfFd(dirfd, path);
    if (auto* h = cpuclass::testing::hostOf(full); h != nullptr && h->beforeRmdir(full) != 0) return -1;
  }
  return real(dirfd, path, flags);
}

namespace cpuclass::testing {
namespace {

// sched_setattr on a fake host: recorded and reflected in its /proc.
class FakeScheduler final : public daemon::Scheduler {
 public:
  explicit FakeScheduler(FakeHost& host) : host_(host) {}
  Result<cgroups::Outcome> set(pid_t tid, const cgroups::ThreadSched& s, bool) override {
    ++calls;
    host_.setSched(tid, s.policy, s.nice);
    return cgroups::Outcome::kDone;
  }
  Result<Nanos> customSlice(pid_t) override { return Nanos(0); }
  int calls = 0;

 private:
  FakeHost& host_;
};

constexpr pid_t kDb = 3'900'100;  // beyond the PIDs this machine hands out (pid_max 4,194,304 is rare)
constexpr pid_t kMerge = kDb + 1;
constexpr pid_t kCompress = kDb + 2;

policy::Policy policyWith(const std::string& merge_class) {
  const std::string text =
      "daemon: {cgroup_prefix: cpuclass-fake, on_stop: restore}\n" +
      std::string(merge_class == "merging" ? "classes: {merging: {cpu_weight: 20}}\n" : "") +
      "workers:\n"
      "  - name: mydb\n"
      "    match: {comm: mydb}\n"
      "    default_class: foreground\n"
      "    threads:\n"
      "      - {comm: \"merge-.*\", class: " + merge_class + "}\n"
      "      - {comm: \"compress-.*\", class: offload}\n";
  auto loaded = policy::parsePolicy({{"test.yaml", text}});
  EXPECT_TRUE(loaded.policy.has_value()) << (loaded.diagnostics.empty() ? "" : loaded.diagnostics[0].str());
  return std::move(*loaded.policy);
}

// What a Manager on a fake host runs with: the host, its scheduler, a fake clock, a state dir.
class OnFakeHost {
 protected:
  explicit OnFakeHost(bool v2) : host_(v2), sched_(host_) { host_.addGroup("system.slice"); }
  std::unique_ptr<Manager> makeManager(const std::string& merge_class = "background") {
    return std::make_unique<Manager>(policyWith(merge_class), host_.classTree(), host_.procFs(),
                                     daemon::StateFile((state_.path() / "state").string()), log_, &sched_, &clock_);
  }

  static constexpr const char* kUnit = "system.slice/mydb.service";
  FakeHost host_;
  FakeScheduler sched_;
  decide::FakeClock clock_;
  TempDir state_;
  daemon::Logger log_{daemon::LogLevel::kError};
};

// One worker process, mydb, with a foreground main thread, a merger and an offload compressor,
// started in its systemd unit's cgroup (v2: delegated).
class ManagerOnFakes : public ::testing::TestWithParam<bool>, protected OnFakeHost {
 protected:
  ManagerOnFakes() : OnFakeHost(GetParam()) {
    host_.addGroup(kUnit, true);
    host_.spawn(kDb, kDb, "mydb", kUnit);
    host_.spawn(kDb, kMerge, "merge-1", kUnit);
    host_.spawn(kDb, kCompress, "compress-1", kUnit);
  }
  std::string base() const { return host_.v2() ? std::string(kUnit) + "/cpuclass" : "cpuclass-fake/mydb"; }
  const FakeHost::FakeThread& at(pid_t tid) const { return host_.thread(tid); }
};

// cgroup v2, the worker's unit not visibly delegated.
class ManagerOnFakesV2 : public ::testing::Test, protected OnFakeHost {
 protected:
  ManagerOnFakesV2() : OnFakeHost(true) {
    host_.addGroup(kUnit);
    host_.spawn(kDb, kDb, "mydb", kUnit);
  }
};

TEST_P(ManagerOnFakes, StartPlacesEveryThreadInItsClassGroup) {
  auto m = makeManager();
  m->start();
  host_.settle();
  EXPECT_EQ(at(kDb).group, base() + "/foreground");
  EXPECT_EQ(at(kMerge).group, base() + "/background");
  EXPECT_EQ(at(kCompress).group, base() + "/offload");
  EXPECT_EQ(at(kCompress).policy, SCHED_IDLE);
  EXPECT_EQ(host_.tree().get(base() + "/offload", "cpu.idle"), "1");
  if (host_.v2()) {
    // Threaded class groups inside the worker's own delegated cgroup, whose domain is ours.
    EXPECT_EQ(host_.tree().get(base() + "/background", "cgroup.type"), "threaded");
    EXPECT_EQ(host_.tree().get(kUnit, "cgroup.subtree_control"), "cpu");
  }
  EXPECT_EQ(m->managedThreads(), 3u);
  EXPECT_EQ(m->stats().placements, 3u);
  EXPECT_TRUE(m->stats().failures.empty());
  const auto why = m->explain(kMerge);
  ASSERT_TRUE(why) << why.error().message;
  EXPECT_EQ(why->cls, "background");
  m->stop();
}

TEST_P(ManagerOnFakes, ANewThreadIsPlacedFromItsForkEvent) {
  auto m = makeManager();
  m->start();
  host_.settle();
  host_.spawn(kDb, kDb + 3, "merge-2", base() + "/foreground");  // born in its creator's group
  const auto forked = static_cast<uint64_t>((clock_.now() - std::chrono::milliseconds(2)).count());
  m->handleEvents({{cgroups::ProcEvent::Kind::kFork, kDb + 3, kDb, kDb, forked, ""}}, false);
  host_.settle();
  EXPECT_EQ(at(kDb + 3).group, base() + "/background");
  // Fork to placement on the injected clock.
  EXPECT_EQ(m->stats().placement_latency_us, std::vector<uint32_t>{2000});
  m->stop();
}

TEST_P(ManagerOnFakes, DriftIsPutBack) {
  auto m = makeManager();
  m->start();
  host_.settle();
  host_.move(kMerge, kUnit);  // someone else moved it
  m->rescan(false);
  host_.settle();
  EXPECT_EQ(at(kMerge).group, base() + "/background");
  EXPECT_EQ(m->stats().drift_corrections, 1u);
  // A re-prioritised thread is found by the periodic rescan that reads every thread's stat.
  host_.setSched(kCompress, SCHED_OTHER, 0);
  for (int i = 0; i < 5; ++i) m->rescan(false);
  EXPECT_EQ(at(kCompress).policy, SCHED_IDLE);
  EXPECT_EQ(m->stats().drift_corrections, 2u);
  m->stop();
}

TEST_P(ManagerOnFakes, ReloadMovesThreadsToTheirNewClassAndRemovesGroupsOfClassesGone) {
  auto m = makeManager("merging");
  m->start();
  host_.settle();
  ASSERT_EQ(at(kMerge).group, base() + "/merging");
  EXPECT_EQ(host_.tree().get(base() + "/merging", host_.v2() ? "cpu.weight" : "cpu.shares"), host_.v2() ? "20" : "204");
  m->reload(policyWith("offload"));
  host_.settle();
  EXPECT_EQ(at(kMerge).group, base() + "/offload");
  EXPECT_EQ(at(kMerge).policy, SCHED_IDLE);
  EXPECT_FALSE(fs::exists(host_.tree().at(base() + "/merging")));
  EXPECT_TRUE(fs::exists(host_.tree().at(base() + "/foreground")));
  EXPECT_EQ(m->stats().reloads, 1u);
  m->stop();
}

TEST_P(ManagerOnFakes, ARestartAdoptsPlacedThreadsAndStillRestoresTheirOrigins) {
  {
    auto crashed = makeManager();  // no stop(): the state file is all that is left of it
    crashed->start();
    host_.settle();
  }
  auto m = makeManager();
  m->start();
  host_.settle();
  EXPECT_EQ(m->stats().placements, 0u);  // every thread in place already
  EXPECT_EQ(at(kCompress).group, base() + "/offload");
  m->stop();
  host_.settle();
  for (const pid_t tid : {kDb, kMerge, kCompress}) {
    EXPECT_EQ(at(tid).group, kUnit) << tid;
    EXPECT_EQ(at(tid).policy, SCHED_OTHER) << tid;
  }
}

TEST_P(ManagerOnFakes, StopRestoresEveryThreadAndRemovesItsGroups) {
  host_.setSched(kMerge, SCHED_BATCH, 5);  // an origin of its own
  auto m = makeManager();
  m->start();
  host_.settle();
  ASSERT_EQ(at(kMerge).policy, SCHED_OTHER);
  m->stop();
  host_.settle();
  for (const pid_t tid : {kDb, kMerge, kCompress}) EXPECT_EQ(at(tid).group, kUnit) << tid;
  EXPECT_EQ(at(kMerge).policy, SCHED_BATCH);
  EXPECT_EQ(at(kMerge).nice, 5);
  EXPECT_FALSE(fs::exists(host_.tree().at(base())));
  EXPECT_FALSE(fs::exists(state_.path() / "state"));
  if (host_.v2()) {
    EXPECT_EQ(host_.tree().get(kUnit, "cgroup.subtree_control"), "");
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, ManagerOnFakes, ::testing::Values(false, true),
                         [](const auto& layout) { return layout.param ? "V2Delegated" : "V1"; });

// cgroup v2 without delegation: the worker is left alone, nothing is written, and status says
// how to fix it.
TEST_F(ManagerOnFakesV2, AWorkerWithoutDelegationIsLeftAloneWithTheFix) {
  auto& host = host_;
  auto& sched = sched_;
  auto managed = makeManager();
  auto& m = *managed;
  m.start();
  ASSERT_EQ(m.leftAlone().size(), 1u);
  EXPECT_NE(m.leftAlone().at(kDb).reason.find("cpuclassctl delegate mydb.service"), std::string::npos)
      << m.leftAlone().at(kDb).reason;
  EXPECT_NE(m.status().find("left alone"), std::string::npos);
  EXPECT_EQ(m.managedThreads(), 0u);
  EXPECT_EQ(sched.calls, 0);
  EXPECT_FALSE(fs::exists(host.tree().at("system.slice/mydb.service/cpuclass")));
  // systemd says the unit delegates (the unit restarted with Delegate=yes; the daemon cannot
  // read trusted.delegate): a reload looks again. This systemd answers before it returns.
  m.setUnitDelegates([](pid_t, daemon::Placer::UnitAnswer done) { done(true); });
  m.reload(policyWith("background"));
  host.settle();
  EXPECT_TRUE(m.leftAlone().empty());
  EXPECT_EQ(host.thread(kDb).group, "system.slice/mydb.service/cpuclass/foreground");
  m.stop();
}

// systemd is asked asynchronously: a PID 1 that has not answered yet holds only the processes
// of the unit asked about, left alone meanwhile; the answer places them.
TEST_F(ManagerOnFakesV2, AskingSystemdWhetherAUnitDelegatesHoldsOnlyItsProcesses) {
  auto& host = host_;  // mydb.service is delegated, but the xattr is not visible
  host.addGroup("system.slice/mydb2.service", true);
  host.spawn(kDb + 10, kDb + 10, "mydb", "system.slice/mydb2.service");
  auto managed = makeManager();
  auto& m = *managed;
  std::vector<std::pair<pid_t, daemon::Placer::UnitAnswer>> asked;
  m.setUnitDelegates([&](pid_t pid, daemon::Placer::UnitAnswer done) { asked.emplace_back(pid, std::move(done)); });
  m.start();
  host.settle();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].first, kDb);
  ASSERT_EQ(m.leftAlone().size(), 1u);
  EXPECT_NE(m.leftAlone().at(kDb).reason.find("asking systemd"), std::string::npos) << m.leftAlone().at(kDb).reason;
  EXPECT_EQ(host.thread(kDb + 10).group, "system.slice/mydb2.service/cpuclass/foreground");
  m.rescan(false);  // no second question while the first is out
  EXPECT_EQ(asked.size(), 1u);
  asked[0].second(true);
  host.settle();
  EXPECT_TRUE(m.leftAlone().empty());
  EXPECT_EQ(host.thread(kDb).group, "system.slice/mydb.service/cpuclass/foreground");
  m.stop();
}

}  // namespace
}  // namespace cpuclass::testing
