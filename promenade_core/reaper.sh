#!/bin/sh
# The reaper: kills every service process group once the supervisor is gone.
#
# A separate tiny process (POSIX sh, ~1 MB), in its own session so terminal signals
# do not reach it. Its stdin is a pipe whose write end only the supervisor holds; the
# supervisor writes "+PGID" when it spawns a service and "-PGID" when that group is
# gone. EOF on stdin means the supervisor exited, even by SIGKILL, which no signal
# handler sees: every recorded group then gets SIGTERM, a second of grace, SIGKILL.
# (PR_SET_PDEATHSIG would reach only the direct child, not the service's children.)
trap '' INT TERM HUP
groups=" "
while IFS= read -r line; do
  pgid=${line#?}
  case $pgid in ''|*[!0-9]*) continue ;; esac
  [ "$pgid" -gt 1 ] || continue
  case $line in
    +*) groups="$groups$pgid " ;;
    -*) case $groups in
          *" $pgid "*) groups="${groups%%" $pgid "*} ${groups#*" $pgid "}" ;;
        esac ;;
  esac
done
[ "$groups" = " " ] && exit 0
for pgid in $groups; do kill -TERM "-$pgid" 2>/dev/null; done
tries=0
while [ $tries -lt 20 ]; do
  alive=0
  for pgid in $groups; do kill -0 "-$pgid" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && exit 0
  sleep 0.05
  tries=$((tries + 1))
done
for pgid in $groups; do kill -KILL "-$pgid" 2>/dev/null; done
exit 0
