#include "daemon/log.h"

namespace cpuclass::daemon {

void Logger::write(LogLevel level, const std::string& line) {
  // sd-daemon(3) prefixes: <7> debug, <6> info, <5> notice, <4> warning, <3> error.
  int prio = 6;
  switch (level) {
    case LogLevel::kDebug: prio = 7; break;
    case LogLevel::kInfo: prio = 6; break;
    case LogLevel::kNotice: prio = 5; break;
    case LogLevel::kWarning: prio = 4; break;
    case LogLevel::kError: prio = 3; break;
  }
  std::fprintf(out_, "<%d>%s\n", prio, line.c_str());
  std::fflush(out_);
}

}  // namespace cpuclass::daemon
