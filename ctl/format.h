// Pure rendering for cpuclassctl: aligned tables for people, JSON for scripts.
#pragma once

#include <string>
#include <vector>

namespace cpuclass::ctl {

// Columns padded to their widest cell, two spaces apart, header first (like systemctl list-*).
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// One JSON object per row, keys from the header (lower case), as a JSON array.
std::string jsonArray(const std::vector<std::string>& keys, const std::vector<std::vector<std::string>>& rows,
                      const std::vector<bool>& numeric);

}  // namespace cpuclass::ctl
