// libcpuclass: the C API over sd-bus. Library code: it never logs and never throws.
#include <sys/syscall.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "cpuclass.h"

#define CPUCLASS_EXPORT __attribute__((visibility("default")))

struct cpuclass_client {
  std::mutex mu;  // sd_bus objects are not thread-safe
  sd_bus* bus = nullptr;
  uint64_t timeout_usec = 100'000;
  std::string last_error;
};

namespace {

pid_t selfOr(pid_t tid) { return tid == 0 ? static_cast<pid_t>(::syscall(SYS_gettid)) : tid; }

// The daemon's named errors, as errno values a C caller can branch on.
int errnoOf(const sd_bus_error& e, int r) {
  struct Map {
    const char* name;
    int err;
  };
  static const Map kMap[] = {{"org.cpuclass1.Error.NoSuchThread", ESRCH},    {"org.cpuclass1.Error.NotAuthorized", EPERM},
                             {"org.cpuclass1.Error.NoSuchClass", ENOENT},    {"org.cpuclass1.Error.NoSuchWait", ENOENT},
                             {"org.cpuclass1.Error.InvalidArgument", EINVAL}, {"org.cpuclass1.Error.RateLimited", EBUSY},
                             {"org.freedesktop.DBus.Error.ServiceUnknown", ENOTCONN},
                             {"org.freedesktop.DBus.Error.NoReply", ETIMEDOUT}, {"org.freedesktop.DBus.Error.Timeout", ETIMEDOUT}};
  for (const auto& m : kMap) {
    if (sd_bus_error_has_name(&e, m.name)) return -m.err;
  }
  return r < 0 ? r : -EIO;
}


template <class... Args>
int callMethod(cpuclass_client* c, const char* method, std::string* out, const char* types, Args... args) {
  if (c == nullptr) return -EINVAL;
  std::lock_guard lock(c->mu);
  sd_bus_error error{};  // SD_BUS_ERROR_NULL without its C99 compound literal (clang -Wpedantic)
  sd_bus_message* reply = nullptr;
  int r = sd_bus_call_method(c->bus, "org.cpuclass1", "/org/cpuclass1", "org.cpuclass1.Manager", method, &error, &reply,
                             types, args...);
  if (r < 0) {
    c->last_error = std::string(method) + ": " + (error.message != nullptr ? error.message : std::strerror(-r));
    r = errnoOf(error, r);
  } else {
    c->last_error.clear();
    if (out != nullptr) {
      const char* s = nullptr;
      if (sd_bus_message_read(reply, "s", &s) >= 0 && s != nullptr) *out = s;
    }
    r = 0;
  }
  sd_bus_error_free(&error);
  sd_bus_message_unref(reply);
  return r;
}

}  // namespace

extern "C" {

CPUCLASS_EXPORT int cpuclass_open(cpuclass_client** out) {
  if (out == nullptr) return -EINVAL;
  auto* c = new (std::nothrow) cpuclass_client();
  if (c == nullptr) return -ENOMEM;
  if (int r = sd_bus_open_system(&c->bus); r < 0) {
    delete c;
    return r == -ENOENT || r == -ECONNREFUSED ? -ENOTCONN : r;
  }
  (void)sd_bus_set_method_call_timeout(c->bus, c->timeout_usec);
  *out = c;
  return 0;
}

CPUCLASS_EXPORT void cpuclass_close(cpuclass_client* c) {
  if (c == nullptr) return;
  sd_bus_flush_close_unref(c->bus);
  delete c;
}

CPUCLASS_EXPORT int cpuclass_set_timeout_ms(cpuclass_client* c, unsigned int timeout_ms) {
  if (c == nullptr) return -EINVAL;
  std::lock_guard lock(c->mu);
  c->timeout_usec = timeout_ms == 0 ? 100'000 : uint64_t{timeout_ms} * 1000;
  return sd_bus_set_method_call_timeout(c->bus, c->timeout_usec);
}

CPUCLASS_EXPORT int cpuclass_register_worker(cpuclass_client* c, const char* name, const char* default_class) {
  if (name == nullptr || default_class == nullptr) return -EINVAL;
  return callMethod(c, "RegisterWorker", nullptr, "ss", name, default_class);
}

CPUCLASS_EXPORT int cpuclass_unregister_worker(cpuclass_client* c) {
  return callMethod(c, "UnregisterWorker", nullptr, "");
}

CPUCLASS_EXPORT int cpuclass_set_thread_class(cpuclass_client* c, pid_t tid, const char* class_name) {
  if (class_name == nullptr) return -EINVAL;
  return callMethod(c, "SetThreadClass", nullptr, "us", static_cast<uint32_t>(selfOr(tid)), class_name);
}

CPUCLASS_EXPORT int cpuclass_reset_thread_class(cpuclass_client* c, pid_t tid) {
  return callMethod(c, "ResetThreadClass", nullptr, "u", static_cast<uint32_t>(selfOr(tid)));
}

CPUCLASS_EXPORT int cpuclass_report_wait(cpuclass_client* c, pid_t waiter, pid_t holder) {
  std::string verdict;
  const int r = callMethod(c, "ReportWait", &verdict, "uu", static_cast<uint32_t>(selfOr(waiter)), static_cast<uint32_t>(holder));
  if (r < 0) return r;
  return verdict == "started" || verdict == "extended" ? 1 : 0;
}

CPUCLASS_EXPORT int cpuclass_end_wait(cpuclass_client* c, pid_t waiter, pid_t holder) {
  return callMethod(c, "EndWait", nullptr, "uu", static_cast<uint32_t>(selfOr(waiter)), static_cast<uint32_t>(holder));
}

CPUCLASS_EXPORT const char* cpuclass_last_error(const cpuclass_client* c) {
  return c == nullptr ? "no client" : c->last_error.c_str();
}

}  // extern "C"
