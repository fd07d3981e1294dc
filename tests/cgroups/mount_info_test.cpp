#include "cgroups/mount_info.h"

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace cpuclass::cgroups {
namespace {

using testing::readFixture;

TEST(MountInfo, HybridWithSeparateCpuacct) {
  const auto layout = detectLayout(readFixture("proc/mountinfo_hybrid.txt"));
  ASSERT_TRUE(layout) << layout.error().message;
  EXPECT_EQ(layout->mode, CgroupMode::kHybrid);
  EXPECT_EQ(layout->cpu.mount_point, "/sys/fs/cgroup/cpu");
  EXPECT_EQ(layout->cpu.version, 1);
  ASSERT_TRUE(layout->separate_cpuacct);
  EXPECT_EQ(layout->separate_cpuacct->mount_point, "/sys/fs/cgroup/cpuacct");
  ASSERT_TRUE(layout->unified);
  EXPECT_EQ(layout->unified->mount_point, "/sys/fs/cgroup/unified");
}

TEST(MountInfo, PureV2) {
  const auto layout = detectLayout(readFixture("proc/mountinfo_v2.txt"));
  ASSERT_TRUE(layout);
  EXPECT_EQ(layout->mode, CgroupMode::kV2);
  EXPECT_EQ(layout->cpu.mount_point, "/sys/fs/cgroup");
  EXPECT_EQ(layout->cpu.version, 2);
  EXPECT_FALSE(layout->separate_cpuacct);
}

TEST(MountInfo, V1WithComountedCpuacctAndNamedHierarchy) {
  const auto layout = detectLayout(readFixture("proc/mountinfo_v1_comounted.txt"));
  ASSERT_TRUE(layout);
  EXPECT_EQ(layout->mode, CgroupMode::kV1);
  EXPECT_EQ(layout->cpu.mount_point, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_TRUE(layout->cpu.has("cpuacct"));
  EXPECT_FALSE(layout->separate_cpuacct);
  EXPECT_FALSE(layout->unified);
}

TEST(MountInfo, UnescapesMountPointsAndKeepsRoot) {
  const auto mounts = parseCgroupMounts(readFixture("proc/mountinfo_escaped.txt"));
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].mount_point, "/mnt/my cgroups");
  EXPECT_EQ(mounts[1].root, "/sub");
}

TEST(MountInfo, NoCgroupsIsAnError) {
  const auto layout = detectLayout("28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n");
  ASSERT_FALSE(layout);
  EXPECT_EQ(layout.error().message, "no cgroup file system is mounted");
}

}  // namespace
}  // namespace cpuclass::cgroups
