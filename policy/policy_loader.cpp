#include "policy/policy_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace cpuclass::policy {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

const std::regex kClassName("[a-z][a-z0-9_-]{0,31}");
const std::regex kWorkerName("[a-z0-9][a-z0-9_.-]{0,63}");

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string showDuration(milliseconds d) {
  const auto n = d.count();
  if (n != 0 && n % 60000 == 0) return std::to_string(n / 60000) + "m";
  if (n != 0 && n % 1000 == 0) return std::to_string(n / 1000) + "s";
  return std::to_string(n) + "ms";
}

// Limits of what this project hands to std::regex: at most 1024 characters, {n,m} counts up to
// 1000, back-references \1..\99. libstdc++'s regex compiler reads counts and back-reference
// numbers into a long with no bound (undefined behaviour on overflow, found by the fuzzer) and
// grows without bound on long patterns. Null when the pattern is within them.
std::optional<std::string> beyondRegexLimits(std::string_view re) {
  if (re.size() > 1024) return "longer than 1024 characters";
  unsigned long value = 0;  // of the last run of digits, up to 5 of them
  const auto digitsAt = [&](size_t& j) {
    size_t digits = 0;
    value = 0;
    for (; j < re.size() && std::isdigit(static_cast<unsigned char>(re[j])) != 0; ++j) {
      if (++digits <= 5) value = value * 10 + static_cast<unsigned long>(re[j] - '0');
    }
    return digits;
  };
  for (size_t i = 0; i < re.size(); ++i) {
    size_t j = i + 1;
    if (re[i] == '\\') {
      if (digitsAt(j) > 2) return "back-reference number above 99";
      i = std::max(i + 1, j - 1);  // past the escaped character or the number
      continue;
    }
    if (re[i] != '{') continue;
    for (int part = 0; part < 2; ++part) {
      if (digitsAt(j) > 4 || value > 1000) return "repetition count above 1000";
      if (j < re.size() && re[j] == ',') ++j;
    }
  }
  return std::nullopt;
}

// std::regex_error's what() is verbose and varies; these say what is wrong in a few words.
std::string regexProblem(const std::regex_error& e) {
  switch (e.code()) {
    case std::regex_constants::error_brack: return "unmatched [";
    case std::regex_constants::error_paren: return "unmatched (";
    case std::regex_constants::error_brace: return "unmatched {";
    case std::regex_constants::error_badbrace: return "bad {} repetition";
    case std::regex_constants::error_badrepeat: return "repetition of nothing";
    case std::regex_constants::error_escape: return "bad escape";
    case std::regex_constants::error_range: return "bad character range";
    default: return "malformed";
  }
}

// Builds one Policy from several files. Each visit*() reads one YAML construct, reports what is
// wrong with it and keeps going, so one run shows every error.
class Builder {
 public:
  Builder() {
    for (auto& c : builtinClasses()) classes_.emplace(c.name, std::move(c));
  }

  void addFile(const PolicySource& source) {
    file_ = source.name;
    policy_.files.push_back(source.name);
    YAML::Node root;
    try {
      root = YAML::Load(source.text);
    } catch (const YAML::ParserException& e) {
      error({file_, e.mark.line + 1, e.mark.column + 1}, "yaml: " + e.msg);
      return;
    } catch (const YAML::Exception& e) {  // DeepRecursion and friends carry no useful mark
      error({file_, 1, 1}, std::string("yaml: ") + e.what());
      return;
    }
    if (root.IsNull()) return;  // an empty file changes nothing
    if (!root.IsMap()) {
      error(at(root), "the policy must be a mapping with keys: daemon, classes, workers");
      return;
    }
    visitMap(root, {"daemon", "classes", "workers"}, [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
      if (key == "daemon") visitDaemon(k, v);
      if (key == "classes") visitClasses(k, v);
      if (key == "workers") visitWorkers(k, v);
    });
  }

