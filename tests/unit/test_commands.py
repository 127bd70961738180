"""The bus's control commands over fake collaborators: no manager, no sockets."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import gevent
import gevent.event
import pytest

from promenade_core.bus import protocol
from promenade_core.bus.server import CommandError
from promenade_core.config.load import load_config_text
from promenade_core.config.profiles import default_targets
from promenade_core.control import Commands, RunInfo

pytestmark = pytest.mark.timeout(30)


class FakeService:
    def __init__(self, name: str) -> None:
        self.name = name
        self.status = "stopped"
        self.calls: list[str] = []

    def submit(self, fn: Callable[[], Any]) -> gevent.event.AsyncResult:
        result = gevent.event.AsyncResult()
        result.set(fn())
        return result

    def start(self) -> None:
        self.calls.append("start")
        self.status = "running"

    def stop(self) -> None:
        self.calls.append("stop")
        self.status = "stopped"

    def restart(self) -> None:
        self.calls.append("restart")
        self.status = "running"

    def wait_settled(self, timeout: float | None = None) -> bool:
        return True


class FakeSupervisor:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.services = {name: FakeService(name) for name in config.services}
        self.restarted = 0
        self.active_profiles: tuple[str, ...] = ()

    def default_targets(self) -> tuple[str, ...]:
        return default_targets(self.config.services, self.active_profiles)

    def describe_sampled(self, service: FakeService) -> dict[str, Any]:
        return {"name": service.name, "status": service.status}

    def describe(self, service: FakeService) -> dict[str, Any]:
        return {"name": service.name, "status": service.status, "health": "unknown",
                "status_reason": None, "ready_check": None, "completed": False,
                "autostart": self.config.services[service.name].autostart}

    def describe_all(self) -> dict[str, dict[str, Any]]:
        return {name: self.describe_sampled(s) for name, s in self.services.items()}

    def order(self) -> tuple[str, ...]:
        return tuple(self.services)

    def restart_all(self) -> list[str]:
        self.restarted += 1
        return list(self.services)


class FakeReloader:
    error: dict[str, Any] | None = None

    def __init__(self) -> None:
        self.asked: list[tuple[bool, bool]] = []

    def last_modified(self) -> str | None:
        return "2024-01-15T10:23:45.123Z"

    def reload(self, dry_run: bool = False, forced: bool = False) -> dict[str, Any]:
        self.asked.append((dry_run, forced))
        return {"changed": False, "dry_run": dry_run}


class FakePublisher:
    seq = 41
    dropped_reported = 2

    def __init__(self) -> None:
        self.synced: list[str] = []

    def sync(self, token: str) -> None:
        self.synced.append(token)


CONFIG = """
services:
  api: {command: serve, env: {API_TOKEN: hunter2, MODE: dev}}
  web: {command: vite}
