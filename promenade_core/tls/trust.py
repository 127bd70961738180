"""Installing the local CA where clients look: the system store and NSS databases.

Two kinds of store, handled apart because they need different privileges:
- the system store (curl, Python, Go, wget… and Chromium on macOS): root's, so it is
  the only step that uses sudo, and each command is printed before it runs. Debian and
  Ubuntu: a `.crt` in /usr/local/share/ca-certificates/ + `update-ca-certificates`;
  Fedora: /etc/pki/ca-trust/source/anchors/ + `update-ca-trust`; macOS: the System
  keychain through `security` (a documented command path, not exercised in tests).
- the NSS databases Chromium (`~/.pki/nssdb`) and Firefox (each profile's cert9.db) read
  on Linux: the user's own files, changed with `certutil` as the user, never as root.

Test knobs (environment): `PROMENADE_TRUST_SYSTEM_DIR` puts the system store's anchor
folder elsewhere (a temp folder), and `PROMENADE_TRUST_UPDATE` replaces its refresh
command (split like a shell would; empty: none).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from promenade_core.tls import files

Say = Callable[[str], None]

DIR_KNOB = "PROMENADE_TRUST_SYSTEM_DIR"
UPDATE_KNOB = "PROMENADE_TRUST_UPDATE"
DEBIAN_DIR = "/usr/local/share/ca-certificates"
FEDORA_DIR = "/etc/pki/ca-trust/source/anchors"
MAC_KEYCHAIN = "/Library/Keychains/System.keychain"
CERTUTIL_HINT = ("certutil is not installed, so browsers' own stores (Chromium on Linux, "
                 "Firefox) were skipped; install it (Debian/Ubuntu: `sudo apt install "
                 "libnss3-tools`, Fedora: `sudo dnf install nss-tools`, macOS: `brew "
                 "install nss`) and run this again")
#: certutil keeps several certificates under one nickname; deleting loops, but not forever.
MAX_SAME_NICKNAME = 16


@dataclass(frozen=True)
class SystemStore:
    """Where and how the system trusts an extra root (Linux: a folder + a refresh)."""

    kind: str  # "debian", "fedora", "macos" or "folder" (the test knob)
    folder: str
    filename: str
    refresh: tuple[str, ...]

    @property
    def target(self) -> str:
        """The file that holds the CA (on macOS: the keychain)."""
        return MAC_KEYCHAIN if self.kind == "macos" else os.path.join(self.folder, self.filename)


def detect_system_store(user: str, platform: str = sys.platform,
                        env: Mapping[str, str] = os.environ,
                        is_dir: Callable[[str], bool] = os.path.isdir,
                        ) -> SystemStore | None:
    """The system store of this machine for `user`'s CA (pure given its inputs)."""
    name = f"promenade-{user}"
    if env.get(DIR_KNOB):
        refresh = tuple(shlex.split(env.get(UPDATE_KNOB, "")))
        return SystemStore("folder", env[DIR_KNOB], f"{name}.crt", refresh)
    if platform == "darwin":
        return SystemStore("macos", "", f"{name}.pem", ())
    override = tuple(shlex.split(env[UPDATE_KNOB])) if UPDATE_KNOB in env else None
    if is_dir(DEBIAN_DIR):
        return SystemStore("debian", DEBIAN_DIR, f"{name}.crt",
                           override if override is not None else ("update-ca-certificates",))
    if is_dir(FEDORA_DIR):
        return SystemStore("fedora", FEDORA_DIR, f"{name}.pem",
                           override if override is not None else ("update-ca-trust",))
    return None


def needs_sudo(store: SystemStore, euid: int, writable: Callable[[str], bool]) -> bool:
    """sudo only when we are not root and cannot write the store's folder ourselves."""
    if euid == 0:
        return False
    return store.kind == "macos" or not writable(store.folder)


def install_commands(store: SystemStore, cert_path: str, ca_name: str, sudo: bool,
                     ) -> list[list[str]]:
    """The commands that add the CA to the system store (pure)."""
    prefix = ["sudo"] if sudo else []
    if store.kind == "macos":
        return [[*prefix, "security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k",
                 MAC_KEYCHAIN, cert_path]]
    commands = [[*prefix, "install", "-m", "0644", "-T", cert_path, store.target]]
    if store.refresh:
        commands.append([*prefix, *store.refresh])
    return commands


def uninstall_commands(store: SystemStore, ca_name: str, sudo: bool) -> list[list[str]]:
    """The commands that take the CA out of the system store again (pure)."""
    prefix = ["sudo"] if sudo else []
    if store.kind == "macos":
        return [[*prefix, "security", "delete-certificate", "-c", ca_name, MAC_KEYCHAIN]]
    commands = [[*prefix, "rm", "-f", "--", store.target]]
    if store.refresh:
        commands.append([*prefix, *store.refresh])
    return commands


def run(command: list[str], say: Say) -> bool:
    """Print a command, then run it; True when it worked (its error is printed if not)."""
    say(f"$ {shlex.join(command)}")
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        say(f"  failed: {exc.strerror}: {command[0]}")
        return False
    if result.returncode:
        detail = (result.stderr or result.stdout).strip().splitlines()
        say(f"  failed (exit code {result.returncode})"
            + (f": {detail[-1]}" if detail else ""))
        return False
    return True


