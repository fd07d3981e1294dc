#include "daemon/bus_service.h"

#include <sys/types.h>
#include <time.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <exception>
#include <vector>

namespace cpuclass::daemon {
namespace {

constexpr const char* kObject = "/org/cpuclass1";
constexpr const char* kInterface = "org.cpuclass1.Manager";
constexpr const char* kName = "org.cpuclass1";
constexpr const char* kNoSuchThread = "org.cpuclass1.Error.NoSuchThread";
constexpr const char* kNoSuchClass = "org.cpuclass1.Error.NoSuchClass";
constexpr const char* kNotAuthorized = "org.cpuclass1.Error.NotAuthorized";
constexpr const char* kRateLimited = "org.cpuclass1.Error.RateLimited";
constexpr const char* kInvalidArgument = "org.cpuclass1.Error.InvalidArgument";
constexpr const char* kNoSuchWait = "org.cpuclass1.Error.NoSuchWait";
constexpr const char* kFailed = "org.cpuclass1.Error.Failed";

std::string_view verdictName(BoostVerdict v) {
  switch (v) {
    case BoostVerdict::kStarted: return "started";
    case BoostVerdict::kAlreadyBoosted: return "extended";
    case BoostVerdict::kCoolingDown: return "cooling_down";
    case BoostVerdict::kWorkerBudget: return "refused_worker_budget";
    case BoostVerdict::kTotalBudget: return "refused_total_budget";
    case BoostVerdict::kRateLimited: return "refused_rate";
  }
  return "unknown";
}

// Every reply that is more than sd_bus_reply_method_return's one line is built here: `fill(out)`
// appends the values; the reply is sent only when all of them went in.
template <class Fill>
int reply(sd_bus_message* m, Fill&& fill) {
  sd_bus_message* out = nullptr;
  int r = sd_bus_message_new_method_return(m, &out);
  if (r >= 0) r = fill(out);
  if (r >= 0) r = sd_bus_send(nullptr, out, nullptr);
  sd_bus_message_unref(out);
  return r;
}

// Appends an array of `element`s, one per item, `append(out, item)` writing each.
template <class Items, class Append>
int appendArray(sd_bus_message* out, const char* element, const Items& items, Append&& append) {
  int r = sd_bus_message_open_container(out, 'a', element);
  for (const auto& item : items) {
    if (r < 0) break;
    r = append(out, item);
  }
  return r >= 0 ? sd_bus_message_close_container(out) : r;
}

}  // namespace

bool RateLimiter::allow(pid_t caller, Nanos now) {
  if (buckets_.size() > 4096) buckets_.clear();  // callers come and go; a fresh bucket is full
  auto [it, inserted] = buckets_.try_emplace(caller, Bucket{burst_, now});
  Bucket& b = it->second;
  b.tokens = std::min(burst_, b.tokens + rate_ * std::chrono::duration<double>(now - b.at).count());
  b.at = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

const sd_bus_vtable* BusService::vtable() {
  // UNPRIVILEGED methods authorize in the daemon; Reload keeps sd-bus's own check (the caller
  // needs CAP_SYS_ADMIN on the system bus).
  static const sd_bus_vtable table[] = {
      SD_BUS_VTABLE_START(0),
      SD_BUS_METHOD_WITH_NAMES("GetStatus", "", , "ssuua{sb}",
                               SD_BUS_PARAM(cgroup_mode) SD_BUS_PARAM(status) SD_BUS_PARAM(threads) SD_BUS_PARAM(processes)
                                   SD_BUS_PARAM(features),
                               &BusService::getStatus, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("ListWorkers", "", , "a(suub)", SD_BUS_PARAM(workers), &BusService::listWorkers,
                               SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("ListThreads", "s", SD_BUS_PARAM(worker), "a(uussssb)", SD_BUS_PARAM(threads),
                               &BusService::listThreads, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("ListClasses", "", , "a(ssutttd)", SD_BUS_PARAM(classes), &BusService::listClasses,
                               SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("Explain", "u", SD_BUS_PARAM(tid), "ssssb",
                               SD_BUS_PARAM(worker) SD_BUS_PARAM(class) SD_BUS_PARAM(reason) SD_BUS_PARAM(cgroup) SD_BUS_PARAM(boosted),
                               &BusService::explain, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("SetThreadClass", "us", SD_BUS_PARAM(tid) SD_BUS_PARAM(class), "", ,
                               &BusService::setThreadClass, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("ResetThreadClass", "u", SD_BUS_PARAM(tid), "", , &BusService::resetThreadClass,
                               SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("ReportWait", "uu", SD_BUS_PARAM(waiter_tid) SD_BUS_PARAM(holder_tid), "s", SD_BUS_PARAM(boost),
                               &BusService::reportWait, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("EndWait", "uu", SD_BUS_PARAM(waiter_tid) SD_BUS_PARAM(holder_tid), "", ,
                               &BusService::endWait, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("Boost", "uu", SD_BUS_PARAM(tid) SD_BUS_PARAM(duration_ms), "s", SD_BUS_PARAM(boost),
                               &BusService::boost, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("RegisterWorker", "ss", SD_BUS_PARAM(name) SD_BUS_PARAM(default_class), "", ,
                               &BusService::registerWorker, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD("UnregisterWorker", "", "", &BusService::unregisterWorker, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("Reload", "", , "b", SD_BUS_PARAM(applied), &BusService::reload, 0),
      SD_BUS_SIGNAL_WITH_NAMES("ClassChanged", "uss", SD_BUS_PARAM(tid) SD_BUS_PARAM(worker) SD_BUS_PARAM(class), 0),
      SD_BUS_SIGNAL_WITH_NAMES("BoostStarted", "u", SD_BUS_PARAM(tid), 0),
      SD_BUS_SIGNAL_WITH_NAMES("BoostEnded", "u", SD_BUS_PARAM(tid), 0),
      SD_BUS_VTABLE_END};
  return table;
}

Result<std::unique_ptr<BusService>> BusService::start(sd_event* event, Manager& manager, const cgroups::ProcFs& proc,
                                                      std::string cgroup_mode,
                                                      std::vector<std::pair<std::string, bool>> features, Reload reload,
                                                      Logger& log) {
  std::unique_ptr<BusService> s(
      new BusService(manager, proc, std::move(cgroup_mode), std::move(features), std::move(reload), log));
  if (int r = sd_bus_open_system(&s->bus_); r < 0) return fail(-r, std::string("cannot connect to the system bus: ") + std::strerror(-r));
  if (int r = sd_bus_add_object_vtable(s->bus_, &s->slot_, kObject, kInterface, vtable(), s.get()); r < 0) {
    return fail(-r, std::string("cannot export ") + kObject + ": " + std::strerror(-r));
  }
  if (int r = sd_bus_request_name(s->bus_, kName, 0); r < 0) {
    return fail(-r, std::string("cannot own ") + kName + " (is the D-Bus policy installed?): " + std::strerror(-r));
  }
  if (int r = sd_bus_attach_event(s->bus_, event, SD_EVENT_PRIORITY_NORMAL); r < 0) {
    return fail(-r, std::string("cannot attach the bus to the event loop: ") + std::strerror(-r));
  }
  BusService* self = s.get();
  manager.on_class_changed = [self](const Manager::ClassChange& c) {
    (void)sd_bus_emit_signal(self->bus_, kObject, kInterface, "ClassChanged", "uss", static_cast<uint32_t>(c.tid),
                             c.worker.c_str(), c.cls.c_str());
  };
  manager.on_boost = [self](pid_t tid, bool started) {
    (void)sd_bus_emit_signal(self->bus_, kObject, kInterface, started ? "BoostStarted" : "BoostEnded", "u",
                             static_cast<uint32_t>(tid));
  };
  return s;
}

BusService::~BusService() {
  manager_.on_class_changed = nullptr;
  manager_.on_boost = nullptr;
  sd_bus_slot_unref(slot_);
  if (bus_ != nullptr) sd_bus_flush_close_unref(bus_);
}

int BusService::refuse(sd_bus_error* error, const char* name, const std::string& message) {
  std::string_view reason(name);
  manager_.countBusRefusal(reason.substr(reason.rfind('.') + 1));
  log_.debug("D-Bus refusal {}: {}", name, message);
  return sd_bus_error_set(error, name, message.c_str());
}

int BusService::fromResult(const Error& e, sd_bus_error* error, const char* enoent) {
  switch (e.code) {
    case ESRCH: return refuse(error, kNoSuchThread, e.message);
    case ENOENT: return refuse(error, enoent != nullptr ? enoent : kNoSuchClass, e.message);
    case EINVAL: return refuse(error, kInvalidArgument, e.message);
    default: return refuse(error, kFailed, e.message);
  }
}

std::optional<BusService::Caller> BusService::admit(sd_bus_message* m, sd_bus_error* error) {
  sd_bus_creds* creds = nullptr;
  // PID and EUID come from the bus driver; augmented fields (read later from /proc) are racy
  // and never used for authorization (LIBRARY_NOTES).
  if (sd_bus_query_sender_creds(m, SD_BUS_CREDS_PID | SD_BUS_CREDS_EUID, &creds) < 0) {
    refuse(error, kNotAuthorized, "the caller's credentials are unavailable");
    return std::nullopt;
  }
  Caller c;
  const uint64_t augmented = sd_bus_creds_get_augmented_mask(creds);
  const bool ok = sd_bus_creds_get_pid(creds, &c.pid) >= 0 && sd_bus_creds_get_euid(creds, &c.euid) >= 0 &&
                  (augmented & (SD_BUS_CREDS_PID | SD_BUS_CREDS_EUID)) == 0;
  sd_bus_creds_unref(creds);
  if (!ok) {
    refuse(error, kNotAuthorized, "the caller's PID and EUID are not vouched for by the bus");
    return std::nullopt;
  }
  if (!limiter_.allow(c.pid, manager_.clock().now())) {
    refuse(error, kRateLimited, "too many calls from pid " + std::to_string(c.pid) + "; slow down");
    return std::nullopt;
  }
  return c;
}

namespace {
constexpr uint64_t kPolkitTimeoutUs = 2'000'000;
}  // namespace

// One method call waiting for polkit's answer.
struct BusService::PendingAuthorization {
  BusService* service;
  sd_bus_message* call;  // referenced until the answer
  std::string refusal;
  Body body;
};

std::string BusService::notOwn(const Caller& caller, std::initializer_list<pid_t> tids) const {
  if (caller.euid == 0) return {};
  // Own threads only. The pidfd, opened before the check and tested after it, makes sure the
  // process checked is still the caller (its PID was not reused in between).
  auto pidfd = cgroups::ProcFs::openPidfd(caller.pid);
  for (const pid_t tid : tids) {
    const bool own = pidfd && proc_.hasThread(caller.pid, tid) && cgroups::ProcFs::pidfdAlive(*pidfd);
    if (!own) return "thread " + std::to_string(tid) + " is not a thread of the calling process " + std::to_string(caller.pid);
  }
  return {};
}

int BusService::authorized(sd_bus_message* m, sd_bus_error* error, std::string refusal, Body body) {
  if (refusal.empty()) return body(error);
  const char* sender = sd_bus_message_get_sender(m);
  sd_bus_message* call = nullptr;
  // CheckAuthorization((sa{sv}) subject, s action, a{ss} details, u flags, s cancellation)
  int r = sender == nullptr ? -ENXIO
                            : sd_bus_message_new_method_call(bus_, &call, "org.freedesktop.PolicyKit1",
                                                             "/org/freedesktop/PolicyKit1/Authority",
                                                             "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
  if (r >= 0) r = sd_bus_message_append(call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", sender,
                                        "org.cpuclass1.manage", 0, 0u, "");
  auto pending = std::make_unique<PendingAuthorization>(PendingAuthorization{this, sd_bus_message_ref(m), refusal, std::move(body)});
  sd_bus_slot* slot = nullptr;
  if (r >= 0) r = sd_bus_call_async(bus_, &slot, call, &BusService::onPolkitReply, pending.get(), kPolkitTimeoutUs);
  sd_bus_message_unref(call);
  if (r < 0) {
    sd_bus_message_unref(pending->call);
    return refuse(error, kNotAuthorized, refusal);
  }
  // The slot becomes the bus's (floating: the bus takes a reference of its own, ours is dropped);
  // whatever ends it (the answer, the bus closing) frees the pending call.
  (void)sd_bus_slot_set_destroy_callback(slot, [](void* p) {
    auto* a = static_cast<PendingAuthorization*>(p);
    sd_bus_message_unref(a->call);
    delete a;
  });
  pending.release();
  (void)sd_bus_slot_set_floating(slot, 1);
  sd_bus_slot_unref(slot);
  return 1;  // answered when polkit has
}

int BusService::onPolkitReply(sd_bus_message* reply, void* userdata, sd_bus_error*) {
  auto* a = static_cast<PendingAuthorization*>(userdata);
  int allowed = 0;
  const bool answered = !sd_bus_message_is_method_error(reply, nullptr) &&
                        sd_bus_message_enter_container(reply, 'r', "bba{ss}") >= 0 &&
                        sd_bus_message_read(reply, "b", &allowed) >= 0;
  BusService& s = *a->service;
  if (answered && allowed != 0) return s.runBody(a->call, a->body);  // an administrator granted it
  return s.runBody(a->call, [&](sd_bus_error* error) { return s.refuse(error, kNotAuthorized, a->refusal); });
}

int BusService::runBody(sd_bus_message* m, const Body& body) {
  sd_bus_error error{};  // SD_BUS_ERROR_NULL without its C99 compound literal (clang -Wpedantic)
  int r = 0;
  try {
    r = body(&error);
  } catch (const std::exception& e) {  // never into C
    log_.error("D-Bus handler: {}", e.what());
    r = sd_bus_error_set(&error, kFailed, "internal error");
  }
  if (r < 0 || sd_bus_error_is_set(&error)) {
    (void)(sd_bus_error_is_set(&error) ? sd_bus_reply_method_error(m, &error) : sd_bus_reply_method_errno(m, r, nullptr));
  }
  sd_bus_error_free(&error);
  return 0;
}

template <class F>
int BusService::guarded(void* userdata, sd_bus_error* error, F&& body) {
  auto* self = static_cast<BusService*>(userdata);
  try {
    return body(*self);
  } catch (const std::exception& e) {  // never into C
    self->log_.error("D-Bus handler: {}", e.what());
    return sd_bus_error_set(error, kFailed, "internal error");
  }
}

int BusService::getStatus(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    if (!s.admit(m, error)) return -EPERM;
    return reply(m, [&](sd_bus_message* out) {
      int r = sd_bus_message_append(out, "ssuu", s.cgroup_mode_.c_str(), s.manager_.status().c_str(),
                                    static_cast<uint32_t>(s.manager_.managedThreads()),
                                    static_cast<uint32_t>(s.manager_.managedProcesses()));
      if (r < 0) return r;
      return appendArray(out, "{sb}", s.features_, [](sd_bus_message* o, const auto& feature) {
        return sd_bus_message_append(o, "{sb}", feature.first.c_str(), static_cast<int>(feature.second));
      });
    });
  });
}

int BusService::listWorkers(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    if (!s.admit(m, error)) return -EPERM;
    return reply(m, [&](sd_bus_message* out) {
      return appendArray(out, "(suub)", s.manager_.workers(), [](sd_bus_message* o, const auto& w) {
        return sd_bus_message_append(o, "(suub)", w.name.c_str(), static_cast<uint32_t>(w.pid),
                                     static_cast<uint32_t>(w.threads), static_cast<int>(w.child));
      });
    });
  });
}

int BusService::explain(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    uint32_t tid = 0;
    if (int r = sd_bus_message_read(m, "u", &tid); r < 0) return r;
    // Explaining is reading: any caller may ask about any managed thread.
    if (!s.admit(m, error)) return -EPERM;
    auto e = s.manager_.explain(static_cast<pid_t>(tid));
    if (!e) return s.fromResult(e.error(), error);
    return sd_bus_reply_method_return(m, "ssssb", e->worker.c_str(), e->cls.c_str(), e->reason.c_str(), e->group.c_str(),
                                      static_cast<int>(e->boosted));
  });
}

int BusService::setThreadClass(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    uint32_t tid = 0;
    const char* cls = nullptr;
    if (int r = sd_bus_message_read(m, "us", &tid, &cls); r < 0) return r;
    auto caller = s.admit(m, error);
    if (!caller) return -EPERM;
    if (tid == 0) return s.refuse(error, kInvalidArgument, "tid must be positive");
    std::string refusal = s.notOwn(*caller, {static_cast<pid_t>(tid)});
    // A realtime class runs ahead of every fair thread on the host: asking for it takes what
    // turning real-time takes, not just owning the thread.
    const auto* spec = s.manager_.policy().findClass(cls);
    if (refusal.empty() && spec != nullptr && spec->realtime > 0 && caller->euid != 0) {
      refusal = "class '" + std::string(cls) + "' is realtime: asking for it takes root or the polkit action org.cpuclass1.manage";
    }
    return s.authorized(m, error, refusal, [&s, m, tid, cls = std::string(cls)](sd_bus_error* e) {
      if (auto r = s.manager_.setThreadClass(static_cast<pid_t>(tid), cls); !r) return s.fromResult(r.error(), e);
      return sd_bus_reply_method_return(m, "");
    });
  });
}

int BusService::resetThreadClass(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    uint32_t tid = 0;
    if (int r = sd_bus_message_read(m, "u", &tid); r < 0) return r;
    auto caller = s.admit(m, error);
    if (!caller) return -EPERM;
    if (tid == 0) return s.refuse(error, kInvalidArgument, "tid must be positive");
    return s.authorized(m, error, s.notOwn(*caller, {static_cast<pid_t>(tid)}), [&s, m, tid](sd_bus_error* e) {
      if (auto r = s.manager_.resetThreadClass(static_cast<pid_t>(tid)); !r) return s.fromResult(r.error(), e);
      return sd_bus_reply_method_return(m, "");
    });
  });
}

int BusService::reportWait(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    uint32_t waiter = 0, holder = 0;
    if (int r = sd_bus_message_read(m, "uu", &waiter, &holder); r < 0) return r;
    auto caller = s.admit(m, error);
    if (!caller) return -EPERM;
    if (waiter == 0 || holder == 0) return s.refuse(error, kInvalidArgument, "tid must be positive");
    const auto refusal = s.notOwn(*caller, {static_cast<pid_t>(waiter), static_cast<pid_t>(holder)});
    return s.authorized(m, error, refusal, [&s, m, waiter, holder](sd_bus_error* e) {
      auto v = s.manager_.reportWait(static_cast<pid_t>(waiter), static_cast<pid_t>(holder), s.manager_.clock().now());
      if (!v) return s.fromResult(v.error(), e);
      return sd_bus_reply_method_return(m, "s", std::string(verdictName(*v)).c_str());
    });
  });
}

int BusService::endWait(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    uint32_t waiter = 0, holder = 0;
    if (int r = sd_bus_message_read(m, "uu", &waiter, &holder); r < 0) return r;
    auto caller = s.admit(m, error);
    if (!caller) return -EPERM;
    if (waiter == 0) return s.refuse(error, kInvalidArgument, "tid must be positive");
    return s.authorized(m, error, s.notOwn(*caller, {static_cast<pid_t>(waiter)}), [&s, m, waiter, holder](sd_bus_error* e) {
      if (auto r = s.manager_.endWait(static_cast<pid_t>(waiter), static_cast<pid_t>(holder), s.manager_.clock().now()); !r) {
        return s.fromResult(r.error(), e, kNoSuchWait);
      }
      return sd_bus_reply_method_return(m, "");
    });
  });
}

int BusService::reload(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    auto caller = s.admit(m, error);
    if (!caller) return -EPERM;
    if (caller->euid != 0) return s.refuse(error, kNotAuthorized, "only root may reload the policy");
    return sd_bus_reply_method_return(m, "b", static_cast<int>(s.reload_()));
  });
}

