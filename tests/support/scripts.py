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
