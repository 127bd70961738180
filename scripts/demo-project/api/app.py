"""The demo's JSON API: a tiny Flask app with a health check and two endpoints.

It deliberately sends no CORS headers: the demo's static site reaches it through
Promenade's CORS proxy (`cors_proxy: true` in promenade.yaml), which adds them.

Run by hand: `python app.py --port 5301` (DEMO_API_WARMUP=0 skips the warm-up).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from flask import Flask, Response, jsonify, request

GREEN, YELLOW, RED, DIM, RESET = "\033[32m", "\033[33m", "\033[31m", "\033[2m", "\033[0m"


def create_app() -> Flask:
    app = Flask(__name__)
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    hits: Counter[str] = Counter()

    def uptime() -> float:
        return round(time.monotonic() - started, 1)

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok", uptime_seconds=uptime())

    @app.get("/api/hello")
    def hello() -> Response:
        name = request.args.get("name", "world")[:40]
        return jsonify(message=f"Hello, {name}!", pid=os.getpid(), time=_now())

    @app.get("/api/stats")
    def stats() -> Response:
        return jsonify(
            requests=sum(hits.values()),
            by_path=dict(hits),
            started_at=started_at,
            uptime_seconds=uptime(),
        )

    @app.errorhandler(404)
    def not_found(_error: Exception) -> tuple[Response, int]:
        return jsonify(error=f"no route {request.path!r}; try /api/hello or /api/stats"), 404

    @app.after_request
    def log_request(response: Response) -> Response:
        # The ready check calls /health every second; logging it would drown the rest.
        if request.path != "/health":
            hits[request.path] += 1
            _log_line(request.method, request.path, response.status_code, request.headers)
        return response

    return app


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _log_line(method: str, path: str, status: int, headers: Any) -> None:
    colour = GREEN if status < 400 else YELLOW if status < 500 else RED
    origin = headers.get("Origin")
    via = f" {DIM}(origin {origin}){RESET}" if origin else ""
    print(f"{method} {path} {colour}{status}{RESET}{via}", flush=True)


def _stop(_signum: int, _frame: object) -> None:
    print("api: SIGTERM received, shutting down", flush=True)
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5301")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _stop)
    # Werkzeug logs every request on stderr; this app logs its own on stdout instead.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    warmup = float(os.environ.get("DEMO_API_WARMUP", "2"))
    if warmup > 0:
        print(f"api: warming up the cache ({warmup:g} s) before listening", flush=True)
        time.sleep(warmup)
    print(f"api: listening on http://{args.host}:{args.port}", flush=True)
    create_app().run(host=args.host, port=args.port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
