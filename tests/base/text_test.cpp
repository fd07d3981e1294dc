#include "base/text.h"

#include <gtest/gtest.h>

namespace cpuclass {
namespace {

TEST(Text, TrimAndSplit) {
  EXPECT_EQ(trim("  a b \n"), "a b");
  EXPECT_EQ(trim(" \n"), "");
  const auto f = splitFields("  1 2\t3\n");
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[2], "3");
  const auto l = splitLines("a\n\nb\n");
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[1], "");
  EXPECT_EQ(l[2], "b");
}

TEST(Text, ParseIntRejectsJunk) {
  EXPECT_EQ(parseInt("-12"), -12);
  EXPECT_EQ(parseUint("18446744073709551615"), 18446744073709551615ull);
  EXPECT_FALSE(parseInt(""));
  EXPECT_FALSE(parseInt("12x"));
  EXPECT_FALSE(parseUint("-1"));
  EXPECT_FALSE(parseInt("99999999999999999999"));
}

}  // namespace
}  // namespace cpuclass
