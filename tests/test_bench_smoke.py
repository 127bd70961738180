"""The benchmark suite must keep running: `scripts/bench/run --smoke` against Promenade.

The benchmark is not a test, but a suite nobody runs rots. The smoke run exercises
every Promenade scenario at tiny sizes (floods, latency with the bus and WebSocket
observers, start-up, idle, stop, orphans, bus throughput, memory, requests through the
router, the CLI's commands timed) and exits non-zero when any of them errors.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "bench"
sys.path.append(str(BENCH))  # appended: its module names never shadow others

from scen_cli import Rotation, summarize  # noqa: E402
from scen_flood import integrity  # noqa: E402
from scen_router import table as router_table  # noqa: E402
from workloads import flood_line  # noqa: E402


def _lines(tag: str, seqs: list[int]) -> list[bytes]:
    return [flood_line(tag, seq).rstrip(b"\n") for seq in seqs]


def test_integrity_counts_missing_duplicated_and_broken_lines() -> None:
    """A manager that drops, repeats or cuts lines must not pass as intact."""
    good = _lines("A", [1, 2, 2, 4]) + _lines("B", [1, 2, 3, 4])
    cut = flood_line("A", 5)[:40]  # the rest of line 5 came out on the next line
    rest = flood_line("A", 5)[40:-1]
    stamped = [b"2024-01-15T10:23:45.123Z [flooda] " + line for line in good]
    data = b"\n".join([*stamped, b"[flooda] " + cut, rest, b"manager says hi"]) + b"\n"
    stamp = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[[\w.-]+\] ")
    got = integrity(data, ["A", "B"], 5, stamp)
    assert got == {"missing": 2, "duplicated": 1, "broken": 1, "unstamped": 0}, got
    # B5 and A3 never came; A2 twice; A5 arrived cut (broken, not missing).


def test_integrity_flags_lines_without_the_timestamp_prefix() -> None:
    data = b"\n".join(_lines("F", [1, 2])) + b"\n"
    stamp = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[[\w.-]+\] ")
    assert integrity(data, ["F"], 2, stamp)["unstamped"] == 2


def test_router_table_divides_the_routers_numbers_by_each_other_route() -> None:
    """Ratios are the router's over the other route's, only for routes that were run."""
    metrics = ("small_p50_ms", "small_p99_ms", "small_rps", "concurrent_rps", "download_mb_s")
    routes = {"direct-http": dict(zip(metrics, (0.2, 1.0, 5000.0, 8000.0, 400.0), strict=True)),
              "router": dict(zip(metrics, (0.5, 2.0, 2000.0, 2000.0, 100.0), strict=True))}
    text = router_table({"routes": routes, "concurrency": 4, "big_mb": 64})
    lines = text.splitlines()
    assert lines[0] == ("| Router benchmark | direct HTTP | **router** | "
                        "router / direct HTTP |"), lines[0]
    assert lines[2] == "| Small GET, 1 keep-alive connection: p50 (ms) | 0.200 | 0.500 | 2.50 |"
    assert lines[6] == "| Download of 64 MB: MB/s | 400 | 100 | 0.25 |"
    assert "Caddy" not in text


def test_cli_timings_are_summarized_hyperfine_style() -> None:
    got = summarize([30.0, 10.0, 20.0, 50.0, 40.0], [9.0, 7.0, 8.0, 9.0, 9.0])
    assert got == {"min_ms": 10.0, "median_ms": 30.0, "p90_ms": 50.0, "mean_ms": 30.0,
                   "stddev_ms": pytest.approx(15.811, abs=1e-3), "cpu_median_ms": 9.0,
                   "runs": 5}
    assert summarize([7.0], [1.0])["stddev_ms"] == 0.0


def test_cli_stops_take_running_services_in_turn_and_restart_them_when_all_stopped() -> None:
    """A timed `stop` of a service that is already stopped measures nothing: each stop
    takes the next running one, and only once all are stopped are they started again."""
    restarts: list[int] = []
    rotation = Rotation(["a", "b", "c"], lambda: restarts.append(rotation.position))
    next_stop = rotation.argv(lambda name: ["stop", name])
    stopped = []
    for _ in range(7):
        rotation.before()
        stopped.append(next_stop()[1])
    assert stopped == ["a", "b", "c", "a", "b", "c", "a"]
    assert restarts == [3, 6]


@pytest.mark.timeout(150)
def test_bench_smoke_runs_every_promenade_scenario() -> None:
    env = {**os.environ, "PROMENADE_PYTHON": sys.executable}
    proc = subprocess.Popen(
        [str(BENCH / "run"), "--smoke"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the harness cleans its managers up on TERM
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"smoke run took over 120 s; stderr tail:\n{err[-2000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}; stderr tail:\n{err[-3000:]}"
    header = next((line for line in out.splitlines() if line.startswith("| Metric")), None)
    assert header is not None, f"no table printed:\n{out[-2000:]}\n{err[-2000:]}"
    assert "**promenade**" in header, header
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in out.splitlines()
            if line.startswith("| ")}
    flood = next(cells for label, cells in rows.items() if label.startswith("Flood 20,000"))
    assert re.fullmatch(r"[\d.]+", flood[1].strip()), f"no flood time for promenade: {flood}"
    stop = next(cells for label, cells in rows.items() if label.startswith("CLI `stop SERVICE`"))
    assert re.fullmatch(r"[\d.]+", stop[1].strip()), f"no CLI stop time for promenade: {stop}"
    for label in ("Line → bus subscriber, p99 (ms)", "Line → WebSocket client, p99 (ms)"):
        assert label in rows, f"{label!r} missing from the table:\n{out}"
    assert "| error |" not in out, out
    router = next((line for line in out.splitlines() if line.startswith("| Router benchmark")),
                  None)
    assert router is not None and "**router** | router / direct HTTP" in router, out[-2000:]
    p50 = rows["Small GET, 1 keep-alive connection: p50 (ms)"]
    assert all(re.fullmatch(r"[\d.]+", c.strip()) for c in p50[1:4]), p50