  LoadResult finish() {
    for (const auto& ref : class_refs_) {
      if (!classes_.contains(ref.name)) {
        std::vector<std::string> names;
        for (const auto& [n, c] : classes_) names.push_back(n);
        error(ref.where, "class '" + ref.name + "' is not defined (defined: " + join(names) + ")");
      }
    }
    for (const auto& [n, c] : classes_) {
      if (c.run_in.empty()) continue;
      const auto host = classes_.find(c.run_in);
      if (c.run_in == n) {
        error(c.run_in_where, "class '" + n + "' cannot run_in itself");
      } else if (host != classes_.end() && !host->second.run_in.empty()) {
        error(c.run_in_where, "class '" + n + "' runs in '" + c.run_in + "', which itself runs in '" + host->second.run_in +
                                  "': run_in must name a class with a group of its own");
      }
    }
    for (const auto& entry : classes_) {
      const ClassSpec& c = entry.second;  // not a structured binding: clang 14 cannot capture one
      if (c.realtime == 0) continue;
      const auto conflict = [&](const std::string& why) { error(c.realtime_where, "class '" + c.name + "' is realtime: " + why); };
      if (c.idle) conflict("it cannot also be idle, which would let it run only on CPU nobody wants");
      if (c.boost) conflict("it needs no boost, its threads run first already (boost: false)");
      if (!c.run_in.empty()) conflict("it needs a group of its own (on cgroup v1, for its real-time budget), not run_in");
    }
    LoadResult out;
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(), [&](const Diagnostic& a, const Diagnostic& b) {
      const auto fa = fileIndex(a.where.file), fb = fileIndex(b.where.file);
      return std::tie(fa, a.where.line, a.where.column) < std::tie(fb, b.where.line, b.where.column);
    });
    out.diagnostics = std::move(diagnostics_);
    if (!out.diagnostics.empty()) return out;
    for (auto& [n, c] : classes_) policy_.classes.push_back(std::move(c));
    out.policy = std::move(policy_);
    return out;
  }

 private:
  struct ClassRef {
    std::string name;
    SourceLocation where;
  };
  using Visitor = std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>;

  size_t fileIndex(const std::string& f) const {
    return static_cast<size_t>(std::find(policy_.files.begin(), policy_.files.end(), f) - policy_.files.begin());
  }

  SourceLocation at(const YAML::Node& n) const {
    const auto m = n.Mark();
    if (m.is_null()) return {file_, 1, 1};
    return {file_, m.line + 1, m.column + 1};
  }
  // A null value has no useful mark of its own: point at its key instead.
  SourceLocation at(const YAML::Node& key, const YAML::Node& value) const {
    return value.IsNull() || value.Mark().is_null() ? at(key) : at(value);
  }

  void error(SourceLocation where, std::string message) {
    diagnostics_.push_back({std::move(where), std::move(message)});
  }

  static std::string shown(const YAML::Node& v) {
    if (v.IsScalar()) return "'" + v.Scalar() + "'";
    if (v.IsNull()) return "nothing";
    return v.IsMap() ? "a mapping" : "a list";
  }

  // Walks a mapping with an allow-list: yaml-cpp itself neither rejects unknown keys nor notices
  // duplicate ones (the first value would silently win).
  void visitMap(const YAML::Node& map, std::vector<std::string> allowed, const Visitor& visit) {
    std::map<std::string, SourceLocation> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      // Copies: it-> yields a temporary proxy, so a reference to its members would dangle.
      const YAML::Node k = it->first;
      const YAML::Node v = it->second;
      if (!k.IsScalar()) {
        error(at(k), "keys must be plain names");
        continue;
      }
      const std::string key = k.Scalar();
      if (const auto s = seen.find(key); s != seen.end()) {
        error(at(k), "duplicate key '" + key + "' (first at line " + std::to_string(s->second.line) + ")");
        continue;
      }
      seen.emplace(key, at(k));
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        error(at(k), "unknown key '" + key + "' (expected one of: " + join(allowed) + ")");
        continue;
      }
      visit(key, k, v);
    }
  }

  bool expectMap(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    if (v.IsMap()) return true;
    error(at(k, v), key + " must be a mapping, got " + shown(v));
    return false;
  }

  std::optional<int64_t> readInt(const std::string& key, const YAML::Node& k, const YAML::Node& v, int64_t lo, int64_t hi) {
    int64_t value = 0;
    if (v.IsScalar()) {
      const auto& s = v.Scalar();
      const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
      if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty() && value >= lo && value <= hi) return value;
    }
    error(at(k, v), key + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + shown(v));
    return std::nullopt;
  }

  std::optional<bool> readBool(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    if (v.IsScalar() && v.Scalar() == "true") return true;
    if (v.IsScalar() && v.Scalar() == "false") return false;
    error(at(k, v), key + " must be true or false, got " + shown(v));
    return std::nullopt;
  }

  std::optional<std::string> readString(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    if (v.IsScalar() && !v.Scalar().empty()) return v.Scalar();
    error(at(k, v), key + " must be a non-empty string, got " + shown(v));
    return std::nullopt;
  }

  template <class E>
  std::optional<E> readEnum(const std::string& key, const YAML::Node& k, const YAML::Node& v,
                            const std::vector<std::pair<std::string, E>>& options) {
    std::vector<std::string> names;
    for (const auto& [name, e] : options) {
      if (v.IsScalar() && v.Scalar() == name) return e;
      names.push_back(name);
    }
    error(at(k, v), key + " must be one of: " + join(names) + ", got " + shown(v));
    return std::nullopt;
  }

  // "100us", "10ms", "2s", "1m"; microseconds only where `lo` is finer than a millisecond.
  static std::optional<microseconds> parseDuration(const std::string& s) {
    int64_t n = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    const std::string_view unit(ptr, static_cast<size_t>(s.data() + s.size() - ptr));
    if (ec != std::errc() || n < 0) return std::nullopt;
    if (unit == "us") return microseconds(n);
    if (unit == "ms") return milliseconds(n);
    if (unit == "s") return milliseconds(n * 1000);
    if (unit == "m") return milliseconds(n * 60000);
    return std::nullopt;
  }

  std::optional<microseconds> readMicros(const std::string& key, const YAML::Node& k, const YAML::Node& v,
                                         microseconds lo, microseconds hi) {
    const auto d = v.IsScalar() ? parseDuration(v.Scalar()) : std::nullopt;
    const bool whole_ms = lo.count() % 1000 == 0;
    if (d && *d >= lo && *d <= hi && (!whole_ms || d->count() % 1000 == 0)) return d;
    const auto show = [](microseconds x) { return x.count() % 1000 ? std::to_string(x.count()) + "us" : showDuration(duration_cast<milliseconds>(x)); };
    error(at(k, v), key + " must be a duration like " + (whole_ms ? "10ms, 2s or 1m" : "100us or 1ms") + ", in " + show(lo) +
                        ".." + show(hi) + ", got " + shown(v));
    return std::nullopt;
  }

  std::optional<milliseconds> readDuration(const std::string& key, const YAML::Node& k, const YAML::Node& v,
                                           milliseconds lo, milliseconds hi) {
    const auto d = readMicros(key, k, v, lo, hi);
    return d ? std::optional(duration_cast<milliseconds>(*d)) : std::nullopt;
  }

  std::optional<Pattern> readPattern(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    auto text = readString(key, k, v);
    if (!text) return std::nullopt;
    // A glob where a regex belongs is the likeliest mistake; libstdc++ calls it "mismatched (".
    if (std::string_view("*+?").find(text->front()) != std::string_view::npos) {
      error(at(v), key + ": invalid regular expression '" + *text + "': nothing to repeat before '" + text->front() +
                       "' (regular expressions, not globs: use '.*')");
      return std::nullopt;
    }
    if (const auto why = beyondRegexLimits(*text)) {
      error(at(v), key + ": invalid regular expression '" + *text + "': " + *why);
      return std::nullopt;
    }
    try {
      return Pattern(*text, std::regex(*text, std::regex::ECMAScript));
    } catch (const std::regex_error& e) {
      error(at(v), key + ": invalid regular expression '" + *text + "': " + regexProblem(e));
      return std::nullopt;
    }
  }

  std::optional<std::string> readName(const std::string& what, const YAML::Node& k, const YAML::Node& v, const std::regex& form,
                                      const std::string& form_text) {
    auto s = readString(what, k, v);
    if (!s) return std::nullopt;
    if (std::regex_match(*s, form)) return s;
    error(at(v), what + " '" + *s + "' must match " + form_text + " (it names a cgroup directory)");
    return std::nullopt;
  }

  void classRef(const std::string& name, SourceLocation where) { class_refs_.push_back({name, std::move(where)}); }

  void visitDaemon(const YAML::Node& k, const YAML::Node& v) {
    if (!expectMap("daemon", k, v)) return;
    auto& d = policy_.daemon;
    visitMap(v, {"starvation_poll", "rescan_interval", "metrics_listen", "metrics_per_worker", "on_stop", "log_level",
                 "cgroup_prefix", "fast_moves"},
             [&](const std::string& key, const YAML::Node& kk, const YAML::Node& vv) {
               if (key == "starvation_poll") {
                 if (auto x = readDuration(key, kk, vv, milliseconds(1), milliseconds(1000))) d.starvation_poll = *x;
               } else if (key == "rescan_interval") {
                 if (auto x = readDuration(key, kk, vv, milliseconds(100), milliseconds(3600000))) d.rescan_interval = *x;
               } else if (key == "metrics_listen") {
                 if (auto x = readListen(key, kk, vv)) d.metrics_listen = *x;
               } else if (key == "fast_moves") {
                 if (auto x = readBool(key, kk, vv)) d.fast_moves = *x;
               } else if (key == "metrics_per_worker") {
                 if (auto x = readBool(key, kk, vv)) d.metrics_per_worker = *x;
               } else if (key == "on_stop") {
                 if (auto x = readEnum<OnStop>(key, kk, vv, {{"restore", OnStop::kRestore}, {"keep", OnStop::kKeep}})) d.on_stop = *x;
               } else if (key == "log_level") {
                 if (auto x = readEnum<LogLevel>(key, kk, vv, {{"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo},
                                                               {"notice", LogLevel::kNotice}, {"warning", LogLevel::kWarning},
                                                               {"error", LogLevel::kError}})) {
                   d.log_level = *x;
                 }
               } else if (key == "cgroup_prefix") {
                 if (auto x = readName(key, kk, vv, kWorkerName, "[a-z0-9][a-z0-9_.-]{0,63}")) d.cgroup_prefix = *x;
               }
             });
  }

  // "off", or IPv4-address:port (the exposer has no IPv6 in Debian 12's civetweb).
  std::optional<std::string> readListen(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    static const std::regex form(R"((off)|(((\d{1,3}\.){3}\d{1,3}|localhost):(\d{1,5})))");
    std::smatch m;
    if (v.IsScalar() && std::regex_match(v.Scalar(), m, form)) {
      if (m[1].matched) return v.Scalar();
      const int port = std::stoi(m[5].str());
      if (port <= 65535) return v.Scalar();
    }
    error(at(k, v), key + " must be off or ADDRESS:PORT with an IPv4 address, like 127.0.0.1:9753 (port 0: any free port), got " + shown(v));
    return std::nullopt;
  }

  void visitClasses(const YAML::Node& k, const YAML::Node& v) {
    if (!expectMap("classes", k, v)) return;
    visitMap(v, {}, [&](const std::string& name, const YAML::Node& kk, const YAML::Node& vv) {
      if (!readName("class name", kk, kk, kClassName, "[a-z][a-z0-9_-]{0,31}")) return;
      // A class starts from its built-in definition, if any, and each file refines the keys it sets.
      ClassSpec& c = classes_[name];
      c.name = name;
      c.where = at(kk);
      if (vv.IsNull()) return;
      if (!expectMap("class " + name, kk, vv)) return;
      visitMap(vv, {"cpu_weight", "idle", "squeeze", "sched", "nice", "slice", "realtime", "realtime_limit", "boost", "run_in"}, [&](const std::string& key, const YAML::Node& k3, const YAML::Node& v3) {
        if (key == "cpu_weight") {
          if (auto x = readInt(key, k3, v3, 1, 10000)) c.cpu_weight = static_cast<uint32_t>(*x);
        } else if (key == "idle") {
          if (auto x = readBool(key, k3, v3)) c.idle = *x;
        } else if (key == "squeeze") {
          if (auto x = readBool(key, k3, v3)) c.squeeze = *x;
        } else if (key == "sched") {
          if (auto x = readSched(key, k3, v3)) c.sched = *x;
        } else if (key == "nice") {
          if (auto x = readInt(key, k3, v3, -20, 19)) c.nice = static_cast<int>(*x);
        } else if (key == "slice") {
          // The kernel clamps a custom slice to 0.1..100 ms; null: back to the default.
          if (v3.IsNull()) {
            c.slice = microseconds(0);
          } else if (auto x = readMicros(key, k3, v3, microseconds(100), milliseconds(100))) {
            c.slice = *x;
          }
        } else if (key == "realtime") {
          if (auto x = readInt(key + " (SCHED_RR priority, 0: off)", k3, v3, 0, 99)) {
            c.realtime = static_cast<int>(*x);
            c.realtime_where = at(k3, v3);
          }
        } else if (key == "realtime_limit") {
          if (auto x = readInt(key + " (percent of all CPUs)", k3, v3, 1, 100)) c.realtime_limit = static_cast<double>(*x) / 100;
        } else if (key == "boost") {
          visitBoost(c, k3, v3);
        } else if (key == "run_in") {
          if (v3.IsNull()) {
            c.run_in.clear();  // a drop-in may give the class its own group again
          } else if (auto x = readName(key, k3, v3, kClassName, "[a-z][a-z0-9_-]{0,31}")) {
            c.run_in = *x;
            c.run_in_where = at(k3, v3);
            classRef(*x, c.run_in_where);
          }
        }
      });
    });
  }

  std::optional<ThreadSched> readSched(const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    return readEnum<ThreadSched>(key, k, v, {{"other", ThreadSched::kOther}, {"batch", ThreadSched::kBatch}, {"idle", ThreadSched::kIdle}});
  }

  void visitBoost(ClassSpec& c, const YAML::Node& k, const YAML::Node& v) {
    if (v.IsScalar() && (v.Scalar() == "false" || v.Scalar() == "true")) {
      c.boost = v.Scalar() == "true" ? std::optional<BoostSpec>(c.boost.value_or(BoostSpec{})) : std::nullopt;
      return;
    }
    if (!v.IsMap()) {
      error(at(k, v), "boost must be a mapping, true or false, got " + shown(v));
      return;
    }
    BoostSpec b = c.boost.value_or(BoostSpec{});
    visitMap(v, {"starved_below", "window", "sched", "nice", "wait_nice", "max_per_worker", "max_total", "max_per_second",
                 "cooldown", "max_cooldown"},
             [&](const std::string& key, const YAML::Node& kk, const YAML::Node& vv) {
               if (key == "starved_below") {
                 if (auto x = readInt(key + " (percent of a poll interval)", kk, vv, 1, 90)) b.starved_below = static_cast<double>(*x) / 100;
               } else if (key == "window") {
                 if (auto x = readDuration(key, kk, vv, milliseconds(1), milliseconds(10000))) b.window = *x;
               } else if (key == "cooldown") {
                 if (auto x = readDuration(key, kk, vv, milliseconds(0), milliseconds(10000))) b.cooldown = *x;
               } else if (key == "max_cooldown") {
                 if (auto x = readDuration(key, kk, vv, milliseconds(0), milliseconds(60000))) b.max_cooldown = *x;
               } else if (key == "sched") {
                 if (auto x = readSched(key, kk, vv)) b.sched = *x;
               } else if (key == "nice") {
                 if (auto x = readInt(key, kk, vv, -20, 19)) b.nice = static_cast<int>(*x);
               } else if (key == "wait_nice") {
                 if (auto x = readInt(key, kk, vv, -20, 19)) b.wait_nice = static_cast<int>(*x);
               } else if (key == "max_per_worker") {
                 if (auto x = readInt(key, kk, vv, 0, 100000)) b.max_per_worker = static_cast<uint32_t>(*x);
               } else if (key == "max_total") {
                 if (auto x = readInt(key, kk, vv, 0, 100000)) b.max_total = static_cast<uint32_t>(*x);
               } else if (key == "max_per_second") {
                 if (auto x = readInt(key, kk, vv, 0, 1000000)) b.max_per_second = static_cast<uint32_t>(*x);
               }
             });
    c.boost = b;
  }

  void visitWorkers(const YAML::Node& k, const YAML::Node& v) {
    if (!v.IsSequence()) {
      error(at(k, v), "workers must be a list, got " + shown(v));
      return;
    }
    for (const auto& w : v) {
      if (!w.IsMap()) {
        error(at(w), "a worker must be a mapping with name, match, default_class, threads, processes");
        continue;
      }
      visitWorker(w);
    }
  }

  void visitWorker(const YAML::Node& w) {
    WorkerSpec spec;
    spec.where = at(w);
    spec.default_class = "foreground";
    spec.default_where = spec.where;
    const size_t errors_before = diagnostics_.size();
    visitMap(w, {"name", "match", "default_class", "threads", "processes"},
             [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
               if (key == "name") {
                 if (auto x = readName("worker name", k, v, kWorkerName, "[a-z0-9][a-z0-9_.-]{0,63}")) {
                   spec.name = *x;
                   spec.where = at(v);
                 }
               } else if (key == "match") {
                 visitMatch(spec.match, k, v);
               } else if (key == "default_class") {
                 if (auto x = readString(key, k, v)) {
                   spec.default_class = *x;
                   spec.default_where = at(v);
                   classRef(*x, at(v));
                 }
               } else if (key == "threads") {
                 visitRules(k, v, [&](const YAML::Node& rule) { visitThreadRule(spec, rule); });
               } else if (key == "processes") {
                 visitRules(k, v, [&](const YAML::Node& rule) { visitProcessRule(spec, rule); });
               }
             });
    if (!w["name"]) error(at(w), "worker is missing required key 'name'");
    if (!w["match"]) error(at(w), "worker is missing required key 'match'");
    if (!spec.name.empty()) {
      if (const auto prev = worker_defined_.find(spec.name); prev != worker_defined_.end()) {
        error(spec.where, "worker '" + spec.name + "' is already defined at " + prev->second.str());
        return;
      }
      worker_defined_.emplace(spec.name, spec.where);
    }
    const bool ok = diagnostics_.size() == errors_before;
    if (ok) policy_.workers.push_back(std::move(spec));
  }

  void visitMatch(WorkerMatch& m, const YAML::Node& k, const YAML::Node& v) {
    if (!expectMap("match", k, v)) return;
    bool any = false;
    visitMap(v, {"exe", "comm", "cmdline", "unit", "cgroup", "container", "pod", "qos", "annotations"},
             [&](const std::string& key, const YAML::Node& kk, const YAML::Node& vv) {
      if (key == "exe") m.exe = readString(key, kk, vv);
      if (key == "comm") m.comm = readPattern(key, kk, vv);
      if (key == "cmdline") m.cmdline = readPattern(key, kk, vv);
      if (key == "unit") m.unit = readString(key, kk, vv);
      if (key == "cgroup") m.cgroup = readString(key, kk, vv);
      if (key == "container") m.container = readContainerId(kk, vv);
      if (key == "pod") m.pod = readPod(kk, vv);
      if (key == "annotations") readAnnotations(m.annotations, kk, vv);
      if (key == "qos") {
        m.qos = readEnum<QosClass>(key, kk, vv, {{"guaranteed", QosClass::kGuaranteed}, {"burstable", QosClass::kBurstable},
                                                 {"besteffort", QosClass::kBestEffort}});
      }
      any = true;
    });
    if (!any) error(at(k, v), "match needs at least one of: exe, comm, cmdline, unit, cgroup, container, pod, qos, annotations");
  }

  // A container id as runtimes show it: 12 to 64 lowercase hex digits (a prefix of the id), or a
  // glob on the container's name or 64-digit id (e.g. '*'). A shorter hex string would match
  // containers by accident.
  std::optional<std::string> readContainerId(const YAML::Node& k, const YAML::Node& v) {
    auto id = readString("container", k, v);
    if (!id) return std::nullopt;
    const bool hex = id->find_first_not_of("0123456789abcdef") == std::string::npos;
    if (hex && !isContainerIdPrefix(*id)) {
      error(at(k, v), "container: a container id needs 12 to 64 hex digits (docker ps and podman ps show 12), got '" + *id + "'");
      return std::nullopt;
    }
    return id;
  }

  // A Kubernetes pod: its UID (kubectl get pod -o jsonpath='{.metadata.uid}') or a glob on
  // NAMESPACE/NAME.
  std::optional<std::string> readPod(const YAML::Node& k, const YAML::Node& v) {
    auto pod = readString("pod", k, v);
    if (!pod) return std::nullopt;
    if (!isPodUid(*pod) && pod->find('/') == std::string::npos) {
      error(at(k, v), "pod: a pod UID (0d9ba2a4-5b8e-4c2e-9f1e-2a7c3e4b5d6f, kubectl get pod -o jsonpath='{.metadata.uid}') "
                      "or NAMESPACE/NAME (globs allowed: 'db/postgres-*'), got '" + *pod + "'");
      return std::nullopt;
    }
    return pod;
  }

  // OCI annotations: each key must be present with a value the glob matches.
  void readAnnotations(std::map<std::string, std::string>& out, const YAML::Node& k, const YAML::Node& v) {
    if (!expectMap("annotations", k, v)) return;
    visitMap(v, {}, [&](const std::string& key, const YAML::Node& kk, const YAML::Node& vv) {
      if (auto glob = readString(key, kk, vv)) out[key] = std::move(*glob);
    });
  }

  void visitRules(const YAML::Node& k, const YAML::Node& v, const std::function<void(const YAML::Node&)>& visit) {
    if (!v.IsSequence()) {
      error(at(k, v), k.Scalar() + " must be a list of rules, got " + shown(v));
      return;
    }
    for (const auto& rule : v) {
      if (!rule.IsMap()) {
        error(at(rule), "a rule must be a mapping, got " + shown(rule));
        continue;
      }
      visit(rule);
    }
  }

  void visitThreadRule(WorkerSpec& spec, const YAML::Node& rule) {
    std::optional<Pattern> comm;
    std::optional<std::string> cls;
    SourceLocation cls_at;
    visitMap(rule, {"comm", "class"}, [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
      if (key == "comm") comm = readPattern(key, k, v);
      if (key == "class" && (cls = readString(key, k, v))) cls_at = at(v);
    });
    if (!rule["comm"] || !rule["class"]) {
      error(at(rule), "a thread rule needs both 'comm' and 'class'");
      return;
    }
    if (!comm || !cls) return;
    classRef(*cls, cls_at);
    spec.threads.push_back({std::move(*comm), *cls, at(rule)});
  }

  void visitProcessRule(WorkerSpec& spec, const YAML::Node& rule) {
    ProcessRule r;
    bool bad = false;
    std::optional<std::string> cls;
    SourceLocation cls_at;
    visitMap(rule, {"comm", "exe", "cmdline", "class"}, [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
      if (key == "comm") bad |= !(r.comm = readPattern(key, k, v));
      if (key == "exe") bad |= !(r.exe = readString(key, k, v));
      if (key == "cmdline") bad |= !(r.cmdline = readPattern(key, k, v));
      if (key == "class" && (cls = readString(key, k, v))) cls_at = at(v);
    });
    if ((!rule["comm"] && !rule["exe"] && !rule["cmdline"]) || !rule["class"]) {
      error(at(rule), "a process rule needs 'class' and at least one of 'comm', 'exe', 'cmdline'");
      return;
    }
    if (bad || !cls) return;
    classRef(*cls, cls_at);
    r.class_name = *cls;
    r.where = at(rule);
    spec.processes.push_back(std::move(r));
  }

  Policy policy_;
  std::map<std::string, ClassSpec> classes_;
  std::map<std::string, SourceLocation> worker_defined_;
  std::vector<ClassRef> class_refs_;
  std::vector<Diagnostic> diagnostics_;
  std::string file_;
};

}  // namespace

