#!/bin/sh
# The reaper: kills every service process group (and cgroup) once the supervisor is gone.
#
# A separate tiny process (POSIX sh, ~1 MB), in its own session so terminal signals
# do not reach it. Its stdin is a pipe whose write end only the supervisor holds; the
# supervisor writes "+PGID" when it spawns a service (or sees a process of one leave
# its group) and "-PGID" when that group is gone. EOF on stdin means the supervisor
# exited, even by SIGKILL, which no signal handler sees: every recorded group, and every
# process of the cgroups under $1 (the manager's cgroup folder, when it has one), then
# gets SIGTERM, a second of grace, SIGKILL; the cgroup folders are then removed.
# (PR_SET_PDEATHSIG would reach only the direct child, not the service's children.)
trap '' INT TERM HUP
root=$1
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

# signal_cgroups SIG: signal every process of every service cgroup; true if any.
signal_cgroups() {
  found=1
  [ -n "$root" ] || return 1
  for procs in "$root"/*/cgroup.procs; do
    [ -f "$procs" ] || continue
    while IFS= read -r pid; do
      kill "-$1" "$pid" 2>/dev/null
      found=0
    done < "$procs"
  done
  return $found
}

remove_cgroups() {
  [ -n "$root" ] && [ -d "$root" ] || return 0
  tries=0
  while [ $tries -lt 40 ]; do
    for folder in "$root"/*/; do
      [ -d "$folder" ] || continue
      echo 1 > "$folder/cgroup.kill" 2>/dev/null || signal_cgroups KILL
      rmdir "$folder" 2>/dev/null
    done
    rmdir "$root" 2>/dev/null && return 0
    sleep 0.05
    tries=$((tries + 1))
  done
}

if [ "$groups" = " " ] && ! signal_cgroups TERM; then
  remove_cgroups
  exit 0
fi
for pgid in $groups; do kill -TERM "-$pgid" 2>/dev/null; done
signal_cgroups TERM
tries=0
while [ $tries -lt 20 ]; do
  alive=0
  for pgid in $groups; do kill -0 "-$pgid" 2>/dev/null && alive=1; done
  signal_cgroups 0 && alive=1
  [ $alive = 0 ] && break
  sleep 0.05
  tries=$((tries + 1))
done
for pgid in $groups; do kill -KILL "-$pgid" 2>/dev/null; done
remove_cgroups
exit 0
