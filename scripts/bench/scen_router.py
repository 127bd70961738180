"""What the router costs: the same backend straight over HTTP, straight over HTTPS,
through Promenade's router by name (HTTPS, SNI) and through Caddy by name (its internal
TLS), in one run, alternating.

    .venv/bin/python scripts/bench/scen_router.py [--seconds 2] [--rounds 4] [--json OUT]

`bench.py` calls `router(ctx, ...)`, which runs this file as a script in the project's
Python (the bench's own Python has neither promenade_core nor h11). The script gives the
router private runtime folders, CA and fallback ports (as tests/support/router.py does),
registers one name on a control connection and holds it for the run; the router, the
backend and Caddy are killed at the end whatever happened.

Measured per route: small GET p50/p99 over one keep-alive connection, requests/s with
CONCURRENCY keep-alive connections (each a process of its own), and MB/s of a large
download. Routes alternate in short slices, so all meet the same machine load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NAME = "web.bench.localhost"
CONCURRENCY = 4
MB = 1024 * 1024

#: Labels of the routes, in the order of the table's columns.
ROUTES = {
    "direct-http": "direct HTTP",
    "direct-https": "direct HTTPS",
    "router": "**router**",
    "caddy": "Caddy",
}

#: One gevent process, two listeners on the same app: plain HTTP and HTTPS (argv: cert,
#: key). `/small` says hello; `/big?N` sends N bytes in 1 MiB chunks.
BACKEND = r"""
import socket, sys
import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

class NoDelay(WSGIHandler):
    # pywsgi writes head and body apart; without this, Nagle meets delayed ACKs (40 ms)
    def __init__(self, sock, *args, **kwargs):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, *args, **kwargs)

CHUNK = b"x" * (1024 * 1024)

def app(environ, start_response):
    if environ["PATH_INFO"] == "/big":
        size = int(environ.get("QUERY_STRING") or 0)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return (CHUNK[:min(len(CHUNK), size - at)] for at in range(0, size, len(CHUNK)))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]

plain = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None, handler_class=NoDelay)
tls = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None, handler_class=NoDelay,
                 certfile=sys.argv[1], keyfile=sys.argv[2])
plain.init_socket()
tls.init_socket()
plain.start()
tls.start()
print(plain.socket.getsockname()[1], tls.socket.getsockname()[1], flush=True)
gevent.wait()
"""

CADDYFILE = """{{
\tadmin off
\tlocal_certs
\tskip_install_trust
\tauto_https disable_redirects
\thttp_port {http_port}
\thttps_port {https_port}
\tstorage file_system {storage}
}}

