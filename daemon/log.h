// The daemon's only logger: stderr lines with "<N>" syslog-level prefixes, which journald turns
// into priorities. Library modules never log; they return errors and counters.
#pragma once

#include <fmt/format.h>

#include <cstdio>

#include "policy/policy.h"

namespace cpuclass::daemon {

using policy::LogLevel;

class Logger {
 public:
  explicit Logger(LogLevel min = LogLevel::kInfo, std::FILE* out = stderr) : min_(min), out_(out) {}
  void setLevel(LogLevel min) { min_ = min; }
  bool enabled(LogLevel level) const { return level >= min_; }

  template <class... Args>
  void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
    if (!enabled(level)) return;
    write(level, fmt::format(f, std::forward<Args>(args)...));
  }
  template <class... Args>
  void debug(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kDebug, f, std::forward<Args>(a)...); }
  template <class... Args>
  void info(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kInfo, f, std::forward<Args>(a)...); }
  template <class... Args>
  void notice(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kNotice, f, std::forward<Args>(a)...); }
  template <class... Args>
  void warning(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kWarning, f, std::forward<Args>(a)...); }
  template <class... Args>
  void error(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kError, f, std::forward<Args>(a)...); }

 private:
  void write(LogLevel level, const std::string& line);
  LogLevel min_;
  std::FILE* out_;
};

}  // namespace cpuclass::daemon
