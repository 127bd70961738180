"""`watch:` rules: which changed paths restart a service, where to watch, when a burst
has settled, what a change does by status, and how restarts queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest

from promenade_core.supervise.states import Status
from promenade_core.supervise.supervisor import Supervisor
from promenade_core.supervise.watch_rules import (
    MAX_DELAY,
    QUIET,
    WatchAction,
    WatchRules,
    describe_changes,
    fixed_part,
    normalize,
    on_change,
    relative,
    settle_at,
    watch_roots,
)
from promenade_core.supervise.watcher import Watchers

DIR = "/proj/worker"


def rules(paths: list[str], ignore: list[str] | None = None) -> WatchRules:
    return WatchRules.build(paths, ignore or [], DIR)


# -- paths ------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "counts"), [
    ("src", True),                      # the folder itself (created, deleted)
    ("src/tasks.py", True),
    ("src/deep/er/x.py", True),
    ("srcx/tasks.py", False),           # a folder is a name, not a prefix of names
    ("lib/src/tasks.py", False),        # a plain path is relative to the service's folder
    ("tasks.py", False),
])
def test_a_plain_folder_counts_with_everything_in_it(path: str, counts: bool) -> None:
    assert rules(["src"]).counts(path) is counts


@pytest.mark.parametrize(("path", "counts"), [
    ("pyproject.toml", True),
    ("config/app.toml", True),          # a name glob matches in any folder below
    ("config/app.toml.bak", False),
    ("app.yaml", False),
])
def test_a_glob_without_a_slash_matches_names_anywhere(path: str, counts: bool) -> None:
    assert rules(["*.toml"]).counts(path) is counts


@pytest.mark.parametrize(("pattern", "path", "counts"), [
    ("config/*.toml", "config/app.toml", True),
    ("config/*.toml", "config/sub/app.toml", False),   # `*` stays in one folder
    ("config/*.toml", "app.toml", False),
    ("src/**/*.py", "src/a.py", True),                 # `**` spans zero folders...
    ("src/**/*.py", "src/a/b/c.py", True),             # ... or several
    ("src/**/*.py", "src/a/b/c.js", False),
    ("src/**", "src/a/b", True),
    ("src/?.py", "src/a.py", True),
    ("src/?.py", "src/ab.py", False),
    ("src/[ab].py", "src/b.py", True),
    ("src/[!ab].py", "src/b.py", False),
    ("src/[!ab].py", "src/c.py", True),
    ("src/[x.py", "src/[x.py", True),                  # an unclosed `[` is a character
    ("src/[z-a].py", "src/[z-a].py", True),            # so is an invalid class's
    ("src/[]a].py", "src/].py", True),                 # `]` first is a member
    ("src/[a\\].py", "src/\\.py", True),
    ("web/a+b(1).js", "web/a+b(1).js", True),          # regex characters are literal
    ("web/a+b(1).js", "web/aab1.js", False),
])
def test_globs_with_a_slash_match_from_the_services_folder(pattern: str, path: str,
                                                            counts: bool) -> None:
    assert rules([pattern]).counts(path) is counts


def test_dot_watches_the_whole_folder_but_not_outside_it() -> None:
    r = rules(["."])
    assert r.counts("a.py") and r.counts("src/a.py")
    assert not r.counts("../other/a.py")


def test_paths_are_normalized_and_may_leave_the_folder() -> None:
    assert normalize("./src/", DIR) == "src"
    assert normalize("/proj/shared", DIR) == "../shared"
    assert normalize(".", DIR) == "."
    r = rules(["./src/", "../shared"])
    assert r.counts("src/a.py")
    assert r.counts("../shared/util.py")
    assert relative("/proj/shared/util.py", DIR) == "../shared/util.py"
    assert relative("/proj/worker/src//a.py", DIR) == "src/a.py"


# -- ignore -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    ".git/index", "node_modules/x/index.js", "src/__pycache__/a.cpython-311.pyc",
    ".venv/lib/site.py", "src/.mypy_cache/x.json", "deep/er/node_modules/y.js",
    "src/.tasks.py.swp", "src/tasks.py~", "src/.#tasks.py",
])
def test_vcs_packages_caches_and_editor_files_are_always_ignored(path: str) -> None:
    r = rules(["."])
    assert r.ignored(path)
    assert not r.counts(path)


@pytest.mark.parametrize(("ignore", "path", "ignored"), [
    ("*.log", "app.log", True),
    ("*.log", "logs/today/app.log", True),   # a name glob matches in any folder
    ("*.log", "app.logger.py", False),
    ("dist", "dist/bundle.js", True),        # a folder's name ignores all below it
    ("dist", "web/dist/bundle.js", True),
    ("dist", "distance.py", False),
    ("tmp*", "tmp123/x", True),
    ("src/generated", "src/generated/a.py", True),   # with a slash: from the folder
    ("src/generated", "lib/src/generated/a.py", False),
    ("src/*.gen.py", "src/a.gen.py", True),
    ("src/*.gen.py", "src/b/a.gen.py", False),
    ("/build/", "build/x.o", True),          # slashes around a name are dropped
])
def test_user_ignore_globs(ignore: str, path: str, ignored: bool) -> None:
    r = rules(["."], [ignore])
    assert r.ignored(path) is ignored
    assert r.counts(path) is not ignored


def test_ignore_wins_over_paths() -> None:
    r = rules(["src", "*.toml"], ["src/vendor", "local.toml"])
    assert r.counts("src/a.py") and r.counts("app.toml")
    assert not r.counts("src/vendor/lib.py")
    assert not r.counts("local.toml")


def test_empty_ignore_entries_ignore_nothing() -> None:
    r = rules(["."], ["", "/"])
    assert r.counts("a.py")


# -- roots ------------------------------------------------------------------------


def fs(dirs: set[str], files: frozenset[str] = frozenset(),
       ) -> tuple[Callable[[str], bool], Callable[[str], bool]]:
    """is_dir and exists over a fake tree."""
    return (lambda p: p in dirs), (lambda p: p in dirs or p in files)


def test_fixed_part_is_the_folders_before_the_first_glob() -> None:
    assert fixed_part("src") == "src"
    assert fixed_part("src/**/*.py") == "src"
    assert fixed_part("config/*.toml") == "config"
    assert fixed_part("*.toml") == "."
    assert fixed_part("a/b*/c") == "a"


def test_folders_are_watched_themselves_and_files_through_their_folder() -> None:
    is_dir, exists = fs({DIR, f"{DIR}/src", f"{DIR}/config"},
                        frozenset({f"{DIR}/config/app.toml"}))
    got = watch_roots(["src", "config/app.toml"], DIR, is_dir, exists)
    assert got.roots == (f"{DIR}/src", f"{DIR}/config")
    assert got.notes == ()


def test_a_name_glob_watches_the_whole_folder_and_covers_the_others() -> None:
    is_dir, exists = fs({DIR, f"{DIR}/src"})
    got = watch_roots(["src", "*.toml"], DIR, is_dir, exists)
    assert got.roots == (DIR,)   # src is inside it: one recursive watch covers both


def test_a_missing_path_is_watched_for_through_its_nearest_folder() -> None:
    is_dir, exists = fs({DIR})
    got = watch_roots(["build/out", "schema.graphql"], DIR, is_dir, exists)
    assert got.roots == (DIR,)
    assert any("build/out" in n and "does not exist yet" in n for n in got.notes)
    assert any("schema.graphql does not exist yet" in n for n in got.notes)


def test_never_watches_above_the_services_folder() -> None:
    is_dir, exists = fs({"/", "/proj"})   # the service's folder itself is gone
    got = watch_roots(["src"], DIR, is_dir, exists)
    assert got.roots == ()
    assert "no folder to watch" in got.notes[-1]


def test_a_missing_folder_outside_is_not_climbed_to() -> None:
    is_dir, exists = fs({"/", "/proj", DIR})
    got = watch_roots(["../shared/lib"], DIR, is_dir, exists)
    assert got.roots == ()
    is_dir, exists = fs({"/", "/proj", DIR, "/proj/shared/lib"})
    assert watch_roots(["../shared/lib"], DIR, is_dir, exists).roots == ("/proj/shared/lib",)


def test_duplicate_roots_collapse() -> None:
    is_dir, exists = fs({DIR, f"{DIR}/src"})
    got = watch_roots(["src", "src/", "./src", "src/**/*.py"], DIR, is_dir, exists)
    assert got.roots == (f"{DIR}/src",)


# -- debounce -----------------------------------------------------------------------


def test_a_burst_settles_quiet_seconds_after_its_last_change() -> None:
    assert settle_at(first=100.0, last=100.0) == pytest.approx(100.0 + QUIET)
    assert settle_at(first=100.0, last=100.5) == pytest.approx(100.5 + QUIET)


def test_a_steady_stream_still_settles_within_the_cap() -> None:
    """Saves every 0.1 s for ever would otherwise never restart."""
    first = 100.0
    times = [first + 0.1 * i for i in range(100)]
    due = [settle_at(first, t) for t in times]
    assert max(due) == pytest.approx(first + MAX_DELAY)
    assert MAX_DELAY <= 2.5


# -- what a change does -----------------------------------------------------------------


@pytest.mark.parametrize(("status", "completed", "code", "action"), [
    (Status.RUNNING, False, None, WatchAction.RESTART),
    (Status.STARTING, False, None, WatchAction.RESTART),
    (Status.RETRYING, False, 1, WatchAction.RESTART),
    (Status.FAILED, False, 1, WatchAction.RESTART),       # a fix of a crash restarts it
    (Status.GAVE_UP, False, 1, WatchAction.RESTART),
    (Status.STOPPED, True, 0, WatchAction.RESTART),       # a completed task runs again
    (Status.STOPPED, False, None, WatchAction.NOTHING),   # never started (autostart: false)
    (Status.STOPPED, True, -15, WatchAction.NOTHING),     # completed once, then stopped
    (Status.STOPPED, False, -15, WatchAction.NOTHING),    # stopped by the user
    (Status.PENDING, False, None, WatchAction.NOTHING),   # will start with the new files
])
def test_what_a_change_does_by_status(status: Status, completed: bool, code: int | None,
                                      action: WatchAction) -> None:
    assert on_change(status, completed, code) is action


def test_every_status_has_an_answer() -> None:
    for status in Status:
        assert isinstance(on_change(status, False, None), WatchAction)


def test_describe_changes_names_the_first_and_counts_the_rest_once() -> None:
    assert describe_changes(["src/tasks.py"]) == "src/tasks.py"
    assert describe_changes(["src/tasks.py", "src/tasks.py"]) == "src/tasks.py"
    assert describe_changes(["a.py", "b.py", "a.py", "c.py"]) == "a.py and 2 more"
    assert describe_changes([]) == "files"


# -- the restart queue (Watchers, without threads: changes handed in directly) -----------


class FakeService:
    """A service's command queue, run by hand."""

    def __init__(self, status: Status = Status.RUNNING) -> None:
        self.status = status
        self.completed = False
        self.last_exit_code: int | None = None
        self.queue: list[Callable[[], None]] = []
        self.restarts = 0

    def submit(self, action: Callable[[], None]) -> None:
        self.queue.append(action)

    def restart(self) -> None:
        self.restarts += 1

    def run_queue(self) -> None:
        while self.queue:
            self.queue.pop(0)()


