#include "daemon/stats.h"

#include <fmt/format.h>

#include <cstring>

namespace cpuclass::daemon {

void countFailure(Stats& stats, const Error& e) {
  const char* name = ::strerrorname_np(e.code);
  ++stats.failures[name != nullptr ? std::string(name) : fmt::format("E{}", e.code)];
}

}  // namespace cpuclass::daemon
