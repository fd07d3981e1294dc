#include "policy/policy_loader.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/test_support.h"

namespace cpuclass::policy {
namespace {

namespace fs = std::filesystem;
using testing::readFile;

const fs::path kPolicies = fs::path(CPUCLASS_FIXTURES_DIR) / "policies";

LoadResult parseOne(const std::string& name, const std::string& text) { return parsePolicy({{name, text}}); }

// Every invalid fixture's diagnostics, compared exactly with its .expected file.
TEST(PolicyGolden, InvalidFilesReportEveryError) {
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(kPolicies / "invalid")) {
    if (e.path().extension() != ".yaml") continue;
    ++files;
    const std::string name = e.path().filename().string();
    const auto result = parseOne(name, readFile(e.path()));
    EXPECT_FALSE(result.policy) << name;
    auto expected = e.path();
    expected.replace_extension(".expected");
    EXPECT_EQ(formatDiagnostics(result.diagnostics), readFile(expected)) << name;
  }
  EXPECT_GE(files, 10u);
}

TEST(PolicyDefaults, EmptyFileGivesTheBuiltInClasses) {
  const auto r = parseOne("empty.yaml", "");
  ASSERT_TRUE(r.policy);
  ASSERT_EQ(r.policy->classes.size(), 3u);
  const auto* offload = r.policy->findClass("offload");
  ASSERT_NE(offload, nullptr);
  EXPECT_TRUE(offload->idle);
  EXPECT_EQ(offload->sched, ThreadSched::kIdle);
  ASSERT_TRUE(offload->boost);
  EXPECT_EQ(offload->boost->window, std::chrono::milliseconds(50));
  EXPECT_EQ(r.policy->findClass("foreground")->cpu_weight, 1000u);
  EXPECT_EQ(r.policy->findClass("background")->cpu_weight, 10u);
  EXPECT_EQ(offload->where.str(), "built-in");
  EXPECT_EQ(r.policy->daemon.on_stop, OnStop::kRestore);
  EXPECT_EQ(r.policy->daemon.metrics_listen, "127.0.0.1:9753");
}

TEST(PolicyDefaults, AClassRefinesItsBuiltInKeyByKey) {
  const auto r = parseOne("p.yaml", "classes:\n  offload:\n    boost: {window: 5ms}\n  helper:\n");
  ASSERT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
  const auto* offload = r.policy->findClass("offload");
  EXPECT_TRUE(offload->idle);  // kept from the built-in
  EXPECT_EQ(offload->boost->window, std::chrono::milliseconds(5));
  EXPECT_EQ(offload->boost->max_per_worker, 4u);
  EXPECT_EQ(offload->where.str(), "p.yaml:2:3");
  const auto* helper = r.policy->findClass("helper");
  ASSERT_NE(helper, nullptr);
  EXPECT_EQ(helper->cpu_weight, 100u);
  EXPECT_FALSE(helper->boost);
  const auto no_boost = parseOne("p.yaml", "classes: {offload: {boost: false}}");
  EXPECT_FALSE(no_boost.policy->findClass("offload")->boost);
}

TEST(PolicyDefaults, ARealtimeClassKeepsItsFairSettingsForTheGuard) {
  const auto r = parseOne("p.yaml", "classes:\n  foreground: {realtime: 5, realtime_limit: 30, nice: -5}\n");
  ASSERT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
  const auto* fg = r.policy->findClass("foreground");
  EXPECT_EQ(fg->realtime, 5);
  EXPECT_DOUBLE_EQ(fg->realtime_limit, 0.30);
  EXPECT_EQ(fg->nice, -5);
  EXPECT_EQ(fg->cpu_weight, 1000u);  // kept from the built-in: the weight while the guard holds it back
  EXPECT_EQ(r.policy->findClass("background")->realtime, 0);
  // A drop-in may turn it off again.
  const auto off = parsePolicy({{"a.yaml", "classes: {foreground: {realtime: 5}}"}, {"b.yaml", "classes: {foreground: {realtime: 0}}"}});
  ASSERT_TRUE(off.policy);
  EXPECT_EQ(off.policy->findClass("foreground")->realtime, 0);
}

TEST(PolicyDefaults, ASliceIsInMicrosecondsWithinTheKernelsClamp) {
  const auto r = parseOne("p.yaml", "classes: {foreground: {slice: 100us}, background: {slice: 2ms}}");
  ASSERT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
  EXPECT_EQ(r.policy->findClass("foreground")->slice, std::chrono::microseconds(100));
  EXPECT_EQ(r.policy->findClass("background")->slice, std::chrono::microseconds(2000));
  EXPECT_EQ(r.policy->findClass("offload")->slice, std::chrono::microseconds(0));  // the kernel's default
  const auto off = parsePolicy({{"a.yaml", "classes: {foreground: {slice: 100us}}"}, {"b.yaml", "classes: {foreground: {slice: null}}"}});
  ASSERT_TRUE(off.policy);
  EXPECT_EQ(off.policy->findClass("foreground")->slice, std::chrono::microseconds(0));
  const auto bad = parseOne("p.yaml", "classes:\n  foreground: {slice: 50us}\n  background: {slice: 1s}\n");
  EXPECT_FALSE(bad.policy);
  EXPECT_EQ(formatDiagnostics(bad.diagnostics),
            "p.yaml:2:23: slice must be a duration like 100us or 1ms, in 100us..100ms, got '50us'\n"
            "p.yaml:3:23: slice must be a duration like 100us or 1ms, in 100us..100ms, got '1s'\n");
  // Durations of whole milliseconds stay so.
  const auto poll = parseOne("p.yaml", "daemon: {starvation_poll: 500us}");
  EXPECT_FALSE(poll.policy);
}

TEST(PolicyDropins, LaterFilesRefineAndWorkersAccumulate) {
  const auto r = parsePolicy({
      {"policy.yaml", "daemon: {log_level: debug, rescan_interval: 3s, fast_moves: false}\n"
                      "classes: {background: {cpu_weight: 20}}\n"
                      "workers:\n  - {name: db, match: {comm: db}}\n"},
      {"policy.d/10-tune.yaml", "daemon: {log_level: warning}\n"
                                "classes: {background: {nice: 5}, extra: {cpu_weight: 300}}\n"
                                "workers:\n  - {name: cache, match: {comm: cache}, default_class: extra}\n"},
  });
  ASSERT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
  EXPECT_EQ(r.policy->daemon.log_level, LogLevel::kWarning);
  EXPECT_EQ(r.policy->daemon.rescan_interval, std::chrono::seconds(3));
  EXPECT_FALSE(r.policy->daemon.fast_moves);
  const auto* bg = r.policy->findClass("background");
  EXPECT_EQ(bg->cpu_weight, 20u);
  EXPECT_EQ(bg->nice, 5);
  ASSERT_EQ(r.policy->workers.size(), 2u);
  EXPECT_EQ(r.policy->workers[1].name, "cache");
  EXPECT_EQ(r.policy->files, (std::vector<std::string>{"policy.yaml", "policy.d/10-tune.yaml"}));
}

TEST(PolicyDropins, ErrorsInSeveralFilesAreAllReportedInFileOrder) {
  const auto r = parsePolicy({
      {"main.yaml", "workers:\n  - {name: db, match: {comm: db}, default_class: later}\n  - {name: x}\n"},
      {"d/10.yaml", "classes: {later: {}}\nworkers:\n  - {name: db, match: {comm: db2}}\n"},
      {"d/20.yaml", "classes: {bad: {idle: 1}}\n"},
  });
  ASSERT_FALSE(r.policy);
  // 'later' is defined in a later file: references resolve across all files.
  EXPECT_EQ(formatDiagnostics(r.diagnostics),
            "main.yaml:3:5: worker is missing required key 'match'\n"
            "d/10.yaml:3:12: worker 'db' is already defined at main.yaml:2:12\n"
            "d/20.yaml:1:23: idle must be true or false, got '1'\n");
}

TEST(PolicyFiles, LoadsMainAndDropinsInLexicalOrder) {
  testing::TempDir dir;
  testing::writeFile(dir.path() / "policy.yaml", "daemon: {log_level: info}\n");
  testing::writeFile(dir.path() / "policy.d" / "20-b.yaml", "daemon: {log_level: error}\n");
  testing::writeFile(dir.path() / "policy.d" / "10-a.yaml", "daemon: {log_level: debug}\n");
  testing::writeFile(dir.path() / "policy.d" / "README", "not yaml: [\n");
  const auto main = (dir.path() / "policy.yaml").string();
  const auto r = loadPolicy(main, dropinDirFor(main));
  ASSERT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
  EXPECT_EQ(r.policy->daemon.log_level, LogLevel::kError);
  ASSERT_EQ(r.policy->files.size(), 3u);
  EXPECT_EQ(fs::path(r.policy->files[1]).filename(), "10-a.yaml");
}

TEST(PolicyFiles, MissingMainFileIsAnError) {
  const auto r = loadPolicy("/nonexistent/policy.yaml", "/nonexistent/policy.d");
  ASSERT_FALSE(r.policy);
  EXPECT_EQ(formatDiagnostics(r.diagnostics),
            "/nonexistent/policy.yaml:1:1: cannot read the file: No such file or directory\n");
}

TEST(PolicyFiles, ShippedDefaultPolicyIsValid) {
  const auto file = (fs::path(CPUCLASS_SOURCE_DIR) / "packaging" / "policy.yaml").string();
  const auto r = loadPolicy(file, "/nonexistent");
  EXPECT_TRUE(r.policy) << formatDiagnostics(r.diagnostics);
}

}  // namespace
}  // namespace cpuclass::policy
