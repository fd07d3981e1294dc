#include "cgroups/mount_info.h"

#include <algorithm>
#include <cerrno>

#include "base/text.h"

namespace cpuclass::cgroups {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo (proc_pid_mountinfo(5)).
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const auto oct = s.substr(i + 1, 3);
      const auto is_octal = [](char c) { return c >= '0' && c <= '7'; };
      if (std::all_of(oct.begin(), oct.end(), is_octal)) {
        out.push_back(static_cast<char>((oct[0] - '0') * 64 + (oct[1] - '0') * 8 + (oct[2] - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

std::string_view toString(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::kV2: return "v2";
    case CgroupMode::kHybrid: return "hybrid";
    case CgroupMode::kV1: return "v1";
  }
  return "unknown";
}

bool CgroupMount::has(std::string_view controller) const {
  return std::find(controllers.begin(), controllers.end(), controller) != controllers.end();
}

std::vector<CgroupMount> parseCgroupMounts(std::string_view mountinfo) {
  std::vector<CgroupMount> out;
  for (const auto line : splitLines(mountinfo)) {
    const auto fields = splitFields(line, " ");
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 6 || dash == fields.end() || fields.end() - dash < 4) continue;
    const auto fstype = *(dash + 1);
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    CgroupMount m;
    m.root = unescape(fields[3]);
    m.mount_point = unescape(fields[4]);
    m.version = fstype == "cgroup2" ? 2 : 1;
    if (m.version == 1) {
      for (const auto opt : splitFields(*(dash + 3), ",")) {
        if (opt == "rw" || opt == "ro" || opt.find('=') != std::string_view::npos) continue;
        m.controllers.emplace_back(opt);
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

Result<CgroupLayout> detectLayout(std::string_view mountinfo) {
  const auto mounts = parseCgroupMounts(mountinfo);
  CgroupLayout layout;
  const CgroupMount* v1_cpu = nullptr;
  const CgroupMount* v1_cpuacct = nullptr;
  bool any_v1_controller = false;
  for (const auto& m : mounts) {
    if (m.version == 2) {
      if (!layout.unified) layout.unified = m;
      continue;
    }
    if (!m.controllers.empty()) any_v1_controller = true;
    if (m.has("cpu") && v1_cpu == nullptr) v1_cpu = &m;
    if (m.has("cpuacct") && v1_cpuacct == nullptr) v1_cpuacct = &m;
  }
  if (!any_v1_controller && !layout.unified) return fail(ENOENT, "no cgroup file system is mounted");
  if (!any_v1_controller) {
    layout.mode = CgroupMode::kV2;
    layout.cpu = *layout.unified;
    return layout;
  }
  layout.mode = layout.unified ? CgroupMode::kHybrid : CgroupMode::kV1;
  if (v1_cpu != nullptr) {
    layout.cpu = *v1_cpu;
    if (v1_cpuacct != nullptr && v1_cpuacct != v1_cpu) layout.separate_cpuacct = *v1_cpuacct;
  } else if (layout.unified) {
    layout.cpu = *layout.unified;  // hybrid with cpu left to cgroup2
  } else {
    return fail(ENOENT, "the cpu controller is not mounted");
  }
  return layout;
}

}  // namespace cpuclass::cgroups
