#include "decide/planner.h"

namespace cpuclass::decide {

Plan plan(const std::vector<PlanItem>& items) {
  Plan out;
  std::vector<Action> sched;
  for (const auto& item : items) {
    if (item.observed.realtime && !item.observed.realtime_ours) {
      out.realtime.push_back(item.tid);
      continue;
    }
    const bool sched_off = item.observed.policy != item.target.policy || item.observed.nice != item.target.nice ||
                           item.observed.priority != item.target.priority ||
                           (item.target.slice && *item.target.slice != item.observed.slice);
    if (sched_off && item.observed.realtime && item.target.priority == 0) {
      out.before_moves.push_back({Action::Kind::kSetSched, item.tid, item.target});
    } else if (sched_off) {
      sched.push_back({Action::Kind::kSetSched, item.tid, item.target});
    }
    const bool mirror_off = !item.target.accounting_group.empty() && item.observed.accounting_group &&
                            *item.observed.accounting_group != item.target.accounting_group;
    if (item.observed.group != item.target.group || mirror_off) out.actions.push_back({Action::Kind::kMove, item.tid, item.target});
  }
  out.actions.insert(out.actions.end(), sched.begin(), sched.end());
  return out;
}

}  // namespace cpuclass::decide
