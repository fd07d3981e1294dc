#include "cgroups/proc_parse.h"

#include <gtest/gtest.h>

#include "cgroups/hierarchy.h"
#include "tests/support/test_support.h"

namespace cpuclass::cgroups {
namespace {

using testing::readFixture;

TEST(ProcParse, StatOfAPlainProcess) {
  const auto st = parseStat(readFixture("proc/stat_cat.txt"));
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->comm, "cat");
  EXPECT_EQ(st->state, 'R');
  EXPECT_EQ(st->ppid, 3273);
  EXPECT_FALSE(st->kthread);
  EXPECT_EQ(st->nice, 0);
  EXPECT_EQ(st->num_threads, 1);
  EXPECT_EQ(st->start_time, 33253u);
  EXPECT_EQ(st->policy, kSchedOther);
}

TEST(ProcParse, StatWithParenthesesInCommAndIdlePolicy) {
  const auto st = parseStat(readFixture("proc/stat_idle_paren.txt"));
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->comm, "a) b (c");
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->nice, 5);
  EXPECT_EQ(st->num_threads, 3);
  EXPECT_EQ(st->policy, kSchedIdle);
  EXPECT_EQ(st->rt_priority, 0);
}

TEST(ProcParse, VoluntarySwitchesFromStatus) {
  const char* status = "Name:\toff-1\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t9\n";
  EXPECT_EQ(parseVoluntarySwitches(status), 1234u);
  EXPECT_FALSE(parseVoluntarySwitches("Name:\tx\n"));
}

TEST(ProcParse, TruncatedStatIsAnError) {
  const auto st = parseStat("12 (x) S 1 2 3");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message, "stat: too few fields");
  EXPECT_FALSE(parseStat("no parentheses"));
}

TEST(ProcParse, SchedStat) {
  const auto ss = parseSchedStat(readFixture("proc/schedstat.txt"));
  ASSERT_TRUE(ss);
  EXPECT_EQ(ss->runtime_ns, 1278228u);
  EXPECT_EQ(ss->run_delay_ns, 157187u);
  EXPECT_EQ(ss->timeslices, 2u);
  EXPECT_FALSE(parseSchedStat("1 2"));
}

TEST(ProcParse, CgroupFileHybrid) {
  const auto e = parseProcCgroup(readFixture("proc/cgroup_hybrid.txt"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->size(), 10u);
  EXPECT_EQ(cgroupPathOf(*e, "cpu"), "/");
  EXPECT_EQ(cgroupPathOf(*e, "cpuacct"), "/");
  EXPECT_EQ(cgroupPathOf(*e, ""), "/");
  EXPECT_EQ(cgroupPathOf(*e, "rdma"), std::nullopt);
}

TEST(ProcParse, CgroupFileV2) {
  const auto e = parseProcCgroup(readFixture("proc/cgroup_v2.txt"));
  ASSERT_TRUE(e);
  EXPECT_EQ(cgroupPathOf(*e, ""), "/system.slice/mydb.service/cpuclass/offload");
  EXPECT_EQ(cgroupPathOf(*e, "cpu"), std::nullopt);
  EXPECT_FALSE(parseProcCgroup("garbage\n"));
}

TEST(ProcParse, RealtimePolicies) {
  EXPECT_TRUE(isRealtimePolicy(kSchedFifo));
  EXPECT_TRUE(isRealtimePolicy(kSchedRr));
  EXPECT_TRUE(isRealtimePolicy(kSchedDeadline));
  EXPECT_FALSE(isRealtimePolicy(kSchedIdle));
  EXPECT_FALSE(isRealtimePolicy(kSchedBatch));
}

TEST(Shares, FromWeightWithKernelClamp) {
  EXPECT_EQ(sharesFromWeight(100), 1024u);
  EXPECT_EQ(sharesFromWeight(1000), 10240u);
  EXPECT_EQ(sharesFromWeight(1), 10u);
  EXPECT_EQ(sharesFromWeight(0), 2u);
  EXPECT_EQ(sharesFromWeight(10000), 102400u);
  EXPECT_EQ(sharesFromWeight(30000), 262144u);
}

}  // namespace
}  // namespace cpuclass::cgroups
