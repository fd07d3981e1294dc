#include "metrics/exposition.h"

#include <gtest/gtest.h>
#include <prometheus/metric_family.h>

#include <cstdlib>
#include <cstring>
#include <set>
#include <regex>

#include "tests/support/test_support.h"

namespace cpuclass::metrics {
namespace {

Sample fixedSample() {
  Sample s;
  s.version = "1.2.3";
  s.cgroup_mode = "hybrid";
  s.features = {{"cpu_idle", true}, {"psi", false}};
  s.classes = {{"db", "background", 12.5, 0.25, 3},
               {"db", "foreground", 100.0, 1.5, 8},
               {"db", "offload", std::nullopt, std::nullopt, 2, 40, 30, 5, 0.75},
               {"cache", "foreground", 7.0, std::nullopt, 1}};
  s.managed_threads = 14;
  s.managed_processes = 2;
  s.placements = 20;
  s.sched_changes = 5;
  s.threads_gone = 3;
  s.realtime_skipped = 1;
  s.realtime_held_back = 2;
  s.drift_corrections = 2;
  s.failures = {{"EACCES", 4}, {"EINVAL", 1}};
  s.bus_refusals = {{"NotAuthorized", 2}, {"RateLimited", 7}};
  s.left_alone = {{"mydb", 2}};
  s.proc_events = 1000;
  s.proc_events_lost = 1;
  s.rescans = 9;
  s.reloads = 2;
  s.reload_failures = 1;
  s.last_reload_success_seconds = 1700000000;
  s.reconcile_seconds.observe(0.0003);
  s.reconcile_seconds.observe(0.02);
  s.placement_latency_seconds.observe(0.0015);
  return s;
}

// The whole exposition of a fixed state, compared exactly: names, help, types, labels, values.
// CPUCLASS_UPDATE_GOLDEN=1 rewrites the file instead; review the diff before committing it.
TEST(Exposition, GoldenText) {
  const std::string text = toText(fixedSample());
  if (std::getenv("CPUCLASS_UPDATE_GOLDEN") != nullptr) {
    testing::writeFile(std::string(CPUCLASS_FIXTURES_DIR) + "/metrics/golden.txt", text);
    GTEST_SKIP() << "golden file rewritten";
  }
  EXPECT_EQ(text, testing::readFixture("metrics/golden.txt"));
}

TEST(Exposition, NamesFollowPrometheusConventions) {
  const std::regex name("cpuclass_[a-z_]+");
  for (const auto& f : toFamilies(fixedSample())) {
    EXPECT_TRUE(std::regex_match(f.name, name)) << f.name;
    const bool is_counter = f.type == prometheus::MetricType::Counter;
    EXPECT_EQ(is_counter, f.name.ends_with("_total")) << f.name;
    if (f.name.ends_with("_info")) continue;
    for (const auto& m : f.metric) {
      for (const auto& l : m.label) {
        // Bounded label sets only: never a tid or pid.
        EXPECT_TRUE(l.name == "class" || l.name == "worker" || l.name == "reason") << f.name << " " << l.name;
      }
    }
  }
}

TEST(Exposition, AggregatedWorkersSumPerClass) {
  const auto a = aggregateWorkers(fixedSample().classes);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[1].cls, "foreground");
  EXPECT_EQ(a[1].worker, "");
  EXPECT_DOUBLE_EQ(*a[1].cpu_seconds, 107.0);
  EXPECT_EQ(a[1].threads, 9u);
  EXPECT_FALSE(a[2].cpu_seconds);  // offload unreadable everywhere stays absent, not 0
}

TEST(Exposition, HistogramBucketsAreCumulative) {
  Histogram h({1, 2});
  for (const double v : {0.5, 1.5, 1.7, 9.0}) h.observe(v);
  EXPECT_EQ(h.counts(), (std::vector<uint64_t>{1, 2, 1}));
  EXPECT_EQ(h.count(), 4u);
  EXPECT_DOUBLE_EQ(h.sum(), 12.7);
}

// How often a shipped file names metrics; each must be one the daemon exports. A name right
// after ':' is part of a recording rule's name (level:metric:operation), not a metric.
void expectOnlyExportedMetrics(const std::string& path, size_t at_least) {
  std::set<std::string> exported;
  for (const auto& f : toFamilies(fixedSample())) exported.insert(f.name);
  const std::string text = testing::readFile(std::string(CPUCLASS_SOURCE_DIR) + "/" + path);
  const std::regex name("(^|[^:a-z_])(cpuclass_[a-z_]+)");
  size_t uses = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator(); ++it) {
    std::string n = (*it)[2].str();
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (n.ends_with(suffix) && !exported.contains(n)) n.resize(n.size() - std::strlen(suffix));
    }
    EXPECT_TRUE(exported.contains(n)) << path << ": " << (*it)[2].str();
    ++uses;
  }
  EXPECT_GE(uses, at_least) << path;
}

// The shipped Grafana dashboard and Prometheus rules may only use metrics the daemon exports.
TEST(Exposition, DashboardUsesOnlyExportedMetrics) { expectOnlyExportedMetrics("packaging/grafana-dashboard.json", 10); }
TEST(Exposition, PrometheusRulesUseOnlyExportedMetrics) {
  expectOnlyExportedMetrics("packaging/prometheus/cpuclassd.rules.yaml", 8);
}

TEST(MetricsServer, BusyPortIsAClearError) {
  auto first = Server::start("127.0.0.1:0", [] { return Sample{}; });
  ASSERT_TRUE(first) << first.error().message;
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = Server::start(taken, [] { return Sample{}; });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message.rfind("cannot serve metrics on " + taken, 0), 0u) << second.error().message;
}

}  // namespace
}  // namespace cpuclass::metrics
