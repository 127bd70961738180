"""Per-topic continuity: the wire's line_no/event_no trackers, the web hub's
subscription arithmetic, and the hub following only what its clients asked for (a fake
SUB socket and a fake manager; no sockets, processes or sleeps)."""

from __future__ import annotations

from typing import Any

import gevent
import pytest
import zmq

from promenade_core.bus import protocol
from promenade_web.feed import Following, log_topics, topic_change, wanted_services
from promenade_web.hub import Hub, Item, Subscription

EVENTS = protocol.TopicTracker.EVENTS


# --------------------------------------------------------------------------- tracker

def test_a_jump_in_line_no_is_exactly_the_lines_lost_on_that_topic() -> None:
    tracker = protocol.TopicTracker()
    assert tracker.advance("api", 1, 3, 10, 12) is None          # lines 1-3: the start
    assert tracker.advance("api", 4, 2, 40, 41) is None          # seq jumped: other topics
    gap = tracker.advance("api", 9, 1, 90, 90)                    # lines 6, 7, 8 lost
    assert gap == protocol.TopicGap("api", 3, 42, 89)
    assert tracker.advance("api", 10, 1, 95, 95) is None


def test_topics_are_counted_apart() -> None:
    tracker = protocol.TopicTracker()
    tracker.advance("a", 1, 1, 1, 1)
    tracker.advance("b", 1, 1, 2, 2)
    assert tracker.advance("a", 2, 1, 3, 3) is None
    gap = tracker.advance("b", 5, 1, 4, 4)
    assert gap is not None and (gap.key, gap.lost) == ("b", 3)


def test_nothing_counts_as_lost_before_a_position_is_known() -> None:
    tracker = protocol.TopicTracker()
    assert not tracker.known("api")
    assert tracker.advance("api", 500, 10, 900, 909) is None
    assert tracker.known("api")
    tracker.forget("api")
    assert tracker.advance("api", 700, 1, 950, 950) is None


def test_a_sync_marker_places_a_topic_but_never_moves_one_a_message_placed() -> None:
    tracker = protocol.TopicTracker()
    tracker.place("api", 0, 5)                     # joined before its first line
    gap = tracker.advance("api", 3, 1, 9, 9)
    assert gap == protocol.TopicGap("api", 2, 6, 8)
    tracker.place("api", 100, 50)                  # a late marker: the message knew better
    assert tracker.advance("api", 4, 1, 10, 10) is None


def test_a_placement_without_a_seq_gives_an_open_range() -> None:
    tracker = protocol.TopicTracker()
    tracker.place(EVENTS, 4)
    assert tracker.advance(EVENTS, 6, 1, 30, 30) == protocol.TopicGap(EVENTS, 1, None, 29)


def test_a_message_without_a_number_moves_nothing_and_a_new_run_starts_over() -> None:
    tracker = protocol.TopicTracker()
    tracker.advance("api", 50, 1, 60, 60)
    assert tracker.advance("api", 0, 3, 61, 63) is None      # no line_no: not counted
    assert tracker.advance("api", 51, 1, 64, 64) is None
    assert tracker.advance("api", 1, 2, 1, 2) is None        # a new manager run
    assert tracker.advance("api", 4, 1, 4, 4) == protocol.TopicGap("api", 1, 3, 3)


def test_keep_forgets_every_other_topic() -> None:
    tracker = protocol.TopicTracker()
    for key in ("a", "b", "c"):
        tracker.place(key, 1)
    tracker.keep({"b"})
    assert [tracker.known(k) for k in ("a", "b", "c")] == [False, True, False]


# --------------------------------------------------------------------------- wire

def test_log_messages_carry_line_no_before_their_lines_and_the_header_reads_it() -> None:
    message = protocol.log_message("api", 10, "T", "stdout", ["a", "b"], line_no=7)
    assert list(message)[-1] == "lines" and message["line_no"] == 7
    header = protocol.log_header(protocol.encode(message))
    assert header is not None and header["line_no"] == 7
    assert "line_no" not in protocol.log_message("api", 10, "T", "stdout", ["a"])
    assert protocol.log_header(b'{"v":1,"seq":1,"first_seq":1,"line_no":"x",'
                               b'"service":"a","lines":["a"]}') is None


