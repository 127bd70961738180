"""Log timestamps: the kept seconds' text never shows a stale second."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from promenade_core.supervise.logs import iso_timestamp


def _reference(now: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}Z"


@given(st.lists(st.floats(min_value=0, max_value=4e9), min_size=1, max_size=20))
def test_any_sequence_of_times_matches_strftime(times: list[float]) -> None:
    for now in times:
        assert iso_timestamp(now) == _reference(now)


def test_across_a_second_boundary_and_back() -> None:
    for now in (1700000000.999, 1700000001.0, 1700000000.5, 1700000001.0004):
        assert iso_timestamp(now) == _reference(now)
    assert iso_timestamp(1700000001.0004) == "2023-11-14T22:13:21.000Z"
