"""Config problems that only another user meets: `config check` run as uid 65534.

Split from tests/unit/test_config.py because these start `promenade` under `setpriv`
(real processes, root only), which the unit tier does not do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": "/"})


def _nobody_can_run_promenade() -> bool:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return False
    return _as_nobody("-c", "import promenade_cli.main").returncode == 0


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder under /tmp that another user can enter (tmp_path's parent is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="pm-cfg-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(not _nobody_can_run_promenade(),
                    reason="needs root, setpriv and a venv that uid 65534 can run")
@pytest.mark.parametrize("target", ["env_file: private/x.env", "directory: private/sub"])
def test_env_file_in_an_unreadable_folder_is_a_problem_not_a_traceback(
    shared_folder: Path, target: str
) -> None:
    """An env_file (or directory) in a folder the user cannot enter raised
    PermissionError out of `Path.is_file()`: `config check` printed a traceback."""
    private = shared_folder / "private"
    (private / "sub").mkdir(parents=True)
    (private / "x.env").write_text("A=1\n")
    private.chmod(0o700)
    config = shared_folder / "promenade.yaml"
    config.write_text(f"services:\n  api: {{command: x, {target}}}\n")
    config.chmod(0o644)
    done = _as_nobody("-m", "promenade_cli", "config", "check", "-c", str(config))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    key = target.split(":")[0]
    assert f"promenade.yaml:2: services.api.{key}: " in done.stderr, done.stderr
    assert "permission denied" in done.stderr.lower(), done.stderr


@pytest.mark.skipif(not _nobody_can_run_promenade(),
                    reason="needs root, setpriv and a venv that uid 65534 can run")
def test_config_in_an_unreadable_folder_is_an_error_not_a_traceback(
    shared_folder: Path,
) -> None:
    """`config check -c private/promenade.yaml` for a folder the user cannot enter: the
    lookup's `Path.is_file()` raised PermissionError, a traceback with exit 1."""
    private = shared_folder / "private"
    private.mkdir(mode=0o700)
    (private / "promenade.yaml").write_text("services: {api: {command: x}}\n")
    done = _as_nobody("-m", "promenade_cli", "config", "check",
                      "-c", str(private / "promenade.yaml"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "permission denied" in done.stderr.lower(), done.stderr
