"""The value checkers of promenade.yaml's settings: one marshmallow field per kind of
value, and the problem functions they use.

The fields check values themselves (rather than using marshmallow's stock Integer or
String) so that every message quotes what was given and says what would be right:
`must be a port from 1 to 65535, got 70000`, `must be one of never, once, always; got
'sometimes' (did you mean ...?)`. A bool where a number is expected is refused (YAML
reads `yes` as true, and Python counts True as 1); a number or boolean that `${VAR}`
produced is read from its text. The sections that use them are in schema.py.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Callable, Iterable
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from promenade_core.config.choices import AUTO_PORT, Condition, StopSignal, words
from promenade_core.config.interpolate import Interpolated
from promenade_core.config.marshmallow_lazy import ValidationError, fields
from promenade_core.config.model import LogFiles

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def describe(value: Any) -> str:
    """How a wrong value reads in a message; hints at YAML's surprising booleans."""
    if isinstance(value, bool):
        word = "true" if value else "false"
        return f"{word} (YAML reads unquoted yes/no/on/off/true/false as booleans; quote it)"
    if isinstance(value, Interpolated):
        return f"{str(value)!r} (what ${{...}} gave)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + "…" + text[0]


def suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Field(fields.Field):
    """A field that checks the value itself so messages can quote what was given."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", {})
        kwargs["error_messages"].setdefault("null", "is empty (null); give a value or remove it")
        kwargs["error_messages"].setdefault("required", "is required")
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self.check(value)

    def check(self, value: Any) -> Any:
        raise NotImplementedError


class Text(_Field):
    def __init__(self, *, check: Callable[[str], str | None] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.extra = check

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"must be text, got {describe(value)}")
        if not value.strip():
            raise ValidationError("must not be empty")
        if "\x00" in value:
            raise ValidationError("must not contain a NUL character")
        problem = self.extra(value) if self.extra else None
        if problem:
            raise ValidationError(problem)
        return value


class Choice(_Field):
    """One word of a closed set: loaded as its Enum member when the set is an Enum."""

    def __init__(self, choices: type[enum.Enum] | tuple[str, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.enum = None if isinstance(choices, tuple) else choices
        self.choices = choices if isinstance(choices, tuple) else words(choices)

    def check(self, value: Any) -> enum.Enum | str:
        if not isinstance(value, str) or value not in self.choices:
            hint = suggest(value, self.choices) if isinstance(value, str) else ""
            raise ValidationError(
                f"must be one of {', '.join(self.choices)}; got {describe(value)}{hint}"
            )
        return value if self.enum is None else self.enum(value)


def _interpolated_number(value: Any) -> Any:
    """What `${VAR}` produced, read as a number when it is one ("5001" -> 5001); any
    other value as it is. A number typed in quotes stays text, and is refused."""
    if isinstance(value, Interpolated):
        text = value.strip()
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
    return value


def _whole_number(value: Any) -> int:
    value = _interpolated_number(value)
    if isinstance(value, bool) or not isinstance(value, int):
        extra = " (remove the quotes)" if isinstance(value, str) and value.isdigit() else ""
        raise ValidationError(f"must be a whole number, got {describe(value)}{extra}")
    return value


class Port(_Field):
    def check(self, value: Any) -> int:
        number = _whole_number(value)
        if not 1 <= number <= 65535:
            raise ValidationError(f"must be a port from 1 to 65535, got {number}")
        return number


class ServicePort(_Field):
    """A service's `port`: a port, or the word `auto` (loaded as AUTO_PORT)."""

    def check(self, value: Any) -> int | str:
        text = str(value).strip() if isinstance(value, Interpolated) else value
        if text == AUTO_PORT:
            return AUTO_PORT
        if isinstance(text, str) and text.strip().lower() == AUTO_PORT:
            raise ValidationError(f"must be a port from 1 to 65535 or auto, got "
                                  f"{describe(value)} (write auto in lower case)")
        if isinstance(text, str) and not text.strip().isdigit():
            raise ValidationError(
                f"must be a port from 1 to 65535 or auto, got {describe(value)}")
        return Port().check(value)


