"""Joining the events feed (sync marker, then snapshot) and counting its gaps, with a
fake socket and a fake control client: the one join used by `follow`, the web hub and
the CLI."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
import zmq

from promenade_core.bus import protocol
from promenade_core.bus.client import BusError, BusTimeout, join_feed, wait_joined


class FakeSub:
    """What join_feed uses of a SUB socket (plain or zmq.green alike)."""

    def __init__(self) -> None:
        self.queue: deque[list[bytes]] = deque()
        self.subscribed: list[bytes] = []
        self.polls = 0

    def setsockopt(self, option: int, value: bytes) -> None:
        if option == zmq.SUBSCRIBE:
            self.subscribed.append(value)
        elif option == zmq.UNSUBSCRIBE:
            self.subscribed.remove(value)

    def poll(self, timeout: int, flags: int) -> bool:
        self.polls += 1
        return bool(self.queue)

    def recv_multipart(self) -> list[bytes]:
        return self.queue.popleft()


class FakeManager:
    """Answers `sync` by publishing the marker to `sub` (after `lose` lost ones) and
    `snapshot`/`ping` with a seq."""

    def __init__(self, sub: FakeSub, seq: int = 7, lose: int = 0,
                 fail: int = 0) -> None:
        self.sub, self.seq, self.lose, self.fail = sub, seq, lose, fail
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def request(self, cmd: str, timeout: float | None = None, **args: Any) -> Any:
        self.calls.append((cmd, args))
        if cmd == "sync":
            if self.fail:
                self.fail -= 1
                raise BusTimeout("no answer")
            marker = f"sync/{args['token']}".encode()
            if self.lose:
                self.lose -= 1   # the slow joiner: published before the SUB was live
            elif marker in self.sub.subscribed:
                self.sub.queue.append([marker, b"{}"])
            return {}
        return {"seq": self.seq, "run_id": "r1", "logs": [], **args}


def test_join_feed_syncs_then_snapshots_and_drops_what_came_before() -> None:
    sub = FakeSub()
    sub.queue.append([b"log/a/", b"{}"])      # older than the snapshot: dropped
    bus = FakeManager(sub, seq=7)
    joined = join_feed(sub, bus.request)
    assert [cmd for cmd, _ in bus.calls] == ["sync", "snapshot"]
    assert joined.snapshot["seq"] == 7 and joined.run_id == "r1"
    assert joined.tracker.last == 7
    assert not sub.queue and sub.subscribed == [], "the marker is unsubscribed"


def test_join_feed_passes_the_snapshot_command_and_its_arguments() -> None:
    sub = FakeSub()
    bus = FakeManager(sub)
    joined = join_feed(sub, bus.request, "logs", services=["a"], tail=5)
    assert bus.calls[-1] == ("logs", {"services": ["a"], "tail": 5})
    assert joined.snapshot["tail"] == 5


def test_a_lost_or_unanswered_sync_is_sent_again() -> None:
    sub = FakeSub()
    bus = FakeManager(sub, fail=1)
    seen_calls: list[str] = []

    def seen(token: str, wait: float) -> bool:
        seen_calls.append(token)
        return len(seen_calls) > 1          # the first marker never arrives

    wait_joined(sub, bus.request, timeout=60, seen=seen, token="t0")
    assert [cmd for cmd, _ in bus.calls] == ["sync", "sync"]
    assert seen_calls == ["t0", "t0"]
    assert bus.calls[-1][1] == {"token": "t0"}


def test_wait_joined_gives_up_at_its_deadline_and_unsubscribes() -> None:
    sub = FakeSub()
    bus = FakeManager(sub)
    with pytest.raises(BusTimeout) as caught:
        wait_joined(sub, bus.request, timeout=0.0)
    assert caught.value.code == protocol.TIMEOUT and isinstance(caught.value, BusError)
    assert sub.subscribed == []


def test_seq_tracker_drops_the_snapshot_s_events_and_counts_losses() -> None:
    tracker = protocol.SeqTracker(10)
    assert tracker.old(10) and tracker.old(3) and not tracker.old(11)
    assert tracker.advance(11) == 0
    assert tracker.advance(15, 12) == 0        # a log message with lines 12..15
    assert tracker.advance(20, 18) == 2        # 16 and 17 were lost
    assert tracker.last == 20
    assert tracker.advance(0) == 0 and tracker.last == 20   # no seq: moves nothing


def test_seq_tracker_counts_nothing_until_it_knows_where_it_is() -> None:
    tracker = protocol.SeqTracker()
    assert not tracker.old(1)
    assert tracker.advance(50, 40) == 0 and tracker.last == 50
    tracker.reset()
    assert tracker.advance(90) == 0 and tracker.advance(92) == 1


class Exhausted(Exception):
    """The scripted feed has nothing more."""


class ScriptedFeed:
    """What `_live` uses of an EventSubscriber: the scripted (topic, message) pairs, a
    None for a quiet interval, then Exhausted."""

    def __init__(self, script: list[tuple[str, dict[str, Any]] | None]) -> None:
        self.script = deque(script)

    def recv(self, timeout: float | None = None) -> tuple[str, dict[str, Any]] | None:
        if not self.script:
            raise Exhausted
        return self.script.popleft()


def log(service: str, first: int, count: int) -> tuple[str, dict[str, Any]]:
    lines = [f"{service} {first + i}" for i in range(count)]
    return protocol.log_topic(service), protocol.log_message(service, first, "T", "stdout",
                                                              lines)


def state(seq: int) -> tuple[str, dict[str, Any]]:
    return protocol.state_topic("api"), {"v": 1, "seq": seq, "service": "api", "status": {}}


def run_live(script: list[tuple[str, dict[str, Any]] | None], buffered: list[dict[str, Any]],
             joined_at: int = 0, services: set[str] | None = None,
             ) -> tuple[list[tuple[str, Any]], list[tuple[int, int | None]]]:
    """What `_live` yields for the script, with a manager whose buffers hold `buffered`;
    (kind, first..seq or the gap's count) per event, and the fetches it made."""
    from promenade_core.bus.client import _live

    fetches: list[tuple[int, int | None]] = []

    def fetch(since: int, until: int | None) -> list[dict[str, Any]]:
        fetches.append((since, until))
        return [m for b in buffered
                if (m := protocol.log_between(b, since, until)) is not None]

    def select(topic: str, service: str | None) -> bool:
        return services is None or service in services

    out: list[tuple[str, Any]] = []
    feed = _live(ScriptedFeed(script), protocol.SeqTracker(joined_at), select,  # type: ignore[arg-type]
                 None, lambda: None, "", fetch)
    with pytest.raises(Exhausted):
        for kind, item in feed:
            if kind == "gap":
                out.append(("gap", item["missed"]))
            elif kind == "log":
                out.append((item["service"], (item["first_seq"], item["seq"])))
            else:
                out.append((kind, item["seq"]))
    return out, fetches


def test_follow_fetches_a_dropped_stretch_back_before_what_revealed_it() -> None:
    dropped = log("api", 4, 3)[1]
    out, fetches = run_live([log("api", 1, 3), log("api", 7, 1)], [dropped])
    assert out == [("api", (1, 3)), ("api", (4, 6)), ("api", (7, 7))]
    assert fetches == [(3, 6)]


def test_follow_counts_what_the_buffers_no_longer_hold() -> None:
    kept = log("api", 6, 1)[1]  # 4 and 5 trimmed from the buffer since
    out, _ = run_live([log("api", 1, 3), log("api", 7, 1)], [kept])
    assert out == [("api", (1, 3)), ("gap", 2), ("api", (6, 6)), ("api", (7, 7))]


def test_follow_checks_a_quiet_feed_after_a_burst_for_a_lost_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from promenade_core.bus import client

    monkeypatch.setattr(client, "TAIL_CHECK_SECONDS", 0.0)
    burst: list[tuple[str, dict[str, Any]] | None] = [
        log("api", i, 1) for i in range(1, client.BURST_MESSAGES + 1)]
    n = client.BURST_MESSAGES
    end = log("api", n + 1, 2)
    # quiet: the end is fetched; then it arrives after all (it was in flight, not
    # lost) and is not yielded twice; the events around it still come.
    out, fetches = run_live([*burst, None, state(n + 3), end, log("web", n + 4, 1)],
                            [end[1]])
    assert out[n:] == [("api", (n + 1, n + 2)), ("state", n + 3), ("web", (n + 4, n + 4))]
    assert fetches == [(n, None)]


def test_follow_after_a_short_burst_does_not_ask_the_manager() -> None:
    out, fetches = run_live([log("api", 1, 2), None, log("api", 3, 1)], [])
    assert out == [("api", (1, 2)), ("api", (3, 3))] and fetches == []


def test_follow_yields_only_the_selected_services_of_a_repair() -> None:
    out, _ = run_live([log("api", 1, 1), log("api", 4, 1)],
                      [log("web", 2, 1)[1], log("api", 3, 1)[1]], services={"api"})
    assert out == [("api", (1, 1)), ("api", (3, 3)), ("api", (4, 4))]
