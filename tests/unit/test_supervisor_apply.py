"""`Supervisor.apply`: a reload plan carried out on services run by a fake ProcessOps.

No processes: `spawn` hands out pipes whose write ends the test holds, and a signal to
a run's tree ends it at once, as a child that obeys SIGTERM would.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, cast

import gevent
import gevent.event
import pytest

from promenade_core.config.load import load_config_text
from promenade_core.config.model import Config
from promenade_core.supervise.osproc import ProcessOps, Spawned
from promenade_core.supervise.reload_plan import plan_reload
from promenade_core.supervise.states import Status
from promenade_core.supervise.supervisor import HostnamePolicy, Supervisor

pytestmark = pytest.mark.timeout(30)
#: pids far above any real one, so `os.getpgid` in the spawn details finds nothing
FAKE_PID = 4_100_000


class FakeOps(ProcessOps):
    """Runs that live until signalled; records what was spawned and signalled."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[str] = []
        self.signalled: list[tuple[int, int]] = []
        self._write_ends: dict[int, list[int]] = {}

    def spawn(self, command: str, cwd: Path, env: dict[str, str], tty: bool) -> Spawned:
        self.spawned.append(command)
        pid = FAKE_PID + len(self.spawned)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        self._write_ends[pid] = [out_w, err_w]
        popen = cast(subprocess.Popen[bytes],
                     type("Popen", (), {"pid": pid, "returncode": None})())
        return Spawned(popen, out_r, err_r, gevent.event.AsyncResult())

    def signal_tree(self, spawned: Spawned, sig: int) -> bool:
        self.signalled.append((spawned.pid, sig))
        for fd in self._write_ends.pop(spawned.pid, []):
            os.close(fd)
        if not spawned.exited.ready():
            spawned.exited.set(-sig)
        return True

    def tree_alive(self, spawned: Spawned) -> bool:
        return not spawned.exited.ready()

    def release(self, spawned: Spawned) -> None:
        pass


class FakePrinter:
    verbose = False

    def lines(self, service: str, stream: str, timestamp: str, lines: list[str]) -> None:
        pass

    def message(self, text: str, level: str = "info") -> None:
        pass


class FakePublisher:
    def __init__(self) -> None:
        self.seq = 0
        self.published: list[tuple[str, dict[str, Any]]] = []

    def next_seqs(self, count: int) -> int:
        first = self.seq + 1
        self.seq += count
        return first

    def publish(self, topic: str, body: dict[str, Any]) -> None:
        self.published.append((topic, body))

    def publish_batch(self, service: str, batch: Any) -> None:
        pass


def config(tmp_path: Path, text: str) -> Config:
    return load_config_text(text, tmp_path / "promenade.yaml")


OLD = """
manager: {log_buffer_lines: 100}
services:
  db: {command: db-v1, restart_policy: never}
  api: {command: api-v1, restart_policy: never, depends_on: [db]}
  web: {command: web-v1, restart_policy: never, port: 8080, hostname: web.test}
  old: {command: old-v1, restart_policy: never}
"""
NEW = """
manager: {log_buffer_lines: 50}
services:
  db: {command: db-v1, restart_policy: never}
  api: {command: api-v2, restart_policy: never, depends_on: [db]}
  web: {command: web-v1, restart_policy: never, port: 8080, hostname: web2.test}
  worker: {command: worker-v1, restart_policy: never}
"""


class Recorder:
    """An attachment (hostnames, proxies) as the supervisor's constructor takes it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_started(self, service: Any) -> None:
        self.events.append(("started", service.name))

    def on_stopped(self, service: Any) -> None:
        self.events.append(("stopped", service.name))

    def on_updated(self, service: Any, old: Any) -> None:
        self.events.append(("updated", f"{service.name}: {old.hostname} -> "
                                        f"{service.config.hostname}"))


def started(tmp_path: Path, *attachments: Recorder,
            ) -> tuple[Supervisor, FakeOps, FakePublisher]:
    ops = FakeOps()
    publisher = FakePublisher()
    sup = Supervisor(config(tmp_path, OLD), cast(Any, FakePrinter()), cast(Any, publisher),
                     "test", ops=ops, attachments=attachments)
    sup.start_all()
    settle(sup)
    for service in sup.services.values():
        assert service.status == Status.RUNNING, service.name
    return sup, ops, publisher


def settle(sup: Supervisor) -> None:
    """Let the submitted commands run: each service's queue ends with a no-op."""
    for service in sup.services.values():
        service.submit(lambda: None).get(timeout=10)
        assert service.wait_settled(10), service.name


