"""Latency: how long a quiet service's line takes to come out while another service floods.

The quiet service writes 1,000 lines/s, each carrying its write time; a second service
floods as fast as the manager takes it. Both wait for a `go` file, so that for
Promenade the bus subscriber (topic `log/quiet/`) and the WebSocket client
(`?services=quiet`) are joined before the first line. Delays are counted for quiet
lines written while the flood ran; lines the quiet service wrote but no reader got
are reported too (the flood must cost the quiet service no lines).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from observe import Observer, start_all
from peers import Manager, Service
from runner import Chunks, Context, ManagerRun, wait_for

CATCH_UP_S = 10.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class StdoutCollector(threading.Thread):
    """Reads the manager's stdout: quiet-line delays and the flood's line count."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.chunks = Chunks(fd)
        self.quiet: list[list[int]] = []
        self.flood_lines = 0
        self.broken = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set() and not self.chunks.eof:
            got = self.chunks.read(0.05)
            if got is None:
                continue
            arrived, data = got
            self.flood_lines += data.count(b"@@F")
            at = data.find(b"@@Q")
            while at >= 0:
                sample = quiet_sample(data, at)
                if sample is None:
                    self.broken += 1
                else:
                    self.quiet.append([*sample, arrived])
                at = data.find(b"@@Q", at + 3)


def quiet_sample(data: bytes, at: int) -> tuple[int, int] | None:
    """(seq, written ns) of the quiet line at `at`, or None when a manager cut it."""
    seq, colon = data[at + 3 : at + 11], data[at + 11 : at + 12]
    end = data.find(b":", at + 12, at + 40)
    stamp = data[at + 12 : end] if end > 0 else b""
    if colon != b":" or not seq.isdigit() or not stamp.isdigit():
        return None
    return int(seq), int(stamp)


def delays(samples: list[list[int]], window: tuple[int, int], total: int | None) -> dict:
    """p50/p99/max in ms over the quiet lines written inside the flood window."""
    start, end = window
    inside = [(arr - wrote) / 1e6 for _, wrote, arr in samples if start <= wrote <= end]
    unique = len({seq for seq, _, _ in samples})
    out: dict[str, Any] = {
        "p50_ms": percentile(inside, 0.50),
        "p99_ms": percentile(inside, 0.99),
        "max_ms": max(inside) if inside else None,
        "samples": len(inside),
    }
    if total is not None:
        out["quiet_missing"] = total - unique
    return out


def _done(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def latency(ctx: Context, manager: Manager, seconds: float, rate: int,
            observers: bool) -> dict[str, Any]:
    scratch = ctx.scratch("latency")
    go, flood_done, quiet_done = scratch / "go", scratch / "flood.done", scratch / "quiet.done"
    services = [
        Service("flood", ctx.py("flood-for", "F", seconds, flood_done, go)),
        Service("quiet", ctx.py("quiet", rate, seconds + 1.0, quiet_done, go)),
    ]
    watchers: list[Observer] = []
    with ManagerRun(ctx, manager, services, "latency") as run:
        collector = StdoutCollector(run.fd)
        collector.start()
        try:
            if observers and run.launch.config is not None:
                watchers.append(Observer(ctx, run, "bus", "--config", str(run.launch.config),
                                         "--topic", "log/quiet/"))
                if run.launch.web_port:
                    url = f"ws://127.0.0.1:{run.launch.web_port}/api/logs/stream?services=quiet"
                    watchers.append(Observer(ctx, run, "ws", "--url", url))
                problem = start_all(watchers)
                if problem:
                    return {"error": problem}
            go.touch()
            if not wait_for(quiet_done.exists, seconds + 30):
                return {"error": f"the quiet service did not finish; {run.stderr_tail()}"}
            total = int(json.loads(quiet_done.read_text())["lines"])
            # A manager that fell behind gets up to CATCH_UP_S to deliver the rest.
            wait_for(lambda: any(s[0] == total for s in collector.quiet[-50:]), CATCH_UP_S)
            time.sleep(0.3)  # the observers' last lines
            results = {obs.mode: obs.result() for obs in watchers}
        finally:
            collector.halt.set()
            collector.join(2)
            for obs in watchers:
                obs.kill()
            run.drain()
    flood = _done(flood_done)
    quiet = _done(quiet_done)
    if flood is None or quiet is None:
        return {"error": "the flood did not report"}
    window = (int(flood["t_start"]), int(flood["t_end"]))
    total = int(quiet["lines"])
    flood_s = (window[1] - window[0]) / 1e9
    out: dict[str, Any] = {
        "stdout": {**delays(collector.quiet, window, total), "quiet_broken": collector.broken},
        "flood_lines_per_s": collector.flood_lines / flood_s if flood_s else None,
        "flood_written_per_s": int(flood["lines"]) / flood_s if flood_s else None,
    }
    for mode, data in results.items():
        out[mode] = (
            delays(data["quiet"], window, total) if data else {"error": "no result"}
        )
    return out
