"""What the web process follows on the manager's feed, and where each followed topic
stands: the hub's decisions, without its sockets.

The hub subscribes to `log/<service>/` for the services its clients asked for, and to
the whole `log/` only while some client wants every service. Measured before: with
`log/` followed for one client of `services=quiet`, a flood elsewhere reached this
process at ~9,000 messages/s of 16 KiB, and on 2 busy cores its SUB queue filled (the
quiet line waited behind thousands of flood messages: 17-60 ms p99, and lines lost at
the high-water mark). Gap accounting is per topic (protocol.TopicTracker): seq counts
every topic, so it cannot tell what a subscriber to some of them lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from promenade_core.bus import protocol

#: A client's services: a set of names, or None for every service.
Services = frozenset[str] | None


def wanted_services(clients: Iterable[Services]) -> Services:
    """The union of what the clients want; None as soon as one wants every service."""
    union: set[str] = set()
    for services in clients:
        if services is None:
            return None
        union.update(services)
    return frozenset(union)


def log_topics(wanted: Services) -> frozenset[str]:
    """The log topics that carry exactly `wanted`: `log/` for every service."""
    if wanted is None:
        return frozenset({protocol.LOG_PREFIX})
    return frozenset(protocol.log_topic(name) for name in wanted)


@dataclass(frozen=True)
class TopicChange:
    """The subscriptions to make, then the ones to drop: in this order, a service
    followed before and after is never unsubscribed in between (ZeroMQ applies a
    socket's subscriptions in the order they were made), so its count stays exact."""

    add: tuple[str, ...]
    remove: tuple[str, ...]


def topic_change(current: frozenset[str], wanted: frozenset[str]) -> TopicChange:
    return TopicChange(tuple(sorted(wanted - current)), tuple(sorted(current - wanted)))


class Following:
    """The log topics followed now, the services wanted, and the gap accounting of
    each (the lines per service; the events, always followed, as one topic)."""

    def __init__(self) -> None:
        self.topics: frozenset[str] = frozenset()
        self.services: Services = frozenset()
        self.lines = protocol.TopicTracker()
        self.events = protocol.TopicTracker()

    def want(self, clients: Iterable[Services]) -> TopicChange:
        """Follow what `clients` want from now on; returns the subscriptions to change.
        Services no longer wanted lose their position: their lines are not all seen
        any more (under `log/` they arrive, but the hub skips them undecoded)."""
        self.services = wanted_services(clients)
        topics = log_topics(self.services)
        change = topic_change(self.topics, topics)
        self.topics = topics
        if self.services is not None:
            self.lines.keep(self.services)
        return change

    def wanted(self, service: str) -> bool:
        return self.services is None or service in self.services

    def joined(self, marker: dict[str, Any], covered: Services) -> None:
        """A sync marker arrived for a join that followed `covered` (what was wanted
        when it was asked for): from the marker's positions on, every line of those
        services reaches us, so any later jump is a loss. A service named but absent
        from the marker has written nothing yet (position 0); under `log/`, services
        the marker does not name are placed by their first message."""
        seq = marker.get("seq")
        seq = seq if type(seq) is int else None
        line_nos = marker.get("line_nos")
        line_nos = line_nos if isinstance(line_nos, dict) else {}
        names = line_nos if covered is None else covered
        for name in names:
            number = line_nos.get(name, 0)
            if self.wanted(name) and type(number) is int:
                self.lines.place(name, number, seq)
        event_no = marker.get("event_no")
        if type(event_no) is int:
            self.events.place(protocol.TopicTracker.EVENTS, event_no, seq)

    def log(self, service: str, line_no: int, count: int, first_seq: int,
            seq: int) -> protocol.TopicGap | None:
        """A log message of a wanted service (line_no 0: it has none)."""
        return self.lines.advance(service, line_no, count, first_seq, seq)

    def event(self, message: dict[str, Any]) -> protocol.TopicGap | None:
        """A state, config or manager event: what was lost among them before it."""
        event_no, seq = message.get("event_no", 0), message.get("seq", 0)
        if type(event_no) is not int or type(seq) is not int:
            return None
        return self.events.advance(protocol.TopicTracker.EVENTS, event_no, 1, seq, seq)
