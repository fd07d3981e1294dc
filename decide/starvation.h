// Pure decisions for starving offload threads (DESIGN.md §6): who starves, who may be boosted,
// and when a boost ends. Time is passed in, so tests drive it with a fake clock.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cpuclass::decide {

using Nanos = std::chrono::nanoseconds;

// What one look at a thread read (daemon/booster.cpp reads it through a kept-open probe).
struct LiveSample {
  char state = '?';          // stat field 3: R runnable or running, S, D, ...; '?' not read
  uint64_t runtime_ns = 0;   // schedstat field 1
  bool has_runtime = false;
};

// Starving = runnable ('R') and the runtime grew by less than `starved_below` of the time since
// the previous look. A look while the thread slept is a baseline too: a thread that woke and has
// not run since is starving at its first runnable look. One that woke and ran a little is looked
// at again soon (kRecheck): when it woke within the poll is unknown, and waiting a whole poll
// more to judge it doubled the detection time. schedstat's run_delay is no use here: the kernel
// adds to it only when the waiting thread finally runs (KERNEL_NOTES).
enum class Look { kFine, kStarving, kRecheck };

class StarvationDetector {
 public:
  // The first look at a thread only sets its baseline (a runnable one is rechecked).
  Look observe(pid_t tid, Nanos now, LiveSample sample, double starved_below);
  // For a thread looked at before: the state its runtime alone implies, so stat need not be read.
  // 'R': seen runnable and not run since (it cannot have gone to sleep without running); '?': it
  // ran at least `starved_below` of the time, so it is not starving whatever its state. nullopt:
  // read the state.
  std::optional<char> impliedState(pid_t tid, Nanos now, uint64_t runtime_ns, double starved_below) const;
  void forget(pid_t tid) { previous_.erase(tid); }

 private:
  struct Previous {
    Nanos at;
    uint64_t runtime_ns = 0;
    bool has_runtime = false;
    char state = '?';  // '?': ran enough that its state was not read
  };
  static bool ranLittle(const Previous& p, Nanos now, uint64_t runtime_ns, double starved_below);
  std::unordered_map<pid_t, Previous> previous_;
};

// How many idle threads of a large class group one poll looks at (the idle sweep), once the
// group's PSI shows that some thread waited. At 16 a poll, 2,000 threads take 125 polls (1.25 s),
// and those `stat` reads were most of the daemon's CPU at that scale. So a
// round that finds no thread runnable halves the pace, down to 4 a poll (2,000 threads in 5 s),
// and a runnable find puts it back to 16 at once: the reads go where threads wake. A pool whose
// PSI is held up by threads known to wait (bulk offload cooling down) costs a quarter, and its
// first starving thread after a quiet spell is found within 5 s instead of 1.25 s
// (docs/boosting.md, "Round 8"). Small groups are looked at whole every poll, without a pace.
class SweepPace {
 public:
  static constexpr size_t kFastest = 16;
  static constexpr size_t kSlowest = 4;
  size_t perPoll() const { return per_poll_; }
  // One thread of the sweep looked at, in a group of `group_size`; whether it was runnable.
  void looked(size_t group_size, bool runnable);

 private:
  size_t per_poll_ = kFastest;
  size_t looked_in_round_ = 0;
};

struct BoostLimits {
  Nanos window{std::chrono::milliseconds(50)};
  Nanos cooldown{std::chrono::milliseconds(20)};       // after the first boost that ran out its window
  Nanos max_cooldown{std::chrono::milliseconds(2000)};  // the doubling stops here
  uint32_t max_per_worker = 4;
  uint32_t max_total = 64;
  uint32_t max_per_second = 200;
};

enum class BoostVerdict {
  kStarted,
  kAlreadyBoosted,  // the deadline was pushed out instead (a wait report renews it)
  kCoolingDown,     // hysteresis: too soon after this thread's last boost
  kWorkerBudget,    // max_per_worker boosted already
  kTotalBudget,     // max_total boosted already
  kRateLimited,     // max_per_second boosts started in the last second
};
bool refused(BoostVerdict v);

struct EndedBoost {
  pid_t tid = 0;
  std::string worker;
  Nanos duration{};
};

// Who is boosted and until when; enforces the budgets. Ending a boost is always allowed.
//
// Hysteresis tells a quick item someone waits on from a CPU-hungry offload thread: a boost that
// ends because the thread went back to sleep leaves no cooldown (and resets it); a boost that
// runs out its window starts a cooldown that doubles with each such boost, up to max_cooldown.
// A thread that never sleeps is no item anyone waits on but bulk work: after a boost it ran out
// without sleeping, detection boosts it again only once it has slept (looked at every
// max_cooldown), so bulk offload work gets one window, not a share of busy CPUs.
class BoostBook {
 public:
  // `explicit_wait`: a worker reported that someone waits on tid; cooldowns do not apply.
  // `slept(tid)`: whether tid slept since its last boost began (asked only of a thread whose
  // last boost ran out without sleeping).
  BoostVerdict request(pid_t tid, const std::string& worker, Nanos now, const BoostLimits& limits,
                       bool explicit_wait = false, const std::function<bool(pid_t)>& slept = {});
  // Boosts past their deadline, now ended; the caller reverts them. A thread that never slept
  // during its boost was CPU-hungry and gets a cooldown; `slept(tid)` tells one that did (it
  // served waits back to back, faster than a poll could see it asleep) and leaves none.
  std::vector<EndedBoost> expire(Nanos now, const std::function<bool(pid_t)>& slept = {});
  // Ends one boost early: the thread slept, the wait ended, or it exited. No cooldown follows.
  std::optional<EndedBoost> end(pid_t tid, Nanos now);
  bool boosted(pid_t tid) const { return active_.contains(tid); }
  // Whether detection would be refused now for the cooldown alone: no need to look at tid.
  bool coolingDown(pid_t tid, Nanos now) const {
    const auto it = cooldowns_.find(tid);
    return it != cooldowns_.end() && now < it->second.until;
  }
  // tid exited: its cooldown must not pass to a thread that reuses the number.
  void forget(pid_t tid) { cooldowns_.erase(tid); }
  // Whether tid's boost was asked for by a reported wait (or an operator), not detected.
  bool explicitWait(pid_t tid) const {
    const auto it = active_.find(tid);
    return it != active_.end() && it->second.explicit_wait;
  }
  size_t active() const { return active_.size(); }
  size_t activeFor(const std::string& worker) const;
  std::vector<pid_t> boostedThreads() const;

 private:
  struct Active {
    std::string worker;
    Nanos started;
    Nanos deadline;
    Nanos cooldown;
    Nanos max_cooldown;
    bool explicit_wait = false;
  };
  struct Cooldown {
    Nanos until{};
    Nanos next{};  // the cooldown after the next boost that runs out its window
    bool never_slept = false;  // the last boost ran out its window without the thread sleeping
  };
  std::map<pid_t, Active> active_;
  std::unordered_map<pid_t, Cooldown> cooldowns_;
  std::deque<Nanos> recent_starts_;
};

}  // namespace cpuclass::decide
