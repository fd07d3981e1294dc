// The shipped presets against the real engines (tier `engine`): PostgreSQL, Redis, RocksDB's
// db_bench, a JVM and MariaDB from Debian's archive, started here on unix sockets with throwaway
// data directories, under a little real load, with the real daemon. What is checked is what a
// user would check: every thread of the engine, including processes and threads that appear
// later, is in the cgroup and scheduling of the class the preset gives it, read from /proc.
// The expected classes are written here from the engines' real names, apart from the presets.
// An engine that is not installed is skipped with the package to install.
#include <sys/stat.h>

#include <cstdlib>

#include "cgroups/sched.h"
#include "tests/daemon/daemon_fixture.h"

namespace cpuclass {
namespace {

// Runs a shell command; its output goes to the test's log.
int sh(const std::string& command) { return std::system(command.c_str()); }  // NOLINT(cert-env33-c)

// A shell command run to its end beside the test, joined when it goes out of scope: load that
// ends by itself (a bounded loop, a statement timeout), so nothing outlives the test.
class Background {
 public:
  explicit Background(std::string command) : thread_([c = std::move(command)] { sh(c); }) {}
  ~Background() { thread_.join(); }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

 private:
  std::thread thread_;
};

struct Seen {
  pid_t pid = 0;
  pid_t tid = 0;
  std::string comm;   // the thread's
  std::string title;  // the process's command line now
  std::string group;  // control hierarchy
  int policy = -1;
};

class EngineTest : public DaemonTest {
 protected:
  // A thread must be in its class this long after it is first seen: one rescan interval (500 ms)
  // for what only the rescan can see (a title), and 1 s more for a busy machine.
  static constexpr auto kGrace = 1500ms;

  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped()) return;
    ::chmod(dir_.path().c_str(), 0755);  // engines run as their own users
    data_ = dir_.path() / "engine";
    fs::create_directories(data_);
  }

  void TearDown() override {
    for (auto it = stops_.rbegin(); it != stops_.rend(); ++it) (*it)();
    DaemonTest::TearDown();
  }

  static std::string missing(std::initializer_list<const char*> binaries, const std::string& package) {
    for (const char* b : binaries) {
      if (!fs::exists(b)) return std::string(b) + " is not installed (apt-get install " + package + ")";
    }
    return "";
  }

  // The daemon's policy: the test's settings, and the preset as shipped, its worker narrowed to
  // this test's engine (a criterion on the data path) so that no other instance on the host is
  // touched.
  void usePreset(const std::string& name) {
    std::ofstream(dir_.path() / "policy.yaml")
        << "daemon: {cgroup_prefix: " << prefix_
        << ", rescan_interval: 500ms, log_level: info, metrics_listen: '127.0.0.1:0'}\n";
    std::string text = testing::readFile(fs::path(CPUCLASS_SOURCE_DIR) / "packaging" / "presets" / name);
    const std::string narrow = "    match:\n      cmdline: '.*" + data_.string() + ".*'\n";
    for (size_t at = text.find("    match:\n"); at != std::string::npos; at = text.find("    match:\n", at + narrow.size())) {
      text.replace(at, std::string("    match:\n").size(), narrow);
    }
    fs::create_directories(dir_.path() / "policy.d");
    std::ofstream(dir_.path() / "policy.d" / name) << text;
  }

