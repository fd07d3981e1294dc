// The D-Bus API: org.cpuclass1 at /org/cpuclass1, interface org.cpuclass1.Manager, on the system
// bus (DBUS_SYSTEM_BUS_ADDRESS overrides it, as for every sd-bus program).
//
// Every method: read arguments -> validate -> authorize -> one Manager call -> reply. A caller
// may act on threads of its own process only (its PID and EUID come from the bus driver; the
// thread's ownership is checked in /proc and re-checked through a pidfd of the caller); EUID 0 may
// act on any thread. Errors are named org.cpuclass1.Error.*; every refusal is also counted.
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "daemon/log.h"
#include "daemon/manager.h"

namespace cpuclass::daemon {

// Per caller: a token bucket of `burst` calls refilled at `per_second`.
class RateLimiter {
 public:
  RateLimiter(double per_second, double burst) : rate_(per_second), burst_(burst) {}
  bool allow(pid_t caller, Nanos now);

 private:
  struct Bucket {
    double tokens;
    Nanos at;
  };
  double rate_, burst_;
  std::map<pid_t, Bucket> buckets_;
};

class BusService {
 public:
  using Reload = std::function<bool()>;  // true when the new policy was applied
  // Connects to the system bus, exports the object and takes the name.
  static Result<std::unique_ptr<BusService>> start(sd_event* event, Manager& manager, const cgroups::ProcFs& proc,
                                                   std::string cgroup_mode,
                                                   std::vector<std::pair<std::string, bool>> features, Reload reload,
                                                   Logger& log);
  ~BusService();
  BusService(const BusService&) = delete;
  BusService& operator=(const BusService&) = delete;

  // The introspection XML of the interface, as `cpuclassd --bus-introspect` prints it.
  static std::string introspection();

 private:
  BusService(Manager& manager, const cgroups::ProcFs& proc, std::string cgroup_mode,
             std::vector<std::pair<std::string, bool>> features, Reload reload, Logger& log)
      : manager_(manager),
        proc_(proc),
        cgroup_mode_(std::move(cgroup_mode)),
        features_(std::move(features)),
        reload_(std::move(reload)),
        log_(log) {}
  static const sd_bus_vtable* vtable();

  struct Caller {
    pid_t pid = 0;
    uid_t euid = 0;
  };
  // Who sent m; refuses callers over their rate. Sets `error` and returns nullopt on refusal.
  std::optional<Caller> admit(sd_bus_message* m, sd_bus_error* error);
  // Why the caller may not act on these threads by itself (not root, not its own threads):
  // the NotAuthorized message polkit can overrule; empty when it may.
  std::string notOwn(const Caller& caller, std::initializer_list<pid_t> tids) const;
  // What a method does once authorized: replies itself, or fails as a handler does (a negative
  // errno or `error` set).
  using Body = std::function<int(sd_bus_error* error)>;
  // Runs `body` at once when `refusal` is empty, else once polkit grants org.cpuclass1.manage
  // to the sender of m. polkit is asked asynchronously (sd_bus_call_async, no interaction, 2 s
  // at most), so the loop places threads and polls meanwhile; the reply follows its answer. No
  // polkit on the bus, a timeout or a no: NotAuthorized with `refusal`.
  int authorized(sd_bus_message* m, sd_bus_error* error, std::string refusal, Body body);
  struct PendingAuthorization;
  static int onPolkitReply(sd_bus_message* reply, void* userdata, sd_bus_error* error);
  // Runs a body, turning its failure into the method's error reply (an asynchronous one).
  int runBody(sd_bus_message* m, const Body& body);
  int refuse(sd_bus_error* error, const char* name, const std::string& message);
  // The Manager's errno kinds as the API's error names. ENOENT means what the method looked up
  // and found missing: a class unless `enoent` names another error.
  int fromResult(const Error& e, sd_bus_error* error, const char* enoent = nullptr);

  static int getStatus(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int listWorkers(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int explain(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int setThreadClass(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int resetThreadClass(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int reportWait(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int endWait(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int reload(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int listThreads(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int listClasses(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int boost(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int registerWorker(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int unregisterWorker(sd_bus_message* m, void* userdata, sd_bus_error* error);
  template <class F>
  static int guarded(void* userdata, sd_bus_error* error, F&& body);

  Manager& manager_;
  const cgroups::ProcFs& proc_;
  std::string cgroup_mode_;
  std::vector<std::pair<std::string, bool>> features_;
  Reload reload_;
  Logger& log_;
  sd_bus* bus_ = nullptr;
  sd_bus_slot* slot_ = nullptr;
  // Generous for a worker reporting waits from many threads; a flood still meets it.
  RateLimiter limiter_{2000, 2000};
};

}  // namespace cpuclass::daemon
