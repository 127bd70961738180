"""promenade-hostsd as a real process on a temp hosts file and a temp socket."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_for
from tests.support.hostsd import ORIGINAL, Client, Hostsd, our_lines


@pytest.fixture
def hostsd(tmp_path: Path) -> Iterator[Hostsd]:
    # A folder others can enter, so a client running as nobody reaches the socket.
    root = Path(tempfile.mkdtemp(prefix="hostsd-"))
    root.chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    daemon = Hostsd(root, hosts, root / "run" / "hostsd.sock", tmp_path / "state",
                    ["--group", "nogroup", "--timeout", "1"])
    daemon.start()
    yield daemon
    for client in daemon.clients:
        client.close()
    daemon.kill()
    shutil.rmtree(root)


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"] is True, reply
    return reply


def refused(reply: dict[str, Any], code: str, fragment: str = "") -> None:
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    assert fragment in reply["error"]["message"], reply


# -- every op ----------------------------------------------------------------------------

def test_add_list_remove_clear_ping(hostsd: Hostsd) -> None:
    c = hostsd.client()
    pong = ok(c(op="ping"))
    assert pong["uid"] == 0 and pong["version"] == 1
    assert ok(c(op="add", service="api", hostname="API.local")) == {
        "ok": True, "service": "api", "hostname": "api.local", "persist": False}
    ok(c(op="add", service="web", hostname="web.test", address="127.0.0.2"))
    assert hostsd.read() == ORIGINAL + (
        b"\n127.0.0.1  api.local  # promenade:api\n::1  api.local  # promenade:api"
        b"\n127.0.0.2  web.test  # promenade:web")
    entries = ok(c(op="list"))["entries"]
    assert entries == [
        {"service": "api", "hostname": "api.local", "address": "127.0.0.1", "uid": 0,
         "persist": False, "mine": True},
        {"service": "web", "hostname": "web.test", "address": "127.0.0.2", "uid": 0,
         "persist": False, "mine": True}]
    assert ok(c(op="remove", service="api"))["removed"] == ["api.local"]
    assert ok(c(op="remove", service="api"))["removed"] == []
    assert our_lines(hostsd.read()) == ["127.0.0.2  web.test  # promenade:web"]
    assert ok(c(op="clear"))["removed"] == ["web.test"]
    assert hostsd.read() == ORIGINAL
    backup = hostsd.state / "hosts.before-promenade"
    assert backup.read_bytes() == ORIGINAL


def test_add_is_idempotent_and_a_new_hostname_replaces_the_old(hostsd: Hostsd) -> None:
    c = hostsd.client()
    ok(c(op="add", service="api", hostname="api.test"))
    ok(c(op="add", service="web", hostname="web.test"))
    first = hostsd.read()
    ok(c(op="add", service="api", hostname="api.test"))
    assert hostsd.read() == first
    ok(c(op="add", service="api", hostname="api2.test"))
    assert our_lines(hostsd.read()) == ["127.0.0.1  api2.test  # promenade:api",
                                        "127.0.0.1  web.test  # promenade:web"]


def test_two_projects_of_one_user_with_the_same_service_name(hostsd: Hostsd) -> None:
    """A lease belongs to its connection: one project's stop keeps the other's entry."""
    a, b = hostsd.client(), hostsd.client()
    ok(a(op="add", service="api", hostname="a.test"))
    ok(b(op="add", service="api", hostname="b.test"))
    refused(b(op="add", service="other", hostname="a.test"), "taken", "your service 'api'")
    ok(a(op="remove", service="api"))
    assert our_lines(hostsd.read()) == ["127.0.0.1  b.test  # promenade:api"]
    a.close()
    b.close()
    wait_for(lambda: hostsd.read() == ORIGINAL, what="leases to end")


# -- refusals: each one leaves the file byte-identical ------------------------------------

BAD_HOSTNAMES = ["", "a b.test", "a\nb.test", "a#b.test", "a\tb", "x\x00y", "x" * 254,
                 "a..test", ".a.test", "a.test.", "-a.test", "a-.test", "caf\u00e9.test",
                 "a_b.test", "localhost", "LOCALHOST", "foo.localhost", 42, None,
                 ("a" * 64) + ".test", "127.0.0.1", "10.0.0.1", "a.123", "::1"]


@pytest.mark.parametrize("hostname", BAD_HOSTNAMES)
def test_invalid_hostnames_are_refused(hostsd: Hostsd, hostname: Any) -> None:
    refused(hostsd.client()(op="add", service="api", hostname=hostname), "invalid_hostname")
    assert hostsd.read() == ORIGINAL


@pytest.mark.parametrize("hostname", ["github.com", "GH", "mybox", "ip6-localhost",
                                      socket.gethostname()])
def test_names_outside_our_lines_cannot_be_hijacked(hostsd: Hostsd, hostname: str) -> None:
    refused(hostsd.client()(op="add", service="api", hostname=hostname), "reserved")
    assert hostsd.read() == ORIGINAL


@pytest.mark.parametrize("address", ["10.0.0.1", "0.0.0.0", "::2", "127.0.0.01", "localhost",
                                     "127.0.0.1 evil.com", 2130706433, None])
def test_addresses_other_than_loopback_are_refused(hostsd: Hostsd, address: Any) -> None:
    reply = hostsd.client()(op="add", service="api", hostname="a.test", address=address)
    refused(reply, "invalid_address")
    assert hostsd.read() == ORIGINAL


@pytest.mark.parametrize("service", ["", "a b", "a#b", "a\n", "x" * 65, "caf\u00e9", 3, None])
def test_invalid_service_names_are_refused(hostsd: Hostsd, service: Any) -> None:
    c = hostsd.client()
    refused(c(op="add", service=service, hostname="a.test"), "invalid_service")
    refused(c(op="remove", service=service), "invalid_service")
    assert hostsd.read() == ORIGINAL


@pytest.mark.parametrize(("data", "code"), [
    (b"{not json\n", "bad_request"),
    (b"[1, 2]\n", "bad_request"),
    (b'"add"\n', "bad_request"),
    (b"\n", "bad_request"),
    (b'{"op": "drop_table"}\n', "unknown_op"),
    (b'{"op": ["add"]}\n', "unknown_op"),
    (b'{"service": "api"}\n', "unknown_op"),
    (b'{"op": "add", "service": "api", "hostname": "a.test", "uid": 1000}\n', "bad_request"),
    (b'{"op": "add", "service": "api", "hostname": "a.test", "persist": "yes"}\n',
     "bad_request"),
    (b'{"op": "add", "service": "api", "hostname": "a.\xff"}\n', "bad_request"),
    (b"[" * 4000 + b"\n", "bad_request"),
    (b"NaN\n", "bad_request"),
])
def test_malformed_requests_are_refused_and_the_connection_survives(
        hostsd: Hostsd, data: bytes, code: str) -> None:
    c = hostsd.client()
    refused(c.raw(data), code)
    ok(c(op="ping"))
    assert hostsd.read() == ORIGINAL


def test_requests_over_4_kib_are_refused_and_closed(hostsd: Hostsd) -> None:
    c = hostsd.client()
    padding = "x" * (4096 - len('{"op": "ping", "pad": ""}'))
    refused(c.raw(json.dumps({"op": "ping", "pad": padding}).encode() + b"\n"), "bad_request")
    refused(c.raw(json.dumps({"op": "ping", "pad": padding + "x"}).encode() + b"\n"),
            "too_large")
    assert c.closed_by_peer()
    big = hostsd.client()
    big.sock.sendall(b"x" * 20000)
    assert json.loads(big.file.readline())["error"]["code"] == "too_large"
    assert hostsd.read() == ORIGINAL


def test_a_client_that_sends_nothing_is_timed_out(hostsd: Hostsd) -> None:
    c = hostsd.client()
    started = time.monotonic()
    reply = json.loads(c.file.readline())
    assert reply["error"]["code"] == "timeout"
    assert 0.8 < time.monotonic() - started < 4
    assert c.closed_by_peer()


def test_at_most_256_entries_per_user(hostsd: Hostsd) -> None:
    c = hostsd.client()
    for i in range(256):
        ok(c(op="add", service=f"s{i}", hostname=f"h{i}.test"))
    before = hostsd.read()
    refused(c(op="add", service="one-more", hostname="more.test"), "too_many")
    refused(hostsd.client()(op="add", service="x", hostname="x.test", persist=True), "too_many")
    ok(c(op="add", service="s0", hostname="h0-renamed.test"))  # a replacement is fine
    assert hostsd.read() != before and len(our_lines(hostsd.read())) == 256


# -- leases and persistence ---------------------------------------------------------------

def test_closing_the_connection_removes_its_leases_but_not_persisted(hostsd: Hostsd) -> None:
    c = hostsd.client()
    ok(c(op="add", service="api", hostname="api.test"))
    ok(c(op="add", service="docs", hostname="docs.test", persist=True))
    c.close()
    wait_for(lambda: our_lines(hostsd.read()) == ["127.0.0.1  docs.test  # promenade:docs"],
             what="the leased entry to go")
    other = hostsd.client()
    assert ok(other(op="list"))["entries"][0]["persist"] is True
    assert ok(other(op="remove", service="docs"))["removed"] == []  # not a lease of this one
    assert ok(other(op="remove", service="docs", persist=True))["removed"] == ["docs.test"]
    assert hostsd.read() == ORIGINAL


def test_a_leased_add_of_my_persisted_name_is_accepted_without_a_lease(hostsd: Hostsd) -> None:
    c = hostsd.client()
    ok(c(op="add", service="api", hostname="api.test", persist=True))
    assert ok(hostsd.client()(op="add", service="api", hostname="api.test"))["persist"] is True
    assert our_lines(hostsd.read()) == ["127.0.0.1  api.test  # promenade:api"]


@pytest.mark.timeout(30)
def test_a_sigkilled_client_loses_its_leases(hostsd: Hostsd, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall(b'{\"op\": \"add\", \"service\": \"api\", \"hostname\": \"api.test\"}\\n')\n"
        "print(s.makefile().readline(), flush=True)\n"
        "sys.stdin.read()\n")
    with subprocess.Popen([sys.executable, str(script), str(hostsd.socket)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["ok"] is True
            assert our_lines(hostsd.read()) == ["127.0.0.1  api.test  # promenade:api"]
            proc.kill()
            proc.wait()
            wait_for(lambda: hostsd.read() == ORIGINAL, what="the SIGKILLed client's entry to go")
        finally:
            proc.kill()


def test_restart_removes_stale_leases_and_keeps_persisted(hostsd: Hostsd) -> None:
    c = hostsd.client()
    ok(c(op="add", service="api", hostname="api.test"))
    ok(c(op="add", service="docs", hostname="docs.local", persist=True))
    hostsd.kill()  # no chance to clean up: the lease stays in the file
    assert len(our_lines(hostsd.read())) == 3
    with hostsd.hosts.open("ab") as f:  # a stale line from some earlier run, unknown to state
        f.write(b"\n127.0.0.1  old.test  # promenade:old\n")
    hostsd.start()
    assert our_lines(hostsd.read()) == ["127.0.0.1  docs.local  # promenade:docs",
                                        "::1  docs.local  # promenade:docs"]
    err = hostsd.stop()
    assert "1 persisted entries kept, 2 stale entries removed" in err
    assert our_lines(hostsd.read()) == ["127.0.0.1  docs.local  # promenade:docs",
                                        "::1  docs.local  # promenade:docs"]
    assert not hostsd.socket.exists()


def test_sigterm_removes_leases_and_the_socket(hostsd: Hostsd) -> None:
    ok(hostsd.client()(op="add", service="api", hostname="api.test"))
    assert "stopped" in hostsd.stop()
    assert hostsd.read() == ORIGINAL
    assert not hostsd.socket.exists()


def test_a_second_hostsd_refuses_to_start(hostsd: Hostsd) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "promenade_hostsd", "--socket", str(hostsd.socket),
         "--hosts-file", str(hostsd.hosts), "--state-dir", str(hostsd.root / "other")],
        capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 1
    assert f"another promenade-hostsd is listening on {hostsd.socket}" in result.stderr
    ok(hostsd.client()(op="ping"))


def test_socket_is_group_accessible_only(hostsd: Hostsd) -> None:
    st = hostsd.socket.stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o660, 0, 65534)


def test_without_the_group_the_socket_is_root_only(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_bytes(b"")
    daemon = Hostsd(tmp_path, hosts, tmp_path / "s.sock", tmp_path / "state",
                    ["--group", "no-such-group-here"])
    daemon.start()
    try:
        assert daemon.socket.stat().st_mode & 0o777 == 0o600
    finally:
        err = daemon.stop()
    assert "group 'no-such-group-here' not found" in err and "root-only" in err
    assert "`sudo promenade hosts install` creates it" in err


# -- concurrency and other users ----------------------------------------------------------

@pytest.mark.timeout(60)
def test_twenty_concurrent_clients(hostsd: Hostsd) -> None:
    errors: list[str] = []

    def work(i: int) -> None:
        c = Client(hostsd.socket)
        try:
            for round_ in range(5):
                for svc in ("a", "b", "c"):
                    reply = c(op="add", service=svc, hostname=f"{svc}{i}-{round_}.test")
                    if not reply["ok"]:
                        errors.append(str(reply))
                if not c(op="remove", service="b")["ok"]:
                    errors.append("remove failed")
            if i % 2:
                c(op="add", service=f"p{i}", hostname=f"p{i}.test", persist=True)
        finally:
            if i % 4 == 0:  # half of these leave by closing, the others stay connected
                c.close()
            else:
                kept.append(c)

    kept: list[Client] = []
    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    expected = {f"{svc}{i}-4.test" for i in range(20) if i % 4 for svc in ("a", "c")}
    expected |= {f"p{i}.test" for i in range(20) if i % 2}

    def names() -> set[str]:
        return {line.split()[1] for line in our_lines(hostsd.read())}

    def difference() -> str:
        seen = names()
        return "" if seen == expected else f"missing {expected - seen}, extra {seen - expected}"

    wait_for(lambda: not difference(), what="exactly the expected names")
    assert difference() == ""
    data = hostsd.read()
    assert data.startswith(ORIGINAL + b"\n")
    assert all(line.count("  ") == 2 for line in our_lines(data))
    assert len(our_lines(data)) == len(expected)
    for c in kept:
        c.close()


def run_as_nobody(socket_path: Path, *requests: dict[str, Any]) -> list[Any]:
    """The venv may sit under a 0700 folder: the other user's client is /usr/bin/python3."""
    code = (
        "import json, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print(json.dumps(['connect', e.errno])); sys.exit()\n"
        "f = s.makefile('rb')\n"
        "out = []\n"
        "for r in sys.argv[2:]:\n"
        "    s.sendall(r.encode() + b'\\n'); out.append(json.loads(f.readline()))\n"
        "print(json.dumps(out))\n")
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
         "-c", code, str(socket_path), *(json.dumps(r) for r in requests)],
        capture_output=True, text=True, timeout=20, check=True)
    return list(json.loads(result.stdout))


