"""`promenade init` with real processes: the starter and a converted Procfile pass
`promenade config check`, and a converted Procfile runs under a real manager with each
`$PORT` process listening on the port foreman and honcho would have given it."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.support import PROMENADE, free_port, wait_for
from tests.support.manager import Manager


def promenade(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(folder)}
    return subprocess.run([*PROMENADE, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=60)


def test_init_then_config_check(tmp_path: Path) -> None:
    created = promenade(tmp_path, "init")
    assert created.returncode == 0, created.stderr
    check = promenade(tmp_path, "config", "check")
    assert check.returncode == 0, check.stderr
    assert check.stdout == f"{tmp_path / 'promenade.yaml'}: ok (1 services)\n"
    again = promenade(tmp_path, "init")
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_a_converted_procfile_runs(tmp_path: Path,
                                   manager: Callable[..., Manager]) -> None:
    """`.env`'s PORT is honcho's base port (web, second, gets base + 100); Promenade
    reads that `.env` too, and the web process must still get its own port as PORT."""
    web_port = free_port()
    (tmp_path / ".env").write_text(f"PORT={web_port - 100}\nGREETING=hello\n")
    (tmp_path / "Procfile").write_text(
        "# converted by the test\n"
        "release: echo released $GREETING\n"
        f"web: {sys.executable} -m http.server $PORT --bind 127.0.0.1\n"
        "bad line\n")
    converted = promenade(tmp_path, "init", "--from", "Procfile", "-c", "converted.yaml")
    assert converted.returncode == 0, converted.stderr
    assert f"  web: port {web_port} (its command uses $PORT)" in converted.stdout
    assert converted.stderr == ("Warning: Procfile:4: skipped 'bad line': not "
                                "`name: command`\n")
    check = promenade(tmp_path, "config", "check", "-c", "converted.yaml")
    assert check.returncode == 0, check.stderr

    m = manager((tmp_path / "converted.yaml").read_text())
    m.wait_status("web", "running")
    m.wait_lines("release", ["released hello"])

    def answers() -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=2) as reply:
            return int(reply.status)

    assert wait_for(answers, 15, f"the web process on port {web_port}") == 200
