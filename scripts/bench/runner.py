"""Launching one manager for one measurement, reading its output, stopping it, cleaning up.

A `ManagerRun` owns everything a run leaves behind: its folder under `.work/`, the
manager process (its own session), and every process carrying the run's token, which
`close()` kills whatever happened. The harness reads the manager's stdout itself in
big `os.read`s and only counts markers while measuring (bytes.count runs at memory
speed), so the reader is never what a flood waits for.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import procs
from peers import Launch, Manager, Service, Tools

READ_SIZE = 1 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What every scenario needs: the work folder, the tools and the service wrappers."""

    work: Path
    tools: Tools
    observer_python: str | None

    @property
    def svcbin(self) -> Path:
        return self.work / procs.SERVICE_DIR

    def scratch(self, label: str) -> Path:
        """A fresh folder for one run's go/done files (named before the run starts)."""
        folder = self.work / "scratch" / f"{label}-{secrets.token_hex(4)}"
        folder.mkdir(parents=True)
        return folder

    def py(self, *args: object) -> str:
        return " ".join([str(self.svcbin / "py"), *(str(a) for a in args)])

    def up(self, name: str, fifo: Path, stubborn: bool = False) -> str:
        script = "up-stubborn" if stubborn else "up"
        return f"{self.svcbin / script} {name} {fifo}"

    def sleeper_tree(self) -> str:
        sleep = self.svcbin / "sleep"
        return f"sh -c '{sleep} 100000 & {sleep} 100000 & wait'"


def make_svcbin(ctx: Context) -> None:
    """Service wrappers: they mark their processes (BENCH_SVC=1 or the svcbin path)."""
    folder = ctx.svcbin
    folder.mkdir(parents=True, exist_ok=True)
    sleep = folder / "sleep"
    if not sleep.exists():
        sleep.symlink_to("/bin/sleep")
    scripts = {
        "py": f'export BENCH_SVC=1\nexec {ctx.tools.bench_python} -S -E '
        f'{ctx.tools.workloads} "$@"\n',
        "up": f'export BENCH_SVC=1\necho "$1" > "$2"\nexec {sleep} 100000\n',
        "up-stubborn": f"export BENCH_SVC=1\ntrap '' TERM\n"
        f'echo "$1" > "$2"\nexec {sleep} 100000\n',
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


class ManagerRun:
    """One manager running a list of services; use as a context manager."""

    def __init__(
        self, ctx: Context, manager: Manager, services: Sequence[Service], label: str
    ) -> None:
        self.manager = manager
        self.token = secrets.token_hex(6)
        self.folder = ctx.work / "runs" / f"{label}-{_safe(manager.name)}-{self.token}"
        self.launch: Launch = manager.prepare(services, self.folder, ctx.tools)
        env = {k: v for k, v in os.environ.items() if k != "BENCH_SVC"}
        env.update(self.launch.env)
        env["BENCH_RUN"] = self.token
        self.env = env
        self._stderr = open(self.folder / "stderr.log", "wb")  # noqa: SIM115
        self.rusage: resource.struct_rusage | None = None
        self.exited_at: float | None = None
        self._drainer: threading.Thread | None = None
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.launch.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if manager.output else subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
            cwd=self.folder,
            start_new_session=True,
        )
        self.fd = self.proc.stdout.fileno() if self.proc.stdout else -1

    def __enter__(self) -> ManagerRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def processes(self) -> procs.RunProcesses:
        """The run's manager and service processes right now."""
        return procs.run_processes(self.token, None if self.rusage else self.proc.pid)

    def exited(self) -> bool:
        """Reap the manager if it has exited, keeping its rusage (children included)."""
        if self.rusage is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.exited_at = time.monotonic()
        self.rusage = usage
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return True

    def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def send(self, sig: int) -> None:
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 20.0) -> float | None:
        """Ask the manager to stop; seconds until it exited, None if it did not."""
        self.drain()
        start = time.monotonic()
        self.send(self.launch.stop_signal)
        if not self.wait_exit(timeout):
            return None
        assert self.exited_at is not None
        return self.exited_at - start

    def cpu_s(self, service_cpu: float = 0.0) -> float | None:
        """Manager CPU: its rusage (waited descendants included) minus the services'."""
        if self.rusage is None:
            return None
        total = self.rusage.ru_utime + self.rusage.ru_stime
        return max(0.0, total - service_cpu)

    def drain(self) -> None:
        """Keep reading stdout in the background so the manager never blocks on it."""
        if self._drainer is not None or self.fd < 0:
            return

        def run() -> None:
            try:
                while os.read(self.fd, READ_SIZE):
                    pass
            except OSError:
                pass

        self._drainer = threading.Thread(target=run, daemon=True)
        self._drainer.start()

    def close(self) -> None:
        self.drain()
        if not self.exited():
            tree = self.processes()
            for pid in (*tree.manager, *tree.service):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.wait_exit(5.0)
        procs.kill_run(self.token)
        for folder in self.launch.scratch:
            shutil.rmtree(folder, ignore_errors=True)
        if self._drainer is not None:
            self._drainer.join(timeout=2.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def stderr_tail(self, size: int = 600) -> str:
        data = (self.folder / "stderr.log").read_bytes()
        return data[-size:].decode(errors="replace")


class Chunks:
    """Complete lines from a pipe, one `os.read` at a time, with their arrival time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.carry = b""
        self.eof = False
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP)

    def read(self, timeout: float) -> tuple[int, bytes] | None:
        """`(time_ns, complete lines)` or None on timeout/EOF (check `.eof`)."""
        if self.eof or not self._poll.poll(int(timeout * 1000)):
            return None
        chunk = os.read(self.fd, READ_SIZE)
        now = time.time_ns()
        if not chunk:
            self.eof = True
            rest, self.carry = self.carry, b""
            return (now, rest + b"\n") if rest else None
        data = self.carry + chunk
        cut = data.rfind(b"\n") + 1
        self.carry = data[cut:]
        return now, data[:cut]


class SpawnWatch:
    """A FIFO the `up` services write their name to when they start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self._read = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._keep = os.open(path, os.O_WRONLY)  # never EOF while services come and go
        self.seen: dict[str, float] = {}
        self._carry = b""

    def wait(self, count: int, timeout: float) -> float | None:
        """Monotonic time when `count` distinct services had announced themselves."""
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        while len(self.seen) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if poller.poll(int(min(left, 0.05) * 1000)):
                now = time.monotonic()
                data = self._carry + os.read(self._read, 65536)
                *names, self._carry = data.split(b"\n")
                for name in names:
                    self.seen.setdefault(name.decode(), now)
        return max(self.seen.values()) if self.seen else None

    def close(self) -> None:
        os.close(self._read)
        os.close(self._keep)


def wait_for(predicate: Callable[[], T], timeout: float, step: float = 0.005) -> T:
    """Poll `predicate()` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def service_processes(run: ManagerRun, program: str) -> list[int]:
    """The run's live service processes running `program` (argv[0])."""
    return [
        pid for pid in run.processes().service if procs.cmdline(pid).startswith(program + " ")
    ]
