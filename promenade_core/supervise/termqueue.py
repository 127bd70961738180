"""What the terminal is shown when it cannot keep up: the decisions, without any I/O.

The terminal is one reader among several (the ring buffer, the bus, the dashboard, the
log files), and the slowest: a paused terminal (Ctrl-S), a pager that stopped reading
or a slow SSH link would otherwise slow every service down to its pace. So the
terminal's queue is bounded, and when it is full the terminal alone skips lines:

- a batch of lines is admitted while the queue holds less than `high_water` bytes;
  once one is refused, lines stay refused until the writer has brought the queue
  below `low_water` (hysteresis: one long gap, not a comb of tiny ones);
- the skipped lines are counted, and one marker per skipped run takes their place,
  queued when lines are admitted again or when the writer has emptied the queue (a
  flood that stopped still gets its marker);
- a manager message is admitted past `high_water`, into a reserve of `reserve` bytes:
  warnings and errors reach a slow terminal late, never silently; only beyond the
  reserve (a terminal stuck for good) is a message counted with the skipped lines.

Batches are dropped whole, before formatting: a skipped batch costs no regex, no
encoding and no syscall, and no line reaches the terminal broken in two.

The queue is fair between its sources (each service, and the manager): the writer
takes at most TAKE_LIMIT bytes at a time, one chunk from each source in turn, so a
quiet service's line goes out with the next write instead of waiting behind megabytes
of another service's flood. Each source's own lines keep their order, and a skip
marker is a barrier: it goes out after everything queued before it (the lines before
the gap) and before everything queued after it (the lines after the gap).
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

#: A few milliseconds of a flood at full speed: a reader that keeps up on average but
#: is off the CPU now and then (two cores, a flooding service, the manager and the
#: reader) loses nothing, and a terminal that is really too slow still costs at most
#: this much memory. 256 KiB lost lines to a benchmark's reader that kept up.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024
RESERVE = 64 * 1024
#: At most this much per write: at a reader's 200 MB/s, about a millisecond, the
#: longest a newly queued line of another source waits for the write in progress.
TAKE_LIMIT = 256 * 1024
#: The source of the manager's own messages and the skip markers.
MANAGER = ""


class _Chunk(NamedTuple):
    order: int       # when it was queued, over all sources
    data: bytes
    barrier: bool    # a skip marker (see the module)


def skip_marker(count: int) -> str:
    """The text that stands for `count` lines the terminal did not show."""
    noun = "line" if count == 1 else "lines"
    return f"… {count:,} {noun} not shown here (terminal too slow); see promenade logs"


class TerminalQueue:
    """The bytes waiting for the terminal, and the count of what was skipped."""

    def __init__(self, high_water: int = HIGH_WATER, low_water: int = LOW_WATER,
                 reserve: int = RESERVE) -> None:
        self.high_water = high_water
        self.low_water = low_water
        self.reserve = reserve
        #: each source's chunks, in order; a source is removed when it empties
        self._sources: dict[str, deque[_Chunk]] = {}
        self._queued = 0                        # chunks ever queued: the next order
        self._barriers: deque[int] = deque()    # orders of the markers not yet taken
        #: bytes queued and not yet written (a chunk being written counts until it is)
        self.pending = 0
        #: lines skipped since the last marker
        self.skipped = 0
        self._skipping = False

    def admits_lines(self) -> bool:
        """Whether a batch of service lines may be queued now (ask before formatting)."""
        if self._skipping and self.pending < self.low_water:
            self._skipping = False
        if not self._skipping and self.pending >= self.high_water:
            self._skipping = True
        return not self._skipping

    def skip(self, count: int) -> None:
        """`count` lines were not admitted."""
        self.skipped += count

    def admits_message(self, size: int) -> bool:
        """Whether a manager message of `size` bytes may be queued (else: skip it)."""
        return self.pending + size <= self.high_water + self.reserve

    def needs_marker(self) -> bool:
        """A skipped run has ended (lines are admitted again, or the queue is empty)."""
        return self.skipped > 0 and (self.pending == 0 or not self._skipping)

    def take_marker(self) -> int:
        """The count for the marker being queued now; the run starts again at 0."""
        count, self.skipped = self.skipped, 0
        return count

    def put(self, data: bytes, source: str = MANAGER, barrier: bool = False) -> None:
        """Queue `data` from `source`; `barrier` for a skip marker."""
        chunks = self._sources.get(source)
        if chunks is None:
            chunks = self._sources[source] = deque()
        chunks.append(_Chunk(self._queued, data, barrier))
        if barrier:
            self._barriers.append(self._queued)
        self._queued += 1
        self.pending += len(data)

    def take(self, limit: int = TAKE_LIMIT) -> bytes:
        """About `limit` bytes (at least one chunk) as one write, a chunk from each
        source in turn, no chunk across a marker (the pending count drops as it is
        written)."""
        taken: list[bytes] = []
        size = 0
        while self._sources and size < limit:
            moved = False
            for source in list(self._sources):
                head = self._sources[source][0]
                if not self._may_take(head):
                    continue
                self._pop(source)
                taken.append(head.data)
                size += len(head.data)
                moved = True
            if not moved:   # cannot happen (the oldest chunk may always go); never spin
                break
        return b"".join(taken)

    def _may_take(self, head: _Chunk) -> bool:
        """A marker once everything older is out; anything else while it is older
        than the first marker still queued."""
        first_barrier = self._barriers[0] if self._barriers else math.inf
        if head.barrier:
            return all(chunks[0].order >= head.order for chunks in self._sources.values())
        return head.order < first_barrier

    def _pop(self, source: str) -> None:
        chunks = self._sources[source]
        if chunks.popleft().barrier:
            self._barriers.popleft()
        if not chunks:
            del self._sources[source]

    def written(self, count: int) -> None:
        self.pending -= count

    def has_chunks(self) -> bool:
        return bool(self._sources)

    def discard(self) -> None:
        """The terminal went away: nothing queued will ever be written."""
        self._sources.clear()
        self._barriers.clear()
        self.pending = 0
        self.skipped = 0
