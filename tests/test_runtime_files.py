"""What `start -d`, `config path` and a clean stop leave, and how bad input is told."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from promenade_core import runtime
from tests.support import PROMENADE, Manager, isolated_env

CONFIG = """
    services:
      worker: {command: "sleep 60"}
"""


def test_daemon_start_with_invalid_config_exits_2(tmp_path: Path) -> None:
    """`promenade start -d` with an invalid config exited 1 (the child's failure) instead
    of 2: the config is validated before anything is forked."""
    m = Manager(tmp_path, "services:\n  api: {command: 42, depends_on: [nope]}\n")
    try:
        out = m.cli("start", "-d", "--no-ui")
        assert out.returncode == 2, out
        assert "depends_on" in out.stderr and "unknown service 'nope'" in out.stderr
        assert "manager exited" not in out.stderr, "nothing was forked"
        assert not (tmp_path / "state" / "promenade").exists()
    finally:
        m.cleanup()


def test_config_path_of_a_missing_file_prints_it(tmp_path: Path) -> None:
    """`promenade config path -c missing.yaml` failed with "does not exist" instead of
    printing the path it resolves to."""
    out = subprocess.run([*PROMENADE, "config", "path", "-c", "missing.yaml"], cwd=tmp_path,
                         env=isolated_env(tmp_path), capture_output=True, text=True,
                         timeout=60, check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"{tmp_path / 'missing.yaml'}\n", "")


def test_clean_stop_leaves_no_stale_sockets_or_lock(tmp_path: Path) -> None:
    """A clean stop left the `events` and `control` ipc sockets and the `lock` file in
    the runtime folder."""
    m = Manager(tmp_path, CONFIG)
    try:
        out = m.cli("start", "-d", "--no-ui")
        assert out.returncode == 0, out
        info = m.info()
        assert info is not None
        folder = info.runtime_dir
        assert {"events", "control", "lock", "manager.json"} <= {p.name for p in folder.iterdir()}
        stopped = m.cli("stop")
        assert stopped.returncode == 0, stopped
        assert sorted(p.name for p in folder.iterdir()) == []
        again = m.cli("start", "-d", "--no-ui")
        assert again.returncode == 0, again
        assert m.cli("stop").returncode == 0
    finally:
        m.cleanup()


def test_status_ignores_a_hostile_manager_json_in_its_own_folder(tmp_path: Path) -> None:
    """A manager.json with escape sequences, a foreign endpoint or a wrong type made the
    CLI print them or raise; now it is not a manager: exit 3, no traceback."""
    m = Manager(tmp_path, CONFIG)
    env = m.env
    folder = Path(env["XDG_RUNTIME_DIR"]) / "promenade" / runtime.instance_id(m.path)
    folder.mkdir(parents=True, mode=0o700)
    (folder / "lock").touch(mode=0o600)
    held = os.open(folder / "lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # as if a manager were running
    pid, ipc = os.getpid(), f"ipc://{folder}"
    bad = [
        f'{{"pid": "{pid}", "config_path": "x", "events": "{ipc}/events", "control": 3}}',
        f'{{"pid": {pid}, "config_path": "\\u001b]0;pwned\\u0007", "events": "{ipc}/events",'
        f' "control": "{ipc}/control", "dashboard_url": null}}',
        f'{{"pid": {pid}, "config_path": "x", "events": "ipc:///tmp/evil/events",'
        ' "control": "tcp://10.0.0.1:1", "dashboard_url": null}',
        "[1, 2]", "{" * 100_000, "not json",
    ]
    try:
        for text in bad:
            (folder / "manager.json").write_text(text)
            out = m.cli("status")
            assert out.returncode == 3, (text[:80], out)
            assert "\x1b" not in out.stdout + out.stderr and "Traceback" not in out.stderr
    finally:
        os.close(held)
