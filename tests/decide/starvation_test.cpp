// Starvation detection and boost budgets with a fake clock: deterministic, no sleeps.
#include "decide/starvation.h"

#include <gtest/gtest.h>

namespace cpuclass::decide {
namespace {

using std::chrono::milliseconds;
constexpr uint64_t kMs = 1'000'000;

constexpr Look kFine = Look::kFine, kStarving = Look::kStarving, kRecheck = Look::kRecheck;

TEST(StarvationDetector, RunnableAndNotRunningStarves) {
  StarvationDetector d;
  EXPECT_EQ(d.observe(1, milliseconds(0), {'R', 0, true}, 0.1), kRecheck);        // baseline: judged soon
  EXPECT_EQ(d.observe(1, milliseconds(10), {'R', 500'000, true}, 0.1), kStarving);  // ran 0.5 ms of 10 ms
  EXPECT_EQ(d.observe(1, milliseconds(20), {'R', 500'000 + 2 * kMs, true}, 0.1), kFine);  // ran 2 ms: progressing
  EXPECT_EQ(d.observe(1, milliseconds(30), {'S', 500'000 + 2 * kMs, true}, 0.1), kFine);  // asleep: not starving
}

TEST(StarvationDetector, ThresholdIsAShareOfTheElapsedTime) {
  StarvationDetector d;
  d.observe(1, milliseconds(0), {'R', 0, true}, 0.1);
  EXPECT_EQ(d.observe(1, milliseconds(50), {'R', 4 * kMs, true}, 0.1), kStarving);  // 4 ms of 50 ms < 10%
  EXPECT_EQ(d.observe(1, milliseconds(60), {'R', 5 * kMs, true}, 0.1), kFine);  // 1 ms of 10 ms: exactly 10%
  d.forget(1);
  EXPECT_EQ(d.observe(1, milliseconds(70), {'R', 5 * kMs, true}, 0.1), kRecheck);  // baseline again
}

// A sample taken asleep is a baseline: woken and not run since means starving at the first
// runnable look; a sleeping look without runtime leaves the baseline as it was.
TEST(StarvationDetector, SleepingSampleIsTheBaselineForTheWakeUp) {
  StarvationDetector d;
  EXPECT_EQ(d.observe(1, milliseconds(0), {'S', 3 * kMs, true}, 0.1), kFine);
  EXPECT_EQ(d.observe(1, milliseconds(10), {'S', 0, false}, 0.1), kFine);   // idle look: stat only
  EXPECT_EQ(d.observe(1, milliseconds(20), {'R', 3 * kMs, true}, 0.1), kStarving);  // woke, never ran
  EXPECT_EQ(d.observe(2, milliseconds(0), {'S', 0, false}, 0.1), kFine);
  EXPECT_EQ(d.observe(2, milliseconds(10), {'R', 0, true}, 0.1), kRecheck);  // no baseline yet
}

// The case that doubled detection time: asleep at one poll, woken and run for most of its item
// before the next, then stuck. The poll cannot tell when it woke, so it looks again soon.
TEST(StarvationDetector, WokenThreadThatRanALittleIsRecheckedThenJudged) {
  StarvationDetector d;
  d.observe(1, milliseconds(0), {'S', 10 * kMs, true}, 0.1);
  EXPECT_EQ(d.observe(1, milliseconds(10), {'R', 11 * kMs, true}, 0.1), kRecheck);  // ran 1 ms of 10: 10%
  EXPECT_EQ(d.observe(1, milliseconds(12), {'R', 11 * kMs, true}, 0.1), kStarving);  // not since
  // A thread that keeps running after the recheck is fine.
  d.observe(2, milliseconds(0), {'S', 0, true}, 0.1);
  EXPECT_EQ(d.observe(2, milliseconds(10), {'R', 2 * kMs, true}, 0.1), kRecheck);
  EXPECT_EQ(d.observe(2, milliseconds(12), {'R', 3 * kMs, true}, 0.1), kFine);
}

TEST(StarvationDetector, ReusedTidWithSmallerRuntimeIsABaseline) {
  StarvationDetector d;
  d.observe(7, milliseconds(0), {'R', 50 * kMs, true}, 0.1);
  EXPECT_EQ(d.observe(7, milliseconds(10), {'R', 0, true}, 0.1), kRecheck);
}

// What the runtime alone says, so the poll can skip stat (the costlier read).
TEST(StarvationDetector, RuntimeImpliesTheStateWhereItCan) {
  StarvationDetector d;
  EXPECT_EQ(d.impliedState(1, milliseconds(0), 0, 0.1), std::nullopt);  // never looked at
  d.observe(1, milliseconds(0), {'R', 5 * kMs, true}, 0.1);
  // Seen runnable and not run since: it cannot have gone to sleep, it still waits.
  EXPECT_EQ(d.impliedState(1, milliseconds(10), 5 * kMs, 0.1), 'R');
  // Ran 3 ms of 10: not starving, whatever its state now.
  EXPECT_EQ(d.impliedState(1, milliseconds(10), 8 * kMs, 0.1), '?');
  // Ran a little: runnable and starving, or asleep after running: stat must tell.
  EXPECT_EQ(d.impliedState(1, milliseconds(10), 5 * kMs + 500'000, 0.1), std::nullopt);
  // After a '?' look the runtime standing still says nothing: it may have gone to sleep.
  d.observe(1, milliseconds(10), {'?', 8 * kMs, true}, 0.1);
  EXPECT_EQ(d.impliedState(1, milliseconds(20), 8 * kMs, 0.1), std::nullopt);
  EXPECT_EQ(d.impliedState(1, milliseconds(20), 10 * kMs, 0.1), '?');
  EXPECT_EQ(d.observe(1, milliseconds(20), {'R', 8 * kMs + 100'000, true}, 0.1), kStarving);  // from '?': R->R rule
  // A sleeping thread's runtime implies nothing: it may have woken and wait.
  d.observe(2, milliseconds(0), {'S', 1 * kMs, true}, 0.1);
  EXPECT_EQ(d.impliedState(2, milliseconds(10), 1 * kMs, 0.1), std::nullopt);
}

BoostLimits limits() {
  BoostLimits l;
  l.window = milliseconds(50);
  l.cooldown = milliseconds(20);
  l.max_per_worker = 2;
  l.max_total = 3;
  l.max_per_second = 4;
  return l;
}

TEST(SweepPace, QuietRoundsHalveThePaceAndARunnableFindRestoresIt) {
  SweepPace pace;
  EXPECT_EQ(pace.perPoll(), 16u);
  const auto quietRound = [&](size_t size) {
    for (size_t i = 0; i < size; ++i) pace.looked(size, false);
  };
  for (size_t i = 0; i < 99; ++i) pace.looked(100, false);
  EXPECT_EQ(pace.perPoll(), 16u) << "not before the round is whole";
  pace.looked(100, false);
  EXPECT_EQ(pace.perPoll(), 8u);
  quietRound(100);
  EXPECT_EQ(pace.perPoll(), 4u);
  quietRound(100);
  EXPECT_EQ(pace.perPoll(), 4u) << "never below the slowest pace";
  for (size_t i = 0; i < 50; ++i) pace.looked(100, false);
  pace.looked(100, true);
  EXPECT_EQ(pace.perPoll(), 16u);
  for (size_t i = 0; i < 99; ++i) pace.looked(100, false);
  EXPECT_EQ(pace.perPoll(), 16u) << "a find starts a new round";
}

TEST(BoostBook, WindowEndsEveryBoost) {
  BoostBook b;
  EXPECT_EQ(b.request(1, "db", milliseconds(0), limits()), BoostVerdict::kStarted);
  EXPECT_TRUE(b.boosted(1));
  EXPECT_TRUE(b.expire(milliseconds(49)).empty());
  const auto ended = b.expire(milliseconds(50));
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].tid, 1);
  EXPECT_EQ(ended[0].duration, milliseconds(50));
  EXPECT_FALSE(b.boosted(1));
}

TEST(BoostBook, ASleepingThreadLeavesNoCooldown) {
  BoostBook b;
  ASSERT_EQ(b.request(1, "db", milliseconds(0), limits()), BoostVerdict::kStarted);
  ASSERT_TRUE(b.end(1, milliseconds(3)));  // its item is done: asleep again
  EXPECT_EQ(b.request(1, "db", milliseconds(4), limits()), BoostVerdict::kStarted);
}

// Long items with short sleeps between them: each boost runs out its window, the thread sleeps
// in between; the cooldown doubles up to max_cooldown.
TEST(BoostBook, ThreadRunningOutItsWindowsBacksOffExponentially) {
  BoostLimits l = limits();
  l.max_cooldown = milliseconds(70);
  const auto slept_between = [](pid_t) { return true; };
  BoostBook b;
  ASSERT_EQ(b.request(1, "db", milliseconds(0), l), BoostVerdict::kStarted);
  ASSERT_EQ(b.expire(milliseconds(50)).size(), 1u);  // ran out its window: cooldown 20 ms
  EXPECT_EQ(b.request(1, "db", milliseconds(69), l, false, slept_between), BoostVerdict::kCoolingDown);
  ASSERT_EQ(b.request(1, "db", milliseconds(70), l, false, slept_between), BoostVerdict::kStarted);
  ASSERT_EQ(b.expire(milliseconds(120)).size(), 1u);  // again: cooldown 40 ms
  EXPECT_EQ(b.request(1, "db", milliseconds(159), l, false, slept_between), BoostVerdict::kCoolingDown);
  ASSERT_EQ(b.request(1, "db", milliseconds(160), l, false, slept_between), BoostVerdict::kStarted);
  ASSERT_EQ(b.expire(milliseconds(210)).size(), 1u);  // 80 ms, capped at 70
  EXPECT_EQ(b.request(1, "db", milliseconds(279), l, false, slept_between), BoostVerdict::kCoolingDown);
  EXPECT_EQ(b.request(1, "db", milliseconds(280), l, false, slept_between), BoostVerdict::kStarted);
}

// Bulk work (never sleeps): one boost, then none until it has slept; asked every max_cooldown.
TEST(BoostBook, ThreadThatNeverSleepsIsBoostedOnceUntilItSleeps) {
  BoostLimits l = limits();
  l.max_cooldown = milliseconds(1000);
  bool slept = false;
  const auto slept_since = [&](pid_t) { return slept; };
  BoostBook b;
  ASSERT_EQ(b.request(1, "db", milliseconds(0), l, false, slept_since), BoostVerdict::kStarted);
  ASSERT_EQ(b.expire(milliseconds(50), slept_since).size(), 1u);
  EXPECT_EQ(b.request(1, "db", milliseconds(70), l, false, slept_since), BoostVerdict::kCoolingDown);
  slept = true;  // within the max_cooldown that refusal started: not asked yet
  EXPECT_EQ(b.request(1, "db", milliseconds(1069), l, false, slept_since), BoostVerdict::kCoolingDown);
  EXPECT_EQ(b.request(1, "db", milliseconds(1070), l, false, slept_since), BoostVerdict::kStarted);
  // A reported wait is no detection: it boosts a bulk thread at once.
  ASSERT_EQ(b.end(1, milliseconds(1071)).has_value(), true);
  ASSERT_EQ(b.request(2, "db", milliseconds(2000), l, false, {}), BoostVerdict::kStarted);
  ASSERT_EQ(b.expire(milliseconds(2050)).size(), 1u);
  EXPECT_EQ(b.request(2, "db", milliseconds(3100), l, false, {}), BoostVerdict::kCoolingDown);
  EXPECT_EQ(b.request(2, "db", milliseconds(3100), l, true), BoostVerdict::kStarted);
}

// A thread serving items back to back sleeps between them faster than a poll sees: its boost
// runs out the window although it is no CPU hog. Having slept, it gets no cooldown.
TEST(BoostBook, ExpiredBoostOfAThreadThatSleptLeavesNoCooldown) {
  BoostBook b;
  const auto l = limits();
  ASSERT_EQ(b.request(1, "db", milliseconds(0), l), BoostVerdict::kStarted);
  ASSERT_EQ(b.request(2, "db", milliseconds(0), l), BoostVerdict::kStarted);
  const auto ended = b.expire(milliseconds(50), [](pid_t tid) { return tid == 1; });
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended[0].duration, milliseconds(50));
  EXPECT_EQ(b.request(1, "db", milliseconds(51), l), BoostVerdict::kStarted);
  EXPECT_EQ(b.request(2, "db", milliseconds(51), l), BoostVerdict::kCoolingDown);
}

// The poll skips threads cooling down; an exited thread's cooldown does not pass to its TID's reuse.
TEST(BoostBook, CoolingDownUntilTheCooldownEndsAndForgottenOnExit) {
  BoostBook b;
  ASSERT_EQ(b.request(1, "db", milliseconds(0), limits()), BoostVerdict::kStarted);
  EXPECT_FALSE(b.coolingDown(1, milliseconds(10)));  // boosted, not cooling
  ASSERT_EQ(b.expire(milliseconds(50)).size(), 1u);
  EXPECT_TRUE(b.coolingDown(1, milliseconds(69)));
  EXPECT_FALSE(b.coolingDown(1, milliseconds(70)));
  b.forget(1);
  EXPECT_FALSE(b.coolingDown(1, milliseconds(60)));
  EXPECT_EQ(b.request(1, "db", milliseconds(60), limits()), BoostVerdict::kStarted);
}

TEST(BoostBook, ExplicitWaitIgnoresTheCooldown) {
  BoostBook b;
  ASSERT_EQ(b.request(1, "db", milliseconds(0), limits()), BoostVerdict::kStarted);
  ASSERT_EQ(b.expire(milliseconds(50)).size(), 1u);
  EXPECT_EQ(b.request(1, "db", milliseconds(51), limits()), BoostVerdict::kCoolingDown);
  EXPECT_EQ(b.request(1, "db", milliseconds(51), limits(), true), BoostVerdict::kStarted);
}

TEST(BoostBook, BudgetsPerWorkerTotalAndRate) {
  BoostBook b;
  EXPECT_EQ(b.request(1, "db", milliseconds(0), limits()), BoostVerdict::kStarted);
  EXPECT_EQ(b.request(2, "db", milliseconds(0), limits()), BoostVerdict::kStarted);
  EXPECT_EQ(b.request(3, "db", milliseconds(0), limits()), BoostVerdict::kWorkerBudget);
  EXPECT_EQ(b.request(4, "cache", milliseconds(0), limits()), BoostVerdict::kStarted);
  EXPECT_EQ(b.request(5, "queue", milliseconds(0), limits()), BoostVerdict::kTotalBudget);
  EXPECT_EQ(b.activeFor("db"), 2u);
  b.end(1, milliseconds(1));
  EXPECT_EQ(b.request(6, "queue", milliseconds(1), limits()), BoostVerdict::kStarted);  // 4th start this second
  b.end(2, milliseconds(2));
  EXPECT_EQ(b.request(7, "queue", milliseconds(2), limits()), BoostVerdict::kRateLimited);
  EXPECT_EQ(b.request(7, "queue", milliseconds(1001), limits()), BoostVerdict::kStarted);  // window slid
  EXPECT_TRUE(refused(BoostVerdict::kRateLimited));
  EXPECT_FALSE(refused(BoostVerdict::kCoolingDown));
}

TEST(BoostBook, RequestingAnActiveBoostExtendsItsDeadline) {
  BoostBook b;
  ASSERT_EQ(b.request(1, "db", milliseconds(0), limits()), BoostVerdict::kStarted);
  EXPECT_EQ(b.request(1, "db", milliseconds(40), limits()), BoostVerdict::kAlreadyBoosted);
  EXPECT_TRUE(b.expire(milliseconds(60)).empty());
  EXPECT_EQ(b.expire(milliseconds(90)).size(), 1u);
}

}  // namespace
}  // namespace cpuclass::decide
