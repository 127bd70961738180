"""`sudo promenade hosts install|uninstall`: promenade-hostsd as a system service.

What it does, in order: creates the group `promenade` and adds the user who ran sudo;
copies `promenade_hostsd/` (standard library only) into a root-owned folder
(`/usr/local/lib/promenade-hostsd`), so root never runs code a user can edit (not the
code in a checkout or a virtualenv); installs the hardened systemd unit (Linux) or the
launchd daemon (macOS) from this package's `hostsd_units/`, starts it and checks that it
answers. Where no service manager runs (a container, `--no-systemctl`, `--root`), it says
what it did and the command that starts hostsd by hand.

Standard library only, and argparse rather than click, so that `scripts/install-hostsd`
runs this very code with the system Python from a checkout: one implementation.
`--root DIR` installs below DIR instead of / (packaging, tests); the group is then made
with `groupadd --prefix DIR` in DIR/etc/group.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import promenade_hostsd
from promenade_hostsd import hostsfile
from promenade_hostsd.hostsfile import create
from promenade_hostsd.state import folder_problem

GROUP = "promenade"
PREFIX = "/usr/local/lib/promenade-hostsd"
DARWIN = sys.platform == "darwin"
SOCKET = "/var/run/promenade/hostsd.sock" if DARWIN else "/run/promenade/hostsd.sock"
STATE = "/var/db/promenade-hostsd" if DARWIN else "/var/lib/promenade-hostsd"
UNIT = "/etc/systemd/system/promenade-hostsd.service"
PLIST = "/Library/LaunchDaemons/com.promenade.hostsd.plist"
UNITS = Path(__file__).resolve().parent / "hostsd_units"
LAUNCHER = '''"""Installed by `promenade hosts install`: runs the root-owned copy beside it."""
import sys

from promenade_hostsd.__main__ import main

sys.exit(main())
'''


class InstallError(Exception):
    """A clear reason to stop, printed as `promenade hosts install: error: …`."""


class Installer:
    def __init__(self, root: str, prefix: str, python: str, start: bool,
                 say: Callable[[str], None]) -> None:
        self.root, self.prefix, self.python = os.path.abspath(root), prefix, python
        self.live = self.root == "/"  # act on this machine's services, not just files
        self.start = start and self.live
        self.say = say

    def at(self, path: str) -> str:
        """`path` of the target system, below --root."""
        return os.path.join(self.root, path.lstrip("/"))

    # -- the group ---------------------------------------------------------------------

    def _group_members(self) -> list[str] | None:
        if self.live:
            with contextlib.suppress(KeyError):
                return list(grp.getgrnam(GROUP).gr_mem)
            return None
        with contextlib.suppress(FileNotFoundError), open(self.at("/etc/group")) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == GROUP and len(fields) == 4:
                    return [m for m in fields[3].split(",") if m]
        return None

    def _tool(self, *args: str) -> None:
        prefix = [] if self.live else ["--prefix", self.root]
        try:
            subprocess.run([args[0], *prefix, *args[1:]], check=True, capture_output=True,
                           text=True)
        except FileNotFoundError:
            raise InstallError(f"`{args[0]}` is not installed here: create the group "
                               f"'{GROUP}' yourself and run this again") from None
        except subprocess.CalledProcessError as exc:
            raise InstallError(f"{' '.join(args)} failed: {exc.stderr.strip()}") from None

    def group(self, user: str | None) -> None:
        if DARWIN and not self.live:
            return self.say(f"--root on macOS: create the group '{GROUP}' yourself")
        if DARWIN:
            if subprocess.run(["dseditgroup", "-o", "read", GROUP],
                              capture_output=True, check=False).returncode:
                self._run(["dseditgroup", "-o", "create", "-r", "Promenade hostsd users",
                           GROUP])
            if user:
                self._run(["dseditgroup", "-o", "edit", "-a", user, "-t", "user", GROUP])
        else:
            if self._group_members() is None:
                self._tool("groupadd", "--system", GROUP)
            if user and user not in (self._group_members() or []):
                self._tool("usermod", "-a", "-G", GROUP, user)
        return self.say(f"group '{GROUP}' ready{f', {user} is a member' if user else ''}")

    # -- the code ----------------------------------------------------------------------

    def _folder(self, path: str, own: bool = False) -> None:
        """A folder (root's, 0755, when `own`) that only root can write to, nor above."""
        os.makedirs(path, mode=0o755, exist_ok=True)
        real = os.path.realpath(path)
        if own:
            os.chown(real, 0, 0, follow_symlinks=False)
            os.chmod(real, 0o755)
        problem = folder_problem(real)
        if problem:
            raise InstallError(f"root must not run code from {path}: {problem}")

    def _write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        with open(create(path, mode), "wb") as f:
            os.fchown(f.fileno(), 0, 0)
            os.fchmod(f.fileno(), mode)
            f.write(data)

    def code(self) -> None:
        target = self.at(self.prefix)
        package = os.path.join(target, "promenade_hostsd")
        self._folder(target, own=True)
        self._folder(package, own=True)
        for old in Path(package).glob("*.py"):
            old.unlink()
        lines = 0
        for source in sorted(Path(promenade_hostsd.__file__).parent.glob("*.py")):
            data = source.read_bytes()
            lines += data.count(b"\n")
            self._write(os.path.join(package, source.name), data)
        self._write(os.path.join(target, "promenade-hostsd.py"), LAUNCHER.encode())
        self.say(f"code in {target} ({lines} lines to audit), owned by root")

    # -- the service -------------------------------------------------------------------

    def _render(self, name: str) -> bytes:
        text = (UNITS / name).read_text()
        return text.replace("@PYTHON@", self.python).replace("@PREFIX@", self.prefix).encode()

    def _run(self, args: list[str], check: bool = True) -> None:
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if check and result.returncode:
            raise InstallError(f"{' '.join(args)} failed: {result.stderr.strip()}")

    def service(self) -> bool:
        """Install the unit; True when a service manager started it."""
        if DARWIN:
            plist = self.at(PLIST)
            self._folder(os.path.dirname(plist))
            self._write(plist, self._render("com.promenade.hostsd.plist"))
            self.say(f"launchd daemon in {plist}")
            if self.start:
                self._run(["launchctl", "bootout", "system", plist], check=False)
                self._run(["launchctl", "bootstrap", "system", plist])
        else:
            unit = self.at(UNIT)
            self._folder(os.path.dirname(unit))
            self._write(unit, self._render("promenade-hostsd.service"))
            self.say(f"systemd unit in {unit}")
            if self.start and systemd_runs():
                for args in (["daemon-reload"], ["enable", "promenade-hostsd.service"],
                             ["restart", "promenade-hostsd.service"]):
                    self._run(["systemctl", *args])
            else:
                return False
        return self.start

    def hand_start(self) -> str:
        return (f"sudo {self.python} -B -E -s {self.prefix}/promenade-hostsd.py --socket "
                f"{SOCKET} --state-dir {STATE} &")

    # -- uninstall ---------------------------------------------------------------------

    def stop_service(self) -> None:
        if DARWIN:
            plist = self.at(PLIST)
            if os.path.exists(plist):
                if self.start:
                    self._run(["launchctl", "bootout", "system", plist], check=False)
                os.unlink(plist)
        elif os.path.exists(self.at(UNIT)):
            if self.start and systemd_runs():
                self._run(["systemctl", "disable", "--now", "promenade-hostsd.service"],
                          check=False)
            os.unlink(self.at(UNIT))
            if self.start and systemd_runs():
                self._run(["systemctl", "daemon-reload"], check=False)
        self.say("service stopped and removed")
        if self.live and hostsd_answers(SOCKET, timeout=0.5):
            self.say(f"a promenade-hostsd started by hand still answers on {SOCKET}: stop "
                     "it (Ctrl-C or kill its pid) to drop its names")

    def remove_entries(self) -> None:
        """Persisted entries outlive the service: drop them with hostsd's own parser."""
        hosts = self.at("/etc/hosts")
        try:
            with open(hosts, "rb") as f:
                unmanaged, entries = hostsfile.parse(f.read())
        except FileNotFoundError:
            return
        if entries:
            hostsfile.write(hosts, unmanaged)
            self.say(f"removed {len(entries)} promenade entries from {hosts}")

    def remove_group(self) -> None:
        if DARWIN:
            self._run(["dseditgroup", "-o", "delete", GROUP], check=False)
        elif self._group_members() is not None:
            self._tool("groupdel", GROUP)


def systemd_runs() -> bool:
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def hostsd_answers(path: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, \
                contextlib.suppress(OSError, ValueError):
            sock.settimeout(1)
            sock.connect(path)
            sock.sendall(b'{"op": "ping"}\n')
            if json.loads(sock.makefile("rb").readline()).get("pong"):
                return True
        time.sleep(0.1)
    return False


def install(inst: Installer, user: str | None) -> None:
    if inst.live:
        check = [inst.python, "-c", "import sys; sys.exit(sys.version_info < (3, 10))"]
        try:
            too_old = subprocess.run(check, capture_output=True, check=False).returncode
        except OSError:
            raise InstallError(f"no Python at {inst.python}; pass --python "
                               "/path/to/python3 (3.10 or newer)") from None
        if too_old:
            raise InstallError(f"{inst.python} is older than 3.10; pass --python")
    inst.group(user)
    inst.code()
    if not inst.service():
        why = "--root" if not inst.live else "--no-systemctl" if not inst.start else \
            "no systemd runs here"
        inst.say(f"not started ({why}); start it yourself, as root:\n  {inst.hand_start()}")
    elif not hostsd_answers(SOCKET):
        log = "log show --predicate 'process == \"python3\"'" if DARWIN else \
            "journalctl -u promenade-hostsd"
        raise InstallError(f"hostsd does not answer on {SOCKET}; see: {log}")
    else:
        inst.say(f"promenade-hostsd is running on {SOCKET}")
    if user:
        inst.say(f"log out and in again (or run `newgrp {GROUP}`) so that {user}'s shell is "
                 "in the group; then `promenade start` maps hostnames without sudo")


def uninstall(inst: Installer, purge: bool) -> None:
    inst.stop_service()
    inst.remove_entries()
    target = inst.at(inst.prefix)
    if os.path.lexists(target):
        shutil.rmtree(target)
    inst.say(f"removed {target}")
    if purge:
        shutil.rmtree(inst.at(STATE), ignore_errors=True)
        inst.remove_group()
        inst.say(f"removed {inst.at(STATE)} and the group '{GROUP}'")
    else:
        inst.say(f"kept {inst.at(STATE)} (the original hosts file is saved there) and the "
                 f"group '{GROUP}'; run with --purge to remove them too")


def main(argv: list[str] | None = None, prog: str = "promenade hosts") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="promenade-hostsd as a system "
                                     "service (run as root: sudo promenade hosts install)")
    sub = parser.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default="/", help="act below this folder instead of /")
    common.add_argument("--prefix", default=os.environ.get("PREFIX", PREFIX),
                        help=f"where the root-owned copy of the code goes ({PREFIX})")
    common.add_argument("--no-systemctl", action="store_true",
                        help="only write files: do not start or stop the service")
    add = sub.add_parser("install", parents=[common], help="install and start hostsd")
    add.add_argument("--python", default=os.environ.get("PYTHON", "/usr/bin/python3"),
                     help="the Python (3.10+) hostsd runs with (/usr/bin/python3)")
    remove = sub.add_parser("uninstall", parents=[common], help="stop and remove hostsd")
    remove.add_argument("--purge", action="store_true",
                        help="also remove the state folder and the group")
    args = parser.parse_args(argv)
    for option, value in (("--prefix", args.prefix), ("--python", getattr(args, "python", "/"))):
        if not os.path.isabs(value):  # the unit names them: systemd needs absolute paths
            parser.error(f"{option} must be an absolute path, not {value!r}")
    me = f"{prog} {args.action}"
    if os.geteuid() != 0:
        print(f"{me}: error: run it as root: sudo {me}", file=sys.stderr)
        return 1
    inst = Installer(args.root, args.prefix, getattr(args, "python", ""),
                     not args.no_systemctl, lambda message: print(f"{me}: {message}"))
    user = os.environ.get("SUDO_USER") or None
    try:
        if args.action == "install":
            install(inst, None if user == "root" else user)
        else:
            uninstall(inst, args.purge)
    except (InstallError, OSError) as exc:
        print(f"{me}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
