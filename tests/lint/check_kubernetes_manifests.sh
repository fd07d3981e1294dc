#!/usr/bin/env bash
# packaging/kubernetes/ checked offline: every manifest against the Kubernetes and Prometheus
# Operator schemas (npm kubernetes-models, installed once into a cache), the kustomization lists
# every manifest, the alert rules wrapped as a PrometheusRule, the ConfigMap's drop-ins pass `cpuclassd --check-policy` over the packaged
# policy, the probes use the port the policy listens on; and a broken DaemonSet is refused, so
# the check can fail.
#   check_kubernetes_manifests.sh SOURCE_DIR CPUCLASSD
# Exit 77 (skipped) when node/npm or the npm registry are not available.
set -euo pipefail
src=${1:?usage: check_kubernetes_manifests.sh SOURCE_DIR CPUCLASSD}
daemon=${2:?usage: check_kubernetes_manifests.sh SOURCE_DIR CPUCLASSD}
k8s=$src/packaging/kubernetes
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIPPED: needs node and npm"; exit 77; }

# Pinned: kubernetes-models 4.x runs on node >= 14 (5.x wants 22).
packages=(kubernetes-models@4.5.1 @kubernetes-models/prometheus-operator@4.4.4 yaml@2.6.1)
cache=${CPUCLASS_NPM_CACHE:-/var/cache/cpuclassd-test/npm}/$(echo "${packages[*]}" | sha256sum | cut -c1-12)
if [ ! -f "$cache/ready" ]; then
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "${packages[@]}" >"$cache/install.log" 2>&1 ||
    { tail -5 "$cache/install.log"; echo "SKIPPED: cannot install ${packages[*]} from the npm registry"; exit 77; }
  touch "$cache/ready"
fi
export NODE_PATH=$cache/node_modules
failed=0
mapfile -t manifests < <(cd "$k8s" && ls ./*.yaml | grep -v kustomization.yaml | sed 's|^\./||')
node "$src/tests/lint/validate_kubernetes.js" "${manifests[@]/#/$k8s/}" || failed=1

for m in "${manifests[@]}"; do
  grep -qE "^  - $m\$" "$k8s/kustomization.yaml" && echo "ok - kustomization lists $m" || { echo "not ok - kustomization misses $m"; failed=1; }
done

# The ConfigMap's drop-ins over the policy the .deb installs, as the pod reads them.
etc=$(mktemp -d)
trap 'rm -rf "$etc"' EXIT
mkdir -p "$etc/policy.d"
cp "$src/packaging/policy.yaml" "$etc/policy.yaml"
node -e '
  const YAML = require("yaml"), fs = require("fs");
  const cm = YAML.parse(fs.readFileSync(process.argv[1], "utf8"));
  for (const [k, v] of Object.entries(cm.data)) fs.writeFileSync(process.argv[2] + "/" + k, v);
' "$k8s/configmap.yaml" "$etc/policy.d"
if out=$("$daemon" --check-policy "$etc/policy.yaml" 2>&1); then echo "ok - the ConfigMap's drop-ins pass --check-policy"; else
  echo "not ok - the ConfigMap's drop-ins: $out"; failed=1; fi
port=$(grep -oE 'metrics_listen: *[0-9.]+:[0-9]+' "$etc/policy.d"/*.yaml | grep -oE '[0-9]+$' | tail -1)
if grep -qE "containerPort: $port\$" "$k8s/daemonset.yaml"; then echo "ok - the pod's metrics port is the policy's ($port)"; else
  echo "not ok - containerPort is not the policy's metrics port ($port)"; failed=1; fi

# The rules as docs/kubernetes.md wraps them for the Prometheus Operator.
node -e '
  const YAML = require("yaml"), fs = require("fs");
  const spec = YAML.parse(fs.readFileSync(process.argv[1], "utf8"));
  const rule = {apiVersion: "monitoring.coreos.com/v1", kind: "PrometheusRule",
                metadata: {name: "cpuclassd", namespace: "cpuclass-system"}, spec};
  fs.writeFileSync(process.argv[2], YAML.stringify(rule));
' "$src/packaging/prometheus/cpuclassd.rules.yaml" "$etc/prometheusrule.yaml"
node "$src/tests/lint/validate_kubernetes.js" "$etc/prometheusrule.yaml" | sed "s|$etc/|(cpuclassd.rules.yaml as) |" || failed=1

# The check itself: a DaemonSet with a wrongly typed field must be refused.
sed 's/hostPID: true/hostPID: "yes"/' "$k8s/daemonset.yaml" >"$etc/broken.yaml"
if node "$src/tests/lint/validate_kubernetes.js" "$etc/broken.yaml" >/dev/null; then
  echo "not ok - a DaemonSet with hostPID: \"yes\" passed the schema"; failed=1
else
  echo "ok - a broken DaemonSet is refused"
fi
exit $failed
