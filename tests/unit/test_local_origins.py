"""A configured hostname is a local origin only while it is mapped to loopback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from promenade_core.bus import protocol
from promenade_core.hosts.mapped_names import MappedNames, only_loopback
from promenade_web.app import Backend, create_app
from promenade_web.hub import Hub


@pytest.mark.parametrize(("addresses", "expected"), [
    (["127.0.0.1"], True),
    (["127.0.1.1", "::1"], True),
    (["fe80::1%lo", "127.0.0.1"], False),
    (["::1%lo"], True),
    (["127.0.0.1", "93.184.215.14"], False),   # one foreign address is enough to refuse
    (["10.0.0.5"], False),
    ([], False),                               # does not resolve at all
    (["not an address"], False),
])
def test_only_loopback(addresses: list[str], expected: bool) -> None:
    assert only_loopback(addresses) is expected


def test_mapped_names_caches_lookups_and_reports_each_round() -> None:
    table = {"api.myapp.test": ["127.0.0.1"], "evil.myapp.test": ["203.0.113.7"]}
    looked_up: list[str] = []
    rounds: list[int] = []

    def lookup(name: str) -> list[str]:
        looked_up.append(name)
        return table.get(name, [])

    names = MappedNames(lambda: ["API.myapp.test.", "evil.myapp.test", "gone.test", None],
                        lambda: rounds.append(1), lookup=lookup,
                        run=lambda fn, name: fn(name))
    assert not names.resolves_to_loopback("api.myapp.test")  # nothing looked up yet
    names.refresh()
    assert sorted(looked_up) == ["api.myapp.test", "evil.myapp.test", "gone.test"]
    assert names.resolves_to_loopback("api.myapp.test")
    assert names.resolves_to_loopback("Api.MyApp.test.")
    assert not names.resolves_to_loopback("evil.myapp.test")
    assert not names.resolves_to_loopback("gone.test")
    assert rounds == [1]
    table["api.myapp.test"] = []  # the hand-made /etc/hosts entry was removed
    names.refresh()
    assert not names.resolves_to_loopback("api.myapp.test") and rounds == [1, 1]


class FakeManager:
    """The bus as the web process sees it: one status document, control commands."""

    def __init__(self, mapped: bool) -> None:
        self.mapped = mapped
        self.stops: list[str] = []

    def status_object(self) -> dict[str, Any]:
        return {"name": "api", "status": "running", "hostname": "api.myapp.test",
                "hostname_mapped": self.mapped}

    def request(self, cmd: str, **args: Any) -> Any:
        if cmd == "status":
            return {"services": {"api": self.status_object()}}
        if cmd == "stop":
            self.stops.append(args["service"])
            return {**self.status_object(), "status": "stopped"}
        raise AssertionError(f"unexpected command {cmd}")


def dashboard(manager: FakeManager) -> tuple[Hub, Any]:
    hub = Hub("ipc:///nonexistent", manager.request, context=None)  # type: ignore[arg-type]
    hub.refresh_hostnames()
    return hub, create_app(Backend(manager.request, hub)).test_client()


def test_unmapped_configured_hostname_cannot_drive_the_dashboard() -> None:
    """Regression: a configured hostname nothing mapped (`disabled`/`manual` mode,
    hostsd missing) counted as a local origin, so a page served under that name by
    another machine could stop services."""
    manager = FakeManager(mapped=False)
    _, client = dashboard(manager)
    origin = {"Origin": "http://api.myapp.test:3000", "Host": "127.0.0.1:9000"}
    reply = client.post("/api/services/api/stop", headers=origin)
    assert reply.status_code == 403 and reply.json["error"]["code"] == "forbidden_origin"
    reply = client.get("/api/status", headers={"Host": "api.myapp.test:9000"})
    assert reply.status_code == 403 and reply.json["error"]["code"] == "forbidden_host"
    assert manager.stops == []


def test_a_hostname_becomes_local_when_mapped_and_stops_when_unmapped() -> None:
    manager = FakeManager(mapped=True)
    hub, client = dashboard(manager)
    origin = {"Origin": "http://api.myapp.test:3000", "Host": "127.0.0.1:9000"}
    assert client.post("/api/services/api/stop", headers=origin).status_code == 200
    assert manager.stops == ["api"]
    manager.mapped = False  # e.g. hostsd went away: the manager publishes a state event
    event = {"v": 1, "seq": 7, "service": "api", "status": manager.status_object()}
    hub.handle(protocol.state_topic("api"), json.dumps(event).encode())
    assert client.post("/api/services/api/stop", headers=origin).status_code == 403
    assert manager.stops == ["api"]
