#include "daemon/stats.h"

#include <cstring>

namespace cpuclass::daemon {

void countFailure(Stats& stats, const Error& e) {
  const char* name = ::strerrorname_np(e.code);
  ++stats.failures[name != nullptr ? name : "E" + std::to_string(e.code)];
}

}  // namespace cpuclass::daemon
