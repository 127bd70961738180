"""The services the benchmark runs under every manager: floods, a quiet ticker, HTTP.

Run as `python -S -E workloads.py KIND ...` (standard library only, no site import, so a
service costs ~10 ms to start and the managers, not Python, dominate what is measured).

Every line a workload writes is exactly 100 bytes and starts with a marker the readers
search for: `@@` + a one-letter tag + an 8-digit sequence number + `:`. The quiet
ticker adds its write time (`time.time_ns()`, CLOCK_REALTIME, comparable across
processes) so a reader can compute the delay by stamping the arrival. Floods write in
8,000-byte blocks (80 lines), as a program printing to a pipe through an 8 KiB stdio
buffer does; the ticker writes one line per `write`, as a line-buffered logger does.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

LINE_BYTES = 100
BLOCK_LINES = 80


def flood_line(tag: str, seq: int) -> bytes:
    head = b"@@%s%08d:" % (tag.encode(), seq)
    return head + b"x" * (LINE_BYTES - len(head) - 1) + b"\n"


def quiet_line(seq: int, stamp_ns: int) -> bytes:
    head = b"@@Q%08d:%d:" % (seq, stamp_ns)
    return head + b"q" * (LINE_BYTES - len(head) - 1) + b"\n"


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(1, view)
        view = view[written:]


def _report(path: str, **values: float) -> None:
    """Write a small JSON result atomically (the harness polls for the file)."""
    times = os.times()
    values["cpu"] = times.user + times.system
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(values, handle)
    os.replace(tmp, path)


def _wait_for_go(go_file: str, limit: float = 60.0) -> None:
    """Hold the first line until the harness's observers are connected."""
    if go_file == "-":
        return
    deadline = time.monotonic() + limit
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            sys.exit(f"workloads: {go_file!r} never appeared")
        time.sleep(0.002)


def _sleep_forever() -> None:
    """Stay up after the work so managers that stop everything on one exit do not."""
    while True:
        time.sleep(3600)


_TEMPLATES: dict[tuple[str, int], bytes] = {}


def _block(tag: str, start: int, count: int) -> bytes:
    """`count` consecutive lines with one `%` on a cached template (~0.1 µs a line)."""
    key = (tag, count)
    template = _TEMPLATES.get(key)
    if template is None:
        one = flood_line(tag, 0).replace(b"%", b"%%")
        template = (b"@@" + tag.encode() + b"%08d" + one[11:]) * count
        _TEMPLATES[key] = template
    return template % tuple(range(start, start + count))


def flood(tag: str, count: int, done_file: str, go_file: str = "-", then: str = "exit") -> None:
    """Write `count` numbered lines as fast as the pipe takes them."""
    _wait_for_go(go_file)
    t_start = time.time_ns()
    seq = 1
    while seq <= count:
        n = min(BLOCK_LINES, count - seq + 1)
        _write_all(_block(tag, seq, n))
        seq += n
    _report(done_file, t_start=t_start, t_end=time.time_ns(), lines=count)
    if then == "sleep":
        _sleep_forever()


def flood_for(tag: str, seconds: float, done_file: str, go_file: str) -> None:
    """Flood for a duration, then sleep: the background load of the latency runs."""
    _wait_for_go(go_file)
    t_start = time.time_ns()
    until = time.monotonic() + seconds
    seq = 1
    while time.monotonic() < until:
        _write_all(_block(tag, seq, BLOCK_LINES))
        seq += BLOCK_LINES
    _report(done_file, t_start=t_start, t_end=time.time_ns(), lines=seq - 1)
    _sleep_forever()


def quiet(rate: float, seconds: float, done_file: str, go_file: str) -> None:
    """One timestamped line every 1/rate s on an absolute schedule (no drift)."""
    _wait_for_go(go_file)
    period = 1.0 / rate
    start = time.monotonic()
    total = int(seconds * rate)
    for seq in range(1, total + 1):
        delay = start + seq * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        os.write(1, quiet_line(seq, time.time_ns()))
    _report(done_file, lines=total)
    _sleep_forever()


def http(port: int) -> None:
    """The smallest HTTP/1.0 server that answers every request with 200."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(1.0)
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except OSError:
                pass


def relay(names_and_commands: list[str]) -> None:
    """A bare Python line reader: the least a manager has to do with output.

    One thread per child reads `for line in pipe` and writes `[name] line`; it exits
    when every child has exited. It is the floor the real managers are compared to.
    """
    import subprocess
    import threading

    lock = threading.Lock()
    out = sys.stdout.buffer

    def pump(name: str, pipe: object) -> None:
        prefix = f"[{name}] ".encode()
        for line in pipe:  # type: ignore[attr-defined]
            with lock:
                out.write(prefix + line)
                out.flush()  # a manager shows each line as it comes
        with lock:
            out.flush()

    pairs = list(zip(names_and_commands[::2], names_and_commands[1::2], strict=True))
    procs = []
    threads = []
    for name, command in pairs:
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.PIPE)
        procs.append(proc)
        thread = threading.Thread(target=pump, args=(name, proc.stdout), daemon=True)
        thread.start()
        threads.append(thread)
    for proc in procs:
        proc.wait()
    for thread in threads:
        thread.join()
    out.flush()


def main(argv: list[str]) -> None:
    kind, args = argv[0], argv[1:]
    if kind == "flood":
        flood(args[0], int(args[1]), args[2], *args[3:5])
    elif kind == "flood-for":
        flood_for(args[0], float(args[1]), args[2], args[3])
    elif kind == "quiet":
        quiet(float(args[0]), float(args[1]), args[2], args[3])
    elif kind == "http":
        http(int(args[0]))
    elif kind == "relay":
        relay(args)
    else:
        sys.exit(f"workloads: unknown kind {kind!r} (flood, flood-for, quiet, http, relay)")


if __name__ == "__main__":
    main(sys.argv[1:])
