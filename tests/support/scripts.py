"""Tiny programs the tests write into `tmp_path`, and how to run the CLI."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PROMENADE = [sys.executable, "-m", "promenade_cli"]

STUBBORN = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(600)
"""


def write_script(folder: Path, name: str, body: str) -> Path:
    """Write `body` (dedented) to `folder/name`; return the path."""
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def write_toggle_server(folder: Path, port: int, sick: Path) -> Path:
    """`toggle.py`: an HTTP server on `port` that answers 500 while the file `sick`
    exists and 200 otherwise (a health endpoint a test can break and mend)."""
    return write_script(folder, "toggle.py", f"""
        import http.server, os
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(500 if os.path.exists({str(sick)!r}) else 200)
                self.end_headers()
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", {port}), H).serve_forever()
    """)
