#!/bin/sh
# The shipped Prometheus rules: promtool's syntax check and its unit tests
# (packaging/prometheus/cpuclassd.rules.test.yaml). Exit 77 (skipped) without promtool.
set -eu
dir="$1/packaging/prometheus"
if ! command -v promtool > /dev/null; then
  echo "promtool not found (Debian package prometheus): skipped"
  exit 77
fi
promtool check rules "$dir/cpuclassd.rules.yaml"
cd "$dir" && promtool test rules cpuclassd.rules.test.yaml
