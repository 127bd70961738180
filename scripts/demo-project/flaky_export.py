"""A demo job that fails on purpose, to show restart policies and failure events.

It works for a few seconds, writes an error to stderr and exits with code 1. With
`restart_policy: once` Promenade retries it one time, then marks it `gave_up`.
DEMO_FLAKY_SECONDS (default 4) sets how long it runs before failing.
"""

from __future__ import annotations

import os
import sys
import time

RED, RESET = "\033[31m", "\033[0m"


def main() -> int:
    seconds = float(os.environ.get("DEMO_FLAKY_SECONDS", "4"))
    print(f"flaky-export: exporting the nightly report (fails after {seconds:g} s)", flush=True)
    time.sleep(seconds)
    print(
        f"{RED}flaky-export: upload refused: disk quota exceeded (on purpose){RESET}",
        file=sys.stderr,
        flush=True,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
