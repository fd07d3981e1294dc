#!/bin/bash
# The system test, run as root inside the VM (Debian 12, systemd 252, pure cgroup v2) by the
# image's cpuclass-vm-test.service. TAP-like output: "ok N - ...", "not ok N - ...", "# ..." notes.
set -u
share=/mnt/share
n=0 failures=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failures=$((failures + 1)); echo "not ok $n - $*"; }
note() { echo "# $*"; }
# check DESCRIPTION CMD...: one assertion.
check() {
  local what=$1; shift
  if "$@" >/tmp/check.out 2>&1; then ok "$what"; else not_ok "$what"; sed 's/^/#   /' /tmp/check.out | head -20; fi
}
# eventually SECONDS DESCRIPTION CMD...: an assertion that may need time to become true.
eventually() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/tmp/check.out 2>&1; do
    if [ $SECONDS -ge $end ]; then not_ok "$what (within ${limit}s)"; sed 's/^/#   /' /tmp/check.out | head -20; return 1; fi
    sleep 0.2
  done
  ok "$what"
}
main_pid() { systemctl show -P MainPID "$1"; }
tid_of() { # tid_of PID COMM
  local t
  for t in /proc/"$1"/task/*; do [ "$(cat "$t/comm")" = "$2" ] && { basename "$t"; return 0; }; done
  return 1
}
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/task/$2/cgroup"; }
in_group() { [ "$(cgroup_of "$1" "$2")" = "$3" ]; }
policy_of() { chrt -p "$2" | sed -n '1s/.*scheduling policy: //p'; }
metrics() { curl -sf http://127.0.0.1:9753/metrics; }

note "kernel $(uname -r), $(systemctl --version | head -1)"
check "cgroup2 is the only cgroup mount" sh -c '[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]'

# --- install -----------------------------------------------------------------------------------
install -m 0755 "$share/cpuclass-test-worker" /usr/local/bin/cpuclass-test-worker
check "apt-get install ./cpuclassd_*.deb (offline: its dependencies are in the image)" apt-get install -y "$share"/cpuclassd_*.deb
check "the unit is installed, not yet enabled" sh -c '! systemctl is-enabled cpuclassd'
check "systemd-analyze verify is clean" sh -c 'out=$(systemd-analyze verify cpuclassd.service 2>&1); echo "$out"; [ -z "$out" ]'
systemd-analyze security cpuclassd.service --no-pager > "$share/security.txt" 2>&1
note "security: $(tail -1 "$share/security.txt")"
check "systemd-analyze security rates the service OK or better" grep -qE 'Overall exposure level for cpuclassd.service: [0-4]\.[0-9] (OK|SAFE)' "$share/security.txt"

# --- workers -----------------------------------------------------------------------------------
cat > /etc/cpuclass/policy.d/50-systemtest.yaml <<'YAML'
workers:
  - name: vmdemo
    match: { cmdline: ".*--tag=vmdemo.*" }
    default_class: foreground
    threads:
      - { comm: "merge-[0-9]+", class: background }
      - { comm: "offload-[0-9]+", class: offload }
  - name: vmplain
    match: { cmdline: ".*--tag=vmplain.*" }
YAML
worker_unit() { # worker_unit NAME TAG DELEGATE
  cat > "/etc/systemd/system/$1.service" <<UNIT
[Service]
ExecStart=/usr/local/bin/cpuclass-test-worker --serve --tag=$2 --thread=query-1 --thread=merge-1 --thread=offload-1
Delegate=$3
UNIT
}
worker_unit cpuclass-demo-worker vmdemo yes
worker_unit cpuclass-plain-worker vmplain no
systemctl daemon-reload
systemctl start cpuclass-demo-worker cpuclass-plain-worker
W=$(main_pid cpuclass-demo-worker)
C=/system.slice/cpuclass-demo-worker.service
Q=$(tid_of "$W" query-1) M=$(tid_of "$W" merge-1) O=$(tid_of "$W" offload-1)
note "demo worker pid $W: query-1 $Q, merge-1 $M, offload-1 $O"

check "systemctl enable --now cpuclassd" systemctl enable --now cpuclassd
check "the daemon is active (Type=notify: READY=1 was sent)" systemctl is-active cpuclassd
eventually 10 "query-1 in $C/cpuclass/foreground" in_group "$W" "$Q" "$C/cpuclass/foreground"
eventually 10 "merge-1 in $C/cpuclass/background" in_group "$W" "$M" "$C/cpuclass/background"
eventually 10 "offload-1 in $C/cpuclass/offload" in_group "$W" "$O" "$C/cpuclass/offload"
cg=/sys/fs/cgroup$C
check "the worker's process moved to $C/cpuclass (a domain)" grep -qx "$W" "$cg/cpuclass/cgroup.procs"
check "$C/cpuclass is 'domain threaded'" grep -qx "domain threaded" "$cg/cpuclass/cgroup.type"
check "class groups are threaded" sh -c "grep -qx threaded $cg/cpuclass/foreground/cgroup.type && grep -qx threaded $cg/cpuclass/offload/cgroup.type"
check "+cpu enabled in the unit and in cpuclass/" sh -c "grep -qw cpu $cg/cgroup.subtree_control && grep -qw cpu $cg/cpuclass/cgroup.subtree_control"
check "foreground cpu.weight 1000" grep -qx 1000 "$cg/cpuclass/foreground/cpu.weight"
check "background cpu.weight 10" grep -qx 10 "$cg/cpuclass/background/cpu.weight"
check "offload cpu.idle 1" grep -qx 1 "$cg/cpuclass/offload/cpu.idle"
check "offload-1 runs SCHED_IDLE" sh -c "[ \"\$(chrt -p $O | sed -n '1s/.*policy: //p')\" = SCHED_IDLE ]"
# offload-1 can be boosted by a move, so every poll rewrites the daemon's thread into its own
# cgroup (fast_moves); on v2 under systemd that is a domain cgroup, which the kernel must accept.
check "fast_moves works under systemd (no warning)" sh -c "! journalctl -u cpuclassd --no-pager | grep 'boost moves stay slow'"
check "query-1 runs SCHED_OTHER" sh -c "[ \"\$(chrt -p $Q | sed -n '1s/.*policy: //p')\" = SCHED_OTHER ]"
P=$(main_pid cpuclass-plain-worker)
check "the undelegated worker is left alone" sh -c "[ \"\$(sed -n 's/^0:://p' /proc/$P/cgroup)\" = /system.slice/cpuclass-plain-worker.service ] && [ ! -e /sys/fs/cgroup/system.slice/cpuclass-plain-worker.service/cpuclass ]"
check "the log names the fix for the undelegated worker" sh -c "journalctl -u cpuclassd --no-pager | grep -q 'cpuclass-plain-worker.service is not delegated; fix: cpuclassctl delegate cpuclass-plain-worker.service'"

# --- metrics and D-Bus -------------------------------------------------------------------------
check "curl /metrics: one offload thread of vmdemo" sh -c "curl -sf http://127.0.0.1:9753/metrics | grep -qx 'cpuclass_class_threads{class=\"offload\",worker=\"vmdemo\"} 1'"
check "metrics: cgroup mode v2" sh -c "curl -sf http://127.0.0.1:9753/metrics | grep -q 'cpuclass_kernel_info{.*cgroup_mode=\"v2\"'"
check "metrics: the undelegated worker is reported" sh -c "curl -sf http://127.0.0.1:9753/metrics | grep -qx 'cpuclass_left_alone_processes{worker=\"vmplain\"} 1'"
check "cpuclassctl status over the system bus" sh -c "cpuclassctl status | tee /dev/stderr | grep -q 'not delegated'"
check "cpuclassctl explain names worker, class and group" sh -c "cpuclassctl explain $O | tee /dev/stderr | grep -q 'offload' && cpuclassctl explain $O | grep -q 'vmdemo'"

# --- squeeze -----------------------------------------------------------------------------------
# Four spinning background threads on 2 CPUs wait for CPU (their group's PSI): the daemon caps
# every offload group to 1 ms per 100 ms (cpu.max) while they do, and lifts the cap after.
cat > /etc/systemd/system/cpuclass-busy-worker.service <<UNIT
[Service]
ExecStart=/usr/local/bin/cpuclass-test-worker --serve --tag=vmdemo --spin=merge-2 --spin=merge-3 --spin=merge-4 --spin=merge-5 --spin=offload-2
Delegate=yes
UNIT
systemctl daemon-reload
check "cpu.pressure exists for class groups (PSI)" test -e "$cg/cpuclass/background/cpu.pressure"
check "offload cpu.max starts uncapped" grep -qx "max 100000" "$cg/cpuclass/offload/cpu.max"
systemctl start cpuclass-busy-worker
eventually 30 "background spinning on every CPU: offload squeezed (cpu.max 1000 100000)" grep -qx "1000 100000" "$cg/cpuclass/offload/cpu.max"
systemctl stop cpuclass-busy-worker
eventually 30 "background idle again: the squeeze is lifted" grep -qx "max 100000" "$cg/cpuclass/offload/cpu.max"

# --- a realtime class --------------------------------------------------------------------------
# SCHED_RR in a threaded class group under systemd; a spinning one is held back by the guard.
cat > /etc/cpuclass/policy.d/55-realtime.yaml <<'YAML'
classes:
  interactive: { realtime: 3, realtime_limit: 20 }
workers:
  - name: vmrt
    match: { cmdline: ".*--tag=vmrt.*" }
    default_class: interactive
YAML
check "systemctl reload with a realtime class" systemctl reload cpuclassd
cat > /etc/systemd/system/cpuclass-rt-worker.service <<UNIT
[Service]
ExecStart=/usr/local/bin/cpuclass-test-worker --serve --tag=vmrt --thread=req-1
Delegate=yes
UNIT
cat > /etc/systemd/system/cpuclass-rt-busy-worker.service <<UNIT
[Service]
ExecStart=/usr/local/bin/cpuclass-test-worker --serve --tag=vmrt --spin=req-2
Delegate=yes
UNIT
systemctl daemon-reload
systemctl start cpuclass-rt-worker
RW=$(main_pid cpuclass-rt-worker)
RQ=$(tid_of "$RW" req-1)
CR=/system.slice/cpuclass-rt-worker.service
rr3() { chrt -p "$1" | tr '\n' ' ' | grep -q "SCHED_RR.*priority: 3"; }
eventually 10 "req-1 in $CR/cpuclass/interactive" in_group "$RW" "$RQ" "$CR/cpuclass/interactive"
eventually 10 "req-1 runs SCHED_RR at priority 3" rr3 "$RQ"
systemctl start cpuclass-rt-busy-worker
RB=$(main_pid cpuclass-rt-busy-worker)
held_back() { local t; t=$(tid_of "$RB" req-2) && [ "$(policy_of "$RB" "$t")" = SCHED_OTHER ]; }
eventually 10 "a spinning realtime thread (limit 20% of the CPUs) is held back on SCHED_OTHER" held_back
check "the other worker's realtime thread stays SCHED_RR" rr3 "$RQ"
check "metrics: cpuclass_realtime_held_back_total counts it" sh -c "curl -sf http://127.0.0.1:9753/metrics | grep -qE '^cpuclass_realtime_held_back_total [1-9]'"
systemctl stop cpuclass-rt-busy-worker

# --- cpuclassctl delegate and run --------------------------------------------------------------
check "cpuclassctl delegate writes a drop-in and says the unit must restart" sh -c 'cpuclassctl delegate cpuclass-plain-worker.service | tee /dev/stderr | grep -q "must restart"'
check "the drop-in sets Delegate=yes" grep -qx "Delegate=yes" /etc/systemd/system/cpuclass-plain-worker.service.d/50-cpuclass-delegate.conf
systemctl restart cpuclass-plain-worker
P=$(main_pid cpuclass-plain-worker)
eventually 10 "after its restart the formerly undelegated worker is placed" in_group "$P" "$(tid_of "$P" merge-1)" /system.slice/cpuclass-plain-worker.service/cpuclass/foreground
eventually 10 "and is no longer reported as left alone" sh -c "! curl -sf http://127.0.0.1:9753/metrics | grep -q 'cpuclass_left_alone_processes{worker=\"vmplain\"}'"
check "cpuclassctl run starts a transient unit" sh -c 'cpuclassctl run --unit cpuclass-run-test -- cpuclass-test-worker --serve --tag=vmdemo --thread=offload-7 | tee /dev/stderr | grep -qx "Running as unit: cpuclass-run-test.service"'
R=$(main_pid cpuclass-run-test.service)
check "it runs in cpuclass.slice with Delegate=yes" sh -c '[ "$(systemctl show -P Slice cpuclass-run-test.service)" = cpuclass.slice ] && [ "$(systemctl show -P Delegate cpuclass-run-test.service)" = yes ]'
eventually 10 "its offload thread is placed inside its own unit" in_group "$R" "$(tid_of "$R" offload-7)" /cpuclass.slice/cpuclass-run-test.service/cpuclass/offload
check "one worker in two units: metrics sum its groups (2 offload threads)" sh -c "curl -sf http://127.0.0.1:9753/metrics | grep -qx 'cpuclass_class_threads{class=\"offload\",worker=\"vmdemo\"} 2'"
systemctl stop cpuclass-run-test.service

# --- reload ------------------------------------------------------------------------------------
sed -i 's/^workers:/classes:\n  background: { cpu_weight: 20 }\nworkers:/' /etc/cpuclass/policy.d/50-systemtest.yaml
check "systemctl reload with a good policy" systemctl reload cpuclassd
eventually 10 "background cpu.weight now 20" grep -qx 20 "$cg/cpuclass/background/cpu.weight"
cp /etc/cpuclass/policy.d/50-systemtest.yaml /tmp/good.yaml
echo "classes: { background: { cpu_weight: 99999 } }" > /etc/cpuclass/policy.d/60-broken.yaml
systemctl reload cpuclassd
check "a broken policy is rejected, the daemon stays active" systemctl is-active cpuclassd
eventually 10 "the journal has the policy error with file:line:col" sh -c "journalctl -u cpuclassd --no-pager | grep -q '60-broken.yaml:1:.*cpu_weight'"
check "the old policy stays: background cpu.weight still 20" grep -qx 20 "$cg/cpuclass/background/cpu.weight"
rm /etc/cpuclass/policy.d/60-broken.yaml

# --- crash and restart -------------------------------------------------------------------------
D=$(main_pid cpuclassd)
[ "$D" -gt 0 ] && kill -9 "$D"  # MainPID 0 (not running) would signal our own process group
eventually 20 "systemd restarts the daemon after kill -9" sh -c "[ \"\$(systemctl show -P NRestarts cpuclassd)\" = 1 ] && systemctl is-active cpuclassd"
check "threads stayed in their classes" in_group "$W" "$O" "$C/cpuclass/offload"
check "the state file survived the crash" test -s /run/cpuclassd/state
# A thread born after the restart is placed too.
check "the restarted daemon manages the worker" sh -c "cpuclassctl explain $M | grep -q background"

# --- stop restores -----------------------------------------------------------------------------
check "systemctl stop cpuclassd" systemctl stop cpuclassd
check "threads are back in the unit's cgroup" in_group "$W" "$O" "$C"
check "offload-1 is SCHED_OTHER again" sh -c "[ \"\$(chrt -p $O | sed -n '1s/.*policy: //p')\" = SCHED_OTHER ]"
check "req-1 is SCHED_OTHER again, back in its unit's cgroup" sh -c "[ \"\$(chrt -p $RQ | sed -n '1s/.*policy: //p')\" = SCHED_OTHER ] && [ \"\$(sed -n 's/^0:://p' /proc/$RW/task/$RQ/cgroup)\" = $CR ]"
check "our groups are gone" test ! -e "$cg/cpuclass"

# --- purge -------------------------------------------------------------------------------------
systemctl start cpuclassd
rm /etc/cpuclass/policy.d/50-systemtest.yaml /etc/cpuclass/policy.d/55-realtime.yaml  # the admin's own files; dpkg rightly leaves those
check "apt-get purge cpuclassd" apt-get purge -y cpuclassd
check "no daemon process left" sh -c '! pidof cpuclassd'
check "nothing of the package left on disk" sh -c '! ls -d /etc/cpuclass /usr/sbin/cpuclassd /usr/bin/cpuclassctl /lib/systemd/system/cpuclassd.service /run/cpuclassd /usr/share/dbus-1/system.d/org.cpuclass1.conf 2>/dev/null'
check "no cpuclass cgroups left" sh -c '[ -z "$(find /sys/fs/cgroup -name cpuclass -type d)" ]'
check "dpkg knows nothing of it" sh -c '! dpkg -l cpuclassd 2>/dev/null | grep -q "^[ir]"'
systemctl stop cpuclass-demo-worker cpuclass-plain-worker cpuclass-rt-worker

echo "# $n checks, $failures failed"
[ "$failures" -eq 0 ]
