// Feeds /metrics without racing the loop: the loop publishes a copy of counters and group lists
// after each step; scrapes, on the HTTP server's threads, read that copy under a mutex and the
// kernel's counters (usage, PSI) through their own read-only cgroup handles.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cgroups/class_tree.h"
#include "daemon/manager.h"
#include "metrics/sample.h"

namespace cpuclass::daemon {

class MetricsPublisher {
 public:
  MetricsPublisher(cgroups::ClassTree readers, metrics::Sample fixed);
  // Loop thread.
  void publish(const Manager& manager);
  // `left_alone`: worker -> processes it may not manage.
  void publish(const Stats& stats, std::vector<ClassGroupCount> groups, uint64_t threads, uint64_t processes,
               bool per_worker, std::map<std::string, uint64_t> left_alone = {});
  // Any thread.
  metrics::Sample sample() const;

 private:
  cgroups::ClassTree readers_;  // used for reads only, so safe from several threads
  mutable std::mutex mu_;
  metrics::Sample published_;
  std::vector<ClassGroupCount> groups_;
  bool per_worker_ = true;
};

}  // namespace cpuclass::daemon