namespace {

// Splits a D-Bus signature into its complete types: "a(suub)s" -> {"a(suub)", "s"}.
std::vector<std::string> completeTypes(std::string_view sig) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < sig.size()) {
    const size_t start = i;
    while (i < sig.size() && sig[i] == 'a') ++i;  // array prefixes belong to the next type
    if (i < sig.size() && (sig[i] == '(' || sig[i] == '{')) {
      int depth = 0;
      do {
        if (sig[i] == '(' || sig[i] == '{') ++depth;
        if (sig[i] == ')' || sig[i] == '}') --depth;
        ++i;
      } while (i < sig.size() && depth > 0);
    } else {
      ++i;
    }
    out.emplace_back(sig.substr(start, i - start));
  }
  return out;
}

}  // namespace

int BusService::listThreads(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    const char* worker = nullptr;
    if (int r = sd_bus_message_read(m, "s", &worker); r < 0) return r;
    if (!s.admit(m, error)) return -EPERM;
    std::map<pid_t, std::string> names;
    for (const auto& w : s.manager_.workers()) names[w.pid] = w.name;
    return reply(m, [&](sd_bus_message* out) {
      return appendArray(out, "(uussssb)", s.manager_.threadsOf(worker), [&](sd_bus_message* o, const auto& t) {
        return sd_bus_message_append(o, "(uussssb)", static_cast<uint32_t>(t.tid), static_cast<uint32_t>(t.pid),
                                     names[t.pid].c_str(), t.comm.c_str(), t.cls.c_str(), t.group.c_str(),
                                     static_cast<int>(t.boosted));
      });
    });
  });
}

