#include "base/text.h"

#include <charconv>

namespace cpuclass {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

std::vector<std::string_view> splitFields(std::string_view s, std::string_view separators) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const auto start = s.find_first_not_of(separators, pos);
    if (start == std::string_view::npos) break;
    const auto end = s.find_first_of(separators, start);
    out.push_back(s.substr(start, end == std::string_view::npos ? s.size() - start : end - start));
    pos = end == std::string_view::npos ? s.size() : end;
  }
  return out;
}

std::vector<std::string_view> splitLines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const auto end = s.find('\n', pos);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(pos));
      break;
    }
    out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

template <class T>
static std::optional<T> parseWhole(std::string_view s) {
  T value{};
  const auto* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (s.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::optional<int64_t> parseInt(std::string_view s) { return parseWhole<int64_t>(s); }
std::optional<uint64_t> parseUint(std::string_view s) { return parseWhole<uint64_t>(s); }

}  // namespace cpuclass
