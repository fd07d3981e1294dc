#include "policy/policy.h"

#include <algorithm>

#include "policy/diagnostic.h"

namespace cpuclass::policy {

std::string SourceLocation::str() const {
  if (file.empty()) return "built-in";
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string formatDiagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) out += d.str() + "\n";
  return out;
}

std::string_view toString(ThreadSched s) {
  switch (s) {
    case ThreadSched::kOther: return "other";
    case ThreadSched::kBatch: return "batch";
    case ThreadSched::kIdle: return "idle";
  }
  return "other";
}

std::string_view toString(OnStop s) { return s == OnStop::kRestore ? "restore" : "keep"; }

std::string_view toString(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kNotice: return "notice";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

bool Pattern::matches(std::string_view s) const {
  return std::regex_match(s.begin(), s.end(), *re_);
}

const ClassSpec* Policy::findClass(std::string_view name) const {
  const auto it = std::find_if(classes.begin(), classes.end(), [&](const auto& c) { return c.name == name; });
  return it == classes.end() ? nullptr : &*it;
}

const WorkerSpec* Policy::findWorker(std::string_view name) const {
  const auto it = std::find_if(workers.begin(), workers.end(), [&](const auto& w) { return w.name == name; });
  return it == workers.end() ? nullptr : &*it;
}

std::vector<ClassSpec> builtinClasses() {
  // Weights as measured in KERNEL_NOTES (fg 10240 / bg 100 shares); offload is the one setup
  // that kept offload on idle CPU in every run: cpu.idle=1 plus SCHED_IDLE threads.
  std::vector<ClassSpec> out(3);
  out[0].name = "background";
  out[0].cpu_weight = 10;
  out[1].name = "foreground";
  out[1].cpu_weight = 1000;
  out[2].name = "offload";
  out[2].idle = true;
  out[2].sched = ThreadSched::kIdle;
  out[2].boost = BoostSpec{};
  return out;
}

}  // namespace cpuclass::policy
