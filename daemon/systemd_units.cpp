#include "daemon/systemd_units.h"

#include <systemd/sd-bus.h>

#include <cstring>
#include <string>

namespace cpuclass::daemon {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr uint64_t kCallTimeoutUs = 2'000'000;  // a stuck PID 1 must not stall placement for long

Result<void> busFailure(int r, const sd_bus_error& e, const std::string& what) {
  return fail(-r, what + ": " + (e.message != nullptr ? e.message : std::strerror(-r)));
}

}  // namespace

Result<std::unique_ptr<SystemdUnits>> SystemdUnits::connect() {
  sd_bus* bus = nullptr;
  if (int r = sd_bus_open_system(&bus); r < 0) return fail(-r, std::string("cannot connect to the system bus: ") + std::strerror(-r));
  (void)sd_bus_set_method_call_timeout(bus, kCallTimeoutUs);
  return std::unique_ptr<SystemdUnits>(new SystemdUnits(bus));
}

SystemdUnits::~SystemdUnits() { sd_bus_flush_close_unref(bus_); }

Result<bool> SystemdUnits::delegates(pid_t pid) const {
  sd_bus_error error{};  // SD_BUS_ERROR_NULL without its C99 compound literal (clang -Wpedantic)
  sd_bus_message* reply = nullptr;
  const std::string what = "ask systemd for the unit of pid " + std::to_string(pid);
  int r = sd_bus_call_method(bus_, kSystemd, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                             "GetUnitByPID", &error, &reply, "u", static_cast<uint32_t>(pid));
  if (r < 0) {
    auto out = busFailure(r, error, what);
    sd_bus_error_free(&error);
    return tl::unexpected(out.error());
  }
  const char* path = nullptr;
  r = sd_bus_message_read(reply, "o", &path);
  const std::string unit_path = r >= 0 ? path : "";
  sd_bus_message_unref(reply);
  if (r < 0) return fail(-r, what + ": bad reply");
  // Delegate lives on the Service and the Scope interfaces; other unit types cannot delegate.
  for (const char* iface : {"org.freedesktop.systemd1.Service", "org.freedesktop.systemd1.Scope"}) {
    int delegate = 0;
    r = sd_bus_get_property_trivial(bus_, kSystemd, unit_path.c_str(), iface, "Delegate", &error, 'b', &delegate);
    sd_bus_error_free(&error);
    if (r >= 0) return delegate != 0;
  }
  return false;
}

}  // namespace cpuclass::daemon
