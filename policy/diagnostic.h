// A policy error, reported the way a compiler reports one: "file:line:col: message".
#pragma once

#include <string>
#include <vector>

#include "policy/policy.h"

namespace cpuclass::policy {

struct Diagnostic {
  SourceLocation where;
  std::string message;  // lower case, no trailing period, names the bad value
  std::string str() const { return where.str() + ": " + message; }
};

std::string formatDiagnostics(const std::vector<Diagnostic>& diagnostics);  // one per line

}  // namespace cpuclass::policy
