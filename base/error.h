// Value-or-error for every fallible call in the project.
//
// Error carries an errno-style code that callers branch on and a message for people. Library
// code never logs; it returns an Error and the daemon decides what to say.
#pragma once

#include <string>
#include <tl/expected.hpp>

namespace cpuclass {

struct Error {
  int code = 0;         // errno value (EINVAL for our own validation failures)
  std::string message;  // lower case, no trailing period, names the object acted on
};

template <class T>
using Result = tl::expected<T, Error>;

// fail(EINVAL, "cpu.weight must be in 1..10000")
tl::unexpected<Error> fail(int code, std::string message);

// failErrno("write /sys/fs/cgroup/cpu/x/tasks") appends ": <strerror(errno)>" and keeps errno.
tl::unexpected<Error> failErrno(std::string what);

// A thread or process that exited between lookup and use: ESRCH from the kernel, or ENOENT for
// its /proc or cgroup files. Expected in a daemon that watches other programs' threads.
bool isGone(const Error& e);

}  // namespace cpuclass
