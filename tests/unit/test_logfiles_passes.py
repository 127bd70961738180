"""The log-file writer's drain works in passes of about PASS_BYTES.

A flood that outruns the writer's thread (it waits for the GIL while the hub reads)
used to be gathered whole and joined into one bytes object per service before the first
write: a 20 MB queue cost 20 MB more at the peak (scripts/bench/memprofile.py, the
memory scenario). Each pass now writes what it gathered once it reaches PASS_BYTES;
every line still lands once, in order, in its service's file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from promenade_core import logread
from promenade_core.config.model import LogFiles
from promenade_core.logread import Query
from promenade_core.supervise import logfiles
from promenade_core.supervise.logfiles import LogFileWriter

STAMP = "2024-01-15T10:00:00.000Z"


def test_a_long_queue_is_written_in_bounded_passes_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfiles, "PASS_BYTES", 1000)
    writes: list[tuple[str, int]] = []
    append = LogFileWriter._append

    def counting(self: LogFileWriter, service: str, path: Path, data: bytes) -> None:
        writes.append((service, len(data)))
        append(self, service, path, data)

    monkeypatch.setattr(LogFileWriter, "_append", counting)
    writer = LogFileWriter(tmp_path, LogFiles(), lambda message, level: None,
                           clock=lambda: 0.0)
    for batch in range(40):   # 40 batches of 5 lines of ~60 bytes, two services
        service = "api" if batch % 2 else "web"
        writer.write(service, "stdout", STAMP,
                     [f"{service} {batch:02d}.{i} " + "x" * 40 for i in range(5)])
    writer.drain()
    # one batch is ~460 bytes as written: a pass never holds much more than PASS_BYTES
    assert len(writes) > 4
    assert max(size for _, size in writes) < 2 * 1000
    for service, parity in (("api", 1), ("web", 0)):
        lines = [line.text for line in logread.history(tmp_path, [service], Query())]
        assert lines == [f"{service} {batch:02d}.{i} " + "x" * 40
                         for batch in range(40) if batch % 2 == parity for i in range(5)]
