// Reads policy YAML into a validated Policy, strictly: unknown keys, duplicate keys, wrong types,
// out-of-range values, bad regexes, undefined classes and duplicate workers are all errors, and
// every error in every file is reported, each as file:line:col. The only file that sees yaml-cpp.
#pragma once

#include <optional>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/diagnostic.h"
#include "policy/policy.h"

namespace cpuclass::policy {

struct LoadResult {
  std::optional<Policy> policy;  // only when there is no diagnostic
  std::vector<Diagnostic> diagnostics;
};

struct PolicySource {
  std::string name;  // how diagnostics name it: the path as given
  std::string text;
};

// Files applied in order; later files refine earlier ones (docs/policy.md, "Drop-ins").
LoadResult parsePolicy(const std::vector<PolicySource>& sources);

// The main file, then every *.yaml in dropin_dir in lexical order. A missing main file is an error;
// a missing drop-in directory is not.
LoadResult loadPolicy(const std::string& main_file, const std::string& dropin_dir);

// Where drop-ins for a main file live: policy.d next to it.
std::string dropinDirFor(const std::string& main_file);

// `--check-policy` of cpuclassd and cpuclassctl: every diagnostic, compiler style, on `err`,
// then the error count, or a summary on `out`. 0 for a policy that loads, 1 otherwise.
int checkPolicyFile(const std::string& main_file, std::FILE* out, std::FILE* err);

}  // namespace cpuclass::policy
