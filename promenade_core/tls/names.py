"""Which names the local CA may sign: pure rules, standard library only.

The CA carries X.509 name constraints, so that even if its key leaked it could not sign
for `bank.example`: only `localhost` and the names below it, plus the domains the user
named when the CA was made (`promenade trust --name test` for hostsd's `*.test` names).
RFC 5280 4.2.1.10: the DNS constraint `localhost` matches `localhost` and every name made
by adding labels on the left (`api.myapp.localhost`), so one entry covers both
`localhost` and `.localhost`; a leading dot is not part of the DNS form, and some
verifiers reject it, so it is never written. Every IP address is excluded: the CA never
signs an address.
"""

from __future__ import annotations

from collections.abc import Iterable

from promenade_hostsd.hostnames import hostname_problem

#: What every Promenade CA permits.
DEFAULT_DOMAINS = ("localhost",)
#: The name a client without SNI gets (curl and browsers always send SNI for a name).
DEFAULT_NAME = "localhost"
#: Public suffixes people might pass by mistake: a constraint this wide would let the
#: CA sign for real sites of that suffix.
_TOO_WIDE = frozenset({"com", "net", "org", "io", "dev", "app", "co", "uk", "de", "fr"})


class NameRefused(ValueError):
    """Why a name cannot be signed or permitted; worded for the user."""


def normalise(name: str) -> str:
    """A DNS name as certificates carry it: lowercase, no trailing dot."""
    return name.strip().rstrip(".").lower()


def domain_problem(domain: str) -> str | None:
    """Why `domain` cannot be a permitted subtree of the CA, or None."""
    clean = normalise(domain).lstrip(".")
    if clean == "localhost":
        return None
    problem = hostname_problem(clean)
    if problem is not None:
        return problem.replace("hostname", "domain", 1)
    if clean in _TOO_WIDE:
        return (f"domain {clean!r} is a public suffix: a CA for it could sign real sites; "
                "use a private one like 'test'")
    return None


def permitted_domains(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The CA's permitted DNS subtrees: the defaults plus `extra`, checked, deduplicated,
    and without any that a broader one already covers (`a.test` under `test`)."""
    wanted: list[str] = list(DEFAULT_DOMAINS)
    for domain in extra:
        problem = domain_problem(domain)
        if problem is not None:
            raise NameRefused(problem)
        wanted.append(normalise(domain).lstrip("."))
    kept = [d for d in dict.fromkeys(wanted)
            if not any(other != d and within(d, other) for other in wanted)]
    return tuple(kept)


def within(name: str, domain: str) -> bool:
    """RFC 5280 DNS matching: `name` is `domain` or ends in `.domain`."""
    name, domain = normalise(name), normalise(domain)
    return name == domain or name.endswith("." + domain)


def leaf_problem(name: object, domains: Iterable[str]) -> str | None:
    """Why the CA with these permitted `domains` must not sign `name`, or None."""
    if not isinstance(name, str):
        return "a certificate name must be a string"
    clean = normalise(name)
    problem = None if clean == "localhost" else hostname_problem(clean)
    if problem is not None:
        return problem
    allowed = tuple(domains)
    if not any(within(clean, d) for d in allowed):
        listed = ", ".join(f"*.{d}" for d in allowed)
        return (f"{clean!r} is outside this CA's name constraints ({listed}); a CA for "
                "other names is made with `promenade trust --uninstall` then "
                "`promenade trust --name DOMAIN`")
    return None


def checked_leaf_name(name: object, domains: Iterable[str]) -> str:
    """`name` normalised, or NameRefused saying why the CA must not sign it."""
    problem = leaf_problem(name, domains)
    if problem is not None:
        raise NameRefused(problem)
    assert isinstance(name, str)  # leaf_problem refused anything else
    return normalise(name)
