"""A spawn that fails with an OS error, through the `ProcessOps` seam (no processes)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import gevent
import gevent.event
import pytest

from promenade_core.bus.protocol import StatusObject
from promenade_core.config.choices import RestartPolicy
from promenade_core.config.model import ServiceConfig
from promenade_core.supervise.osproc import ProcessOps, Spawned
from promenade_core.supervise.service import Service
from promenade_core.supervise.states import Status
from tests.support.fakes import FakeHost

pytestmark = pytest.mark.timeout(30)


class FailingOps(ProcessOps):
    """Fails every spawn with `error`, after handing out the queued `runs` first."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
        self.runs: list[Spawned] = []
        self.calls = 0
        self.seen_at_spawn: list[StatusObject] = []
        self.service: Service | None = None

    def spawn(self, command: str, cwd: Path, env: dict[str, str], tty: bool) -> Spawned:
        self.calls += 1
        if self.service is not None:
            self.seen_at_spawn.append(self.service.describe(None))
        if self.runs:
            return self.runs.pop(0)
        raise self.error

    def signal_group(self, pgid: int, sig: int) -> bool:
        return False

    def group_alive(self, pgid: int) -> bool:
        return False


def make_service(ops: ProcessOps, policy: str = "never") -> tuple[Service, FakeHost]:
    config = ServiceConfig(
        name="api", command="serve", directory=Path("/"), port=None, hostname=None, env={},
        own_env={}, env_file=None, depends_on=(), restart_policy=RestartPolicy(policy),
        ready_check=None,
    )
    host = FakeHost(ops)
    return Service(config, cast(Any, host)), host


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the hub run the service's greenlets until `condition` holds."""
    with gevent.Timeout(timeout, AssertionError("condition not reached")):
        while not condition():
            gevent.idle()


def command(service: Service, name: str) -> Any:
    return service.submit(getattr(service, name)).get(timeout=10)


@pytest.mark.parametrize("error", [
    OSError(errno.EMFILE, os.strerror(errno.EMFILE)),
    OSError(errno.EACCES, os.strerror(errno.EACCES)),
    ValueError("embedded null byte"),
], ids=["EMFILE", "EACCES", "NUL"])
def test_spawn_os_error_fails_the_service_instead_of_wedging_it_in_starting(
        error: BaseException) -> None:
    """A spawn that raised an OSError killed the lifecycle greenlet: the service stayed
    `starting` for ever and later starts did nothing."""
    ops = FailingOps(error)
    service, host = make_service(ops)
    command(service, "start")
    assert service.wait_settled(5)
    assert service.status == Status.FAILED
    reason = str(error.strerror if isinstance(error, OSError) else error)
    assert any(reason in text and level == "error" for level, text in host.messages), \
        host.messages
    assert any(reason in line for line in host.lines), host.lines
    command(service, "start")          # the command queue is alive: it tries again
    assert service.wait_settled(5) and service.status == Status.FAILED
    assert ops.calls == 2


def test_spawn_os_error_follows_the_restart_policy() -> None:
    """The restart policy never fired after a failed spawn; `once` must retry once."""
    ops = FailingOps(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
    service, host = make_service(ops, policy="once")
    command(service, "start")
    assert service.status == Status.RETRYING
    assert ("warning", "api failed to start; retrying in 1 s") in host.messages
    command(service, "stop")           # and a stop during the back-off still works
    assert service.status == Status.STOPPED


def _fake_run(pid: int) -> tuple[Spawned, list[int]]:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
    popen = cast(subprocess.Popen[bytes], type("Popen", (), {"pid": pid, "returncode": None})())
    return Spawned(popen, out_r, err_r, gevent.event.AsyncResult()), [out_w, err_w]


def test_starting_does_not_report_the_previous_runs_pid() -> None:
    """While `starting` again, the status object showed the pid of the run that had
    exited, a process that no longer exists (or is someone else's)."""
    ops = FailingOps(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
    service, _ = make_service(ops)
    ops.service = service
    run, write_ends = _fake_run(4242)
    ops.runs.append(run)
    command(service, "start")
    assert service.status == Status.RUNNING and service.describe(None)["pid"] == 4242
    for fd in write_ends:
        os.close(fd)
    run.exited.set(1)
    until(lambda: service.status == Status.FAILED)
    command(service, "start")
    assert ops.calls == 2
    starting = ops.seen_at_spawn[-1]
    assert starting["status"] == "starting" and starting["pid"] is None, starting
    assert starting["uptime_seconds"] is None, starting


class BrokenHost(FakeHost):
    def environment(self, service: Service) -> dict[str, str]:
        raise RuntimeError("a bug in the supervisor")


def test_an_unexpected_error_in_the_lifecycle_still_settles_the_service() -> None:
    """Any exception that escaped the lifecycle greenlet left the service wedged."""
    ops = FailingOps(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
    service, _ = make_service(ops)
    host = BrokenHost(ops)
    service.host = cast(Any, host)
    command(service, "start")
    assert service.wait_settled(5) and service.status == Status.FAILED
    assert any("internal error" in text for _, text in host.messages), host.messages
    command(service, "stop")
    assert service.status == Status.STOPPED