  // Every thread of `root` and its descendants, now.
  std::vector<Seen> snapshot(pid_t root) const {
    std::map<pid_t, pid_t> parent;
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string n = e.path().filename();
      if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
      const pid_t pid = std::stoi(n);
      if (const auto st = proc_->stat(pid, pid)) parent[pid] = st->ppid;
    }
    std::vector<Seen> out;
    for (const auto& [pid, ppid] : parent) {
      bool ours = false;
      for (pid_t p = pid; p > 1 && !ours; p = parent.contains(p) ? parent[p] : 0) ours = p == root;
      if (!ours) continue;
      const std::string title = proc_->cmdline(pid).value_or("");
      for (const pid_t tid : proc_->threads(pid).value_or(std::vector<pid_t>{})) {
        const auto f = proc_->thread(pid, tid);
        if (!f) continue;
        out.push_back({pid, tid, f->comm, title, cgroups::cgroupPathOf(f->cgroups, "cpu").value_or("?"), f->policy});
      }
    }
    return out;
  }

  // Watches `root`'s tree for `duration` while the test's load runs: every thread must be in the
  // class `expect` gives it (empty: not checked) within kGrace of being first seen, and stay
  // there. Returns the threads found in their class, each as first found there.
  std::vector<Seen> watch(pid_t root, const std::string& worker, std::chrono::milliseconds duration,
                          const std::function<std::string(const Seen&)>& expect) {
    std::map<pid_t, std::chrono::steady_clock::time_point> first_seen;
    std::map<pid_t, Seen> checked;
    std::map<std::string, int> by_class;
    std::map<pid_t, std::string> failures;
    const auto end = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < end) {
      const auto now = std::chrono::steady_clock::now();
      for (const auto& s : snapshot(root)) {
        const std::string cls = expect(s);
        if (cls.empty()) continue;
        const auto [it, fresh] = first_seen.emplace(s.tid, now);
        if (now - it->second < kGrace) continue;
        const std::string want = "/" + prefix_ + "/" + worker + "/" + cls;
        const int want_policy = cls == "offload" ? cgroups::kSchedIdle : 0;
        // An offload thread that starves while runnable is boosted for a bounded time: a state
        // of its class, not a misplacement.
        const bool boosted = cls == "offload" && s.group == "/" + prefix_ + "/" + worker + "/_boost";
        if (!boosted && (s.group != want || s.policy != want_policy)) {
          failures.emplace(s.tid, "tid " + std::to_string(s.tid) + " '" + s.comm + "' of pid " + std::to_string(s.pid) +
                                      " ('" + s.title + "') is in " + s.group + " with policy " +
                                      std::to_string(s.policy) + ", wants " + want);
        } else if (checked.emplace(s.tid, s).second) {
          ++by_class[cls];
        }
      }
      std::this_thread::sleep_for(100ms);
    }
    for (const auto& [tid, what] : failures) ADD_FAILURE() << what;
    std::string summary;
    for (const auto& [cls, n] : by_class) summary += " " + cls + "=" + std::to_string(n);
    std::printf("threads checked in their class:%s\n", summary.c_str());
    std::vector<Seen> out;
    for (auto& [tid, seen] : checked) out.push_back(std::move(seen));
    return out;
  }
  static size_t count(const std::vector<Seen>& seen, const std::function<bool(const Seen&)>& pred) {
    return static_cast<size_t>(std::count_if(seen.begin(), seen.end(), pred));
  }
  // A predicate: the thread's name matches the regex.
  static std::function<bool(const Seen&)> named(const std::string& re) {
    return [r = std::regex(re)](const Seen& s) { return std::regex_match(s.comm, r); };
  }

  fs::path data_;
  std::vector<std::function<void()>> stops_;  // run at TearDown, last first, also on failure
};

