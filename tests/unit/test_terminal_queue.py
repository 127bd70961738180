"""The terminal's bounded queue: what is skipped, and where the markers go."""

from __future__ import annotations

from promenade_core.supervise.termqueue import MANAGER, TerminalQueue, skip_marker
from promenade_core.supervise.visibility import Visibility, split_names, unknown_names


def small() -> TerminalQueue:
    return TerminalQueue(high_water=100, low_water=40, reserve=50, allowance=20)


def test_lines_are_admitted_until_the_high_water_mark() -> None:
    q = small()
    assert q.admits_lines("flood")
    q.put(b"x" * 99, "flood")
    assert q.admits_lines("flood")
    q.put(b"x", "flood")
    assert not q.admits_lines("flood")


def test_once_skipping_it_skips_until_the_writer_reaches_low_water() -> None:
    """Hysteresis: one long gap rather than a comb of one-batch gaps."""
    q = small()
    q.put(b"x" * 100, "flood")
    assert not q.admits_lines("flood")
    q.skip(5, "flood")
    q.take()
    q.written(50)            # 50 pending: below high water, above low water
    assert not q.admits_lines("flood"), "refused until low water, not below its allowance"
    q.skip(7, "flood")
    assert not q.needs_marker("flood")
    q.written(20)            # 30 pending
    assert q.admits_lines("flood")
    assert q.needs_marker("flood")
    assert q.take_marker("flood") == 12
    assert not q.needs_marker("flood") and q.skipped == 0


def test_a_quiet_source_is_admitted_while_another_is_skipped() -> None:
    q = small()
    q.put(b"x" * 100, "flood")
    assert not q.admits_lines("flood")
    q.skip(9, "flood")
    assert q.admits_lines("quiet"), "a source with less than its allowance queued"
    q.put(b"q" * 19, "quiet")
    assert q.admits_lines("quiet")
    q.put(b"q", "quiet")
    assert not q.admits_lines("quiet"), "at its allowance it is skipped as well"
    q.skip(2, "quiet")
    assert q.skipped == 11
    assert q.marker_sources() == []


def test_a_skipped_run_gets_its_marker_once_the_queue_is_empty() -> None:
    """A flood that stopped while the terminal was paused still gets its marker."""
    q = small()
    q.put(b"x" * 120, "flood")
    assert not q.admits_lines("flood")
    q.skip(3, "flood")
    assert q.take() == b"x" * 120
    assert not q.has_chunks() and q.marker_sources() == []   # still being written
    q.written(120)
    assert q.marker_sources() == ["flood"] and q.take_marker("flood") == 3
    assert q.skipped_sources() == []


def test_each_source_s_marker_goes_in_its_own_order() -> None:
    q = TerminalQueue(high_water=10_000)
    q.put(b"F1", "flood")
    q.put(b"<Fskip>", "flood")   # the marker of flood's gap
    q.put(b"F9", "flood")
    q.put(b"q1", "quiet")
    out = b"".join(q.take(limit=4) for _ in range(5))
    assert out.index(b"F1") < out.index(b"<Fskip>") < out.index(b"F9")
    assert out.index(b"q1") < out.index(b"F9"), "a quiet line never waits for a gap"


def test_messages_use_the_reserve_then_count_as_skipped() -> None:
    q = small()
    q.put(b"x" * 100, "flood")
    assert q.admits_message(50)          # into the reserve
    q.put(b"m" * 50)
    assert not q.admits_message(1)       # stuck for good: skipped, never silently
    q.skip(1, MANAGER)
    assert q.skipped == 1 and q.skipped_sources() == [MANAGER]


def test_discard_forgets_everything() -> None:
    q = small()
    q.put(b"abc", "a")
    q.skip(2, "a")
    q.discard()
    assert q.pending == 0 and not q.has_chunks() and q.skipped_sources() == []


def test_the_marker_text() -> None:
    assert skip_marker(12345, "api") == (
        "… 12,345 lines of api not shown here (terminal too slow); see promenade logs api")
    assert skip_marker(1, "api").startswith("… 1 line of api not shown")
    assert skip_marker(2, MANAGER).startswith("… 2 manager messages not shown")


def test_split_names_takes_commas_and_repeats() -> None:
    assert split_names(["api,web", " worker ", "api", ",,"]) == ["api", "web", "worker"]
    assert unknown_names(["api", "apii"], ["api", "web"]) == ["apii"]


def test_only_hides_everything_else_including_later_services() -> None:
    v = Visibility(only=["api"])
    assert v.shows("api") and not v.shows("worker") and not v.shows("added-later")


def test_toggle_moves_a_service_in_and_out() -> None:
    v = Visibility(only=["api"], hidden=["web"])
    assert not v.shows("web")
    assert v.toggle("worker") is True and v.shows("worker")
    assert v.toggle("api") is False and not v.shows("api")
    assert v.toggle("api") is True and v.shows("api")
    assert v.toggle("web") is True and v.shows("web")
    v.show_all()
    assert v.shows("anything") and not v.hidden


def test_take_is_fair_between_sources_and_keeps_each_sources_order() -> None:
    q = TerminalQueue(high_water=10_000)
    for n in range(5):
        q.put(b"F%d" % n, "flood")
    q.put(b"q1", "quiet")
    q.put(b"q2", "quiet")
    q.put(b"m", MANAGER)
    # one chunk from each source in turn, up to the limit: the quiet line goes out in
    # the first write, not after the flood's backlog
    assert q.take(limit=5) == b"F0q1m"
    assert q.take(limit=5) == b"F1q2F2"
    assert q.take(limit=5) == b"F3F4"
    assert not q.has_chunks() and q.pending == 15  # until the writer says it is written


def test_take_returns_one_chunk_even_when_it_is_larger_than_the_limit() -> None:
    q = TerminalQueue()
    q.put(b"x" * 100, "a")
    q.put(b"y", "a")
    assert q.take(limit=10) == b"x" * 100
    assert q.take(limit=10) == b"y"
