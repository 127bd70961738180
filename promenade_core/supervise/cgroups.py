"""A cgroup v2 per service run (Linux), the one container no process can leave.

A service's children can leave its process group and session (`setsid`) and drop
PROMENADE_INSTANCE from their environment; only the kernel's cgroup membership follows
them whatever they do. When the manager may create cgroups below its own (root, or a
user whose systemd delegated the manager's cgroup), each manager gets a folder
`promenade-<instance>-<pid>` there and each service run a sub-folder of it; stop and
shutdown empty it with `cgroup.kill`, and the reaper does the same after a SIGKILL.

The service joins its cgroup itself: the spawned `/bin/sh` writes its own pid to
`cgroup.procs` and then execs the user's command, so nothing it starts can be outside,
and no `preexec_fn` runs in the forked child (risky with libzmq threads alive).

`PROMENADE_NO_CGROUP=1` turns this off (the descendant tracker takes over); it is a
test and debugging knob.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from itertools import count
from pathlib import Path

ENV_DISABLE = "PROMENADE_NO_CGROUP"
#: The shell that puts itself into the cgroup ($1) and then runs the command ($2).
#: A failure to join must not go unnoticed: the service would be outside any container.
JOIN = ('echo $$ > "$1/cgroup.procs" || { echo "promenade: could not join the cgroup $1;'
        ' set PROMENADE_NO_CGROUP=1 to run without cgroups" >&2; exit 126; }; '
        'exec /bin/sh -c "$2"')


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (`\\040`)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def v2_mount(mountinfo: str) -> tuple[str, str] | None:
    """(mount root, mount point) of the first cgroup2 mount in /proc/self/mountinfo.

    The unified hierarchy may be at /sys/fs/cgroup (pure v2) or elsewhere, e.g.
    /sys/fs/cgroup/unified in systemd's hybrid layout, so it is looked up, not assumed.
    """
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and right.split()[:1] == ["cgroup2"] and len(fields) >= 5:
            return _unescape(fields[3]), _unescape(fields[4])
    return None


def own_path(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path, from the `0::/path` line of /proc/self/cgroup."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            path = line[3:]
            return path if path.startswith("/") else None
    return None


def own_folder(mountinfo: str, proc_cgroup: str) -> Path | None:
    """The folder of our own cgroup in the mounted v2 tree, when it is visible there."""
    mount = v2_mount(mountinfo)
    path = own_path(proc_cgroup)
    if mount is None or path is None:
        return None
    root, point = mount
    root = root.rstrip("/")
    if root and path != root and not path.startswith(root + "/"):
        return None   # mounted from a subtree that does not contain us
    relative = path[len(root):].lstrip("/")
    if ".." in relative.split("/"):
        return None
    return Path(point, relative) if relative else Path(point)


def _read(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


@dataclass
class CgroupRoot:
    """The manager's own cgroup folder; one sub-cgroup per service run below it."""

    path: Path

    def __post_init__(self) -> None:
        self._serial = count(1)

    def create(self, service: str) -> Path:
        """A new, empty cgroup for one run of `service` (raises OSError)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", service)[:64] or "service"
        while True:
            folder = self.path / f"{safe}.{next(self._serial)}"
            try:
                folder.mkdir(mode=0o755)
            except FileExistsError:
                continue
            return folder

    def children(self) -> list[Path]:
        with contextlib.suppress(OSError):
            return [p for p in self.path.iterdir() if p.is_dir()]
        return []

    def close(self) -> None:
        """Kill whatever is left in any service cgroup and remove every folder."""
        for folder in self.children():
            kill(folder)
        deadline = time.monotonic() + 1.0
        while not all([remove(folder) for folder in self.children()]):
            if time.monotonic() > deadline:
                return   # the reaper tries again when we are gone
            time.sleep(0.02)
        remove(self.path)


def procs(folder: Path) -> list[int]:
    """The pids in a cgroup (exited ones are not listed)."""
    try:
        return [int(p) for p in _read(folder / "cgroup.procs").split()]
    except (OSError, ValueError):
        return []


def populated(folder: Path) -> bool:
    try:
        text = _read(folder / "cgroup.events")
    except OSError:
        return bool(procs(folder))
    return "populated 1" in text


def signal_all(folder: Path, sig: int) -> bool:
    """Signal every process of the cgroup; False when there was none."""
    pids = procs(folder)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return bool(pids)


def kill(folder: Path) -> None:
    """SIGKILL every process of the cgroup, those forking as it happens included.

    `cgroup.kill` (Linux 5.14) does it atomically; before it, signalling what
    cgroup.procs lists a few times over catches a fork bomb's last children.
    """
    try:
        with open(folder / "cgroup.kill", "w", encoding="ascii") as f:
            f.write("1")
        return
    except OSError:
        pass
    for _ in range(10):
        if not signal_all(folder, signal.SIGKILL):
            return


def remove(folder: Path) -> bool:
    """Remove an empty cgroup folder; False while processes are still leaving it."""
    try:
        folder.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    return True


def open_root(instance: str, environ: dict[str, str] | None = None) -> CgroupRoot | None:
    """Create this manager's cgroup folder, or None when cgroups cannot be had.

    They can be had when cgroup v2 is mounted and our own cgroup lets us create
    children and move processes into them (root, or a cgroup our systemd user manager
    delegated to us).
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_DISABLE, "") not in ("", "0") or not sys.platform.startswith("linux"):
        return None
    try:
        own = own_folder(_read(Path("/proc/self/mountinfo")), _read(Path("/proc/self/cgroup")))
    except OSError:
        return None
    if own is None or not os.access(own / "cgroup.procs", os.W_OK):
        return None
    for stale in stale_roots(instance, own):
        CgroupRoot(stale).close()
    folder = own / f"promenade-{instance}-{os.getpid()}"
    try:
        folder.mkdir(mode=0o755)
    except FileExistsError:
        pass
    except OSError:
        return None
    root = CgroupRoot(folder)
    if not _can_join(root):
        root.close()
        return None
    return root


def _can_join(root: CgroupRoot) -> bool:
    """Whether a child can really move itself into a cgroup of ours (~10 ms, once).

    Permissions are not the whole story (a threaded or controller-enabled tree refuses
    with EBUSY/EOPNOTSUPP), and a refusal at every service start would fail them all.
    Success is read from the probe's output, not its exit status, which an event loop
    reaping children could take first.
    """
    try:
        probe = root.create("probe")
    except OSError:
        return False
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", 'echo $$ > "$1/cgroup.procs" 2>/dev/null && echo joined',
             "promenade-probe", str(probe)],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        kill(probe)
        remove(probe)
    return done.stdout.strip() == b"joined"


def stale_roots(instance: str, own: Path) -> list[Path]:
    """Folders of earlier managers whose pid is gone (a crash that took the reaper
    too): every one of this config, and the empty ones of any config."""
    found = []
    with contextlib.suppress(OSError):
        for entry in own.iterdir():
            prefix, _, pid = entry.name.rpartition("-")
            if (not prefix.startswith("promenade-") or not pid.isdigit()
                    or int(pid) == os.getpid() or Path(f"/proc/{pid}").exists()):
                continue
            root = CgroupRoot(entry)
            if prefix == f"promenade-{instance}" or not any(
                    populated(child) for child in root.children()):
                found.append(entry)
    return found
