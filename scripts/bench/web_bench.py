#!/usr/bin/env python3
"""Benchmark the web process during a log flood.

A project of 50 services: 48 idle, one `metronome` printing 1,000 time-stamped lines/s,
one `flood` writing FLOOD_LINES lines as fast as it can once triggered. While the flood
runs we measure:
- `GET /api/status` latency (p50/p99), polled 20 times a second;
- line-to-WebSocket-client latency (p50/p99) of the metronome's lines, as seen by a
  client subscribed to them (`?services=metronome&batch=1`);
- the web process's CPU and peak RSS,
with a second client, in its own process, following every service like a dashboard.

    .venv/bin/python scripts/bench/web_bench.py [--lines 1000000] [--json out.json]

Aims (issue 4): /api/status p99 < 25 ms and line-to-client p99 < 50 ms during the flood.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from simple_websocket import Client

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
IDLE_SERVICES = 48

METRONOME = """
import time
period = 0.001
next_at = time.monotonic()
while True:
    print(f"tick {time.time_ns()}", flush=True)
    next_at += period
    delay = next_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    elif delay < -0.1:
        next_at = time.monotonic()
"""

FLOOD = """
import os, sys, time
while not os.path.exists("flood.go"):
    time.sleep(0.02)
out = sys.stdout
line = "flood {:07d} " + "z" * 60 + "\\n"
for i in range(int(sys.argv[1])):
    out.write(line.format(i))
out.write("flood done\\n")
out.flush()
time.sleep(3600)
"""

DRAIN = """
import json, sys
from simple_websocket import Client
ws = Client.connect(sys.argv[1])
lines = gaps = 0
while True:
    data = ws.receive(timeout=120)
    if data is None:
        break
    for msg in json.loads(data):
        if msg["type"] == "logs":
            lines += len(msg["lines"])
            if "flood done" in msg["lines"]:
                print(json.dumps({"lines": lines, "gaps": gaps}), flush=True)
                sys.exit(0)
        elif msg["type"] == "gap":
            gaps += msg["dropped"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def write_project(folder: Path, port: int, lines: int) -> Path:
    (folder / "metronome.py").write_text(textwrap.dedent(METRONOME))
    (folder / "flood.py").write_text(textwrap.dedent(FLOOD))
    services = [f"  idle{i:02d}:\n    command: sleep 3600\n" for i in range(IDLE_SERVICES)]
    services.append(f"  metronome:\n    command: {PY} metronome.py\n")
    services.append(f"  flood:\n    command: {PY} flood.py {lines}\n")
    config = folder / "promenade.yaml"
    config.write_text(f"manager:\n  port: {port}\n  hosts_management: disabled\n"
                      "services:\n" + "".join(services))
    return config


def proc_children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def web_pid(manager_pid: int) -> int:
    for pid in proc_children(manager_pid):
        with contextlib.suppress(OSError):
            if b"promenade_web" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise RuntimeError("no web process found under the manager")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) * 1024
    return 0


class StatusPoller(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[float, float]] = []  # (when, seconds)
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            started = time.monotonic()
            conn.request("GET", "/api/status")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"/api/status answered {resp.status}")
            self.samples.append((started, time.monotonic() - started))
            self.stop.wait(0.05)
        conn.close()


