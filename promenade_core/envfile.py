"""The dotenv format of `env_file`, kept small and predictable.

Grammar, one assignment per line:
- `KEY=VALUE`, optionally prefixed by `export ` (so the file can also be sourced by a
  shell); spaces around `=` are allowed. KEY is `[A-Za-z_][A-Za-z0-9_]*`.
- Unquoted values run to the end of the line, trimmed; `#` starts a comment only when
  it follows whitespace (`URL=http://x/#top` keeps its `#`).
- `'single quotes'` are literal. `"double quotes"` understand `\\n`, `\\t`, `\\r`,
  `\\"`, `\\\\` and `\\$`; any other backslash is kept as typed. Quoted values may span
  lines; after the closing quote only a comment may follow.
- Blank lines and lines starting with `#` are ignored; a later assignment wins.
- No `${VAR}` expansion: what is written is what the service gets.

Every malformed line is reported (with the file and its line), not only the first.
"""

from __future__ import annotations

from pathlib import Path

from promenade_core.config_schema import env_name_problem
from promenade_core.errors import Problem

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_dotenv(text: str, file: str) -> tuple[dict[str, str], list[Problem]]:
    """Parse dotenv `text`; `file` is only used to name problems."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    env: dict[str, str] = {}
    problems: list[Problem] = []
    index = 0
    while index < len(lines):
        start = index
        raw = lines[index]
        index += 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep:
            problems.append(
                _problem(file, start, f"malformed line {raw.strip()!r} (expected KEY=VALUE)")
            )
            continue
        name_problem = env_name_problem(key)
        if name_problem:
            problems.append(_problem(file, start, name_problem))
            continue
        if rest.lstrip()[:1] in ("'", '"'):
            rest = rest.lstrip()
            while _closing_quote(rest) < 0 and index < len(lines):
                rest += "\n" + lines[index]
                index += 1
            value, problem = _quoted(rest)
        else:
            value, problem = _unquoted(rest), None
        if problem:
            problems.append(_problem(file, start, f"{key}: {problem}"))
            continue
        env[key] = value
    return env, problems


def read_env_file(path: Path, file: str) -> tuple[dict[str, str], list[Problem]]:
    """Read and parse `path`; an unreadable file is one problem (the caller checks existence)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return {}, [Problem(file, None, "", f"cannot read env file: {exc.strerror}")]
    except UnicodeDecodeError as exc:
        return {}, [Problem(file, None, "", f"env file is not UTF-8 text ({exc.reason})")]
    return parse_dotenv(text, file)


def _problem(file: str, index: int, message: str) -> Problem:
    return Problem(file, index + 1, "", message)


def _closing_quote(rest: str) -> int:
    """Index of the quote closing `rest[0]`, or -1 if it is not closed yet."""
    quote = rest[0]
    i = 1
    while i < len(rest):
        if quote == '"' and rest[i] == "\\":
            i += 2
            continue
        if rest[i] == quote:
            return i
        i += 1
    return -1


def _quoted(rest: str) -> tuple[str, str | None]:
    end = _closing_quote(rest)
    if end < 0:
        return "", f"the {rest[0]} quote is never closed"
    tail = rest[end + 1 :].strip()
    if tail and not tail.startswith("#"):
        return "", f"unexpected text {tail!r} after the closing quote"
    body = rest[1:end]
    return (_unescape(body) if rest[0] == '"' else body), None


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body) and body[i + 1] in _ESCAPES:
            out.append(_ESCAPES[body[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _unquoted(rest: str) -> str:
    """`rest` is everything after `=`, so a `#` right after `=` is part of the value."""
    for i, char in enumerate(rest):
        if char == "#" and i > 0 and rest[i - 1] in " \t":
            return rest[:i].strip()
    return rest.strip()
