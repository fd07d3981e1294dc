#!/usr/bin/env bash
# Tier container: the daemon classifies the threads of real podman containers (rootful, an image
# built here), matched by container name and by an OCI annotation, checked in /proc; threads go
# back to their container's own cgroup when the daemon stops; another container is not touched.
#   podman_worker_test.sh CPUCLASSD TEST_WORKER
# Exit 0: passed; 77: cannot run here (reason printed); other: failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CPUCLASS_ROOT=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$CPUCLASS_ROOT/scripts/lib.sh"
# shellcheck source=tests/containers/lib.sh
. "$here/lib.sh"
daemon=${1:?usage: podman_worker_test.sh CPUCLASSD TEST_WORKER}
worker=${2:?usage: podman_worker_test.sh CPUCLASSD TEST_WORKER}

grep -q ' - cgroup2 ' /proc/self/mountinfo && ! grep -qE ' - cgroup .*cpu' /proc/self/mountinfo &&
  skip "pure cgroup v2 host: a container's threads need its cgroup delegated (systemd driver); the VM tier covers v2"
podman_setup
CT_TMP=$(mktemp -d)
image=$(worker_image "$worker") || fail "cannot build the worker image"

# db: matched by its name; jobs: by an annotation that picks the worker (and so its class);
# other: neither, and left alone.
"${PODMAN_RUN[@]}" --name "$CT_TAG-db" --network none "$image" \
  /cpuclass-test-worker --thread=bg-merge --thread=off-1 --thread=fg-1 --serve >/dev/null
"${PODMAN_RUN[@]}" --name "$CT_TAG-jobs" --network none --annotation cpuclass/class=offload "$image" \
  /cpuclass-test-worker --thread=job-1 --serve >/dev/null
"${PODMAN_RUN[@]}" --name "$CT_TAG-other" --network none "$image" \
  /cpuclass-test-worker --thread=bg-other --serve >/dev/null
db=$(container_pid "$CT_TAG-db") jobs=$(container_pid "$CT_TAG-jobs") other=$(container_pid "$CT_TAG-other")
db_cgroup=$(placement "$db" "$db" | cut -d' ' -f1)
echo "# containers: db pid $db in $db_cgroup, jobs pid $jobs, other pid $other"

cat >"$CT_TMP/policy.yaml" <<POLICY
daemon: {cgroup_prefix: $CT_TAG, rescan_interval: 500ms, metrics_listen: '127.0.0.1:0', log_level: info}
classes: {background: {sched: batch, nice: 5}}
workers:
  - name: db
    match: {container: '$CT_TAG-d?', comm: cpuclass-test-w}
    threads:
      - {comm: 'bg-.*', class: background}
      - {comm: 'off-.*', class: offload}
  - name: jobs
    match: {annotations: {cpuclass/class: offload}, container: '$CT_TAG-*'}
    default_class: offload
POLICY
"$daemon" --policy "$CT_TMP/policy.yaml" --state-dir "$CT_TMP/state" >"$CT_TMP/daemon.log" 2>&1 &
CT_DAEMON_PID=$!

check "by container name" "$db" bg-merge "/$CT_TAG/db/background 3 5"
check "by container name" "$db" off-1 "/$CT_TAG/db/offload 5 0"
check "by container name" "$db" fg-1 "/$CT_TAG/db/foreground 0 0"
check "by annotation" "$jobs" job-1 "/$CT_TAG/jobs/offload 5 0"
check "not matched" "$other" bg-other "$(placement "$other" "$other" | cut -d' ' -f1) 0 0"

kill -TERM "$CT_DAEMON_PID" && wait "$CT_DAEMON_PID" || { echo "not ok - the daemon's exit"; failed=1; }
CT_DAEMON_PID=
check "restored on stop" "$db" bg-merge "$db_cgroup 0 0"
check "restored on stop" "$db" off-1 "$db_cgroup 0 0"

if [ $failed -ne 0 ]; then
  echo "# daemon log:"; sed 's/^/#   /' "$CT_TMP/daemon.log"
  fail "threads of podman containers"
fi
grep -E 'matched by worker' "$CT_TMP/daemon.log" | head -3 | sed 's/^/# /' || true
echo PASSED
