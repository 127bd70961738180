"""Starting and collecting the observer processes (observers.py) for a Promenade run."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from runner import Context, ManagerRun

OBSERVERS = Path(__file__).with_name("observers.py")
REPO = Path(__file__).resolve().parents[2]


class Observer:
    """One observers.py process; `result()` stops it and returns its JSON."""

    def __init__(self, ctx: Context, run: ManagerRun, mode: str, *args: str) -> None:
        assert ctx.observer_python is not None
        self.out = run.folder / f"observer-{mode}-{os.urandom(3).hex()}.json"
        self.mode = mode
        env = {k: v for k, v in run.env.items() if k != "BENCH_RUN"}
        env["PYTHONPATH"] = str(REPO)
        argv = [ctx.observer_python, str(OBSERVERS), mode, *args]
        if not mode.endswith("stall"):
            argv += ["--out", str(self.out)]
        self._log = open(self.out.with_suffix(".log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._log, env=env, start_new_session=True
        )

    def ready(self, timeout: float) -> bool:
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return bool(readable) and self.proc.stdout.readline().strip() == b"ready"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def result(self, timeout: float = 20.0) -> dict[str, Any] | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._log.close()
        if not self.out.exists():
            return None
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data

    def error(self) -> str:
        return self.out.with_suffix(".log").read_text(errors="replace")[-400:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_all(observers: list[Observer], timeout: float = 30.0) -> str | None:
    """Wait until every observer is joined; an error text when one is not."""
    deadline = time.monotonic() + timeout
    for obs in observers:
        if not obs.ready(max(0.1, deadline - time.monotonic())):
            return f"observer {obs.mode} not ready: {obs.error()}"
    return None
