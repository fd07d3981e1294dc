// C++ wrapper over libcpuclass's C API: an owning client and a scope that reports a wait for its
// lifetime. Errors come back as the C API's negative errno; nothing throws.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "cpuclass.h"

namespace cpuclass {

class Client {
 public:
  // Connects; check ok() (a worker should run on without the daemon).
  Client() { status_ = cpuclass_open(&raw_); }
  ~Client() { cpuclass_close(raw_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool ok() const { return raw_ != nullptr; }
  int status() const { return status_; }
  cpuclass_client* get() const { return raw_; }
  std::string lastError() const { return raw_ != nullptr ? cpuclass_last_error(raw_) : "not connected"; }

  // The calling thread joins `class_name` (e.g. "offload").
  int setCurrentThreadClass(const std::string& class_name) { return cpuclass_set_thread_class(raw_, 0, class_name.c_str()); }
  int resetCurrentThreadClass() { return cpuclass_reset_thread_class(raw_, 0); }

 private:
  cpuclass_client* raw_ = nullptr;
  int status_ = 0;
};

// While it lives, the calling thread is reported as waiting on `holder`:
//   { cpuclass::WaitScope wait(client, offload_tid); queue.wait_for_result(); }
class WaitScope {
 public:
  WaitScope(Client& client, pid_t holder) : client_(client), holder_(holder) {
    reported_ = client_.ok() && cpuclass_report_wait(client_.get(), 0, holder_) >= 0;
  }
  ~WaitScope() {
    if (reported_) cpuclass_end_wait(client_.get(), 0, holder_);
  }
  WaitScope(const WaitScope&) = delete;
  WaitScope& operator=(const WaitScope&) = delete;
  bool reported() const { return reported_; }

 private:
  Client& client_;
  pid_t holder_;
  bool reported_ = false;
};

inline pid_t currentTid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

}  // namespace cpuclass
