"""`sudo promenade hosts install|uninstall` into a temp root (issue 10, point 21).

After `pip install` the only hint was `sudo ./scripts/install-hostsd`, a script that is not
in the package. The installer now ships in the package (promenade_cli/hosts_install.py,
unit files as package data); these tests run it for real, as root, with `--root TMP`:
groupadd/usermod work on copies of the account files in TMP/etc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from promenade_core.hosts.client import install_command, unavailable_message
from tests.support import wait_for
from tests.support.hostsd import ORIGINAL, Hostsd

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("groupadd") or sys.platform == "darwin",
    reason="needs root and groupadd (Linux)")

PREFIX = "usr/local/lib/promenade-hostsd"
UNIT = "etc/systemd/system/promenade-hostsd.service"
ACCOUNTS = ("passwd", "group", "shadow", "gshadow")


@pytest.fixture
def root() -> Iterator[Path]:
    """A target root others can read (the installed hostsd runs from it) with /etc's
    account files, so groupadd --prefix never touches the machine's own."""
    top = Path(tempfile.mkdtemp(prefix="pm-install-"))
    top.chmod(0o755)
    (top / "etc").mkdir(mode=0o755)
    for name in ACCOUNTS:
        if Path("/etc", name).exists():
            shutil.copy2(Path("/etc", name), top / "etc" / name)
    (top / "etc" / "hosts").write_bytes(ORIGINAL + b"\n127.0.0.1  docs.test  # promenade:docs\n")
    yield top
    shutil.rmtree(top)


def promenade(*args: str, user: str = "nobody") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promenade_cli", "hosts", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ, SUDO_USER=user))


def group_line(root: Path) -> str | None:
    lines = (root / "etc" / "group").read_text().splitlines()
    return next((line for line in lines if line.startswith("promenade:")), None)


def test_hosts_install_into_a_temp_root_then_uninstall(root: Path, tmp_path: Path) -> None:
    """The installer creates the group with the sudo user in it, a root-owned copy of
    promenade_hostsd, and a unit that runs that copy; uninstall --purge removes it all."""
    real_group = Path("/etc/group").read_bytes()
    out = promenade("install", "--root", str(root))
    assert out.returncode == 0, out
    assert (group_line(root) or "").endswith(":nobody"), group_line(root)
    assert Path("/etc/group").read_bytes() == real_group
    prefix = root / PREFIX
    shipped = sorted(p.name for p in Path("promenade_hostsd").glob("*.py"))
    assert sorted(p.name for p in (prefix / "promenade_hostsd").iterdir()) == shipped
    for folder in (prefix, prefix / "promenade_hostsd"):
        st = folder.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o755), folder
    for f in [prefix / "promenade-hostsd.py", *(prefix / "promenade_hostsd").iterdir()]:
        st = f.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o644), f
    unit = (root / UNIT).read_text()
    assert (root / UNIT).stat().st_mode & 0o7777 == 0o644
    assert ("ExecStart=/usr/bin/python3 -B -E -s "
            "/usr/local/lib/promenade-hostsd/promenade-hostsd.py ") in unit
    assert "@PYTHON@" not in unit and "@PREFIX@" not in unit
    assert str(root) not in unit, "the unit names paths of the target system"
    assert "start it yourself" in out.stdout and "promenade-hostsd.py" in out.stdout
    assert "newgrp promenade" in out.stdout

    # The installed copy runs on its own (system Python, no venv, cwd /) and serves.
    if os.path.exists("/usr/bin/python3"):
        hosts = tmp_path / "hosts"
        hosts.write_bytes(ORIGINAL)
        d = Hostsd(tmp_path, hosts, tmp_path / "hostsd.sock", tmp_path / "state", [])
        d.proc = subprocess.Popen(
            ["/usr/bin/python3", "-B", "-E", "-s", str(prefix / "promenade-hostsd.py"),
             "--socket", str(d.socket), "--hosts-file", str(hosts), "--state-dir",
             str(d.state), "--group", ""], stderr=subprocess.PIPE, cwd="/")
        try:
            wait_for(d.ping, what="the installed hostsd")
        finally:
            d.stop()

    again = promenade("install", "--root", str(root))  # idempotent: a re-install is fine
    assert again.returncode == 0, again

    removed = promenade("uninstall", "--root", str(root), "--purge")
    assert removed.returncode == 0, removed
    assert not prefix.exists() and not (root / UNIT).exists()
    assert group_line(root) is None
    assert (root / "etc" / "hosts").read_bytes() == ORIGINAL + b"\n"
    assert "removed 1 promenade entries" in removed.stdout


def test_hosts_install_refuses_a_prefix_others_can_write_to(root: Path) -> None:
    """Root would run code from it: a folder a user can write to is refused."""
    shared = root / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    out = promenade("install", "--root", str(root), "--prefix", "/shared/hostsd")
    assert out.returncode == 1
    assert "root must not run code from" in out.stderr and "writable" in out.stderr
    assert not (shared / "hostsd" / "promenade_hostsd").exists()


def test_hosts_install_wants_absolute_paths(root: Path) -> None:
    out = promenade("install", "--root", str(root), "--python", "python3")
    assert out.returncode == 2 and "--python must be an absolute path" in out.stderr
    assert not (root / PREFIX).exists()


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_hosts_install_without_root_says_to_use_sudo() -> None:
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
         "-c", "import sys; from promenade_cli.hosts_install import main; sys.exit(main())",
         "install"], capture_output=True, text=True, timeout=30, check=False,
        env=dict(os.environ, PYTHONPATH=str(Path.cwd())))
    if "Permission denied" in out.stderr and "promenade_cli" not in out.stderr:
        pytest.skip("the venv is not readable by nobody")
    assert out.returncode == 1, out
    assert "run it as root: sudo promenade hosts install" in out.stderr


def test_hints_point_at_sudo_promenade_hosts_install(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """Every hint must work from a pip install: no ./scripts/, no usermod on a group that
    may not exist; a `promenade` that sudo's PATH would miss is named by its full path."""
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "promenade").write_text("#!/bin/sh\n")
    (venv_bin / "promenade").chmod(0o755)
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert install_command() == f"sudo {venv_bin}/promenade hosts install"
    gone = unavailable_message("/run/x.sock", FileNotFoundError(2, "nope"))
    assert f"`sudo {venv_bin}/promenade hosts install`" in gone
    denied = unavailable_message("/run/x.sock", PermissionError(13, "denied"))
    assert "hosts install`" in denied and "newgrp promenade" in denied
    assert "usermod" not in denied and "scripts/" not in gone + denied
    monkeypatch.setenv("PATH", "/nowhere")
    assert install_command() == "sudo promenade hosts install"


def test_no_hint_in_the_code_base_names_a_script_missing_from_the_package() -> None:
    here = Path(__file__).resolve().parent.parent
    for package in ("promenade_core", "promenade_cli", "promenade_hostsd", "promenade_web"):
        for source in (here / package).rglob("*.py"):
            text = source.read_text()
            assert "./scripts/" not in text, source
            assert "usermod -aG" not in text, source
    units = here / "promenade_cli" / "hostsd_units"
    assert {p.name for p in units.iterdir()} >= {"promenade-hostsd.service",
                                                 "com.promenade.hostsd.plist"}
    assert "promenade_cli = hostsd_units/*" in (here / "setup.cfg").read_text()
