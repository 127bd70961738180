"""Security warnings about a loaded config: who else could change what promenade runs."""

from __future__ import annotations

import os
import pwd
import shlex
import stat
from collections.abc import Iterator
from pathlib import Path

from promenade_core.config.model import Config
from promenade_core.origins import is_local_hostname


def security_warnings(config: Config) -> list[str]:
    """Files that someone else could change to run commands as this user.

    promenade runs whatever `command:` says; a config or env file (or a folder holding
    one) that another user can write is a way for them to run code as you.
    """
    warnings: list[str] = []
    euid = os.geteuid()
    for path in config.watched_files:
        # the config files and `.env` (which `${VAR}` reads) decide what runs
        decides = path in config.files or path.name == ".env"
        what = "the commands promenade runs" if decides else "your services' env"
        warnings.extend(_file_warnings(path, what, euid))
    for folder in dict.fromkeys(p.parent for p in config.watched_files):
        warnings.extend(_folder_warnings(folder))
    if not is_local_hostname(config.manager.host):
        warnings.append(
            f"manager.host is {config.manager.host!r}: the dashboard has no authentication and "
            "anyone who can reach this address can start and stop your services; "
            "use 127.0.0.1 unless you mean it"
        )
    return warnings


def _file_warnings(path: Path, what: str, euid: int) -> Iterator[str]:
    try:
        info = path.stat()
    except OSError:
        return
    quoted = shlex.quote(str(path))
    if info.st_mode & stat.S_IWOTH:
        yield f"{path} is writable by every user, so anyone can change {what}; " + (
            f"run: chmod o-w {quoted}"
        )
    if info.st_uid not in (euid, 0):
        owner = _user_name(info.st_uid) or f"uid {info.st_uid}"
        yield (
            f"{path} is owned by {owner}, not by you, so they can change {what}; "
            f"run: sudo chown {_user_name(euid) or euid} {quoted}"
        )


def _folder_warnings(folder: Path) -> Iterator[str]:
    try:
        info = folder.stat()
    except OSError:
        return
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        yield (
            f"{folder} is writable by every user, so anyone can replace the files in it; "
            f"run: chmod o-w {shlex.quote(str(folder))}"
        )


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
