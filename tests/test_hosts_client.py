"""The supervisor's hosts client against a real promenade-hostsd process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import pytest

from promenade_core.hosts.client import (
    HostsdUnavailable,
    HostsManager,
    host_lines,
    hostsd_request,
    manual_instructions,
)
from tests.support.hostsd import ORIGINAL, Hostsd, our_lines


def gwait(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """A bounded poll that lets gevent greenlets (the keepalive) run meanwhile."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        gevent.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last saw {last!r}")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Hostsd]:
    root = Path(tempfile.mkdtemp(prefix="hostsd-"))
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    d = Hostsd(root, hosts, root / "hostsd.sock", tmp_path / "state", ["--timeout", "2"])
    yield d
    if d.proc is not None:
        d.kill()
    shutil.rmtree(root)


class Messages(list[str]):
    """The texts emitted; `about` keeps each one's (level, service)."""

    def __init__(self) -> None:
        super().__init__()
        self.about: list[tuple[str, str | None]] = []

    def __call__(self, message: str, level: str = "info", service: str | None = None) -> None:
        self.append(message)
        self.about.append((level, service))


@pytest.fixture
def emitted() -> Messages:
    return Messages()


def test_auto_maps_replaces_unmaps_and_closes(daemon: Hostsd, emitted: Messages) -> None:
    daemon.start()
    hosts = HostsManager("auto", str(daemon.socket), emitted)
    hosts.map("api", "api.test")
    hosts.map("web", "web.local")
    hosts.map("api", "api.test")
    assert hosts.mapped() == {"api": "api.test", "web": "web.local"}
    assert our_lines(daemon.read()) == ["127.0.0.1  api.test  # promenade:api",
                                        "127.0.0.1  web.local  # promenade:web",
                                        "::1  web.local  # promenade:web"]
    hosts.map("api", "api2.test")
    assert our_lines(daemon.read())[0] == "127.0.0.1  api2.test  # promenade:api"
    hosts.unmap("web")
    assert hosts.mapped() == {"api": "api2.test"}
    assert our_lines(daemon.read()) == ["127.0.0.1  api2.test  # promenade:api"]
    hosts.close()
    assert daemon.read() == ORIGINAL, "close() removes synchronously"
    assert hosts.mapped() == {}
    hosts.map("api", "again.test")  # after close: ignored, never raises
    assert daemon.read() == ORIGINAL
    assert emitted == []


def test_without_hostsd_warns_once_then_maps_when_it_appears(
        daemon: Hostsd, emitted: Messages) -> None:
    hosts = HostsManager("auto", str(daemon.socket), emitted, keepalive=60)
    hosts.map("api", "api.test")
    hosts.map("web", "web.test")
    assert hosts.mapped() == {}
    assert len(emitted) == 1
    assert "Warning: hostnames are not mapped" in emitted[0]
    assert "hosts install`" in emitted[0] and "`sudo " in emitted[0]
    assert emitted.about[0] == ("warning", None)   # the dashboard's warning toast
    daemon.start()
    hosts.map("docs", "docs.test")
    assert hosts.mapped() == {"api": "api.test", "web": "web.test", "docs": "docs.test"}
    assert "connected to promenade-hostsd" in emitted[-1]
    hosts.close()
    assert daemon.read() == ORIGINAL


def test_a_restarted_hostsd_gets_the_names_again(daemon: Hostsd, emitted: Messages) -> None:
    daemon.start()
    hosts = HostsManager("auto", str(daemon.socket), emitted, keepalive=0.1)
    try:
        hosts.map("api", "api.test")
        daemon.stop()  # a clean stop drops every lease
        assert daemon.read() == ORIGINAL
        gwait(lambda: any("lost promenade-hostsd" in m for m in emitted), "the loss noticed")
        daemon.start()
        # hostsd writes the file before it replies: wait for the reply too.
        gwait(lambda: hosts.mapped() == {"api": "api.test"}, "the name mapped again")
        assert our_lines(daemon.read()) == ["127.0.0.1  api.test  # promenade:api"]
    finally:
        hosts.close()
    assert daemon.read() == ORIGINAL