class BusProbe(threading.Thread):
    """The same two measurements straight on the bus, to tell the web process's share
    from the supervisor's."""

    def __init__(self, control: str, events: str) -> None:
        super().__init__(daemon=True)
        from promenade_core.bus.client import ControlClient, EventSubscriber

        self.bus = ControlClient(control, timeout=10)
        self.sub = EventSubscriber(events, ("log/metronome/",))
        self.status: list[tuple[float, float]] = []
        self.lines: list[tuple[float, float]] = []
        self.stop = threading.Event()

    @staticmethod
    def in_subprocess(control: str, events: str) -> subprocess.Popen[str]:
        """Run in its own process (own GIL) until its stdin closes, then print results."""
        return subprocess.Popen([PY, __file__, "--probe", control, events],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd=ROOT)

    @staticmethod
    def results(proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, _ = proc.communicate(input="", timeout=30)
        return json.loads(out)

    def run(self) -> None:
        next_status = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_status:
                self.bus.request("status")
                self.status.append((now, time.monotonic() - now))
                next_status = now + 0.05
            got = self.sub.recv(timeout=0.01)
            if got is not None:
                now_ns, when = time.time_ns(), time.monotonic()
                for line in got[1]["lines"]:
                    self.lines.append((when, (now_ns - int(line.split()[1])) / 1e9))
        self.bus.close()
        self.sub.close()


class LatencyClient(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.ws = Client.connect(
            f"ws://127.0.0.1:{port}/api/logs/stream?services=metronome&batch=1")
        self.samples: list[tuple[float, float]] = []  # (when, seconds)
        self.gaps = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            data = self.ws.receive(timeout=1)
            if data is None:
                continue
            now_ns = time.time_ns()
            now = time.monotonic()
            for msg in json.loads(data):
                if msg["type"] == "gap":
                    self.gaps += msg["dropped"]
                elif msg["type"] == "logs":
                    for line in msg["lines"]:
                        sent = int(line.split()[1])
                        self.samples.append((now, (now_ns - sent) / 1e9))
        self.ws.close()


def window(samples: list[tuple[float, float]], start: float, end: float) -> list[float]:
    return [v for when, v in samples if start <= when <= end]


def summary(values: list[float]) -> dict[str, float]:
    return {"count": len(values), "p50_ms": round(percentile(values, 50) * 1000, 2),
            "p99_ms": round(percentile(values, 99) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2) if values else float("nan")}


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            result = predicate()
            if result:
                return result
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def run(lines: int, keep: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="web-bench-"))
    port = free_port()
    config = write_project(folder, port, lines)
    env = dict(os.environ, XDG_RUNTIME_DIR=tempfile.mkdtemp(prefix="pmb-", dir="/tmp"),
               PROMENADE_HOSTSD_SOCKET=str(folder / "no-hostsd.sock"))
    log = open(folder / "manager.out", "wb")  # noqa: SIM115 - closed in finally
    manager = subprocess.Popen([PY, "-m", "promenade_cli", "start", "-c", str(config)],
                               stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True, cwd=ROOT)
    drain: subprocess.Popen[str] | None = None
    try:
        def status_ok() -> bool:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/api/status")
            body = json.loads(c.getresponse().read())
            return all(s["status"] == "running" for s in body["services"].values())

        wait_until(status_ok, 60, "all 51 services to run")
        web = web_pid(manager.pid)
        info = json.loads(next(Path(env["XDG_RUNTIME_DIR"]).glob("promenade/*/manager.json"))
                          .read_text())
        probe = BusProbe.in_subprocess(info["control"], info["events"])
        poller = StatusPoller(port)
        latency_proc = subprocess.Popen([PY, __file__, "--ws-latency", str(port)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, cwd=ROOT)
        drain = subprocess.Popen(
            [PY, "-c", DRAIN, f"ws://127.0.0.1:{port}/api/logs/stream?batch=1"],
            stdout=subprocess.PIPE, text=True)
        poller.start()
        time.sleep(3)  # baseline: metronome only
        base_end = time.monotonic()
        cpu_before, rss_peak = cpu_seconds(web), rss_bytes(web)
        flood_start = time.monotonic()
        (folder / "flood.go").write_text("go")
        drain_out = drain.stdout
        assert drain_out is not None
        drained: dict[str, Any] = {}
        reader = threading.Thread(
            target=lambda: drained.update(json.loads(drain_out.readline() or "{}")),
            daemon=True)
        reader.start()
        while reader.is_alive() and time.monotonic() - flood_start < 300:
            rss_peak = max(rss_peak, rss_bytes(web))
            reader.join(0.25)
        flood_end = time.monotonic()
        cpu_used = cpu_seconds(web) - cpu_before
        time.sleep(1)
        poller.stop.set()
        poller.join(5)
        bus = BusProbe.results(probe)
        ws = BusProbe.results(latency_proc)
        flood_secs = flood_end - flood_start
        return {
            "services": IDLE_SERVICES + 2,
            "flood_lines": lines,
            "flood_seconds": round(flood_secs, 2),
            "flood_lines_per_second": round(lines / flood_secs),
            "status_baseline": summary(window(poller.samples, 0, base_end)),
            "status_during_flood": summary(window(poller.samples, flood_start, flood_end)),
            "line_latency_baseline": summary(window(ws["lines"], 0, base_end)),
            "line_latency_during_flood": summary(window(ws["lines"], flood_start, flood_end)),
            "latency_client_gap_lines": ws["gaps"],
            "bus_status_during_flood": summary(window(bus["status"], flood_start, flood_end)),
            "bus_line_latency_during_flood": summary(
                window(bus["lines"], flood_start, flood_end)),
            "dashboard_client": drained,
            "web_cpu_percent_during_flood": round(cpu_used / flood_secs * 100, 1),
            "web_rss_peak_mb": round(rss_peak / 1024 / 1024, 1),
        }
    finally:
        if drain is not None and drain.poll() is None:
            drain.kill()
            drain.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(manager.pid, signal.SIGTERM)
        try:
            manager.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(manager.pid, signal.SIGKILL)
            manager.wait()
        log.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def probe_main(control: str, events: str) -> int:
    probe = BusProbe(control, events)
    probe.start()
    sys.stdin.read()  # until the benchmark closes our stdin
    probe.stop.set()
    probe.join(5)
    print(json.dumps({"status": probe.status, "lines": probe.lines}))
    return 0


def ws_latency_main(port: int) -> int:
    client = LatencyClient(port)
    client.start()
    sys.stdin.read()
    client.stop.set()
    client.join(5)
    print(json.dumps({"lines": client.samples, "gaps": client.gaps}))
    return 0


def main() -> int:
    # Each measuring client runs in its own process: sharing one GIL with the others
    # would add its own waits to what it measures.
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        return probe_main(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 3 and sys.argv[1] == "--ws-latency":
        return ws_latency_main(int(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    result = run(args.lines, args.keep)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
