"""Which configured hostnames lead to this machine right now.

A hostname in the config is only a wish: in `disabled` or `manual` mode, or while
hostsd is missing, nothing maps it, and the name resolves wherever DNS says, perhaps to
someone else's server. A page served from there must not count as a local origin for
the dashboard's guard or the CORS proxies. So a configured hostname counts as local
only while it is mapped to loopback: hostsd confirmed our entry, or the system resolver
returns loopback addresses and nothing else (an entry added by hand, `manual` mode).

Resolving can block for seconds (a DNS server that does not answer), so lookups run in
a thread of their own, one at a time, every REFRESH_SECONDS and whenever a service
starts, stops or changes; requests only read the cached answer. The gevent loop never
waits for DNS, and no request triggers a lookup.

What this cannot stop: a name the attacker's own DNS answers with 127.0.0.1 for us and
with their server for the browser (DNS rebinding between our lookup and the browser's).
The Host guard still refuses such a page's requests to the dashboard by name, but only
`*.localhost` names (which browsers resolve to loopback themselves) or hostsd's entries
are immune; prefer them.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.event
import gevent.threadpool

#: How often the names are looked up again when nothing happens.
REFRESH_SECONDS = 10.0

Lookup = Callable[[str], list[str]]


def only_loopback(addresses: Iterable[str]) -> bool:
    """True when there is at least one address and every one is a loopback address."""
    seen = False
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if not ip.is_loopback:
            return False
        seen = True
    return seen


def system_addresses(hostname: str) -> list[str]:
    """The addresses the system resolver gives for `hostname` (none when it fails)."""
    try:
        infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def _normal(hostname: str) -> str:
    return hostname.lower().rstrip(".")


class MappedNames:
    """The configured hostnames that resolve to loopback only, looked up off the loop.

    `after_refresh` is called after every round of lookups (the supervisor then
    publishes a state event for each service whose hostname changed side). Follows the
    supervisor's Attachments protocol: a service event asks for a fresh round.
    """

    def __init__(
        self,
        names: Callable[[], Iterable[str | None]],
        after_refresh: Callable[[], None],
        lookup: Lookup = system_addresses,
        interval: float = REFRESH_SECONDS,
        run: Callable[[Lookup, str], list[str]] | None = None,
    ) -> None:
        self._names = names
        self._after_refresh = after_refresh
        self._lookup = lookup
        self._interval = interval
        self._pool: gevent.threadpool.ThreadPool | None = None
        if run is None:
            pool = self._pool = gevent.threadpool.ThreadPool(1)
            run = lambda fn, name: pool.apply(fn, (name,))  # noqa: E731
        self._run = run
        self._loopback: frozenset[str] = frozenset()
        self._wake = gevent.event.Event()
        self._loop: gevent.Greenlet | None = None

    def resolves_to_loopback(self, hostname: str) -> bool:
        """The cached answer; never blocks."""
        return _normal(hostname) in self._loopback

    def refresh(self) -> None:
        """One round: look up every configured hostname, then tell the supervisor."""
        names = sorted({_normal(n) for n in self._names() if n})
        self._loopback = frozenset(n for n in names if only_loopback(self._run(self._lookup, n)))
        self._after_refresh()

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop = gevent.spawn(self._refresh_forever)

    def close(self) -> None:
        """Stop refreshing. The pool is left alone: killing it waits for a lookup in
        flight (seconds, with a DNS server that does not answer) and would slow the
        shutdown; its thread does not keep the process alive."""
        if self._loop is not None:
            self._loop.kill(block=False)

    def _refresh_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                self.refresh()
            except Exception as exc:  # one bad round must not end the refreshing
                print(f"promenade: checking hostnames failed: {exc!r}", file=sys.stderr)
            self._wake.wait(self._interval)

    # The supervisor's Attachments protocol.
    def on_started(self, service: Any) -> None:
        self.poke()

    def on_stopped(self, service: Any) -> None:
        self.poke()

    def on_updated(self, service: Any, old: Any) -> None:
        self.poke()
