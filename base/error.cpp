#include "base/error.h"

#include <cerrno>
#include <cstring>

namespace cpuclass {

tl::unexpected<Error> fail(int code, std::string message) {
  return tl::unexpected(Error{code, std::move(message)});
}

tl::unexpected<Error> failErrno(std::string what) {
  const int saved = errno;
  what += ": ";
  what += std::strerror(saved);
  return tl::unexpected(Error{saved, std::move(what)});
}

bool isGone(const Error& e) { return e.code == ESRCH || e.code == ENOENT; }

}  // namespace cpuclass
