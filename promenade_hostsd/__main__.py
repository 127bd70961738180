"""`promenade-hostsd`: the only Promenade code that runs as root; it edits /etc/hosts and
binds loopback ports 443 and 80 for the router.

Paths, group and timeout are parameters so that tests run it on a temp file and socket.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from promenade_hostsd.server import Hostsd, listen
from promenade_hostsd.state import StateDir


def _log(message: str) -> None:
    print(f"promenade-hostsd: {message}", file=sys.stderr, flush=True)


def _watch(fd: int) -> None:
    """The private hostsd of `sudo promenade start` lives exactly as long as this pipe."""
    while os.read(fd, 1024):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promenade-hostsd", description="Map Promenade "
        "hostnames to loopback in the hosts file, each user's names their own, and bind "
        "loopback 443/80 for the router. Runs as root; see the README.")
    parser.add_argument("--socket", default="/run/promenade/hostsd.sock")
    parser.add_argument("--hosts-file", default="/etc/hosts")
    parser.add_argument("--group", default="promenade", help="who may connect ('': root)")
    parser.add_argument("--state-dir", default="/var/lib/promenade-hostsd",
                        help="refused unless only root can write to it and every folder above")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a client has "
                        "to send a whole request line (see the README)")
    parser.add_argument("--watch-fd", type=int, help="exit when this fd reaches end of file")
    args = parser.parse_args(argv)
    try:
        daemon = Hostsd(args.hosts_file, StateDir(args.state_dir), args.timeout, _log)
        daemon.start()
        listener = listen(args.socket, args.group, _log)
        inode = os.stat(args.socket).st_ino
    except (OSError, SystemExit) as exc:
        _log(f"error: {exc}")
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)  # KeyboardInterrupt: stop cleanly
    if args.watch_fd is not None:
        threading.Thread(target=_watch, args=(args.watch_fd,), daemon=True).start()
    try:
        daemon.serve(listener)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        if os.path.exists(args.socket) and os.stat(args.socket).st_ino == inode:
            os.unlink(args.socket)  # still ours, not a successor's
        daemon.drop_lease(None)
        _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
