// The one clock of the daemon's decisions: CLOCK_MONOTONIC in the daemon, a hand-moved one in
// tests, so boosts, squeezes and guards are driven without sleeping.
#pragma once

#include <time.h>

#include <chrono>

namespace cpuclass::decide {

using Nanos = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Nanos now() const = 0;
};

// CLOCK_MONOTONIC: the clock of sd-event's timers and of the proc connector's fork timestamps.
class MonotonicClock final : public Clock {
 public:
  Nanos now() const override {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::chrono::seconds(ts.tv_sec) + Nanos(ts.tv_nsec);
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(Nanos start = std::chrono::seconds(1000)) : now_(start) {}
  Nanos now() const override { return now_; }
  void advance(Nanos by) { now_ += by; }
  void set(Nanos to) { now_ = to; }

 private:
  Nanos now_;
};

}  // namespace cpuclass::decide