TEST_F(EngineTest, PostgresqlProcessesLandInThePresetsClasses) {
  const std::string bin = "/usr/lib/postgresql/15/bin/";
  if (const auto why = missing({"/usr/lib/postgresql/15/bin/postgres", "/usr/lib/postgresql/15/bin/pgbench"},
                               "postgresql postgresql-contrib");
      !why.empty()) {
    GTEST_SKIP() << why;
  }
  const std::string pgdata = (data_ / "data").string(), sock = data_.string();
  const std::string as_pg = "runuser -u postgres -- ";
  ASSERT_EQ(sh("chown postgres " + data_.string()), 0);
  ASSERT_EQ(sh(as_pg + bin + "initdb -D " + pgdata + " -A trust >" + data_.string() + "/initdb.log 2>&1"), 0);
  // Autovacuum that starts at once and works slowly, so that its workers live long enough to be
  // seen; no TCP.
  const std::string opts = "-c listen_addresses= -k " + sock +
                           " -c autovacuum_naptime=1 -c autovacuum_vacuum_cost_delay=10 -c autovacuum_vacuum_cost_limit=20"
                           " -c autovacuum_vacuum_threshold=50 -c autovacuum_vacuum_scale_factor=0";
  ASSERT_EQ(sh(as_pg + bin + "pg_ctl -D " + pgdata + " -o '" + opts + "' -l " + data_.string() + "/server.log -w start >/dev/null"), 0);
  stops_.push_back([=] { sh(as_pg + bin + "pg_ctl -D " + pgdata + " -m immediate stop >/dev/null 2>&1"); });
  const pid_t postmaster = std::stoi(testing::readFile(pgdata + "/postmaster.pid"));
  const std::string psql = as_pg + "psql -X -q -h " + sock + " postgres ";
  ASSERT_EQ(sh(as_pg + bin + "pgbench -h " + sock + " -i -s 2 -q postgres >/dev/null 2>&1"), 0);

  usePreset("postgresql.yaml");
  startDaemon();
  // Load: select-only clients, updates that wake autovacuum, a long parallel query.
  const std::string quiet = " >>" + data_.string() + "/load.log 2>&1";
  Background bench(as_pg + bin + "pgbench -h " + sock + " -S -c 2 -T 8 postgres" + quiet);
  Background updates(psql + "-c 'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 40000'" + quiet);
  Background parallel(psql + "-c 'SET statement_timeout = 8000; SET max_parallel_workers_per_gather = 2; "
                             "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; "
                             "SELECT sum(length(md5(aid::text || g::text))) FROM pgbench_accounts, generate_series(1, 30) g'" +
                      quiet);
  const auto seen = watch(postmaster, "postgresql", 8s, [&](const Seen& s) -> std::string {
    static const std::regex kBackground(
        "postgres: (checkpointer|background writer|walwriter|autovacuum (launcher|worker)|logical replication launcher).*");
    if (s.pid == postmaster) return "foreground";
    if (std::regex_match(s.title, kBackground)) return "background";
    if (s.title.starts_with("postgres: postgres postgres [local]") || s.title.starts_with("postgres: parallel worker")) {
      return "foreground";
    }
    return "";
  });
  const auto titled = [](const std::string& prefix) { return [prefix](const Seen& s) { return s.title.starts_with(prefix); }; };
  for (const char* title : {"postgres: checkpointer", "postgres: background writer", "postgres: walwriter",
                            "postgres: autovacuum launcher", "postgres: postgres postgres [local]"}) {
    EXPECT_GE(count(seen, titled(title)), 1u) << title;
  }
  // Processes that appear later, and retitle themselves after their fork.
  EXPECT_GE(count(seen, titled("postgres: autovacuum worker")), 1u) << "no autovacuum worker lived long enough to check";
  EXPECT_GE(count(seen, titled("postgres: parallel worker")), 1u) << "no parallel worker lived long enough to check";

  // A new backend is in its class once it has retitled itself (within milliseconds of its fork),
  // not a rescan later: a backup's COPY must not run as foreground meanwhile.
  ASSERT_EQ(sh(psql + "-c 'CREATE ROLE backup_offload SUPERUSER LOGIN'"), 0);
  Background backup(as_pg + "psql -X -q -h " + sock + " -U backup_offload -c 'SELECT pg_sleep(2)' postgres" + quiet);
  pid_t backend = 0;
  ASSERT_TRUE(waitUntil([&] {
    for (const auto& s : snapshot(postmaster)) {
      if (s.title.starts_with("postgres: backup_offload")) backend = s.pid;
    }
    return backend != 0;
  }, 5s));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string offload = "/" + prefix_ + "/postgresql/offload";
  ASSERT_TRUE(waitUntil([&] { return proc_->thread(backend, backend) &&
                                     cgroups::cgroupPathOf(proc_->thread(backend, backend)->cgroups, "cpu") == offload; },
                        2s));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::printf("a new backup_offload backend was in offload %lld ms after it showed its title\n",
              static_cast<long long>(took.count()));
  EXPECT_LT(took, 100ms) << "the rescan interval here is 500 ms";
  EXPECT_EQ(problems(), "");
}

