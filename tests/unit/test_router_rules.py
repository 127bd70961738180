"""The router's pure decisions: the wire format, who holds a name, the pages, the Host
and redirect rules, and the relay's edge-mode headers."""

from __future__ import annotations

import json
from typing import Any

import h11
import pytest

from promenade_core.proxy import headers as ph
from promenade_core.proxy.headers import Page, ProxyPolicy
from promenade_core.router import pages, protocol
from promenade_core.router.control import ControlServer
from promenade_core.router.protocol import ProtocolError, Route
from promenade_core.router.registry import Registry
from promenade_core.router.server import (
    RoutingFront,
    host_name,
    is_loopback_peer,
    redirect_location,
)


def wire(name: str, port: int | None = 5001, **extra: Any) -> dict[str, Any]:
    return {"name": name, "port": port, "service": "api", "status": "running", **extra}


def up(name: str, port: int | None = 5001, status: str = "running",
       reason: str | None = None) -> Route:
    return Route(name, port, "api", status, reason)


# ---- protocol ----

@pytest.mark.parametrize("line", [b"{", b"[]", b'{"op": 1}', b"\xff", b"x" * 70000])
def test_undecodable_lines_are_bad_requests(line: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(line)
    assert caught.value.code == "bad_request"


@pytest.mark.parametrize(("item", "field"), [
    ("x", "routes[0] is not an object"),
    (wire("API.localhost"), "routes[0].name"),
    (wire("localhost"), "routes[0].name"),  # one label: not a name of a project
    (wire("a.localhost\n"), "routes[0].name"),
    (wire("-a.localhost"), "routes[0].name"),
    (wire("a.localhost", 0), "routes[0].port"),
    (wire("a.localhost", True), "routes[0].port"),
    (wire("a.localhost", "5001"), "routes[0].port"),
    (wire("a.localhost", service=None), "'service'"),
    (wire("a.localhost", status_reason=3), "status_reason"),
    (wire("a.localhost", tls="yes"), "tls"),
])
def test_invalid_routes_name_what_is_wrong(item: object, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_routes({"routes": [item]})
    assert caught.value.code == "invalid_routes" and field in caught.value.message


def test_routes_parse_with_defaults_and_duplicates_are_refused() -> None:
    assert protocol.parse_routes({"routes": [wire("a.b.localhost", None)]}) == (
        Route("a.b.localhost", None, "api", "running", None, True),)
    with pytest.raises(ProtocolError, match="listed twice"):
        protocol.parse_routes({"routes": [wire("a.localhost"), wire("a.localhost")]})
    with pytest.raises(ProtocolError, match="must be a list"):
        protocol.parse_routes({"routes": {}})


@pytest.mark.parametrize("hello", [
    {"version": 2, "pid": 1, "project": "/p"},
    {"version": 1, "pid": True, "project": "/p"},
    {"version": 1, "pid": 1, "project": ""},
])
def test_bad_hellos_are_refused(hello: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse_hello(hello)


def test_a_route_is_up_only_running_with_a_port() -> None:
    assert up("a.localhost").up
    assert not up("a.localhost", None).up
    assert not up("a.localhost", status="starting").up


# ---- registry ----

def test_routes_replace_the_connection_set_and_drop_with_it() -> None:
    registry = Registry()
    registry.hello(1, 10, "/one")
    registry.replace(1, (up("a.localhost"), up("b.localhost")))
    registry.replace(1, (up("b.localhost", 6000),))
    assert registry.names() == ["b.localhost"]
    assert registry.lookup("b.localhost") == up("b.localhost", 6000)
    registry.drop(1)
    assert registry.names() == [] and registry.holders == {}


def test_a_taken_name_refuses_the_whole_set_and_names_its_holder() -> None:
    registry = Registry()
    registry.hello(1, 10, "/one/promenade.yaml")
    registry.hello(2, 20, "/two/promenade.yaml")
    registry.replace(1, (up("a.localhost"),))
    registry.replace(2, (up("c.localhost"),))
    with pytest.raises(ProtocolError) as caught:
        registry.replace(2, (up("b.localhost"), up("a.localhost")))
    assert caught.value.code == "name_taken"
    assert "/one/promenade.yaml" in caught.value.message and "pid 10" in caught.value.message
    assert registry.names() == ["a.localhost", "c.localhost"]  # unchanged
    registry.drop(1)
    registry.replace(2, (up("a.localhost"),))
    assert registry.lookup("a.localhost") is not None


def test_control_answers_never_raise_for_bad_input() -> None:
    registry = Registry()
    info: protocol.InfoReply = {"ok": True, "pid": 1, "https_port": 7443,
                                "http_port": None, "ca_trusted": False, "routes": []}
    control = ControlServer(registry, lambda: info)
    assert control.answer(1, b'{"op": "routes", "routes": []}')["code"] == "hello_first"
    assert control.answer(1, b"nonsense")["code"] == "bad_request"
    assert control.answer(1, b'{"op": "hello", "pid": 5, "project": "/p", "version": 1}'
                          )["ok"] is True
    line = json.dumps({"op": "routes", "routes": [wire("a.localhost")]}).encode()
    assert control.answer(1, line) == {"ok": True, "routes": 1}
    assert control.answer(1, b'{"op": "info"}') is info
    assert control.answer(1, b'{"op": "nope"}')["code"] == "unknown_op"


# ---- pages ----

@pytest.mark.parametrize(("accept", "json_wanted"), [
    (None, False), (b"text/html,application/json", False), (b"application/json", True),
    (b"application/json, text/html", True), (b"*/*", False)])
def test_json_only_when_asked_before_html(accept: bytes | None, json_wanted: bool) -> None:
    assert pages.wants_json(accept) is json_wanted


def test_the_not_up_page_escapes_what_it_shows() -> None:
    page = pages.not_up_page(Route("a.localhost", None, "<api>", "starting", "<b>"), None)
    assert page.status == 503
    assert b"<api>" not in page.body and b"&lt;api&gt;" in page.body
    assert b"&lt;b&gt;" in page.body and b'http-equiv="refresh"' in page.body


def test_the_404_lists_names_or_says_there_are_none() -> None:
    listed = pages.unknown_name_page("x.localhost", ["a.localhost"], None)
    assert listed.status == 404 and b'href="https://a.localhost/"' in listed.body
    assert b"No names are served now" in pages.unknown_name_page("x.localhost", [], None).body
    as_json = json.loads(pages.unknown_name_page("x.localhost", [], b"application/json").body)
    assert as_json["error"]["code"] == "unknown_name"


# ---- Host, redirects, routing ----

@pytest.mark.parametrize(("host", "name"), [
    (b"API.MyApp.localhost:7443", "api.myapp.localhost"), (b"a.localhost.", "a.localhost"),
    (b"[::1]:443", "::1"), (b"[::1", None), (b"", None), (None, None), (b":443", None)])
def test_host_names(host: bytes | None, name: str | None) -> None:
    assert host_name(host) == name


def test_redirects_keep_the_target_and_drop_the_default_port() -> None:
    assert redirect_location(b"a.localhost:80", b"/x?y=1", 443) == b"https://a.localhost/x?y=1"
    assert redirect_location(b"a.localhost", b"*", 7443) == b"https://a.localhost:7443/"
    assert redirect_location(None, b"/", 443) is None


def test_only_loopback_peers() -> None:
    assert is_loopback_peer(("127.0.0.5", 1)) and is_loopback_peer(("::1", 1, 0, 0))
    assert not is_loopback_peer(("10.0.0.1", 1)) and not is_loopback_peer(())


def _request(host: str, accept: str = "text/html") -> h11.Request:
    return h11.Request(method="GET", target="/", headers=[("Host", host), ("Accept", accept)])


def test_routing_by_host() -> None:
    registry = Registry()
    registry.hello(1, 1, "/p")
    registry.replace(1, (up("a.localhost", 5001), up("s.localhost", None, "starting")))
    front = RoutingFront(registry)
    policy = front.decide(_request("A.localhost:7443"))
    assert isinstance(policy, ProxyPolicy)
    assert (policy.upstream_port, policy.edge) == (5001, True)
    starting = front.decide(_request("s.localhost"))
    assert isinstance(starting, Page) and starting.status == 503
    unknown = front.decide(_request("zz.localhost", "application/json"))
    assert isinstance(unknown, Page) and unknown.status == 404


# ---- the relay's edge mode (the CORS proxy's own rules are in its tests) ----

def test_at_the_edge_forwarded_headers_are_replaced_not_appended() -> None:
    sent = [(b"Host", b"a.localhost"), (b"X-Forwarded-For", b"6.6.6.6"),
            (b"X-Forwarded-Proto", b"http")]
    edge = dict(ph.upstream_request_headers(sent, "127.0.0.1", "127.0.0.1:5001", edge=True))
    assert edge[b"X-Forwarded-For"] == b"127.0.0.1"
    assert edge[b"X-Forwarded-Proto"] == b"https"
    proxy = dict(ph.upstream_request_headers(sent, "127.0.0.1", "127.0.0.1:5001"))
    assert proxy[b"X-Forwarded-For"] == b"6.6.6.6, 127.0.0.1"


def test_at_the_edge_the_services_cors_headers_pass_and_no_origin_is_checked() -> None:
    response = [(b"Access-Control-Allow-Origin", b"https://x.test"), (b"Connection", b"close"),
                (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")]
    assert ph.passthrough_response_headers(response) == [
        (b"Access-Control-Allow-Origin", b"https://x.test")]
    policy = ProxyPolicy("api", "127.0.0.1", 5001, (), lambda: (), check_host=False,
                         edge=True, cors=False)
    assert policy.refusal(b"GET", [(b"Origin", b"https://far.example")]) is None


def test_a_route_may_ask_for_the_cors_policy() -> None:
    parsed = protocol.parse_routes({"routes": [wire("a.localhost",
                                                    cors_allow_origins=["https://X.test/"])]})
    assert parsed[0].cors_allow_origins == ("https://X.test/",)
    assert parsed[0].wire()["cors_allow_origins"] == ["https://X.test/"]
    assert "cors_allow_origins" not in up("a.localhost").wire()
    with pytest.raises(ProtocolError, match="cors_allow_origins"):
        protocol.parse_routes({"routes": [wire("a.localhost", cors_allow_origins="*")]})
    registry = Registry()
    registry.hello(1, 1, "/p")
    registry.replace(1, parsed)
    policy = RoutingFront(registry).decide(_request("a.localhost"))
    assert isinstance(policy, ProxyPolicy)
    assert policy.cors and policy.allow_origins == ("https://x.test",)
    assert policy.origin_allowed("https://a.localhost")


def test_the_not_answering_page_reloads_and_says_why() -> None:
    refusal = ph.Refusal(502, "upstream_unavailable", "service 'api' is not answering <x>")
    page = pages.not_answering_page(up("a.localhost"), refusal, None)
    assert page.status == 502 and b'http-equiv="refresh"' in page.body
    assert b"&lt;x&gt;" in page.body
    as_json = json.loads(pages.not_answering_page(up("a.localhost"), refusal,
                                                  b"application/json").body)
    assert as_json["error"]["code"] == "upstream_unavailable"


def test_only_pending_starting_and_retrying_reload() -> None:
    assert {"pending", "starting", "retrying"} == pages.COMING_UP
    page = pages.not_up_page(up("a.localhost", status="retrying"), b"application/json")
    assert (b"Retry-After", b"2") in page.headers
