// The netlink proc connector: the kernel's stream of fork, exec, comm and exit events, which lets
// the daemon place a new thread as soon as it exists instead of at the next /proc scan.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace cpuclass::cgroups {

struct ProcEvent {
  enum class Kind { kFork, kExec, kComm, kExit };
  Kind kind = Kind::kFork;
  pid_t tid = 0;   // the new thread/process (fork), or the one the event is about
  pid_t tgid = 0;  // its process
  pid_t parent_tgid = 0;  // fork only: the process that forked (for a thread: its own process)
  uint64_t timestamp_ns = 0;  // CLOCK_MONOTONIC when the kernel emitted it
  std::string comm;           // comm events only
  bool isNewThread() const { return kind == Kind::kFork && tid != tgid; }
};

// Parses one datagram from the connector socket (one or more netlink messages). Pure; ignores
// events of other kinds and malformed tails.
std::vector<ProcEvent> parseProcEvents(std::span<const uint8_t> datagram);

class ProcConnector {
 public:
  // Binds and subscribes. With `filter` (Linux 6.6+) the kernel sends only fork, exec, comm and
  // exit events. The receive buffer is raised so bursts of thread creation fit.
  static Result<ProcConnector> open(bool filter);

  int fd() const { return fd_.get(); }
  // Reads every datagram queued now (the socket is non-blocking). `lost` is set when the kernel
  // dropped events (ENOBUFS): the caller must rescan /proc.
  Result<std::vector<ProcEvent>> drain(bool& lost);

 private:
  explicit ProcConnector(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace cpuclass::cgroups
