"""`watch:` against a real manager: edits restart, ignored files do not, reload follows.

"Exactly once" is checked without a fixed sleep: after the burst, a sentinel file is
changed and its restart awaited; restarts are handled in order, so a second restart for
the burst would have come before the sentinel's.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import Manager, wait_for, write_script

PY = sys.executable
VERBOSE = ("--no-ui", "-v")
pytestmark = pytest.mark.timeout(60)

WORKER = """
manager: {hosts_management: disabled, config_poll_interval: 0.2}
services:
  worker:
    command: "echo started $$$$; exec sleep 60"
    watch: {paths: [src, "*.toml"], ignore: ["*.log", "src/generated"]}
"""


def restarts(m: Manager, name: str = "worker") -> list[str]:
    """The restart messages for `name`, in order."""
    return [line.split("[promenade] ", 1)[1] for line in m.output().splitlines()
            if f"[promenade] {name} restarted (" in line]


def watching(m: Manager, name: str = "worker") -> None:
    """Wait until the service's watches are in place (its `-v` message)."""
    m.wait_output(f"{name}: watching ")


def started(m: Manager, name: str = "worker") -> list[str]:
    return [line for line in m.lines(name) if line.startswith("started ")]


def running_for(m: Manager, name: str = "worker") -> float:
    """Seconds since the service's last start (the manager's clock is this one)."""
    return time.time() - m.status(name)["started_at"]


def sentinel(m: Manager, path: Path, count: int) -> None:
    """Change `path` and wait for the worker's `count`-th restart, which must name it,
    and for the start it leads to."""
    path.write_text(str(time.time()))
    wait_for(lambda: len(restarts(m)) >= count, 10, f"restart #{count}")
    got = restarts(m)
    rel = path.relative_to(m.tmp).as_posix()
    assert got[count - 1] == f"worker restarted ({rel} changed)", got
    wait_for(lambda: len(started(m)) >= count + 1, what=f"start #{count + 1}")


@pytest.fixture
def worker(manager, tmp_path: Path) -> Manager:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tasks.py").write_text("v0\n")
    m = manager(WORKER, args=VERBOSE)
    m.wait_status("worker", "running")
    watching(m)
    return m


def test_a_burst_of_saves_restarts_once_and_names_the_file(worker: Manager,
                                                            tmp_path: Path) -> None:
    m = worker
    first_pid = m.status("worker")["pid"]
    tasks = tmp_path / "src" / "tasks.py"
    for i in range(5):
        tasks.write_text(f"v{i + 1}\n")
        time.sleep(0.05)   # five saves, 50 ms apart: one burst
    wait_for(lambda: restarts(m), 10, "a restart")
    assert restarts(m) == ["worker restarted (src/tasks.py changed)"]
    wait_for(lambda: m.status("worker")["pid"] not in (None, first_pid), what="a new pid")
    sentinel(m, tmp_path / "app.toml", 2)
    assert len(started(m)) == 3, m.lines("worker")
    assert m.status("worker")["restart_count"] == 0   # not the restart policy's doing


def test_ignored_files_do_not_restart(worker: Manager, tmp_path: Path) -> None:
    m = worker
    for rel in ("server.log", "src/debug.log", "node_modules/pkg/index.js",
                ".git/index", "src/__pycache__/tasks.cpython-311.pyc",
                "src/generated/schema.py", "src/.tasks.py.swp", "README.md"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    sentinel(m, tmp_path / "src" / "tasks.py", 1)
    assert len(restarts(m)) == 1
    assert len(started(m)) == 2


def test_several_files_in_one_burst_are_counted(worker: Manager, tmp_path: Path) -> None:
    m = worker
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / "src" / name).write_text("x")
    wait_for(lambda: restarts(m), 10, "a restart")
    wait_for(lambda: len(started(m)) == 2, what="the second start")
    (message,) = restarts(m)
    assert message.startswith("worker restarted (src/") and message.endswith(" more changed)")


def test_a_path_created_later_is_watched(manager, tmp_path: Path) -> None:
    m = manager(WORKER, args=VERBOSE)
    watching(m)
    assert "worker: watch: src does not exist yet" in m.output()
    (tmp_path / "src").mkdir()
    wait_for(lambda: restarts(m), 10, "a restart for the new folder")
    wait_for(lambda: len(started(m)) == 2, what="the second start")
    (tmp_path / "src" / "new.py").write_text("x")
    wait_for(lambda: len(restarts(m)) == 2, 10, "a restart for a file in it")
    assert restarts(m)[1] == "worker restarted (src/new.py changed)"


def test_a_watched_folder_removed_and_created_again_is_still_watched(
        manager, tmp_path: Path) -> None:
    """A removed folder takes its inotify watch with it: the watcher watches again."""
    src = tmp_path / "src"
    src.mkdir()
    m = manager("""
        manager: {hosts_management: disabled}
        services:
          worker: {command: "echo started $$$$; exec sleep 60", watch: {paths: [src]}}
    """, args=VERBOSE)
    watching(m)
    src.rmdir()
    wait_for(lambda: m.output().count("worker: watching ") == 2, what="a new watch")
    assert "worker: watch: src does not exist yet" in m.output()
    src.mkdir()   # removal and creation: one burst or two, depending on timing
    wait_for(lambda: restarts(m), what="a restart for the removal")
    wait_for(lambda: len(started(m)) == len(restarts(m)) + 1 and running_for(m) > 0.5,
             what="the restarts to settle")
    (src / "b.py").write_text("x")
    wait_for(lambda: restarts(m)[-1:] == ["worker restarted (src/b.py changed)"],
             what="a restart for a file in the new folder")


