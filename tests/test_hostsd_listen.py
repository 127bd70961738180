"""hostsd's `listen`: loopback 443/80 sockets handed over SCM_RIGHTS, leased to a connection.

hostsd runs as root in a network namespace of its own (`unshare -n`, `lo` up), so port
443 is free whatever the machine runs; its sockets live in that namespace, and TCP
clients reach them through `nsenter`. The lease holders are this test process (through
`PortLease`, the router's client) and, for SIGKILL, a holder process of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest

from promenade_core.hosts.client import HostsdRefused, HostsdUnavailable
from promenade_core.hosts.listeners import PortLease
from tests.support import wait_for
from tests.support.hostsd import (
    HOLDER,
    ORIGINAL,
    SQUATTER,
    TCP_CLIENT,
    Hostsd,
    in_netns,
    netns_hostsd,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "nsenter", "ip")),
    reason="needs root, unshare, nsenter and ip for a private network namespace")

O_CLOEXEC = 0o2000000  # as /proc/PID/fdinfo shows `flags` (octal)


@pytest.fixture
def hostsd(tmp_path: Path) -> Iterator[Hostsd]:
    with netns_hostsd(tmp_path) as daemon:
        yield daemon


@pytest.fixture
def netns(hostsd: Hostsd) -> Iterator[int]:
    """hostsd's network namespace, open: it stays reachable after hostsd exits."""
    assert hostsd.proc is not None
    fd = os.open(f"/proc/{hostsd.proc.pid}/ns/net", os.O_RDONLY)
    yield fd
    os.close(fd)


class Router:
    """The router's side: leases on hostsd and the sockets they got, all closed at the end."""

    def __init__(self, hostsd: Hostsd) -> None:
        self.path = str(hostsd.socket)
        self.leases: list[PortLease] = []
        self.sockets: list[socket.socket] = []

    def lease(self) -> PortLease:
        self.leases.append(PortLease(self.path))
        return self.leases[-1]

    def listen(self, lease: PortLease, port: int, address: str = "127.0.0.1") -> socket.socket:
        self.sockets.append(lease.listen(port, address))
        return self.sockets[-1]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for lease in self.leases:
            lease.close()


@pytest.fixture
def router(hostsd: Hostsd) -> Iterator[Router]:
    made = Router(hostsd)
    yield made
    made.close()