"""
WITH_TOOL = CONFIG + "  tool: {command: codegen, autostart: false}\n"


class Rig:
    def __init__(self, tmp_path: Path, text: str = CONFIG) -> None:
        config = load_config_text(text, tmp_path / "promenade.yaml")
        self.supervisor = FakeSupervisor(config)
        self.reloader = FakeReloader()
        self.publisher = FakePublisher()
        self.stops: list[str] = []
        self.stopped = gevent.event.Event()
        self.stopping = False
        self.run = RunInfo(pid=123, version="9.9", run_id="abc", started_at=0.0,
                           config_path=tmp_path / "promenade.yaml",
                           dashboard_url="http://127.0.0.1:9000")
        self.commands = Commands(self.run, cast(Any, self.supervisor), cast(Any, self.reloader),
                                 cast(Any, self.publisher), request_stop=self._stop,
                                 stopping=lambda: self.stopping)
        self.table = self.commands.table()

    def _stop(self, reason: str) -> None:
        self.stops.append(reason)
        self.stopped.set()

    def __call__(self, cmd: str, **args: Any) -> Any:
        return self.table[cmd]({"cmd": cmd, **args})


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(CommandError) as caught:
        call()
    return caught.value.code, str(caught.value.message)


def test_the_table_has_every_documented_command(rig: Rig) -> None:
    for name in ("ping", "status", "service", "start", "stop", "restart", "restart_all",
                 "logs", "config", "reload", "snapshot", "shutdown"):
        assert callable(rig.table[name]), name


def test_ping_names_the_run(rig: Rig) -> None:
    assert rig("ping") == {"pid": 123, "version": "9.9", "seq": 41, "run_id": "abc"}


def test_status_is_built_from_the_collaborators(rig: Rig) -> None:
    doc = rig("status")
    assert doc["services"] == {"api": {"name": "api", "status": "stopped"},
                               "web": {"name": "web", "status": "stopped"}}
    assert doc["config_path"] == str(rig.run.config_path)
    assert doc["config_last_modified"] == "2024-01-15T10:23:45.123Z"
    assert doc["config_error"] is None
    assert doc["manager_pid"] == 123 and doc["run_id"] == "abc" and doc["version"] == "9.9"
    assert doc["dashboard_url"] == "http://127.0.0.1:9000"
    assert doc["bus"] == {"seq": 41, "dropped": 2}
    assert doc["manager_uptime_seconds"] > 0
    assert doc["profiles"] == []
    rig.supervisor.active_profiles = ("debug",)
    assert rig("status")["profiles"] == ["debug"]


def test_config_masks_secrets_and_reports_the_reloaders_error(rig: Rig) -> None:
    rig.reloader.error = {"message": "bad"}
    doc = rig("config")
    env = doc["config"]["services"]["api"]["env"]
    assert env["API_TOKEN"] == "****" and env["MODE"] == "dev"
    assert doc["error"] == {"message": "bad"} and doc["path"] == str(rig.run.config_path)


def test_service_commands_act_and_describe(rig: Rig) -> None:
    assert rig("start", service="api") == {"name": "api", "status": "running"}
    assert rig("restart", service="api", wait=False)["name"] == "api"
    assert rig("stop", service="api") == {"name": "api", "status": "stopped"}
    assert rig.supervisor.services["api"].calls == ["start", "restart", "stop"]
    assert rig("service", service="web") == {"name": "web", "status": "stopped"}


def test_an_unknown_service_is_named_with_the_known_ones(rig: Rig) -> None:
    code, message = error_of(lambda: rig("start", service="apii"))
    assert code == protocol.UNKNOWN_SERVICE
    assert message == "unknown service 'apii' (known: api, web)"
    assert error_of(lambda: rig("service"))[0] == protocol.BAD_REQUEST


@pytest.mark.parametrize(("cmd", "args", "words"), [
    ("start", {"service": 3}, "'service' must be str, got int"),
    ("start", {"service": "api", "wait": "yes"}, "'wait' must be bool, got str"),
    ("reload", {"dry_run": 1}, "'dry_run' must be bool, got int"),
    ("sync", {"token": ""}, '"token" must be a short string'),
    ("gap", {"count": -1}, '"count" must be >= 0'),
])
def test_bad_arguments_are_refused_with_what_was_wrong(rig: Rig, cmd: str, args: dict[str, Any],
                                                       words: str) -> None:
    code, message = error_of(lambda: rig(cmd, **args))
    assert code == protocol.BAD_REQUEST and message == words


def test_while_stopping_actions_are_refused_but_questions_answered(rig: Rig) -> None:
    rig.stopping = True
    for cmd, args in (("start", {"service": "api"}), ("restart_all", {}), ("reload", {})):
        assert error_of(lambda: rig(cmd, **args))[0] == protocol.SHUTTING_DOWN, cmd  # noqa: B023
    assert rig("ping")["pid"] == 123 and rig("status")["manager_pid"] == 123
    assert rig.supervisor.services["api"].calls == [] and rig.reloader.asked == []


def test_reload_is_forced_and_passes_dry_run(rig: Rig) -> None:
    assert rig("reload", dry_run=True) == {"changed": False, "dry_run": True}
    rig("reload")
    assert rig.reloader.asked == [(True, True), (False, True)]


def test_restart_all_names_the_services_and_waits_when_asked(rig: Rig) -> None:
    assert rig("restart_all", wait=True) == {"services": ["api", "web"]}
    assert rig.supervisor.restarted == 1


def test_shutdown_asks_the_manager_to_stop_after_replying(rig: Rig) -> None:
    assert rig("shutdown") == {"stopping": True}
    assert rig.stops == []          # the reply goes out first
    assert rig.stopped.wait(10)
    assert rig.stops == ["shutdown requested over the bus"]


def test_sync_and_gap_reach_the_publisher(rig: Rig) -> None:
    assert rig("sync", token="t1") == {} and rig.publisher.synced == ["t1"]
    assert rig("gap", count=3) == {} and rig.publisher.dropped_reported == 5


# --------------------------------------------------------------------------- wait

def test_wait_ends_when_every_autostart_service_is_up(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WITH_TOOL)
    for name in ("api", "web"):
        rig.supervisor.services[name].status = "starting"

    def come_up() -> None:
        gevent.sleep(0.1)
        rig.supervisor.services["api"].status = "running"
        gevent.sleep(0.1)
        rig.supervisor.services["web"].status = "running"

    gevent.spawn(come_up)
    result = rig("wait", timeout_seconds=5)
    assert (result["ok"], result["timed_out"], result["failed"]) == (True, False, [])
    assert list(result["services"]) == ["api", "web"]   # not `tool` (autostart: false)


def test_wait_without_names_skips_the_services_of_inactive_profiles(tmp_path: Path) -> None:
    """`promenade start -d --wait` must not report `docs` as never started when its
    profile was not asked for: the wait waits for what the start started."""
    rig = Rig(tmp_path, CONFIG + "  docs: {command: mkdocs, profiles: [docs]}\n")
    for name in ("api", "web"):
        rig.supervisor.services[name].status = "running"
    result = rig("wait", timeout_seconds=5)
    assert result["ok"] is True and list(result["services"]) == ["api", "web"]
    rig.supervisor.active_profiles = ("docs",)
    result = rig("wait", timeout_seconds=5)
    assert result["ok"] is False and result["failed"][0]["service"] == "docs"


def test_wait_fails_at_once_on_a_service_never_started(tmp_path: Path) -> None:
    rig = Rig(tmp_path, WITH_TOOL)
    rig.supervisor.services["api"].status = "running"
    result = rig("wait", services=["api", "tool"], timeout_seconds=30)
    assert result["ok"] is False and result["timed_out"] is False
    assert result["failed"] == [{"service": "tool", "status": "stopped",
                                 "status_reason": None, "verdict": "not_started"}]


def test_wait_fails_as_soon_as_one_fails(rig: Rig) -> None:
    rig.supervisor.services["web"].status = "pending"
    rig.supervisor.services["api"].status = "starting"
    gevent.spawn_later(0.1, setattr, rig.supervisor.services["api"], "status", "gave_up")
    result = rig("wait", timeout_seconds=30)
    assert [e["service"] for e in result["failed"]] == ["api"]
    assert [e["service"] for e in result["waiting"]] == ["web"]


def test_wait_times_out_naming_what_it_waits_for(rig: Rig) -> None:
    rig.supervisor.services["api"].status = "starting"
    result = rig("wait", services=["api", "api"], timeout_seconds=0.2)
    assert (result["ok"], result["timed_out"]) == (False, True)
    assert result["waiting"] == [{"service": "api", "status": "starting",
                                  "status_reason": None, "verdict": "pending"}]


def test_wait_stops_waiting_when_the_manager_stops(rig: Rig) -> None:
    rig.supervisor.services["api"].status = "starting"
    gevent.spawn_later(0.1, setattr, rig, "stopping", True)
    assert error_of(lambda: rig("wait", services=["api"]))[0] == protocol.SHUTTING_DOWN


@pytest.mark.parametrize(("args", "code", "words"), [
    ({"timeout_seconds": 0}, protocol.BAD_REQUEST, "more than 0"),
    ({"timeout_seconds": 3601}, protocol.BAD_REQUEST, "at most 3600"),
    ({"timeout_seconds": "10"}, protocol.BAD_REQUEST, "number of seconds"),
    ({"services": "api"}, protocol.BAD_REQUEST, "'services' must be list"),
    ({"services": [1]}, protocol.BAD_REQUEST, "must hold names"),
    ({"services": ["apii"]}, protocol.UNKNOWN_SERVICE,
     "unknown service 'apii' (known: api, web)"),
])
def test_wait_refuses_bad_arguments(rig: Rig, args: dict[str, Any], code: str,
                                    words: str) -> None:
    got, message = error_of(lambda: rig("wait", **args))
    assert got == code and words in message, message


def test_wait_lets_a_queued_start_run_before_judging(rig: Rig) -> None:
    """`start -d --wait` may ask before a service's worker took its queued start: the
    service still says `stopped`, which alone would read as never started."""
    api = rig.supervisor.services["api"]
    queued = gevent.event.AsyncResult()

    def take_the_start() -> None:
        gevent.sleep(0.2)
        api.status = "running"
        queued.set(None)

    gevent.spawn(take_the_start)
    api.submit = lambda fn: queued   # type: ignore[method-assign]
    result = rig("wait", services=["api"], timeout_seconds=5)
    assert result["ok"] is True, result


def test_wait_does_not_hang_on_a_service_removed_while_it_waits(rig: Rig) -> None:
    api = rig.supervisor.services["api"]
    api.submit = lambda fn: gevent.event.AsyncResult()   # type: ignore[method-assign]
    gevent.spawn_later(0.1, rig.supervisor.services.pop, "api")
    began = time.monotonic()
    result = rig("wait", services=["api"], timeout_seconds=5)
    assert time.monotonic() - began < 2
    assert result["failed"][0]["status"] == "removed"
