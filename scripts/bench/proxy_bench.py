"""What the CORS proxy costs: the same requests straight to a service and through its
proxy, in one run, with requests/s and p50/p99 latency per scenario.

    .venv/bin/python scripts/bench/proxy_bench.py [--duration 3] [--json OUT]

The service is a gevent WSGI app in its own process; the proxy is a real `CorsProxy` in
another (as in the supervisor: gevent, not monkey-patched); each client connection is a
process of its own doing keep-alive requests back to back with h11. Direct and proxied
runs alternate in short slices, so both meet the same machine load. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11

REPO = Path(__file__).resolve().parents[2]
ORIGIN = b"http://localhost:3000"
ONE_MB = 1024 * 1024

SERVICE = r"""
import socket
from gevent.pywsgi import WSGIHandler, WSGIServer

class NoDelay(WSGIHandler):
    # pywsgi writes head and body apart; without this, Nagle meets delayed ACKs (40 ms)
    def __init__(self, sock, *args, **kwargs):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, *args, **kwargs)

BIG = b"x" * (1024 * 1024)

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/upload":
        stream, size = environ["wsgi.input"], 0
        while chunk := stream.read(65536):
            size += len(chunk)
        body = str(size).encode()
    else:
        body = BIG if path == "/big" else b"hello"
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]

server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None, handler_class=NoDelay)
server.init_socket()
print(server.socket.getsockname()[1], flush=True)
server.serve_forever()
"""

PROXY = r"""
import sys
import gevent
from promenade_core.proxy.server import CorsProxy

proxy = CorsProxy("bench", int(sys.argv[1]), int(sys.argv[2]))
proxy.start()
print("ready", flush=True)
gevent.wait()
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    method: bytes
    path: bytes
    body_size: int
    concurrency: int


SCENARIOS = (
    Scenario("small GET", b"GET", b"/small", 0, 1),
    Scenario("small GET", b"GET", b"/small", 4, 4),
    Scenario("1 MB response", b"GET", b"/big", 0, 1),
    Scenario("1 MB request body", b"POST", b"/upload", ONE_MB, 1),
)


def client(port: int, scenario: Scenario, duration: float, warmup: float) -> list[float]:
    """One keep-alive connection: latencies (s) of requests completed after the warm-up."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h11.Connection(h11.CLIENT)
    headers = [(b"Host", f"127.0.0.1:{port}".encode()), (b"Origin", ORIGIN)]
    body = b"b" * scenario.body_size
    if body:
        headers.append((b"Content-Length", str(len(body)).encode()))
    request = h11.Request(method=scenario.method, target=scenario.path, headers=headers)
    latencies: list[float] = []
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + duration
    while (began := time.perf_counter()) < end:
        out = conn.send(request) or b""
        if body:
            out += conn.send(h11.Data(data=body)) or b""
        sock.sendall(out + (conn.send(h11.EndOfMessage()) or b""))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(262144))
            elif isinstance(event, h11.Response) and event.status_code != 200:
                raise SystemExit(f"{scenario.path.decode()} answered {event.status_code}")
            elif isinstance(event, h11.EndOfMessage):
                break
        if began >= measure_from:
            latencies.append(time.perf_counter() - began)
        conn.start_next_cycle()
    sock.close()
    return latencies


def percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def summary(latencies: list[float], duration: float) -> dict:
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def measure(
    pool: ProcessPoolExecutor, ports: dict[str, int], scenario: Scenario, options: Any
) -> dict[str, dict]:
    """Direct and proxied in alternating slices, so both meet the same machine load."""
    latencies: dict[str, list[float]] = {route: [] for route in ports}
    piece = options.duration / options.rounds
    for _ in range(options.rounds):
        for route, port in ports.items():
            futures = [
                pool.submit(client, port, scenario, piece, options.warmup)
                for _ in range(scenario.concurrency)
            ]
            latencies[route] += [x for f in futures for x in f.result()]
    return {route: summary(values, options.duration) for route, values in latencies.items()}


def spawn(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def first_line(proc: subprocess.Popen, what: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line:
        raise SystemExit(f"{what} did not start (exit code {proc.poll()})")
    return line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table(rows: list[dict]) -> str:
    lines = [
        "| scenario | conns | path | req/s | p50 ms | p99 ms | p99 overhead ms |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        overhead = f"{row['overhead_ms']:+.2f}" if "overhead_ms" in row else ""
        lines.append(
            f"| {row['scenario']} | {row['concurrency']} | {row['route']} | {row['rps']:.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {overhead} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=6, help="direct/proxy alternations")
    parser.add_argument("--warmup", type=float, default=0.1, help="seconds per slice")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    options = parser.parse_args()

    children: list[subprocess.Popen] = []
    try:
        service = spawn(SERVICE)
        children.append(service)
        service_port = int(first_line(service, "the service"))
        proxy_port = free_port()
        proxy = spawn(PROXY, str(proxy_port), str(service_port))
        children.append(proxy)
        first_line(proxy, "the proxy")
        rows = []
        ports = {"direct": service_port, "proxy": proxy_port}
        workers = max(s.concurrency for s in SCENARIOS)
        with ProcessPoolExecutor(workers) as pool:
            for scenario in SCENARIOS:
                result = measure(pool, ports, scenario, options)
                base = {"scenario": scenario.name, "concurrency": scenario.concurrency}
                rows.append({**base, "route": "direct", **result["direct"]})
                overhead = result["proxy"]["p99_ms"] - result["direct"]["p99_ms"]
                rows.append({**base, "route": "proxy", **result["proxy"], "overhead_ms": overhead})
    finally:
        for child in children:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    load = os.getloadavg()[0]
    print(
        f"{os.cpu_count()} cores, load {load:.1f}; {options.duration:g} s per route and "
        f"scenario in {options.rounds} alternating slices\n"
    )
    print(table(rows))
    if options.json:
        options.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
