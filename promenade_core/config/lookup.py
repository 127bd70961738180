"""Where promenade.yaml is: `--config`, the current folder or a parent, then the user's
config folder.

Also how a file is named in messages (`display_path`), shared by every config step.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from promenade_core.errors import ConfigError, Problem
from promenade_core.userfile import folder_problem, os_reason

CONFIG_NAME = "promenade.yaml"


#: What "no config found" shows: the smallest config that runs.
EXAMPLE = """services:
  web:
    command: python3 -m http.server 8000"""


def find_config(
    explicit: str | os.PathLike[str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Path:
    """The config to use: `--config`, else promenade.yaml in the current folder or the
    nearest parent (up to the home folder or the root, like git and compose), else
    ~/.config/promenade/promenade.yaml. A folder given with --config means its
    promenade.yaml."""
    cwd = Path(cwd) if cwd is not None else _cwd()
    if explicit is not None:
        given = explicit_config_path(explicit, cwd)
        why = _lookup_problem(given)
        if why:
            raise ConfigError(
                [Problem(str(explicit), None, "", f"config file {absolute_path(given)} {why}")]
            )
        return absolute_path(given)
    home = Path(home) if home is not None else Path.home()
    folders = search_folders(absolute_path(cwd), absolute_path(home))
    user_config = home / ".config" / "promenade" / CONFIG_NAME
    for candidate in [*(folder / CONFIG_NAME for folder in folders), user_config]:
        if _lookup_problem(candidate) is None:
            return absolute_path(candidate)
    raise ConfigError([Problem(CONFIG_NAME, None, "",
                               not_found_message(folders, absolute_path(user_config)))])


def search_folders(cwd: Path, home: Path) -> list[Path]:
    """`cwd` and its parents, nearest first, up to the home folder when `cwd` is under
    it (a promenade.yaml above home belongs to nobody's project), else up to the root.
    Both absolute; symlinks are not resolved, so `..` means what the user typed."""
    folders = [cwd]
    for parent in cwd.parents:
        if folders[-1] == home:
            break
        folders.append(parent)
    return folders


def not_found_message(folders: list[Path], user_config: Path) -> str:
    """Where the lookup looked, what to do, and a config to start from."""
    where = (f"{folders[0]}" if len(folders) == 1
             else f"{folders[0]} and each parent up to {folders[-1]}")
    example = "\n".join(f"    {line}" for line in EXAMPLE.splitlines())
    return (f"no config file found (looked for {CONFIG_NAME} in {where}, then for "
            f"{user_config}); create one with `promenade init` (or `promenade init --from "
            f"Procfile`), or pass --config PATH. The smallest {CONFIG_NAME}:\n{example}")


def _cwd() -> Path:
    """The current folder; a deleted one (a `rm -rf` from another shell) is a problem
    to report, not a traceback."""
    try:
        return Path.cwd()
    except OSError as exc:
        raise ConfigError([Problem(CONFIG_NAME, None, "",
                                   f"cannot look for a config: the current folder "
                                   f"{os_reason(exc)}")]) from None


def _lookup_problem(path: Path) -> str | None:
    """Why no config is at `path`, or None when a file is there (load_config judges it: a
    FIFO or an oversize file is its problem). os.stat, not Path.is_file, which raises
    PermissionError for a folder we cannot enter."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return os_reason(exc)
    return "is a folder without a promenade.yaml" if stat.S_ISDIR(info.st_mode) else None


def explicit_config_path(explicit: str | os.PathLike[str], cwd: Path | None = None) -> Path:
    """What `--config X` names, absolute, whether or not it exists (`config path`)."""
    given = (Path(cwd) if cwd is not None else Path.cwd()) / Path(explicit).expanduser()
    if folder_problem(given) is None and _lookup_problem(given / CONFIG_NAME) is None:
        given = given / CONFIG_NAME
    return absolute_path(given)


def absolute_path(path: Path) -> Path:
    """Absolute, with symlinks kept (a service runs in the folder the user named)."""
    return Path(os.path.abspath(path))


def display_path(path: Path) -> str:
    """How a file is named in messages: relative to the current folder when under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)
