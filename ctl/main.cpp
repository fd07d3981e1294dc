// cpuclassctl: the operator's command line for cpuclassd, over D-Bus (org.cpuclass1). Messages
// and exit codes follow systemctl: 0 on success, 1 with "Failed to ...: reason" on stderr.
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ctl/format.h"
#include "ctl/units.h"
#include "policy/policy_loader.h"

namespace {

using cpuclass::ctl::jsonArray;
using cpuclass::ctl::table;
using Rows = std::vector<std::vector<std::string>>;

// One connection; every failure ends the program with systemctl's wording.
class Bus {
 public:
  Bus() {
    if (int r = sd_bus_open_system(&bus_); r < 0) die("connect to the system bus", std::strerror(-r));
  }
  ~Bus() { sd_bus_flush_close_unref(bus_); }
  sd_bus* get() const { return bus_; }
  sd_bus_message* call(const std::string& verb, const char* method, const char* types, ...) {
    sd_bus_message* m = nullptr;
    sd_bus_message* reply = nullptr;
    sd_bus_error error{};  // SD_BUS_ERROR_NULL without its C99 compound literal (clang -Wpedantic)
    int r = sd_bus_message_new_method_call(bus_, &m, "org.cpuclass1", "/org/cpuclass1", "org.cpuclass1.Manager", method);
    if (r >= 0 && types != nullptr && *types != '\0') {
      va_list ap;
      va_start(ap, types);
      r = sd_bus_message_appendv(m, types, ap);
      va_end(ap);
    }
    if (r >= 0) r = sd_bus_call(bus_, m, 5'000'000, &error, &reply);
    sd_bus_message_unref(m);
    if (r < 0) {
      std::string why = error.message != nullptr ? error.message : std::strerror(-r);
      if (sd_bus_error_has_name(&error, "org.freedesktop.DBus.Error.ServiceUnknown")) why = "cpuclassd is not running";
      die(verb, why);
    }
    sd_bus_error_free(&error);
    return reply;
  }
  [[noreturn]] static void die(const std::string& verb, const std::string& why) {
    std::fprintf(stderr, "Failed to %s: %s\n", verb.c_str(), why.c_str());
    std::exit(1);
  }

