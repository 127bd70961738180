"""Attacks on `sudo promenade start` and on the shared /tmp fallback, run for real.

Root runs `promenade start` with `SUDO_USER=nobody` (as sudo leaves it) against a home
folder that belongs to nobody; a squatter (another uid) creates the /tmp fallback first.
The victim's processes need a Python they can execute: the project's venv lives under
/root (0700), so a world-readable venv is built once per session (see `user_python`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from promenade_core import runtime
from promenade_core.supervise import osproc
from tests.support import ROOT, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs as sudo would)")

NOBODY = 65534
SQUATTER = 54321
ESC = "\x1b"


@pytest.fixture(scope="session")
def user_python() -> Iterator[str]:
    """A Python with promenade installed (non-editable) that any user can execute."""
    base = Path(tempfile.mkdtemp(prefix="pm-venv-"))
    try:
        base.chmod(0o755)
        source = base / "src"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
            ".venv", "build", "*.egg-info", "__pycache__", ".git", "tests", "*_cache"))
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(base / "venv")], check=True,
                       capture_output=True, timeout=300)
        subprocess.run([str(base / "venv/bin/pip"), "install", "-q", str(source)],
                       check=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not build a venv that another user can run: {exc}")
    yield str(base / "venv/bin/python")
    shutil.rmtree(base, ignore_errors=True)


class UserHome:
    """A home folder, state folder and temp folder that belong to nobody."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.root = Path(tempfile.mkdtemp(prefix="pm-home-"))
        self.root.chmod(0o755)
        self.home = self.root / "home"
        self.tmp = self.root / "tmp"  # TMPDIR: the /tmp fallback, without the real /tmp
        self.home.mkdir()
        self.tmp.mkdir()
        self.tmp.chmod(0o1777)
        os.chown(self.home, NOBODY, NOBODY)
        self.config = self.home / "promenade.yaml"
        self.pids: list[int] = []

    def write_config(self, text: str) -> None:
        self.config.write_text(textwrap.dedent(text))
        os.chown(self.config, NOBODY, NOBODY)

    def user_dir(self, path: Path) -> Path:
        """Create `path` (and its parents under home) as nobody's."""
        path.mkdir(parents=True, exist_ok=True)
        while path != self.home:
            os.chown(path, NOBODY, NOBODY)
            path = path.parent
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("XDG_", "PYTHON", "VIRTUAL_ENV"))}
        env.update({"HOME": str(self.home), "XDG_STATE_HOME": str(self.home / "state"),
                    "TMPDIR": str(self.tmp),
                    "PROMENADE_HOSTSD_SOCKET": str(self.root / "none.sock"), **extra})
        return env

    def sudo(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """`sudo promenade ARGS` as sudo runs it: root, with SUDO_USER/UID/GID set."""
        env = self.env(SUDO_USER="nobody", SUDO_UID=str(NOBODY), SUDO_GID=str(NOBODY),
                       HOME="/root")
        return self._run(args, env, [], timeout)

    def as_user(self, *args: str, uid: int = NOBODY, timeout: float = 90,
                ) -> subprocess.CompletedProcess[str]:
        """`promenade ARGS` run by the user (uid) themselves, without sudo."""
        prefix = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        return self._run(args, self.env(), prefix, timeout)

    def _run(self, args: tuple[str, ...], env: dict[str, str], prefix: list[str],
             timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, self.python, "-m", "promenade_cli", *args,
                               "-c", str(self.config)], env=env, cwd=self.home,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def root_owned_in_home(self) -> list[str]:
        return [str(p) for p in [self.home, *self.home.rglob("*")]
                if p.lstat().st_uid != NOBODY]

    def cleanup(self) -> None:
        instance = runtime.instance_id(self.config)
        with contextlib.suppress(subprocess.SubprocessError):
            self.as_user("stop", timeout=60)
        osproc.kill_pids([pid for pid, _, _ in osproc.find_leftovers(instance)],
                         signal.SIGKILL)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def user(user_python: str) -> Iterator[UserHome]:
    home = UserHome(user_python)
    yield home
    home.cleanup()


CONFIG = """
    manager: {hosts_management: disabled}
    services:
      worker: {command: "sleep 300"}
"""


@pytest.fixture
def root_file() -> Iterator[Path]:
    """A file only root may change, as /etc/passwd would be."""
    folder = Path(tempfile.mkdtemp(prefix="pm-rootonly-"))
    folder.chmod(0o755)
    target = folder / "passwd"
    target.write_text("root:x:0:0:root:/root:/bin/bash\n")
    target.chmod(0o644)
    yield target
    shutil.rmtree(folder)


@pytest.mark.parametrize("planted", ["log", "folder"])
def test_sudo_daemon_does_not_follow_planted_symlink(
        user: UserHome, root_file: Path, planted: str) -> None:
    """`sudo promenade start -d` created, chowned and appended to `manager.log` as root,
    following a symlink the user planted there: `ln -s /etc/passwd …/manager.log` made
    /etc/passwd the user's. The daemon's error output is `daemon.out` now (emptied at
    each start: a followed symlink would truncate the target)."""
    user.write_config(CONFIG)
    instance = user.home / "state" / "promenade" / runtime.instance_id(user.config)
    before = root_file.read_bytes()
    if planted == "log":
        user.user_dir(instance)
        (instance / "daemon.out").symlink_to(root_file)
        os.lchown(instance / "daemon.out", NOBODY, NOBODY)
    else:
        user.user_dir(instance.parent)
        instance.symlink_to(root_file.parent)
        os.lchown(instance, NOBODY, NOBODY)
    result = user.sudo("start", "-d", "--no-ui")
    assert root_file.read_bytes() == before
    st = root_file.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)
    assert sorted(p.name for p in root_file.parent.iterdir()) == ["passwd"]
    assert user.root_owned_in_home() == []
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert "symbolic link" in result.stderr or "permission denied" in result.stderr.lower(), result