int BusService::listClasses(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    if (!s.admit(m, error)) return -EPERM;
    return reply(m, [&](sd_bus_message* out) {
      return appendArray(out, "(ssutttd)", s.manager_.classGroups(), [&](sd_bus_message* o, const auto& g) {
        return sd_bus_message_append(o, "(ssutttd)", g.worker.c_str(), g.cls.c_str(), static_cast<uint32_t>(g.threads),
                                     g.boosts.starvation_events, g.boosts.boosts_started, g.boosts.boosts_refused,
                                     s.manager_.classCpuSeconds(g.base, g.cls).value_or(-1.0));
      });
    });
  });
}

int BusService::boost(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    uint32_t tid = 0, ms = 0;
    if (int r = sd_bus_message_read(m, "uu", &tid, &ms); r < 0) return r;
    auto caller = s.admit(m, error);
    if (!caller) return -EPERM;
    if (tid == 0) return s.refuse(error, kInvalidArgument, "tid must be positive");
    if (ms == 0 || ms > 10000) return s.refuse(error, kInvalidArgument, "duration_ms must be in 1..10000");
    return s.authorized(m, error, s.notOwn(*caller, {static_cast<pid_t>(tid)}), [&s, m, tid, ms](sd_bus_error* e) {
      auto v = s.manager_.boost(static_cast<pid_t>(tid), std::chrono::milliseconds(ms), s.manager_.clock().now());
      if (!v) return s.fromResult(v.error(), e);
      return sd_bus_reply_method_return(m, "s", std::string(verdictName(*v)).c_str());
    });
  });
}

