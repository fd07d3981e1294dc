#include "ctl/format.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace cpuclass::ctl {

std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size() && c < width.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  std::string out;
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < cells.size(); ++c) {
      l += cells[c];
      if (c + 1 < cells.size()) l += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

std::string jsonArray(const std::vector<std::string>& keys, const std::vector<std::vector<std::string>>& rows,
                      const std::vector<bool>& numeric) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json o = nlohmann::json::object();
    for (size_t c = 0; c < keys.size() && c < r.size(); ++c) {
      if (c < numeric.size() && numeric[c]) {
        o[keys[c]] = r[c] == "true" ? nlohmann::json(true) : r[c] == "false" ? nlohmann::json(false) : nlohmann::json::parse(r[c]);
      } else {
        o[keys[c]] = r[c];
      }
    }
    array.push_back(std::move(o));
  }
  return array.dump(2) + "\n";
}

}  // namespace cpuclass::ctl
