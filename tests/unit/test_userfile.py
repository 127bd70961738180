"""userfile: what the loader reads must be a regular file under the cap, and asking
never blocks (a FIFO swapped in for the config froze the supervisor for good)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from promenade_core.userfile import (
    MAX_BYTES,
    UnreadableFile,
    folder_problem,
    read_user_file,
)


def test_reads_a_regular_file_and_one_behind_a_symlink(tmp_path: Path) -> None:
    """Dotfile managers link configs into place: a symlink to a regular file is fine."""
    (tmp_path / "real.yaml").write_bytes(b"services: {}\n")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "real.yaml")
    assert read_user_file(tmp_path / "link.yaml") == b"services: {}\n"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: `read_bytes()` blocked for ever."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "fifo")
    for name in ("fifo", "link"):
        with pytest.raises(UnreadableFile, match=r"is a FIFO \(named pipe\), not a regular file"):
            read_user_file(tmp_path / name)


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a device"), ("/", "a folder")])
def test_devices_and_folders_are_refused(path: str, kind: str) -> None:
    """/dev/zero never ends; a folder is no file."""
    with pytest.raises(UnreadableFile, match=f"is {kind}, not a regular file"):
        read_user_file(Path(path))


def test_a_file_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.env"
    with open(big, "wb") as out:
        out.truncate(MAX_BYTES + 1)  # sparse: no 4 MiB written
    with pytest.raises(UnreadableFile, match="the limit is 4,194,304"):
        read_user_file(big)
    assert read_user_file(big, limit=MAX_BYTES + 1) == b"\0" * (MAX_BYTES + 1)


def test_missing_and_through_a_non_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UnreadableFile, match=r"^does not exist\Z"):
        read_user_file(tmp_path / "nope")
    with pytest.raises(UnreadableFile, match="a part of its path is not a folder"):
        read_user_file(tmp_path / "file" / "x.env")
    assert folder_problem(tmp_path) is None
    assert folder_problem(tmp_path / "file") == "is not a folder"
    assert folder_problem(tmp_path / "nope") == "does not exist"
