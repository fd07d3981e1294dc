// The class groups of managed workers, kept consistent across the hierarchies that must agree on
// where a thread is.
//
// `control` is the hierarchy with the cpu controller. On v1 and hybrid systems the cpu controller
// keeps no usage counter, so an `accounting` mirror holds the same groups: threaded groups in the
// controller-less cgroup2 mount (exact usage_usec plus PSI), or else a separate v1 cpuacct mount.
// A thread is placed in both; the mirror never affects scheduling.
//
// A worker's groups live under a base path chosen by the caller:
//   v1/hybrid:  <prefix>/<worker>/<class>      (v1Base)
//   pure v2:    <worker cgroup>/cpuclass/<class>, the base a threaded domain holding the worker's
//               processes, the classes threaded children with +cpu enabled above them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cgroups/hierarchy.h"
#include "cgroups/mount_info.h"
#include "cgroups/proc_parse.h"
#include "cgroups/thread_probe.h"

namespace cpuclass::cgroups {

class ClassTree {
 public:
  ClassTree(Hierarchy control, std::optional<Hierarchy> accounting);
  // Opens the real mounts of `layout`; picks the accounting mirror as described above.
  static Result<ClassTree> openSystem(const CgroupLayout& layout);

  static std::string v1Base(std::string_view prefix, std::string_view worker);
  // The name of the domain our class groups hang from inside a delegated worker cgroup.
  static constexpr std::string_view kV2Domain = "cpuclass";
  // v2: the worker's own cgroup (the delegation point) for a process's cgroup path as in
  // /proc/<pid>/cgroup: the path itself, or what is above our domain once we placed it.
  static std::string delegationPointOf(std::string_view process_cgroup);
  static std::string v2Base(std::string_view delegation_point);

  // v2: makes base (a domain below the delegation point) the home of every process of the
  // delegation point and enables +cpu there. A no-op on v1. The kernel's no-internal-process
  // rule is why all of them move: the delegation point cannot hold processes and pass cpu down.
  Result<void> enterBase(std::string_view base) const;

  // Creates or adopts base/cls with its settings (and, on v2, the threaded type and +cpu above).
  Result<void> ensureClass(std::string_view base, std::string_view cls, CpuSettings settings) const;
  // Places threads in base/cls of every hierarchy. The control move decides the outcome; a
  // failed mirror move is reported in `accounting_failures` and does not undo the control move.
  struct Placement {
    std::vector<BatchItem> items;
    size_t accounting_failures = 0;
  };
  // `accounting_cls` (default: cls) names the mirror group, for a class running in another's group.
  Result<Placement> place(std::string_view base, std::string_view cls, std::span<const pid_t> tids,
                          std::string_view accounting_cls = {}) const;
  // Creates or adopts base/cls in the accounting mirror only; a no-op without a mirror.
  Result<void> ensureAccounting(std::string_view base, std::string_view cls) const;
  // Moves a thread back to the groups listed in its original /proc/<tid>/cgroup. On v2 a thread
  // cannot leave its process's threaded domain: it goes to `home`, the base, instead.
  Result<Outcome> restore(pid_t tid, const std::vector<CgroupEntry>& original, std::string_view home = {}) const;
  // The group a thread is in, in the control hierarchy, from its /proc/<tid>/cgroup entries.
  std::optional<std::string> controlGroupOf(const std::vector<CgroupEntry>& entries) const;
  // The same in the accounting mirror; nullopt without one.
  std::optional<std::string> accountingGroupOf(const std::vector<CgroupEntry>& entries) const;

  Result<std::vector<std::string>> children(std::string_view group) const { return control_.children(group); }
  // Removes base/<each class> and base in every hierarchy. EBUSY while threads remain. On v2
  // the processes in base go back to the delegation point first, with +cpu disabled above.
  Result<void> removeBase(std::string_view base) const;
  // Exact CPU time of base/cls: from the accounting mirror, or the control hierarchy on v2.
  Result<std::chrono::nanoseconds> usage(std::string_view base, std::string_view cls) const;
  // PSI of base/cls where a v2 hierarchy holds it (the mirror, or the control on v2).
  Result<std::chrono::microseconds> pressure(std::string_view base, std::string_view cls) const;
  // Its cpu.pressure kept open, for a read every poll (Hierarchy::cpuPressure(KeptFile)).
  Result<KeptFile> keepPressureFile(std::string_view base, std::string_view cls) const;

  const Hierarchy& control() const { return control_; }
  const Hierarchy* accounting() const { return accounting_ ? &*accounting_ : nullptr; }

 private:
  Result<void> leaveBase(std::string_view base) const;
  Result<void> makeThreadedPath(const Hierarchy& h, std::string_view group) const;
  std::optional<std::string> pathIn(const Hierarchy& h, const std::vector<CgroupEntry>& entries) const;

  Hierarchy control_;
  std::optional<Hierarchy> accounting_;
};

// Keeps the next thread moves fast. Moving any thread but the writer itself takes the kernel's
// cgroup_threadgroup_rwsem for writing, which first waits for an RCU grace period (~6.5 ms here)
// unless a writer released it within the last ~15 ms; then a move takes ~20 us. Writing the
// calling thread's own tid (not 0, which skips the lock) into the control group it is in takes
// the lock and migrates nothing; every 10 ms, it keeps moves fast (docs/boosting.md, "Round 7").
// Fork, exit and exec take the lock's slower read path while it is warm (no difference measured
// in their rates). Its /proc cgroup file and the group's threads file stay open; the first is
// read before each write, so a move of the caller by someone else is followed, not undone.
class MoveKeeper {
 public:
  static Result<MoveKeeper> forCallingThread(const ProcFs& proc);
  Result<void> keep(const ClassTree& tree);

 private:
  MoveKeeper(ThreadProbe self, pid_t tid) : self_(std::move(self)), tid_(tid) {}
  ThreadProbe self_;
  pid_t tid_;
  std::string group_;                  // the control group threads_file_ is in
  std::optional<KeptFile> threads_file_;
};

}  // namespace cpuclass::cgroups
