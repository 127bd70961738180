"""Bounded waits: every wait in the suite is a poll with a deadline.

The one `wait_for` reports what it saw last, so a failure says "waited for X; last saw
Y" instead of just "timed out" (process-compose's waitForProcessState does the same).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy and return that value; fail with the last one
    seen. A probe that raises is just "not yet" (its exception is what was seen)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last saw {last!r}")
