#include "policy/classifier.h"

#include <fnmatch.h>

#include <algorithm>

namespace cpuclass::policy {
namespace {

bool globMatches(const std::string& pattern, const std::string& s) {
  return ::fnmatch(pattern.c_str(), s.c_str(), 0) == 0;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The container criteria of a match, all of which must hold; true when there are none. A name,
// namespace or annotation holds only where the runtime's files said it (container_meta).
bool containerMatches(const WorkerMatch& m, const ProcessFacts& p) {
  if (!m.container && !m.pod && !m.qos && m.annotations.empty()) return true;
  const auto c = parseContainer(p.cgroup);
  if (!c) return false;
  const ContainerMeta* meta = p.container_meta ? &*p.container_meta : nullptr;
  if (m.container) {
    if (c->id.empty()) return false;
    const bool held = isContainerIdPrefix(*m.container)
                          ? c->id.starts_with(*m.container)
                          : globMatches(*m.container, c->id) || (meta && !meta->name.empty() && globMatches(*m.container, meta->name));
    if (!held) return false;
  }
  if (m.pod) {
    const bool held = isPodUid(*m.pod) ? *m.pod == c->pod_uid
                                       : meta && !meta->pod_name.empty() &&
                                             globMatches(*m.pod, meta->pod_namespace + "/" + meta->pod_name);
    if (!held) return false;
  }
  if (m.qos && m.qos != c->qos) return false;
  for (const auto& [key, glob] : m.annotations) {
    const auto it = meta ? meta->annotations.find(key) : std::map<std::string, std::string>::const_iterator{};
    if (!meta || it == meta->annotations.end() || !globMatches(glob, it->second)) return false;
  }
  return true;
}

bool processRuleMatches(const ProcessRule& r, const ProcessFacts& p) {
  return (!r.comm || r.comm->matches(p.comm)) && (!r.exe || globMatches(*r.exe, p.exe)) &&
         (!r.cmdline || r.cmdline->matches(p.cmdline));
}

// Programs that only start another program (exec or fork+exec) and carry its command line in
// their own: `sh -c 'mydb --x'`, `taskset -c 1 mydb`. A `cmdline` match must find the program,
// not its wrapper, which would otherwise own the program as a child process.
bool isWrapper(std::string_view exe) {
  static constexpr std::string_view kWrappers[] = {
      "sh", "bash", "dash", "zsh", "busybox", "env", "nohup", "nice", "ionice", "chrt", "taskset", "numactl",
      "setpriv", "setsid", "stdbuf", "timeout", "runuser", "su", "sudo", "xargs", "flock", "tini", "dumb-init"};
  const auto slash = exe.rfind('/');
  const auto name = slash == std::string_view::npos ? exe : exe.substr(slash + 1);
  return std::find(std::begin(kWrappers), std::end(kWrappers), name) != std::end(kWrappers);
}

}  // namespace

std::string ProcessFacts::unit() const {
  std::string_view rest = cgroup;
  std::string_view found;
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    const auto part = rest.substr(0, slash);
    if (endsWith(part, ".service") || endsWith(part, ".scope")) found = part;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return std::string(found);
}

const WorkerSpec* matchWorker(const Policy& policy, const ProcessFacts& p) {
  for (const auto& w : policy.workers) {
    const auto& m = w.match;
    if (m.exe && !globMatches(*m.exe, p.exe)) continue;
    if (m.comm && !m.comm->matches(p.comm)) continue;
    if (m.cmdline && (isWrapper(p.exe) || !m.cmdline->matches(p.cmdline))) continue;
    if (m.unit && *m.unit != p.unit()) continue;
    if (m.cgroup && !globMatches(*m.cgroup, p.cgroup)) continue;
    if (!containerMatches(m, p)) continue;
    return &w;
  }
  return nullptr;
}

SilentFacts silentFactsToWatch(const Policy& policy, const ProcessFacts& p) {
  SilentFacts watch;
  for (const auto& w : policy.workers) {
    const auto& m = w.match;
    if (m.exe && !globMatches(*m.exe, p.exe)) continue;
    if (m.comm && !m.comm->matches(p.comm)) continue;
    watch.cmdline |= m.cmdline && !isWrapper(p.exe);
    watch.cgroup |= m.unit || m.cgroup || m.container || m.pod || m.qos || !m.annotations.empty();
  }
  return watch;
}

bool needsContainerMeta(const Policy& policy) {
  return std::any_of(policy.workers.begin(), policy.workers.end(), [](const WorkerSpec& w) {
    const auto& m = w.match;
    return (m.container && !isContainerIdPrefix(*m.container)) || (m.pod && !isPodUid(*m.pod)) || !m.annotations.empty();
  });
}

bool processRulesReadCmdline(const WorkerSpec& worker) {
  return std::any_of(worker.processes.begin(), worker.processes.end(), [](const ProcessRule& r) { return r.cmdline.has_value(); });
}

Decision classifyThread(const Policy& policy, const ThreadQuery& q) {
  std::string note;
  if (q.requested_class) {
    if (policy.findClass(*q.requested_class) != nullptr) {
      return {std::string(*q.requested_class), "requested by the worker"};
    }
    note = " (the worker's request for class '" + std::string(*q.requested_class) + "' is void: no such class)";
  }
  const WorkerSpec& w = *q.worker;
  if (q.child_process != nullptr) {
    for (size_t i = 0; i < w.processes.size(); ++i) {
      const auto& r = w.processes[i];
      if (processRuleMatches(r, *q.child_process)) {
        return {r.class_name, "process rule " + std::to_string(i + 1) + " of worker '" + w.name + "' at " +
                                  r.where.str() + note};
      }
    }
  }
  for (size_t i = 0; i < w.threads.size(); ++i) {
    const auto& r = w.threads[i];
    if (r.comm.matches(q.comm)) {
      return {r.class_name, "thread rule " + std::to_string(i + 1) + " (comm '" + r.comm.text() + "') of worker '" +
                                w.name + "' at " + r.where.str() + note};
    }
  }
  const std::string where = w.default_where.file.empty() ? " (registered by the worker)" : " at " + w.default_where.str();
  return {w.default_class, "default class of worker '" + w.name + "'" + where + note};
}

}  // namespace cpuclass::policy
