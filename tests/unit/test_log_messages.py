"""The one log message shape: building, trimming at the replay boundary, the byte-level
contract the web hub reads raw messages by, and the LogStore that serves replays."""

from __future__ import annotations

import json
from typing import Any

import pytest

from promenade_core.bus import protocol
from promenade_core.supervise.logs import Batch, LogStore


def message(first: int, lines: list[str], service: str = "api") -> dict[str, Any]:
    return protocol.log_message(service, first, "2024-01-15T10:23:45.123Z", "stdout", lines)


def test_log_message_numbers_its_lines_and_keeps_lines_last() -> None:
    msg = message(5, ["a", "b", "c"])
    assert msg["first_seq"] == 5 and msg["seq"] == 7 and msg["v"] == protocol.VERSION
    assert list(msg) == ["v", "seq", "first_seq", "service", "stream", "timestamp", "lines"]


def test_log_after_drops_what_the_replay_already_had() -> None:
    msg = message(5, ["a", "b", "c"])
    assert protocol.log_after(msg, 4) is msg
    assert protocol.log_after(msg, 7) is None
    assert protocol.log_after(msg, 100) is None
    trimmed = protocol.log_after(msg, 5)
    assert trimmed == {**msg, "first_seq": 6, "lines": ["b", "c"]}
    assert trimmed is not None and trimmed["seq"] == 7
    assert msg["lines"] == ["a", "b", "c"], "the original is left alone"


def test_log_tail_keeps_the_last_lines_across_messages() -> None:
    msgs = [message(1, ["a", "b", "c"]), message(4, ["d"]), message(5, ["e", "f"])]
    assert protocol.log_tail(msgs, None) == msgs
    assert protocol.log_tail(msgs, 0) == []
    assert protocol.log_tail(msgs, 2) == [msgs[2]]
    assert protocol.log_tail(msgs, 3) == [msgs[1], msgs[2]]
    oldest = protocol.log_tail(msgs, 5)[0]
    assert oldest["first_seq"] == 2 and oldest["seq"] == 3 and oldest["lines"] == ["b", "c"]
    assert protocol.log_tail(msgs, 100) == msgs


@pytest.mark.parametrize("encoder", ["orjson", "json"])
def test_log_header_reads_the_raw_bytes_as_the_encoder_writes_them(
        encoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub reads seq, first_seq and service without decoding the lines: that holds
    for both encoders encode() may use, even when a line looks like the key."""
    if encoder == "json":
        monkeypatch.setattr(protocol, "orjson", None)
    elif protocol.orjson is None:
        pytest.skip("orjson is not installed")
    msg = message(41, ['"lines":["x"]}', "ü \x1b[31mred"], service="web-1")
    body = protocol.encode(msg)
    header = protocol.log_header(body)
    assert header is not None
    assert (header["seq"], header["first_seq"], header["service"]) == (42, 41, "web-1")
    assert header["lines"] == [] and header["stream"] == "stdout"
    assert protocol.decode(body) == msg


@pytest.mark.parametrize("body", [
    b"{}", b"not json", b'{"seq":1,"lines":["a"]}',
    b'{"seq":"1","first_seq":1,"service":"a","lines":["x"]}',
    json.dumps({"lines": ["a"], "seq": 1}).encode(),
])
def test_log_header_refuses_what_log_message_does_not_write(body: bytes) -> None:
    assert protocol.log_header(body) is None


@pytest.mark.parametrize(("topic", "parsed"), [
    ("log/api/", ("log", "api")),
    ("state/web-1/", ("state", "web-1")),
    ("config/", ("config", None)),
    ("manager/", ("manager", None)),
    ("sync/abc123", ("sync", "abc123")),
    ("", ("", None)),
])
def test_parse_topic(topic: str, parsed: tuple[str, str | None]) -> None:
    assert protocol.parse_topic(topic) == parsed


def test_parse_topic_agrees_with_the_topic_builders() -> None:
    assert protocol.parse_topic(protocol.log_topic("x")) == ("log", "x")
    assert protocol.parse_topic(protocol.state_topic("x")) == ("state", "x")


def batch(first: int, lines: list[str], stream: str = "stdout") -> Batch:
    return Batch(first, "t", stream, lines)


def test_log_store_serves_every_service_in_seq_order() -> None:
    store = LogStore(100)
    store.append("a", batch(1, ["a1", "a2"]))
    store.append("b", batch(3, ["b1"], "stderr"))
    store.append("a", batch(4, ["a3"]))
    msgs = store.messages(["a", "b"])
    assert [(m["service"], m["first_seq"], m["lines"]) for m in msgs] == [
        ("a", 1, ["a1", "a2"]), ("b", 3, ["b1"]), ("a", 4, ["a3"])]
    assert msgs[1]["stream"] == "stderr" and msgs[1]["seq"] == 3
    assert [m["lines"] for m in store.messages(["b"])] == [["b1"]]
    assert store.messages(["nobody"]) == []


def test_log_store_since_and_tail_trim_at_the_boundary() -> None:
    store = LogStore(100)
    store.append("a", batch(1, ["1", "2", "3"]))
    store.append("b", batch(4, ["4", "5"]))
    since = store.messages(["a", "b"], since=2)
    assert [(m["first_seq"], m["lines"]) for m in since] == [(3, ["3"]), (4, ["4", "5"])]
    tail = store.messages(["a", "b"], tail=3)
    assert [(m["first_seq"], m["lines"]) for m in tail] == [(3, ["3"]), (4, ["4", "5"])]
    assert store.messages(["a", "b"], since=1, tail=1)[0]["lines"] == ["5"]


def test_log_store_resize_and_drop() -> None:
    store = LogStore(3)
    store.append("a", batch(1, ["1", "2", "3", "4"]))
    assert store.count("a") == 3
    store.resize("a", 1)
    assert [m["lines"] for m in store.messages(["a"])] == [["4"]]
    store.resize("new", 2)   # a service added by a reload gets its size up front
    store.append("new", batch(5, ["5", "6", "7"]))
    assert store.count("new") == 2
    store.drop("a")
    assert store.count("a") == 0 and store.messages(["a"]) == []
    store.resize_all(10)
    store.append("later", batch(8, [str(i) for i in range(8)]))
    assert store.count("later") == 8
