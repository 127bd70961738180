"""The REST API of `create_app` over a fake backend, through Flask's test client.

The integration tests in tests/test_web_api.py run the same endpoints against a real
manager; here the bus is a recorder that answers from a table, so every shape, status
and error code of the HTTP layer is checked in milliseconds, without a process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import gevent.lock
import pytest
from flask.testing import FlaskClient

from promenade_core.bus import protocol
from promenade_core.bus.client import BusError
from promenade_core.masking import MASK
from promenade_web import api
from promenade_web.app import Backend, create_app
from promenade_web.hub import Hub

HOST = {"Host": "127.0.0.1:4000"}
STATUS = {"manager": {"pid": 42}, "services": {"api": {"name": "api", "status": "running"}}}


@dataclass
class FakeBus:
    """Answers each command from `replies` (a value, an exception to raise, or a
    function of the arguments) and records every call."""

    replies: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, cmd: str, **args: Any) -> Any:
        self.calls.append((cmd, args))
        reply = self.replies.get(cmd, {"ok": True})
        if isinstance(reply, Exception):
            raise reply
        return reply(**args) if callable(reply) else reply


@dataclass
class Web:
    bus: FakeBus
    client: FlaskClient
    hostnames: dict[str, str]
    routed: dict[str, tuple[str, ...]]

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.get(path, headers={**HOST, **(headers or {})})

    def post(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(path, headers={**HOST, **(headers or {})})


def make_web(bind_host: str = "127.0.0.1") -> Web:
    bus = FakeBus()
    hub = SimpleNamespace(hostnames={}, routed={})  # the parts of the Hub the guard reads
    app = create_app(Backend(request=bus, hub=cast(Hub, hub)), bind_host)
    return Web(bus, app.test_client(), hub.hostnames, hub.routed)


@pytest.fixture
def web() -> Web:
    return make_web()


def error(reply: Any, status: int, code: str) -> str:
    """The message of a JSON error reply, after checking its status and code."""
    assert reply.status_code == status, reply.data
    assert reply.is_json, reply.data
    assert reply.get_json()["error"]["code"] == code
    message: str = reply.get_json()["error"]["message"]
    return message


# --------------------------------------------------------------------------- status


def test_status_is_the_managers_document_unchanged(web: Web) -> None:
    web.bus.replies["status"] = STATUS
    reply = web.get("/api/status")
    assert reply.status_code == 200 and reply.get_json() == STATUS
    assert web.bus.calls == [("status", {})]


def test_every_reply_carries_cors_and_page_headers(web: Web) -> None:
    headers = web.get("/api/status").headers
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_one_service_asks_the_bus_for_that_service(web: Web) -> None:
    web.bus.replies["service"] = lambda service: {"name": service, "status": "stopped"}
    reply = web.get("/api/services/api")
    assert reply.get_json() == {"name": "api", "status": "stopped"}
    assert web.bus.calls == [("service", {"service": "api"})]


def test_unknown_service_is_a_404_json_error(web: Web) -> None:
    web.bus.replies["service"] = BusError(protocol.UNKNOWN_SERVICE, "unknown service 'apii'")
    message = error(web.get("/api/services/apii"), 404, protocol.UNKNOWN_SERVICE)
    assert message == "unknown service 'apii'"


@pytest.mark.parametrize(("code", "status"), [
    (protocol.BAD_REQUEST, 400),
    (protocol.SHUTTING_DOWN, 503),
    (protocol.TIMEOUT, 504),
    (protocol.UNKNOWN_COMMAND, 502),
])
def test_bus_error_codes_map_to_http_statuses(web: Web, code: str, status: int) -> None:
    web.bus.replies["status"] = BusError(code, "no")
    error(web.get("/api/status"), status, code)


def test_a_crash_in_a_view_is_a_500_that_names_only_the_type(
        web: Web, capsys: pytest.CaptureFixture[str]) -> None:
    web.bus.replies["status"] = RuntimeError("secret detail")
    message = error(web.get("/api/status"), 500, protocol.INTERNAL)
    assert "RuntimeError" in message and "secret detail" not in message
    assert "secret detail" in capsys.readouterr().err  # kept for the supervisor's log


def test_unknown_path_is_a_404_json_error(web: Web) -> None:
    error(web.get("/api/nope"), 404, "not_found")


# --------------------------------------------------------------------------- control


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_control_sends_the_action_and_waits_by_default(web: Web, action: str) -> None:
    web.bus.replies[action] = {"service": "api", "status": "running"}
    reply = web.post(f"/api/services/api/{action}")
    assert reply.status_code == 200
    assert reply.get_json() == {"service": "api", "status": "running"}
    assert web.bus.calls == [(action, {"service": "api", "wait": True})]


@pytest.mark.parametrize(("given", "wait"), [("false", False), ("0", False), ("YES", True)])
def test_control_wait_parameter(web: Web, given: str, wait: bool) -> None:
    web.post(f"/api/services/api/stop?wait={given}")
    assert web.bus.calls == [("stop", {"service": "api", "wait": wait})]


def test_control_bad_wait_is_a_400_naming_the_value(web: Web) -> None:
    message = error(web.post("/api/services/api/stop?wait=maybe"), 400, protocol.BAD_REQUEST)
    assert "wait" in message and "'maybe'" in message
    assert web.bus.calls == []


def test_unknown_action_is_a_404_naming_it(web: Web) -> None:
    message = error(web.post("/api/services/api/explode"), 404, "not_found")
    assert "'explode'" in message and "start, stop, restart" in message
    assert web.bus.calls == []


def test_control_by_get_is_a_405_with_allow(web: Web) -> None:
    reply = web.get("/api/services/api/stop")
    error(reply, 405, "method_not_allowed")
    assert "POST" in reply.headers["Allow"]


def test_restart_all_is_one_bus_command(web: Web) -> None:
    web.bus.replies["restart_all"] = {"restarted": ["api"]}
    assert web.post("/api/restart-all").get_json() == {"restarted": ["api"]}
    assert web.bus.calls == [("restart_all", {})]


# --------------------------------------------------------------------------- logs


def test_logs_pass_tail_and_since_and_name_the_service(web: Web) -> None:
    web.bus.replies["logs"] = {"seq": 9, "run_id": "r", "messages": []}
    body = web.get("/api/services/api/logs?tail=5&since=3").get_json()
    assert web.bus.calls == [("logs", {"service": "api", "tail": 5, "since": 3})]
    assert body["service"] == "api" and body["seq"] == 9 and "lines" in body


def test_logs_without_parameters_ask_for_everything(web: Web) -> None:
    web.bus.replies["logs"] = {"seq": 0, "run_id": "r", "messages": []}
    web.get("/api/services/api/logs?tail=")
    assert web.bus.calls == [("logs", {"service": "api"})]


@pytest.mark.parametrize("query", ["tail=-1", "tail=abc", "since=1.5", "since=%20"])
def test_logs_bad_numbers_are_a_400_naming_the_parameter(web: Web, query: str) -> None:
    message = error(web.get(f"/api/services/api/logs?{query}"), 400, protocol.BAD_REQUEST)
    assert query.split("=")[0] in message and "non-negative integer" in message
    assert web.bus.calls == []


def test_logs_of_an_unknown_service_are_a_404(web: Web) -> None:
    web.bus.replies["logs"] = BusError(protocol.UNKNOWN_SERVICE, "unknown service 'x'")
    error(web.get("/api/services/x/logs"), 404, protocol.UNKNOWN_SERVICE)


# --------------------------------------------------------------------------- config


def test_config_is_masked_again_by_the_web_process(web: Web) -> None:
    """A manager of another version might send secrets unmasked: the page still hides
    them (env values by key, URL passwords, inline command secrets)."""
    web.bus.replies["config"] = {"services": {"api": {
        "command": "STRIPE_SECRET=sk_live_1 python app.py",
        "env": {"API_TOKEN": "hunter2", "PLAIN": "visible",
                "DATABASE_URL": "postgres://app:pw@db/app"}}}}
    api = web.get("/api/config").get_json()["services"]["api"]
    assert api["env"]["API_TOKEN"] == MASK and api["env"]["PLAIN"] == "visible"
    assert api["env"]["DATABASE_URL"] == f"postgres://app:{MASK}@db/app"
    assert api["command"] == f"STRIPE_SECRET={MASK} python app.py"


def test_reload_replies_with_the_plan_and_is_not_a_dry_run_by_default(web: Web) -> None:
    web.bus.replies["reload"] = {"changed": ["api"], "error": None}
    reply = web.post("/api/reload")
    assert reply.status_code == 200 and reply.get_json()["changed"] == ["api"]
    assert web.bus.calls == [("reload", {"dry_run": False})]


def test_reload_dry_run_parameter(web: Web) -> None:
    web.post("/api/reload?dry_run=true")
    assert web.bus.calls == [("reload", {"dry_run": True})]


def test_reload_of_an_invalid_config_is_a_422_with_details(web: Web) -> None:
    problem = {"message": "promenade.yaml:3: services.api.port: not a port", "line": 3}
    web.bus.replies["reload"] = {"error": problem}
    reply = web.post("/api/reload")
    assert error(reply, 422, protocol.CONFIG_INVALID) == problem["message"]
    assert reply.get_json()["error"]["details"] == problem
    assert reply.get_json()["error"]["result"] == {"error": problem}


# --------------------------------------------------------------------------- wait

UP = {"ok": True, "timed_out": False, "failed": [], "waiting": [],
      "services": {"api": {"name": "api", "status": "running"}}}
NOT_UP = {"ok": False, "timed_out": False, "waiting": [], "services": {},
          "failed": [{"service": "api", "status": "gave_up", "verdict": "failed",
                      "status_reason": "exited with code 3; gave up after 1 retry"}]}


def test_wait_asks_the_bus_with_a_longer_request_timeout(web: Web) -> None:
    web.bus.replies["wait"] = UP
    reply = web.get("/api/wait?services=api,%20web&timeout=30")
    assert (reply.status_code, reply.get_json()) == (200, UP)
    assert web.bus.calls == [("wait", {"timeout": 40.0, "services": ["api", "web"],
                                        "timeout_seconds": 30.0})]


def test_wait_defaults_to_every_autostart_service_for_120_s(web: Web) -> None:
    web.bus.replies["wait"] = UP
    assert web.get("/api/wait?services=").status_code == 200
    assert web.bus.calls == [("wait", {"timeout": 130.0, "services": None,
                                        "timeout_seconds": 120.0})]


@pytest.mark.parametrize("outcome", [
    NOT_UP,
    {**NOT_UP, "failed": [], "timed_out": True,
     "waiting": [{"service": "api", "status": "starting", "status_reason": None,
                  "verdict": "pending"}]},
])
def test_wait_not_up_is_a_409_with_the_same_body(web: Web, outcome: dict[str, Any]) -> None:
    web.bus.replies["wait"] = outcome
    reply = web.get("/api/wait")
    assert (reply.status_code, reply.get_json()) == (409, outcome)


@pytest.mark.parametrize("timeout", ["0", "-3", "3601", "soon", "nan", "inf", "1e9"])
def test_wait_bad_timeout_is_a_400_before_the_bus(web: Web, timeout: str) -> None:
    message = error(web.get(f"/api/wait?timeout={timeout}"), 400, protocol.BAD_REQUEST)
    assert repr(timeout) in message and "at most 3600" in message
    assert web.bus.calls == []


def test_wait_for_an_unknown_service_is_a_404(web: Web) -> None:
    web.bus.replies["wait"] = BusError(protocol.UNKNOWN_SERVICE, "unknown service 'apii'")
    assert "'apii'" in error(web.get("/api/wait?services=apii"), 404,
                             protocol.UNKNOWN_SERVICE)


def test_waits_in_flight_are_capped_so_the_dashboard_keeps_its_sockets() -> None:
    """Each wait holds a bus socket for its whole timeout; past the cap a wait is a 503
    at once instead of starving /api/status."""
    web = make_web()
    held = web.client.application.extensions.setdefault(
        "promenade_waits", gevent.lock.BoundedSemaphore(api.MAX_WAITS))
    for _ in range(api.MAX_WAITS):
        held.acquire()
    assert "waits are running" in error(web.get("/api/wait"), 503, api.BUSY)
    held.release()
    web.bus.replies["wait"] = UP
    assert web.get("/api/wait").status_code == 200


# --------------------------------------------------------------------------- guards


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1.evil.example",
                                    "null"])
def test_a_foreign_origin_is_refused_before_the_bus(web: Web, origin: str) -> None:
    message = error(web.post("/api/services/api/stop", {"Origin": origin}), 403,
                    "forbidden_origin")
    assert repr(origin) in message
    assert web.bus.calls == []


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8080",
                                    "http://app.localhost"])
def test_local_origins_are_served(web: Web, origin: str) -> None:
    assert web.get("/api/status", {"Origin": origin}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:4000", "api.test:4000"])
def test_a_foreign_host_is_refused_against_dns_rebinding(web: Web, host: str) -> None:
    message = error(web.get("/api/status", {"Host": host}), 403, "forbidden_host")
    assert "DNS-rebinding" in message
    assert web.bus.calls == []


def test_a_managed_hostname_is_local_while_the_manager_reports_it_mapped(web: Web) -> None:
    page = {"Host": "api.test:4000", "Origin": "http://api.test:3000"}
    assert web.get("/api/status", page).status_code == 403
    web.hostnames["api"] = "api.test"
    assert web.get("/api/status", page).status_code == 200


def test_the_dashboard_at_a_test_domain_is_local_while_a_routed_url_leads_here(
        web: Web) -> None:
    """`manager.domain: myapp.test`: the dashboard is routed at https://myapp.test and
    pages at https://web.myapp.test call it; not local by suffix, so only while the
    manager gives the routed URLs (their names lead here)."""
    for page in ({"Host": "myapp.test", "Origin": "https://web.myapp.test"},
                 {"Host": "myapp.test:7443", "Origin": "https://myapp.test:7443"}):
        assert web.get("/api/status", page).status_code == 403
        web.routed["web"] = ("web.myapp.test", "myapp.test")
        assert web.get("/api/status", page).status_code == 200
        web.routed["web"] = ()
        assert web.get("/api/status", page).status_code == 403


def test_bound_on_all_interfaces_an_address_host_is_served_but_not_a_name() -> None:
    web = make_web("0.0.0.0")
    assert web.get("/api/status", {"Host": "192.168.1.5:4000"}).status_code == 200
    error(web.get("/api/status", {"Host": "evil.example"}), 403, "forbidden_host")


def test_preflight_is_answered_without_the_bus(web: Web) -> None:
    reply = web.client.options("/api/services/api/stop", headers={
        **HOST, "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert reply.status_code == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert web.bus.calls == []


GUARDED: list[tuple[str, Callable[[Web], Any]]] = [
    ("status", lambda w: w.get("/api/status", {"Origin": "https://evil.example"})),
    ("logs", lambda w: w.get("/api/services/api/logs", {"Origin": "https://evil.example"})),
    ("config", lambda w: w.get("/api/config", {"Origin": "https://evil.example"})),
    ("reload", lambda w: w.post("/api/reload", {"Origin": "https://evil.example"})),
    ("restart-all", lambda w: w.post("/api/restart-all", {"Origin": "https://evil.example"})),
    ("wait", lambda w: w.get("/api/wait", {"Origin": "https://evil.example"})),
]


@pytest.mark.parametrize("call", [c for _, c in GUARDED], ids=[n for n, _ in GUARDED])
def test_every_endpoint_is_guarded(web: Web, call: Callable[[Web], Any]) -> None:
    error(call(web), 403, "forbidden_origin")
    assert web.bus.calls == []
