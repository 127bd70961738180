"""Profiles end to end: a real manager started with `--profile` and PROMENADE_PROFILES,
services of inactive profiles shown stopped with their reason and started by hand with
their dependencies, and the daemon keeping the profiles across its re-exec."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import textwrap
from pathlib import Path

import pytest

from tests.support import Manager, wait_for

pytestmark = pytest.mark.timeout(90)

CONFIG = """
    services:
      api: {command: exec sleep 60}
      docs-db: {command: exec sleep 60, profiles: [docs]}
      docs: {command: exec sleep 60, profiles: [docs], depends_on: [docs-db]}
      debugger: {command: exec sleep 60, profiles: [debug]}
"""


def statuses(m: Manager) -> dict[str, tuple[str, str | None]]:
    """Each service's (status, status_reason), once no service is on its way any more."""
    def settled() -> dict[str, tuple[str, str | None]] | None:
        found = {n: (s["status"], s["status_reason"])
                 for n, s in m.request("status")["services"].items()}
        return found if all(st in ("running", "stopped") for st, _ in found.values()) else None
    return wait_for(settled, 15, "every service running or stopped")


def test_without_a_profile_only_services_without_profiles_start(manager) -> None:
    m = manager(CONFIG)
    assert statuses(m) == {"api": ("running", None),
                           "docs-db": ("stopped", "profile docs not active"),
                           "docs": ("stopped", "profile docs not active"),
                           "debugger": ("stopped", "profile debug not active")}
    assert m.request("status")["profiles"] == []
    table = m.cli("status").stdout
    assert table.startswith("NAME") and "profile docs not active" in table


def test_profile_option_and_environment_combine(manager) -> None:
    m = manager(CONFIG, args=("--no-ui", "--profile", "docs"), start=False)
    m.env["PROMENADE_PROFILES"] = "debug"
    m.start()
    assert {n for n, (st, _) in statuses(m).items() if st == "running"} == {
        "api", "docs-db", "docs", "debugger"}
    assert m.request("status")["profiles"] == ["debug", "docs"]
    assert m.cli("status").stdout.splitlines()[0] == "profiles: debug, docs"
    m.wait_output("profiles debug, docs")
    info = m.info()
    assert info is not None
    manager_json = json.loads((info.runtime_dir / "manager.json").read_text())
    assert manager_json["profiles"] == ["debug", "docs"]


def test_a_comma_separated_profile_option_activates_each(manager) -> None:
    m = manager(CONFIG, args=("--no-ui", "--profile", "docs,debug"))
    assert statuses(m)["debugger"] == ("running", None)
    assert statuses(m)["docs"] == ("running", None)


def test_an_inactive_service_starts_by_hand_with_its_dependency(manager) -> None:
    m = manager(CONFIG)
    statuses(m)
    out = m.cli("start", "docs")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("docs: running")
    assert statuses(m) == {"api": ("running", None), "docs-db": ("running", None),
                           "docs": ("running", None),
                           "debugger": ("stopped", "profile debug not active")}


def test_a_named_service_of_an_inactive_profile_starts_with_its_dependency(manager) -> None:
    m = manager(CONFIG, args=("--no-ui", "docs"))
    assert statuses(m) == {
        "api": ("stopped", "not started: not named on the command line (start it by hand)"),
        "docs-db": ("running", None), "docs": ("running", None),
        "debugger": ("stopped", "profile debug not active")}
    m.wait_output("docs-db: profile docs not active, but docs depends on it: starting it")


def test_an_unknown_profile_is_a_usage_error_naming_the_known_ones(manager) -> None:
    m = manager(CONFIG, start=False)
    out = m.cli("start", "--no-ui", "--profile", "dcos")
    assert out.returncode == 2
    assert out.stderr == ("Error: unknown profile 'dcos' (known: debug, docs); "
                          "did you mean 'docs'?\n")
    m.env["PROMENADE_PROFILES"] = "docs,nope"
    out = m.cli("start", "--no-ui")
    assert out.returncode == 2 and "unknown profile 'nope'" in out.stderr


def test_profile_with_a_running_manager_is_a_usage_error(manager) -> None:
    m = manager(CONFIG)
    out = m.cli("start", "--profile", "docs", "docs")
    assert out.returncode == 2 and "--profile applies when the manager starts" in out.stderr
    assert statuses(m)["docs"][0] == "stopped"


def test_the_daemon_keeps_its_profiles_and_waits_only_for_active_services(
        tmp_path: Path) -> None:
    """`start -d --wait` must re-exec with the profiles and wait for what it started,
    not fail on `debugger` (inactive, so never started)."""
    m = Manager(tmp_path, CONFIG)
    daemon: int | None = None
    try:
        out = m.cli("start", "-d", "--no-ui", "--wait", "--timeout", "20",
                    "--profile", "docs")
        found = re.search(r"running in the background \(pid (\d+)\)", out.stdout)
        daemon = int(found.group(1)) if found else None
        assert out.returncode == 0, out.stderr
        assert m.request("status")["profiles"] == ["docs"]
        assert statuses(m)["debugger"] == ("stopped", "profile debug not active")
        assert statuses(m)["docs"] == ("running", None)
        stopped = m.cli("stop")
        assert stopped.returncode == 0, stopped.stderr
    finally:
        if daemon is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon, signal.SIGKILL)
        m.cleanup()


def test_a_reload_starts_an_added_service_only_if_active_and_keeps_changed_ones(
        manager) -> None:
    """Added: `lint` (docs, active) starts, `trace` (debug) does not. Changed in place:
    `api` moved into the inactive debug profile keeps running; `debugger` moved into
    docs is not started, its reason says how to start it."""
    m = manager(CONFIG, args=("--no-ui", "--profile", "docs"))
    api_pid = wait_for(lambda: m.status("api")["pid"], 15, "api's pid")
    statuses(m)
    m.path.write_text(textwrap.dedent("""
        services:
          api: {command: exec sleep 60, profiles: [debug]}
          docs-db: {command: exec sleep 60, profiles: [docs]}
          docs: {command: exec sleep 60, profiles: [docs], depends_on: [docs-db]}
          debugger: {command: exec sleep 60, profiles: [docs]}
          lint: {command: exec sleep 60, profiles: [docs]}
          trace: {command: exec sleep 60, profiles: [debug]}
    """))
    result = m.request("reload")
    assert result["changed"], result
    assert statuses(m) == {
        "api": ("running", None), "docs-db": ("running", None), "docs": ("running", None),
        "debugger": ("stopped",
                     "not started: its profiles changed while running (start it by hand)"),
        "lint": ("running", None), "trace": ("stopped", "profile debug not active")}
    assert m.status("api")["pid"] == api_pid and m.status("api")["profiles"] == ["debug"]