def install_system(store: SystemStore, pem: bytes, cert_path: str, ca_name: str,
                   say: Say) -> bool:
    """Add the CA to the system store. As root (or into a folder we may write) the file
    is written here from `pem`, never read from the user's path; otherwise through sudo."""
    sudo = needs_sudo(store, os.geteuid(), _writable)
    if store.kind == "macos" and not sudo:  # root: `security` reads a copy of root's own
        with tempfile.NamedTemporaryFile(suffix=".pem") as copy:
            copy.write(pem)
            copy.flush()
            return all(run(c, say) for c in install_commands(store, copy.name, ca_name, False))
    if sudo or store.kind == "macos":
        return all(run(c, say) for c in install_commands(store, cert_path, ca_name, sudo))
    say(f"writing {store.target} (mode 0644)")
    try:
        files.write_new(Path(store.target), pem, 0o644)
    except OSError as exc:
        say(f"  failed: {exc.strerror}")
        return False
    return _refresh(store, say)


def may_hold(store: SystemStore) -> bool:
    """Whether the system store may hold our CA (on macOS only `security` can tell)."""
    return store.kind == "macos" or os.path.lexists(store.target)


def uninstall_system(store: SystemStore, ca_name: str, say: Say) -> bool:
    """Take the CA out of the system store; a store that never had it is left alone."""
    if not may_hold(store):
        return True
    sudo = needs_sudo(store, os.geteuid(), _writable)
    if sudo or store.kind == "macos":
        return all(run(c, say) for c in uninstall_commands(store, ca_name, sudo))
    say(f"removing {store.target}")
    try:
        os.unlink(store.target)
    except OSError as exc:
        say(f"  failed: {exc.strerror}")
        return False
    return _refresh(store, say)


def _refresh(store: SystemStore, say: Say) -> bool:
    return run(list(store.refresh), say) if store.refresh else True


def system_has(store: SystemStore, pem: bytes) -> bool | None:
    """Whether the system store holds exactly this CA; None when we cannot tell."""
    if store.kind == "macos":
        return None
    try:
        with open(store.target, "rb") as stream:
            return stream.read(files.MAX_PEM) == pem
    except OSError:
        return False


def _writable(folder: str) -> bool:
    return os.path.isdir(folder) and os.access(folder, os.W_OK)


# -- NSS (Chromium on Linux, Firefox) -------------------------------------------------------


def nss_databases(home: Path) -> list[Path]:
    """The NSS databases (folders holding cert9.db) of Chromium and Firefox under `home`."""
    candidates = [home / ".pki" / "nssdb", home / "snap" / "chromium" / "current" / ".pki"
                  / "nssdb"]
    for profiles in (home / ".mozilla" / "firefox",
                     home / "snap" / "firefox" / "common" / ".mozilla" / "firefox",
                     home / "Library" / "Application Support" / "Firefox" / "Profiles"):
        if profiles.is_dir():
            candidates.extend(sorted(p for p in profiles.iterdir() if p.is_dir()))
    return [db for db in candidates if (db / "cert9.db").is_file()]


def certutil() -> str | None:
    return shutil.which("certutil")


def nss_install(tool: str, db: Path, cert_path: Path, nickname: str, say: Say) -> bool:
    """Replace any certificate under `nickname` in `db` with the CA, trusted for TLS."""
    nss_remove(tool, db, nickname, say, quiet=True)
    return run([tool, "-A", "-d", f"sql:{db}", "-t", "C,,", "-n", nickname, "-i",
                str(cert_path)], say)


def nss_remove(tool: str, db: Path, nickname: str, say: Say, quiet: bool = False) -> int:
    """Delete every certificate under `nickname` from `db`; return how many."""
    removed = 0
    for _ in range(MAX_SAME_NICKNAME):
        if not nss_lookup(tool, db, nickname):
            break
        if not run([tool, "-D", "-d", f"sql:{db}", "-n", nickname],
                   (lambda _line: None) if quiet else say):
            break
        removed += 1
    return removed


def nss_lookup(tool: str, db: Path, nickname: str) -> str | None:
    """The PEM certificate `db` holds under `nickname`, or None."""
    result = subprocess.run([tool, "-L", "-d", f"sql:{db}", "-n", nickname, "-a"],
                            capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL)
    return result.stdout if result.returncode == 0 and "BEGIN CERTIFICATE" in result.stdout \
        else None


def same_pem(a: str | bytes, b: str | bytes) -> bool:
    """Two PEM texts carry the same first certificate (line endings and spacing aside)."""
    def body(text: str | bytes) -> str:
        text = text.decode(errors="replace") if isinstance(text, bytes) else text
        start = text.find("-----BEGIN CERTIFICATE-----")
        end = text.find("-----END CERTIFICATE-----", start)
        return "".join(text[start:end].split()) if start >= 0 and end > start else ""
    return bool(body(a)) and body(a) == body(b)


def nss_trusted(pem: bytes, nickname: str, home: Path) -> dict[str, bool] | None:
    """For each NSS database in `home` (labelled), whether it holds exactly this CA;
    None when certutil is missing and so nothing can be told."""
    tool = certutil()
    if tool is None:
        return None
    return {shown: same_pem(nss_lookup(tool, db, nickname) or "", pem)
            for db, shown in labelled(nss_databases(home), home)}


def trusted_anywhere(pem: bytes, nickname: str, home: Path, user: str) -> bool:
    """Whether the CA is trusted in the system store or an NSS database we can check:
    what the router asks before it warns "run `promenade trust`"."""
    store = detect_system_store(user)
    if store is not None and system_has(store, pem):
        return True
    return any((nss_trusted(pem, nickname, home) or {}).values())


def labelled(dbs: Iterable[Path], home: Path) -> list[tuple[Path, str]]:
    """Each NSS database with a name for people: `~/.pki/nssdb (Chromium)`."""
    out = []
    for db in dbs:
        shown = f"~/{db.relative_to(home)}" if db.is_relative_to(home) else str(db)
        out.append((db, f"{shown} ({'Chromium' if '.pki' in db.parts else 'Firefox'})"))
    return out
