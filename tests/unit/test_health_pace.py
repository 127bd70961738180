"""The pace of health probes (pure) and the dialler's memory of which loopback answered."""

from __future__ import annotations

from promenade_core.supervise.health import HEALTHY_INTERVAL_MAX, next_probe_delay
from promenade_core.supervise.loopback import LoopbackDialer


def test_probes_back_off_once_healthy_to_30_s() -> None:
    """A healthy service was probed every interval for ever, filling its own log."""
    delays = [next_probe_delay(streak, 2.0) for streak in range(8)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert next_probe_delay(10_000, 0.2) == HEALTHY_INTERVAL_MAX == 30.0


def test_probes_keep_the_configured_pace_until_healthy() -> None:
    """Not healthy (or just failed): probe at the configured interval."""
    assert next_probe_delay(0, 0.1) == 0.1
    assert next_probe_delay(0, 2.0) == 2.0


def test_an_interval_above_the_cap_is_kept() -> None:
    assert next_probe_delay(0, 60.0) == 60.0
    assert next_probe_delay(5, 60.0) == 60.0


def test_dialler_tries_first_the_address_that_last_answered() -> None:
    dialer = LoopbackDialer()
    assert dialer.order(5173) == ("127.0.0.1", "::1")
    dialer._answered[5173] = "::1"
    assert dialer.order(5173) == ("::1", "127.0.0.1")
    assert dialer.order(5001) == ("127.0.0.1", "::1")
