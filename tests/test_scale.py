"""200 services under one real manager: all start, `promenade status` lists them all
running, and a stop leaves none behind (issue 16's scale target; the timings are the
benchmark's `scale` scenario, not this test's)."""

from __future__ import annotations

import signal

import pytest

from tests.support import live_marked, wait_for

pytestmark = pytest.mark.timeout(90)

SERVICES = 200


def _config(count: int) -> str:
    lines = ["manager: {hosts_management: disabled}", "services:"]
    lines += [f"  s{i:03d}: {{command: sleep 1000}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def _running(m) -> int:
    return sum(s["status"] == "running" for s in m.request("status")["services"].values())


def test_200_sleepers_start_are_listed_running_and_stop_leaving_nothing(manager) -> None:
    m = manager(_config(SERVICES))
    wait_for(lambda: _running(m) == SERVICES, 30, f"{SERVICES} services to be running")
    shown = m.cli("status")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == SERVICES
    assert [row[1] for row in rows] == ["running"] * SERVICES
    assert {service for _, service, _ in live_marked(m.instance)} == {row[0] for row in rows}
    m.signal(signal.SIGTERM)
    assert m.wait_exit(30) == 0
    assert live_marked(m.instance) == []
