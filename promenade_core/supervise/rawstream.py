"""Who is attached to which service, and who of them has the keyboard.

A service's raw output (the bytes it wrote, colours and cursor movement included) is
published on `raw/<service>/` only while at least one client is attached to it, so the
output path pays one dict lookup per read when nobody is. Clients attach with a lease
that they renew (the `attach` command again) at least every LEASE_SECONDS: a client
that dies without detaching stops costing anything a few seconds later.

One lease per service holds the keyboard: the first attach gets it, a later attach is
read-only unless it asks to take it over (the earlier one becomes read-only and sees so
in its next renewal), and when the holder leaves, the next read-only client to renew
gets it. A lease taken `read_only` (a dashboard tab without the page token) never
holds the keyboard, so it cannot keep it from anyone. Input without a lease is accepted
only while nobody holds the keyboard, so a script can type into a service nobody is
attached to.

Everything here is a decision over a clock; the supervisor does the publishing and the
control commands the writing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

#: A lease not renewed for this long is gone (clients renew every LEASE_SECONDS / 4).
LEASE_SECONDS = 10.0
#: At most this many leases per service: each one is a subscriber the feed serves.
MAX_LEASES = 64


class Refused(Exception):
    """A lease operation refused; `code` is a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Grant(TypedDict):
    """The `attach` command's result."""

    lease: str
    #: this lease has the keyboard: its `input` and `resize` are accepted
    writer: bool
    #: how many clients are attached to the service, this one included
    attached: int
    #: renew (send `attach` with this lease) within this many seconds
    lease_seconds: float


@dataclass
class _Lease:
    service: str
    expires: float
    read_only: bool = False


class Leases:
    """Every attach lease of one manager, by id, with the keyboard holder per service."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 new_id: Callable[[], str] = lambda: os.urandom(12).hex()) -> None:
        self._clock = clock
        self._new_id = new_id
        self._leases: dict[str, _Lease] = {}
        #: service -> number of live leases; what the output path looks at
        self._counts: dict[str, int] = {}
        #: service -> the lease id holding the keyboard
        self._writers: dict[str, str] = {}
        self._next_expiry = float("inf")

    def watched(self, service: str) -> bool:
        """Whether anyone is attached to `service`: the output path's check per read."""
        if service not in self._counts:
            return False
        if self._clock() >= self._next_expiry:
            self.expire()
        return service in self._counts

    def attach(self, service: str, lease: str | None = None, take: bool = False,
               read_only: bool = False) -> Grant:
        """A new lease on `service` (lease None), or the renewal of one; `read_only`
        counts for a new lease only."""
        self.expire()
        now = self._clock()
        if lease is None:
            if self._counts.get(service, 0) >= MAX_LEASES:
                raise Refused("busy", f"{service!r} already has {MAX_LEASES} attached "
                                      "clients")
            lease = self._new_id()
            held = self._leases[lease] = _Lease(service, now + LEASE_SECONDS, read_only)
            self._counts[service] = self._counts.get(service, 0) + 1
        else:
            held = self._own(lease, service)
            held.expires = now + LEASE_SECONDS
        if not held.read_only and (take or service not in self._writers):
            self._writers[service] = lease
        self._next_expiry = min(self._next_expiry, now + LEASE_SECONDS)
        return {"lease": lease, "writer": self._writers.get(service) == lease,
                "attached": self._counts[service], "lease_seconds": LEASE_SECONDS}

    def detach(self, lease: str) -> bool:
        """End a lease; False when it was not (or no longer) there."""
        held = self._leases.pop(lease, None)
        if held is None:
            return False
        self._drop(lease, held.service)
        return True

    def may_type(self, service: str, lease: str | None) -> None:
        """Raise Refused unless input from `lease` (None: a client without one) may
        reach `service` now."""
        self.expire()
        writer = self._writers.get(service)
        if lease is not None:
            self._own(lease, service)
            if writer != lease:
                raise Refused("read_only", f"another client has the keyboard of "
                                           f"{service!r}; attach with take to take it over")
        elif writer is not None:
            raise Refused("read_only", f"a client attached to {service!r} has its "
                                       "keyboard; input needs that client's lease")

    def forget(self, service: str) -> None:
        """A service removed by a reload: its leases end with it."""
        for lease in [k for k, v in self._leases.items() if v.service == service]:
            self.detach(lease)

    def expire(self) -> None:
        """Drop the leases whose clients stopped renewing."""
        now = self._clock()
        if now < self._next_expiry:
            return
        for lease, held in list(self._leases.items()):
            if held.expires <= now:
                del self._leases[lease]
                self._drop(lease, held.service)
        self._next_expiry = min((h.expires for h in self._leases.values()),
                                default=float("inf"))

    def _own(self, lease: str, service: str) -> _Lease:
        held = self._leases.get(lease)
        if held is None or held.service != service:
            raise Refused("not_attached", f"no attach lease {lease[:8]!r}… on {service!r} "
                                          "(it expired or was never given); attach again")
        return held

    def _drop(self, lease: str, service: str) -> None:
        left = self._counts.get(service, 1) - 1
        if left > 0:
            self._counts[service] = left
        else:
            self._counts.pop(service, None)
        if self._writers.get(service) == lease:
            del self._writers[service]
