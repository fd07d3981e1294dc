// cpuclassd: the composition root. Parses the command line, builds the real objects, runs.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cgroups/class_tree.h"
#include "cgroups/features.h"
#include "daemon/bus_service.h"
#include "daemon/daemon.h"
#include "policy/policy_loader.h"

namespace {

using namespace cpuclass;

int probe() {
  auto proc_self = cgroups::Dir::open("/proc/self");
  auto mountinfo = proc_self ? proc_self->read("mountinfo") : Result<std::string>(tl::unexpected(proc_self.error()));
  if (!mountinfo) return std::fprintf(stderr, "cpuclassd: %s\n", mountinfo.error().message.c_str()), 1;
  auto layout = cgroups::detectLayout(*mountinfo);
  if (!layout) return std::fprintf(stderr, "cpuclassd: %s\n", layout.error().message.c_str()), 1;
  std::printf("cgroup mode:           %s\n", std::string(cgroups::toString(layout->mode)).c_str());
  std::printf("cpu controller:        %s (cgroup v%d)\n", layout->cpu.mount_point.c_str(), layout->cpu.version);
  auto tree = cgroups::ClassTree::openSystem(*layout);
  if (!tree) return std::fprintf(stderr, "cpuclassd: %s\n", tree.error().message.c_str()), 1;
  if (const auto* acct = tree->accounting()) {
    std::printf("usage accounting:      mirror in %s (%s)\n", acct->root().path().c_str(),
                acct->version() == cgroups::CgroupVersion::kV2 ? "threaded cgroup2 groups" : "cpuacct");
  } else {
    std::printf("usage accounting:      the cpu hierarchy itself\n");
  }
  for (const auto& [name, on] : cgroups::featureList(cgroups::probeFeatures(*layout, *tree))) {
    std::printf("%-23s%s\n", (name + ":").c_str(), on ? "yes" : "no");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cpuclassd: CPU classes for the threads of database-like servers"};
  bool do_probe = false;
  app.add_flag("--probe", do_probe, "print the detected cgroup layout and kernel features, then exit");
  daemon::Options options;
  app.add_option("--policy", options.policy_file, "main policy file; drop-ins are read from policy.d next to it")
      ->capture_default_str();
  app.add_option("--state-dir", options.state_dir, "where thread origins are kept across restarts")
      ->capture_default_str();
  std::optional<std::string> check_file;
  app.add_option("--check-policy", check_file, "check a policy file (and its policy.d) and exit")
      ->expected(0, 1);
  bool introspect = false;
  app.add_flag("--bus-introspect", introspect, "print the D-Bus interface XML and exit");
  CLI11_PARSE(app, argc, argv);
  if (introspect) return std::fputs(daemon::BusService::introspection().c_str(), stdout) < 0;
  if (do_probe) return probe();
  if (app.count("--check-policy") > 0) return policy::checkPolicyFile(check_file && !check_file->empty() ? *check_file : options.policy_file, stdout, stderr);
  daemon::Logger log;
  return daemon::runDaemon(options, log);
}
