#include "daemon/systemd_units.h"

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <cstring>
#include <string>

namespace cpuclass::daemon {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr uint64_t kCallTimeoutUs = 2'000'000;  // then the process is left alone, said why

// Delegate lives on the Service and the Scope interfaces; other unit types cannot delegate.
constexpr const char* kUnitInterfaces[] = {"org.freedesktop.systemd1.Service", "org.freedesktop.systemd1.Scope"};

Error replyError(sd_bus_message* reply, const std::string& what) {
  const sd_bus_error* e = sd_bus_message_get_error(reply);
  const int code = sd_bus_message_get_errno(reply);
  return {code > 0 ? code : EIO, what + ": " + (e != nullptr && e->message != nullptr ? e->message : std::strerror(code))};
}

}  // namespace

struct SystemdUnits::Query {
  SystemdUnits* units;
  pid_t pid;
  Answer done;
  std::string unit_path;
  size_t interface = 0;  // into kUnitInterfaces
  std::string what() const { return "ask systemd for the unit of pid " + std::to_string(pid); }
};

Result<std::unique_ptr<SystemdUnits>> SystemdUnits::connect(sd_event* event) {
  sd_bus* bus = nullptr;
  if (int r = sd_bus_open_system(&bus); r < 0) return fail(-r, std::string("cannot connect to the system bus: ") + std::strerror(-r));
  (void)sd_bus_set_method_call_timeout(bus, kCallTimeoutUs);
  if (int r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL); r < 0) {
    sd_bus_flush_close_unref(bus);
    return fail(-r, std::string("cannot attach the system bus to the loop: ") + std::strerror(-r));
  }
  return std::unique_ptr<SystemdUnits>(new SystemdUnits(bus));
}

SystemdUnits::~SystemdUnits() { sd_bus_flush_close_unref(bus_); }

// Every call is asynchronous with a floating slot, the query its userdata: the answer's callback
// takes it back. A query still pending when the daemon stops goes unanswered with the bus.
void SystemdUnits::askDelegates(pid_t pid, Answer done) {
  auto q = std::make_unique<Query>(Query{this, pid, std::move(done), {}, 0});
  int r = sd_bus_call_method_async(bus_, nullptr, kSystemd, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                                   "GetUnitByPID", &SystemdUnits::onUnit, q.get(), "u", static_cast<uint32_t>(pid));
  if (r < 0) return q->done(fail(-r, q->what() + ": " + std::strerror(-r)));
  q.release();  // onUnit takes it back
}

int SystemdUnits::onUnit(sd_bus_message* reply, void* userdata, sd_bus_error*) {
  std::unique_ptr<Query> q(static_cast<Query*>(userdata));
  const char* path = nullptr;
  if (sd_bus_message_is_method_error(reply, nullptr)) {
    q->done(tl::unexpected(replyError(reply, q->what())));
  } else if (int r = sd_bus_message_read(reply, "o", &path); r < 0) {
    q->done(fail(-r, q->what() + ": bad reply"));
  } else {
    q->unit_path = path;
    q->units->askProperty(std::move(q));
  }
  return 0;
}

void SystemdUnits::askProperty(std::unique_ptr<Query> q) {
  if (q->interface >= std::size(kUnitInterfaces)) return q->done(false);
  int r = sd_bus_call_method_async(bus_, nullptr, kSystemd, q->unit_path.c_str(), "org.freedesktop.DBus.Properties", "Get",
                                   &SystemdUnits::onProperty, q.get(), "ss", kUnitInterfaces[q->interface], "Delegate");
  if (r < 0) return q->done(fail(-r, q->what() + ": " + std::strerror(-r)));
  q.release();  // onProperty takes it back
}

int SystemdUnits::onProperty(sd_bus_message* reply, void* userdata, sd_bus_error*) {
  std::unique_ptr<Query> q(static_cast<Query*>(userdata));
  int delegate = 0;
  if (!sd_bus_message_is_method_error(reply, nullptr) && sd_bus_message_enter_container(reply, 'v', "b") >= 0 &&
      sd_bus_message_read(reply, "b", &delegate) >= 0) {
    q->done(delegate != 0);
    return 0;
  }
  ++q->interface;  // not this unit type: the next interface
  q->units->askProperty(std::move(q));
  return 0;
}

}  // namespace cpuclass::daemon
