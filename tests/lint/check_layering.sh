#!/bin/sh
# Module dependencies point one way: daemon -> {decide -> policy, cgroups, metrics} -> base (STYLE.md).
# Fails, naming the file and line, when a module includes a header of a module above or beside it.
set -u
root=$1
status=0
check() {  # check MODULE FORBIDDEN...
  module=$1
  shift
  for forbidden in "$@"; do
    if grep -rnE "#include \"$forbidden/" "$root/$module" --include='*.h' --include='*.cpp'; then
      echo "layering: $module/ must not include $forbidden/" >&2
      status=1
    fi
  done
}
check base cgroups policy decide metrics daemon
check cgroups policy decide metrics daemon
check policy cgroups decide metrics daemon
# The daemon's decisions are pure: plain values in, plain values out, no kernel, no daemon state.
check decide cgroups metrics daemon
check metrics cgroups policy decide daemon
check ctl cgroups decide metrics daemon
[ $status -eq 0 ] && echo "layering ok: base <- {cgroups, policy <- decide, metrics} <- daemon"
exit $status
