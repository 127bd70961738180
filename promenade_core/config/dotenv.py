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

Every malformed line is reported (with the file and its line), not only the first. A
message names the line and the key, never the text: an env file holds secrets, and a
config check's output lands in terminals, CI logs and bug reports.

Parsing is linear in the file's size: a quote left open swallows the rest of the file,
and rescanning the growing value at every line made 2,000 such lines take 7 s.
"""

from __future__ import annotations

from pathlib import Path

from promenade_core.config.fields import env_name_problem, env_value_problem
from promenade_core.errors import Problem
from promenade_core.userfile import UnreadableFile, read_user_file

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_dotenv(text: str, file: str) -> tuple[dict[str, str], list[Problem]]:
    """Parse dotenv `text`; `file` is only used to name problems."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    env: dict[str, str] = {}
    problems: list[Problem] = []
    index = 0
    while index < len(lines):
        start = index
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep:
            problems.append(_problem(file, start, "malformed line (expected KEY=VALUE)"))
            continue
        name_problem = env_name_problem(key, shown=False)
        if name_problem:
            problems.append(_problem(file, start, name_problem))
            continue
        if rest.lstrip()[:1] in ("'", '"'):
            rest, index = _take_quoted(rest.lstrip(), lines, index)
            value, problem = _quoted(rest)
        else:
            value, problem = _unquoted(rest), None
        problem = problem or env_value_problem(value)
        if problem:
            problems.append(_problem(file, start, f"{key}: {problem}"))
            continue
        env[key] = value
    return env, problems


def read_env_file(path: Path, file: str) -> tuple[dict[str, str], list[Problem]]:
    """Read and parse `path`; raises UnreadableFile (missing, not a regular file, too big,
    not UTF-8) for the caller to report on the config line that names the file."""
    try:
        text = read_user_file(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"is not UTF-8 text ({exc.reason})") from None
    return parse_dotenv(text, file)


def _problem(file: str, index: int, message: str) -> Problem:
    return Problem(file, index + 1, "", message)


def _take_quoted(first: str, lines: list[str], index: int) -> tuple[str, int]:
    """The quoted value's text, from its opening quote through the line that closes it
    (or the end of the file), and the index of the line after it. Each line is scanned
    once, resuming where the previous scan stopped."""
    quote = first[0]
    parts = [first]
    end, skip = _scan(first, quote, 1)
    while end < 0 and index < len(lines):
        part = "\n" + lines[index]
        index += 1
        parts.append(part)
        end, skip = _scan(part, quote, skip)
    return "".join(parts), index


def _scan(text: str, quote: str, start: int) -> tuple[int, int]:
    """(index of the closing quote in text[start:], or -1; where the next piece's scan
    starts: 1 when text ends in a backslash that escapes the next piece's newline)."""
    i = start
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i, 0
        i += 1
    return -1, i - len(text)


def _quoted(rest: str) -> tuple[str, str | None]:
    end, _ = _scan(rest, rest[0], 1)
    if end < 0:
        return "", f"the {rest[0]} quote is never closed"
    tail = rest[end + 1 :].strip()
    if tail and not tail.startswith("#"):
        return "", "unexpected text after the closing quote"
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
