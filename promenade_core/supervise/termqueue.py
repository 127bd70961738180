"""What the terminal is shown when it cannot keep up: the decisions, without any I/O.

The terminal is one reader among several (the ring buffer, the bus, the dashboard, the
log files), and the slowest: a paused terminal (Ctrl-S), a pager that stopped reading
or a slow SSH link would otherwise slow every service down to its pace. So the
terminal's queue is bounded, and when it is full the terminal alone skips lines:

- lines are admitted while the queue holds less than `high_water` bytes; past it, a
  source (a service) with `allowance` bytes or more queued is refused, and stays
  refused until the writer has brought the queue below `low_water` (hysteresis: one
  long gap, not a comb of tiny ones). A source with less queued is still admitted: a
  quiet service's line is never skipped because another service floods (the queue is
  bounded by high water plus an allowance per source);
- each source's skipped lines are counted, and one marker per skipped run takes their
  place in that source's own order, queued when its lines are admitted again or when
  the writer has emptied the queue (a flood that stopped still gets its marker);
- a manager message is admitted past `high_water`, into a reserve of `reserve` bytes:
  warnings and errors reach a slow terminal late, never silently; only beyond the
  reserve (a terminal stuck for good) is a message counted as skipped.

Batches are dropped whole, before formatting: a skipped batch costs no regex, no
encoding and no syscall, and no line reaches the terminal broken in two.

The queue is fair between its sources (each service, and the manager): the writer
takes at most TAKE_LIMIT bytes at a time, one chunk from each source in turn, so a
quiet service's line goes out with the next write instead of waiting behind megabytes
of another service's flood. Each source's own lines, and its markers, keep their order.
"""

from __future__ import annotations

from collections import deque

#: A few milliseconds of a flood at full speed: a reader that keeps up on average but
#: is off the CPU now and then (two cores, a flooding service, the manager and the
#: reader) loses nothing, and a terminal that is really too slow still costs at most
#: this much memory. 256 KiB lost lines to a benchmark's reader that kept up.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024
RESERVE = 64 * 1024
#: What a source may have queued and still be admitted past high water: far more than
#: a quiet service writes between two writes to the terminal, far less than a flood.
ALLOWANCE = 64 * 1024
#: At most this much per write: at a reader's 200 MB/s, about a millisecond, the
#: longest a newly queued line of another source waits for the write in progress.
TAKE_LIMIT = 256 * 1024
#: The source of the manager's own messages.
MANAGER = ""


def skip_marker(count: int, source: str = MANAGER) -> str:
    """The text that stands for `count` lines of `source` the terminal did not show."""
    if source == MANAGER:
        noun = "message" if count == 1 else "messages"
        return (f"… {count:,} manager {noun} not shown here (terminal too slow); "
                "see promenade logs promenade")
    noun = "line" if count == 1 else "lines"
    return (f"… {count:,} {noun} of {source} not shown here (terminal too slow); "
            f"see promenade logs {source}")


class TerminalQueue:
    """The bytes waiting for the terminal, and the count of what was skipped."""

    def __init__(self, high_water: int = HIGH_WATER, low_water: int = LOW_WATER,
                 reserve: int = RESERVE, allowance: int = ALLOWANCE) -> None:
        self.high_water = high_water
        self.low_water = low_water
        self.reserve = reserve
        self.allowance = allowance
        #: each source's chunks, in order; a source is removed when it empties
        self._sources: dict[str, deque[bytes]] = {}
        #: each source's bytes queued (taken chunks no longer count here)
        self._queued: dict[str, int] = {}
        #: bytes queued and not yet written (a chunk being written counts until it is)
        self.pending = 0
        #: per source, lines skipped since its last marker
        self._skipped: dict[str, int] = {}
        #: sources refused until the queue is below low water
        self._refused: set[str] = set()
        self._skipping = False

    @property
    def skipped(self) -> int:
        """Lines skipped and not yet stood for by a marker, over all sources."""
        return sum(self._skipped.values())

    def admits_lines(self, source: str) -> bool:
        """Whether a batch of `source`'s lines may be queued now (ask before
        formatting)."""
        if self._skipping and self.pending < self.low_water:
            self._skipping = False
            self._refused.clear()
        if not self._skipping and self.pending >= self.high_water:
            self._skipping = True
        if not self._skipping:
            return True
        if source in self._refused:
            return False
        if self._queued.get(source, 0) < self.allowance:
            return True
        self._refused.add(source)
        return False

    def skip(self, count: int, source: str = MANAGER) -> None:
        """`count` lines of `source` were not admitted."""
        self._skipped[source] = self._skipped.get(source, 0) + count

    def admits_message(self, size: int) -> bool:
        """Whether a manager message of `size` bytes may be queued (else: skip it)."""
        return self.pending + size <= self.high_water + self.reserve

    def needs_marker(self, source: str) -> bool:
        """A skipped run of `source` has ended (it is admitted again, or the queue is
        empty)."""
        return source in self._skipped and (self.pending == 0
                                            or source not in self._refused)

    def marker_sources(self) -> list[str]:
        """The sources whose skipped run has ended."""
        return [source for source in self._skipped if self.needs_marker(source)]

    def skipped_sources(self) -> list[str]:
        """Every source with a skipped run still open (at exit, each gets its marker)."""
        return list(self._skipped)

    def take_marker(self, source: str) -> int:
        """The count for `source`'s marker being queued now; its run starts again."""
        return self._skipped.pop(source, 0)

    def put(self, data: bytes, source: str = MANAGER) -> None:
        """Queue `data` from `source`."""
        chunks = self._sources.get(source)
        if chunks is None:
            chunks = self._sources[source] = deque()
        chunks.append(data)
        self._queued[source] = self._queued.get(source, 0) + len(data)
        self.pending += len(data)

    def take(self, limit: int = TAKE_LIMIT) -> bytes:
        """About `limit` bytes (at least one chunk) as one write, a chunk from each
        source in turn (the pending count drops as it is written)."""
        taken: list[bytes] = []
        size = 0
        while self._sources and size < limit:
            for source in list(self._sources):
                chunks = self._sources[source]
                data = chunks.popleft()
                if chunks:
                    self._queued[source] -= len(data)
                else:
                    del self._sources[source]
                    del self._queued[source]
                taken.append(data)
                size += len(data)
        return b"".join(taken)

    def written(self, count: int) -> None:
        self.pending -= count

    def has_chunks(self) -> bool:
        return bool(self._sources)

    def discard(self) -> None:
        """The terminal went away: nothing queued will ever be written."""
        self._sources.clear()
        self._queued.clear()
        self._skipped.clear()
        self._refused.clear()
        self.pending = 0