TEST_F(EngineTest, RedisThreadsAndItsSnapshotChildLandInThePresetsClasses) {
  if (const auto why = missing({"/usr/bin/redis-server", "/usr/bin/redis-benchmark", "/usr/bin/redis-cli"},
                               "redis-server redis-tools");
      !why.empty()) {
    GTEST_SKIP() << why;
  }
  const std::string sock = (data_ / "redis.sock").string();
  // Two I/O threads; a BGSAVE slowed to ~100 us a key (a test knob of Redis 7) so that its child
  // lives long enough to be checked.
  ChildProcess server({"/usr/bin/redis-server", "--port", "0", "--unixsocket", sock, "--dir", data_.string(),
                       "--io-threads", "2", "--io-threads-do-reads", "yes", "--appendonly", "yes", "--save", "",
                       "--rdb-key-save-delay", "100", "--daemonize", "no", "--loglevel", "warning"},
                      {}, false, (data_ / "redis.log").string());
  ASSERT_TRUE(waitUntil([&] { return fs::exists(sock); }, 10s)) << testing::readFile(data_ / "redis.log");
  usePreset("redis.yaml");
  startDaemon();
  ASSERT_EQ(sh("redis-benchmark -s " + sock + " -n 50000 -r 50000 -d 64 -q -t set >/dev/null 2>&1"), 0);
  Background load("timeout 5 redis-benchmark -s " + sock + " -n 400000 -r 50000 -c 8 -q -t get,set >/dev/null 2>&1");
  ASSERT_EQ(sh("redis-cli -s " + sock + " bgsave >/dev/null"), 0);
  const pid_t redis = server.pid();
  const auto seen = watch(redis, "redis", 5s, [&](const Seen& s) -> std::string {
    static const std::regex kBackground("bio_.*|jemalloc_bg_thd");
    if (s.pid != redis) return s.title.starts_with("redis-rdb-bgsave") ? "background" : "";
    return std::regex_match(s.comm, kBackground) ? "background" : "foreground";
  });
  EXPECT_EQ(count(seen, [&](const Seen& s) { return s.tid == redis; }), 1u);  // the event loop
  EXPECT_GE(count(seen, named("io_thd_[0-9]+")), 1u);
  EXPECT_EQ(count(seen, named("bio_(close_file|aof_fsync|lazy_free)")), 3u);
  EXPECT_GE(count(seen, [&](const Seen& s) { return s.pid != redis; }), 1u) << "the BGSAVE child was not checked";
  EXPECT_EQ(problems(), "");
}

TEST_F(EngineTest, RocksdbPoolThreadsLandInThePresetsClasses) {
  if (const auto why = missing({"/usr/bin/db_bench"}, "rocksdb-tools"); !why.empty()) GTEST_SKIP() << why;
  usePreset("rocksdb.yaml");
  startDaemon();
  // Writers and readers with flushes, compactions and a bottom-priority pool of its own.
  ChildProcess bench({"/usr/bin/db_bench", "--benchmarks=fillrandom,readwhilewriting", "--db=" + (data_ / "db").string(),
                      "--num=2000000", "--duration=6", "--threads=2", "--max_background_jobs=4",
                      "--num_bottom_pri_threads=1", "--write_buffer_size=1048576", "--statistics=0",
                      "--compression_type=none", "--progress_reports=0"},
                     {}, false, (data_ / "db_bench.log").string());
  const auto seen = watch(bench.pid(), "rocksdb", 8s, [&](const Seen& s) -> std::string {
    if (s.comm.starts_with("rocksdb:high")) return "rocksdb-flush";
    if (s.comm.starts_with("rocksdb:low")) return "background";
    if (s.comm.starts_with("rocksdb:bottom")) return "offload";
    return "foreground";
  });
  EXPECT_GE(count(seen, named("db_bench")), 1u);
  EXPECT_GE(count(seen, named("rocksdb:high[0-9]*")), 1u);
  EXPECT_GE(count(seen, named("rocksdb:low[0-9]*")), 1u);
  EXPECT_GE(count(seen, named("rocksdb:bottom[0-9]*")), 1u);
  EXPECT_EQ(problems(), "");
}