def test_apply_stops_restarts_updates_and_starts_as_planned(tmp_path: Path) -> None:
    sup, ops, _ = started(tmp_path)
    old_pids = {name: s.pid for name, s in sup.services.items()}
    stopped = sup.services["old"]
    new = config(tmp_path, NEW)
    plan = plan_reload(sup.config, new)

    sup.apply(plan, new)
    settle(sup)

    assert sup.config is new
    assert list(sup.services) == ["db", "api", "web", "worker"]
    assert stopped.status == Status.STOPPED       # stopped and dropped before the rest
    assert (old_pids["old"], 15) in ops.signalled
    api = sup.services["api"]
    assert api.config.command == "api-v2" and api.status == Status.RUNNING
    assert api.pid != old_pids["api"]             # a new run for a new command
    web = sup.services["web"]
    assert web.config.hostname == "web2.test" and web.pid == old_pids["web"]  # in place
    assert sup.services["db"].pid == old_pids["db"]
    assert sup.services["worker"].status == Status.RUNNING
    assert sorted(ops.spawned[-2:]) == ["api-v2", "worker-v1"]   # each in its own queue
    assert {sup.logs._buffers[name].capacity for name in sup.services} == {50}
    sup.shutdown()


def test_apply_of_an_empty_plan_changes_only_the_config(tmp_path: Path) -> None:
    sup, ops, _ = started(tmp_path)
    spawned = list(ops.spawned)
    same = config(tmp_path, OLD)
    sup.apply(plan_reload(sup.config, same), same)
    settle(sup)
    assert sup.config is same and ops.spawned == spawned and not ops.signalled
    sup.shutdown()


def test_a_stopped_service_restarted_by_a_reload_stays_stopped(tmp_path: Path) -> None:
    """A service the user stopped runs its new command only when started again."""
    sup, ops, _ = started(tmp_path)
    api = sup.services["api"]
    api.submit(api.stop).get(timeout=10)
    new = config(tmp_path, NEW)
    sup.apply(plan_reload(sup.config, new), new)
    settle(sup)
    assert api.status == Status.STOPPED and api.config.command == "api-v2"
    assert "api-v2" not in ops.spawned
    sup.shutdown()


def test_the_hostname_policy_decides_urls_and_local_names(tmp_path: Path) -> None:
    mapped: set[str] = set()
    loopback: set[str] = set()
    sup = Supervisor(config(tmp_path, OLD), cast(Any, FakePrinter()),
                     cast(Any, FakePublisher()), "test", ops=FakeOps(),
                     hostnames=HostnamePolicy(mapped=mapped.__contains__,
                                              resolves_to_loopback=loopback.__contains__))
    web = sup.services["web"]
    assert sup.describe(web)["url"] == "http://localhost:8080"
    assert not sup.describe(web)["hostname_mapped"] and sup.local_hostnames() == []
    loopback.add("web.test")      # added by hand: local, but not hostsd's, so no URL
    assert sup.describe(web)["hostname_mapped"] and sup.local_hostnames() == ["web.test"]
    assert sup.describe(web)["url"] == "http://localhost:8080"
    mapped.add("web")
    assert sup.describe(web)["url"] == "http://web.test:8080"
    assert sup.configured_hostnames() == [None, None, "web.test", None]


