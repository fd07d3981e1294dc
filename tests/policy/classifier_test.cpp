#include "policy/classifier.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "policy/policy_loader.h"
#include "tests/support/test_support.h"

namespace cpuclass::policy {
namespace {

Policy load(const std::string& name) {
  const auto path = std::filesystem::path(CPUCLASS_FIXTURES_DIR) / "policies" / "valid" / name;
  auto r = parsePolicy({{name, testing::readFile(path)}});
  EXPECT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
  return std::move(*r.policy);
}

std::string classOf(const Policy& p, const WorkerSpec* w, std::string_view comm) {
  return classifyThread(p, {.worker = w, .comm = comm}).class_name;
}

TEST(Classifier, DbspLikePipeline) {
  const auto p = load("dbsp.yaml");
  const auto* w = matchWorker(p, {.comm = "pipeline", .exe = "/usr/local/bin/pipeline-server"});
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(classOf(p, w, "dbsp-worker-0"), "foreground");
  EXPECT_EQ(classOf(p, w, "dbsp-worker-15"), "foreground");
  EXPECT_EQ(classOf(p, w, "merger-3"), "background");
  EXPECT_EQ(classOf(p, w, "compactor-12"), "background");
  EXPECT_EQ(classOf(p, w, "merger-x"), "foreground");  // whole-name match: falls to the default
  EXPECT_EQ(matchWorker(p, {.comm = "pipeline", .exe = "/opt/pipeline"}), nullptr);  // every criterion must hold
}

TEST(Classifier, PageserverLikeWithChildProcesses) {
  const auto p = load("pageserver.yaml");
  const ProcessFacts server{.comm = "pageserver", .exe = "/usr/bin/pageserver", .cmdline = "/usr/bin/pageserver -D /data",
                            .cgroup = "/system.slice/pageserver.service"};
  EXPECT_EQ(server.unit(), "pageserver.service");
  const auto* w = matchWorker(p, server);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(classOf(p, w, "compaction_loop"), "background");
  EXPECT_EQ(classOf(p, w, "gc_loop"), "background");
  EXPECT_EQ(classOf(p, w, "page_service"), "foreground");
  EXPECT_EQ(classOf(p, w, "tokio-runtime-w"), "foreground");
  const ProcessFacts redo{.comm = "postgres", .exe = "/usr/lib/postgresql/16/bin/postgres",
                          .cmdline = "postgres --wal-redo", .cgroup = "/system.slice/pageserver.service"};
  const auto d = classifyThread(p, {.worker = w, .comm = "postgres", .child_process = &redo});
  EXPECT_EQ(d.class_name, "background");
  EXPECT_EQ(d.reason, "process rule 1 of worker 'pageserver' at pageserver.yaml:18:9");
  EXPECT_EQ(p.findClass("background")->cpu_weight, 50u);
}

TEST(Classifier, RavendbLikeWithOffloadAndReasons) {
  const auto p = load("ravendb.yaml");
  const auto* w = matchWorker(p, {.comm = "Raven.Server"});
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(classOf(p, w, "Indexing of Use"), "background");  // truncated to 15 characters
  EXPECT_EQ(classOf(p, w, "Offload-7"), "offload");
  EXPECT_EQ(classOf(p, w, "Backup thread"), "bulk");
  EXPECT_EQ(classifyThread(p, {.worker = w, .comm = "Offload-7"}).reason,
            "thread rule 2 (comm 'Offload-[0-9]+') of worker 'ravendb' at ravendb.yaml:23:9");
  EXPECT_EQ(classifyThread(p, {.worker = w, .comm = "Kestrel"}),
            (Decision{"foreground", "default class of worker 'ravendb' at ravendb.yaml:19:20"}));
  EXPECT_EQ(p.findClass("offload")->boost->max_per_worker, 2u);
}

TEST(Classifier, WorkersOwnRequestWinsWhileItsClassExists) {
  const auto p = load("ravendb.yaml");
  const auto* w = &p.workers[0];
  EXPECT_EQ(classifyThread(p, {.worker = w, .comm = "Offload-1", .requested_class = "foreground"}),
            (Decision{"foreground", "requested by the worker"}));
  const auto void_request = classifyThread(p, {.worker = w, .comm = "Offload-1", .requested_class = "gone"});
  EXPECT_EQ(void_request.class_name, "offload");
  EXPECT_NE(void_request.reason.find("the worker's request for class 'gone' is void"), std::string::npos);
}

TEST(Classifier, FirstMatchingWorkerOwnsTheProcess) {
  auto r = parsePolicy({{"p.yaml", "workers:\n"
                                   "  - {name: a, match: {cgroup: '/system.slice/*'}}\n"
                                   "  - {name: b, match: {comm: 'db.*'}}\n"}});
  ASSERT_TRUE(r.policy);
  EXPECT_EQ(matchWorker(*r.policy, {.comm = "dbx", .cgroup = "/system.slice/x.service"})->name, "a");
  EXPECT_EQ(matchWorker(*r.policy, {.comm = "dbx", .cgroup = "/user.slice"})->name, "b");
  EXPECT_EQ(matchWorker(*r.policy, {.comm = "web", .cgroup = "/user.slice"}), nullptr);
}

}  // namespace
}  // namespace cpuclass::policy
