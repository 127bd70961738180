"""Which runtime folders and manager.json contents a manager and its clients trust."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from promenade_core import runtime
from promenade_core.bus.client import ManagerInfo, endpoint


def fake_stat(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


@pytest.mark.parametrize(("mode", "uid", "why"), [
    (stat.S_IFDIR | 0o700, 1000, None),
    (stat.S_IFDIR | 0o755, 1000, None),
    (stat.S_IFDIR | 0o770, 1000, "is writable by other users (mode 770)"),
    (stat.S_IFDIR | 0o1777, 1000, "is writable by other users (mode 1777)"),
    (stat.S_IFDIR | 0o700, 1001, "belongs to uid 1001, not to you (uid 1000)"),
    (stat.S_IFLNK | 0o777, 1000, "is a symbolic link"),
    (stat.S_IFREG | 0o600, 1000, "is not a folder"),
])
def test_distrust_folders(mode: int, uid: int, why: str | None) -> None:
    assert runtime.distrust(fake_stat(mode, uid), 1000) == why


def test_distrust_files() -> None:
    assert runtime.distrust(fake_stat(stat.S_IFREG | 0o600, 7), 7, folder=False) is None
    assert runtime.distrust(fake_stat(stat.S_IFIFO | 0o600, 7), 7, folder=False) \
        == "is not a regular file"


def test_group_writable_xdg_runtime_dir_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """An XDG_RUNTIME_DIR that others can write to was used as it was."""
    xdg = tmp_path / "run"
    xdg.mkdir()
    xdg.chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    base = runtime.runtime_base(create=True)
    assert base == tmp_path / "tmp" / f"promenade-{os.geteuid()}"
    assert f"XDG_RUNTIME_DIR {xdg} is writable by other users" in capsys.readouterr().err


FOLDER = Path("/run/user/1000/promenade/abc")


@pytest.mark.parametrize("value", [
    f"ipc://{FOLDER}/events", "tcp://127.0.0.1:5555"])
def test_endpoints_in_the_runtime_folder_or_on_loopback(value: str) -> None:
    assert endpoint(value, FOLDER) == value


@pytest.mark.parametrize("value", [
    "ipc:///tmp/evil/events", f"ipc://{FOLDER}/sub/events", "tcp://10.0.0.1:5555",
    "tcp://127.0.0.1:0", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:x", "tcp://*:5555",
    "inproc://x", 3, None, f"ipc://{FOLDER}/events\x1b[2J"])
def test_foreign_endpoints_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        endpoint(value, FOLDER)


GOOD = {"pid": 42, "version": "0.1", "config_path": "/p/promenade.yaml",
        "events": f"ipc://{FOLDER}/events", "control": f"ipc://{FOLDER}/control",
        "dashboard_url": "http://127.0.0.1:8080", "started_at": "2026-01-01T00:00:00.000Z"}


def test_a_manager_json_as_the_manager_writes_it() -> None:
    info = ManagerInfo.from_json(GOOD, FOLDER)
    assert (info.pid, info.control) == (42, GOOD["control"])
    assert info.dashboard_url == GOOD["dashboard_url"]


@pytest.mark.parametrize("change", [
    {"pid": "42"}, {"pid": True}, {"pid": -1}, {"pid": 2**40}, {"config_path": ["x"]},
    {"version": "\x1b]0;pwned\x07"}, {"dashboard_url": "javascript:alert(1)"},
    {"dashboard_url": "http://x\x1b]52;c;cHduZWQ=\x07"}, {"started_at": "\x1b[1A"},
    {"control": "ipc:///tmp/evil"}])
def test_a_hostile_manager_json_is_refused(change: dict[str, object]) -> None:
    """A squatter's manager.json printed escape sequences, spoofed a pid, or made `stop`
    raise on a wrong type; every value is now checked."""
    with pytest.raises((ValueError, KeyError, TypeError)):
        ManagerInfo.from_json({**GOOD, **change}, FOLDER)


@pytest.fixture
def no_xdg_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runtime files under a temp TMPDIR, state under tmp_path; returns the fallback path."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return tmp_path / "tmp" / f"promenade-{os.geteuid()}"


def test_a_free_tmp_fallback_is_created_private(no_xdg_runtime: Path) -> None:
    assert runtime.runtime_base(create=False) is None
    assert runtime.runtime_base(create=True) == no_xdg_runtime
    assert stat.S_IMODE(no_xdg_runtime.stat().st_mode) == 0o700
    assert runtime.runtime_base(create=False) == no_xdg_runtime


@pytest.mark.parametrize("squat", ["symlink", "other-uid"])
def test_a_squatted_tmp_fallback_is_replaced_by_a_recorded_private_folder(
        no_xdg_runtime: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        squat: str) -> None:
    """Another user's /tmp/promenade-<uid> stopped the manager from starting."""
    if squat == "symlink":
        no_xdg_runtime.symlink_to(tmp_path)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to make a folder of another uid")
        no_xdg_runtime.mkdir(mode=0o755)
        os.chown(no_xdg_runtime, 54321, 54321)
    base = runtime.runtime_base(create=True)
    assert base is not None and base != no_xdg_runtime
    assert base.parent == tmp_path / "tmp" and runtime.distrust(base.lstat(), os.geteuid()) is None
    record = tmp_path / "state" / "promenade" / "runtime-dir"
    assert record.read_text() == f"{base}\n"
    assert f"{no_xdg_runtime} " in capsys.readouterr().err
    assert runtime.runtime_base(create=False) == base, "clients find it through the record"
    assert runtime.runtime_base(create=True) == base, "and so does the next manager"