LoadResult parsePolicy(const std::vector<PolicySource>& sources) {
  Builder b;
  for (const auto& s : sources) b.addFile(s);
  return b.finish();
}

std::string dropinDirFor(const std::string& main_file) {
  return (std::filesystem::path(main_file).parent_path() / "policy.d").string();
}

LoadResult loadPolicy(const std::string& main_file, const std::string& dropin_dir) {
  std::vector<std::string> paths{main_file};
  std::error_code ec;
  if (std::filesystem::is_directory(dropin_dir, ec)) {
    std::vector<std::string> dropins;
    for (const auto& e : std::filesystem::directory_iterator(dropin_dir, ec)) {
      if (e.path().extension() == ".yaml" && e.is_regular_file(ec)) dropins.push_back(e.path().string());
    }
    std::sort(dropins.begin(), dropins.end());
    paths.insert(paths.end(), dropins.begin(), dropins.end());
  }
  std::vector<PolicySource> sources;
  for (const auto& p : paths) {
    std::ifstream in(p);
    if (!in) {
      LoadResult r;
      // Filled in place: a Diagnostic temporary here draws a false -Wmaybe-uninitialized from
      // GCC 12 at -O2/-O3 on its string's destructor.
      auto& unreadable = r.diagnostics.emplace_back();
      unreadable.where = {p, 1, 1};
      unreadable.message = std::string("cannot read the file: ").append(std::strerror(errno));
      return r;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    sources.push_back({p, ss.str()});
  }
  return parsePolicy(sources);
}

int checkPolicyFile(const std::string& main_file, std::FILE* out, std::FILE* err) {
  const auto result = loadPolicy(main_file, dropinDirFor(main_file));
  std::fputs(formatDiagnostics(result.diagnostics).c_str(), err);
  if (!result.policy) {
    std::fprintf(err, "%zu error%s\n", result.diagnostics.size(), result.diagnostics.size() == 1 ? "" : "s");
    return 1;
  }
  const auto& p = *result.policy;
  std::fprintf(out, "%s: ok (%zu file%s, %zu classes, %zu workers)\n", main_file.c_str(), p.files.size(),
               p.files.size() == 1 ? "" : "s", p.classes.size(), p.workers.size());
  return 0;
}

}  // namespace cpuclass::policy
