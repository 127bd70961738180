"""Tiny programs the tests write into `tmp_path`, and how to run the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


#: Runs `promenade ARGS` for each ARGS given as JSON in argv[1], in one interpreter, and
#: prints {"codes": [...], "loaded": {"ARGS": [packages of argv[2] loaded so far]}}.
CLI_RUNNER = """
import json, sys
from promenade_cli.main import cli
watched = tuple(sys.argv[2].split(","))
codes, loaded = [], {}
for args in json.loads(sys.argv[1]):
    try:
        cli.main(args, prog_name="promenade")
    except SystemExit as exc:
        codes.append(exc.code)
    loaded[" ".join(args)] = sorted({m.split(".")[0] for m in sys.modules} & set(watched))
print(json.dumps({"codes": codes, "loaded": loaded}))
"""


def cli_imports(commands: Sequence[Sequence[str]], watched: Sequence[str], cwd: Path,
                env: dict[str, str]) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run the CLI `commands` one after the other in one fresh interpreter; which of
    the `watched` packages each had loaded by its end (the run itself, for its output).
    A fresh interpreter, since the test process has everything loaded already."""
    done = subprocess.run([sys.executable, "-c", CLI_RUNNER, json.dumps(commands),
                           ",".join(watched)], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done