// The caller registers its own process. Joining a class can raise a process above others
// (foreground), so it takes root or org.cpuclass1.manage.
int BusService::registerWorker(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    const char *name = nullptr, *cls = nullptr;
    if (int r = sd_bus_message_read(m, "ss", &name, &cls); r < 0) return r;
    auto caller = s.admit(m, error);
    if (!caller) return -EPERM;
    const std::string refusal =
        caller->euid != 0 ? "registering a worker takes root or the polkit action org.cpuclass1.manage" : "";
    return s.authorized(m, error, refusal,
                        [&s, m, pid = caller->pid, name = std::string(name), cls = std::string(cls)](sd_bus_error* e) {
                          if (auto r = s.manager_.registerWorker(pid, name, cls); !r) {
                            return r.error().code == EBUSY || r.error().code == EINVAL
                                       ? s.refuse(e, kInvalidArgument, r.error().message)
                                       : s.fromResult(r.error(), e);
                          }
                          return sd_bus_reply_method_return(m, "");
                        });
  });
}

int BusService::unregisterWorker(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(userdata, error, [&](BusService& s) {
    auto caller = s.admit(m, error);
    if (!caller) return -EPERM;
    if (auto r = s.manager_.unregisterWorker(caller->pid); !r) return s.fromResult(r.error(), error);
    return sd_bus_reply_method_return(m, "");
  });
}

