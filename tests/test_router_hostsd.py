"""The router on loopback 443 and 80, from promenade-hostsd.

hostsd runs as root in a network namespace of its own (`unshare -n`), so 443 is free
whatever this machine runs; the router (outside it) serves the sockets hostsd hands it,
and a client inside the namespace reaches them (tests/test_hostsd_listen.py does the
same for the lease alone).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from promenade_core.hosts.listeners import PortLease
from tests.support.hostsd import Hostsd, in_netns, netns_hostsd
from tests.support.router import RouterEnv, alive, route
from tests.support.waits import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "nsenter", "ip")),
    reason="needs root, unshare, nsenter and ip for a private network namespace")

#: In the namespace: GET https://argv[1]/ on 127.0.0.1:argv[2] with CA argv[3] (and
#: plain http on argv[4]); prints what came back as JSON.
HTTPS_CLIENT = """\
import http.client, json, socket, ssl, sys
name, port, ca, http_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
tls = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname=name)
conn = http.client.HTTPSConnection(name, port)
conn.sock = tls
conn.request("GET", "/")
answer = conn.getresponse()
out = {"status": answer.status, "body": answer.read().decode()}
plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
plain.request("GET", "/x", headers={"Host": name})
redirect = plain.getresponse()
out["redirect"] = [redirect.status, redirect.getheader("Location")]
print(json.dumps(out), flush=True)
"""


@pytest.fixture
def hostsd(tmp_path: Path) -> Iterator[Hostsd]:
    with netns_hostsd(tmp_path) as daemon:
        yield daemon


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostsd: Hostsd
        ) -> Iterator[RouterEnv]:
    (tmp_path / "r").mkdir()
    made = RouterEnv(tmp_path / "r", monkeypatch)
    monkeypatch.setenv("PROMENADE_HOSTSD_SOCKET", str(hostsd.socket))
    yield made
    made.cleanup()


def test_with_hostsd_the_router_serves_443_and_redirects_80(
        env: RouterEnv, hostsd: Hostsd) -> None:
    info = env.ensure()
    assert (info.https_port, info.http_port) == (443, 80)
    assert info.url("api.myapp.localhost") == "https://api.myapp.localhost"
    api = env.backend("api")
    env.control("/p/promenade.yaml").routes(route("api.myapp.localhost", api))
    assert hostsd.proc is not None
    netns = os.open(f"/proc/{hostsd.proc.pid}/ns/net", os.O_RDONLY)
    try:
        client = in_netns(netns, HTTPS_CLIENT, "api.myapp.localhost", "443",
                          str(env.ca_path), "80")
        out, _ = client.communicate(timeout=30)
    finally:
        os.close(netns)
    result = json.loads(out)
    assert result["status"] == 200 and json.loads(result["body"])["backend"] == "api"
    assert json.loads(result["body"])["headers"]["host"] == "api.myapp.localhost"
    assert result["redirect"] == [308, "https://api.myapp.localhost/x"]

    # the last manager leaves: the router exits and hostsd's lease on 443 goes with it
    pid = env.router_pid()
    for client in env.controls:
        client.close()
    env.controls.clear()
    wait_for(lambda: not alive(pid), timeout=10, what="the router to exit when idle")
    with PortLease(str(hostsd.socket)) as lease:
        lease.listen(443).close()
