"""The real-manager harness: `promenade start` as a subprocess in its own folders.

Every process started is killed by process group in teardown, and any service process
the manager left (found by its PROMENADE_INSTANCE marker) is killed too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promenade_core import runtime
from promenade_core.bus.client import ControlClient, ManagerInfo, find_manager
from promenade_core.supervise import osproc
from tests.support.scripts import PROMENADE, STUBBORN, write_script
from tests.support.waits import wait_for


def stubborn_manager(manager: Callable[..., Manager], tmp: Path) -> Manager:
    """A manager running one service that ignores SIGTERM, once it is ignoring it."""
    write_script(tmp, "stubborn.py", STUBBORN)
    m = manager(f"""
        services:
          stubborn: {{command: {sys.executable} stubborn.py}}
    """)
    m.wait_lines("stubborn", ["ready"])
    return m


def isolated_env(tmp: Path, router: bool = False) -> dict[str, str]:
    """Environment for a manager: its own short runtime and state folders; no router
    (PROMENADE_ROUTER=0: the runtime folder is the test's own, so each manager would
    start a router of its own) unless `router`."""
    run = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    env = dict(os.environ)
    env.update({"XDG_RUNTIME_DIR": str(run), "XDG_STATE_HOME": str(tmp / "state"),
                "PYTHONUNBUFFERED": "1", "NO_COLOR": "", "PROMENADE_HOSTSD_SOCKET":
                str(tmp / "no-hostsd.sock")})
    env.pop("NO_COLOR")
    if router:
        env.pop("PROMENADE_ROUTER", None)
    else:
        env["PROMENADE_ROUTER"] = "0"
    return env


def live_marked(instance: str) -> list[tuple[int, str, str]]:
    """Service processes of an instance that are still alive (zombies excluded)."""
    out = []
    for pid, service, cmd in osproc.find_leftovers(instance):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append((pid, service, cmd))
    return out


def line_entries(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log messages (the bus's `log/` shape) as one dict per line, for assertions."""
    return [{"seq": m["first_seq"] + i, "timestamp": m["timestamp"], "service": m["service"],
             "stream": m["stream"], "line": line}
            for m in messages for i, line in enumerate(m["lines"])]


class Manager:
    """`promenade start` in the foreground, as a real subprocess."""

    def __init__(self, tmp: Path, config: str, args: tuple[str, ...] = ("--no-ui",),
                 name: str = "promenade.yaml") -> None:
        self.tmp = tmp
        self.path = tmp / name
        self.path.write_text(textwrap.dedent(config))
        self.env = isolated_env(tmp)
        self.args = args
        self.log = tmp / "manager.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.instance = runtime.instance_id(self.path)

    def cli(self, *args: str, timeout: float = 60, check: bool = False,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*PROMENADE, *args, "-c", str(self.path)], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=check)

    def start(self, wait: bool = True) -> Manager:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([*PROMENADE, "start", "-c", str(self.path),
                                          *self.args], stdout=out, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True)
        if wait:
            wait_for(self.info, 20, "the manager to answer")
        return self

    def info(self) -> ManagerInfo | None:
        with _env(self.env):
            info = find_manager(self.path)
        if info is None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"manager exited {self.proc.returncode}:\n{self.output()}")
            return None
        with ControlClient(info.control, timeout=2) as bus:
            bus.request("ping")
        return info

    def request(self, cmd: str, timeout: float = 30, **args: Any) -> Any:
        info = self.info()
        assert info is not None, "no manager"
        with ControlClient(info.control, timeout=timeout) as bus:
            return bus.request(cmd, **args)

    def status(self, name: str) -> dict[str, Any]:
        return self.request("service", service=name)

    def wait_status(self, name: str, *wanted: str, timeout: float = 15) -> dict[str, Any]:
        return wait_for(lambda: (s := self.status(name))["status"] in wanted and s,
                        timeout, f"{name} to be {'/'.join(wanted)}")

    def lines(self, name: str) -> list[str]:
        return [e["line"] for e in self.log_lines(name)]

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        """The buffered lines of one service, one dict each (seq, stream, line, ...)."""
        return line_entries(self.request("logs", service=name)["messages"])

    def wait_lines(self, name: str, expected: list[str], timeout: float = 10) -> None:
        """Wait until the service's buffer holds exactly `expected` (reports what it has)."""
        got: list[str] = []

        def check() -> bool:
            got[:] = self.lines(name)
            return got == expected

        try:
            wait_for(check, timeout, f"{name}'s lines to be {expected!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; had {got!r}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_output(self, text: str, timeout: float = 15) -> str:
        return wait_for(lambda: text in (out := self.output()) and out, timeout,
                        f"{text!r} in the manager's output")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        leftovers = [pid for pid, _, _ in osproc.find_leftovers(self.instance)]
        osproc.kill_pids(leftovers)


@contextlib.contextmanager
def _env(env: dict[str, str]) -> Any:
    """Temporarily take the manager's XDG folders so find_manager looks in the same place."""
    keys = ("XDG_RUNTIME_DIR", "XDG_STATE_HOME")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in keys:
            os.environ[k] = env[k]
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
