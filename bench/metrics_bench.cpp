// cpuclass-metrics-bench: what one scrape of /metrics costs with WORKERS workers x 3 classes of
// real class groups (cgroup v1 cpu plus the accounting mirror), through the daemon's own
// publisher and the real HTTP exposer. Needs root; creates and removes cpuclass-mbench-<pid>.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cgroups/class_tree.h"
#include "daemon/metrics_publisher.h"
#include "metrics/exposition.h"
#include "tests/support/http_client.h"

using namespace cpuclass;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int workers = argc > 1 ? std::atoi(argv[1]) : 100;
  const int scrapes = argc > 2 ? std::atoi(argv[2]) : 50;
  if (::geteuid() != 0) return std::fprintf(stderr, "cpuclass-metrics-bench: needs root\n"), 2;
  auto self = cgroups::Dir::open("/proc/self");
  auto layout = cgroups::detectLayout(*self->read("mountinfo"));
  if (!layout) return std::fprintf(stderr, "%s\n", layout.error().message.c_str()), 1;
  auto tree = cgroups::ClassTree::openSystem(*layout);
  auto readers = cgroups::ClassTree::openSystem(*layout);
  if (!tree || !readers) return std::fprintf(stderr, "cannot open the cgroup hierarchies\n"), 1;
  const std::string top = "cpuclass-mbench-" + std::to_string(::getpid());

  std::vector<daemon::ClassGroupCount> groups;
  for (int w = 0; w < workers; ++w) {
    const std::string worker = "w" + std::to_string(w), base = top + "/" + worker;
    for (const char* cls : {"foreground", "background", "offload"}) {
      if (auto r = tree->ensureClass(base, cls, {100, std::string(cls) == "offload"}); !r) {
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return 1;
      }
      groups.push_back({worker, cls, base, 3});
    }
  }
  daemon::MetricsPublisher publisher(std::move(*readers), metrics::Sample{});
  publisher.publish(daemon::Stats{}, groups, groups.size() * 3, static_cast<uint64_t>(workers), true);
  auto server = metrics::Server::start("127.0.0.1:0", [&] { return publisher.sample(); });
  if (!server) return std::fprintf(stderr, "%s\n", server.error().message.c_str()), 1;

  std::vector<double> in_process_ms, http_ms;
  size_t bytes = 0;
  for (int i = 0; i < scrapes; ++i) {
    auto t0 = Clock::now();
    bytes = metrics::toText(publisher.sample()).size();
    in_process_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    t0 = Clock::now();
    const std::string body = testing::httpGet((*server)->port(), "/metrics");
    http_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (body.size() < bytes / 2) return std::fprintf(stderr, "short scrape\n"), 1;
  }
  std::printf("%d workers x 3 classes (%zu groups), %d scrapes, %zu bytes of exposition\n", workers, groups.size(),
              scrapes, bytes);
  std::printf("| scrape | median | max |\n|---|---|---|\n");
  std::printf("| sample + text, in process | %.2f ms | %.2f ms |\n", median(in_process_ms),
              *std::max_element(in_process_ms.begin(), in_process_ms.end()));
  std::printf("| HTTP GET /metrics, end to end | %.2f ms | %.2f ms |\n", median(http_ms),
              *std::max_element(http_ms.begin(), http_ms.end()));
  server->reset();
  for (int w = 0; w < workers; ++w) (void)tree->removeBase(top + "/w" + std::to_string(w));
  for (const cgroups::Hierarchy* h : {&tree->control(), tree->accounting()}) {
    if (h != nullptr) (void)h->removeGroup(top);
  }
  return 0;
}
