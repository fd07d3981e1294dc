#include "daemon/daemon.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "cgroups/features.h"
#include "cgroups/sched.h"
#include "daemon/bus_service.h"
#include "daemon/manager.h"
#include "daemon/systemd_units.h"
#include "daemon/metrics_publisher.h"
#include "metrics/exposition.h"
#include "policy/policy_loader.h"

namespace cpuclass::daemon {
namespace {

using std::chrono::microseconds;

// The loop's thread gets a short EEVDF slice: a wait report or a poll timer then preempts a
// CPU hog at wake-up instead of waiting until the hog's slice ends (seen at a tick). Wait
// reports' item p99: 2.75 ms with it, 3.40 ms without (docs/boosting.md, "Round 5").
constexpr microseconds kOwnSlice{100};
// The poll's pace while it has nothing to watch; anything that gives it work wakes it at once.
constexpr microseconds kSleepingPoll{1'000'000};

// Owns the loop's sources; every sd-event callback lands in one of its methods and never lets
// an exception escape into C.
class Loop {
 public:
  Loop(const Options& options, Logger& log, Manager& manager, MetricsPublisher& publisher,
       std::optional<cgroups::ProcConnector> connector)
      : options_(options), log_(log), manager_(manager), publisher_(publisher), connector_(std::move(connector)) {}
  ~Loop() {
    for (auto* s : sources_) sd_event_source_unref(s);
    sd_event_unref(event_);
  }

  Result<void> setUp() {
    if (int r = sd_event_default(&event_); r < 0) return fail(-r, "sd_event_default failed");
    sigset_t mask;
    sigemptyset(&mask);
    for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&mask, sig);
    // sd_event_add_signal needs the signals blocked first (LIBRARY_NOTES).
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return failErrno("sigprocmask");
    for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
      sd_event_source* s = nullptr;
      if (int r = sd_event_add_signal(event_, &s, sig, &Loop::onSignal, this); r < 0) {
        return fail(-r, std::string("sd_event_add_signal: ") + std::strerror(-r));
      }
      sources_.push_back(s);
    }
    if (connector_) {
      sd_event_source* s = nullptr;
      if (int r = sd_event_add_io(event_, &s, connector_->fd(), EPOLLIN, &Loop::onEvents, this); r < 0) {
        return fail(-r, std::string("sd_event_add_io: ") + std::strerror(-r));
      }
      sources_.push_back(s);
    }
    sd_event_source* timer = nullptr;
    if (int r = sd_event_add_time_relative(event_, &timer, CLOCK_MONOTONIC, rescanUsec(), 0, &Loop::onRescan, this); r < 0) {
      return fail(-r, std::string("sd_event_add_time_relative: ") + std::strerror(-r));
    }
    sources_.push_back(timer);
    sd_event_source* poll = nullptr;
    // Accuracy 1 us: sd-event's default (0) lets it coalesce the wake-up up to 250 ms later,
    // which made a 10 ms poll a ~250 ms one (found by the inversion bench).
    if (int r = sd_event_add_time_relative(event_, &poll, CLOCK_MONOTONIC, pollUsec(), 1, &Loop::onStarvationPoll, this); r < 0) {
      return fail(-r, std::string("sd_event_add_time_relative: ") + std::strerror(-r));
    }
    sources_.push_back(poll);
    poll_ = poll;
    // After every dispatch: a poll left asleep (nothing to watch) wakes as soon as there is.
    sd_event_source* wake = nullptr;
    if (int r = sd_event_add_post(event_, &wake, &Loop::onAfterDispatch, this); r < 0) {
      return fail(-r, std::string("sd_event_add_post: ") + std::strerror(-r));
    }
    sources_.push_back(wake);
    // Pings WATCHDOG=1 at half of WATCHDOG_USEC; a no-op outside systemd.
    (void)sd_event_set_watchdog(event_, true);
    return {};
  }

  int run() {
    sd_notifyf(false, "READY=1\nSTATUS=%s", manager_.status().c_str());
    log_.notice("started: {}", manager_.status());
    const int r = sd_event_loop(event_);
    sd_notify(false, "STOPPING=1");
    return r < 0 ? 1 : 0;
  }

