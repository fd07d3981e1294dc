#!/bin/sh
# Module dependencies point one way: daemon -> {policy, cgroups, metrics} -> base (STYLE.md).
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
check base cgroups policy metrics daemon
check cgroups policy metrics daemon
check policy cgroups metrics daemon
check metrics cgroups policy daemon
check ctl cgroups metrics daemon
[ $status -eq 0 ] && echo "layering ok: base <- {cgroups, policy, metrics} <- daemon"
exit $status
