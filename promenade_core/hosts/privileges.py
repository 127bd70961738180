"""`sudo promenade start`: keep root only for hostsd, run everything else as the user.

SPEC.md shows `sudo promenade start` as the way to get hostnames. Running services as
root would leave root-owned files in the user's project (`node_modules`, `.pyc`, logs)
and give every dev server root. So, first thing at start-up and before any file is
written: if no hostsd answers, start a private one as root, then drop to `$SUDO_USER`.

Root never opens, creates or reads a path the user names or controls (the config, its
env_files, the state folder, the runtime folder): a planted symlink would make root
write /etc/passwd, an `env_file: /etc/shadow` would be quoted in an error. What root must
learn from the config before dropping (is hostsd wanted, where) is read by
`run_as_user`: a forked child that has dropped for good does the reading and sends back
a small JSON answer and, for the daemon's log, an open descriptor.

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
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from promenade_core.errors import PromenadeError

PRIVATE_DIR = "/var/run/promenade"
START_TIMEOUT = 5.0
#: The largest answer a `run_as_user` task sends back (a config's problems, say).
MAX_ANSWER = 1 << 20
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


def sudo_user() -> pwd.struct_passwd | None:
    """The user behind `sudo promenade …`, or None when not root because of sudo."""
    user = os.environ.get("SUDO_USER")
    if os.geteuid() != 0 or not user or user == "root":
        return None
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise PromenadeError(f"SUDO_USER is {user!r}, which is not a user here") from None


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
    if start_hostsd and not _answers_as(pw, hostsd_socket):
        try:
            hostsd_socket = _start_private_hostsd(pw.pw_uid, private_dir, hostsd_args)
        except PromenadeError as exc:
            warn(str(exc))
    become(pw)
    return hostsd_socket


def _answers_as(pw: pwd.struct_passwd, socket_path: str) -> bool:
    """Whether hostsd at `socket_path` answers the user: the path comes from their config,
    so root does not connect to it; and a hostsd the user cannot reach is of no use."""
    answer, _fds = run_as_user(pw, lambda: ({"answers": hostsd_answers(socket_path)}, []))
    return answer.get("answers") is True


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


class UserSideError(PromenadeError):
    """An error a `run_as_user` task raised, with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


Task = Callable[[], tuple[dict[str, Any], list[int]]]


def run_as_user(pw: pwd.struct_passwd, task: Task) -> tuple[dict[str, Any], list[int]]:
    """Run `task` as `pw` in a forked child; return its JSON answer and descriptors.

    The child drops root for good before `task` touches anything, so the kernel checks
    every open as the user, and a bug in what it parses cannot regain root (a temporary
    seteuid could). A PromenadeError in `task` is raised here with its exit code.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        code = 0
        try:
            ours.close()
            become(pw)
            try:
                answer, fds = task()
            except PromenadeError as exc:
                answer, fds = {"error": str(exc), "exit_code": exc.exit_code}, []
            except Exception as exc:  # anything else is reported, never a traceback
                answer, fds = {"error": f"{type(exc).__name__}: {exc}", "exit_code": 1}, []
            socket.send_fds(theirs, [json.dumps(answer).encode()[:MAX_ANSWER]], fds)
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    theirs.close()
    with ours:
        try:
            data, fds, _flags, _addr = socket.recv_fds(ours, MAX_ANSWER, 8)
        except OSError:
            data, fds = b"", []
    os.waitpid(pid, 0)
    reply: Any = None
    with contextlib.suppress(ValueError):
        reply = json.loads(data) if data else None
    if not isinstance(reply, dict) or "error" in reply:
        for fd in fds:
            os.close(fd)
        if not isinstance(reply, dict):
            raise PromenadeError(f"could not prepare the start as user {pw.pw_name}")
        exit_code = reply.get("exit_code")
        raise UserSideError(str(reply["error"]),
                            exit_code if isinstance(exit_code, int) else 1)
    return reply, fds


def become(pw: pwd.struct_passwd) -> None:
    """Drop to `pw` for good: groups, then gid, then uid; check root cannot come back."""
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
    os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PromenadeError("could not drop root privileges (setuid(0) still works)")
    os.environ.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
    runtime = f"/run/user/{pw.pw_uid}"
    if _own_private_folder(runtime, pw.pw_uid):
        os.environ["XDG_RUNTIME_DIR"] = runtime
    else:  # root's (or none): the bus falls back to /tmp/promenade-<uid>/
        os.environ.pop("XDG_RUNTIME_DIR", None)


def _own_private_folder(path: str, uid: int) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o022
