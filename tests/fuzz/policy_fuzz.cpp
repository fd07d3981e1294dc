// libFuzzer target: the policy loader must turn any bytes into a Policy or diagnostics, never
// crash, hang or leak (run under ASan+UBSan).
#include <cstddef>
#include <cstdint>
#include <string>

#include "policy/policy_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Half the time split the input in two files, to reach the drop-in merge paths too.
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto cut = text.find("\n---8<---\n");
  std::vector<cpuclass::policy::PolicySource> sources;
  if (cut == std::string::npos) {
    sources.push_back({"fuzz.yaml", text});
  } else {
    sources.push_back({"fuzz.yaml", text.substr(0, cut)});
    sources.push_back({"policy.d/fuzz.yaml", text.substr(cut + 10)});
  }
  const auto result = cpuclass::policy::parsePolicy(sources);
  // Either a policy or at least one diagnostic, never both, never neither.
  if (result.policy.has_value() == !result.diagnostics.empty()) __builtin_trap();
  return 0;
}