  sd_event* event() const { return event_; }

  // SIGHUP and the D-Bus Reload method; true when the new policy is in force.
  bool reload() {
    sd_notify(false, "RELOADING=1");
    auto loaded = policy::loadPolicy(options_.policy_file, policy::dropinDirFor(options_.policy_file));
    if (!loaded.policy) {
      for (const auto& d : loaded.diagnostics) log_.error("{}", d.str());
      manager_.countReloadFailure();
      publisher_.publish(manager_);
      log_.error("reload failed with {} error(s); the previous policy stays in force", loaded.diagnostics.size());
      sd_notifyf(false, "READY=1\nSTATUS=%s", manager_.status().c_str());
      return false;
    } else {
      log_.setLevel(loaded.policy->daemon.log_level);
      if (loaded.policy->daemon.metrics_listen != manager_.policy().daemon.metrics_listen) {
        log_.notice("metrics_listen changes take effect at the next start, ignoring");
      }
      manager_.reload(std::move(*loaded.policy));
      publisher_.publish(manager_);
      log_.notice("reloaded {}: {}", options_.policy_file, manager_.status());
    }
    sd_notifyf(false, "READY=1\nSTATUS=%s", manager_.status().c_str());
    return true;
  }

 private:
  uint64_t rescanUsec() const {
    return static_cast<uint64_t>(std::chrono::duration_cast<microseconds>(manager_.policy().daemon.rescan_interval).count());
  }

  uint64_t pollUsec() const {
    return static_cast<uint64_t>(std::chrono::duration_cast<microseconds>(manager_.policy().daemon.starvation_poll).count());
  }

