// Child processes for tests that run the real binaries: the daemon, the test worker.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.h"

namespace cpuclass::testing {

class ChildProcess {
 public:
  // Starts argv with extra environment entries; stdin/stdout piped when `talk`, stderr to a file.
  ChildProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env, bool talk,
               const std::string& stderr_file);
  ~ChildProcess();  // SIGKILL if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends a line, returns the reply line (talk mode).
  std::string ask(const std::string& line);
  // The next line the child prints (talk mode), without its newline; "<eof>" at the end.
  std::string readLine();
  void signal(int sig) const;
  // Waits for exit up to `timeout`; returns the wait status, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  bool running();

 private:
  pid_t pid_ = -1;
  FILE* in_ = nullptr;
  FILE* out_ = nullptr;
  bool reaped_ = false;
};

// The sd_notify(3) protocol's receiving end, so tests see READY=1 as systemd would.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path);
  ~NotifySocket();
  const std::string& path() const { return path_; }
  // Waits for a datagram containing `text`, consuming those before it; false on timeout.
  bool waitFor(const std::string& text, std::chrono::milliseconds timeout);

 private:
  // Drains the socket all the time, as systemd does: a full datagram queue (net.unix.
  // max_dgram_qlen, 10 here) would block the daemon's next sd_notify.
  void drain();

  std::string path_;
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> received_;
  std::atomic<bool> stop_{false};
  std::thread reader_;
};

// Polls `pred` every 2 ms until it holds or `timeout` passes; returns the last result.
bool waitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

}  // namespace cpuclass::testing