def test_trimming_a_message_moves_its_line_no_along() -> None:
    message = protocol.log_message("api", 10, "T", "stdout", ["a", "b", "c", "d"], line_no=7)
    after = protocol.log_after(message, 11)
    assert after is not None and (after["first_seq"], after["line_no"]) == (12, 9)
    (tail,) = protocol.log_tail([message], 1)
    assert (tail["first_seq"], tail["line_no"], tail["lines"]) == (13, 10, ["d"])
    plain = protocol.log_after(protocol.log_message("api", 1, "T", "stdout", ["a", "b"]), 1)
    assert plain is not None and "line_no" not in plain


def test_the_sync_marker_holds_the_publisher_s_positions() -> None:
    counts = {"api": 12}
    marker = protocol.sync_marker(40, 3, counts)
    counts["api"] = 13
    assert marker == {"v": protocol.VERSION, "seq": 40, "event_no": 3,
                      "line_nos": {"api": 12}}


# --------------------------------------------------------------------------- arithmetic

def test_the_wanted_services_are_the_union_or_every_one() -> None:
    assert wanted_services([]) == frozenset()
    assert wanted_services([frozenset({"a"}), frozenset({"b", "a"})]) == {"a", "b"}
    assert wanted_services([frozenset({"a"}), None]) is None


def test_log_topics_name_each_service_or_the_whole_prefix() -> None:
    assert log_topics(frozenset({"api", "web"})) == {"log/api/", "log/web/"}
    assert log_topics(None) == {"log/"}
    assert log_topics(frozenset()) == frozenset()


def test_a_topic_change_adds_before_it_removes() -> None:
    change = topic_change(frozenset({"log/a/", "log/b/"}), frozenset({"log/b/", "log/c/"}))
    assert (change.add, change.remove) == (("log/c/",), ("log/a/",))
    widen = topic_change(frozenset({"log/a/"}), frozenset({"log/"}))
    assert (widen.add, widen.remove) == (("log/",), ("log/a/",))


def test_following_forgets_the_position_of_services_nobody_wants_any_more() -> None:
    following = Following()
    following.want([frozenset({"a", "b"})])
    following.log("a", 1, 1, 1, 1)
    following.log("b", 1, 1, 2, 2)
    change = following.want([frozenset({"a"})])
    assert change.remove == ("log/b/",) and not following.wanted("b")
    assert following.lines.known("a") and not following.lines.known("b")
    following.want([frozenset({"a"}), None])           # every service: a keeps its place
    assert following.wanted("zzz") and following.lines.known("a")


def test_a_join_places_the_covered_services_at_the_marker() -> None:
    following = Following()
    following.want([frozenset({"a", "new"})])
    following.joined({"seq": 20, "event_no": 4, "line_nos": {"a": 7, "other": 3}},
                     frozenset({"a", "new"}))
    assert following.log("a", 8, 1, 21, 21) is None
    gap = following.log("new", 3, 1, 22, 22)     # lines 1 and 2 never reached us
    assert gap == protocol.TopicGap("new", 2, 21, 21)
    assert not following.lines.known("other")
    lost = following.event({"seq": 30, "event_no": 6})
    assert lost == protocol.TopicGap(EVENTS, 1, 21, 29)


def test_a_join_under_the_whole_prefix_places_what_the_marker_names() -> None:
    following = Following()
    following.want([None])
    following.joined({"seq": 5, "event_no": 1, "line_nos": {"a": 2}}, None)
    assert following.lines.known("a") and not following.lines.known("b")


@pytest.mark.parametrize("marker", [
    {}, {"seq": "x", "line_nos": [1]}, {"seq": 1, "event_no": "2", "line_nos": {"a": "3"}},
])
def test_a_malformed_marker_places_nothing_wrong(marker: dict[str, Any]) -> None:
    following = Following()
    following.want([frozenset({"a"})])
    following.joined(marker, frozenset({"a"}))
    assert not following.events.known(EVENTS)
    assert following.event({"seq": "1", "event_no": 1}) is None


# --------------------------------------------------------------------------- the hub

