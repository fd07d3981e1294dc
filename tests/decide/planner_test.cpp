#include "decide/planner.h"

#include <gtest/gtest.h>

#include "cgroups/proc_parse.h"

namespace cpuclass::decide {
namespace {

using cgroups::kSchedBatch;
using cgroups::kSchedFifo;
using cgroups::kSchedOther;
using cgroups::kSchedRr;

PlanItem item(pid_t tid, std::string target_group, int policy, int priority, std::string observed_group, int observed_policy,
              int observed_priority, bool ours) {
  const bool realtime = observed_policy == kSchedRr || observed_policy == kSchedFifo;
  return {tid, {std::move(target_group), policy, 0, priority, {}}, {std::move(observed_group), {}, observed_policy, 0, observed_priority, realtime, realtime && ours}};
}

TEST(Planner, MovesComeFirstThenScheduling) {
  const auto p = plan({item(1, "w/bg", kSchedBatch, 0, "w/fg", kSchedOther, 0, false)});
  ASSERT_EQ(p.actions.size(), 2u);
  EXPECT_EQ(p.actions[0].kind, Action::Kind::kMove);
  EXPECT_EQ(p.actions[1].kind, Action::Kind::kSetSched);
  EXPECT_TRUE(p.before_moves.empty());
}

TEST(Planner, AnOwnersRealtimeThreadIsSkipped) {
  const auto p = plan({item(1, "w/bg", kSchedBatch, 0, "/", kSchedFifo, 50, false)});
  EXPECT_TRUE(p.actions.empty());
  EXPECT_EQ(p.realtime, std::vector<pid_t>{1});
}

// Our SCHED_RR thread leaving its realtime class goes fair before it moves: the kernel keeps
// real-time threads out of groups without a real-time budget. Joining one, it moves first.
TEST(Planner, OurRealtimeThreadGoesFairBeforeItsMoveAndRealtimeAfter) {
  const auto leaving = plan({item(1, "w/bg", kSchedBatch, 0, "w/fg", kSchedRr, 7, true)});
  ASSERT_EQ(leaving.before_moves.size(), 1u);
  EXPECT_EQ(leaving.before_moves[0].target.policy, kSchedBatch);
  ASSERT_EQ(leaving.actions.size(), 1u);
  EXPECT_EQ(leaving.actions[0].kind, Action::Kind::kMove);
  EXPECT_TRUE(leaving.realtime.empty());

  const auto joining = plan({item(1, "w/fg", kSchedRr, 7, "w/bg", kSchedOther, 0, false)});
  EXPECT_TRUE(joining.before_moves.empty());
  ASSERT_EQ(joining.actions.size(), 2u);
  EXPECT_EQ(joining.actions[0].kind, Action::Kind::kMove);
  EXPECT_EQ(joining.actions[1].target.priority, 7);

  const auto reprioritised = plan({item(1, "w/fg", kSchedRr, 7, "w/fg", kSchedRr, 9, true)});
  ASSERT_EQ(reprioritised.actions.size(), 1u);  // ours: put back to the class's priority
  EXPECT_EQ(reprioritised.actions[0].kind, Action::Kind::kSetSched);
  EXPECT_TRUE(plan({item(1, "w/fg", kSchedRr, 7, "w/fg", kSchedRr, 7, true)}).actions.empty());
}

// A slice in the target is held (set when it differs, left when equal); none leaves the thread's.
TEST(Planner, ASliceIsSetWhereTheTargetHasOneAndDiffers) {
  using std::chrono::microseconds;
  auto wants = item(1, "w/fg", kSchedOther, 0, "w/fg", kSchedOther, 0, false);
  wants.target.slice = microseconds(100);
  ASSERT_EQ(plan({wants}).actions.size(), 1u);
  EXPECT_EQ(plan({wants}).actions[0].kind, Action::Kind::kSetSched);
  wants.observed.slice = microseconds(100);
  EXPECT_TRUE(plan({wants}).actions.empty());
  auto reset = item(2, "w/bg", kSchedOther, 0, "w/bg", kSchedOther, 0, false);
  reset.observed.slice = microseconds(100);
  EXPECT_TRUE(plan({reset}).actions.empty());  // not ours to hold
  reset.target.slice = microseconds(0);        // ours: back to the default
  EXPECT_EQ(plan({reset}).actions.size(), 1u);
}

}  // namespace
}  // namespace cpuclass::decide