{name}:{https_port} {{
\ttls internal
\treverse_proxy 127.0.0.1:{backend}
}}
"""


@dataclass(frozen=True)
class Target:
    """Where a client connects; `sni` None means plain HTTP."""

    port: int
    sni: str | None
    cafile: str | None  # None with an SNI: accept any certificate (Caddy's own CA)


@dataclass(frozen=True)
class Load:
    path: bytes
    connections: int


# ---- pure: numbers from samples -------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def latency_summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {}
    return {"p50_ms": percentile(ordered, 50) * 1000, "p99_ms": percentile(ordered, 99) * 1000,
            "rps": len(ordered) / seconds}


def ratios(results: dict[str, dict[str, Any]], base: str, over: str) -> dict[str, float]:
    """`over`'s metrics divided by `base`'s, for the metrics both have (above 1 is slower
    for times, faster for rates)."""
    a, b = results.get(over, {}), results.get(base, {})
    return {k: a[k] / b[k] for k in a if isinstance(a[k], float) and b.get(k)}


# ---- the client: one keep-alive connection per process --------------------------------


def _connect(target: Target) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", target.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if target.sni is None:
        return sock
    context = ssl.create_default_context(cafile=target.cafile)
    if target.cafile is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=target.sni)


def client(target: Target, path: bytes, seconds: float, warmup: float) -> tuple[list[float], int]:
    """Requests back to back for `warmup + seconds`: the latencies (s) and body bytes of
    those that started after the warm-up."""
    import h11  # the project's venv has it; the bench's own Python does not import this

    sock = _connect(target)
    conn = h11.Connection(h11.CLIENT)
    host = (target.sni or "127.0.0.1").encode() + b":%d" % target.port
    request = h11.Request(method="GET", target=path, headers=[(b"Host", host)])
    latencies: list[float] = []
    received = 0
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds
    while (began := time.perf_counter()) < end:
        sock.sendall((conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(262144))
            elif isinstance(event, h11.Response) and event.status_code != 200:
                raise RuntimeError(f"{path.decode()} on port {target.port} answered "
                                   f"{event.status_code}")
            elif isinstance(event, h11.Data):
                size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise RuntimeError(f"port {target.port} closed the connection")
        if began >= measure_from:
            latencies.append(time.perf_counter() - began)
            received += size
        conn.start_next_cycle()
    sock.close()
    return latencies, received


def measure(pool: ProcessPoolExecutor, targets: dict[str, Target], load: Load,
            seconds: float, rounds: int, warmup: float) -> dict[str, dict[str, float]]:
    """Every route in alternating slices; the latencies and bytes of all its slices."""
    latencies: dict[str, list[float]] = {route: [] for route in targets}
    received = dict.fromkeys(targets, 0)
    piece = seconds / rounds
    for _ in range(rounds):
        for route, target in targets.items():
            futures = [pool.submit(client, target, load.path, piece, warmup)
                       for _ in range(load.connections)]
            for future in futures:
                values, size = future.result()
                latencies[route] += values
                received[route] += size
    out = {}
    for route in targets:
        summary = latency_summary(latencies[route], seconds)
        # a download that began in the window runs past it: bytes over the time they took
        busy = sum(latencies[route]) / load.connections
        summary["mb_s"] = received[route] / MB / busy if busy else 0.0
        out[route] = summary
    return out


def measure_all(targets: dict[str, Target], seconds: float, rounds: int, big_mb: int
                ) -> dict[str, dict[str, float]]:
    """The three loads; one dict of metrics per route."""
    warmup = min(0.2, seconds / rounds / 4)
    results: dict[str, dict[str, float]] = {route: {} for route in targets}
    with ProcessPoolExecutor(CONCURRENCY) as pool:
        small = measure(pool, targets, Load(b"/small", 1), seconds, rounds, warmup)
        many = measure(pool, targets, Load(b"/small", CONCURRENCY), seconds, rounds, warmup)
        big = measure(pool, targets, Load(b"/big?%d" % (big_mb * MB), 1), seconds, rounds,
                      warmup)
    for route in targets:
        results[route] = {
            "small_p50_ms": small[route]["p50_ms"], "small_p99_ms": small[route]["p99_ms"],
            "small_rps": small[route]["rps"], "concurrent_rps": many[route]["rps"],
            "download_mb_s": big[route]["mb_s"],
        }
    return results


# ---- the processes: backend, router, Caddy --------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(target: Target) -> bool:
    try:
        _connect(target).close()
    except OSError:
        return False
    return True


def wait_until(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:g} s")
        time.sleep(0.05)


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "backend.pem", folder / "backend.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def private_router_env(root: Path) -> None:
    """This process's environment points the router at folders and ports of its own."""
    for var, short in (("XDG_RUNTIME_DIR", "run"), ("XDG_DATA_HOME", "data"),
                       ("XDG_STATE_HOME", "state"), ("HOME", "home")):
        (root / short).mkdir(mode=0o700)
        os.environ[var] = str(root / short)
    os.environ["PROMENADE_ROUTER_HTTPS_PORT"] = str(free_port())
    os.environ["PROMENADE_ROUTER_HTTP_PORT"] = str(free_port())
    os.environ["PROMENADE_HOSTSD_SOCKET"] = str(root / "no-hostsd.sock")