  static int onStarvationPoll(sd_event_source* s, uint64_t usec, void* userdata) {
    auto* self = static_cast<Loop*>(userdata);
    uint64_t next = usec + self->pollUsec();
    try {
      const bool retitled = self->manager_.retitleNewChildren(std::chrono::microseconds(usec));
      const auto poll = self->manager_.pollStarvation(std::chrono::microseconds(usec));
      if (poll.changed || retitled) self->publisher_.publish(self->manager_);
      next = static_cast<uint64_t>(std::chrono::duration_cast<microseconds>(poll.next).count());
      // Nothing to watch: each wake-up costs ~30 us on an idle 2-vCPU VM (docs/boosting.md).
      self->poll_sleeps_ = !self->manager_.pollHasWork();
      if (self->poll_sleeps_) next = usec + kSleepingPoll.count();
    } catch (const std::exception& e) {
      self->log_.error("starvation poll: {}", e.what());
    }
    (void)sd_event_source_set_time(s, std::max(next, usec + 1));
    (void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
  }

  static int onAfterDispatch(sd_event_source*, void* userdata) {
    auto* self = static_cast<Loop*>(userdata);
    uint64_t due = 0, now = 0;
    if (!self->poll_sleeps_ || !self->manager_.pollHasWork() || sd_event_source_get_time(self->poll_, &due) < 0 ||
        sd_event_now(self->event_, CLOCK_MONOTONIC, &now) < 0) {
      return 0;
    }
    if (due > now + self->pollUsec()) {
      self->poll_sleeps_ = false;
      (void)sd_event_source_set_time(self->poll_, now + self->pollUsec());
      (void)sd_event_source_set_enabled(self->poll_, SD_EVENT_ONESHOT);
    }
    return 0;
  }

  static int onSignal(sd_event_source*, const signalfd_siginfo* si, void* userdata) {
    auto* self = static_cast<Loop*>(userdata);
    try {
      switch (si->ssi_signo) {
        case SIGHUP: self->reload(); break;
        case SIGUSR1: self->report(); break;
        default:
          self->log_.info("received {}, stopping", strsignal(static_cast<int>(si->ssi_signo)));
          sd_event_exit(self->event_, 0);
      }
    } catch (const std::exception& e) {
      self->log_.error("signal handler: {}", e.what());
    }
    return 0;
  }

  static int onEvents(sd_event_source*, int, uint32_t, void* userdata) {
    auto* self = static_cast<Loop*>(userdata);
    try {
      bool lost = false;
      auto events = self->connector_->drain(lost);
      if (!events) {
        self->log_.error("{}; falling back to rescans", events.error().message);
        return 0;
      }
      self->manager_.handleEvents(*events, lost);
      self->publisher_.publish(self->manager_);
    } catch (const std::exception& e) {
      self->log_.error("event handler: {}", e.what());
    }
    return 0;
  }

  static int onRescan(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<Loop*>(userdata);
    try {
      self->manager_.rescan(false);
      self->publisher_.publish(self->manager_);
      // Only news: every datagram is work for PID 1 (and a full queue would block us).
      if (auto status = self->manager_.status(); status != self->last_status_) {
        sd_notifyf(false, "STATUS=%s", status.c_str());
        self->last_status_ = std::move(status);
      }
    } catch (const std::exception& e) {
      self->log_.error("rescan: {}", e.what());
    }
    (void)sd_event_source_set_time_relative(s, self->rescanUsec());
    (void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
  }

  void report() {
    const auto& st = manager_.stats();
    log_.notice("status: {}; drift corrected {}, realtime skipped {}, events {} (lost {}), rescans {}, reloads {} ({} failed)",
                manager_.status(), st.drift_corrections, st.realtime_skipped, st.proc_events, st.proc_events_lost, st.rescans,
                st.reloads, st.reload_failures);
    // The sample restarts at each report, so a benchmark gets one figure per repetition.
    const auto latencies = manager_.takePlacementLatencies();
    log_.notice("placement latency of new threads since the last report: n={} p50={}us p99={}us max={}us",
                latencies.size(), quantile(latencies, 0.5), quantile(latencies, 0.99), quantile(latencies, 1.0));
  }

  const Options& options_;
  Logger& log_;
  Manager& manager_;
  MetricsPublisher& publisher_;
  std::optional<cgroups::ProcConnector> connector_;
  sd_event* event_ = nullptr;
  std::vector<sd_event_source*> sources_;
  sd_event_source* poll_ = nullptr;  // the starvation poll's timer (owned through sources_)
  bool poll_sleeps_ = false;         // the poll was set kSleepingPoll ahead: nothing to watch
  std::string last_status_;  // the STATUS= last sent to the service manager
};

}  // namespace

uint32_t quantile(std::vector<uint32_t> sample, double p) {
  if (sample.empty()) return 0;
  const auto rank = static_cast<size_t>(p * static_cast<double>(sample.size() - 1) + 0.5);
  std::nth_element(sample.begin(), sample.begin() + static_cast<ptrdiff_t>(rank), sample.end());
  return sample[rank];
}

int runDaemon(const Options& options, Logger& log) {
  // Probes keep a /proc fd per watched thread; a pool of thousands outgrows the usual soft limit
  // of 1,024. The hard limit is ours to take.
  if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  auto loaded = policy::loadPolicy(options.policy_file, policy::dropinDirFor(options.policy_file));
  if (!loaded.policy) {
    for (const auto& d : loaded.diagnostics) log.error("{}", d.str());
    log.error("cannot start with a broken policy ({} error(s))", loaded.diagnostics.size());
    return 1;
  }
  log.setLevel(loaded.policy->daemon.log_level);
  const auto sliced = cgroups::setThreadSlice(0, kOwnSlice);
  if (!sliced) {
    log.warning("cannot shorten the daemon's own slice: {}", sliced.error().message);
  } else {
    log.debug("own slice {}us: {}", kOwnSlice.count(), *sliced ? "yes" : "not supported by this kernel");
  }

  auto proc = cgroups::ProcFs::openSystem();
  // Before any thread starts (the namespace is the calling thread's) and any cgroup path is read.
  if (const auto joined = proc ? proc->joinInitialCgroupNamespace() : Result<bool>(false); !joined) {
    return log.error("{}", joined.error().message), 1;
  } else if (*joined) {
    log.info("joined PID 1's cgroup namespace (the daemon's container has one of its own)");
  }
  auto mountinfo = proc ? proc->root().read("self/mountinfo") : Result<std::string>(tl::unexpected(proc.error()));
  auto layout = mountinfo ? cgroups::detectLayout(*mountinfo) : Result<cgroups::CgroupLayout>(tl::unexpected(mountinfo.error()));
  if (!layout) return log.error("cannot find the cgroup hierarchies: {}", layout.error().message), 1;
  auto tree = cgroups::ClassTree::openSystem(*layout);
  if (!tree) return log.error("{}", tree.error().message), 1;
  const auto features = cgroups::probeFeatures(*layout, *tree);
  std::string feature_text;
  for (const auto& [name, on] : cgroups::featureList(features)) feature_text += " " + name + "=" + (on ? "yes" : "no");
  log.info("cgroup mode {}, cpu controller at {} (v{});{}", cgroups::toString(layout->mode), layout->cpu.mount_point,
           layout->cpu.version, feature_text);

  if (::mkdir(options.state_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return log.error("cannot create {}: {}", options.state_dir, std::strerror(errno)), 1;
  }
  std::optional<cgroups::ProcConnector> connector;
  if (auto c = cgroups::ProcConnector::open(features.proc_connector_filter)) {
    connector.emplace(std::move(*c));
  } else {
    log.warning("{}; new threads are found by rescans only (every {}ms)", c.error().message,
                loaded.policy->daemon.rescan_interval.count());
  }

  // A second set of read-only cgroup handles for the scrape threads; the Manager's stay its own.
  auto readers = cgroups::ClassTree::openSystem(*layout);
  if (!readers) return log.error("{}", readers.error().message), 1;
  metrics::Sample fixed;
  fixed.version = CPUCLASS_VERSION;
  fixed.cgroup_mode = std::string(cgroups::toString(layout->mode));
  const std::string fixed_mode = fixed.cgroup_mode;
  auto proc_for_bus = cgroups::ProcFs::openSystem();  // the bus's own /proc handle
  if (!proc_for_bus) return log.error("{}", proc_for_bus.error().message), 1;
  fixed.features = cgroups::featureList(features);
  MetricsPublisher publisher(std::move(*readers), std::move(fixed));
  const std::string listen = loaded.policy->daemon.metrics_listen;

  // Subscribed before the first scan, so no thread created in between is missed.
  Manager manager(std::move(*loaded.policy), std::move(*tree), std::move(*proc), StateFile(options.state_dir + "/state"), log);
  manager.kernel_has_slices = sliced && *sliced;
  Loop loop(options, log, manager, publisher, std::move(connector));
  if (auto r = loop.setUp(); !r) return log.error("{}", r.error().message), 1;
  std::unique_ptr<SystemdUnits> systemd;
  if (layout->mode == cgroups::CgroupMode::kV2) {
    if (auto connected = SystemdUnits::connect(loop.event())) {
      systemd = std::move(*connected);
      manager.setUnitDelegates([&systemd](pid_t pid, Placer::UnitAnswer done) { systemd->askDelegates(pid, std::move(done)); });
    } else {
      log.notice("{}; only cgroups with the delegate xattr count as delegated", connected.error().message);
    }
  }
  manager.start();
  publisher.publish(manager);
  std::unique_ptr<metrics::Server> server;
  if (listen != "off") {
    if (auto started = metrics::Server::start(listen, [&publisher] { return publisher.sample(); })) {
      server = std::move(*started);
      log.notice("serving metrics on http://{}:{}/metrics", listen.substr(0, listen.rfind(':')), server->port());
    } else {
      // Protection matters more than observability: run on, without /metrics.
      log.error("{}; running without metrics", started.error().message);
    }
  }
  std::unique_ptr<BusService> bus;
  if (auto started = BusService::start(loop.event(), manager, *proc_for_bus, fixed_mode, cgroups::featureList(features),
                                       [&loop] { return loop.reload(); }, log)) {
    bus = std::move(*started);
    log.notice("D-Bus API org.cpuclass1 on the system bus");
  } else {
    log.notice("{}; the D-Bus API is off", started.error().message);
  }
  const int rc = loop.run();
  bus.reset();
  server.reset();  // no scrape may outlive what it reads
  manager.stop();
  return rc;
}

}  // namespace cpuclass::daemon
