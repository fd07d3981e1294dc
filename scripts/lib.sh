# Shared by scripts/demo and scripts/test: package installation and the build.
# shellcheck shell=bash

# Everything the build and the test tiers need, all from Debian 12's archive.
CPUCLASS_BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libsystemd-dev libyaml-cpp-dev prometheus-cpp-dev libexpected-dev libcli11-dev libfmt-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
)
# The fuzz tier: clang's libFuzzer and sanitizer runtimes. The metrics tests: a real Prometheus.
# The bus tier: a private dbus-daemon, busctl (systemd), setpriv (util-linux).
CPUCLASS_TEST_PACKAGES=(clang libclang-rt-14-dev prometheus dbus-daemon systemd util-linux)
# The engine tier and bench/engines: real servers from Debian's archive, and librocksdb-dev for
# bench/rocksdb_bench.cpp (their services are not started on install: ensure_packages forbids
# it; the tests start their own).
CPUCLASS_ENGINE_PACKAGES=(postgresql postgresql-contrib redis-server redis-tools rocksdb-tools mariadb-server mariadb-client
  default-jdk-headless zstd librocksdb-dev)
# The Debian package and the system test's VM (qemu under TCG, an image made by mmdebstrap).
# The demo and bench/compare: a private bus for libcpuclass, gnuplot for the plot.
CPUCLASS_DEMO_PACKAGES=(dbus-daemon gnuplot-nox)
CPUCLASS_DEB_PACKAGES=(debhelper dpkg-dev lintian fakeroot)
CPUCLASS_VM_PACKAGES=(qemu-system-x86 mmdebstrap gpg e2fsprogs curl)

log() { printf '==> %s\n' "$*" >&2; }

# Installs the packages that are missing; runs apt-get update only when something is.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing packages: ${missing[*]} (run as root, or install them with apt-get)"
    return 1
  fi
  log "installing: ${missing[*]}"
  # Packages such as prometheus would start their service on install; tests start their own on
  # loopback only. A policy-rc.d of ours (removed after) forbids starts where none exists.
  local own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null; } || rc=$?
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  return $rc
}

# configure_and_build PRESET [fresh]: builds the tree for a CMake preset.
configure_and_build() {
  local preset=$1 fresh=${2:-}
  local dir="$CPUCLASS_ROOT/build/$preset"
  [ "$fresh" = fresh ] && rm -rf "$dir"
  cmake --preset "$preset" -G Ninja -S "$CPUCLASS_ROOT" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