def test_attachments_given_at_construction_follow_a_reload(tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    sup, _, _ = started(tmp_path, first, second)
    assert sorted(first.events) == [("started", n) for n in ("api", "db", "old", "web")]
    first.events.clear()
    new = config(tmp_path, NEW)
    sup.apply(plan_reload(sup.config, new), new)
    settle(sup)
    assert sorted(first.events) == [("started", "api"), ("started", "worker"),
                                    ("stopped", "api"), ("stopped", "old"),
                                    ("updated", "web: web.test -> web2.test")]
    assert second.events[-len(first.events):] == first.events   # each told, in order
    sup.shutdown()


def test_shutdown_stops_dependants_first_and_independent_ones_together(
        tmp_path: Path) -> None:
    sup, ops, _ = started(tmp_path)
    pids = {s.pid: name for name, s in sup.services.items()}
    sup.shutdown()
    order = [pids[pid] for pid, _ in ops.signalled]
    assert order.index("api") < order.index("db")
    # web and old depend on nothing and nothing on them: signalled in the first wave,
    # before db, whose dependant api had to stop first
    assert {"web", "old"} <= set(order[:order.index("db")])


def test_a_reload_removing_a_chain_stops_the_dependant_first(tmp_path: Path) -> None:
    sup, ops, _ = started(tmp_path)
    pids = {s.pid: name for name, s in sup.services.items()}
    new = config(tmp_path, """
services:
  web: {command: web-v1, restart_policy: never, port: 8080, hostname: web.test}
""")
    sup.apply(plan_reload(sup.config, new), new)
    order = [pids[pid] for pid, _ in ops.signalled]
    assert order.index("api") < order.index("db") and list(sup.services) == ["web"]
    sup.shutdown()


def test_start_all_with_targets_starts_only_them_and_their_dependencies(
        tmp_path: Path) -> None:
    sup = Supervisor(config(tmp_path, OLD), cast(Any, FakePrinter()),
                     cast(Any, FakePublisher()), "test", ops=FakeOps())
    sup.start_all(["api"])
    settle(sup)
    assert {n for n, s in sup.services.items() if s.status == Status.RUNNING} == {"api", "db"}
    doc = sup.describe(sup.services["web"])
    assert doc["status"] == "stopped"
    assert doc["status_reason"] == "not started: not named on the command line " \
                                   "(start it by hand)"
    sup.shutdown()


def test_a_service_added_by_reload_with_autostart_false_is_not_started(
        tmp_path: Path) -> None:
    sup, ops, _ = started(tmp_path)
    new = config(tmp_path, OLD + "  extra: {command: extra-v1, autostart: false}\n")
    sup.apply(plan_reload(sup.config, new), new)
    settle(sup)
    assert sup.services["extra"].status == Status.STOPPED and "extra-v1" not in ops.spawned
    sup.shutdown()


# --------------------------------------------------------------------------- profiles

PROFILED = """
services:
  db: {command: db-v1, restart_policy: never}
  docs-db: {command: docs-db-v1, restart_policy: never, profiles: [docs]}
  docs: {command: docs-v1, restart_policy: never, profiles: [docs], depends_on: [docs-db]}
  report: {command: report-v1, restart_policy: never, profiles: [debug], depends_on: [docs-db]}
"""


def profiled(tmp_path: Path, text: str, *active: str,
             ) -> tuple[Supervisor, FakeOps, FakePublisher]:
    ops, publisher = FakeOps(), FakePublisher()
    sup = Supervisor(config(tmp_path, text), cast(Any, FakePrinter()), cast(Any, publisher),
                     "test", ops=ops, active_profiles=active)
    sup.start_all()
    settle(sup)
    return sup, ops, publisher


def running(sup: Supervisor) -> set[str]:
    return {n for n, s in sup.services.items() if s.status == Status.RUNNING}


def test_start_all_leaves_inactive_services_stopped_with_their_reason(tmp_path: Path) -> None:
    sup, _, _ = profiled(tmp_path, PROFILED)
    assert running(sup) == {"db"}
    doc = sup.describe(sup.services["docs"])
    assert (doc["status"], doc["status_reason"]) == ("stopped", "profile docs not active")
    assert doc["profiles"] == ["docs"] and sup.default_targets() == ("db",)
    sup.shutdown()


def test_an_inactive_service_starts_by_hand_with_its_dependencies(tmp_path: Path) -> None:
    sup, _, _ = profiled(tmp_path, PROFILED)
    docs = sup.services["docs"]
    docs.submit(docs.start).get(timeout=10)
    settle(sup)
    assert running(sup) == {"db", "docs-db", "docs"}
    assert sup.describe(docs)["status_reason"] is None
    sup.shutdown()


def test_an_active_profile_starts_its_services_and_the_inactive_ones_they_need(
        tmp_path: Path) -> None:
    sup, _, publisher = profiled(tmp_path, PROFILED, "debug")
    assert running(sup) == {"db", "docs-db", "report"}
    assert sup.describe(sup.services["docs"])["status_reason"] == "profile docs not active"
    said = [body["message"] for _, body in publisher.published if body.get("event") == "message"]
    assert "docs-db: profile docs not active, but report depends on it: starting it" in said
    sup.shutdown()


def test_a_service_added_by_reload_starts_only_if_its_profile_is_active(
        tmp_path: Path) -> None:
    sup, ops, _ = profiled(tmp_path, PROFILED, "docs")
    new = config(tmp_path, PROFILED + "  lint: {command: lint-v1, profiles: [docs]}\n"
                                      "  trace: {command: trace-v1, profiles: [debug]}\n")
    sup.apply(plan_reload(sup.config, new), new)
    settle(sup)
    assert "lint-v1" in ops.spawned and "trace-v1" not in ops.spawned
    assert sup.describe(sup.services["trace"])["status_reason"] == "profile debug not active"
    sup.shutdown()


def test_a_reload_changing_profiles_starts_and_stops_nothing(tmp_path: Path) -> None:
    """docs's profile becomes active, db's inactive: both stay as they were (a running
    dev server is not killed by an edit of its profiles); only stopped ones' reasons
    follow."""
    sup, ops, _ = profiled(tmp_path, PROFILED)
    db_pid, spawned = sup.services["db"].pid, list(ops.spawned)
    new = config(tmp_path, PROFILED.replace("docs-v1, restart_policy: never, profiles: [docs]",
                                            "docs-v1, restart_policy: never, profiles: []")
                 .replace("db-v1, restart_policy: never}",
                          "db-v1, restart_policy: never, profiles: [debug]}", 1))
    plan = plan_reload(sup.config, new)
    assert {c.service: c.action.value for c in plan.changes} == {"db": "update",
                                                                 "docs": "update"}
    sup.apply(plan, new)
    settle(sup)
    assert ops.spawned == spawned and not ops.signalled
    assert sup.services["db"].pid == db_pid and sup.services["db"].config.profiles == ("debug",)
    assert sup.describe(sup.services["docs"])["status_reason"] == \
        "not started: its profiles changed while running (start it by hand)"
    assert sup.describe(sup.services["docs-db"])["status_reason"] == "profile docs not active"
    sup.shutdown()