 private:
  sd_bus* bus_ = nullptr;
};

void print(const std::vector<std::string>& header, const Rows& rows, bool json, const std::vector<bool>& numeric) {
  if (json) {
    std::vector<std::string> keys;
    for (auto h : header) {
      for (auto& ch : h) ch = ch == ' ' ? '_' : static_cast<char>(std::tolower(ch));
      keys.push_back(h);
    }
    std::fputs(jsonArray(keys, rows, numeric).c_str(), stdout);
  } else {
    std::fputs(table(header, rows).c_str(), stdout);
  }
}

// Reads an array of structs with `sig` ("uussssb", ...) into rows of strings.
Rows readArray(sd_bus_message* reply, const std::string& sig) {
  Rows rows;
  const std::string element = "(" + sig + ")";
  if (sd_bus_message_enter_container(reply, 'a', element.c_str()) < 0) return rows;
  while (sd_bus_message_enter_container(reply, 'r', sig.c_str()) > 0) {
    std::vector<std::string> row;
    for (const char type : sig) {
      switch (type) {
        case 's': {
          const char* v = nullptr;
          sd_bus_message_read_basic(reply, 's', &v);
          row.emplace_back(v);
          break;
        }
        case 'u': {
          uint32_t v = 0;
          sd_bus_message_read_basic(reply, 'u', &v);
          row.push_back(std::to_string(v));
          break;
        }
        case 't': {
          uint64_t v = 0;
          sd_bus_message_read_basic(reply, 't', &v);
          row.push_back(std::to_string(v));
          break;
        }
        case 'b': {
          int v = 0;
          sd_bus_message_read_basic(reply, 'b', &v);
          row.emplace_back(v ? "true" : "false");
          break;
        }
        case 'd': {
          double v = 0;
          sd_bus_message_read_basic(reply, 'd', &v);
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.3f", v);
          row.emplace_back(buf);
          break;
        }
      }
    }
    sd_bus_message_exit_container(reply);
    rows.push_back(std::move(row));
  }
  sd_bus_message_exit_container(reply);
  return rows;
}

// A live per-class view: CPU (cores used since the last refresh), threads, boosts.
int top(Bus& bus, double interval, int iterations) {
  std::map<std::string, double> last_cpu;
  auto last = std::chrono::steady_clock::now();
  for (int i = 0; iterations <= 0 || i < iterations; ++i) {
    sd_bus_message* reply = bus.call("list classes", "ListClasses", "");
    const Rows classes = readArray(reply, "ssutttd");
    sd_bus_message_unref(reply);
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    Rows rows;
    for (const auto& c : classes) {
      const std::string key = c[0] + "/" + c[1];
      const double cpu = std::stod(c[6]);
      std::string cores = "-";
      if (cpu >= 0 && last_cpu.contains(key) && dt > 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", (cpu - last_cpu[key]) / dt);
        cores = buf;
      }
      last_cpu[key] = cpu;
      rows.push_back({c[0], c[1], c[2], cores, c[4], c[5], c[3]});
    }
    if (::isatty(STDOUT_FILENO)) std::fputs("\033[H\033[2J", stdout);
    std::fputs(table({"WORKER", "CLASS", "THREADS", "CPU", "BOOSTS", "REFUSED", "STARVED"}, rows).c_str(), stdout);
    std::fflush(stdout);
    if (iterations <= 0 || i + 1 < iterations) std::this_thread::sleep_for(std::chrono::duration<double>(interval));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cpuclassctl: inspect and steer cpuclassd"};
  app.require_subcommand(1);
  bool json = false;
  app.add_flag("--json", json, "machine-readable output for listings");
  auto* status = app.add_subcommand("status", "cgroup mode, features and counts");
  auto* workers = app.add_subcommand("workers", "managed worker processes");
  std::string worker;
  auto* threads = app.add_subcommand("threads", "managed threads, of one worker or all");
  threads->add_option("worker", worker, "worker name");
  uint32_t tid = 0;
  std::string cls;
  auto* explain = app.add_subcommand("explain", "why a thread is in its class");
  explain->add_option("tid", tid)->required();
  auto* set_class = app.add_subcommand("set-class", "put a thread in a class (as its worker would)");
  set_class->add_option("tid", tid)->required();
  set_class->add_option("class", cls)->required();
  auto* reset_class = app.add_subcommand("reset-class", "drop a set-class; the policy decides again");
  reset_class->add_option("tid", tid)->required();
  uint32_t duration_ms = 50;
  auto* boost = app.add_subcommand("boost", "boost a thread of a class with a boost section");
  boost->add_option("tid", tid)->required();
  boost->add_option("--duration", duration_ms, "milliseconds, 1..10000")->capture_default_str();
  auto* reload = app.add_subcommand("reload", "read the policy again (a broken one is rejected)");
  std::string file = CPUCLASS_POLICY_FILE;
  auto* check = app.add_subcommand("check-policy", "check a policy file and its policy.d, without the daemon");
  check->add_option("file", file)->capture_default_str();
  double interval = 1;
  int iterations = 0;
  auto* topc = app.add_subcommand("top", "live per-class view");
  topc->add_option("--interval", interval, "seconds between refreshes")->capture_default_str();
  topc->add_option("--iterations", iterations, "stop after N refreshes (0: until interrupted)");
  std::string unit;
  auto* delegate = app.add_subcommand("delegate", "give a unit Delegate=yes (a drop-in); the unit must restart");
  delegate->add_option("unit", unit, "e.g. mydb.service")->required();
  cpuclass::ctl::RunOptions run_options;
  auto* run = app.add_subcommand("run", "start a command as a transient unit with Delegate=yes in cpuclass.slice");
  run->add_option("--unit", run_options.unit, "unit name (default cpuclass-run-<pid>.service)");
  run->add_option("--description", run_options.description, "unit description (default: the command line)");
  run->add_option("command", run_options.command, "the command and its arguments, after --")->required();
  CLI11_PARSE(app, argc, argv);

  if (check->parsed()) return cpuclass::policy::checkPolicyFile(file, stdout, stderr);
  Bus bus;
  if (status->parsed()) {
    sd_bus_message* r = bus.call("get status", "GetStatus", "");
    const char *mode = nullptr, *line = nullptr;
    uint32_t nthreads = 0, nprocs = 0;
    sd_bus_message_read(r, "ssuu", &mode, &line, &nthreads, &nprocs);
    std::string features;
    if (sd_bus_message_enter_container(r, 'a', "{sb}") > 0) {
      const char* name = nullptr;
      int on = 0;
      while (sd_bus_message_read(r, "{sb}", &name, &on) > 0) features += std::string(features.empty() ? "" : " ") + name + "=" + (on ? "yes" : "no");
      sd_bus_message_exit_container(r);
    }
    print({"CGROUP MODE", "THREADS", "PROCESSES", "STATUS", "FEATURES"},
          {{mode, std::to_string(nthreads), std::to_string(nprocs), line, features}}, json, {false, true, true, false, false});
    sd_bus_message_unref(r);
  } else if (workers->parsed()) {
    sd_bus_message* r = bus.call("list workers", "ListWorkers", "");
    print({"WORKER", "PID", "THREADS", "CHILD"}, readArray(r, "suub"), json, {false, true, true, true});
    sd_bus_message_unref(r);
  } else if (threads->parsed()) {
    sd_bus_message* r = bus.call("list threads", "ListThreads", "s", worker.c_str());
    print({"TID", "PID", "WORKER", "COMM", "CLASS", "CGROUP", "BOOSTED"}, readArray(r, "uussssb"), json,
          {true, true, false, false, false, false, true});
    sd_bus_message_unref(r);
  } else if (explain->parsed()) {
    sd_bus_message* r = bus.call("explain thread " + std::to_string(tid), "Explain", "u", tid);
    const char *w = nullptr, *c = nullptr, *reason = nullptr, *group = nullptr;
    int boosted = 0;
    sd_bus_message_read(r, "ssssb", &w, &c, &reason, &group, &boosted);
    if (json) {
      print({"TID", "WORKER", "CLASS", "REASON", "CGROUP", "BOOSTED"},
            {{std::to_string(tid), w, c, reason, group, boosted ? "true" : "false"}}, true, {true, false, false, false, false, true});
    } else {
      std::printf("thread %u of worker %s is in class %s%s\n  because: %s\n  cgroup:  %s\n", tid, w, c,
                  boosted ? " (boosted now)" : "", reason, group);
    }
    sd_bus_message_unref(r);
  } else if (set_class->parsed()) {
    sd_bus_message_unref(bus.call("set class of thread " + std::to_string(tid), "SetThreadClass", "us", tid, cls.c_str()));
  } else if (reset_class->parsed()) {
    sd_bus_message_unref(bus.call("reset class of thread " + std::to_string(tid), "ResetThreadClass", "u", tid));
  } else if (boost->parsed()) {
    sd_bus_message* r = bus.call("boost thread " + std::to_string(tid), "Boost", "uu", tid, duration_ms);
    const char* verdict = nullptr;
    sd_bus_message_read(r, "s", &verdict);
    std::printf("%s\n", verdict);
    sd_bus_message_unref(r);
  } else if (reload->parsed()) {
    sd_bus_message* r = bus.call("reload the policy", "Reload", "");
    int applied = 0;
    sd_bus_message_read(r, "b", &applied);
    sd_bus_message_unref(r);
    if (!applied) Bus::die("reload the policy", "it has errors; the previous policy stays in force (see the daemon's log)");
  } else if (topc->parsed()) {
    return top(bus, interval, iterations);
  } else if (delegate->parsed()) {
    auto dropin = cpuclass::ctl::delegateUnit(bus.get(), unit);
    if (!dropin) Bus::die("delegate " + unit, dropin.error().message);
    std::printf("Wrote %s.\n%s must restart for it to apply: systemctl restart %s\n", dropin->c_str(), unit.c_str(), unit.c_str());
  } else if (run->parsed()) {
    auto started = cpuclass::ctl::runUnit(bus.get(), run_options);
    if (!started) Bus::die("run " + run_options.command.front(), started.error().message);
    std::printf("Running as unit: %s\n", started->c_str());
  }
  return 0;
}
