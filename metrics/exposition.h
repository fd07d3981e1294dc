// Prometheus side: families from a Sample, a Collectable pulling a Sample at each scrape, and the
// HTTP endpoint. The only files that see prometheus-cpp.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "metrics/sample.h"

namespace prometheus {
class Exposer;
struct MetricFamily;
}  // namespace prometheus

namespace cpuclass::metrics {

// Pure: the families, names and help texts documented in docs/metrics.md.
std::vector<prometheus::MetricFamily> toFamilies(const Sample& sample);
// The text exposition format of a Sample, without HTTP (golden tests, debugging).
std::string toText(const Sample& sample);

// Serves /metrics on an IPv4 loopback or other address. The sampler runs on the HTTP server's
// threads, possibly concurrently: it must only read thread-safe state.
class Server {
 public:
  using Sampler = std::function<Sample()>;
  // "127.0.0.1:0" picks a free port. A busy port or bad address is an error, not an exception.
  static Result<std::unique_ptr<Server>> start(const std::string& listen, Sampler sampler);
  ~Server();
  int port() const;

 private:
  Server() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<class SampleCollectable> collectable_;
};

}  // namespace cpuclass::metrics
