// The guards' decisions over counter readings and a fake clock.
#include "decide/guards.h"

#include <gtest/gtest.h>

namespace cpuclass::decide {
namespace {

using std::chrono::milliseconds;

TEST(Rates, TheFirstReadingIsABaselineThenGrowthPerClockTime) {
  Rates r;
  EXPECT_EQ(r.next("g", milliseconds(0), milliseconds(1000)), std::nullopt);
  EXPECT_DOUBLE_EQ(*r.next("g", milliseconds(25), milliseconds(1100)), 0.25);
  EXPECT_EQ(r.next("g", milliseconds(30), milliseconds(1100)), std::nullopt);  // the clock did not move
  r.keepOnly([](const std::string&) { return false; });
  EXPECT_EQ(r.next("g", milliseconds(40), milliseconds(1200)), std::nullopt);  // forgotten: a baseline again
}

TEST(Squeeze, IdleGroupsAreSqueezedOnceABusyGroupWaitedAQuarterOfTheWindow) {
  EXPECT_FALSE(squeezeIdleGroups({}));
  EXPECT_FALSE(squeezeIdleGroups({0.0, 0.24}));  // the short waits any wake-up costs
  EXPECT_TRUE(squeezeIdleGroups({0.0, 0.25}));
  EXPECT_TRUE(squeezeIdleGroups({1.7}));  // several threads waiting at once
}

TEST(RealtimeGuard, AClassOverItsShareOfAllCpusIsHeldBack) {
  // 1.2 CPUs of 4 is 30%.
  EXPECT_FALSE(overRealtimeLimit(1.2, 4, 0.5));
  EXPECT_TRUE(overRealtimeLimit(1.2, 4, 0.25));
  EXPECT_FALSE(overRealtimeLimit(0.5, 1, 0.5));  // at the limit is not over it
}

}  // namespace
}  // namespace cpuclass::decide
