"""Hostnames for real: /etc/hosts itself, in a private mount namespace (we run as root).

A temp file is bind-mounted over /etc/hosts inside `unshare -m`, so glibc (getent,
urllib, curl) resolves from it while the machine's own file is never touched. Each test
runs a driver script inside the namespace; the driver does the steps and raises with
what it saw when a step fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("getent"),
    reason="needs root, unshare and getent")

ORIGINAL = b"127.0.0.1 localhost\n::1 localhost ip6-localhost\n# a comment  kept\n"

MANAGER_DRIVER = r'''
import os, signal, subprocess, sys, urllib.request
from pathlib import Path
from tests.support import Manager, free_port, wait_for
from tests.support.hostsd import Hostsd

tmp, source = Path(sys.argv[1]), Path(sys.argv[2])
original = source.read_bytes()
subprocess.run(["mount", "--bind", str(source), "/etc/hosts"], check=True)
NAME = "api.promenade-test"
port = free_port()
(tmp / "www").mkdir()
(tmp / "www" / "marker.txt").write_text("served by the api service\n")
config = f"""
manager:
  hosts_management: auto
  hostsd_socket: {tmp}/hostsd.sock
services:
  api:
    command: {sys.executable} -m http.server {port} --bind 127.0.0.1
    directory: {tmp}/www
    port: {port}
    hostname: {NAME}
