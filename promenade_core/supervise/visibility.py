"""Which services' lines the terminal shows (`start --only/--hide`, the `h` key).

Only the terminal: every line still reaches the ring buffer, the bus, the dashboard and
the log files, and the manager's own messages about a hidden service still show.
"""

from __future__ import annotations

from collections.abc import Iterable


def split_names(values: Iterable[str]) -> list[str]:
    """`--hide a,b --hide c` as ['a', 'b', 'c'] (empty pieces dropped, order kept)."""
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


def unknown_names(names: Iterable[str], known: Iterable[str]) -> list[str]:
    known_set = set(known)
    return [name for name in names if name not in known_set]


class Visibility:
    """`only`: when given, the services shown (a service added later is hidden);
    `hidden`: services hidden on top of that. A toggle moves a name in or out of
    whichever set decides it, so `--only api` then showing `worker` shows both."""

    def __init__(self, only: Iterable[str] | None = None, hidden: Iterable[str] = ()) -> None:
        self.only: set[str] | None = set(only) if only is not None else None
        self.hidden: set[str] = set(hidden)

    def shows(self, service: str) -> bool:
        if service in self.hidden:
            return False
        return self.only is None or service in self.only

    def toggle(self, service: str) -> bool:
        """Hide a shown service or show a hidden one; returns whether it is shown now."""
        if self.shows(service):
            self.hidden.add(service)
            return False
        self.hidden.discard(service)
        if self.only is not None:
            self.only.add(service)
        return True

    def show_all(self) -> None:
        self.only = None
        self.hidden.clear()
