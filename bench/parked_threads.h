// Threads that park on a futex-free condition variable until released; for benchmarks that need
// many real TIDs to move around.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace cpuclass::bench {

class ThreadPark {
 public:
  explicit ThreadPark(size_t count) : tids_(count, 0) {
    threads_.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      threads_.emplace_back([this, i] {
        std::unique_lock lock(mu_);
        tids_[i] = static_cast<pid_t>(::syscall(SYS_gettid));
        ++ready_;
        cv_.notify_all();
        cv_.wait(lock, [this] { return released_; });
      });
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return ready_ == count; });
  }
  ~ThreadPark() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  const std::vector<pid_t>& tids() const { return tids_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<pid_t> tids_;
  std::vector<std::thread> threads_;
  size_t ready_ = 0;
  bool released_ = false;
};

}  // namespace cpuclass::bench
