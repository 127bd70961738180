"""The time a service sees: wall clock, monotonic clock, sleeping and bounded waits.

`Service` takes its time from a `Clock`, so unit tests can drive back-off delays,
stop grace periods and dependency timeouts with a fake one and never really sleep
(honcho injects its clock the same way).
"""

from __future__ import annotations

import time

import gevent
import gevent.event


class Clock:
    """The real clock: `time`, `monotonic`, and cooperative (gevent) sleeping."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def wait(self, event: gevent.event.Event, timeout: float) -> bool:
        """Wait until `event` is set or `timeout` seconds pass; whether it is set."""
        return bool(event.wait(timeout))

    def wait_any(self, events: list[gevent.event.Event], timeout: float) -> None:
        """Wait until one of `events` is set or `timeout` seconds pass."""
        gevent.wait(events, timeout=timeout, count=1)


REAL_CLOCK = Clock()
