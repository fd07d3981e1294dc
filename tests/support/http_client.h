// A minimal HTTP client for loopback endpoints (/metrics, Prometheus's API), shared by the tests
// and the benchmarks; no dependency beyond libc.
#pragma once

#include <string>

namespace cpuclass::testing {

// A plain HTTP/1.0 GET to 127.0.0.1:port; the body, or "" on any failure.
std::string httpGet(int port, const std::string& path);
// A TCP port on 127.0.0.1 that was free a moment ago.
int freeLoopbackPort();

}  // namespace cpuclass::testing