class FakeSupervisor:
    def __init__(self, **services: FakeService) -> None:
        self.services = services
        self.messages: list[tuple[str, str, str | None]] = []

    def emit(self, message: str, level: str = "info", service: str | None = None) -> None:
        self.messages.append((message, level, service))


def watchers(supervisor: FakeSupervisor) -> Watchers:
    return Watchers(cast(Supervisor, supervisor))


def test_changes_before_a_queued_restart_runs_join_it() -> None:
    worker = FakeService()
    sup = FakeSupervisor(worker=worker)
    w = watchers(sup)
    w._restart("worker", ["src/a.py"])
    w._restart("worker", ["src/b.py", "src/a.py"])
    assert len(worker.queue) == 1
    worker.run_queue()
    assert worker.restarts == 1
    assert sup.messages == [("worker restarted (src/a.py and 1 more changed)", "info",
                             "worker")]
    w._restart("worker", ["src/c.py"])   # after it ran: a new restart
    assert len(worker.queue) == 1


def test_a_restart_lost_with_a_removed_service_does_not_block_its_successor() -> None:
    """A reload removed `worker` with a restart queued (its queue died with it); the
    `worker` a later reload added must still restart on a change."""
    old = FakeService()
    sup = FakeSupervisor(worker=old)
    w = watchers(sup)
    w._restart("worker", ["src/a.py"])
    new = FakeService()
    sup.services["worker"] = new
    w._restart("worker", ["src/b.py"])
    assert len(new.queue) == 1
    new.run_queue()
    assert new.restarts == 1
    old.run_queue()   # the old object's action, were it to run: not for the new one
    assert old.restarts == 0


def test_a_stopped_service_is_left_alone_and_says_why_in_debug() -> None:
    worker = FakeService(Status.STOPPED)
    sup = FakeSupervisor(worker=worker)
    w = watchers(sup)
    w._restart("worker", ["a.py"])
    worker.run_queue()
    assert worker.restarts == 0
    assert sup.messages == [("worker: a.py changed; not restarted (stopped)", "debug",
                             "worker")]


def test_nothing_restarts_once_closed_or_for_an_unknown_service() -> None:
    worker = FakeService()
    sup = FakeSupervisor(worker=worker)
    w = watchers(sup)
    w._restart("ghost", ["a.py"])
    w._restart("worker", ["a.py"])
    w.close()
    worker.run_queue()
    assert worker.restarts == 0 and sup.messages == []
