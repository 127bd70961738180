"""`sudo promenade start`: keep root only for hostsd, run everything else as the user.

SPEC.md shows `sudo promenade start` as the way to get hostnames. Running services as
root would leave root-owned files in the user's project (`node_modules`, `.pyc`, logs)
and give every dev server root. So, first thing at start-up and before any file is
written: if no hostsd answers, start a private one as root, then drop to `$SUDO_USER`.

The private hostsd:
- listens on a socket in a root-owned folder (`/var/run/promenade/private-<pid>.sock`),
  owned by the user, mode 0600 — no one else can use it;
- gets the read end of a pipe whose write end only the manager holds (non-inheritable,
  so services never get it); when the manager exits for any reason, SIGKILL included,
  the pipe reaches EOF and hostsd drops every lease, removes its socket and exits;
- runs in its own session, so a Ctrl-C in the terminal reaches the manager, which then
  removes its names itself.

Limits: only `sudo` is recognised (`$SUDO_USER`); plain root (no `$SUDO_USER`) keeps root
and gets no private hostsd (so a test suite run as root never touches the real
/etc/hosts). The private hostsd uses the system's state folder, so it refuses to start
while a system hostsd runs with another socket path; then the manager just warns.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from promenade_core.errors import PromenadeError

PRIVATE_DIR = "/var/run/promenade"
START_TIMEOUT = 5.0
#: The private hostsd and the manager's end of its lifeline (never closed while we live).
_private: subprocess.Popen[bytes] | None = None
_lifeline: int | None = None


def _warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr, flush=True)


def hostsd_answers(socket_path: str, timeout: float = 1.0) -> bool:
    """True when something at `socket_path` answers `ping` like hostsd."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
            sock.sendall(b'{"op": "ping"}\n')
            with sock.makefile("rb") as stream:
                return bool(json.loads(stream.readline() or b"{}").get("pong"))
        except (OSError, ValueError, AttributeError):
            return False


def drop_to_sudo_user(hostsd_socket: str, *, start_hostsd: bool = True,
                      private_dir: str = PRIVATE_DIR, hostsd_args: Sequence[str] = (),
                      warn: Callable[[str], None] = _warn) -> str:
    """Become `$SUDO_USER` (starting a private hostsd first); return the socket to use.

    A no-op unless we are root under sudo. `start_hostsd` is False when the config does not
    use `hosts_management: auto`. `hostsd_args` lets tests point hostsd at temp files.
    """
    user = os.environ.get("SUDO_USER")
    if os.geteuid() != 0 or not user or user == "root":
        return hostsd_socket
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise PromenadeError(f"SUDO_USER is {user!r}, which is not a user here") from None
    if start_hostsd and not hostsd_answers(hostsd_socket):
        try:
            hostsd_socket = _start_private_hostsd(pw.pw_uid, private_dir, hostsd_args)
        except PromenadeError as exc:
            warn(str(exc))
    _become(pw)
    return hostsd_socket


def _start_private_hostsd(uid: int, folder: str, extra: Sequence[str]) -> str:
    global _lifeline, _private
    os.makedirs(folder, mode=0o755, exist_ok=True)
    st = os.lstat(folder)
    if not os.path.isdir(folder) or os.path.islink(folder) or st.st_uid != 0 \
            or st.st_mode & 0o022:
        raise PromenadeError(f"{folder} must be a root-owned folder that only root can write "
                             "to; no private promenade-hostsd started")
    path = os.path.join(folder, f"private-{os.getpid()}.sock")
    read_end, write_end = os.pipe()  # both non-inheritable: services never hold them
    proc = subprocess.Popen(
        [sys.executable, "-m", "promenade_hostsd", "--socket", path, "--group", "",
         "--watch-fd", str(read_end), *extra],
        pass_fds=(read_end,), stdin=subprocess.DEVNULL, start_new_session=True)
    os.close(read_end)
    deadline = time.monotonic() + START_TIMEOUT
    while not hostsd_answers(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.close(write_end)
            with contextlib.suppress(OSError):
                proc.kill()
            raise PromenadeError(
                f"the private promenade-hostsd did not start (exit code {proc.wait()}; "
                "its message is above); hostnames will not be mapped")
        time.sleep(0.02)
    os.chown(path, uid, -1, follow_symlinks=False)  # 0600: this user (and root) only
    _private, _lifeline = proc, write_end
    return path


def _become(pw: pwd.struct_passwd) -> None:
    """initgroups, setgid, setuid, in that order; then check root cannot come back."""
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PromenadeError("could not drop root privileges (setuid(0) still works)")
    os.environ.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
    runtime = f"/run/user/{pw.pw_uid}"
    if os.path.isdir(runtime) and os.stat(runtime).st_uid == pw.pw_uid:
        os.environ["XDG_RUNTIME_DIR"] = runtime
    else:  # root's (or none): the bus falls back to /tmp/promenade-<uid>/
        os.environ.pop("XDG_RUNTIME_DIR", None)
