// The policy as plain, validated values: what the daemon enforces. Produced only by the loader
// (policy_loader.h), which guarantees every reference resolves and every value is in range.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "policy/container.h"

namespace cpuclass::policy {

// Where something was written, for diagnostics and `explain`. Line and column are 1-based.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;  // "file:line:col", or "built-in" when there is no file
};

enum class ThreadSched { kOther, kBatch, kIdle };
std::string_view toString(ThreadSched s);

// How an offload class's starving threads are detected and boosted (DESIGN.md §6).
struct BoostSpec {
  // A runnable thread whose runtime grew by less than this share of a poll interval is starving.
  double starved_below = 0.10;
  std::chrono::milliseconds window{50};  // a boost never lasts longer
  ThreadSched sched = ThreadSched::kOther;  // the thread's policy while boosted
  int nice = 0;
  // The nice of a boost a worker asked for (a reported wait: someone is blocked for sure); a
  // starvation the daemon detected is a guess and gets `nice`.
  int wait_nice = -10;
  uint32_t max_per_worker = 4;    // boosted threads at once, per worker
  uint32_t max_total = 64;        // boosted threads at once, all workers
  uint32_t max_per_second = 200;  // boosts started per second, all workers
  // Hysteresis: after a boost that ran out its window (a CPU-hungry thread), no new boost for
  // `cooldown`, doubling with each such boost up to `max_cooldown`. A thread that slept resets it.
  std::chrono::milliseconds cooldown{20};
  std::chrono::milliseconds max_cooldown{2000};
};

struct ClassSpec {
  std::string name;
  uint32_t cpu_weight = 100;  // v2 cpu.weight scale, 1..10000
  bool idle = false;          // cgroup cpu.idle=1
  bool squeeze = true;        // idle groups only: capped while a non-idle class group waits for CPU
  ThreadSched sched = ThreadSched::kOther;
  int nice = 0;
  // A custom EEVDF slice for its fair threads (Linux 6.12+; older kernels: ignored, said once).
  // Shorter than the default (~3 ms), a waking thread preempts a CPU hog at once instead of at
  // the hog's slice end (docs/boosting.md, "Round 10"). Zero: the kernel's default.
  std::chrono::microseconds slice{0};
  // 1..99: the threads run SCHED_RR at this priority, ahead of every fair thread wherever they
  // wake (the kernel's fair wake-up placement stops looking for a free CPU on a busy machine;
  // docs/boosting.md, "Round 9"). 0: off. `sched` and `nice` then apply only while the guard
  // below has the class back on fair scheduling.
  int realtime = 0;
  SourceLocation realtime_where;
  // The guard: when the class's threads of one worker used more than this share of all CPUs in
  // a 100 ms window, they run fair (`sched`, `nice`) until a window under it.
  double realtime_limit = 0.5;
  std::optional<BoostSpec> boost;
  // Runs in another class's control group (that class's cpu_weight/idle apply), keeping its own
  // scheduling, boost and accounting: offload SCHED_IDLE inside background isolates best and a
  // boost is one sched_setattr, no cgroup move (docs/boosting.md). Empty: its own group.
  std::string run_in;
  SourceLocation run_in_where;
  SourceLocation where;  // last place that set it; "built-in" for untouched defaults
};

// A compiled regular expression with its source text; matches the whole string.
class Pattern {
 public:
  Pattern(std::string text, std::regex re) : text_(std::move(text)), re_(std::make_shared<std::regex>(std::move(re))) {}
  bool matches(std::string_view s) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::shared_ptr<const std::regex> re_;
};

// Which processes belong to a worker: every given criterion must hold.
struct WorkerMatch {
  std::optional<std::string> exe;      // glob on the executable path (fnmatch)
  std::optional<Pattern> comm;         // the process's comm
  std::optional<Pattern> cmdline;      // the command line, arguments joined by spaces
  std::optional<std::string> unit;     // systemd unit name, e.g. mydb.service
  std::optional<std::string> cgroup;   // glob on the process's cgroup path (unified, or v1 cpu)
  // Containers and pods, from that path (policy/container.h): a container id (a prefix of at
  // least 12 hex digits, as `docker ps` shows it) or a glob on its name (or 64-digit id), a pod
  // UID or a glob on NAMESPACE/NAME, a QoS class; and globs on the container's OCI annotations.
  std::optional<std::string> container;
  std::optional<std::string> pod;
  std::optional<QosClass> qos;
  std::map<std::string, std::string> annotations;
};

struct ThreadRule {
  Pattern comm;
  std::string class_name;
  SourceLocation where;
};

// A child process of the worker classified as a whole (e.g. pageserver's `postgres --wal-redo`,
// PostgreSQL's autovacuum workers by their process title). Every given criterion must hold.
struct ProcessRule {
  std::optional<Pattern> comm;
  std::optional<std::string> exe;
  std::optional<Pattern> cmdline;  // the command line as the process shows it now (its title)
  std::string class_name;
  SourceLocation where;
};

struct WorkerSpec {
  std::string name;
  WorkerMatch match;
  std::string default_class;
  SourceLocation default_where;
  std::vector<ThreadRule> threads;
  std::vector<ProcessRule> processes;
  SourceLocation where;
};

enum class OnStop { kRestore, kKeep };
enum class LogLevel { kDebug, kInfo, kNotice, kWarning, kError };
std::string_view toString(OnStop s);
std::string_view toString(LogLevel l);

struct DaemonSettings {
  std::chrono::milliseconds starvation_poll{10};
  std::chrono::milliseconds rescan_interval{2000};
  bool fast_moves = true;  // keep the kernel's cgroup migration lock warm while a boost may move a thread
  std::string metrics_listen = "127.0.0.1:9753";  // "off", or IPv4:PORT (0: any free port)
  bool metrics_per_worker = true;  // false: one series per class, summed over workers
  OnStop on_stop = OnStop::kRestore;
  LogLevel log_level = LogLevel::kInfo;
  std::string cgroup_prefix = "cpuclass";  // v1/hybrid: <cpu mount>/<prefix>/<worker>/<class>
};

struct Policy {
  DaemonSettings daemon;
  std::vector<ClassSpec> classes;  // sorted by name
  std::vector<WorkerSpec> workers;  // in load order; the first match owns a process
  std::vector<std::string> files;   // the files it came from, in load order

  const ClassSpec* findClass(std::string_view name) const;
  const WorkerSpec* findWorker(std::string_view name) const;
};

// The classes that exist without being written: foreground, background, offload.
std::vector<ClassSpec> builtinClasses();

}  // namespace cpuclass::policy
