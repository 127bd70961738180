"""Telling a manager run from the next one, on the client side (no processes)."""

from __future__ import annotations

from pathlib import Path

from promenade_core.bus.client import ManagerInfo, manager_ended, other_run

INFO = ManagerInfo(pid=42, version="0.1", config_path="/p/promenade.yaml",
                   events="ipc:///r/events", control="ipc:///r/control", dashboard_url=None,
                   started_at="", runtime_dir=Path("/r"), run_id="aaaa")


def test_an_event_of_another_run_is_recognised() -> None:
    """After a manager restart a follower reconnected silently to the new run, whose seq
    starts again at 0: every event looked old and was dropped. The run id gives it away."""
    assert other_run("aaaa", {"seq": 1, "run_id": "bbbb"})
    assert not other_run("aaaa", {"seq": 1, "run_id": "aaaa"})
    assert not other_run("aaaa", {"seq": 1})            # log batches carry no run id
    assert not other_run("", {"seq": 1, "run_id": "bbbb"})   # a manager without run ids


def test_the_followed_run_is_over_when_its_manager_json_says_so() -> None:
    same = {"pid": 42, "run_id": "aaaa"}
    assert manager_ended(INFO, "aaaa", same, alive=True) is None
    assert "has exited" in str(manager_ended(INFO, "aaaa", same, alive=False))
    assert "has stopped" in str(manager_ended(INFO, "aaaa", None, alive=True))
    assert "new run" in str(manager_ended(INFO, "aaaa", {"pid": 42, "run_id": "b"}, True))
    assert "new run" in str(manager_ended(INFO, "aaaa", {"pid": 7, "run_id": "aaaa"}, True))
    assert manager_ended(INFO, "", {"pid": 42}, alive=True) is None