def test_shutdown_stops_the_watchers(worker: Manager) -> None:
    m = worker
    assert m.cli("stop").returncode == 0
    assert m.wait_exit() == 0
    assert "file watcher did not stop" not in m.output()
    assert "all services stopped" in m.output()


def test_a_failed_service_restarts_when_fixed(manager, tmp_path: Path) -> None:
    write_script(tmp_path, "app.py", "raise SystemExit(3)")
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          app:
            command: {PY} app.py
            restart_policy: never
            watch: {{paths: [app.py]}}
    """, args=VERBOSE)
    m.wait_status("app", "failed", "gave_up")
    watching(m, "app")
    write_script(tmp_path, "app.py", "print('fixed', flush=True); import time; time.sleep(60)")
    m.wait_status("app", "running")
    wait_for(lambda: "fixed" in m.lines("app"), what="the fixed app's output")
    assert restarts(m, "app") == ["app restarted (app.py changed)"]


def test_a_service_the_user_stopped_stays_stopped(manager, tmp_path: Path) -> None:
    (tmp_path / "shared.py").write_text("x")
    m = manager("""
        manager: {hosts_management: disabled}
        services:
          a: {command: "sleep 60", watch: {paths: [shared.py]}}
          b: {command: "sleep 60", watch: {paths: [shared.py]}}
    """, args=VERBOSE)
    watching(m, "a")
    watching(m, "b")
    m.wait_status("a", "running")
    m.request("stop", service="a")
    m.wait_status("a", "stopped")
    (tmp_path / "shared.py").write_text("y")
    m.wait_output("a: shared.py changed; not restarted (stopped)")
    wait_for(lambda: restarts(m, "b"), what="b's restart")
    assert m.status("a")["status"] == "stopped"
    assert restarts(m, "a") == []


def test_a_completed_task_runs_again(manager, tmp_path: Path) -> None:
    (tmp_path / "schema.graphql").write_text("type A")
    m = manager("""
        manager: {hosts_management: disabled}
        services:
          codegen:
            command: "echo generated"
            restart_policy: never
            watch: {paths: [schema.graphql]}
    """, args=VERBOSE)
    watching(m, "codegen")
    wait_for(lambda: m.status("codegen")["completed"], 5, "codegen to complete")
    (tmp_path / "schema.graphql").write_text("type B")
    wait_for(lambda: m.lines("codegen") == ["generated", "generated"], what="a second run")


def notify_threads(m: Manager) -> list[str]:
    """The manager's inotify threads (named by the notify crate)."""
    info = m.info()
    assert info is not None
    tasks = Path(f"/proc/{info.pid}/task")
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            continue
    return [n for n in names if n.startswith("notify-rs")]


def test_reload_adds_changes_and_removes_watches(manager, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "lib").mkdir()
    m = manager("""
        manager: {hosts_management: disabled, config_poll_interval: 0.2}
        services:
          worker: {command: "echo started $$$$; exec sleep 60"}
    """, args=VERBOSE)
    m.wait_status("worker", "running")
    assert notify_threads(m) == []
    text = m.path.read_text()
    m.path.write_text(text.replace('exec sleep 60"}', 'exec sleep 60", watch: {paths: [src]}}'))
    m.wait_output("watch of worker updated")
    watching(m)
    (tmp_path / "src" / "a.py").write_text("x")
    wait_for(lambda: restarts(m) == ["worker restarted (src/a.py changed)"], what="restart")
    assert len(notify_threads(m)) == 1
    # a changed watch is re-created: src no longer counts, lib does
    m.path.write_text(m.path.read_text().replace("paths: [src]", "paths: [lib]"))
    wait_for(lambda: m.output().count("worker: watching ") == 2, what="the new watch")
    (tmp_path / "src" / "b.py").write_text("x")
    sentinel(m, tmp_path / "lib" / "c.py", 2)
    wait_for(lambda: len(notify_threads(m)) == 1, what="the old watcher's thread to end")
    # removed: no watcher thread is left
    m.path.write_text(text)
    wait_for(lambda: m.output().count("watch of worker updated") == 3, what="third reload")
    wait_for(lambda: notify_threads(m) == [], what="every watcher thread to end")


def test_status_stays_prompt_while_files_change(worker: Manager, tmp_path: Path) -> None:
    """The watch waits in a thread: a flood of changes never stalls the bus."""
    m = worker
    stop = threading.Event()
    noisy = tmp_path / "src" / "generated"
    noisy.mkdir()

    def churn() -> None:
        i = 0
        while not stop.is_set():   # ignored files: the watcher sees and drops them all
            (noisy / f"f{i % 200}.py").write_text(str(i))
            i += 1

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        slowest = 0.0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            m.request("status", timeout=5)
            slowest = max(slowest, time.monotonic() - t0)
    finally:
        stop.set()
        writer.join()
    assert slowest < 0.5, f"a status request took {slowest:.3f} s"
    sentinel(m, tmp_path / "src" / "tasks.py", 1)