def test_a_refused_name_is_a_warning_not_retried(daemon: Hostsd, emitted: Messages) -> None:
    daemon.start()
    hosts = HostsManager("auto", str(daemon.socket), emitted)
    hosts.map("gh", "github.com")
    hosts.map("api", "api.test")
    hosts.map("gh", "github.com")
    assert hosts.mapped() == {"api": "api.test"}
    assert len(emitted) == 1, emitted
    assert "hostname github.com for service 'gh' not mapped" in emitted[0]
    assert "outside promenade" in emitted[0]
    assert emitted.about[0] == ("warning", "gh")
    hosts.close()


def test_two_projects_with_the_same_service_name(daemon: Hostsd, emitted: Messages) -> None:
    daemon.start()
    one = HostsManager("auto", str(daemon.socket), emitted)
    two = HostsManager("auto", str(daemon.socket), emitted)
    one.map("api", "one.test")
    two.map("api", "two.test")
    one.unmap("api")
    one.close()
    assert our_lines(daemon.read()) == ["127.0.0.1  two.test  # promenade:api"]
    two.close()
    assert daemon.read() == ORIGINAL


@pytest.mark.timeout(20)
def test_a_hostsd_that_never_answers_cannot_hang_the_supervisor(
        tmp_path: Path, emitted: Messages) -> None:
    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(path)
        silent.listen(8)  # accepts into the backlog, never replies
        hosts = HostsManager("auto", path, emitted, timeout=0.3)
        ticks: list[float] = []

        def tick() -> None:
            for _ in range(10):
                gevent.sleep(0.02)
                ticks.append(time.monotonic())

        ticker = gevent.spawn(tick)
        started = time.monotonic()
        hosts.map("api", "api.test")
        assert time.monotonic() - started < 2
        assert len(ticks) >= 5, "other greenlets kept running while we waited"
        ticker.join()
        assert hosts.mapped() == {}
        assert "lost promenade-hostsd" in emitted[0]
        hosts.close()


def test_manual_mode_prints_the_lines_and_the_command_once(emitted: Messages,
                                                         tmp_path: Path) -> None:
    hosts = HostsManager("manual", str(tmp_path / "absent.sock"), emitted)
    hosts.map("api", "api.local")
    hosts.map("api", "api.local")
    hosts.map("web", "web.test")
    assert len(emitted) == 2
    assert "  127.0.0.1  api.local\n  ::1  api.local\n" in emitted[0]
    assert "printf '127.0.0.1  api.local\\n::1  api.local\\n' | sudo tee -a /etc/hosts" \
        in emitted[0]
    assert "hosts_management: manual" in emitted[1] and "127.0.0.1  web.test" in emitted[1]
    assert hosts.mapped() == {}
    hosts.close()


def test_disabled_mode_does_nothing(emitted: Messages, tmp_path: Path) -> None:
    hosts = HostsManager("disabled", str(tmp_path / "absent.sock"), emitted)
    hosts.map("api", "api.local")
    hosts.unmap("api")
    hosts.close()
    assert emitted == [] and hosts.mapped() == {}


def test_unknown_mode_is_a_programming_error(emitted: Messages) -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        HostsManager("sometimes", "/nowhere", emitted)


def test_attachment_hooks_follow_the_service(daemon: Hostsd, emitted: Messages) -> None:
    daemon.start()
    hosts = HostsManager("auto", str(daemon.socket), emitted)
    old = SimpleNamespace(hostname="api.test")
    svc = SimpleNamespace(name="api", status="running", config=old)
    hosts.on_started(svc)
    assert hosts.mapped() == {"api": "api.test"}
    svc.config = SimpleNamespace(hostname="new.test")
    hosts.on_updated(svc, old)
    assert hosts.mapped() == {"api": "new.test"}
    hosts.on_stopped(svc)
    assert hosts.mapped() == {}
    stopped = SimpleNamespace(name="web", status="stopped",
                              config=SimpleNamespace(hostname="w.test"))
    hosts.on_updated(stopped, SimpleNamespace(hostname=None))
    assert hosts.mapped() == {}, "a stopped service is not mapped by a reload"
    hosts.on_started(SimpleNamespace(name="x", config=SimpleNamespace(hostname=None)))
    hosts.close()
    assert daemon.read() == ORIGINAL


