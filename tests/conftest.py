from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Manager


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Callable[..., Manager]]:
    """Factory: `manager(config_yaml, args=...)` starts a real manager; all are cleaned up."""
    started: list[Manager] = []

    def make(config: str, args: tuple[str, ...] = ("--no-ui",), start: bool = True,
             name: str = "promenade.yaml") -> Manager:
        m = Manager(tmp_path, config, args, name)
        started.append(m)
        return m.start() if start else m

    yield make
    for m in started:
        m.cleanup()


@pytest.fixture
def children() -> Iterator[list[Any]]:
    """Processes a test started (anything with `kill()`), killed in teardown."""
    started: list[Any] = []
    yield started
    for child in started:
        child.kill()