"""

def getent():
    out = subprocess.run(["getent", "hosts", NAME], capture_output=True, text=True)
    return out.stdout.split()[:2]

def fetch():
    with urllib.request.urlopen(f"http://{NAME}:{port}/marker.txt", timeout=2) as r:
        return r.read().decode()

def entry_gone():
    return Path("/etc/hosts").read_bytes() == original and getent() == []

hostsd = Hostsd(tmp, Path("/etc/hosts"), tmp / "hostsd.sock", tmp / "state", ["--timeout", "2"])
hostsd.start()
managers = []
try:
    assert getent() == [], f"{NAME} resolves before anything ran: {getent()}"
    for ending in (signal.SIGTERM, signal.SIGKILL):
        m = Manager(tmp, config)
        managers.append(m)
        m.start()
        wait_for(lambda: getent() == ["127.0.0.1", NAME], 15, f"getent hosts {NAME}")
        wait_for(lambda: fetch() == "served by the api service\n", 15, f"http://{NAME}:{port}/")
        if shutil_curl := __import__("shutil").which("curl"):
            out = subprocess.run([shutil_curl, "-sf", f"http://{NAME}:{port}/marker.txt"],
                                 capture_output=True, text=True, timeout=10)
            assert out.stdout == "served by the api service\n", out
        print(f"mapped and served; now {signal.Signals(ending).name} the manager", flush=True)
        m.signal(ending)
        m.wait_exit(20)
        wait_for(entry_gone, 5, f"the entry to go after {signal.Signals(ending).name}")
        print(f"entry gone after {signal.Signals(ending).name}", flush=True)
finally:
    for m in managers:
        m.cleanup()
    print(hostsd.stop(), flush=True)
assert Path("/etc/hosts").read_bytes() == original
print("E2E OK", flush=True)
'''

SANDBOX_DRIVER = r'''
import json, os, socket, subprocess, sys
from pathlib import Path
from tests.support.hostsd import Client, Hostsd
from tests.support.waits import wait_for

tmp, source = Path(sys.argv[1]), Path(sys.argv[2])
original = source.read_bytes()
for cmd in (["mount", "--bind", "/etc", "/etc"], ["mount", "-o", "remount,bind,ro", "/etc"],
            ["mount", "--bind", str(source), "/etc/hosts"]):
    subprocess.run(cmd, check=True)
try:
    open("/etc/promenade-probe", "w")
    raise AssertionError("/etc should be read-only here")
except OSError:
    pass
# As the systemd unit runs it: root with no capabilities at all, in the socket's group.
caps = ["setpriv", "--bounding-set=-all", "--inh-caps=-all",
        "--securebits=+noroot,+noroot_locked", "--groups=65534", "--reuid=0", "--regid=0"]
d = Hostsd(tmp, Path("/etc/hosts"), tmp / "hostsd.sock", tmp / "state", ["--group", "nogroup"])
d.proc = subprocess.Popen([*caps, sys.executable, "-c",
    "import sys; print(open('/proc/self/status').read().split('CapEff:')[1].split()[0],"
    " file=sys.stderr, flush=True); from promenade_hostsd.__main__ import main; "
    "sys.exit(main(sys.argv[1:]))",
    "--socket", str(d.socket), "--hosts-file", "/etc/hosts", "--state-dir", str(d.state),
    "--group", "nogroup"], stderr=subprocess.PIPE)
wait_for(d.ping, what="the capability-less hostsd to answer")
c = d.client()
reply = c(op="add", service="api", hostname="api.promenade-test")
assert reply["ok"], reply
out = subprocess.run(["getent", "hosts", "api.promenade-test"], capture_output=True, text=True)
assert out.stdout.split() == ["127.0.0.1", "api.promenade-test"], out
st = d.socket.stat()
assert (st.st_mode & 0o777, st.st_gid) == (0o660, 65534), st
c.close()
wait_for(lambda: Path("/etc/hosts").read_bytes() == original, what="the lease to end")
err = d.stop()
assert err.startswith("0000000000000000\n"), err
print("SANDBOX OK", flush=True)
'''

INSTALL_DRIVER = r'''
import grp, json, os, socket, subprocess, sys
from pathlib import Path
from tests.support.hostsd import Client, Hostsd
from tests.support.waits import wait_for

tmp, source = Path(sys.argv[1]), Path(sys.argv[2])
# A writable copy of /etc (groupadd renames files in it) and an empty /usr/local/lib.
subprocess.run(["cp", "-a", "/etc", str(tmp / "etc")], check=True)
(tmp / "lib").mkdir()
for cmd in (["mount", "--bind", str(tmp / "etc"), "/etc"],
            ["mount", "--bind", str(tmp / "lib"), "/usr/local/lib"]):
    subprocess.run(cmd, check=True)
(Path("/etc/hosts")).write_bytes(source.read_bytes())
original = source.read_bytes()
run = lambda *a: subprocess.run(list(a), capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, SUDO_USER="nobody"))
out = run("./scripts/install-hostsd")
assert out.returncode == 0, out
assert "start it yourself" in out.stdout, out.stdout  # no systemd running here
assert "nobody" in grp.getgrnam("promenade").gr_mem
prefix = Path("/usr/local/lib/promenade-hostsd")
for f in [prefix / "promenade-hostsd.py", *(prefix / "promenade_hostsd").iterdir()]:
    st = f.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o644), (f, oct(st.st_mode))
shipped = sorted(p.name for p in Path("promenade_hostsd").glob("*.py"))
assert sorted(p.name for p in (prefix / "promenade_hostsd").iterdir()) == shipped
# The installed copy runs on its own (system Python, no venv) and serves.
d = Hostsd(tmp, Path("/etc/hosts"), tmp / "hostsd.sock", tmp / "state", [])
launcher = str(prefix / "promenade-hostsd.py")
d.proc = subprocess.Popen(["/usr/bin/python3", "-B", "-E", "-s", launcher, "--socket",
                           str(d.socket), "--state-dir", str(d.state)],
                          stderr=subprocess.PIPE, cwd="/")
wait_for(d.ping, what="the installed hostsd")
c = d.client()
assert c(op="add", service="docs", hostname="docs.test", persist=True)["ok"]
c.close()
d.stop()
assert b"127.0.0.1  docs.test  # promenade:docs" in Path("/etc/hosts").read_bytes()
out = run("./scripts/uninstall-hostsd", "--purge")
assert out.returncode == 0, out
assert "removed 1 promenade entries" in out.stdout, out.stdout
assert Path("/etc/hosts").read_bytes() == original
assert not prefix.exists()
try:
    grp.getgrnam("promenade")
    raise AssertionError("the group should be gone")
except KeyError:
    pass
print("INSTALL OK", flush=True)
'''


@pytest.fixture
def namespace() -> Iterator[tuple[Path, Path]]:
    """A folder nobody-readable for the driver, and the file to mount over /etc/hosts."""
    tmp = Path(tempfile.mkdtemp(prefix="pm-e2e-", dir="/tmp"))
    tmp.chmod(0o755)
    source = tmp / "hosts"
    source.write_bytes(ORIGINAL)
    yield tmp, source
    shutil.rmtree(tmp, ignore_errors=True)


def run_driver(driver: str, tmp: Path, source: Path, timeout: float) -> str:
    script = tmp / "driver.py"
    script.write_text(driver)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", sys.executable, str(script), str(tmp),
         str(source)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        cwd=ROOT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"the driver timed out:\n{out}") from None
    finally:
        manager_out = tmp / "manager.out"
        if manager_out.exists():
            print(manager_out.read_text(errors="replace"))
    assert proc.returncode == 0, out
    return out


@pytest.mark.timeout(120)
def test_a_managed_hostname_resolves_and_serves_then_goes(namespace: tuple[Path, Path]) -> None:
    tmp, source = namespace
    real = Path("/etc/hosts").read_bytes()
    out = run_driver(MANAGER_DRIVER, tmp, source, timeout=100)
    assert "entry gone after SIGTERM" in out and "entry gone after SIGKILL" in out
    assert "E2E OK" in out
    assert source.read_bytes() == ORIGINAL
    assert Path("/etc/hosts").read_bytes() == real, "the machine's own file is never touched"


@pytest.mark.timeout(60)
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_hostsd_works_in_the_units_sandbox(namespace: tuple[Path, Path]) -> None:
    """No capabilities, /etc read-only but /etc/hosts: the in-place write path."""
    tmp, source = namespace
    out = run_driver(SANDBOX_DRIVER, tmp, source, timeout=50)
    assert "SANDBOX OK" in out
    assert source.read_bytes() == ORIGINAL


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3") or not shutil.which("groupadd")
                    or os.path.exists("/run/systemd/system"),
                    reason="needs /usr/bin/python3, groupadd, and no running systemd")
def test_install_and_uninstall_scripts(namespace: tuple[Path, Path]) -> None:
    """install-hostsd and uninstall-hostsd --purge against copies of /etc and /usr/local/lib."""
    tmp, source = namespace
    real_group = Path("/etc/group").read_bytes()
    out = run_driver(INSTALL_DRIVER, tmp, source, timeout=50)
    assert "INSTALL OK" in out
    assert Path("/etc/group").read_bytes() == real_group
    assert not Path("/usr/local/lib/promenade-hostsd").exists()
