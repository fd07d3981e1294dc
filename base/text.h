// Small pure helpers for the line- and field-oriented text of /proc and cgroupfs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cpuclass {

std::string_view trim(std::string_view s);

// Splits on any run of the given separator characters; no empty fields.
std::vector<std::string_view> splitFields(std::string_view s, std::string_view separators = " \t\n");

// Splits into lines, dropping a trailing empty line.
std::vector<std::string_view> splitLines(std::string_view s);

// Whole-string decimal parse; nullopt on any junk, sign misuse or overflow.
std::optional<int64_t> parseInt(std::string_view s);
std::optional<uint64_t> parseUint(std::string_view s);

}  // namespace cpuclass