class Stack:
    """Everything the run starts, killed by `close()` (called from a `finally`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.router_pid: int | None = None
        self.control: socket.socket | None = None

    def backend(self) -> tuple[int, int]:
        cert, key = self_signed(self.root)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-c", BACKEND, str(cert), str(key)],
                                stdout=subprocess.PIPE, env=env, start_new_session=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().split()
        if len(line) != 2:
            raise RuntimeError(f"the backend did not start (exit code {proc.poll()})")
        return int(line[0]), int(line[1])

    def router(self, backend: int) -> Target:
        from promenade_core.router.launch import ensure_router, request

        info = ensure_router()
        self.router_pid = int(request(info.socket_path, {"op": "info"})["pid"])
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control.settimeout(10)
        self.control.connect(str(info.socket_path))
        stream = self.control.makefile("rb")
        route = {"name": NAME, "port": backend, "service": "web", "status": "running",
                 "status_reason": None, "tls": True}
        for message in ({"op": "hello", "pid": os.getpid(), "project": "bench", "version": 1},
                        {"op": "routes", "routes": [route]}):
            self.control.sendall(json.dumps(message).encode() + b"\n")
            reply = json.loads(stream.readline() or b"{}")
            if not reply.get("ok"):
                raise RuntimeError(f"the router refused {message['op']}: {reply}")
        ca = Path(os.environ["XDG_DATA_HOME"]) / "promenade" / "ca" / "ca.pem"
        return Target(info.https_port, NAME, str(ca))

    def caddy(self, backend: int) -> Target | None:
        exe = shutil.which("caddy")
        if exe is None:
            return None
        port = free_port()
        config = self.root / "Caddyfile"
        config.write_text(CADDYFILE.format(http_port=free_port(), https_port=port, name=NAME,
                                           storage=self.root / "caddy", backend=backend))
        log = open(self.root / "caddy.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([exe, "run", "--config", str(config), "--adapter", "caddyfile"],
                                stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "HOME": str(self.root / "home")})
        log.close()
        self.procs.append(proc)
        target = Target(port, NAME, None)
        try:
            wait_until(lambda: proc.poll() is None and accepts(target), "caddy")
        except RuntimeError as exc:
            tail = (self.root / "caddy.log").read_bytes()[-600:].decode(errors="replace")
            raise RuntimeError(f"{exc}; its log says: {tail}") from None
        return target

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self.router_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.router_pid, signal.SIGKILL)


def caddy_version() -> str | None:
    exe = shutil.which("caddy")
    if exe is None:
        return None
    out = subprocess.run([exe, "version"], capture_output=True, text=True).stdout.split()
    return out[0] if out else None


def run(seconds: float, rounds: int, big_mb: int, peers: bool) -> dict[str, Any]:
    """Starts everything in a temp folder, measures, kills everything."""
    root = Path(tempfile.mkdtemp(prefix="prom-rb-"))
    private_router_env(root)
    stack = Stack(root)
    try:
        plain, tls = stack.backend()
        targets = {
            "direct-http": Target(plain, None, None),
            "direct-https": Target(tls, "localhost", None),
            "router": stack.router(plain),
        }
        notes = []
        if peers:
            caddy = stack.caddy(plain)
            if caddy is None:
                notes.append("caddy is not installed (apt-get install caddy): no peer")
            else:
                targets["caddy"] = caddy
        for route, target in targets.items():
            wait_until(lambda t=target: accepts(t), route)
        results = measure_all(targets, seconds, rounds, big_mb)
        version = caddy_version() if "caddy" in targets else None  # writes to its HOME
    finally:
        stack.close()
        shutil.rmtree(root, ignore_errors=True)
    return {"routes": results, "notes": notes, "caddy": version,
            "seconds": seconds, "rounds": rounds, "big_mb": big_mb,
            "concurrency": CONCURRENCY}


# ---- called by bench.py ------------------------------------------------------------------


def router(ctx: Any, seconds: float, big_mb: int, peers: bool) -> dict[str, Any]:
    """One measurement, in the project's Python; its `routes` dict, or an `error`."""
    if ctx.observer_python is None:
        return {"error": "no project Python (--observer-python) to run the router in"}
    out = ctx.work / "router.json"
    command = [ctx.observer_python, str(Path(__file__)), "--seconds", str(seconds),
               "--rounds", "2" if seconds < 1 else "4", "--big-mb", str(big_mb),
               "--json", str(out)] + ([] if peers else ["--no-peers"])
    proc = subprocess.run(command, capture_output=True, text=True,
                          timeout=120 + 20 * seconds)
    if proc.returncode != 0:
        return {"error": f"scen_router.py exited {proc.returncode}: {proc.stderr[-800:]}"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per metric, one column per route, then the router's ratios."""
    routes = [r for r in ROUTES if r in result["routes"]]
    rows = [
        ("small_p50_ms", "Small GET, 1 keep-alive connection: p50 (ms)", "{:.3f}"),
        ("small_p99_ms", "Small GET, 1 keep-alive connection: p99 (ms)", "{:.3f}"),
        ("small_rps", "Small GET, 1 connection: requests/s", "{:,.0f}"),
        ("concurrent_rps", f"Small GET, {result['concurrency']} connections: requests/s",
         "{:,.0f}"),
        ("download_mb_s", f"Download of {result['big_mb']} MB: MB/s", "{:,.0f}"),
    ]
    against = [r for r in ("direct-http", "direct-https", "caddy") if r in routes]
    header = ["Router benchmark", *[ROUTES[r] for r in routes],
              *[f"router / {ROUTES[r]}" for r in against]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_ratio = {r: ratios(result["routes"], r, "router") for r in against}
    for key, label, fmt in rows:
        cells = [fmt.format(result["routes"][r][key]) for r in routes]
        ratio_cells = [f"{by_ratio[r][key]:.2f}" if key in by_ratio[r] else "" for r in against]
        lines.append("| " + " | ".join([label, *cells, *ratio_cells]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per route and load")
    parser.add_argument("--rounds", type=int, default=4, help="route alternations")
    parser.add_argument("--big-mb", type=int, default=64, help="size of the download")
    parser.add_argument("--no-peers", action="store_true", help="leave Caddy out")
    parser.add_argument("--json", type=Path, help="also write the result here")
    options = parser.parse_args()
    load = os.getloadavg()
    result = run(options.seconds, options.rounds, options.big_mb, not options.no_peers)
    result["load"] = [load[0], os.getloadavg()[0]]
    if options.json:
        options.json.write_text(json.dumps(result, indent=1))
    print(f"{os.cpu_count()} cores, load {load[0]:.1f} at start; {options.seconds:g} s per "
          f"route and load in {options.rounds} alternating slices; Caddy "
          f"{result['caddy'] or 'not run'}\n")
    print(table(result))
    for note in result["notes"]:
        print(f"\nnote: {note}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
