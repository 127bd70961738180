"""What the manager shows of secrets: masked wherever the config or a status is shown.

The config, the status objects and the bus documents are read by the dashboard, the
CLI and any local script, and end up in screenshots and bug reports. A value is
masked when its key looks secret (the key stays, so the user sees which one is set),
when it is the password part of a URL (`postgres://app:****@db/app`), and, inside a
service's `command`, when it is assigned inline to a secret-looking name
(`STRIPE_SECRET=**** python app.py`, `export TOKEN=****;`, `--password=****`,
`--token ****`).

Pure functions over text, standard library only; every regex is linear (no two ways to
match the same character), because a command or an env value is user input of any
length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH")
MASK = "****"

#: `scheme://user:password@`: the scheme starts a word (so a match is tried once per
#: word), user and password stop at `/` or whitespace; the password runs to the last
#: `@` of the authority, as URL parsers read it.
_URL_CREDENTIALS = re.compile(
    r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:)([^\s/]*)@"
)

#: One shell word: quoted parts (an unterminated quote runs to the end), escapes, and
#: plain characters up to whitespace or a command separator.
_WORD = r"""(?:'[^']*'?|"(?:[^"\\]|\\.)*"?|\\.|[^\s;&|'"\\`)])*"""
#: `NAME=word` at the start of a shell word (`export NAME=…`, `env NAME=…` included)
#: and `--name=word` / `-name=word` options.
_ASSIGNMENT = re.compile(
    r"(?<![^\s;&|(`])(--?[A-Za-z][A-Za-z0-9_.-]*|[A-Za-z_][A-Za-z0-9_]*)=(" + _WORD + ")"
)


#: `--name value` / `-name value`: the next word, unless it is an option itself.
_OPTION_VALUE = re.compile(
    r"(?<![^\s;&|(`])(--?[A-Za-z][A-Za-z0-9_.-]*)([ \t]+)(?![-;&|)])(" + _WORD + ")"
)


def is_secret_key(key: str) -> bool:
    """A key whose value is a secret: it contains SECRET, TOKEN, PASSWORD, PASSWD, KEY,
    CREDENTIAL or AUTH, in any case."""
    upper = key.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def _mask_password(match: re.Match[str]) -> str:
    return f"{match.group(1)}{MASK}@" if match.group(2) else match.group(0)


def mask_url_credentials(text: str) -> str:
    """Every `scheme://user:password@` in `text` as `scheme://user:****@`."""
    if "://" not in text:
        return text
    return _URL_CREDENTIALS.sub(_mask_password, text)


def _mask_assignment(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    if not value or not is_secret_key(name.lstrip("-")):
        return match.group(0)
    return f"{name}={MASK}"


def _mask_option_value(match: re.Match[str]) -> str:
    name, space, value = match.groups()
    if not value or not is_secret_key(name.lstrip("-")):
        return match.group(0)
    return f"{name}{space}{MASK}"


def mask_command(command: str) -> str:
    """A shell command with inline secrets masked: values given to secret-looking names
    (`API_TOKEN=…`, `--password=…`, `--token …`) and URL passwords. Display only: an
    option named like a secret whose value is not one (`--key-file k.pem`) is masked
    too, which costs nothing but a less informative status line."""
    if "=" in command:
        command = _ASSIGNMENT.sub(_mask_assignment, command)
    if "-" in command:
        command = _OPTION_VALUE.sub(_mask_option_value, command)
    return mask_url_credentials(command)


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    """Env with secret-looking keys' values replaced by `****` (keys stay) and URL
    passwords masked in every other value."""
    return {k: (MASK if is_secret_key(k) else mask_url_credentials(v) if isinstance(v, str)
                else v)
            for k, v in env.items()}


def mask_config(value: Any) -> Any:
    """A copy of a config or status document with every secret masked.

    Every mapping under a key that names an environment (`env`, `own_env`, ...) goes
    through mask_env, every `command` through mask_command, any other text whose key
    looks secret becomes `****`, and URL passwords are masked in all remaining text:
    the documents may grow new fields, and those must not leak by default.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if "env" in name.lower() and isinstance(item, dict):
                out[key] = mask_env({str(k): v for k, v in item.items()})
            elif isinstance(item, str) and name == "command":
                out[key] = mask_command(item)
            elif isinstance(item, str) and is_secret_key(name):
                out[key] = MASK
            else:
                out[key] = mask_config(item)
        return out
    if isinstance(value, list):
        return [mask_config(item) for item in value]
    if isinstance(value, str):
        return mask_url_credentials(value)
    return value
