"""Where promenade.yaml is: `--config`, the current folder, then the user's config folder.

Also how a file is named in messages (`display_path`), shared by every config step.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from promenade_core.errors import ConfigError, Problem
from promenade_core.userfile import folder_problem, os_reason

CONFIG_NAME = "promenade.yaml"


def find_config(
    explicit: str | os.PathLike[str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Path:
    """The config to use: `--config` > ./promenade.yaml > ~/.config/promenade/promenade.yaml.

    A folder given with --config means its promenade.yaml.
    """
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    if explicit is not None:
        given = explicit_config_path(explicit, cwd)
        why = _lookup_problem(given)
        if why:
            raise ConfigError(
                [Problem(str(explicit), None, "", f"config file {absolute_path(given)} {why}")]
            )
        return absolute_path(given)
    home = Path(home) if home is not None else Path.home()
    candidates = [cwd / CONFIG_NAME, home / ".config" / "promenade" / CONFIG_NAME]
    for candidate in candidates:
        if _lookup_problem(candidate) is None:
            return absolute_path(candidate)
    looked = ", ".join(str(absolute_path(c)) for c in candidates)
    message = f"no config file found (looked for {looked}); create one or pass --config PATH"
    raise ConfigError([Problem(CONFIG_NAME, None, "", message)])


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
