// The daemon process: one sd_event loop that reads like DESIGN.md's data flow.
#pragma once

#include <string>

#include "daemon/log.h"

namespace cpuclass::daemon {

struct Options {
  std::string policy_file = CPUCLASS_POLICY_FILE;
  std::string state_dir = "/run/cpuclassd";
};

// Runs until SIGTERM/SIGINT; returns the process exit code.
int runDaemon(const Options& options, Logger& log);

// p-th quantile (0..1) of a sample, nearest rank; 0 for an empty sample.
uint32_t quantile(std::vector<uint32_t> sample, double p);

}  // namespace cpuclass::daemon
