// The kernel layer against temporary trees shaped like cgroupfs and /proc (tier fake_kernel).
#include <gtest/gtest.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstring>

#include "cgroups/class_tree.h"
#include "cgroups/proc_fs.h"
#include "tests/fakes/fake_cgroup_tree.h"

namespace cpuclass::cgroups {
namespace {

using testing::FakeCgroupTree;
using testing::FakeProc;

Hierarchy open(const FakeCgroupTree& t, CgroupVersion v) {
  auto dir = Dir::open(t.root().string());
  EXPECT_TRUE(dir);
  return Hierarchy(std::move(*dir), v);
}

TEST(Dir, MakeDirsAdoptsAndRemoveIsIdempotent) {
  testing::TempDir tmp;
  auto dir = Dir::open(tmp.path().string());
  ASSERT_TRUE(dir);
  EXPECT_EQ(dir->makeDirs("a/b/c"), true);
  EXPECT_EQ(dir->makeDirs("a/b/c"), false);
  EXPECT_EQ(*dir->subdirs("a"), std::vector<std::string>{"b"});
  ASSERT_TRUE(dir->removeDir("a/b/c"));
  ASSERT_TRUE(dir->removeDir("a/b/c"));
  EXPECT_FALSE(dir->exists("a/b/c"));
  const auto missing = dir->read("nope");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(isGone(missing.error()));
  EXPECT_NE(missing.error().message.find(tmp.path().string() + "/nope"), std::string::npos);
}

TEST(HierarchyV1, WeightBecomesShares) {
  FakeCgroupTree t(false);
  t.addGroup("p/w/fg");
  const auto h = open(t, CgroupVersion::kV1);
  ASSERT_TRUE(h.applyCpuSettings("p/w/fg", {1000, false}));
  EXPECT_EQ(t.get("p/w/fg", "cpu.shares"), "10240");
  EXPECT_EQ(t.get("p/w/fg", "cpu.idle"), "0\n");  // untouched: it was already 0
  EXPECT_EQ(*h.readCpuSettings("p/w/fg"), (CpuSettings{1000, false}));
}

TEST(HierarchyV1, IdleIsWrittenAndClearedBeforeShares) {
  FakeCgroupTree t(false);
  t.addGroup("g");
  const auto h = open(t, CgroupVersion::kV1);
  ASSERT_TRUE(h.applyCpuSettings("g", {100, true}));
  EXPECT_EQ(t.get("g", "cpu.idle"), "1");
  EXPECT_EQ(t.get("g", "cpu.shares"), "1024\n");  // not written while idle (the kernel refuses)
  ASSERT_TRUE(h.applyCpuSettings("g", {200, false}));
  EXPECT_EQ(t.get("g", "cpu.idle"), "0");
  EXPECT_EQ(t.get("g", "cpu.shares"), "2048");
}

TEST(HierarchyV1, IdleWithoutKernelSupportIsAClearError) {
  FakeCgroupTree t(false);
  t.addGroup("g");
  std::filesystem::remove(t.root() / "g" / "cpu.idle");
  const auto r = open(t, CgroupVersion::kV1).applyCpuSettings("g", {100, true});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ENOTSUP);
  EXPECT_NE(r.error().message.find("cpu.idle needs Linux 5.15"), std::string::npos);
}

TEST(HierarchyV1, BatchWritesOneTidPerWriteToTasks) {
  FakeCgroupTree t(false);
  t.addGroup("g");
  const std::vector<pid_t> tids{11, 12, 13};
  const auto items = open(t, CgroupVersion::kV1).moveThreads("g", tids);
  ASSERT_TRUE(items);
  ASSERT_EQ(items->size(), 3u);
  for (const auto& i : *items) EXPECT_EQ(i.result, Outcome::kDone);
  EXPECT_EQ(t.get("g", "tasks"), "11\n12\n13\n");
  EXPECT_EQ(t.get("g", "cgroup.procs"), "");
}

TEST(HierarchyV2, EnsureClassMakesThreadedGroupsUnderADelegatedWorker) {
  FakeCgroupTree t(true);
  t.addGroup("system.slice/db.service");
  t.addGroup("system.slice/db.service/cpuclass");
  t.addGroup("system.slice/db.service/cpuclass/fg");
  auto dir = Dir::open(t.root().string());
  ClassTree tree(Hierarchy(std::move(*dir), CgroupVersion::kV2), std::nullopt);
  ASSERT_TRUE(tree.ensureClass("system.slice/db.service/cpuclass", "fg", {500, false}));
  EXPECT_EQ(t.get("system.slice/db.service", "cgroup.subtree_control"), "+cpu");
  EXPECT_EQ(t.get("system.slice/db.service/cpuclass", "cgroup.subtree_control"), "+cpu");
  EXPECT_EQ(t.get("system.slice/db.service/cpuclass/fg", "cgroup.type"), "threaded");
  EXPECT_EQ(t.get("system.slice/db.service/cpuclass/fg", "cpu.weight"), "500");
  // The domain base is never made threaded: it holds the worker's processes.
  EXPECT_EQ(t.get("system.slice/db.service/cpuclass", "cgroup.type"), "domain\n");
}

TEST(ClassTreeV2, DelegationPointIsAboveOurDomain) {
  EXPECT_EQ(ClassTree::delegationPointOf("/system.slice/db.service"), "system.slice/db.service");
  EXPECT_EQ(ClassTree::delegationPointOf("/system.slice/db.service/cpuclass"), "system.slice/db.service");
  EXPECT_EQ(ClassTree::delegationPointOf("/system.slice/db.service/cpuclass/offload"), "system.slice/db.service");
  // Only a whole path component is ours.
  EXPECT_EQ(ClassTree::delegationPointOf("/cpuclass.slice/run-1.service"), "cpuclass.slice/run-1.service");
  EXPECT_EQ(ClassTree::delegationPointOf("/a/cpuclassx/b"), "a/cpuclassx/b");
  EXPECT_EQ(ClassTree::v2Base("system.slice/db.service"), "system.slice/db.service/cpuclass");
}

TEST(HierarchyV2, DelegationIsTheXattrSystemdSets) {
  FakeCgroupTree t(true);
  t.addGroup("system.slice/db.service");
  t.addGroup("system.slice/plain.service");
  // systemd sets trusted.delegate (root's units) or user.delegate (user managers); the user
  // namespace is the one a test can set without privileges.
  ASSERT_EQ(::setxattr(t.at("system.slice/db.service").c_str(), "user.delegate", "1", 1, 0), 0) << std::strerror(errno);
  const auto h = open(t, CgroupVersion::kV2);
  EXPECT_EQ(h.isDelegated("system.slice/db.service"), true);
  EXPECT_EQ(h.isDelegated("system.slice/plain.service"), false);
  EXPECT_FALSE(h.isDelegated("system.slice/missing.service"));
  EXPECT_EQ(open(t, CgroupVersion::kV1).isDelegated("system.slice/plain.service"), true);
}

// Kubernetes on cgroup v2, as the kubelet's two drivers lay containers out: under the systemd
// driver the runtime creates the container's scope with Delegate=yes (systemd marks it with the
// xattr), and the classes go inside it; under cgroupfs nothing is delegated and the worker is
// left alone (docs/kubernetes.md).
TEST(ClassTreeV2, KubernetesContainersAreDelegatedUnderTheSystemdDriverOnly) {
  const std::string id(64, 'a');
  const std::string systemd_pod = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d9ba2a4_5b8e_4c2e_9f1e_2a7c3e4b5d6f.slice";
  const std::string systemd_scope = systemd_pod + "/cri-containerd-" + id + ".scope";
  const std::string cgroupfs_container = "kubepods/burstable/pod0d9ba2a4-5b8e-4c2e-9f1e-2a7c3e4b5d6f/" + id;
  FakeCgroupTree t(true);
  t.addGroup(systemd_scope);
  t.addGroup(cgroupfs_container);
  ASSERT_EQ(::setxattr(t.at(systemd_scope).c_str(), "user.delegate", "1", 1, 0), 0) << std::strerror(errno);
  const auto h = open(t, CgroupVersion::kV2);
  // A container's process, and one of its threads the daemon already placed: the same point.
  EXPECT_EQ(ClassTree::delegationPointOf("/" + systemd_scope), systemd_scope);
  EXPECT_EQ(ClassTree::delegationPointOf("/" + systemd_scope + "/cpuclass/background"), systemd_scope);
  EXPECT_EQ(h.isDelegated(systemd_scope), true);
  EXPECT_EQ(h.isDelegated(ClassTree::delegationPointOf("/" + cgroupfs_container)), false);
  EXPECT_EQ(h.isDelegated(systemd_pod), false);  // the pod's slice is the kubelet's
}

TEST(ClassTreeV2, EnterBaseMovesEveryProcessBeforeEnablingCpu) {
  FakeCgroupTree t(true);
  t.addGroup("s/db.service");
  t.addGroup("s/db.service/cpuclass");  // the fake's stand-in for the kernel's files on mkdir
  t.set("s/db.service", "cgroup.procs", "10\n11\n");
  auto dir = Dir::open(t.root().string());
  ClassTree tree(Hierarchy(std::move(*dir), CgroupVersion::kV2), std::nullopt);
  ASSERT_TRUE(tree.enterBase("s/db.service/cpuclass"));
  // The fake keeps the last write of each file: both PIDs went, one write each, then +cpu.
  EXPECT_EQ(t.get("s/db.service/cpuclass", "cgroup.procs"), "11");
  EXPECT_EQ(t.get("s/db.service", "cgroup.subtree_control"), "+cpu");
}

TEST(HierarchyV2, AlreadyEnabledAndThreadedAreLeftAlone) {
  FakeCgroupTree t(true);
  t.addGroup("w");
  t.set("w", "cgroup.subtree_control", "cpu memory\n");
  t.set("w", "cgroup.type", "threaded\n");
  const auto h = open(t, CgroupVersion::kV2);
  ASSERT_TRUE(h.enableController("w", "cpu"));
  ASSERT_TRUE(h.makeThreaded("w"));
  EXPECT_EQ(t.get("w", "cgroup.subtree_control"), "cpu memory\n");
  EXPECT_EQ(t.get("w", "cgroup.type"), "threaded\n");
}

TEST(HierarchyV2, IdleClassAndThreadMovesUseCgroupThreads) {
  FakeCgroupTree t(true);
  t.addGroup("w/offload");
  const auto h = open(t, CgroupVersion::kV2);
  ASSERT_TRUE(h.applyCpuSettings("w/offload", {100, true}));
  EXPECT_EQ(t.get("w/offload", "cpu.idle"), "1");
  ASSERT_TRUE(h.moveThread("w/offload", 77));
  EXPECT_EQ(t.get("w/offload", "cgroup.threads"), "77\n");
  EXPECT_EQ(t.get("w/offload", "cgroup.procs"), "");
  EXPECT_FALSE(h.applyCpuSettings("w/offload", {0, false}));
}

TEST(HierarchySettings, CpuQuotaIsWrittenReadAndLiftedByApplyingSettings) {
  using std::chrono::microseconds;
  FakeCgroupTree v1(false), v2(true);
  for (auto* t : {&v1, &v2}) t->addGroup("w/offload");
  const auto h1 = open(v1, CgroupVersion::kV1), h2 = open(v2, CgroupVersion::kV2);
  v1.set("w/offload", "cpu.cfs_period_us", "250000\n");
  ASSERT_TRUE(h1.setCpuQuota("w/offload", microseconds(1000)));
  ASSERT_TRUE(h2.setCpuQuota("w/offload", microseconds(1000)));
  EXPECT_EQ(v1.get("w/offload", "cpu.cfs_quota_us"), "1000");
  EXPECT_EQ(v1.get("w/offload", "cpu.cfs_period_us"), "100000");
  EXPECT_EQ(v2.get("w/offload", "cpu.max"), "1000 100000");
  for (const auto* h : {&h1, &h2}) {
    EXPECT_EQ(*h->cpuQuota("w/offload"), std::optional(microseconds(1000)));
    // A group configured again (daemon restart, reload) starts without a cap.
    ASSERT_TRUE(h->applyCpuSettings("w/offload", {100, true}));
    EXPECT_EQ(*h->cpuQuota("w/offload"), std::nullopt);
  }
  EXPECT_EQ(v1.get("w/offload", "cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(v2.get("w/offload", "cpu.max"), "max 100000");
  std::filesystem::remove(v1.at("w/offload") / "cpu.cfs_quota_us");  // no CONFIG_CFS_BANDWIDTH
  EXPECT_EQ(h1.setCpuQuota("w/offload", microseconds(1000)).error().code, ENOTSUP);
  EXPECT_TRUE(h1.applyCpuSettings("w/offload", {100, true}));
}

TEST(HierarchyUsage, FromCpuStatAndCpuacct) {
  FakeCgroupTree v2(true);
  v2.addGroup("g");
  v2.set("g", "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
  EXPECT_EQ(*open(v2, CgroupVersion::kV2).cpuUsage("g"), std::chrono::microseconds(1500));
  FakeCgroupTree v1(false);
  v1.addGroup("g");
  v1.set("g", "cpuacct.usage", "123456789\n");
  EXPECT_EQ(*open(v1, CgroupVersion::kV1).cpuUsage("g"), std::chrono::nanoseconds(123456789));
}

TEST(HierarchyUsage, PressureFromCpuPressure) {
  FakeCgroupTree v2(true);
  v2.addGroup("g");
  v2.set("g", "cpu.pressure", "some avg10=1.00 avg60=0.50 avg300=0.10 total=4321\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n");
  EXPECT_EQ(*open(v2, CgroupVersion::kV2).cpuPressure("g"), std::chrono::microseconds(4321));
  FakeCgroupTree v1(false);
  v1.addGroup("g");
  EXPECT_EQ(open(v1, CgroupVersion::kV1).cpuPressure("g").error().code, ENOTSUP);
}

TEST(ClassTreeMirror, PlacesInControlAndThreadedMirrorAndRestores) {
  FakeCgroupTree cpu(false), unified(true);
  for (const auto* g : {"pfx", "pfx/w", "pfx/w/bg"}) {
    cpu.addGroup(g);
    unified.addGroup(g);
  }
  ClassTree tree(open(cpu, CgroupVersion::kV1), open(unified, CgroupVersion::kV2));
  const auto ensured = tree.ensureClass("pfx/w", "bg", {50, false});
  ASSERT_TRUE(ensured) << ensured.error().message;
  EXPECT_EQ(cpu.get("pfx/w/bg", "cpu.shares"), "512");
  for (const auto* g : {"pfx", "pfx/w", "pfx/w/bg"}) EXPECT_EQ(unified.get(g, "cgroup.type"), "threaded") << g;
  const std::vector<pid_t> tids{5, 6};
  const auto placed = tree.place("pfx/w", "bg", tids);
  ASSERT_TRUE(placed);
  EXPECT_EQ(placed->accounting_failures, 0u);
  EXPECT_EQ(cpu.get("pfx/w/bg", "tasks"), "5\n6\n");
  EXPECT_EQ(unified.get("pfx/w/bg", "cgroup.threads"), "5\n6\n");

  const auto original = parseProcCgroup("2:cpuacct:/\n1:cpu:/orig\n0::/\n");
  cpu.addGroup("orig");
  ASSERT_EQ(tree.restore(5, *original), Outcome::kDone);
  EXPECT_EQ(cpu.get("orig", "tasks"), "5\n");
  EXPECT_EQ(unified.get("", "cgroup.threads"), "5\n");
  EXPECT_EQ(tree.controlGroupOf(*original), "orig");
}

TEST(ProcFsFake, ListsThreadsAndReadsFacts) {
  FakeProc proc;
  proc.addThread(100, 100, "mydb", "1:cpu:/\n0::/\n");
  proc.addThread(100, 101, "bg merge 1", "1:cpu:/x\n0::/\n", kSchedIdle, 7, 4242);
  auto dir = Dir::open(proc.root().string());
  ProcFs fs(std::move(*dir));
  EXPECT_EQ(*fs.processes(), std::vector<pid_t>{100});
  EXPECT_EQ(*fs.threads(100), (std::vector<pid_t>{100, 101}));
  const auto f = fs.thread(100, 101, true);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->comm, "bg merge 1");
  EXPECT_EQ(f->policy, kSchedIdle);
  EXPECT_EQ(f->nice, 7);
  EXPECT_EQ(f->start_time, 4242u);
  EXPECT_EQ(f->runtime_ns, 5000u);
  EXPECT_EQ(cgroupPathOf(f->cgroups, "cpu"), "/x");
  EXPECT_EQ(*fs.cmdline(100), "/usr/bin/mydb --flag");
  const auto gone = fs.thread(100, 999);
  ASSERT_FALSE(gone);
  EXPECT_TRUE(isGone(gone.error()));
  EXPECT_TRUE(isGone(fs.threads(555).error()));
}

}  // namespace
}  // namespace cpuclass::cgroups