class Count(_Field):
    def check(self, value: Any) -> int:
        number = _whole_number(value)
        if number < 1:
            raise ValidationError(f"must be at least 1, got {number}")
        return number


class Seconds(_Field):
    def check(self, value: Any) -> float:
        value = _interpolated_number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"must be a number of seconds (e.g. 30), got {describe(value)}")
        if not math.isfinite(value) or value <= 0:
            raise ValidationError(f"must be a positive number of seconds, got {value}")
        return value


class Flag(_Field):
    def check(self, value: Any) -> bool:
        if isinstance(value, Interpolated) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ValidationError(f"must be true or false, got {describe(value)}")
        return value


class TextList(_Field):
    """A list of text; a single string is accepted as a one-item list."""

    def __init__(self, *, item: Callable[[str], str | None] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.item = item

    def check(self, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValidationError(f"must be a list, got {describe(value)}")
        errors: dict[int, list[str]] = {}
        for index, entry in enumerate(items):
            if not isinstance(entry, str):
                problem: str | None = f"must be text, got {describe(entry)}"
            elif not entry.strip():
                problem = "must not be empty"
            else:
                problem = self.item(entry) if self.item else None
            if problem:
                errors[index] = [problem]
        if errors:
            raise ValidationError(errors)
        return tuple(dict.fromkeys(items))  # a name listed twice means the same thing


class StopSignalChoice(Choice):
    """A signal name, with or without `SIG` (`INT` or `SIGINT`)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(StopSignal, **kw)

    def check(self, value: Any) -> enum.Enum | str:
        if isinstance(value, str) and value.upper().startswith("SIG"):
            value = value[3:]
        return super().check(value.upper() if isinstance(value, str) else value)


class Pattern(Text):
    """A regular expression (Python's `re` syntax), checked here so a bad one is a
    config error naming its key, not a crash when the first line arrives."""

    def check(self, value: Any) -> str:
        text = super().check(value)
        try:
            re.compile(text)
        except re.error as exc:
            raise ValidationError(f"is not a valid regular expression: {exc}") from None
        return text


class DependsOn(_Field):
    """`depends_on`: a list of names (each waits as before: running, and healthy when
    it has a ready_check), or a mapping of names to `{condition: WORD}`.

    Loads as a tuple of (name, Condition or None) pairs, in the order written.
    """

    #: what the mapping form's `condition` means (the JSON Schema shows it)
    condition_description = (
        "what to wait for: started (its process is running), healthy (running and its "
        "ready_check passed), completed_successfully (it ran and exited with code 0)")

    def check(self, value: Any) -> tuple[tuple[str, Condition | None], ...]:
        if isinstance(value, (str, list)):
            return tuple((name, None) for name in TextList().check(value))
        if not isinstance(value, dict):
            raise ValidationError(
                f"must be a list of service names or a mapping of names to "
                f"{{condition: ...}}, got {describe(value)}")
        errors: dict[str, Any] = {}
        pairs: list[tuple[str, Condition | None]] = []
        for name, spec in value.items():
            try:
                pairs.append((name, _condition(spec)))
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return tuple(pairs)


def _condition(spec: Any) -> Condition:
    if not isinstance(spec, dict):
        raise ValidationError(
            f"must be a mapping like {{condition: healthy}}, got {describe(spec)}")
    unknown = [k for k in spec if k != "condition"]
    if unknown:
        raise ValidationError({unknown[0]: [f"unknown key {unknown[0]!r}"
                                            f"{suggest(str(unknown[0]), ['condition'])}"]})
    if "condition" not in spec:
        raise ValidationError({"condition": [
            f"is required: one of {', '.join(words(Condition))}"]})
    try:
        condition = Choice(Condition).check(spec["condition"])
    except ValidationError as exc:
        raise ValidationError({"condition": exc.messages}) from None
    assert isinstance(condition, Condition)
    return condition


class EnvMap(_Field):
    """Env names to text values; see the module docstring for how values stay as typed."""

    def check(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValidationError(f"must be a mapping of NAME: value, got {describe(value)}")
        errors: dict[str, list[str]] = {}
        for name, item in value.items():
            problem = env_name_problem(name)
            if problem is None and item is None:
                problem = f'has no value; write {name}: "" for an empty string'
            elif problem is None and not isinstance(item, str):
                problem = f"must be a single value, not {describe(item)}"
            elif problem is None:
                problem = env_value_problem(item)
            if problem:
                errors[name] = [problem]
        if errors:
            raise ValidationError(errors)
        return dict(value)


def env_name_problem(name: str, shown: bool = True) -> str | None:
    """`shown=False` for env_file lines: what precedes `=` on a malformed line may be a
    pasted secret (`postgres://app:pw@db/x?sslmode=require`), so it is not quoted."""
    if ENV_NAME.fullmatch(name):
        return None
    what = f"invalid variable name {name!r}" if shown else "invalid variable name"
    return f"{what}: use letters, digits and '_', not starting with a digit"


def env_value_problem(value: str) -> str | None:
    """A NUL cannot be in an environment: the spawn would fail ("embedded null byte").
    The value is never quoted: it may be a secret."""
    if "\x00" in value:
        return "the value contains a NUL character, which no environment can hold"
    return None


def url_path_problem(value: str) -> str | None:
    if not value.startswith("/"):
        return f"must start with '/', got {value!r}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"must not contain spaces or control characters, got {value!r}"
    return None


def origin_problem(value: str) -> str | None:
    """`*` or `scheme://host[:port]`, exactly as browsers send the Origin header."""
    if value == "*":
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        # urlsplit drops "\n" and "\t" silently; the origin would then never match
        return f"{value!r} must not contain spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{value!r} is not an origin like http://localhost:3000"
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return f"{value!r} is not an origin like http://localhost:3000"
    if parts.path or parts.query or parts.fragment:
        return f"{value!r} is not an origin: drop the path (an origin is scheme://host[:port])"
    return None


def bus_tcp_problem(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"must be 127.0.0.1:PORT, got {value!r}"
    try:
        loopback = ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return (
            f"host must be a loopback address such as 127.0.0.1, got {host!r} "
            "(the bus has no authentication)"
        )
    return None


def absolute_problem(value: str) -> str | None:
    return None if value.startswith("/") else f"must be an absolute path, got {value!r}"


def profile_problem(name: str) -> str | None:
    if SERVICE_NAME.fullmatch(name):
        return None
    return f"invalid profile name {name!r}: use only letters, digits, '_' and '-'"


#: The manager's own events are the service of this name in `promenade logs` and in
#: the log files (`promenade.log`); logread.MANAGER_LOG.
RESERVED_SERVICE_NAME = "promenade"


def service_name_problem(name: str) -> str | None:
    if name == RESERVED_SERVICE_NAME:
        return (f"the service name {name!r} is reserved for the manager's own events "
                "(promenade logs promenade); choose another")
    if SERVICE_NAME.fullmatch(name):
        return None
    return f"invalid service name {name!r}: use only letters, digits, '_' and '-'"


class LogFilesField(_Field):
    """`manager.log_files`: `false` (off), `true` (the defaults) or a mapping with
    `max_bytes` and `keep`; loads as a LogFiles."""

    KEYS = ("max_bytes", "keep")
    #: below this a file would rotate every few lines
    MIN_BYTES = 1024

    def check(self, value: Any) -> LogFiles:
        if isinstance(value, bool):
            return LogFiles(enabled=value)
        if not isinstance(value, dict):
            raise ValidationError(
                f"must be false, true or a mapping like {{max_bytes: 10485760, keep: 3}}, "
                f"got {describe(value)}")
        errors: dict[str, list[str]] = {}
        for key in value:
            if key not in self.KEYS:
                errors[str(key)] = [f"unknown key {key!r}{suggest(str(key), self.KEYS)}"]
        found: dict[str, int] = {}
        for key, lowest in (("max_bytes", self.MIN_BYTES), ("keep", 0)):
            if key in value:
                try:
                    found[key] = _at_least(value[key], lowest)
                except ValidationError as exc:
                    errors[key] = [str(m) for m in exc.messages]
        if errors:
            raise ValidationError(errors)
        return LogFiles(enabled=True, **found)


def _at_least(value: Any, lowest: int) -> int:
    number = _whole_number(value)
    if number < lowest:
        raise ValidationError(f"must be at least {lowest}, got {number}")
    return number
