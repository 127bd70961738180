"""The demo's reporter: polls the API's /api/stats and prints a one-line summary.

promenade.yaml makes it `depends_on: [api]`, so Promenade starts it only once the API's
ready check passes; its settings come from `reporter.env` (an `env_file`). When the API
goes away (stop it from the dashboard) it says so on stderr and keeps polling.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

GREEN, YELLOW, DIM, RESET = "\033[32m", "\033[33m", "\033[2m", "\033[0m"


def fetch_stats(base_url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{base_url}/api/stats", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=3) as response:
        data: dict[str, object] = json.load(response)
    return data


def main() -> None:
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(0))
    base_url = os.environ.get("DEMO_API_URL", "http://127.0.0.1:5301").rstrip("/")
    interval = float(os.environ.get("REPORT_INTERVAL", "5"))
    token = os.environ.get("DEMO_API_TOKEN", "")
    print(f"reporter: polling {base_url}/api/stats every {interval:g} s", flush=True)
    while True:
        try:
            stats = fetch_stats(base_url, token)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(
                f"{YELLOW}reporter: API unreachable ({exc}); retrying{RESET}",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"{GREEN}reporter{RESET}: API up {stats.get('uptime_seconds')} s, "
                f"{stats.get('requests')} requests so far "
                f"{DIM}{json.dumps(stats.get('by_path'), sort_keys=True)}{RESET}",
                flush=True,
            )
        time.sleep(interval)


if __name__ == "__main__":
    main()