def test_sudo_daemon_runs_as_the_user_and_creates_nothing_as_root(user: UserHome) -> None:
    """The daemon's log and every folder on the way are the user's, created by the user;
    the manager and its services run as the user."""
    user.write_config(CONFIG)
    result = user.sudo("start", "-d", "--no-ui")
    assert result.returncode == 0, result
    logs = Path(re.search(r"^logs: (.+) \(promenade logs\)$", result.stdout,
                          re.M).group(1))  # type: ignore[union-attr]
    assert logs.is_relative_to(user.home / "state")
    assert user.root_owned_in_home() == []
    assert stat.S_IMODE((logs.parent / "daemon.out").stat().st_mode) == 0o600
    status = user.as_user("status", "--json")
    assert status.returncode == 0, status
    doc = json.loads(status.stdout)
    user.pids.append(doc["manager_pid"])
    assert Path(f"/proc/{doc['manager_pid']}").stat().st_uid == NOBODY
    worker = doc["services"]["worker"]
    wait_for(lambda: Path(f"/proc/{worker['pid']}").stat().st_uid == NOBODY, 10,
             "the service to run as nobody")
    assert user.as_user("stop").returncode == 0


def test_sudo_start_reads_env_file_as_the_user(user: UserHome, root_file: Path) -> None:
    """`sudo promenade start` read `env_file` (and the config) as root and quoted its
    lines in errors: `env_file: /etc/shadow` printed a password hash."""
    root_file.write_text("root:$6$salt$SECRETHASHVALUE:19000:0:99999:7:::\n")
    root_file.chmod(0o600)
    user.write_config(f"""
        manager: {{hosts_management: disabled}}
        services:
          worker: {{command: "sleep 300", env_file: {root_file}}}
    """)
    for args in (("start", "--no-ui"), ("start", "-d", "--no-ui")):
        result = user.sudo(*args)
        assert "SECRETHASHVALUE" not in result.stdout + result.stderr, args
        assert result.returncode == 2, (args, result)
        assert "permission denied" in result.stderr.lower(), result
        assert "Traceback" not in result.stderr
    assert user.root_owned_in_home() == []


def test_sudo_start_does_not_read_a_root_only_config(user: UserHome, root_file: Path) -> None:
    """A config named with `-c` is read as the user: a root-only file is refused, not
    parsed (and quoted) by root."""
    root_file.write_text("services: {x: {command: SECRETHASHVALUE}\n")
    root_file.chmod(0o600)
    result = subprocess.run(
        [user.python, "-m", "promenade_cli", "start", "-d", "-c", str(root_file)],
        env=user.env(SUDO_USER="nobody", SUDO_UID=str(NOBODY), SUDO_GID=str(NOBODY)),
        cwd=user.home, capture_output=True, text=True, timeout=60, check=False)
    assert "SECRETHASHVALUE" not in result.stdout + result.stderr
    assert result.returncode == 2, result
    assert "permission denied" in result.stderr.lower()


