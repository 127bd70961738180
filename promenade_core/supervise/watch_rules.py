"""The rules of `watch:`, with no I/O: which changed paths count, which folders to watch,
when a burst of changes has settled, and what a change does to a service.

`watcher.py` does the watching (a thread per watched service) and applies these.
Standard library only, so every rule runs in the unit tier with plain strings.

Path rules (README "Restart on file change"):
- a plain path in `paths` (`src`, `config/app.toml`) is that file or folder, relative to
  the service's folder; a folder counts with everything in it;
- a glob with a `/` (`config/*.toml`, `src/**/*.py`) matches the path relative to the
  service's folder; `*` and `?` stay within one folder name, `**` spans any number;
- a glob without a `/` (`*.toml`) matches a file's name in any folder below;
- `ignore` globs without a `/` (`*.log`, `dist`, `tmp*`) match the name of the file or of
  any folder it is in (as in .gitignore); with a `/` they match the relative path and
  everything under it.
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from promenade_core.supervise.states import Status

#: Folders whose changes never count, wherever they are: version control, installed
#: packages, bytecode and tool caches change without the service's code changing
#: (an `npm install`, a test run, a mypy run).
ALWAYS_IGNORED_DIRS = (".git", "node_modules", "__pycache__", ".venv",
                       ".mypy_cache", ".pytest_cache", ".ruff_cache")
#: Editors' swap, backup and lock files: vim rewrites `.x.py.swp` while you type, long
#: before the file is saved.
ALWAYS_IGNORED_FILES = ("*.swp", "*.swx", "*~", ".#*")

#: A burst of changes restarts once: after this long without another change...
QUIET = 0.3
#: ...or this long after the first, so a steady stream of writes still restarts.
MAX_DELAY = 2.0

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def normalize(pattern: str, directory: str) -> str:
    """A pattern as a path relative to `directory` (`./src/` -> `src`, `/abs/x` -> `../x`
    when `directory` is `/abs/svc`); `.` is the folder itself."""
    joined = posixpath.normpath(posixpath.join(directory, pattern))
    return posixpath.relpath(joined, directory)


def _translate(glob: str) -> str:
    """A glob as a regular expression over a relative path, segment-aware: `*`, `?` and
    `[...]` never cross a `/`; `**` as a whole segment spans zero or more folders."""
    out: list[str] = []
    segments = glob.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_translate_segment(segment))
        if not last:
            out.append("/")
    return "".join(out)


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (klass := _char_class(segment, i)) is not None:
            regex, i = klass
            out.append(regex)
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _char_class(segment: str, start: int) -> tuple[str, int] | None:
    """`[...]` opened at `start` as a regex class, and the index of its `]` (a `]` right
    after `[` or `[!` is a member). None when it never closes or is not a valid class
    (`[z-a]`): then `[` is just a character, so no pattern is ever refused here."""
    i = start + 1
    if i < len(segment) and segment[i] in "!^":
        i += 1
    if i < len(segment) and segment[i] == "]":
        i += 1
    end = segment.find("]", i)
    if end == -1:
        return None
    body = segment[start + 1:end]
    negate = body[:1] in ("!", "^")
    body = body[1:] if negate else body
    escaped = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
    regex = f"[{'^' if negate else ''}{escaped}]"
    try:
        re.compile(regex)
    except re.error:
        return None
    return regex, end


@dataclass(frozen=True)
class _Pattern:
    """One compiled pattern: `by_name` ones test each folder name and the file name."""

    regex: re.Pattern[str]
    by_name: bool

    def matches(self, rel: str) -> bool:
        if self.by_name:
            return any(self.regex.fullmatch(part) for part in rel.split("/"))
        return self.regex.fullmatch(rel) is not None


def _compile_path(pattern: str) -> _Pattern:
    """A `paths` entry (already normalized): name globs match anywhere, the rest from
    the service's folder, a folder with everything in it."""
    if is_glob(pattern) and "/" not in pattern:
        return _Pattern(re.compile(_translate(pattern)), by_name=True)
    if pattern == ".":
        return _Pattern(re.compile(r"(?!\.\./).*"), by_name=False)
    body = _translate(pattern) if is_glob(pattern) else re.escape(pattern)
    return _Pattern(re.compile(f"{body}(?:/.*)?"), by_name=False)


def _compile_ignore(pattern: str) -> _Pattern:
    """An `ignore` glob: without a `/` it names a file or folder anywhere (a folder's
    name ignores all below it); with one, a path from the service's folder."""
    stripped = pattern.strip("/")
    if "/" not in stripped:
        return _Pattern(re.compile(_translate(stripped)), by_name=True)
    return _Pattern(re.compile(f"{_translate(stripped)}(?:/.*)?"), by_name=False)