class FakeSub:
    """The SUB socket calls the hub makes."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self.calls: list[tuple[str, str]] = []

    def setsockopt(self, option: int, value: bytes) -> None:
        topic = value.decode()
        if option == zmq.SUBSCRIBE:
            self.calls.append(("+", topic))
            self.topics.append(topic)
        elif option == zmq.UNSUBSCRIBE:
            self.calls.append(("-", topic))
            self.topics.remove(topic)


class FakeManager:
    """Answers `sync` at once with the marker, as the publisher would, into the hub."""

    def __init__(self, line_nos: dict[str, int]) -> None:
        self.hub: Hub | None = None
        self.line_nos = line_nos
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def request(self, cmd: str, **args: Any) -> Any:
        self.requests.append((cmd, args))
        if cmd == "sync" and self.hub is not None:
            marker = protocol.sync_marker(100, 9, self.line_nos)
            self.hub.handle(f"sync/{args['token']}", protocol.encode(marker))
        return {}


def hub_with(line_nos: dict[str, int]) -> tuple[Hub, FakeSub, FakeManager]:
    manager = FakeManager(line_nos)
    hub = Hub("ipc:///nowhere", manager.request, context=None)  # type: ignore[arg-type]
    sub = FakeSub()
    hub._socket = sub  # type: ignore[assignment]
    manager.hub = hub
    return hub, sub, manager


def log_body(service: str, first_seq: int, line_no: int, lines: list[str]) -> bytes:
    return protocol.encode(protocol.log_message(service, first_seq, "T", "stdout", lines,
                                                line_no))


def drain(sub: Subscription) -> list[Item]:
    return sub.take(timeout=0)


def test_the_hub_follows_the_services_asked_for_and_all_of_log_only_for_everything() -> None:
    hub, sock, _ = hub_with({})
    quiet = hub.subscribe(frozenset({"quiet"}), events=False)
    assert [t for t in sock.topics if t.startswith("log")] == ["log/quiet/"]
    everything = hub.subscribe(None, events=False)
    assert [t for t in sock.topics if t.startswith("log")] == ["log/"]
    hub.unsubscribe(everything)
    assert [t for t in sock.topics if t.startswith("log")] == ["log/quiet/"]
    # narrowing subscribed the service again before dropping `log/`: never unfollowed
    assert sock.calls[-2:] == [("+", "log/quiet/"), ("-", "log/")]
    hub.unsubscribe(quiet)
    assert not [t for t in sock.topics if t.startswith("log")]


def test_a_lost_line_reaches_only_the_clients_of_its_service() -> None:
    hub, _, manager = hub_with({"api": 4})
    api = hub.subscribe(frozenset({"api"}), events=False)
    web = hub.subscribe(frozenset({"web"}), events=False)
    hub.handle("log/api/", log_body("api", 101, 5, ["a5"]))
    hub.handle("log/web/", log_body("web", 102, 1, ["w1"]))
    hub.handle("log/api/", log_body("api", 110, 9, ["a9", "a10"]))   # 6, 7, 8 lost
    got = drain(api)
    assert [i.kind for i in got] == ["logs", "gap", "logs"]
    assert got[1].message == {"reason": "bus", "dropped": 3, "from_seq": 102,
                              "to_seq": 109, "service": "api"}
    assert [i.kind for i in drain(web)] == ["logs"]
    assert hub.lost == {"api": 3}
    gevent.idle()  # the report runs in a greenlet of its own
    assert ("gap", {"count": 3}) in manager.requests
    assert ("status", {}) not in manager.requests, "no event was lost"


def test_lines_of_services_nobody_wants_are_counted_and_never_decoded() -> None:
    hub, _, _ = hub_with({})
    every = hub.subscribe(None, events=False)
    hub.unsubscribe(every)
    quiet = hub.subscribe(frozenset({"quiet"}), events=False)
    hub.handle("log/flood/", b"not even json")   # in flight as `log/` was dropped
    assert hub.received == {"flood": 1}
    assert drain(quiet) == []


def test_a_lost_event_asks_for_a_fresh_status_and_sends_no_line_gap() -> None:
    hub, _, manager = hub_with({})
    sub = hub.subscribe(frozenset({"api"}), events=True)        # the marker: event_no 9
    state = {"v": 1, "seq": 120, "event_no": 11, "service": "api", "status": {}}
    hub.handle("state/api/", protocol.encode(state))
    gevent.idle()  # the report and the resync run in greenlets of their own
    assert ("gap", {"count": 1}) in manager.requests
    assert ("status", {}) in manager.requests
    assert [i.kind for i in drain(sub)] == ["state", "status"]
