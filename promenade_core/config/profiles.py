"""Profiles: which services `promenade start` starts, given the active profiles and the
names asked for, and the words a service left stopped shows for it.

Pure (no I/O, no gevent): the CLI checks the names given with it before anything
forks, and the supervisor asks it what to start, at start and after a reload.

The rules, from docker compose where they fit a developer's expectation:
- a service without `profiles` is always active; one with `profiles` is active when one
  of them is;
- `promenade start` starts every active autostart service and what those depend on,
  whatever the dependencies' profiles and autostart say (compose refuses to start a
  service whose dependency is in an inactive profile; we start the dependency, as we
  do for an `autostart: false` one: a service that cannot run without it is not better
  served by an error);
- named services (`promenade start docs`) start with what they depend on, active or not.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from promenade_core.config.model import FrozenMap, ServiceConfig, dependants, with_dependencies
from promenade_core.errors import EXIT_USAGE, PromenadeError

#: The environment variable that activates profiles, comma-separated, like compose's
#: COMPOSE_PROFILES; combined with `--profile`.
ENV_PROFILES = "PROMENADE_PROFILES"

#: The reason of a service `promenade start api web` did not name.
NOT_NAMED = "not started: not named on the command line (start it by hand)"


class UnknownProfileError(PromenadeError):
    """A profile asked for that no service has (a typo, most likely)."""

    exit_code = EXIT_USAGE


def parse_profiles(values: Iterable[str]) -> tuple[str, ...]:
    """The profile names in `--profile a,b --profile c` and PROMENADE_PROFILES=a,b:
    split on commas, blanks dropped, each name once, in the order first given."""
    names = (part.strip() for value in values for part in value.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def known_profiles(services: Mapping[str, ServiceConfig]) -> tuple[str, ...]:
    """Every profile some service has, sorted."""
    return tuple(sorted({p for svc in services.values() for p in svc.profiles}))


def check_profiles(active: Iterable[str], services: Mapping[str, ServiceConfig]) -> None:
    """Refuse a profile no service has, naming the known ones: a misspelt profile would
    otherwise start nothing of what the user wanted, silently."""
    known = known_profiles(services)
    for name in active:
        if name not in known:
            raise UnknownProfileError(_unknown_message(name, known))


def _unknown_message(name: str, known: tuple[str, ...]) -> str:
    message = f"unknown profile {name!r} (known: {', '.join(known) or 'none'})"
    close = difflib.get_close_matches(name, known, n=1)
    return message + (f"; did you mean {close[0]!r}?" if close else "")


def is_active(svc: ServiceConfig, active: Collection[str]) -> bool:
    """No profiles: always; else when one of its profiles is active."""
    return not svc.profiles or any(p in active for p in svc.profiles)


def inactive_reason(svc: ServiceConfig, active: Collection[str]) -> str | None:
    """`profile docs not active` (`profiles debug, docs not active`), or None when the
    service is active."""
    if is_active(svc, active):
        return None
    noun = "profile" if len(svc.profiles) == 1 else "profiles"
    return f"{noun} {', '.join(svc.profiles)} not active"


def default_targets(services: Mapping[str, ServiceConfig],
                    active: Collection[str]) -> tuple[str, ...]:
    """What `promenade start` without names asks for: the active autostart services
    (also what a `wait` without names waits for)."""
    return tuple(name for name, svc in services.items()
                 if svc.autostart and is_active(svc, active))


@dataclass(frozen=True)
class Selection:
    """What `start_all` does: which services start, and why each other one does not."""

    #: the services to start, dependencies first
    start: tuple[str, ...]
    #: the status reason of a service left stopped, where the selection knows it
    #: (services only `autostart: false` keep their own reason)
    reasons: Mapping[str, str] = field(default_factory=FrozenMap)
    #: inactive services started because an active or named one needs them, each with
    #: the services among `start` that depend on it directly
    pulled_in: Mapping[str, tuple[str, ...]] = field(default_factory=FrozenMap)


def select(services: Mapping[str, ServiceConfig], active: Collection[str],
           targets: Collection[str] | None = None) -> Selection:
    """The services to start for `targets` (None: the active autostart ones) and
    everything they depend on. A service left stopped is explained by its profile
    when it is inactive (that stays true whatever is named), else by not being named."""
    wanted = default_targets(services, active) if targets is None else tuple(targets)
    start = with_dependencies(services, wanted)
    reasons: dict[str, str] = {}
    for name, svc in services.items():
        if name in start:
            continue
        reason = inactive_reason(svc, active)
        if reason is None and targets is not None:
            reason = NOT_NAMED
        if reason is not None:
            reasons[name] = reason
    users = dependants(services)
    pulled_in = {name: tuple(u for u in users[name] if u in start)
                 for name in start
                 if name not in wanted and not is_active(services[name], active)}
    return Selection(start, FrozenMap(reasons), FrozenMap(pulled_in))


def reason_after_reload(old: ServiceConfig, new: ServiceConfig, active: Collection[str],
                        reason: str | None) -> str | None:
    """The reason a stopped service shows once a reload changed its `profiles`, which
    starts and stops nothing: the new profile's words where it is now inactive; where
    a profile's words were shown and it is active now, that it can be started by hand;
    any other reason (an exit, `autostart: false`) stands."""
    now = inactive_reason(new, active)
    if now is not None:
        return now
    if reason is not None and reason == inactive_reason(old, active):
        return "not started: its profiles changed while running (start it by hand)"
    return reason
