// /metrics of the real daemon on the real kernel: exact per-class CPU, and a real Prometheus
// server scraping it (tier `kernel`).
#include "tests/daemon/daemon_fixture.h"

namespace cpuclass {
namespace {

// The value of one series in exposition text, e.g. series = `cpuclass_class_threads{class="offload",worker="tw"}`.
std::optional<double> seriesValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

std::string cls(const std::string& c) { return "{class=\"" + c + "\",worker=\"tw\"}"; }

class MetricsTest : public DaemonTest {
 protected:
  uint64_t runtimeNs(pid_t tid) const {
    const auto ss = proc_->read(worker_->pid(), tid, "schedstat");
    if (!ss) return 0;
    return cgroups::parseSchedStat(*ss)->runtime_ns;
  }
  void burn(pid_t tid, std::chrono::milliseconds how_long) {
    EXPECT_EQ(worker_->ask("spin " + std::to_string(tid)), "ok");
    std::this_thread::sleep_for(how_long);
    EXPECT_EQ(worker_->ask("park " + std::to_string(tid)), "ok");
  }
};

TEST_F(MetricsTest, ClassCpuSecondsMatchTheKernelsPerThreadAccounting) {
  // No boosts: the offload burn must not be moved around (the placement count below is exact).
  writePolicy("bg-.*", "", "background: {sched: batch, nice: 5}, offload: {boost: false}");
  startDaemon();
  const int port = metricsPort();
  ASSERT_GT(port, 0) << daemonLog();
  const pid_t fg = spawn("fg-burn"), bg = spawn("bg-burn"), off = spawn("off-burn"), bg_short = spawn("bg-short");
  ASSERT_TRUE(waitUntil([&] {
    return placedAs(fg, "foreground") && placedAs(bg, "background") && placedAs(off, "offload") &&
           placedAs(bg_short, "background");
  }, 5s));
  // Deltas over one interval, every thread already in its group: CPU a thread used before its
  // placement (process start-up, heavier under ASan) belongs to no class.
  const std::map<std::string, std::vector<pid_t>> members{
      {"foreground", {fg, worker_->pid()}}, {"background", {bg, bg_short}}, {"offload", {off}}};
  std::map<pid_t, uint64_t> start_ns;
  for (const auto& [c, tids] : members) {
    for (const pid_t t : tids) start_ns[t] = runtimeNs(t);
  }
  // Placed in the cpu hierarchy first; the accounting mirror (the counter's source on v1) and
  // the published groups follow within the same reconcile: wait for every class's counter.
  std::string before;
  ASSERT_TRUE(waitUntil([&] {
    before = testing::httpGet(port, "/metrics");
    return std::all_of(members.begin(), members.end(), [&](const auto& m) {
      return seriesValue(before, "cpuclass_class_cpu_seconds_total" + cls(m.first)).has_value();
    });
  }, 5s)) << before;
  for (const auto& [c, tids] : members) {  // the deltas start at that scrape
    for (const pid_t t : tids) start_ns[t] = runtimeNs(t);
  }
  // One class at a time, so the idle offload class gets the CPU too.
  burn(fg, 300ms);
  burn(bg, 300ms);
  burn(off, 300ms);
  burn(bg_short, 200ms);
  // A thread that exits still counts: its time stays in the group's accounting.
  std::map<pid_t, uint64_t> end_ns{{bg_short, runtimeNs(bg_short)}};
  EXPECT_EQ(worker_->ask("exit " + std::to_string(bg_short)), "ok");
  std::string after;
  ASSERT_TRUE(waitUntil([&] {  // the daemon has seen the exit
    after = testing::httpGet(port, "/metrics");
    return seriesValue(after, "cpuclass_class_threads" + cls("background")) == 1.0;
  }, 5s)) << after;
  for (const pid_t t : {fg, bg, off, worker_->pid()}) end_ns[t] = runtimeNs(t);

  for (const auto& [c, tids] : members) {
    double want = 0;
    for (const pid_t t : tids) want += static_cast<double>(end_ns[t] - start_ns[t]) / 1e9;
    const auto got0 = seriesValue(before, "cpuclass_class_cpu_seconds_total" + cls(c));
    const auto got1 = seriesValue(after, "cpuclass_class_cpu_seconds_total" + cls(c));
    ASSERT_TRUE(got0 && got1) << c << "\n" << after;
    const double got = *got1 - *got0;
    EXPECT_GT(want, 0.15) << c;
    EXPECT_NEAR(got, want, want * 0.02) << c;  // within 2%
    std::printf("%-10s exported %.4f s, kernel per-thread sum %.4f s (%+.2f%%)\n", c.c_str(), got, want,
                100.0 * (got - want) / want);
  }
  EXPECT_EQ(seriesValue(after, "cpuclass_class_threads" + cls("foreground")), 2.0);
  // Main thread, bg-burn, off-burn, bg-short; fg-burn was born in its group (inherited).
  EXPECT_EQ(seriesValue(after, "cpuclass_placements_total"), 4.0);
}

TEST_F(MetricsTest, RealPrometheusScrapesItAndPromtoolFindsNothing) {
  for (const char* tool : {"/usr/bin/prometheus", "/usr/bin/promtool"}) {
    if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is missing (Debian package prometheus; scripts/test installs it)";
  }
  const pid_t fg = spawn("fg-1");
  spawn("off-1");
  startDaemon();
  const int port = metricsPort();
  ASSERT_GT(port, 0) << daemonLog();
  burn(fg, 100ms);

  // promtool's linter on the exact scrape.
  const std::string scrape = testing::httpGet(port, "/metrics");
  std::ofstream(dir_.path() / "scrape.txt") << scrape;
  const std::string lint = (dir_.path() / "lint.txt").string();
  const int rc = std::system(("/usr/bin/promtool check metrics < " + (dir_.path() / "scrape.txt").string() + " > " + lint +
                              " 2>&1").c_str());
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(testing::readFile(lint), "");

  const int prom_port = testing::freeLoopbackPort();
  // With the shipped rules (packaging/prometheus), evaluated against the real daemon.
  const std::string rules = std::string(CPUCLASS_SOURCE_DIR) + "/packaging/prometheus/cpuclassd.rules.yaml";
  std::ofstream(dir_.path() / "prometheus.yml") << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                                << "rule_files: ['" << rules << "']\n"
                                                << "scrape_configs:\n  - job_name: cpuclassd\n"
                                                << "    static_configs: [{targets: ['127.0.0.1:" << port << "']}]\n";
  ChildProcess prometheus({"/usr/bin/prometheus", "--config.file=" + (dir_.path() / "prometheus.yml").string(),
                           "--storage.tsdb.path=" + (dir_.path() / "tsdb").string(),
                           "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
                          {}, false, (dir_.path() / "prometheus.log").string());
  std::string answer;
  const bool found = waitUntil([&] {
    answer = testing::httpGet(prom_port, "/api/v1/query?query=cpuclass_class_cpu_seconds_total");
    return answer.find("\"class\":\"foreground\"") != std::string::npos &&
           answer.find("\"class\":\"offload\"") != std::string::npos;
  }, 60s);
  EXPECT_TRUE(found) << answer << "\n" << testing::readFile(dir_.path() / "prometheus.log");
  // Plausible: the foreground class burned about 100 ms; nothing is negative or absurd.
  const std::regex fg_value(R"re("class":"foreground"[^}]*\},"value":\[[0-9.]+,"([0-9.e+-]+)"\])re");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(answer, m, fg_value)) << answer;
  EXPECT_GT(std::stod(m[1].str()), 0.05);
  EXPECT_LT(std::stod(m[1].str()), 10.0);
  const std::string up = testing::httpGet(prom_port, "/api/v1/query?query=up");
  EXPECT_NE(up.find("\"value\":[") , std::string::npos);
  EXPECT_NE(up.find(",\"1\"]"), std::string::npos) << up;
  // The rules loaded and evaluate cleanly; a recording rule has the foreground class of this node;
  // a healthy daemon fires no alert of them.
  std::string recorded;
  EXPECT_TRUE(waitUntil([&] {
    recorded = testing::httpGet(prom_port, "/api/v1/query?query=instance_class:cpuclass_class_cpu:rate5m");
    return recorded.find("\"class\":\"foreground\"") != std::string::npos;
  }, 30s)) << recorded << "\n" << testing::readFile(dir_.path() / "prometheus.log");
  const std::string loaded = testing::httpGet(prom_port, "/api/v1/rules");
  EXPECT_NE(loaded.find("\"name\":\"cpuclassd.alerts\""), std::string::npos) << loaded;
  EXPECT_EQ(loaded.find("\"health\":\"err\""), std::string::npos) << loaded;
  const std::string alerts = testing::httpGet(prom_port, "/api/v1/alerts");
  EXPECT_EQ(alerts.find("\"state\":\"firing\""), std::string::npos) << alerts;
  prometheus.signal(SIGTERM);
  EXPECT_GE(prometheus.wait(20s), 0);
}

}  // namespace
}  // namespace cpuclass
