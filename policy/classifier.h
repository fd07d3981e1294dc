// Pure decisions: which worker a process belongs to, and which class a thread gets and why.
// The reason is what `cpuclassctl explain` prints.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "policy/policy.h"

namespace cpuclass::policy {

// What the matcher needs to know about a process.
struct ProcessFacts {
  std::string comm;
  std::string exe;
  std::string cmdline;  // arguments joined by spaces
  std::string cgroup;   // path in the unified hierarchy (or v1 cpu), e.g. /system.slice/db.service
  // The container's names and annotations, where the policy needs them (needsContainerMeta) and
  // the process is in a container whose runtime records them.
  std::optional<ContainerMeta> container_meta;
  std::string unit() const;  // the systemd unit in `cgroup`: its last *.service or *.scope component
};

// The first worker, in policy order, whose every match criterion holds; nullptr if none. A
// `cmdline` criterion never holds for a wrapper (sh, env, taskset, numactl, runuser, ...), whose
// command line carries the program it starts: the program is matched once it runs.
const WorkerSpec* matchWorker(const Policy& policy, const ProcessFacts& process);

// Whether some worker matches containers or pods by name, namespace or annotation, which only the
// runtime's files say (ProcessFacts::container_meta).
bool needsContainerMeta(const Policy& policy);

// Facts that change with no kernel event: the command line (a process title rewritten in place
// through argv, as PostgreSQL and nginx do) and the cgroup (a process moved into a unit or
// container after it started). The proc connector reports the others (comm, exe).
struct SilentFacts {
  bool cmdline = false;
  bool cgroup = false;
  bool any() const { return cmdline || cgroup; }
};
// For a process no worker matches: the silent facts that could still make one match, given the
// facts events report. What the periodic rescan must re-read for it; nothing for most processes.
SilentFacts silentFactsToWatch(const Policy& policy, const ProcessFacts& process);
// Whether a worker's process rules read a child's command line (its title), which the periodic
// rescan must then re-read to reclassify the child.
bool processRulesReadCmdline(const WorkerSpec& worker);

struct ThreadQuery {
  const WorkerSpec* worker = nullptr;
  std::string_view comm;                           // the thread's name
  const ProcessFacts* child_process = nullptr;     // the thread is in a child process of the worker
  std::optional<std::string_view> requested_class;  // set by the worker itself (D-Bus, libcpuclass)
};

struct Decision {
  std::string class_name;
  std::string reason;
  bool operator==(const Decision&) const = default;
};

// Order: the worker's own request, a process rule (child processes only), the first matching
// thread rule, the worker's default class.
Decision classifyThread(const Policy& policy, const ThreadQuery& query);

}  // namespace cpuclass::policy
