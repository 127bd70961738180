"""`${VAR}` in promenade.yaml: docker compose's interpolation, on every string value.

    ${VAR}            the value of VAR; VAR unset is a problem (not an empty string)
    ${VAR:-default}   default when VAR is unset or empty      ${VAR-default}  … unset
    ${VAR:?message}   a problem saying `message` when unset or empty  ${VAR?message} … unset
    ${VAR:+other}     other when VAR is set and not empty     ${VAR+other}    … set
    $$                a literal `$`

Values come from the process environment, then `.env`. Defaults and messages may hold
`${...}` themselves. Unlike compose, a bare `$VAR` is left as it is: commands written
for a shell (`--port $PORT`, as in Procfiles) reach the shell untouched; `$${VAR}` gives
the shell a braced one. Standard library only, no I/O: a lookup function is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from promenade_core.config.source import Path_

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OPERATORS = (":-", ":?", ":+", "-", "?", "+")
Lookup = Callable[[str], "str | None"]
#: What a problem about a missing value suggests.
HINT = ("set it in the environment or in .env, give a default with ${{{name}:-value}}, or "
        "write $${{{name}}} if the shell should expand it")


class Interpolated(str):
    """A value that `${...}` produced: numeric and boolean settings accept it as text
    ("5001", "true"), which they refuse when typed in quotes."""


class InterpolationError(ValueError):
    """A `${...}` that cannot be resolved; the message says why and what to do."""


def interpolate(text: str, lookup: Lookup) -> str:
    """`text` with every `${...}` and `$$` resolved; an `Interpolated` when a `${...}`
    was. Raises InterpolationError."""
    if "$" not in text:
        return text
    out: list[str] = []
    substituted = False
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expression(text[i + 2:end], lookup))
            substituted = True
            i = end + 1
        else:
            out.append(char)   # a bare `$VAR`: the shell's
            i += 1
    result = "".join(out)
    return Interpolated(result) if substituted else result


def _closing_brace(text: str, start: int) -> int:
    """Where the `${` opened before `start` closes, nested `${...}` included."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"'${{' at character {start - 1} is never closed with '}}' "
                             "(write $$ for a literal '$')")


def _expression(inner: str, lookup: Lookup) -> str:
    """The value of one `${inner}`."""
    match = NAME.match(inner)
    if match is None:
        raise InterpolationError(
            f"'${{{inner}}}' does not start with a variable name (letters, digits and '_', "
            "not starting with a digit)")
    name, rest = match.group(), inner[match.end():]
    if not rest:
        value = lookup(name)
        if value is None:
            raise InterpolationError(f"{name} is not set ({HINT.format(name=name)})")
        return value
    operator = next((op for op in OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise InterpolationError(
            f"'${{{inner}}}' is not understood: after {name} comes one of "
            f"{', '.join(OPERATORS)} (as in ${{{name}:-default}})")
    return _apply(name, operator, rest[len(operator):], lookup)


def _apply(name: str, operator: str, argument: str, lookup: Lookup) -> str:
    value = lookup(name)
    empty_counts = operator.startswith(":")
    missing = value is None or (empty_counts and value == "")
    if operator in (":-", "-"):
        return interpolate(argument, lookup) if missing else str(value)
    if operator in (":+", "+"):
        return "" if missing else interpolate(argument, lookup)
    if missing:   # ":?" or "?"
        said = interpolate(argument, lookup) if argument else ""
        what = "is not set" if value is None else "is empty"
        raise InterpolationError(f"{name} {what}" + (f": {said}" if said else ""))
    return str(value)


def interpolate_data(data: Any, lookup: Lookup,
                     problem: Callable[[Path_, str], None], path: Path_ = ()) -> Any:
    """Every string value in `data` (mapping keys are left alone) interpolated; a value
    that cannot be is reported at its path and kept as written."""
    if isinstance(data, dict):
        return {key: interpolate_data(value, lookup, problem, (*path, key))
                for key, value in data.items()}
    if isinstance(data, list):
        return [interpolate_data(item, lookup, problem, (*path, index))
                for index, item in enumerate(data)]
    if isinstance(data, str):
        try:
            return interpolate(data, lookup)
        except InterpolationError as exc:
            problem(path, str(exc))
    return data
