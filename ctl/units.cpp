#include "ctl/units.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <thread>

namespace cpuclass::ctl {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";

tl::unexpected<Error> busError(int r, sd_bus_error& e) {
  auto out = fail(-r, e.message != nullptr ? e.message : std::strerror(-r));
  sd_bus_error_free(&e);
  return out;
}

Result<std::string> findExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    char* real = ::realpath(name.c_str(), nullptr);
    if (real == nullptr) return failErrno(name);
    std::string path(real);
    std::free(real);
    return path;
  }
  const char* env = std::getenv("PATH");
  const std::string path = env != nullptr ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find(':', start), path.size());
    const std::string candidate = path.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return fail(ENOENT, "no executable '" + name + "' in PATH");
}

// A unit's ActiveState through the unit's object.
Result<std::string> activeState(sd_bus* bus, const std::string& unit) {
  sd_bus_error error{};  // SD_BUS_ERROR_NULL without its C99 compound literal (clang -Wpedantic)
  sd_bus_message* reply = nullptr;
  int r = sd_bus_call_method(bus, kSystemd, kManagerPath, kManager, "GetUnit", &error, &reply, "s", unit.c_str());
  if (r < 0) return busError(r, error);
  const char* path = nullptr;
  r = sd_bus_message_read(reply, "o", &path);
  const std::string object = r >= 0 ? path : "";
  sd_bus_message_unref(reply);
  char* state = nullptr;
  r = sd_bus_get_property_string(bus, kSystemd, object.c_str(), "org.freedesktop.systemd1.Unit", "ActiveState", &error, &state);
  if (r < 0) return busError(r, error);
  std::string out(state);
  std::free(state);
  return out;
}

}  // namespace

Result<std::string> delegateUnit(sd_bus* bus, const std::string& unit, const std::string& dropin_root) {
  static const std::regex kUnit(R"([A-Za-z0-9:_.\\@-]+\.(service|scope))");
  if (!std::regex_match(unit, kUnit)) return fail(EINVAL, "'" + unit + "' is not a service or scope unit name");
  const std::string dir = dropin_root + "/" + unit + ".d";
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return failErrno("create " + dir);
  const std::string file = dir + "/50-cpuclass-delegate.conf";
  {
    std::ofstream out(file, std::ios::trunc);
    out << "# Written by cpuclassctl delegate: cpuclassd may place this unit's threads in CPU classes.\n"
        << (unit.ends_with(".scope") ? "[Scope]\n" : "[Service]\n") << "Delegate=yes\n";
    if (!out.flush()) return fail(errno != 0 ? errno : EIO, "write " + file + ": " + std::strerror(errno));
  }
  sd_bus_error error{};  // SD_BUS_ERROR_NULL without its C99 compound literal (clang -Wpedantic)
  if (int r = sd_bus_call_method(bus, kSystemd, kManagerPath, kManager, "Reload", &error, nullptr, ""); r < 0) {
    const Error e = busError(r, error).value();
    return fail(e.code, "wrote " + file + " but could not reload systemd: " + e.message);
  }
  return file;
}

Result<std::string> runUnit(sd_bus* bus, const RunOptions& options) {
  if (options.command.empty()) return fail(EINVAL, "no command given");
  auto exe = findExecutable(options.command.front());
  if (!exe) return tl::unexpected(exe.error());
  const std::string unit = options.unit.empty() ? "cpuclass-run-" + std::to_string(::getpid()) + ".service"
                           : options.unit.ends_with(".service") ? options.unit
                                                                : options.unit + ".service";
  std::string description = options.description;
  if (description.empty()) {
    for (const auto& a : options.command) description += (description.empty() ? "" : " ") + a;
  }
  sd_bus_message* m = nullptr;
  int r = sd_bus_message_new_method_call(bus, &m, kSystemd, kManagerPath, kManager, "StartTransientUnit");
  if (r >= 0) r = sd_bus_message_append(m, "ss", unit.c_str(), "fail");
  if (r >= 0) r = sd_bus_message_open_container(m, 'a', "(sv)");
  if (r >= 0) r = sd_bus_message_append(m, "(sv)", "Description", "s", description.c_str());
  if (r >= 0) r = sd_bus_message_append(m, "(sv)", "Slice", "s", "cpuclass.slice");
  if (r >= 0) r = sd_bus_message_append(m, "(sv)", "Delegate", "b", 1);
  // ExecStart: a(sasb) = [(path, argv, ignore_failure)]
  if (r >= 0) r = sd_bus_message_open_container(m, 'r', "sv");
  if (r >= 0) r = sd_bus_message_append(m, "s", "ExecStart");
  if (r >= 0) r = sd_bus_message_open_container(m, 'v', "a(sasb)");
  if (r >= 0) r = sd_bus_message_open_container(m, 'a', "(sasb)");
  if (r >= 0) r = sd_bus_message_open_container(m, 'r', "sasb");
  if (r >= 0) r = sd_bus_message_append(m, "s", exe->c_str());
  if (r >= 0) r = sd_bus_message_open_container(m, 'a', "s");
  for (const auto& a : options.command) {
    if (r >= 0) r = sd_bus_message_append(m, "s", a.c_str());
  }
  if (r >= 0) r = sd_bus_message_close_container(m);  // as
  if (r >= 0) r = sd_bus_message_append(m, "b", 0);
  for (int i = 0; i < 4 && r >= 0; ++i) r = sd_bus_message_close_container(m);  // (sasb), a, v, (sv)
  if (r >= 0) r = sd_bus_message_close_container(m);  // a(sv)
  if (r >= 0) r = sd_bus_message_append(m, "a(sa(sv))", 0);
  if (r < 0) {
    sd_bus_message_unref(m);
    return fail(-r, std::string("build the request: ") + std::strerror(-r));
  }
  sd_bus_error error{};  // SD_BUS_ERROR_NULL without its C99 compound literal (clang -Wpedantic)
  r = sd_bus_call(bus, m, 0, &error, nullptr);
  sd_bus_message_unref(m);
  if (r < 0) return busError(r, error);
  // The job runs asynchronously: report what became of it, as systemd-run does.
  for (int i = 0; i < 100; ++i) {
    auto state = activeState(bus, unit);
    if (state && *state == "active") return unit;
    if (state && *state == "failed") return fail(EIO, unit + " failed; see: journalctl -u " + unit);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fail(ETIMEDOUT, unit + " did not become active within 5 s");
}

}  // namespace cpuclass::ctl
