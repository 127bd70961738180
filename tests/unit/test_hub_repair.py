"""The web hub fetches back what the manager's PUB socket dropped: a stretch revealed by
a seq jump, and the end of a burst revealed by nothing but a quiet feed. The manager's
side is its real LogStore behind a fake `request` (no sockets here)."""

from __future__ import annotations

from typing import Any

import gevent

from promenade_core.bus import protocol
from promenade_core.supervise.logs import Batch, LogStore
from promenade_web.hub import Hub, Item, Subscription


class Manager:
    """A manager's log buffers and the two commands the hub sends about gaps."""

    def __init__(self, capacity: int = 1000) -> None:
        self.logs = LogStore(capacity)
        self.seq = 0
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.published: list[bytes] = []

    def write(self, service: str, count: int) -> bytes:
        """`count` lines of `service`, buffered and returned as the published bytes."""
        first = self.seq + 1
        lines = [f"{service} {first + i}" for i in range(count)]
        self.seq += count
        self.logs.append(service, Batch(first, "T", "stdout", lines))
        return protocol.encode(protocol.log_message(service, first, "T", "stdout", lines))

    def request(self, cmd: str, **args: Any) -> Any:
        self.requests.append((cmd, args))
        if cmd == "logs":
            names = args.get("services") or ["api", "web"]
            messages = self.logs.messages(names, since=args.get("since"),
                                          until=args.get("until"))
            return {"seq": self.seq, "run_id": "r", "messages": messages}
        if cmd == "status":
            return {"services": {}}
        return {}


def hub_with(manager: Manager, services: frozenset[str] | None = None,
             ) -> tuple[Hub, Subscription]:
    hub = Hub("inproc://unused", manager.request, context=None)  # type: ignore[arg-type]
    sub = Subscription(services, events=True)
    hub._subs.add(sub)
    hub._logs_on = True  # what subscribe() does once the socket has joined
    return hub, sub


def received(sub: Subscription) -> list[tuple[str, int, int]]:
    """(kind, first seq, last seq) of each queued log item; gaps as (gap, count, 0)."""
    out: list[tuple[str, int, int]] = []
    for item in sub.take(timeout=0, max_lines=10**9):
        if item.kind == "gap":
            out.append(("gap", item.message["dropped"], 0))
        elif item.kind == "logs":
            out.append((item.service or "", item.first_seq, item.seq))
    return out


def lines_of(items: list[Item]) -> list[str]:
    return [line for item in items if item.kind == "logs" for line in item.message["lines"]]


def test_a_dropped_stretch_still_buffered_comes_back_in_order_without_a_gap() -> None:
    manager = Manager()
    hub, sub = hub_with(manager)
    hub.handle("log/api/", manager.write("api", 10))
    manager.write("api", 20)  # dropped by the PUB socket
    hub.handle("log/api/", manager.write("api", 10))
    assert received(sub) == [("api", 1, 10), ("api", 11, 30), ("api", 31, 40)]
    assert ("logs", {"since": 10, "until": 30, "tail": protocol.REPAIR_LINES}) in manager.requests
    gevent.sleep(0)
    assert not any(cmd == "gap" for cmd, _ in manager.requests)


def test_what_the_buffers_no_longer_hold_is_a_gap_before_what_they_do() -> None:
    manager = Manager(capacity=15)
    hub, sub = hub_with(manager)
    hub.handle("log/api/", manager.write("api", 10))
    manager.write("api", 20)  # dropped; api's buffer keeps 15 lines: 17..30 and 36
    manager.write("web", 5)   # dropped; web's own buffer keeps them: 31..35
    hub.handle("log/api/", manager.write("api", 1))
    assert received(sub) == [("api", 1, 10), ("gap", 6, 0), ("api", 17, 30),
                             ("web", 31, 35), ("api", 36, 36)]
    gevent.sleep(0)
    assert ("gap", {"count": 6}) in manager.requests, "the loss is reported to the manager"
    assert any(cmd == "status" for cmd, _ in manager.requests), "cards are refreshed"