def _squat(user: UserHome) -> tuple[Path, int]:
    """Another uid creates the victim's /tmp fallback first, with a hostile manager.json
    whose lock it holds; returns the folder and the lock's descriptor."""
    squat = user.tmp / f"promenade-{NOBODY}"
    folder = squat / runtime.instance_id(user.config)
    folder.mkdir(parents=True)
    hostile = {"pid": os.getpid(), "version": f"{ESC}]0;pwned{ESC}\\",
               "config_path": f"{ESC}[2J{ESC}[31mSPOOFED", "events": "ipc:///tmp/evil-events",
               "control": "ipc:///tmp/evil-control",
               "dashboard_url": f"http://evil{ESC}]52;c;cHduZWQ={ESC}\\",
               "started_at": f"{ESC}[1A"}
    (folder / "manager.json").write_text(json.dumps(hostile))
    lock = folder / "lock"
    lock.write_text("")
    for path in (squat, folder, folder / "manager.json", lock):
        os.chown(path, SQUATTER, SQUATTER)
    squat.chmod(0o755)
    lock.chmod(0o666)
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return squat, fd


def test_squatted_tmp_fallback_is_not_trusted(user: UserHome) -> None:
    """Another user who created /tmp/promenade-<uid> first stopped the victim from
    starting, and the CLI trusted their manager.json: spoofed status, escape sequences
    on the terminal, a fake "already running", a traceback on `stop`."""
    user.write_config(CONFIG)
    squat, lock_fd = _squat(user)
    try:
        before = user.as_user("status")
        assert before.returncode == 3, before
        assert ESC not in before.stdout + before.stderr
        assert "Traceback" not in before.stderr
        assert f"uid {SQUATTER}" in before.stderr, "says what was wrong"
        started = user.as_user("start", "-d", "--no-ui")
        assert started.returncode == 0, started
        assert ESC not in started.stdout + started.stderr
        assert str(squat) in started.stderr and f"uid {SQUATTER}" in started.stderr
        status = user.as_user("status", "--json")
        assert status.returncode == 0, status
        assert ESC not in status.stdout + status.stderr
        doc = json.loads(status.stdout)
        user.pids.append(doc["manager_pid"])
        assert doc["config_path"] == str(user.config)
        assert doc["manager_pid"] != os.getpid()
        stopped = user.as_user("stop")
        assert stopped.returncode == 0, stopped
        assert ESC not in stopped.stdout + stopped.stderr and "Traceback" not in stopped.stderr
        assert user.as_user("status").returncode == 3
        assert (squat / runtime.instance_id(user.config) / "manager.json").exists(), \
            "the squatter's files are left alone"
    finally:
        os.close(lock_fd)


def test_sudo_start_does_not_probe_the_configured_hostsd_socket_as_root() -> None:
    """`sudo promenade start` connected as root to `manager.hostsd_socket` (a path from
    the user's config or environment) to see whether hostsd answers: a confused deputy
    reaching sockets only root may use. The probe now runs as the user."""
    from tests.support.hostsd import Sudo

    folder = Path(tempfile.mkdtemp(prefix="pm-rootsock-"))
    folder.chmod(0o700)
    given = folder / "root-only.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(given))
    listener.listen()
    listener.settimeout(0.1)
    peers: list[int] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                peers.append(struct.unpack("3i", creds)[1])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    root = Path(tempfile.mkdtemp(prefix="sudo-"))
    root.chmod(0o755)
    sudo = Sudo(root)
    try:
        out = sudo.run(given=given)
        assert out["ids"] == [NOBODY, NOBODY, NOBODY]
        assert out["socket"] != str(given), "the user cannot reach it: a private hostsd"
        assert out["reply"]["ok"] is True
        sudo.end()
    finally:
        if sudo.proc and sudo.proc.poll() is None:
            sudo.end(signal.SIGKILL)
        done.set()
        thread.join(5)
        listener.close()
        shutil.rmtree(root)
        shutil.rmtree(folder)
    assert peers == [], "nothing connected to the configured socket as root"
