#include "metrics/exposition.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <cerrno>
#include <exception>

namespace cpuclass::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  return MetricFamily{std::move(name), std::move(help), type, {}};
}

ClientMetric value(MetricType type, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) m.counter.value = v;
  else m.gauge.value = v;
  return m;
}

void add(std::vector<MetricFamily>& out, const std::string& name, const std::string& help, MetricType type, double v) {
  auto f = family(name, help, type);
  f.metric.push_back(value(type, v));
  out.push_back(std::move(f));
}

ClientMetric histogram(const Histogram& h) {
  ClientMetric m;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts().size(); ++i) {
    cumulative += h.counts()[i];
    m.histogram.bucket.push_back(
        {cumulative, i < h.bounds().size() ? h.bounds()[i] : std::numeric_limits<double>::infinity()});
  }
  m.histogram.sample_count = h.count();
  m.histogram.sample_sum = h.sum();
  return m;
}

}  // namespace

std::vector<MetricFamily> toFamilies(const Sample& s) {
  std::vector<MetricFamily> out;
  auto info = family("cpuclass_build_info", "Build of the running cpuclassd; the value is always 1", MetricType::Gauge);
  info.metric.push_back(value(MetricType::Gauge, 1, {{"version", s.version}}));
  out.push_back(std::move(info));
  auto kernel = family("cpuclass_kernel_info",
                       "Cgroup mode and kernel features in force (labels); the value is always 1", MetricType::Gauge);
  std::vector<ClientMetric::Label> labels{{"cgroup_mode", s.cgroup_mode}};
  for (const auto& [name, on] : s.features) labels.push_back({name, on ? "yes" : "no"});
  kernel.metric.push_back(value(MetricType::Gauge, 1, labels));
  out.push_back(std::move(kernel));

  auto cpu = family("cpuclass_class_cpu_seconds_total", "CPU time used by the threads of a class, from cgroup accounting",
                    MetricType::Counter);
  auto threads = family("cpuclass_class_threads", "Managed threads currently in a class", MetricType::Gauge);
  auto pressure = family("cpuclass_class_cpu_pressure_seconds_total",
                         "Time some thread of the class was runnable but waiting for a CPU (PSI some total)",
                         MetricType::Counter);
  auto starvation = family("cpuclass_class_starvation_events_total",
                           "Polls that found a runnable thread of the class not running", MetricType::Counter);
  auto boosts = family("cpuclass_class_boosts_total", "Boosts started for threads of the class", MetricType::Counter);
  auto refused = family("cpuclass_class_boosts_refused_total",
                        "Boosts refused by a budget (per worker, total, per second)", MetricType::Counter);
  auto boosted = family("cpuclass_class_boosted_seconds_total", "Time threads of the class spent boosted (ended boosts)",
                        MetricType::Counter);
  for (const auto& c : s.classes) {
    const std::vector<ClientMetric::Label> l{{"class", c.cls}, {"worker", c.worker}};
    if (c.cpu_seconds) cpu.metric.push_back(value(MetricType::Counter, *c.cpu_seconds, l));
    threads.metric.push_back(value(MetricType::Gauge, static_cast<double>(c.threads), l));
    if (c.pressure_seconds) pressure.metric.push_back(value(MetricType::Counter, *c.pressure_seconds, l));
    starvation.metric.push_back(value(MetricType::Counter, static_cast<double>(c.starvation_events), l));
    boosts.metric.push_back(value(MetricType::Counter, static_cast<double>(c.boosts_started), l));
    refused.metric.push_back(value(MetricType::Counter, static_cast<double>(c.boosts_refused), l));
    boosted.metric.push_back(value(MetricType::Counter, c.boosted_seconds, l));
  }
  out.push_back(std::move(cpu));
  out.push_back(std::move(threads));
  if (!pressure.metric.empty()) out.push_back(std::move(pressure));
  for (auto* f : {&starvation, &boosts, &refused, &boosted}) out.push_back(std::move(*f));

  using MT = MetricType;
  add(out, "cpuclass_managed_threads", "Threads the daemon manages", MT::Gauge, static_cast<double>(s.managed_threads));
  add(out, "cpuclass_managed_processes", "Processes of managed workers", MT::Gauge, static_cast<double>(s.managed_processes));
  add(out, "cpuclass_placements_total", "Threads moved into a class group", MT::Counter, static_cast<double>(s.placements));
  auto failures = family("cpuclass_placement_failures_total",
                         "Failed kernel operations on threads and groups, by errno name", MT::Counter);
  for (const auto& [reason, n] : s.failures) failures.metric.push_back(value(MT::Counter, static_cast<double>(n), {{"reason", reason}}));
  out.push_back(std::move(failures));
  auto left_alone = family("cpuclass_left_alone_processes",
                           "Worker processes the daemon may not manage: their cgroup is not delegated (see the log for the fix)",
                           MT::Gauge);
  for (const auto& [worker, n] : s.left_alone) left_alone.metric.push_back(value(MT::Gauge, static_cast<double>(n), {{"worker", worker}}));
  out.push_back(std::move(left_alone));
  auto refusals = family("cpuclass_bus_refusals_total", "D-Bus calls refused, by error name", MT::Counter);
  for (const auto& [reason, n] : s.bus_refusals) refusals.metric.push_back(value(MT::Counter, static_cast<double>(n), {{"reason", reason}}));
  out.push_back(std::move(refusals));
  add(out, "cpuclass_sched_changes_total", "Scheduling policy or nice changes applied to threads", MT::Counter,
      static_cast<double>(s.sched_changes));
  add(out, "cpuclass_threads_gone_total", "Threads that exited before the daemon could act on them", MT::Counter,
      static_cast<double>(s.threads_gone));
  add(out, "cpuclass_realtime_threads_skipped_total", "Real-time threads left alone (the kernel keeps them out of class groups)",
      MT::Counter, static_cast<double>(s.realtime_skipped));
  add(out, "cpuclass_realtime_held_back_total",
      "Times a worker's realtime class used more than its realtime_limit of the CPUs and went fair for a while", MT::Counter,
      static_cast<double>(s.realtime_held_back));
  add(out, "cpuclass_drift_corrections_total", "Threads someone else moved or re-prioritised, put back", MT::Counter,
      static_cast<double>(s.drift_corrections));
  add(out, "cpuclass_accounting_failures_total", "Threads that could not be mirrored into the accounting hierarchy",
      MT::Counter, static_cast<double>(s.accounting_failures));
  add(out, "cpuclass_proc_events_total", "Proc connector events received", MT::Counter, static_cast<double>(s.proc_events));
  add(out, "cpuclass_proc_events_lost_total", "Times the kernel dropped proc connector events (each causes a rescan)",
      MT::Counter, static_cast<double>(s.proc_events_lost));
  add(out, "cpuclass_rescans_total", "Full /proc rescans", MT::Counter, static_cast<double>(s.rescans));
  add(out, "cpuclass_policy_reloads_total", "Policy reloads applied", MT::Counter, static_cast<double>(s.reloads));
  add(out, "cpuclass_policy_reload_failures_total", "Policy reloads rejected (the old policy stayed in force)", MT::Counter,
      static_cast<double>(s.reload_failures));
  add(out, "cpuclass_policy_last_reload_success_timestamp_seconds", "Unix time of the last policy load that succeeded",
      MT::Gauge, s.last_reload_success_seconds);
  auto reconcile = family("cpuclass_reconcile_duration_seconds",
                          "Time to classify and place one batch of threads (events or a rescan)", MT::Histogram);
  reconcile.metric.push_back(histogram(s.reconcile_seconds));
  out.push_back(std::move(reconcile));
  auto latency = family("cpuclass_placement_latency_seconds",
                        "New threads: from the kernel's fork event to the end of their move", MT::Histogram);
  latency.metric.push_back(histogram(s.placement_latency_seconds));
  out.push_back(std::move(latency));
  return out;
}

std::string toText(const Sample& sample) { return prometheus::TextSerializer().Serialize(toFamilies(sample)); }

class SampleCollectable : public prometheus::Collectable {
 public:
  explicit SampleCollectable(Server::Sampler sampler) : sampler_(std::move(sampler)) {}
  std::vector<MetricFamily> Collect() const override { return toFamilies(sampler_()); }

 private:
  Server::Sampler sampler_;
};

Result<std::unique_ptr<Server>> Server::start(const std::string& listen, Sampler sampler) {
  std::unique_ptr<Server> s(new Server());
  try {
    // One worker thread is plenty for a scrape every few seconds and bounds our footprint.
    s->exposer_ = std::make_unique<prometheus::Exposer>(listen, 1);
  } catch (const std::exception& e) {
    return fail(EADDRINUSE, "cannot serve metrics on " + listen + ": " + e.what());
  }
  s->collectable_ = std::make_shared<SampleCollectable>(std::move(sampler));
  s->exposer_->RegisterCollectable(s->collectable_);
  return s;
}

Server::~Server() {
  if (exposer_) exposer_->RemoveCollectable(collectable_);
}

int Server::port() const {
  const auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace cpuclass::metrics