@pytest.mark.skipif(not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs setpriv and /usr/bin/python3")
def test_another_user_cannot_touch_my_entries(hostsd: Hostsd) -> None:
    mine = hostsd.client()
    ok(mine(op="add", service="api", hostname="api.test"))
    ok(mine(op="add", service="docs", hostname="docs.test", persist=True))
    before = hostsd.read()
    replies = run_as_nobody(
        hostsd.socket,
        {"op": "ping"},
        {"op": "add", "service": "api", "hostname": "api.test"},
        {"op": "add", "service": "docs", "hostname": "docs.test", "persist": True},
        {"op": "remove", "service": "api"},
        {"op": "remove", "service": "docs", "persist": True},
        {"op": "clear"},
        {"op": "clear", "persist": True},
        {"op": "list"},
        {"op": "add", "service": "api", "hostname": "nobody.test"},
        {"op": "list"})
    assert replies[0]["uid"] == 65534
    refused(replies[1], "taken", "another user")
    refused(replies[2], "taken", "another user")
    assert [r["removed"] for r in replies[3:7]] == [[], [], [], []]
    assert [e["mine"] for e in replies[7]["entries"]] == [False, False]
    ok(replies[8])
    assert [(e["hostname"], e["uid"], e["mine"]) for e in replies[9]["entries"]][-1] == (
        "nobody.test", 65534, True)
    wait_for(lambda: hostsd.read() == before, what="nobody's lease to end with its connection")


@pytest.mark.skipif(not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs setpriv and /usr/bin/python3")
def test_a_user_outside_the_group_cannot_connect(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="hostsd-"))
    root.chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_bytes(b"")
    daemon = Hostsd(root, hosts, root / "s.sock", tmp_path / "state", ["--group", "root"])
    daemon.start()
    try:
        assert run_as_nobody(daemon.socket, {"op": "ping"}) == ["connect", 13]  # EACCES
    finally:
        daemon.stop()
        shutil.rmtree(root)


# -- issue 10, point 9: a state folder others can write to, planted symlinks, slow drips --

def run_hostsd(hosts: Path, state: Path, sock: Path) -> subprocess.CompletedProcess[str]:
    """hostsd that is expected to refuse to start (so it exits at once)."""
    return subprocess.run(
        [sys.executable, "-m", "promenade_hostsd", "--socket", str(sock), "--hosts-file",
         str(hosts), "--state-dir", str(state), "--group", ""],
        capture_output=True, text=True, timeout=20, check=False)


@pytest.mark.parametrize(("layout", "fragment"), [
    ("state:0777", "writable by group or others (mode 0777)"),
    ("state:0770", "writable by group or others (mode 0770)"),
    ("open:0777/state:0700", "open is writable by group or others"),
    ("state:0700:nobody", "owned by uid 65534, not by root"),
])
def test_hostsd_refuses_a_state_dir_others_can_write_to(
        tmp_path: Path, layout: str, fragment: str) -> None:
    """A writable --state-dir let any user plant `state.json.tmp` -> /etc/shadow, which
    root then overwrote; hostsd must refuse to start on such a folder."""
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    folder = tmp_path
    for part in layout.split("/"):
        name, mode, *owner = part.split(":")
        folder = folder / name
        folder.mkdir()
        folder.chmod(int(mode, 8))
        if owner:
            os.chown(folder, 65534, 65534)
    result = run_hostsd(hosts, folder, tmp_path / "s.sock")
    assert result.returncode == 1, result
    assert "unsafe --state-dir" in result.stderr and fragment in result.stderr, result.stderr
    assert not (folder / "lock").exists() and not (tmp_path / "s.sock").exists()
    assert hosts.read_bytes() == ORIGINAL


def test_hostsd_accepts_a_private_state_dir_below_a_sticky_folder(tmp_path: Path) -> None:
    """Like /var/lib below /: a sticky, world-writable ancestor (such as /tmp) is fine."""
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    daemon = Hostsd(tmp_path, hosts, tmp_path / "s.sock", sticky / "state", ["--group", ""])
    daemon.start()
    assert "started on" in daemon.stop()
    assert (sticky / "state").stat().st_mode & 0o777 == 0o700


def test_hostsd_refuses_a_hosts_file_in_a_folder_others_can_write_to(tmp_path: Path) -> None:
    """The temp file of every write goes beside the hosts file: that folder must be safe."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    hosts = shared / "hosts"
    hosts.write_bytes(ORIGINAL)
    result = run_hostsd(hosts, tmp_path / "state", tmp_path / "s.sock")
    assert result.returncode == 1, result
    assert "unsafe --hosts-file" in result.stderr and "shared is writable" in result.stderr


def test_sudo_daemon_does_not_follow_planted_temp_file_symlinks(tmp_path: Path) -> None:
    """A `state.json.tmp` symlink in the state folder made root overwrite its target
    (any file) with the state JSON; the backup and the hosts temp file likewise."""
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    planted = {state / "state.json.tmp": tmp_path / "victim-state",
               state / "hosts.before-promenade": tmp_path / "victim-backup",
               tmp_path / ".hosts.promenade-tmp": tmp_path / "victim-hosts"}
    for link, victim in planted.items():
        victim.write_bytes(b"precious root file\n")
        link.symlink_to(victim)
    daemon = Hostsd(tmp_path, hosts, tmp_path / "s.sock", state, ["--group", ""])
    daemon.start()
    try:
        c = daemon.client()
        ok(c(op="add", service="docs", hostname="docs.test", persist=True))
        c.close()
    finally:
        daemon.stop()
    for victim in planted.values():
        assert victim.read_bytes() == b"precious root file\n", victim
    saved = json.loads((state / "state.json").read_text())
    assert [e["hostname"] for e in saved["persisted"]] == ["docs.test"]
    assert not (state / "state.json.tmp").is_symlink()
    assert (state / "state.json").stat().st_mode & 0o777 == 0o600
    assert our_lines(daemon.read()) == ["127.0.0.1  docs.test  # promenade:docs"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first", [True, False], ids=["first-request", "later-request"])
def test_a_slow_drip_client_is_cut_off_at_the_request_deadline(
        hostsd: Hostsd, first: bool) -> None:
    """One byte a second reset a 10 s idle timer for ever, so a client could hold a
    connection (and a thread) without sending a request; --timeout (1 s here) now bounds
    the whole request line."""
    c = hostsd.client()
    if not first:
        ok(c(op="ping"))
    request = b'{"op": "ping", "padding": "' + b"x" * 40
    reply, sent = b"", 0
    while not reply:
        assert sent < len(request), f"still connected after dripping {sent} bytes"
        readable, _, _ = select.select([c.sock], [], [], 0.5)  # the drip's pace: a byte / 0.5 s
        if readable:
            reply = c.file.readline()
        else:
            c.sock.sendall(request[sent:sent + 1])
            sent += 1
    assert json.loads(reply)["error"]["code"] == "timeout", reply
    assert "no complete request within 1 s" in json.loads(reply)["error"]["message"]
    assert c.closed_by_peer()
    ok(hostsd.client()(op="ping"))


def test_hostsd_does_not_follow_a_planted_lock_symlink(tmp_path: Path) -> None:
    """The lock was opened with open(…, "a"): a planted `lock` symlink made root create
    (or open for writing) any file; now hostsd refuses to start and names the file."""
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "lock").symlink_to(tmp_path / "created-by-root")
    result = run_hostsd(hosts, state, tmp_path / "s.sock")
    assert result.returncode == 1, result
    assert "lock" in result.stderr and "error" in result.stderr, result.stderr
    assert not (tmp_path / "created-by-root").exists()