@dataclass(frozen=True)
class WatchRules:
    """Which changed paths (relative to the service's folder) restart the service."""

    paths: tuple[_Pattern, ...]
    ignore: tuple[_Pattern, ...]

    @classmethod
    def build(cls, paths: Iterable[str], ignore: Iterable[str], directory: str) -> WatchRules:
        always = (*ALWAYS_IGNORED_DIRS, *ALWAYS_IGNORED_FILES)
        return cls(
            paths=tuple(_compile_path(normalize(p, directory)) for p in paths),
            ignore=tuple(_compile_ignore(p) for p in (*always, *ignore) if p.strip("/")),
        )

    def ignored(self, rel: str) -> bool:
        return any(p.matches(rel) for p in self.ignore)

    def counts(self, rel: str) -> bool:
        """Whether a change to `rel` restarts the service."""
        return not self.ignored(rel) and any(p.matches(rel) for p in self.paths)


def relative(path: str, directory: str) -> str:
    """An absolute changed path as the rules see it: relative to the service's folder."""
    return posixpath.relpath(posixpath.normpath(path), directory)


def fixed_part(pattern: str) -> str:
    """The leading folders of a normalized pattern before its first glob segment
    (`src/**/*.py` -> `src`, `*.toml` -> `.`); a plain path is itself."""
    if not is_glob(pattern):
        return pattern
    fixed: list[str] = []
    for segment in pattern.split("/"):
        if is_glob(segment):
            break
        fixed.append(segment)
    return "/".join(fixed) or "."


@dataclass(frozen=True)
class Roots:
    """The folders (or files) to watch recursively, and what to tell the user about them."""

    roots: tuple[str, ...]
    notes: tuple[str, ...]


def watch_roots(paths: Iterable[str], directory: str, is_dir: Callable[[str], bool],
                exists: Callable[[str], bool]) -> Roots:
    """Where to watch for `paths` (relative to absolute `directory`).

    A folder is watched itself; a file through its folder, because editors save by
    writing a new file and renaming it over the old one, which ends a watch on the old
    file; a glob through its fixed leading folders. Something that does not exist yet
    is watched for through its nearest existing folder (never above the service's
    folder), so creating it later counts.
    """
    roots: list[str] = []
    notes: list[str] = []
    for pattern in paths:
        rel = normalize(pattern, directory)
        base = posixpath.normpath(posixpath.join(directory, fixed_part(rel)))
        if is_glob(rel) or is_dir(base):
            start = base
        else:
            start = posixpath.dirname(base)
            if not exists(base):
                notes.append(f"{pattern} does not exist yet")
        root = _existing_folder(start, directory, is_dir)
        if root is None:
            notes.append(f"{pattern}: no folder to watch ({start} does not exist)")
        else:
            if root != start:
                notes.append(f"{pattern}: {start} does not exist yet; watching {root} for it")
            roots.append(root)
    return Roots(_outermost(roots), tuple(notes))


def _existing_folder(start: str, directory: str, is_dir: Callable[[str], bool]) -> str | None:
    """`start` or its nearest existing ancestor, going up no further than the service's
    folder (or, for a path outside it, not at all)."""
    limit = directory if _within(start, directory) else start
    current = start
    while not is_dir(current):
        if current == limit or current == posixpath.dirname(current):
            return None
        current = posixpath.dirname(current)
    return current


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _outermost(roots: Iterable[str]) -> tuple[str, ...]:
    """Distinct roots, without those inside another (a recursive watch covers them)."""
    unique = list(dict.fromkeys(roots))
    return tuple(r for r in unique
                 if not any(o != r and _within(r, o) for o in unique))


def settle_at(first: float, last: float) -> float:
    """When a burst that began at `first` and last changed at `last` restarts: QUIET
    after the last change, but no later than MAX_DELAY after the first."""
    return min(last + QUIET, first + MAX_DELAY)


class WatchAction(enum.Enum):
    RESTART = "restart"   # stop (when up) and start again
    NOTHING = "nothing"


def on_change(status: Status, completed: bool, last_exit_code: int | None) -> WatchAction:
    """What a change of watched files does to a service in `status`.

    Up, retrying, failed or given up: restart (a fix of a crash starts it again). A task
    that completed (stopped after exit 0): run it again, as with codegen. Stopped
    otherwise (stopped by the user, or never started, `autostart: false`): nothing, the
    user's choice stands. Pending: nothing, its process has not started and will see
    the new files.
    """
    if status == Status.PENDING:
        return WatchAction.NOTHING
    if status == Status.STOPPED:
        finished = completed and last_exit_code == 0
        return WatchAction.RESTART if finished else WatchAction.NOTHING
    return WatchAction.RESTART


def describe_changes(paths: Iterable[str]) -> str:
    """`src/tasks.py`, or `src/tasks.py and 2 more`: the first path changed, in the
    order seen, counting each path once."""
    unique = list(dict.fromkeys(paths))
    if not unique:
        return "files"
    more = len(unique) - 1
    return unique[0] + (f" and {more} more" if more else "")
