"""`sudo promenade start`: a private hostsd as root, everything else as $SUDO_USER."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from promenade_core.hosts.privileges import drop_to_sudo_user
from tests.support import wait_for
from tests.support.hostsd import ORIGINAL, Hostsd, Sudo, our_lines

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def sudo() -> Iterator[Sudo]:
    root = Path(tempfile.mkdtemp(prefix="sudo-"))
    root.chmod(0o755)
    s = Sudo(root)
    yield s
    if s.proc and s.proc.poll() is None:
        s.end(signal.SIGKILL)
    shutil.rmtree(root)


@pytest.mark.parametrize("ending", [None, signal.SIGKILL], ids=["exit", "sigkill"])
def test_private_hostsd_as_root_everything_else_as_the_user(
        sudo: Sudo, ending: int | None) -> None:
    out = sudo.run(given=sudo.root / "absent.sock")
    assert out["ids"] == [65534, 65534, 65534]
    assert 0 not in out["groups"]
    assert (out["home"], out["user"]) == ("/nonexistent", "nobody")
    assert out["reply"]["ok"] is True, out
    assert (sudo.workdir / "written").stat().st_uid == 65534, "files are the user's"
    private = Path(out["socket"])
    assert private.parent == sudo.private
    st = private.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (65534, 0o600)
    assert our_lines(sudo.hosts.read_bytes()) == ["127.0.0.1  api.test  # promenade:api"]
    sudo.end(ending)
    wait_for(lambda: not private.exists() and sudo.hosts.read_bytes() == ORIGINAL,
             what="the private hostsd to drop the lease and remove its socket")
    wait_for(lambda: not alive(out["hostsd"]), what="the private hostsd to exit")
    assert list(sudo.private.iterdir()) == []
    assert sudo.warnings == []


def test_a_running_hostsd_is_used_as_it_is(sudo: Sudo, tmp_path: Path) -> None:
    system = Hostsd(sudo.root, sudo.hosts, sudo.root / "system.sock", tmp_path / "state",
                    ["--group", "nogroup"])
    system.start()
    try:
        out = sudo.run(given=system.socket)
        assert out["socket"] == str(system.socket)
        assert out["hostsd"] is None
        assert out["ids"] == [65534, 65534, 65534]
        assert not sudo.private.exists()
        sudo.end()
    finally:
        system.stop()


def test_an_unsafe_private_folder_is_refused_with_a_warning(sudo: Sudo) -> None:
    sudo.private.mkdir(mode=0o777)
    sudo.private.chmod(0o777)
    sudo.proc = None
    env_script = sudo.script.read_text().replace("s.connect(path)", "print(path); sys.exit()")
    sudo.script.write_text(env_script)
    result = subprocess.run(
        [sys.executable, str(sudo.script), str(sudo.hosts), str(sudo.root / "state"),
         str(sudo.private), str(sudo.workdir), "/given.sock"],
        capture_output=True, text=True, timeout=20, check=False,
        env=dict(os.environ, SUDO_USER="nobody", PYTHONPATH=str(Path.cwd())))
    assert "WARN" in result.stdout and "must be a root-owned folder" in result.stdout
    assert result.stdout.strip().endswith("/given.sock")
    assert sudo.hosts.read_bytes() == ORIGINAL


def test_without_sudo_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert drop_to_sudo_user("/x.sock", private_dir="/nonexistent/never") == "/x.sock"
    assert os.geteuid() == 0
