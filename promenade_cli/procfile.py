"""Procfiles (honcho, foreman, Heroku) read into Promenade services: text in, services
and notes out; no I/O, so every format quirk is a unit test.

The format honcho and foreman accept is one `name: command` per line, the name of
letters, digits, `_` and `-` (`^([A-Za-z0-9_-]+):\\s*(.+)$`); any other line is
ignored without a word. Here every line that is not blank or a `#` comment either
becomes a service or is reported, since a silently dropped process is what a user
converting a Procfile least expects. Leniencies, each reported: spaces before the colon
(`web : cmd`) are accepted; a name with other characters (`web.1`) is made valid; a
name repeated keeps its first command (honcho refuses the file).

Both tools give each process type a PORT: the base (5000, or PORT from `.env`) plus 100
times its position. A command that uses `$PORT` or `${PORT}` gets that number as its
`port:`, which Promenade checks free before start and exports as PORT, so the command
is kept as written. A command that does not use PORT gets no `port:`.

A command is text for the shell, but promenade.yaml interpolates `${VAR}` and `$$`
when loading; a `$` before `{` or `$` is doubled (`${PORT:-5000}` is written
`$${PORT:-5000}`), so the shell still sees exactly what the Procfile said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: honcho's and foreman's default base port, and the step between process types.
BASE_PORT = 5000
PORT_STEP = 100
MAX_PORT = 65535

#: One word, a colon, the command. The name is checked separately, so that a name
#: with odd characters can be repaired instead of the line being lost.
_LINE = re.compile(r"(?P<name>[^\s:#][^\s:]*)(?P<space>[ \t]*):(?P<command>.*)")
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
#: `$PORT` (not `$PORTAL`) or `${PORT` followed by `}` or an operator.
_USES_PORT = re.compile(r"\$(?:PORT(?![A-Za-z0-9_])|\{PORT[}:?+-])")
#: A `$` that promenade.yaml's interpolation would consume: before `{` or `$`.
_INTERPOLATED_DOLLAR = re.compile(r"\$(?=[{$])")


@dataclass(frozen=True)
class ProcfileService:
    name: str
    #: as promenade.yaml must spell it (interpolation escaped)
    command: str
    port: int | None
    line: int


@dataclass(frozen=True)
class Conversion:
    services: tuple[ProcfileService, ...]
    #: `Procfile:4: …` for every line not converted as written, in line order
    notes: tuple[str, ...]


def parse_procfile(text: str, file: str = "Procfile", base_port: int = BASE_PORT,
                   ) -> Conversion:
    """The services a Procfile describes, and a note for every line that was skipped
    or changed; `file` only names lines in notes."""
    services: list[ProcfileService] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue

        def note(message: str, number: int = number) -> None:
            notes.append(f"{file}:{number}: {message}")

        match = _LINE.fullmatch(line)
        if match is None:
            note(f"skipped {_quote(line)}: not `name: command`")
            continue
        name, command = match["name"], match["command"].strip()
        if not command:
            note(f"skipped {name!r}: no command after the colon")
            continue
        if match["space"]:
            note(f"{name!r}: space before the colon accepted (honcho and foreman ignore "
                 "this line)")
        fixed = sanitise_name(name)
        if not fixed:
            note(f"skipped {name!r}: a name needs letters, digits, '_' or '-'")
            continue
        if fixed != name:
            note(f"{name!r} renamed {fixed!r}: names use only letters, digits, '_' and '-'")
        if fixed in seen:
            note(f"skipped {name!r}: the name is already used on line {seen[fixed]}")
            continue
        seen[fixed] = number
        uses_port = _USES_PORT.search(command) is not None
        port = _port(base_port, len(services)) if uses_port else None
        if uses_port and port is None:
            note(f"{fixed!r}: uses $PORT but {base_port} + {PORT_STEP} * {len(services)} "
                 "is not a port; add `port:` by hand")
        services.append(ProcfileService(fixed, escape_interpolation(command), port, number))
    return Conversion(tuple(services), tuple(notes))


def sanitise_name(name: str) -> str:
    """A valid service name from a Procfile name: each run of other characters becomes
    one `-`, trimmed at the ends (`web.1` → `web-1`); '' when nothing is left."""
    return _INVALID_NAME_CHARS.sub("-", name).strip("-")


def escape_interpolation(command: str) -> str:
    """`command` written so that promenade.yaml's interpolation gives it back as is."""
    return _INTERPOLATED_DOLLAR.sub("$$", command)


def base_port_from(dotenv: dict[str, str]) -> int:
    """honcho's and foreman's base port: PORT from `.env` when it is a port, else 5000."""
    value = dotenv.get("PORT", "")
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_PORT \
        else BASE_PORT


def _port(base: int, index: int) -> int | None:
    port = base + PORT_STEP * index
    return port if port <= MAX_PORT else None


def _quote(line: str, limit: int = 60) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "…")
