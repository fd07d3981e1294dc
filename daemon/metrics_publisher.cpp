#include "daemon/metrics_publisher.h"

namespace cpuclass::daemon {

MetricsPublisher::MetricsPublisher(cgroups::ClassTree readers, metrics::Sample fixed)
    : readers_(std::move(readers)), published_(std::move(fixed)) {}

void MetricsPublisher::publish(const Manager& manager) {
  std::map<std::string, uint64_t> left_alone;
  for (const auto& [pid, p] : manager.leftAlone()) ++left_alone[p.worker];
  publish(manager.stats(), manager.classGroups(), manager.managedThreads(), manager.managedProcesses(),
          manager.policy().daemon.metrics_per_worker, std::move(left_alone));
}

void MetricsPublisher::publish(const Stats& st, std::vector<ClassGroupCount> groups, uint64_t threads,
                               uint64_t processes, bool per_worker, std::map<std::string, uint64_t> left_alone) {
  std::lock_guard lock(mu_);
  auto& s = published_;
  s.left_alone = std::move(left_alone);
  s.managed_threads = threads;
  s.managed_processes = processes;
  static_cast<metrics::Counters&>(s) = st;  // the daemon counts in /metrics's own struct
  groups_ = std::move(groups);
  per_worker_ = per_worker;
}

metrics::Sample MetricsPublisher::sample() const {
  metrics::Sample s;
  std::vector<ClassGroupCount> groups;
  bool per_worker = true;
  {
    std::lock_guard lock(mu_);
    s = published_;
    groups = groups_;
    per_worker = per_worker_;
  }
  // Computed now, from the kernel: exact, and includes threads that have exited.
  for (const auto& g : groups) {
    metrics::ClassSeries c{g.worker,
                           g.cls,
                           std::nullopt,
                           std::nullopt,
                           g.threads,
                           g.boosts.starvation_events,
                           g.boosts.boosts_started,
                           g.boosts.boosts_refused,
                           g.boosts.boosted_seconds};
    if (auto usage = readers_.usage(g.base, g.cls)) c.cpu_seconds = static_cast<double>(usage->count()) / 1e9;
    if (auto psi = readers_.pressure(g.base, g.cls)) c.pressure_seconds = static_cast<double>(psi->count()) / 1e6;
    s.classes.push_back(std::move(c));
  }
  s.classes = metrics::aggregateWorkers(s.classes, per_worker);
  return s;
}

}  // namespace cpuclass::daemon
