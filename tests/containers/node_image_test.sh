#!/usr/bin/env bash
# Tier container: the node image (packaging/container/build-image: Debian packages and the .deb,
# no registry) runs the daemon in a podman container the way the DaemonSet does (host PID
# namespace, the host's cgroup tree, only the capabilities listed in docs/kubernetes.md) and
# places the threads of a worker running on the host; /metrics answers; stopping the container
# restores the threads.
#   node_image_test.sh TEST_WORKER
# Uses the .deb the system tier built (build/system/deb), or builds one.
# Exit 0: passed; 77: cannot run here (reason printed); other: failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CPUCLASS_ROOT=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$CPUCLASS_ROOT/scripts/lib.sh"
# shellcheck source=tests/containers/lib.sh
. "$here/lib.sh"
worker=${1:?usage: node_image_test.sh TEST_WORKER}

grep -q ' - cgroup2 ' /proc/self/mountinfo && ! grep -qE ' - cgroup .*cpu' /proc/self/mountinfo &&
  skip "pure cgroup v2 host: a worker's cgroup must be delegated; the VM tier covers v2"
podman_setup
ensure_packages mmdebstrap curl || skip "cannot install mmdebstrap and curl"
CT_TMP=$(mktemp -d)

deb_dir=$CPUCLASS_ROOT/build/system/deb
if ! ls "$deb_dir"/cpuclassd_*.deb >/dev/null 2>&1; then
  deb_dir=$CT_TMP/deb
  "$CPUCLASS_ROOT/scripts/build-deb" "$deb_dir" >"$CT_TMP/build-deb.log" 2>&1 || { tail -20 "$CT_TMP/build-deb.log"; fail "building the .deb"; }
fi
started=$SECONDS
image=$("$CPUCLASS_ROOT/packaging/container/build-image" "$deb_dir" "localhost/$CT_TAG-node:test" 2>"$CT_TMP/image.log") ||
  { tail -20 "$CT_TMP/image.log"; fail "building the node image"; }
echo "# image built in $((SECONDS - started)) s: $(podman image inspect -f '{{.Size}}' "$image" | numfmt --to=iec) bytes"

# A worker on the host, as a database server on a node.
"$worker" --tag="$CT_TAG" --thread=bg-compact --thread=off-1 --serve >"$CT_TMP/worker.log" 2>&1 &
worker_pid=$!
trap 'kill $worker_pid 2>/dev/null; podman_cleanup' EXIT

home=$(placement "$worker_pid" "$worker_pid" | cut -d' ' -f1)
port=$((20000 + $$ % 20000))
mkdir -p "$CT_TMP/etc/policy.d" "$CT_TMP/state"
cat >"$CT_TMP/etc/policy.yaml" <<POLICY
daemon: {cgroup_prefix: $CT_TAG, rescan_interval: 500ms, metrics_listen: '127.0.0.1:$port'}
classes: {background: {sched: batch, nice: 5}}
POLICY
# The workers come as a drop-in, as a ConfigMap holds them.
cat >"$CT_TMP/etc/policy.d/worker.yaml" <<POLICY
workers:
  - name: db
    match: {cmdline: '.*--tag=$CT_TAG.*'}
    threads:
      - {comm: 'bg-.*', class: background}
      - {comm: 'off-.*', class: offload}
POLICY
# As the DaemonSet runs it (packaging/kubernetes/daemonset.yaml; docs/kubernetes.md says why each
# is needed): the host's PID and network namespaces and cgroup tree, and the manifest's
# capabilities, no others, read from the manifest so that the test holds it to them.
caps=$(grep -oE 'add: \[[A-Z_, ]+\]' "$CPUCLASS_ROOT/packaging/kubernetes/daemonset.yaml" | tr -d '[] ' | cut -d: -f2)
[ -n "$caps" ] || fail "no capabilities found in packaging/kubernetes/daemonset.yaml"
echo "# capabilities: $caps"
"${PODMAN_RUN[@]}" --name "$CT_TAG-node" --pid=host --network=host --cgroupns=host \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v "$CT_TMP/etc:/etc/cpuclass:ro" -v "$CT_TMP/state:/run/cpuclassd" \
  --cap-drop=all --cap-add="$caps" --read-only --security-opt=no-new-privileges \
  "$image" >/dev/null || fail "podman run"

check "placed from the container" "$worker_pid" bg-compact "/$CT_TAG/db/background 3 5"
check "placed from the container" "$worker_pid" off-1 "/$CT_TAG/db/offload 5 0"
if wait_for 10 bash -c "curl -sf http://127.0.0.1:$port/metrics | grep -qE '^cpuclass_class_threads\{.*class=\"background\".*\} [1-9]'"; then
  echo "ok - /metrics on the node's network"
else
  echo "not ok - /metrics on the node's network"; failed=1
fi
podman stop -t 10 "$CT_TAG-node" >/dev/null
check "restored when the container stops" "$worker_pid" bg-compact "$home 0 0"
if podman logs "$CT_TAG-node" 2>&1 | grep -E '^<[0-4]>' | grep -v 'D-Bus' >"$CT_TMP/problems"; then
  echo "not ok - the daemon logged problems:"; sed 's/^/#   /' "$CT_TMP/problems"; failed=1
fi
if [ $failed -ne 0 ]; then
  echo "# daemon log:"; podman logs "$CT_TAG-node" 2>&1 | sed 's/^/#   /' | tail -40
  fail "the daemon in the node image"
fi

# A container's own cgroup namespace (Kubernetes' default on cgroup v2) shows other processes'
# groups as /..; the daemon joins PID 1's, and where it cannot (no CAP_SYS_ADMIN), it must refuse
# to start and say why rather than manage threads by wrong paths.
"${PODMAN_RUN[@]}" --name "$CT_TAG-nsonly" --pid=host --network=host --cgroupns=private \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v "$CT_TMP/etc:/etc/cpuclass:ro" -v "$CT_TMP/state:/run/cpuclassd" \
  --cap-drop=all --cap-add="${caps//,SYS_ADMIN/}" "$image" >/dev/null || fail "podman run"
code=$(podman wait "$CT_TAG-nsonly")
if [ "$code" = 1 ] && podman logs "$CT_TAG-nsonly" 2>&1 | grep -q 'cgroup namespace of its own'; then
  echo "ok - in a cgroup namespace of its own, unable to join, the daemon refuses to start"
else
  echo "not ok - in a cgroup namespace of its own: exit $code"; podman logs "$CT_TAG-nsonly" 2>&1 | sed 's/^/#   /'
  fail "the daemon in a cgroup namespace of its own"
fi
echo PASSED
