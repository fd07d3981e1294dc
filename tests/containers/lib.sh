# Shared by the container tier's tests: podman set up for this host, a worker image built here,
# cleanup of everything a test made. Sourced after scripts/lib.sh.
# shellcheck shell=bash

CPUCLASS_CONTAINER_PACKAGES=(podman runc)
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*"; exit 1; }

# podman as these tests run it, with names of their own only:
#   --runtime runc: Debian 12's crun refuses hybrid hosts ("cgroups in hybrid mode not
#     supported, drop all controllers from cgroupv2"); runc uses the v1 hierarchies;
#   --cgroup-manager cgroupfs: no systemd here; --cgroup-parent: a cgroup of the test's own name;
#   --ulimit: podman's default limits (nofile 1048576) exceed this host's hard limits, which root
#     cannot raise here (no CAP_SYS_RESOURCE).
podman_setup() {
  [ "$(id -u)" -eq 0 ] || skip "rootful podman needs root"
  ensure_packages "${CPUCLASS_CONTAINER_PACKAGES[@]}" || skip "cannot install ${CPUCLASS_CONTAINER_PACKAGES[*]}"
  CT_TAG=cpuclass-ct-$$
  CT_PARENT=/$CT_TAG-pods
  PODMAN_RUN=(podman run -d --runtime runc --cgroup-manager cgroupfs --cgroup-parent "$CT_PARENT"
    --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
  trap podman_cleanup EXIT
}

# Stops what the test started (by container name and PID), removes its images and its cgroups.
podman_cleanup() {
  local rc=$?
  [ -n "${CT_DAEMON_PID:-}" ] && kill "$CT_DAEMON_PID" 2>/dev/null && wait "$CT_DAEMON_PID" 2>/dev/null
  podman ps -a --format '{{.Names}}' | grep "^$CT_TAG" | xargs -r podman rm -f -t 0 >/dev/null 2>&1
  podman images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/$CT_TAG" | xargs -r podman rmi -f >/dev/null 2>&1
  local d
  for d in $(find /sys/fs/cgroup -depth -type d \( -path "*/$CT_TAG*" \) 2>/dev/null); do rmdir "$d" 2>/dev/null; done
  [ -n "${CT_TMP:-}" ] && rm -rf "$CT_TMP"
  exit "$rc"
}

# worker_image BINARY: an image holding the test worker and the libraries it links, nothing else,
# built here (no registry): a tarball imported by podman. Prints the image's name.
worker_image() {
  local bin=$1 root="$CT_TMP/worker-root" name="localhost/$CT_TAG-worker:test"
  mkdir -p "$root"
  cp "$bin" "$root/cpuclass-test-worker"
  local lib
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do cp --parents -L "$lib" "$root"; done
  tar -C "$root" -cf "$CT_TMP/worker.tar" .
  podman import -q "$CT_TMP/worker.tar" "$name" >/dev/null || return 1
  echo "$name"
}

# The host PID of a container's first process.
container_pid() { podman inspect -f '{{.State.Pid}}' "$1"; }

# thread_of PID COMM: the thread of PID named COMM.
thread_of() {
  local t
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { basename "$t"; return 0; }
  done
  return 1
}

# placement PID TID: "<cpu cgroup> <policy> <nice>" of a thread, as /proc shows it (stat fields
# 19 and 41: nice and policy; the comm is cut off first, it may hold spaces).
placement() {
  local stat group
  stat=$(cat /proc/"$1"/task/"$2"/stat) || return 1
  stat=${stat##*) }
  group=$(grep -E '^[0-9]+:([^:]*,)?cpu(,[^:]*)?:' /proc/"$1"/task/"$2"/cgroup | head -1 | cut -d: -f3)
  # shellcheck disable=SC2086
  set -- $stat
  echo "$group ${39} ${17}"
}

# check NAME PID COMM WANT: waits up to 20 s for the thread of PID named COMM to be at WANT,
# "<cpu cgroup> <policy> <nice>" (SCHED_OTHER 0, SCHED_BATCH 3, SCHED_IDLE 5: sched(7)); prints a
# TAP line and sets failed=1 if it never is.
failed=0
check() {
  local tid
  tid=$(thread_of "$2" "$3") || { echo "not ok - $1: no thread $3"; failed=1; return; }
  # shellcheck disable=SC2317 # called by wait_for
  at_want() { [ "$(placement "$2" "$tid")" = "$4" ]; }
  if wait_for 20 at_want "$@"; then
    echo "ok - $1: $3 at $4"
  else
    echo "not ok - $1: $3 at '$(placement "$2" "$tid")', wanted '$4'"
    failed=1
  fi
}

# wait_for SECONDS COMMAND...: polls until COMMAND succeeds.
wait_for() {
  local until=$((SECONDS + $1))
  shift
  while ! "$@"; do
    [ $SECONDS -ge $until ] && return 1
    sleep 0.1
  done
}
