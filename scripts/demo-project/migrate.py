"""A demo task: pretends to bring the API's database schema up to date, then exits 0.

The API depends on it with `condition: completed_successfully`, so the API starts only
after the last migration is applied; the task itself ends `stopped` with exit code 0
(a "completed" badge on the dashboard). DEMO_MIGRATE_SECONDS (default 1.5) sets how
long the migrations take; DEMO_MIGRATE_FAIL=1 makes the last one fail, to show the API
held back with the reason.
"""

from __future__ import annotations

import os
import sys
import time

MIGRATIONS = ("0001_create_users", "0002_add_stats_table", "0003_index_requests")
GREEN, RED, RESET = "\033[32m", "\033[31m", "\033[0m"


def main() -> int:
    pause = float(os.environ.get("DEMO_MIGRATE_SECONDS", "1.5")) / len(MIGRATIONS)
    fail = os.environ.get("DEMO_MIGRATE_FAIL") == "1"
    print(f"migrate: {len(MIGRATIONS)} migrations to apply", flush=True)
    for index, name in enumerate(MIGRATIONS, 1):
        time.sleep(pause)
        if fail and index == len(MIGRATIONS):
            print(f"{RED}migrate: {name} failed: relation already exists{RESET}",
                  file=sys.stderr, flush=True)
            return 1
        print(f"migrate: applying {name} ... {GREEN}ok{RESET}", flush=True)
    print("migrate: schema is up to date", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
