// The target of a classified thread: pure, from its class and what the daemon holds about it.
#include "decide/target.h"

#include <gtest/gtest.h>
#include <sched.h>

namespace cpuclass::decide {
namespace {

using std::chrono::microseconds;

policy::ClassSpec offload() {
  policy::ClassSpec c;
  c.name = "offload";
  c.cpu_weight = 1;
  c.idle = true;
  c.sched = policy::ThreadSched::kIdle;
  c.nice = 19;
  c.boost = policy::BoostSpec{};
  c.boost->nice = 0;
  c.boost->wait_nice = -5;
  c.boost->sched = policy::ThreadSched::kOther;
  return c;
}

policy::ClassSpec named(std::string name, uint32_t weight) {
  policy::ClassSpec c;
  c.name = std::move(name);
  c.cpu_weight = weight;
  return c;
}

TEST(Target, AClassRunsInItsOwnGroupWithItsScheduling) {
  const auto spec = offload();
  const auto t = targetFor({.spec = spec, .host = spec, .base = "p/w"});
  EXPECT_EQ(t.thread.group, "p/w/offload");
  EXPECT_EQ(t.thread.accounting_group, "p/w/offload");
  EXPECT_EQ(t.thread.policy, SCHED_IDLE);
  EXPECT_EQ(t.thread.nice, 19);
  EXPECT_EQ(t.settings, (GroupSettings{1, true, false}));
}

TEST(Target, ABoostMovesToTheBoostGroupWithTheBoostsScheduling) {
  const auto spec = offload();
  const auto detected = targetFor({.spec = spec, .host = spec, .base = "p/w", .boosted = true});
  EXPECT_EQ(detected.thread.group, std::string("p/w/") + kBoostGroup);
  EXPECT_EQ(detected.thread.accounting_group, "p/w/offload");  // class CPU stays exact
  EXPECT_EQ(detected.thread.policy, SCHED_OTHER);
  EXPECT_EQ(detected.thread.nice, 0);
  EXPECT_EQ(detected.settings, (GroupSettings{100, false, false}));
  const auto reported = targetFor({.spec = spec, .host = spec, .base = "p/w", .boosted = true, .explicit_wait = true});
  EXPECT_EQ(reported.thread.nice, -5);
}

TEST(Target, AClassInAnothersGroupIsBoostedInPlace) {
  auto spec = offload();
  spec.run_in = "background";
  const auto host = named("background", 10);
  const auto t = targetFor({.spec = spec, .host = host, .base = "p/w", .boosted = true});
  EXPECT_EQ(t.thread.group, "p/w/background");
  EXPECT_EQ(t.thread.accounting_group, "p/w/offload");
  EXPECT_EQ(t.thread.policy, SCHED_OTHER);
  EXPECT_EQ(t.settings, (GroupSettings{10, false, false}));
}

TEST(Target, ARealtimeClassRunsRoundRobinUntilItsGuardHoldsItBack) {
  auto spec = named("foreground", 1000);
  spec.realtime = 7;
  spec.nice = -2;
  const auto rt = targetFor({.spec = spec, .host = spec, .base = "b"});
  EXPECT_EQ(rt.thread.policy, SCHED_RR);
  EXPECT_EQ(rt.thread.priority, 7);
  EXPECT_TRUE(rt.settings.realtime);
  const auto held = targetFor({.spec = spec, .host = spec, .base = "b", .realtime_held_back = true});
  EXPECT_EQ(held.thread.policy, SCHED_OTHER);
  EXPECT_EQ(held.thread.priority, 0);
  EXPECT_EQ(held.thread.nice, -2);
}

TEST(Target, SlicesAreTheClassesOrOursBackToTheDefaultElseLeftAlone) {
  auto spec = named("foreground", 1000);
  EXPECT_EQ(sliceFor(spec, false, true, false), std::nullopt);  // its owner's slice stays
  EXPECT_EQ(sliceFor(spec, false, true, true), std::chrono::nanoseconds(0));  // ours goes back
  spec.slice = microseconds(100);
  EXPECT_EQ(sliceFor(spec, false, true, false), microseconds(100));
  EXPECT_EQ(sliceFor(spec, true, true, false), std::nullopt);   // real-time: no slice
  EXPECT_EQ(sliceFor(spec, false, false, false), std::nullopt);  // the kernel has none
}

}  // namespace
}  // namespace cpuclass::decide
