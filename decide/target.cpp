#include "decide/target.h"

#include <sched.h>

namespace cpuclass::decide {
namespace {

int kernelPolicy(policy::ThreadSched s) {
  switch (s) {
    case policy::ThreadSched::kOther: return SCHED_OTHER;
    case policy::ThreadSched::kBatch: return SCHED_BATCH;
    case policy::ThreadSched::kIdle: return SCHED_IDLE;
  }
  return SCHED_OTHER;
}

}  // namespace

std::optional<std::chrono::nanoseconds> sliceFor(const policy::ClassSpec& spec, bool realtime, bool kernel_has_slices,
                                                 bool slice_ours) {
  if (realtime || !kernel_has_slices) return std::nullopt;
  if (spec.slice.count() > 0) return spec.slice;
  return slice_ours ? std::optional(std::chrono::nanoseconds(0)) : std::nullopt;
}

Target targetFor(const TargetInput& in) {
  const auto& spec = in.spec;
  const bool boost = in.boosted && spec.boost.has_value();
  // A class in another's group is boosted in place (scheduling only); others move to _boost.
  const bool boost_moves = boost && spec.run_in.empty();
  const int nice = !boost ? spec.nice : in.explicit_wait ? spec.boost->wait_nice : spec.boost->nice;
  // A realtime class runs SCHED_RR, unless its guard holds it back on its fair settings.
  const int priority = in.realtime_held_back ? 0 : spec.realtime;
  Target out;
  out.thread = {in.base + "/" + (boost_moves ? kBoostGroup : in.host.name),
                priority > 0 ? SCHED_RR : kernelPolicy(boost ? spec.boost->sched : spec.sched),
                nice,
                priority,
                sliceFor(spec, priority > 0, in.kernel_has_slices, in.slice_ours),
                in.base + "/" + spec.name};
  out.settings = boost_moves ? GroupSettings{100, false, false}
                             : GroupSettings{in.host.cpu_weight, in.host.idle, in.host.realtime > 0};
  return out;
}

}  // namespace cpuclass::decide
