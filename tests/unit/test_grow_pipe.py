"""A busy output pipe grows to 1 MiB; a pty, or a closed descriptor, is left alone."""

from __future__ import annotations

import fcntl
import os
import pty
from pathlib import Path

import pytest

from promenade_core.supervise.osproc import BUSY_PIPE_SIZE, grow_pipe


def _max_size() -> int:
    return int(Path("/proc/sys/fs/pipe-max-size").read_text())


@pytest.mark.skipif(_max_size() < BUSY_PIPE_SIZE, reason="this kernel caps pipes lower")
def test_a_pipe_grows_to_one_mebibyte() -> None:
    read, write = os.pipe()
    try:
        assert fcntl.fcntl(read, fcntl.F_GETPIPE_SZ) < BUSY_PIPE_SIZE
        grow_pipe(read)
        assert fcntl.fcntl(read, fcntl.F_GETPIPE_SZ) == BUSY_PIPE_SIZE
    finally:
        os.close(read)
        os.close(write)


def test_a_pty_or_a_closed_descriptor_is_left_as_it_is() -> None:
    master, slave = pty.openpty()
    try:
        grow_pipe(master)   # not a pipe: refused, quietly
    finally:
        os.close(master)
        os.close(slave)
    grow_pipe(master)       # closed: EBADF, quietly