def test_hostsd_request_and_its_errors(daemon: Hostsd, tmp_path: Path) -> None:
    with pytest.raises(HostsdUnavailable, match=r"`sudo \S*promenade hosts install`"):
        hostsd_request(str(daemon.socket), {"op": "ping"})
    daemon.start()
    assert hostsd_request(str(daemon.socket), {"op": "ping"})["pong"] is True
    reply = hostsd_request(str(daemon.socket), {"op": "add", "service": "s", "hostname": "a b"})
    assert reply["ok"] is False and reply["error"]["code"] == "invalid_hostname"


def test_host_lines_and_instructions() -> None:
    assert host_lines("api.test") == ["127.0.0.1  api.test"]
    assert host_lines("API.LOCAL") == ["127.0.0.1  API.LOCAL", "::1  API.LOCAL"]
    assert manual_instructions(["a.test", "b.test"]).startswith(
        "add these lines to /etc/hosts:\n  127.0.0.1  a.test\n  127.0.0.1  b.test\n")


# -- promenade hosts show|add|remove --------------------------------------------------------

def promenade(tmp_path: Path, socket_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PROMENADE_HOSTSD_SOCKET=str(socket_path))
    return subprocess.run([sys.executable, "-m", "promenade_cli", "hosts", *args,
                           "-c", str(tmp_path / "promenade.yaml")],
                          capture_output=True, text=True, env=env, timeout=30, check=False)


CONFIG = """\
services:
  api:
    command: sleep 1000
    port: 5001
    hostname: api.local
  docs:
    command: sleep 1000
    port: 5002
    hostname: docs.test
  worker:
    command: sleep 1000
"""


def test_cli_show_add_remove(daemon: Hostsd, tmp_path: Path) -> None:
    (tmp_path / "promenade.yaml").write_text(CONFIG)
    shown = promenade(tmp_path, daemon.socket, "show")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "127.0.0.1  api.local\n::1  api.local\n127.0.0.1  docs.test\n"

    missing = promenade(tmp_path, daemon.socket, "add")
    assert missing.returncode == 1
    assert "Error: promenade-hostsd is not running" in missing.stderr
    assert "promenade hosts install`" in missing.stderr

    daemon.start()
    added = promenade(tmp_path, daemon.socket, "add")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "api: api.local -> 127.0.0.1\ndocs: docs.test -> 127.0.0.1\n"
    assert our_lines(daemon.read()) == ["127.0.0.1  api.local  # promenade:api",
                                        "::1  api.local  # promenade:api",
                                        "127.0.0.1  docs.test  # promenade:docs"]
    daemon.stop()
    daemon.start()  # persisted: kept across a restart of hostsd
    assert len(our_lines(daemon.read())) == 3

    removed = promenade(tmp_path, daemon.socket, "remove")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == "api: removed api.local\ndocs: removed docs.test\n"
    assert daemon.read() == ORIGINAL
    again = promenade(tmp_path, daemon.socket, "remove")
    assert again.stdout.count("is not mapped by `promenade hosts add`") == 2


def test_cli_add_reports_each_refusal(daemon: Hostsd, tmp_path: Path) -> None:
    (tmp_path / "promenade.yaml").write_text(CONFIG.replace("docs.test", "github.com"))
    daemon.start()
    added = promenade(tmp_path, daemon.socket, "add")
    assert added.returncode == 1
    assert added.stdout == "api: api.local -> 127.0.0.1\n"
    assert "Error: docs: hostname 'github.com' is this machine's name or already in" \
        in added.stderr