TEST_F(EngineTest, JvmGcJitAndApplicationThreadsLandInThePresetsClasses) {
  if (const auto why = missing({"/usr/bin/java", "/usr/bin/javac"}, "default-jdk-headless"); !why.empty()) GTEST_SKIP() << why;
  // A plain Java program: two request threads, a busy allocator for the collector, a JIT at work.
  std::ofstream(data_ / "Serve.java") << R"(
public class Serve {
  public static void main(String[] a) throws Exception {
    for (int i = 0; i < 2; ++i) {
      Thread t = new Thread(() -> {
        java.util.List<byte[]> keep = new java.util.ArrayList<>();
        while (true) { keep.add(new byte[1024]); if (keep.size() > 20000) keep.clear(); }
      }, "request-" + i);
      t.setDaemon(true);
      t.start();
    }
    Thread.sleep(Long.parseLong(a[0]));
  }
}
)";
  ASSERT_EQ(sh("javac -d " + data_.string() + " " + (data_ / "Serve.java").string()), 0);
  usePreset("jvm.yaml");
  startDaemon();
  ChildProcess jvm({"/usr/bin/java", "-XX:+UseG1GC", "-Xmx64m", "-cp", data_.string(), "Serve", "9000"}, {}, false,
                   (data_ / "java.log").string());
  const auto seen = watch(jvm.pid(), "jvm", 7s, [&](const Seen& s) -> std::string {
    static const std::regex kBackground("G1 Conc#[0-9]+|G1 Main Marker|G1 Refine#[0-9]+|G1 Service|C[12] CompilerThre|Sweeper thread");
    return std::regex_match(s.comm, kBackground) ? "background" : "foreground";
  });
  EXPECT_GE(count(seen, named("request-[01]")), 2u);
  EXPECT_GE(count(seen, named("GC Thread#[0-9]+")), 1u);
  EXPECT_GE(count(seen, named("C2 CompilerThre")), 1u);
  EXPECT_GE(count(seen, named("G1 Conc#[0-9]+")), 1u);
  EXPECT_EQ(problems(), "");
}

TEST_F(EngineTest, MariadbServerAndItsDumpLandInThePresetsClasses) {
  if (const auto why = missing({"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb-dump"},
                               "mariadb-server mariadb-client");
      !why.empty()) {
    GTEST_SKIP() << why;
  }
  const std::string datadir = (data_ / "data").string(), sock = (data_ / "mariadb.sock").string();
  ASSERT_EQ(sh("chown mysql " + data_.string() + " && mariadb-install-db --user=mysql --datadir=" + datadir +
               " --auth-root-authentication-method=normal --skip-test-db >" + data_.string() + "/install.log 2>&1"),
            0);
  ChildProcess server({"/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", "--datadir=" + datadir, "--socket=" + sock,
                       "--skip-networking", "--pid-file=" + (data_ / "mariadb.pid").string()},
                      {}, false, (data_ / "mariadb.log").string());
  ASSERT_TRUE(waitUntil([&] { return fs::exists(sock); }, 30s)) << testing::readFile(data_ / "mariadb.log");
  const std::string client = "mariadb --no-defaults -uroot -S " + sock + " ";
  ASSERT_EQ(sh(client + "-e 'CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT); "
                        "USE shop; INSERT INTO t (v) SELECT REPEAT(\"x\", 200) FROM seq_1_to_50000'"),
            0);
  usePreset("mariadb.yaml");
  startDaemon();
  // A query loop, and a dump whose reader is slow, so that the dump lives long enough to check.
  Background queries("end=$(($(date +%s) + 5)); while [ $(date +%s) -lt $end ]; do " + client +
                     "-e 'SELECT COUNT(*) FROM shop.t WHERE v LIKE \"%y%\"' >/dev/null; done");
  // The dump runs under a shell of its own, whose tree the test watches.
  ChildProcess dump({"/bin/sh", "-c", "mariadb-dump --no-defaults -uroot -S " + sock + " shop | (sleep 4; cat >/dev/null)"}, {},
                    false, (data_ / "dump.log").string());
  pid_t dumper = 0;
  const pid_t mariadbd = server.pid();
  std::vector<Seen> seen;
  const auto expect = [&](const Seen& s) -> std::string {
    if (s.pid == mariadbd) return "foreground";
    if (s.comm == "mariadb-dump") return "offload";
    return "";
  };
  // Two trees: the server's, and the shell the test started the dump from.
  std::thread dumps([&] {
    for (const auto& d : watch(dump.pid(), "mariadb-backup", 5s, expect)) {
      dumper = d.pid;
      seen.push_back(d);
    }
  });
  const auto server_seen = watch(mariadbd, "mariadb", 5s, expect);
  dumps.join();
  EXPECT_EQ(dump.wait(10s), 0);  // the dump and its slow reader are done before the server stops
  EXPECT_GE(server_seen.size(), 5u) << "mariadbd's threads (it names none: all are 'mariadbd')";
  EXPECT_NE(dumper, 0) << "the dump was not checked";
  EXPECT_EQ(problems(), "");
}

}  // namespace
}  // namespace cpuclass
