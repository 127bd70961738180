"""The demo's background worker: pretends to process jobs and logs in colour.

It writes to stdout and stderr with ANSI colour codes (forced, whatever the output
is) so the dashboard and `promenade logs` show colour and the stderr marker. One line
at start-up takes colour only when stdout is a terminal, the way most tools decide: it
shows what the program sees when Promenade runs it.

DEMO_WORKER_INTERVAL (seconds, default 1.5) sets the pace.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

GREEN, YELLOW, RED, CYAN = "\033[32m", "\033[33m", "\033[31m", "\033[36m"
BOLD, RESET = "\033[1m", "\033[0m"


def out(text: str) -> None:
    print(text, flush=True)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def announce_terminal() -> None:
    """Colour on a terminal, or where FORCE_COLOR asks for it, as chalk or rich decide
    (Promenade sets FORCE_COLOR for services on pipes, its default)."""
    if sys.stdout.isatty() or os.environ.get("FORCE_COLOR"):
        out(f"{BOLD}{CYAN}worker: a terminal or FORCE_COLOR, so this line is coloured{RESET}")
    else:
        out("worker: stdout is a pipe without FORCE_COLOR, so this line stays plain "
            "(the lines below force colour)")


def do_job(number: int) -> None:
    """One fake job: mostly fine, sometimes slow (stderr warning), rarely failing."""
    took = random.randint(20, 400)
    if number % 9 == 0:
        err(
            f"{RED}{BOLD}error{RESET}{RED} job {number}: thumbnail failed: corrupt header, "
            f"skipped{RESET}"
        )
    elif number % 4 == 0:
        err(f"{YELLOW}warn{RESET} job {number}: storage slow ({took * 5} ms), upload retried")
    else:
        out(f"{GREEN}ok{RESET}   job {number}: resized photo-{number:04d}.jpg in {took} ms")
    if number % 10 == 0:
        out(f"{CYAN}{BOLD}stats{RESET} {number} jobs done since start")


def main() -> None:
    current = 0

    def stop(_signum: int, _frame: object) -> None:
        out(f"worker: SIGTERM received after job {current}, exiting cleanly")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    interval = float(os.environ.get("DEMO_WORKER_INTERVAL", "1.5"))
    out(f"worker: started (pid {os.getpid()}), one job every ~{interval:g} s")
    announce_terminal()
    while True:
        current += 1
        do_job(current)
        time.sleep(interval * random.uniform(0.7, 1.3))


if __name__ == "__main__":
    main()
