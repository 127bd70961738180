"""Who holds which name: the routes of every control connection, pure (no I/O).

A connection's routes are a lease: `replace` swaps the whole set (refused whole when a
name is held by another connection), `drop` removes them all when the connection
closes. Lookups are by name, as the Host header gives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from promenade_core.router.protocol import ProtocolError, Route


@dataclass
class Holder:
    """One control connection: the manager behind it and its routes."""

    pid: int
    project: str
    routes: tuple[Route, ...] = ()


@dataclass
class Registry:
    holders: dict[int, Holder] = field(default_factory=dict)
    _by_name: dict[str, tuple[int, Route]] = field(default_factory=dict)

    def hello(self, conn: int, pid: int, project: str) -> None:
        """Registers a connection (again: a second hello only renames it)."""
        holder = self.holders.get(conn)
        if holder is None:
            self.holders[conn] = Holder(pid, project)
        else:
            holder.pid, holder.project = pid, project

    def replace(self, conn: int, routes: tuple[Route, ...]) -> None:
        """Gives `conn` exactly `routes`; ProtocolError `name_taken` changes nothing."""
        holder = self.holders[conn]
        for route in routes:
            owner = self._by_name.get(route.name)
            if owner is not None and owner[0] != conn:
                other = self.holders[owner[0]]
                raise ProtocolError(
                    "name_taken", f"{route.name!r} is already served for {other.project} "
                    f"(manager pid {other.pid}); stop that project or choose another name")
        self._forget(holder.routes)
        holder.routes = routes
        for route in routes:
            self._by_name[route.name] = (conn, route)

    def drop(self, conn: int) -> None:
        holder = self.holders.pop(conn, None)
        if holder is not None:
            self._forget(holder.routes)

    def lookup(self, name: str) -> Route | None:
        held = self._by_name.get(name)
        return None if held is None else held[1]

    def routes(self) -> list[Route]:
        return sorted((route for _conn, route in self._by_name.values()),
                      key=lambda route: route.name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def _forget(self, routes: tuple[Route, ...]) -> None:
        for route in routes:
            self._by_name.pop(route.name, None)