def talk(netns: int, server: socket.socket, address: str, port: int) -> dict[str, str]:
    """A client in the namespace connects and sends; we accept on `server` and answer."""
    client = in_netns(netns, TCP_CLIENT, address, str(port), "hello")
    try:
        server.settimeout(10)
        conn, peer = server.accept()
        with conn:
            assert peer[0] == address
            conn.sendall(conn.recv(100).upper())
        out, _ = client.communicate(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    result: dict[str, str] = json.loads(out)
    return result


def connect_only(netns: int, address: str, port: int) -> dict[str, str]:
    client = in_netns(netns, TCP_CLIENT, address, str(port), "x")
    out, _ = client.communicate(timeout=10)
    result: dict[str, str] = json.loads(out)
    return result


def refusal(call: Callable[[], object]) -> HostsdRefused:
    with pytest.raises(HostsdRefused) as caught:
        call()
    return caught.value


def test_a_client_receives_a_listening_socket_on_loopback_443_and_accepts(
        hostsd: Hostsd, netns: int, router: Router) -> None:
    lease = router.lease()
    https = router.listen(lease, 443)
    assert https.getsockname() == ("127.0.0.1", 443)
    assert https.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    assert https.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    assert not os.get_inheritable(https.fileno()), "services the router starts would get it"
    assert talk(netns, https, "127.0.0.1", 443) == {"got": "HELLO"}


def test_ipv6_loopback_and_port_80_on_the_same_lease(
        hostsd: Hostsd, netns: int, router: Router) -> None:
    lease = router.lease()
    v4, v6 = router.listen(lease, 443), router.listen(lease, 443, "::1")
    http = router.listen(lease, 80)
    assert v6.family == socket.AF_INET6 and v6.getsockname()[:2] == ("::1", 443)
    assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    assert talk(netns, v6, "::1", 443) == {"got": "HELLO"}
    assert talk(netns, http, "127.0.0.1", 80) == {"got": "HELLO"}
    assert talk(netns, v4, "127.0.0.1", 443) == {"got": "HELLO"}


def test_the_lease_ends_with_its_connection_and_revokes_every_copy(
        hostsd: Hostsd, netns: int, router: Router) -> None:
    """A copy leaked to a child must not keep the port: ending the lease shuts the
    socket down (shared open file description), so the next router gets it."""
    first = router.lease()
    leaked = router.listen(first, 443).dup()
    first.close()
    second = router.lease()
    https = wait_for(lambda: router.listen(second, 443), what="443 to be free again")
    assert leaked.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
    leaked.close()
    assert talk(netns, https, "127.0.0.1", 443) == {"got": "HELLO"}
    assert re.search(r"lease \d+ ended: released 127\.0\.0\.1 port 443", hostsd.stop())


def test_a_second_holder_is_refused_busy_naming_the_first_and_sigkill_frees_it(
        hostsd: Hostsd, router: Router, children: list[subprocess.Popen[str]]
        ) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(hostsd.socket), "443"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    children.append(holder)
    assert holder.stdout is not None and holder.stdout.readline() == "holding 443\n"
    lease = router.lease()
    busy = refusal(lambda: router.listen(lease, 443))
    assert busy.code == "busy" and f"held by pid {holder.pid} (uid 0)" in str(busy), busy
    assert router.listen(lease, 80).getsockname()[1] == 80, "the other port is free"
    holder.kill()
    holder.communicate(timeout=10)
    https = wait_for(lambda: router.listen(lease, 443), what="443 after the holder's SIGKILL")
    assert https.getsockname() == ("127.0.0.1", 443)
    again = refusal(lambda: router.listen(lease, 443))
    assert f"held by pid {os.getpid()}" in str(again), "one holder, even on one lease"


@pytest.mark.parametrize(("port", "address", "code"), [
    (8443, "127.0.0.1", "invalid_port"), (0, "127.0.0.1", "invalid_port"),
    ("443", "127.0.0.1", "invalid_port"), (True, "127.0.0.1", "invalid_port"),
    (443.0, "127.0.0.1", "invalid_port"), (None, "127.0.0.1", "invalid_port"),
    (443, "0.0.0.0", "invalid_address"), (443, "::", "invalid_address"),
    (443, "127.0.0.2", "invalid_address"), (80, "10.0.0.1", "invalid_address"),
    (443, "localhost", "invalid_address"), (443, "::ffff:127.0.0.1", "invalid_address"),
    (443, ["127.0.0.1"], "invalid_address"),
])
def test_anything_but_loopback_443_or_80_is_refused(
        hostsd: Hostsd, port: object, address: object, code: str) -> None:
    client = hostsd.client()
    reply = client(op="listen", port=port, address=address)
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert repr(port if code == "invalid_port" else address) in reply["error"]["message"]


def test_a_listen_request_is_checked_like_every_other(hostsd: Hostsd) -> None:
    client = hostsd.client()
    for request, code in (({"persist": True}, "bad_request"), ({"fd": 3}, "bad_request"),
                          ({}, "invalid_port")):
        reply = client(op="listen", **({"port": 443} if request else {}), **request)
        assert reply["error"]["code"] == code, (request, reply)
    ok = client(op="listen", port=443)
    assert ok == {"ok": True, "address": "127.0.0.1", "port": 443}, "the fd rode along"


def test_hostsd_keeps_its_copy_close_on_exec(
        hostsd: Hostsd, router: Router) -> None:
    """hostsd starts no children, but if it ever does they must not inherit a port."""
    assert hostsd.proc is not None
    inode = os.fstat(router.listen(router.lease(), 443).fileno()).st_ino
    fd_dir = Path(f"/proc/{hostsd.proc.pid}/fd")
    (fd,) = [p.name for p in fd_dir.iterdir() if os.readlink(p) == f"socket:[{inode}]"]
    flags = Path(f"/proc/{hostsd.proc.pid}/fdinfo/{fd}").read_text().split("flags:")[1]
    assert int(flags.split()[0], 8) & O_CLOEXEC


def test_a_port_taken_outside_hostsd_is_busy(
        hostsd: Hostsd, netns: int, router: Router,
        children: list[subprocess.Popen[str]]) -> None:
    squatter = in_netns(netns, SQUATTER, "127.0.0.1", "443")
    children.append(squatter)
    assert squatter.stdout is not None and squatter.stdout.readline() == "bound\n"
    busy = refusal(lambda: router.listen(router.lease(), 443))
    assert busy.code == "busy" and "outside promenade-hostsd" in str(busy), busy
    squatter.communicate("")


def test_stopping_hostsd_leaves_handed_out_sockets_working(
        hostsd: Hostsd, netns: int, router: Router) -> None:
    """A stop cannot differ from a SIGKILL, which revokes nothing: routers keep serving."""
    https = router.listen(router.lease(), 443)
    assert "lease all ended: released 127.0.0.1 port 443" in hostsd.stop()
    assert talk(netns, https, "127.0.0.1", 443) == {"got": "HELLO"}
    https.close()
    assert connect_only(netns, "127.0.0.1", 443) == {"error": "ECONNREFUSED"}


UNKNOWN_OP = b'{"ok": false, "error": {"code": "unknown_op", "message": "unknown op"}}\n'
OK_443 = b'{"ok": true, "address": "127.0.0.1", "port": 443}\n'


class FakeHostsd:
    """A peer that answers each request with the next of `replies` (delay, line, fds): an
    older or a confused hostsd, on a real Unix socket, from a thread."""

    def __init__(self, path: Path, replies: list[tuple[float, bytes, list[int]]]) -> None:
        self.path, self.replies = str(path), replies
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.path)
        self.server.listen()
        self.thread = threading.Thread(target=self._answer)
        self.thread.start()

    def _answer(self) -> None:
        conn, _ = self.server.accept()
        with conn, contextlib.suppress(OSError):  # a failed test may hang up early
            for delay, line, fds in self.replies:
                conn.recv(4096)
                threading.Event().wait(delay)
                socket.send_fds(conn, [line], fds)

    def close(self) -> None:
        self.thread.join(10)
        self.server.close()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_port_lease_errors_say_what_happened_and_leak_no_descriptor(tmp_path: Path) -> None:
    with pytest.raises(HostsdUnavailable, match="not running"):
        PortLease(str(tmp_path / "nothing.sock"))
    read_end, write_end = os.pipe()
    fake = FakeHostsd(tmp_path / "old.sock", [
        (0, UNKNOWN_OP, []), (0, UNKNOWN_OP, [read_end]), (0, OK_443, []),
        (0, OK_443, [read_end, write_end]), (0, b"<html>\n", [])])
    try:
        with PortLease(fake.path) as lease:
            old = refusal(lambda: lease.listen(443))
            assert old.code == "unknown_op" and "too old" in str(old)
            before = open_fds()  # after gevent's hub has made its own descriptors
            assert refusal(lambda: lease.listen(443)).code == "unknown_op"
            with pytest.raises(HostsdUnavailable, match="0 sockets instead of one"):
                lease.listen(443)
            with pytest.raises(HostsdUnavailable, match="2 sockets instead of one"):
                lease.listen(443)
            assert open_fds() == before, "descriptors that came with a refusal are closed"
            with pytest.raises(HostsdUnavailable, match="no valid reply"):
                lease.listen(443)
            with pytest.raises(HostsdUnavailable, match="lease on promenade-hostsd is closed"):
                lease.listen(443)
    finally:
        fake.close()
        os.close(read_end)
        os.close(write_end)


def test_port_lease_lets_other_greenlets_run_while_hostsd_answers(tmp_path: Path) -> None:
    """The router is one gevent process: waiting on hostsd must not freeze its proxying."""
    fake = FakeHostsd(tmp_path / "slow.sock", [(0.5, UNKNOWN_OP, [])])
    ticks: list[float] = []

    def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.02)

    ticker = gevent.spawn(tick)
    try:
        with PortLease(fake.path) as lease:
            gevent.idle()
            started = len(ticks)
            assert refusal(lambda: lease.listen(443)).code == "unknown_op"
            assert len(ticks) - started >= 10, f"{len(ticks) - started} ticks in 0.5 s"
    finally:
        ticker.kill()
        fake.close()


def test_names_and_sockets_on_one_connection_end_together(hostsd: Hostsd) -> None:
    """A router's connection may also hold names: closing it releases both."""
    client = hostsd.client()
    assert client(op="add", service="api", hostname="api.test")["ok"]
    assert client(op="listen", port=80)["ok"]
    client.close()
    wait_for(lambda: hostsd.read() == ORIGINAL, what="the lease's name to go")
    hostsd.clients.remove(client)
    assert hostsd.stop().count("ended") == 2
