#include "policy/classifier.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "policy/policy_loader.h"
#include "tests/support/test_support.h"

namespace cpuclass::policy {
namespace {

Policy loadFile(const std::filesystem::path& path) {
  auto r = parsePolicy({{path.filename().string(), testing::readFile(path)}});
  EXPECT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
  return std::move(*r.policy);
}
Policy load(const std::string& name) {
  return loadFile(std::filesystem::path(CPUCLASS_FIXTURES_DIR) / "policies" / "valid" / name);
}
// The shipped presets, against names captured from the real engines on Debian 12 (PostgreSQL
// 15.18, Redis 7.0.15, RocksDB 7.8.3's db_bench, OpenJDK 17.0.15). The engine tier checks the
// same against running engines.
Policy preset(const std::string& name) {
  return loadFile(std::filesystem::path(CPUCLASS_SOURCE_DIR) / "packaging" / "presets" / name);
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

std::string childClass(const Policy& p, const WorkerSpec* w, const std::string& comm, const std::string& title) {
  const ProcessFacts child{.comm = comm, .exe = "/usr/lib/postgresql/15/bin/postgres", .cmdline = title};
  return classifyThread(p, {.worker = w, .comm = comm, .child_process = &child}).class_name;
}

TEST(Presets, PostgresqlByProcessTitle) {
  const auto p = preset("postgresql.yaml");
  const auto* w = matchWorker(p, {.comm = "postgres", .exe = "/usr/lib/postgresql/15/bin/postgres",
                                  .cmdline = "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main"});
  ASSERT_NE(w, nullptr);
  for (const char* title : {"postgres: checkpointer ", "postgres: background writer ", "postgres: walwriter ",
                            "postgres: autovacuum launcher ", "postgres: autovacuum worker postgres",
                            "postgres: logical replication launcher ", "postgres: main: archiver last was 0001",
                            "postgres: walsender repl 10.0.0.2(5432) streaming 0/3000148"}) {
    EXPECT_EQ(childClass(p, w, "postgres", title), "background") << title;
  }
  EXPECT_EQ(childClass(p, w, "postgres", "postgres: alice shop [local] SELECT"), "foreground");
  EXPECT_EQ(childClass(p, w, "postgres", "postgres: alice shop [local] idle"), "foreground");
  EXPECT_EQ(childClass(p, w, "postgres", "postgres: parallel worker for PID 8430 "), "foreground");
  EXPECT_EQ(childClass(p, w, "postgres", "postgres: backup_offload shop [local] COPY"), "offload");
  EXPECT_EQ(childClass(p, w, "postgres", "postgres: etl_background shop [local] CREATE INDEX"), "background");
  EXPECT_EQ(childClass(p, w, "zstd", "zstd -q -o /archive/000000010000000000000003.zst"), "offload");
  // The postmaster itself is the worker's process, not a child.
  EXPECT_EQ(classOf(p, w, "postgres"), "foreground");
}

TEST(Presets, RedisJvmRocksdbByThreadName) {
  const auto redis = preset("redis.yaml");
  const auto* r = matchWorker(redis, {.comm = "redis-server", .exe = "/usr/bin/redis-check-rdb"});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(classOf(redis, r, "redis-server"), "foreground");
  EXPECT_EQ(classOf(redis, r, "io_thd_1"), "foreground");
  for (const char* t : {"bio_close_file", "bio_aof_fsync", "bio_lazy_free", "jemalloc_bg_thd"}) {
    EXPECT_EQ(classOf(redis, r, t), "background") << t;
  }
  const ProcessFacts bgsave{.comm = "redis-server", .cmdline = "redis-rdb-bgsave unixsocket:/run/redis/redis.sock"};
  EXPECT_EQ(classifyThread(redis, {.worker = r, .comm = "redis-server", .child_process = &bgsave}).class_name,
            "background");

  const auto jvm = preset("jvm.yaml");
  const auto* j = matchWorker(jvm, {.comm = "java", .exe = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"});
  ASSERT_NE(j, nullptr);
  for (const char* t : {"GC Thread#0", "VM Thread", "request-1", "java", "Finalizer"}) {
    EXPECT_EQ(classOf(jvm, j, t), "foreground") << t;
  }
  for (const char* t : {"C1 CompilerThre", "C2 CompilerThre", "G1 Conc#0", "G1 Main Marker", "G1 Refine#0", "G1 Service"}) {
    EXPECT_EQ(classOf(jvm, j, t), "background") << t;
  }

  const auto rocks = preset("rocksdb.yaml");
  const auto* k = matchWorker(rocks, {.comm = "db_bench", .exe = "/usr/bin/db_bench"});
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(classOf(rocks, k, "db_bench"), "foreground");
  EXPECT_EQ(classOf(rocks, k, "rocksdb:high"), "rocksdb-flush");
  EXPECT_EQ(classOf(rocks, k, "rocksdb:low"), "background");
  EXPECT_EQ(classOf(rocks, k, "rocksdb:low12"), "background");
  EXPECT_EQ(classOf(rocks, k, "rocksdb:bottom0"), "offload");
}

TEST(Classifier, CmdlineMatchesTheProgramNotItsWrapper) {
  auto r = parsePolicy({{"p.yaml", "workers:\n  - {name: db, match: {cmdline: '.*mydb --data .*'}}\n"}});
  ASSERT_TRUE(r.policy);
  const std::string cmd = "/usr/bin/mydb --data /srv/db";
  EXPECT_NE(matchWorker(*r.policy, {.comm = "mydb", .exe = "/usr/bin/mydb", .cmdline = cmd}), nullptr);
  for (const char* wrapper : {"/usr/bin/dash", "/usr/bin/bash", "/usr/bin/env", "/usr/bin/taskset", "/usr/bin/numactl",
                              "/usr/sbin/runuser", "/usr/bin/nohup"}) {
    EXPECT_EQ(matchWorker(*r.policy, {.comm = "sh", .exe = wrapper, .cmdline = "sh -c " + cmd}), nullptr) << wrapper;
  }
  // A wrapper is never watched for a title it could take: it execs or forks the program instead.
  EXPECT_FALSE(silentFactsToWatch(*r.policy, {.comm = "sh", .exe = "/usr/bin/dash", .cmdline = "sh"}).any());
}

TEST(Classifier, SilentFactsAreWatchedOnlyWhereAWorkerCouldStillMatch) {
  auto r = parsePolicy({{"p.yaml", "workers:\n"
                                   "  - {name: pg, match: {comm: postgres, cmdline: 'postgres: main.*'}}\n"
                                   "  - name: unit\n"
                                   "    match: {exe: /usr/bin/db, unit: db.service}\n"
                                   "    processes: [{cmdline: 'worker .*', class: background}]\n"}});
  ASSERT_TRUE(r.policy);
  const auto& p = *r.policy;
  const auto pg = silentFactsToWatch(p, {.comm = "postgres", .exe = "/usr/bin/postgres"});
  EXPECT_TRUE(pg.cmdline);
  EXPECT_FALSE(pg.cgroup);
  const auto db = silentFactsToWatch(p, {.comm = "db", .exe = "/usr/bin/db"});
  EXPECT_FALSE(db.cmdline);
  EXPECT_TRUE(db.cgroup);
  EXPECT_FALSE(silentFactsToWatch(p, {.comm = "sleep", .exe = "/usr/bin/sleep"}).any());  // the common case: nothing
  EXPECT_FALSE(processRulesReadCmdline(p.workers[0]));
  EXPECT_TRUE(processRulesReadCmdline(p.workers[1]));
  // A process rule's criteria must all hold.
  const ProcessFacts child{.comm = "db", .exe = "/usr/bin/db", .cmdline = "worker 3"};
  EXPECT_EQ(classifyThread(p, {.worker = &p.workers[1], .comm = "db", .child_process = &child}).class_name, "background");
}

}  // namespace
}  // namespace cpuclass::policy
