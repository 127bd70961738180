"""The web hub's log items: a raw message from the publisher and a replayed one take
the same path, and both trim at the replay boundary alike (no sockets here)."""

from __future__ import annotations

import json

from promenade_core.bus import protocol
from promenade_web.hub import Item, log_item, raw_log_item, spec_lines


def published(first: int, lines: list[str]) -> bytes:
    """The bytes the publisher sends for one read (Publisher.publish_batch's encoding)."""
    return protocol.encode(protocol.log_message("api", first, "T", "stderr", lines))


def test_a_raw_message_is_read_without_decoding_its_lines() -> None:
    item = raw_log_item(published(10, ["a", "b", "c"]))
    assert item._message is None, "the lines stay undecoded"
    assert (item.kind, item.service, item.first_seq, item.seq, item.lines) == (
        "logs", "api", 10, 12, 3)
    sent = json.loads(item.batch_text("run1"))
    assert sent["type"] == "logs" and sent["run_id"] == "run1"
    assert sent["lines"] == ["a", "b", "c"] and sent["first_seq"] == 10


def test_replayed_and_live_messages_give_the_same_frames() -> None:
    """The replay (`logs` reply) holds messages of the live shape: one path after that."""
    body = published(10, ["a", "b"])
    live, replayed = raw_log_item(body), log_item(protocol.decode(body))
    assert live.line_texts("r") == replayed.line_texts("r")
    strip = {"v"}
    assert ({k: v for k, v in json.loads(live.batch_text("r")).items() if k not in strip}
            == json.loads(replayed.batch_text("r")))


def test_items_trim_at_the_replay_cut() -> None:
    item = raw_log_item(published(10, ["a", "b", "c"]))
    assert item.after(9) is item
    assert item.after(12) is None
    trimmed = item.after(10)
    assert isinstance(trimmed, Item)
    assert (trimmed.first_seq, trimmed.seq, trimmed.message["lines"]) == (11, 12, ["b", "c"])


def test_spec_lines_is_the_rest_api_s_one_object_per_line() -> None:
    message = protocol.log_message("api", 4, "T", "stdout", ["x", "y"])
    assert spec_lines(message) == [
        {"seq": 4, "timestamp": "T", "service": "api", "stream": "stdout", "line": "x"},
        {"seq": 5, "timestamp": "T", "service": "api", "stream": "stdout", "line": "y"},
    ]
