"""Log files with real managers: written, rotated, kept across restarts, read back by
`promenade logs` (history, --since, --grep, the manager's events, -f's seam), and a
full disk or a planted symlink that never stops Promenade."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promenade_core import runtime
from tests.support import Manager, free_port, wait_for
from tests.support.scripts import PROMENADE, write_script
from tests.support.web import start_dashboard

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (stdout|stderr) .*")

COUNTER = """
    import sys, time
    count = int(sys.argv[1])
    for i in range(count):
        print(f"line {i}", flush=True)
        if i == 7:
            print("needle in the haystack", file=sys.stderr, flush=True)
            time.sleep(0.2)  # stdout and stderr are separate pipes: keep their order
    print("done", flush=True)
    time.sleep(600)
"""

#: Numbers as fast as a pipe takes them, then a little slower, for ever.
ENDLESS = """
    import sys, time
    i = 0
    while True:
        sys.stdout.write(f"n {i}\\n")
        i += 1
        if i % 50 == 0:
            sys.stdout.flush()
            time.sleep(0.002)
"""


def logs_folder(m: Manager) -> Path:
    return Path(m.env["XDG_STATE_HOME"]) / "promenade" / runtime.instance_id(m.path) / "logs"


def counter_config(count: int, extra: str = "") -> str:
    return f"""
        manager:
          log_buffer_lines: 5
          {extra}
        services:
          counter: {{command: {sys.executable} counter.py {count}}}
    """


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return write_script(tmp_path, "counter.py", COUNTER)


def wait_done(m: Manager) -> None:
    wait_for(lambda: "done" in m.lines("counter"), what="counter's last line")


def file_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_lines_are_written_and_rotated_at_the_size_limit(manager, counter: Path) -> None:
    m = manager(counter_config(300, "log_files: {max_bytes: 2048, keep: 2}"))
    wait_done(m)
    folder = logs_folder(m)
    current = folder / "counter.log"
    wait_for(lambda: file_lines(current)[-1].endswith(" stdout done"),
             what="the last line on disk")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["counter.log", "counter.log.1", "counter.log.2", "promenade.log"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    kept: list[str] = []
    for name in ("counter.log.2", "counter.log.1", "counter.log"):
        path = folder / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert 0 < path.stat().st_size <= 2048
        lines = file_lines(path)
        assert all(LINE.fullmatch(line) for line in lines), lines[:3]
        kept += [line.split(" ", 2)[2] for line in lines if " stdout " in line]
    # the newest lines, contiguous: the oldest went with the rotated-out files
    first = int(kept[0].split()[1])
    assert first > 0
    assert kept == [f"line {i}" for i in range(first, 300)] + ["done"]


def test_logs_since_and_grep_find_a_line_that_left_the_buffer(manager, counter: Path) -> None:
    m = manager(counter_config(200))
    wait_done(m)
    assert "needle in the haystack" not in str(m.request("logs")["messages"])

    found = m.cli("logs", "--grep", "NEEDLE", "-i")
    assert found.returncode == 0, found.stderr
    assert found.stdout.endswith("[counter] [stderr] needle in the haystack\n")
    assert len(found.stdout.splitlines()) == 1

    since = m.cli("logs", "counter", "--since", "1h", "--stream", "stderr")
    assert since.stdout.splitlines()[-1].endswith("needle in the haystack")
    every = m.cli("logs", "counter", "--since", "1h")
    assert len(every.stdout.splitlines()) == 202    # 200 lines, the needle and `done`
    assert m.cli("logs", "--since", "2999-01-01T00:00Z").stdout == ""
    assert m.cli("logs", "--until", "2000-01-01 00:00").stdout == ""

    tail = m.cli("logs", "counter", "-n", "3").stdout.splitlines()
    assert [line.split("] ", 1)[1] for line in tail] == ["line 198", "line 199", "done"]


def test_files_survive_a_restart_and_read_without_a_manager(manager, counter: Path) -> None:
    m = manager(counter_config(20))
    wait_done(m)
    m.signal(signal.SIGINT)
    assert m.wait_exit() == 0

    alone = m.cli("logs", "counter", "--grep", "line 3$")
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.endswith("[counter] line 3\n")
    follow = m.cli("logs", "-f", "-n", "1")
    assert follow.returncode == 3
    assert "nothing to follow" in follow.stderr and "all services stopped" in follow.stdout

    m.start()
    wait_done(m)
    both = m.cli("logs", "counter", "--grep", "^done$").stdout.splitlines()
    assert len(both) == 2          # one per run: yesterday's lines are still there
    events = m.cli("logs", "promenade", "--grep", "^config ").stdout.splitlines()
    assert len(events) == 2


def test_logs_promenade_shows_the_managers_events(manager, tmp_path: Path) -> None:
    write_script(tmp_path, "crash.py", "import sys; sys.exit(3)")
    m = manager(f"""
        services:
          crasher: {{command: {sys.executable} crash.py, restart_policy: never}}
    """)
    m.wait_status("crasher", "failed")
    out = wait_for(lambda: "crasher exited with code 3" in (
        result := m.cli("logs", "promenade")).stdout and result, what="the event")
    assert f"[promenade] config {m.path}" in out.stdout
    assert "[promenade] crasher started (pid" in out.stdout
    everyone = m.cli("logs").stdout
    assert "[promenade] crasher exited with code 3" in everyone


def _read_numbers(proc: subprocess.Popen[str], want: int, timeout: float,
                  ) -> tuple[list[int], threading.Thread]:
    """The `n N` numbers `logs -f` printed, until `want` of them or the deadline; and
    the reading thread (it ends at EOF: join it before closing the pipe)."""
    numbers: list[int] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = re.search(r"\[endless\] n (\d+)$", line.rstrip("\n"))
            if match:
                numbers.append(int(match[1]))
                if len(numbers) >= want:
                    break
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    done.wait(timeout)
    return list(numbers), reader


def test_follow_meets_the_live_feed_with_no_gap_and_no_duplicate(manager,
                                                                 tmp_path: Path) -> None:
    """History from the files up to log_mark, then the feed after it: while a service
    prints without pause, every number appears once, in order, across the seam."""
    write_script(tmp_path, "endless.py", ENDLESS)
    m = manager(f"""
        manager: {{log_buffer_lines: 10}}
        services:
          endless: {{command: {sys.executable} endless.py}}
    """)
    wait_for(lambda: len(m.lines("endless")) == 10, what="the buffer full")
    for _ in range(3):
        proc = subprocess.Popen([*PROMENADE, "logs", "-f", "-n", "3000", "endless",
                                 "-c", str(m.path)], env=m.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            numbers, reader = _read_numbers(proc, 20000, timeout=20)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            reader.join(5)
            assert proc.stdout is not None and proc.stderr is not None
            errors = proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
        assert len(numbers) == 20000, f"only {len(numbers)} lines; stderr: {errors}"
        assert "lost" not in errors, errors
        first = numbers[0]
        assert numbers == list(range(first, first + len(numbers))), _first_break(numbers)


def _first_break(numbers: list[int]) -> str:
    for before, after in itertools.pairwise(numbers):
        if after != before + 1:
            return f"{before} then {after}"
    return "none"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder where the manager's logs will be, to mount a 64 KiB tmpfs on."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("needs root, unshare and nsenter for a private tmpfs")
    yield tmp_path


def test_a_full_disk_gives_one_warning_and_promenade_keeps_running(
        tiny_disk: Path, counter: Path) -> None:
    """The logs folder is a 64 KiB tmpfs (in the manager's own mount namespace), nearly
    full: writes fail, ONE warning reaches the terminal and the bus, services run on;
    once space is freed, writes resume and say so."""
    write_script(tiny_disk, "chatty.py", """
        import time
        i = 0
        while True:
            print("chatty", i, "x" * 200, flush=True)
            i += 1
            time.sleep(0.002)
    """)
    m = Manager(tiny_disk, f"""
        services:
          chatty: {{command: {sys.executable} chatty.py}}
    """)
    folder = logs_folder(m)
    folder.mkdir(parents=True, mode=0o700)
    inner = (f"mount -t tmpfs -o size=64k,mode=0700 tmpfs {folder} && "
             f"head -c 60000 /dev/zero > {folder}/filler && exec \"$@\"")
    with open(m.log, "wb") as out:
        m.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", inner, "sh",
             *PROMENADE, "start", "--no-ui", "-c", str(m.path)],
            stdout=out, stderr=subprocess.STDOUT, env=m.env, start_new_session=True)
    try:
        wait_for(m.info, 20, "the manager to answer")
        m.wait_output("cannot write log files")
        time.sleep(1.0)   # more failing writes: still one warning
        assert m.output().count("cannot write log files") == 1, m.output()
        assert "No space left on device" in m.output()
        assert m.status("chatty")["status"] == "running"
        subprocess.run(["nsenter", "-t", str(m.proc.pid), "-m", "rm", f"{folder}/filler"],
                       check=True)
        m.wait_output("log files are written again")
        assert m.status("chatty")["status"] == "running"
    finally:
        m.cleanup()


def test_a_planted_symlink_is_not_followed(manager, tmp_path: Path, counter: Path) -> None:
    m = manager(counter_config(5), start=False)
    folder = logs_folder(m)
    folder.mkdir(parents=True, mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    (folder / "counter.log").symlink_to(target)
    m.start()
    wait_done(m)
    m.wait_output("is a symbolic link (not followed)")
    assert target.read_text() == "precious\n"
    assert m.status("counter")["status"] == "running"


def test_a_daemon_that_fails_at_start_says_why(tmp_path: Path, counter: Path) -> None:
    """-d keeps the child's stderr in daemon.out, emptied at each start: a taken
    dashboard port reaches the user; the next start's daemon.out holds nothing old."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    m = Manager(tmp_path, counter_config(3))
    try:
        failed = m.cli("start", "-d", "--port", str(taken.getsockname()[1]))
        assert failed.returncode == 1
        assert "the manager exited at start" in failed.stderr
        assert str(taken.getsockname()[1]) in failed.stderr
        daemon_out = logs_folder(m).parent / "daemon.out"
        assert daemon_out.read_text() != ""
        started = m.cli("start", "-d", "--no-ui")
        assert started.returncode == 0, started.stderr
        assert daemon_out.read_text() == ""
        assert m.cli("stop").returncode == 0
    finally:
        taken.close()
        m.cleanup()


def test_the_dashboard_reads_older_lines_and_searches_the_files(tmp_path: Path,
                                                                counter: Path) -> None:
    port = free_port()
    dash = start_dashboard(tmp_path, counter_config(
        300, f"port: {port}\n          hosts_management: disabled"), port=port)
    try:
        m = dash.manager
        wait_done(m)
        path = "/api/services/counter/history"
        newest = dash.get(f"{path}?limit=3&grep=%5E(line%20%5Cd%2B%7Cdone)%24")
        assert newest.status == 200, newest.raw
        assert [line["text"] for line in newest.body["lines"]] == ["line 298", "line 299",
                                                                   "done"]
        # what precedes line 250, whatever shares its millisecond
        at = next(line for line in wait_for(lambda: dash.get(f"{path}?limit=2000").body["lines"])
                  if line["text"] == "line 250")
        same = [line for line in dash.get(f"{path}?limit=2000").body["lines"]
                if line["timestamp"] == at["timestamp"]]
        have = len(same) - same.index(at)        # line 250 and what follows in its ms
        older = dash.get(f"{path}?before={at['timestamp']}&skip={have}&limit=2"
                         "&grep=%5Eline").body
        assert [line["text"] for line in older["lines"]] == ["line 248", "line 249"]

        found = dash.get(f"{path}?grep=NEEDLE&ignore_case=true").body["lines"]
        assert [(line["stream"], line["text"]) for line in found] == [
            ("stderr", "needle in the haystack")]
        events = dash.get("/api/services/promenade/history").body["lines"]
        assert any(line["text"].startswith("counter started (pid") for line in events)

        assert dash.get(f"{path}?grep=(").status == 400
        assert dash.get(f"{path}?before=yesterday").status == 400
        assert dash.get("/api/services/nope/history").status == 404
        # a foreign page reads no history (the dashboard's Origin check)
        assert dash.get(path, headers={"Origin": "http://evil.example"}).status == 403
    finally:
        dash.manager.cleanup()


def test_log_files_false_writes_nothing_until_a_reload_turns_them_on(
        manager, tmp_path: Path) -> None:
    write_script(tmp_path, "ticker.py", """
        import itertools, time
        for i in itertools.count():
            print(f"tick {i}", flush=True)
            time.sleep(0.05)
    """)
    m = manager(f"""
        manager: {{log_files: false}}
        services:
          ticker: {{command: {sys.executable} ticker.py}}
    """)
    wait_for(lambda: len(m.lines("ticker")) >= 3, what="ticks")
    assert not (logs_folder(m) / "ticker.log").exists()
    buffered = m.cli("logs", "ticker", "--grep", "^tick [0-2]$")   # the buffer, filtered
    assert [line.split("] ")[1] for line in buffered.stdout.splitlines()] == [
        "tick 0", "tick 1", "tick 2"]
    m.path.write_text(m.path.read_text().replace("log_files: false", "log_files: true"))
    result = m.request("reload")
    assert "manager.log_files changed (off -> max_bytes=10485760 keep=3)" in result["summary"]
    wait_for(lambda: (logs_folder(m) / "ticker.log").exists(), what="ticker.log")
