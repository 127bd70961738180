"""The hostname rule (RFC 1123), shared by hostsd and the config checker.

Kept in hostsd's package, standard library only, so that `promenade config check`
refuses what the root helper would refuse. One difference, on purpose: `*.localhost`
is a fine hostname for a service (browsers and curl resolve it to loopback by
themselves, RFC 6761 6.3, and treat it as a secure context), but it needs no hosts
entry, so hostsd never writes one (`entry_problem`).
"""

from __future__ import annotations

import re

MAX_NAME = 253
MAX_LABEL = 63
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")  # fullmatch: `$` allows "\n"


def hostname_problem(name: object) -> str | None:
    """Return why `name` is not a valid RFC 1123 hostname, or None when it is."""
    if not isinstance(name, str):
        return "hostname must be a string"
    if not name:
        return "hostname is empty"
    if not name.isascii():
        return f"hostname {name!r} has non-ASCII characters"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in name):
        return f"hostname {name!r} has whitespace or control characters"
    if len(name) > MAX_NAME:
        return f"hostname is {len(name)} characters long; at most {MAX_NAME} are allowed"
    for label in name.split("."):
        if not label:
            return f"hostname {name!r} has an empty label"
        if len(label) > MAX_LABEL:
            return f"hostname {name!r} has a label over {MAX_LABEL} characters"
        if not _LABEL.fullmatch(label):
            return (
                f"hostname {name!r}: label {label!r} may hold only letters, digits and "
                "inner hyphens"
            )
    if label.isdigit():  # the last label: RFC 1123 2.1 keeps names apart from addresses
        return f"hostname {name!r} looks like an IP address; end it with a name like '.test'"
    if name.lower() == "localhost":
        return f"hostname {name!r} is reserved; use a name like 'api.localhost'"
    return None


def resolves_by_itself(name: str) -> bool:
    """`*.localhost`: loopback without any hosts entry (not through glibc, though)."""
    return name.lower().endswith(".localhost")


def entry_problem(name: object) -> str | None:
    """What hostsd refuses to write: an invalid name, or one that needs no entry."""
    problem = hostname_problem(name)
    if problem is None and resolves_by_itself(str(name)):
        return f"hostname {name!r} needs no hosts entry: *.localhost is loopback by itself"
    return problem