# -- issue 10, point 20: `*.localhost` needs no entry ----------------------------------------

def test_dot_localhost_names_count_as_mapped_and_never_reach_hostsd(
        daemon: Hostsd, emitted: Messages) -> None:
    """`*.localhost` resolves by itself: the manager must not ask hostsd (which refuses
    it) and must treat it as mapped at once, in `auto` and in `manual` mode."""
    daemon.start()
    hosts = HostsManager("auto", str(daemon.socket), emitted)
    hosts.map("api", "api.myapp.localhost")
    assert hosts.mapped() == {"api": "api.myapp.localhost"}
    assert hostsd_request(str(daemon.socket), {"op": "list"})["entries"] == []
    hosts.map("web", "web.test")  # a reload: api moves to a name hostsd maps, and back
    hosts.map("api", "api.test")
    assert our_lines(daemon.read()) == ["127.0.0.1  web.test  # promenade:web",
                                        "127.0.0.1  api.test  # promenade:api"]
    hosts.map("api", "api.myapp.localhost")
    assert hosts.mapped() == {"web": "web.test", "api": "api.myapp.localhost"}
    assert our_lines(daemon.read()) == ["127.0.0.1  web.test  # promenade:web"]
    hosts.unmap("api")
    assert hosts.mapped() == {"web": "web.test"}
    hosts.close()
    assert daemon.read() == ORIGINAL and emitted == []
    manual = HostsManager("manual", str(daemon.socket), emitted)
    manual.map("api", "api.localhost")
    assert manual.mapped() == {"api": "api.localhost"} and emitted == []
    manual.close()


def test_without_hostsd_dot_localhost_names_give_no_warning(
        tmp_path: Path, emitted: Messages) -> None:
    hosts = HostsManager("auto", str(tmp_path / "absent.sock"), emitted)
    hosts.map("api", "api.localhost")
    assert hosts.mapped() == {"api": "api.localhost"} and emitted == []
    hosts.close()


@pytest.mark.timeout(90)
def test_a_manager_shows_dot_localhost_urls_without_asking_hostsd(daemon: Hostsd,
                                                                  tmp_path: Path) -> None:
    """The status URL of a `*.localhost` service is `http://api.myapp.localhost:PORT`,
    and hostsd never hears of the name (it would refuse it)."""
    from tests.support import Manager, free_port

    daemon.start()
    port = free_port()
    manager = Manager(tmp_path, f"""
        manager:
          hosts_management: auto
          hostsd_socket: {daemon.socket}
        services:
          api:
            command: {sys.executable} -m http.server {port} --bind 127.0.0.1
            port: {port}
            hostname: api.myapp.localhost
        """)
    try:
        manager.start()
        status = manager.wait_status("api", "running", timeout=30)
        assert status["url"] == f"http://api.myapp.localhost:{port}", status
        assert hostsd_request(str(daemon.socket), {"op": "list"})["entries"] == []
        assert daemon.read() == ORIGINAL
        assert "not mapped" not in manager.output()
    finally:
        manager.cleanup()
    log = daemon.stop()
    assert "mapped" not in log, log


def test_cli_hosts_commands_skip_dot_localhost_names(daemon: Hostsd, tmp_path: Path) -> None:
    (tmp_path / "promenade.yaml").write_text(CONFIG.replace("docs.test", "docs.localhost"))
    shown = promenade(tmp_path, daemon.socket, "show")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "127.0.0.1  api.local\n::1  api.local\n"
    assert "docs: docs.localhost needs no hosts entry" in shown.stderr
    daemon.start()
    added = promenade(tmp_path, daemon.socket, "add")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "api: api.local -> 127.0.0.1\n"
    removed = promenade(tmp_path, daemon.socket, "remove")
    assert removed.returncode == 0 and daemon.read() == ORIGINAL, removed
