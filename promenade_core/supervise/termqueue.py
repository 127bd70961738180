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
of another service's flood. Each source's own lines keep their order.
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
#: At most this much per write: at a reader's 200 MB/s, about a millisecond, the
#: longest a newly queued line of another source waits for the write in progress.
TAKE_LIMIT = 256 * 1024
#: The source of the manager's own messages and the skip markers.
MANAGER = ""


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
        self._sources: dict[str, deque[bytes]] = {}
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

    def put(self, data: bytes, source: str = MANAGER) -> None:
        chunks = self._sources.get(source)
        if chunks is None:
            chunks = self._sources[source] = deque()
        chunks.append(data)
        self.pending += len(data)

    def take(self, limit: int = TAKE_LIMIT) -> bytes:
        """About `limit` bytes (at least one chunk) as one write, a chunk from each
        source in turn (the pending count drops as it is written)."""
        taken: list[bytes] = []
        size = 0
        while self._sources and size < limit:
            for source, chunks in list(self._sources.items()):
                data = chunks.popleft()
                taken.append(data)
                size += len(data)
                if not chunks:
                    del self._sources[source]
        return b"".join(taken)

    def written(self, count: int) -> None:
        self.pending -= count

    def has_chunks(self) -> bool:
        return bool(self._sources)

    def discard(self) -> None:
        """The terminal went away: nothing queued will ever be written."""
        self._sources.clear()
        self.pending = 0
        self.skipped = 0
