#include "cgroups/proc_parse.h"

#include <algorithm>
#include <cerrno>

#include "base/text.h"

namespace cpuclass::cgroups {

bool isRealtimePolicy(int policy) {
  return policy == kSchedFifo || policy == kSchedRr || policy == kSchedDeadline;
}

Result<ThreadStat> parseStat(std::string_view text) {
  // comm may hold spaces and parentheses: it runs from the first '(' to the last ')'.
  const auto open = text.find('(');
  const auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return fail(EINVAL, "stat: no (comm) field");
  }
  ThreadStat st;
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  const auto rest = splitFields(text.substr(close + 1));
  // rest[0] is field 3 (state); field N is rest[N - 3].
  constexpr size_t kPolicy = 41 - 3;
  if (rest.size() <= kPolicy || rest[0].size() != 1) return fail(EINVAL, "stat: too few fields");
  const auto ppid = parseInt(rest[4 - 3]);
  const auto flags = parseUint(rest[9 - 3]);
  const auto nice = parseInt(rest[19 - 3]);
  const auto num_threads = parseInt(rest[20 - 3]);
  const auto start = parseUint(rest[22 - 3]);
  const auto rt_priority = parseInt(rest[40 - 3]);
  const auto policy = parseInt(rest[kPolicy]);
  if (!ppid || !flags || !nice || !num_threads || !start || !rt_priority || !policy) return fail(EINVAL, "stat: malformed number");
  constexpr uint64_t kPfKthread = 0x00200000;  // include/linux/sched.h
  st.state = rest[0][0];
  st.ppid = static_cast<pid_t>(*ppid);
  st.kthread = (*flags & kPfKthread) != 0;
  st.nice = static_cast<int>(*nice);
  st.num_threads = static_cast<int>(*num_threads);
  st.start_time = *start;
  st.rt_priority = static_cast<int>(*rt_priority);
  st.policy = static_cast<int>(*policy);
  return st;
}

Result<SchedStat> parseSchedStat(std::string_view text) {
  const auto f = splitFields(text);
  if (f.size() < 3) return fail(EINVAL, "schedstat: expected 3 fields");
  const auto a = parseUint(f[0]), b = parseUint(f[1]), c = parseUint(f[2]);
  if (!a || !b || !c) return fail(EINVAL, "schedstat: malformed number");
  return SchedStat{*a, *b, *c};
}

Result<uint64_t> parseVoluntarySwitches(std::string_view status_text) {
  for (const auto line : splitLines(status_text)) {
    const auto f = splitFields(line);
    if (f.size() == 2 && f[0] == "voluntary_ctxt_switches:") {
      if (const auto n = parseUint(f[1])) return *n;
    }
  }
  return fail(EINVAL, "status: no voluntary_ctxt_switches");
}

Result<std::vector<CgroupEntry>> parseProcCgroup(std::string_view text) {
  std::vector<CgroupEntry> out;
  for (const auto line : splitLines(text)) {
    if (trim(line).empty()) continue;
    const auto c1 = line.find(':');
    const auto c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return fail(EINVAL, "cgroup: malformed line '" + std::string(line) + "'");
    const auto id = parseInt(line.substr(0, c1));
    if (!id) return fail(EINVAL, "cgroup: malformed hierarchy id in '" + std::string(line) + "'");
    CgroupEntry e;
    e.hierarchy_id = static_cast<int>(*id);
    for (const auto c : splitFields(line.substr(c1 + 1, c2 - c1 - 1), ",")) e.controllers.emplace_back(c);
    e.path = std::string(line.substr(c2 + 1));
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<std::string> cgroupPathOf(const std::vector<CgroupEntry>& entries,
                                        std::string_view controller) {
  for (const auto& e : entries) {
    const bool match = controller.empty()
                           ? (e.hierarchy_id == 0 && e.controllers.empty())
                           : std::find(e.controllers.begin(), e.controllers.end(), controller) !=
                                 e.controllers.end();
    if (match) return e.path;
  }
  return std::nullopt;
}

}  // namespace cpuclass::cgroups
