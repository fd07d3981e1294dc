#include "ctl/format.h"

#include <gtest/gtest.h>

namespace cpuclass::ctl {
namespace {

TEST(CtlFormat, TableAlignsColumns) {
  EXPECT_EQ(table({"TID", "CLASS"}, {{"12345", "offload"}, {"7", "fg"}}),
            "TID    CLASS\n"
            "12345  offload\n"
            "7      fg\n");
}

TEST(CtlFormat, JsonKeepsNumbersAndBooleansTyped) {
  EXPECT_EQ(jsonArray({"tid", "class", "boosted"}, {{"42", "offload", "true"}}, {true, false, true}),
            "[\n  {\n    \"boosted\": true,\n    \"class\": \"offload\",\n    \"tid\": 42\n  }\n]\n");
  EXPECT_EQ(jsonArray({"a"}, {}, {false}), "[]\n");
}

}  // namespace
}  // namespace cpuclass::ctl
