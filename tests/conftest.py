from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Manager


@pytest.fixture(autouse=True, scope="session")
def _no_router() -> Iterator[None]:
    """PROMENADE_ROUTER=0 for everything the suite starts: a manager run from a test's
    own environment (sudo tests, ad-hoc `promenade start`s) would otherwise start a real
    router, and make a real CA, in the user's folders. Tests of the router ask for it
    (isolated_env(tmp, router=True))."""
    patch = pytest.MonkeyPatch()
    patch.setenv("PROMENADE_ROUTER", "0")
    yield
    patch.undo()


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


@pytest.fixture
def router_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A router of the test's own (tests/support/router.py's RouterEnv): temporary XDG
    and HOME folders, free HTTPS and HTTP ports, no hostsd; stopped at the end."""
    from tests.support.router import RouterEnv

    root = tmp_path / "r"
    root.mkdir()
    made = RouterEnv(root, monkeypatch)
    yield made
    made.cleanup()