std::string BusService::introspection() {
  // Rendered from the vtable that is served, so the two cannot drift apart.
  std::string xml =
      "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
      " \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"
      "<node name=\"" + std::string(kObject) + "\">\n <interface name=\"" + kInterface + "\">\n";
  for (const sd_bus_vtable* v = vtable(); v->type != _SD_BUS_VTABLE_END; ++v) {
    if (v->type == _SD_BUS_VTABLE_SIGNAL) {
      xml += "  <signal name=\"" + std::string(v->x.signal.member) + "\">\n";
      const char* name = v->x.signal.names != nullptr ? v->x.signal.names : "";
      for (const auto& type : completeTypes(v->x.signal.signature)) {
        xml += "   <arg type=\"" + type + "\" name=\"" + name + "\"/>\n";
        name += std::strlen(name) + 1;
      }
      xml += "  </signal>\n";
      continue;
    }
    if (v->type != _SD_BUS_VTABLE_METHOD) continue;
    const auto& method = v->x.method;
    xml += "  <method name=\"" + std::string(method.member) + "\">\n";
    const char* name = method.names != nullptr ? method.names : "";  // in- then out-names, NUL-separated
    for (const auto& [sig, direction] : {std::pair{method.signature, "in"}, std::pair{method.result, "out"}}) {
      for (const auto& type : completeTypes(sig)) {
        xml += "   <arg type=\"" + type + "\" name=\"" + name + "\" direction=\"" + direction + "\"/>\n";
        name += std::strlen(name) + 1;
      }
    }
    xml += "  </method>\n";
  }
  xml += " </interface>\n</node>\n";
  return xml;
}

}  // namespace cpuclass::daemon
