"""promenade-hostsd as a real process on a temp hosts file and a temp socket, its
client, the `sudo promenade start` privilege-drop driver, and a private network
namespace for the sockets hostsd binds on loopback 443/80 (`NETNS`, `in_netns`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.waits import wait_for

ORIGINAL = (
    b"# static table\n"
    b"127.0.0.1\tlocalhost\n"
    b"::1  localhost ip6-localhost   # v6\n"
    b"10.0.0.5 github.com gh\n"
    b"127.0.1.1 mybox"  # no final newline, on purpose
)


class Client:
    """One connection: one lease."""

    def __init__(self, path: str | Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self.file = self.sock.makefile("rb")

    def raw(self, data: bytes) -> dict[str, Any]:
        self.sock.sendall(data)
        line = self.file.readline()
        assert line, "hostsd closed the connection without a reply"
        reply: dict[str, Any] = json.loads(line)
        return reply

    def __call__(self, **request: Any) -> dict[str, Any]:
        return self.raw(json.dumps(request).encode() + b"\n")

    def closed_by_peer(self) -> bool:
        """EOF, or a reset: hostsd closed with our unread bytes still queued."""
        try:
            return self.file.readline() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@dataclass
class Hostsd:
    root: Path
    hosts: Path
    socket: Path
    state: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    clients: list[Client] = field(default_factory=list)
    wrap: list[str] = field(default_factory=list)  # a command that execs hostsd (NETNS)

    def start(self, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [*self.wrap, sys.executable, "-m", "promenade_hostsd", "--socket", str(self.socket),
             "--hosts-file", str(self.hosts), "--state-dir", str(self.state), *self.args,
             *extra],
            stderr=subprocess.PIPE)
        wait_for(self.ping, what="hostsd to answer ping")

    def ping(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"hostsd exited {self.proc.returncode}: "
                                 f"{self.proc.stderr.read().decode() if self.proc.stderr else ''}")
        client = Client(self.socket)
        try:
            return bool(client(op="ping")["ok"])
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> str:
        assert self.proc is not None
        self.proc.send_signal(sig)
        _out, err = self.proc.communicate(timeout=10)
        return err.decode()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def client(self) -> Client:
        self.clients.append(Client(self.socket))
        return self.clients[-1]

    def read(self) -> bytes:
        return self.hosts.read_bytes()


def our_lines(data: bytes) -> list[str]:
    return [line for line in data.decode().splitlines() if "# promenade:" in line]


SUDO_SCRIPT = """\
import json, os, socket, sys
from promenade_core.hosts import privileges
from promenade_core.hosts.privileges import drop_to_sudo_user
hosts, state, private, workdir, given = sys.argv[1:6]
path = drop_to_sudo_user(given, private_dir=private, warn=lambda m: print("WARN", m),
                         hostsd_args=["--hosts-file", hosts, "--state-dir", state])
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.sendall(b'{"op": "add", "service": "api", "hostname": "api.test"}\\n')
reply = json.loads(s.makefile("rb").readline())
with open(os.path.join(workdir, "written"), "w") as f:
    f.write("x")
print(json.dumps({"socket": path, "ids": [os.getuid(), os.geteuid(), os.getgid()],
                  "groups": os.getgroups(), "home": os.environ["HOME"],
                  "user": os.environ["USER"], "reply": reply,
                  "hostsd": privileges._private.pid if privileges._private else None}),
      flush=True)
sys.stdin.read()
"""


class Sudo:
    """`sudo promenade start`'s privilege drop, run by a script as root with SUDO_USER=nobody."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hosts = root / "hosts"
        self.hosts.write_bytes(ORIGINAL)
        self.private = root / "private"
        self.workdir = root / "work"
        self.workdir.mkdir()
        self.workdir.chmod(0o777)
        self.script = root / "sudo_start.py"
        self.script.write_text(SUDO_SCRIPT)
        self.proc: subprocess.Popen[str] | None = None
        self.warnings: list[str] = []

    def run(self, given: Path) -> dict[str, Any]:
        env = dict(os.environ, SUDO_USER="nobody", PYTHONPATH=str(Path.cwd()))
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), str(self.hosts), str(self.root / "state"),
             str(self.private), str(self.workdir), str(given)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        while line.startswith("WARN"):
            self.warnings.append(line)
            line = self.proc.stdout.readline()
        assert line, f"the script died: exit {self.proc.wait()}"
        result: dict[str, Any] = json.loads(line)
        return result

    def end(self, sig: int | None = None) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        if sig is None:
            self.proc.stdin.close()
        else:
            self.proc.send_signal(sig)
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()


#: Runs hostsd (as the same pid: `exec`) in a network namespace of its own with `lo` up,
#: so that it binds 127.0.0.1:443 and [::1]:443 whatever the machine listens on.
NETNS = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]

#: For `in_netns`: connects to argv[1]:argv[2], sends argv[3], prints the reply as JSON
#: ({"got": text} or {"error": errno name}).
TCP_CLIENT = """\
import errno, json, socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    s.sendall(sys.argv[3].encode())
    print(json.dumps({"got": s.recv(100).decode()}), flush=True)
except OSError as exc:
    print(json.dumps({"error": errno.errorcode.get(exc.errno or 0, str(exc))}), flush=True)
"""

#: For `in_netns`: binds argv[1]:argv[2] itself (root, not through hostsd) until stdin ends.
SQUATTER = """\
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("bound", flush=True)
sys.stdin.read()
"""

#: Holds a PortLease on argv[1] for argv[2] until stdin ends (or SIGKILL).
HOLDER = """\
import sys
from promenade_core.hosts.listeners import PortLease
lease = PortLease(sys.argv[1])
sock = lease.listen(int(sys.argv[2]))
print("holding", sock.getsockname()[1], flush=True)
sys.stdin.read()
"""


def in_netns(netns: int, code: str, *args: str) -> subprocess.Popen[str]:
    """Python `code` run in the network namespace open as fd `netns` (it outlives hostsd,
    unlike /proc/PID/ns/net), with pipes for stdin and stdout."""
    return subprocess.Popen(
        ["nsenter", f"--net=/proc/self/fd/{netns}", sys.executable, "-c", code, *args],
        pass_fds=(netns,), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@contextlib.contextmanager
def netns_hostsd(tmp_path: Path) -> Iterator[Hostsd]:
    """hostsd as root in a private network namespace (NETNS), on a temp hosts file and
    a short socket path; its clients closed, it killed and its folder removed after."""
    root = Path(tempfile.mkdtemp(prefix="hostsd-"))
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    daemon = Hostsd(root, hosts, root / "hostsd.sock", tmp_path / "state",
                    ["--group", "", "--timeout", "2"], wrap=NETNS)
    daemon.start()
    try:
        yield daemon
    finally:
        for client in daemon.clients:
            client.close()
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        shutil.rmtree(root)
