"""The TCP events feed's ZAP decisions and the listeners' connection budget (pure)."""

from __future__ import annotations

from promenade_core.bus.tcpfeed import DOMAIN, zap_reply
from promenade_core.listener import RESERVED_FDS, connection_budget

TOKEN = "a" * 48


def request(mechanism: bytes, *credentials: bytes, domain: str = DOMAIN) -> list[bytes]:
    return [b"1.0", b"id-7", domain.encode(), b"127.0.0.1", b"", mechanism, *credentials]


def status(reply: list[bytes]) -> bytes:
    assert reply[0] == b"1.0" and reply[1] == b"id-7", reply
    return reply[2]


def test_bus_tcp_subscriber_without_the_token_is_refused() -> None:
    """bus_tcp let any local user read every log line: only the right token passes."""
    assert status(zap_reply(request(b"PLAIN", b"promenade", TOKEN.encode()), TOKEN)) == b"200"
    assert status(zap_reply(request(b"PLAIN", b"x", TOKEN.encode()), TOKEN)) == b"200"
    assert status(zap_reply(request(b"PLAIN", b"promenade", b"wrong"), TOKEN)) == b"400"
    assert status(zap_reply(request(b"PLAIN", b"promenade", b""), TOKEN)) == b"400"
    assert status(zap_reply(request(b"PLAIN", b"promenade"), TOKEN)) == b"400"
    assert status(zap_reply(request(b"CURVE", b"k" * 32), TOKEN)) == b"400"
    # NULL on the authenticated domain never passes; NULL elsewhere is the ipc feed.
    assert status(zap_reply(request(b"NULL"), TOKEN)) == b"400"
    assert status(zap_reply(request(b"NULL", domain=""), TOKEN)) == b"200"
    assert status(zap_reply([b"2.0", b"id-7"], TOKEN)) == b"500"
    assert zap_reply([], TOKEN)[2] == b"500"


def test_connection_budget_leaves_descriptors_for_everything_else() -> None:
    assert connection_budget(1024) == (1024 - RESERVED_FDS) // 3
    assert connection_budget(65536) > 20_000
    assert connection_budget(64) == 16   # a floor, so a tiny limit still serves someone