def test_the_lost_end_of_a_burst_is_fetched_when_the_feed_goes_quiet() -> None:
    manager = Manager()
    hub, sub = hub_with(manager)
    hub.handle("log/api/", manager.write("api", 10))
    tail = manager.write("api", 5)  # the PUB socket dropped the burst's last message
    hub._check_tail()
    assert received(sub) == [("api", 1, 10), ("api", 11, 15)]
    # Had it been in flight rather than lost, it is cut when it comes: no duplicate.
    hub.handle("log/api/", tail)
    assert received(sub) == []
    hub.handle("log/api/", manager.write("api", 2))
    assert received(sub) == [("api", 16, 17)]


def test_a_message_half_fetched_already_passes_on_only_its_new_lines() -> None:
    manager = Manager()
    hub, sub = hub_with(manager)
    hub.handle("log/api/", manager.write("api", 3))
    first = manager.write("api", 3)
    hub._check_tail()  # fetched 4..6 while they were in flight
    second = manager.write("api", 3)
    received(sub)
    hub.handle("log/api/", first)
    hub.handle("log/api/", second)
    assert received(sub) == [("api", 7, 9)]


def test_a_quiet_feed_with_nothing_missing_fetches_nothing_more() -> None:
    manager = Manager()
    hub, sub = hub_with(manager)
    hub.handle("log/api/", manager.write("api", 10))
    hub._check_tail()
    assert received(sub) == [("api", 1, 10)]
    gevent.sleep(0)
    assert [cmd for cmd, _ in manager.requests] == ["logs"]


def test_a_client_of_some_services_gets_only_theirs_and_no_false_gap() -> None:
    """Every service's seqs are accounted for (the others' lines are no loss), and the
    client gets only the lines it asked for."""
    manager = Manager()
    hub, sub = hub_with(manager, services=frozenset({"api"}))
    hub.handle("log/api/", manager.write("api", 2))
    hub.handle("log/web/", manager.write("web", 4))  # received, not wanted
    manager.write("web", 1)  # dropped, not wanted
    manager.write("api", 2)  # dropped
    hub._check_tail()
    assert received(sub) == [("api", 1, 2), ("api", 8, 9)]
    assert ("logs", {"since": 6, "tail": protocol.REPAIR_LINES}) in manager.requests
    hub.handle("log/web/", manager.write("web", 1))
    manager.write("web", 3)  # dropped, and gone from the buffer below
    manager.logs.resize("web", 0)
    hub.handle("log/api/", manager.write("api", 1))
    assert received(sub) == [("gap", 3, 0), ("api", 14, 14)], "a loss is told to all"


def test_gaps_one_after_another_fetch_at_most_once_per_interval() -> None:
    manager = Manager()
    hub, sub = hub_with(manager)
    hub.handle("log/api/", manager.write("api", 1))
    manager.write("api", 1)
    hub.handle("log/api/", manager.write("api", 1))
    manager.write("api", 1)
    hub.handle("log/api/", manager.write("api", 1))  # within REPAIR_INTERVAL: no fetch
    assert [cmd for cmd, _ in manager.requests].count("logs") == 1
    assert received(sub) == [("api", 1, 1), ("api", 2, 2), ("api", 3, 3), ("gap", 1, 0),
                             ("api", 5, 5)]


def test_the_logs_command_cuts_at_since_and_until() -> None:
    message = protocol.log_message("api", 10, "T", "stdout", ["a", "b", "c", "d"])
    assert protocol.log_until(message, 9) is None
    assert protocol.log_until(message, 13) is message
    cut = protocol.log_between(message, 10, 12)
    assert cut is not None
    assert (cut["first_seq"], cut["seq"], cut["lines"]) == (11, 12, ["b", "c"])
    store = LogStore(100)
    store.append("api", Batch(1, "T", "stdout", ["1", "2", "3"]))
    store.append("api", Batch(4, "T", "stdout", ["4", "5"]))
    store.append("web", Batch(6, "T", "stdout", ["6"]))
    got = store.messages(["api", "web"], since=2, until=4)
    assert [(m["service"], m["first_seq"], m["lines"]) for m in got] == [
        ("api", 3, ["3"]), ("api", 4, ["4"])]
