"""hostsd's `listen` request, decoded without sockets; and the root helper's size budget.

What may be bound is a pure decision on the request (loopback 443 or 80, nothing else),
so every refusal is checked here; tests/test_hostsd_listen.py runs the real sockets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import promenade_hostsd
from promenade_hostsd.server import FIELDS, Refused, listen_target

#: The README promises an audit in one sitting: `wc -l promenade_hostsd/*.py` under this.
LINE_BUDGET = 700


@pytest.mark.parametrize(("request_", "target"), [
    ({"port": 443}, ("127.0.0.1", 443)),
    ({"port": 80}, ("127.0.0.1", 80)),
    ({"port": 443, "address": "::1"}, ("::1", 443)),
    ({"port": 80, "address": "127.0.0.1"}, ("127.0.0.1", 80)),
])
def test_loopback_443_and_80_are_what_hostsd_binds(request_: dict[str, Any],
                                                   target: tuple[str, int]) -> None:
    assert listen_target({"op": "listen", **request_}) == target


@pytest.mark.parametrize(("request_", "code", "quoted"), [
    ({}, "invalid_port", "None"),
    ({"port": 8443}, "invalid_port", "8443"),
    ({"port": 0}, "invalid_port", "0"),
    ({"port": 22}, "invalid_port", "22"),
    ({"port": "443"}, "invalid_port", "'443'"),
    ({"port": True}, "invalid_port", "True"),  # bool is an int in Python, never a port
    ({"port": 443.0}, "invalid_port", "443.0"),
    ({"port": [443]}, "invalid_port", "[443]"),
    ({"port": 443, "address": "0.0.0.0"}, "invalid_address", "'0.0.0.0'"),
    ({"port": 443, "address": "::"}, "invalid_address", "'::'"),
    ({"port": 443, "address": "127.0.0.2"}, "invalid_address", "'127.0.0.2'"),
    ({"port": 443, "address": "192.168.1.10"}, "invalid_address", "'192.168.1.10'"),
    ({"port": 443, "address": "::ffff:127.0.0.1"}, "invalid_address", "'::ffff:127.0.0.1'"),
    ({"port": 443, "address": "localhost"}, "invalid_address", "'localhost'"),
    ({"port": 443, "address": "127.0.0.1\n"}, "invalid_address", "'127.0.0.1\\n'"),
    ({"port": 443, "address": None}, "invalid_address", "None"),
    ({"port": 443, "address": ["127.0.0.1"]}, "invalid_address", "['127.0.0.1']"),
])
def test_anything_else_is_refused_quoting_what_was_asked(request_: dict[str, Any], code: str,
                                                         quoted: str) -> None:
    with pytest.raises(Refused) as caught:
        listen_target({"op": "listen", **request_})
    assert caught.value.args[0] == code
    assert quoted in caught.value.args[1]


def test_listen_takes_no_persist_since_a_socket_lives_only_with_its_connection() -> None:
    assert FIELDS["listen"] == {"op", "port", "address"}


def test_the_root_helper_stays_under_its_line_budget() -> None:
    """Every line of it runs as root; the README's audit section states this number."""
    folder = Path(promenade_hostsd.__file__).parent
    lines = sum(len(p.read_text().splitlines()) for p in folder.glob("*.py"))
    assert lines < LINE_BUDGET, f"promenade_hostsd is {lines} lines; the budget is {LINE_BUDGET}"
    readme = (folder.parent / "README.md").read_text().lower()
    assert f"under {LINE_BUDGET} lines of standard-library python" in readme
