"""Step 4 of loading promenade.yaml: rules across fields and services.

Every port is claimed once (the dashboard, the TCP bus, each service, each CORS proxy;
`port: auto` claims none: the supervisor picks it free at each start), hostnames are
unique, and `depends_on` names existing services without cycles. Each
problem is reported once, on the line of the setting that collides with an earlier one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from promenade_core.config.choices import Condition
from promenade_core.config.fields import suggest
from promenade_core.config.model import ManagerConfig
from promenade_core.config.source import Path_


class Reporter(Protocol):
    def add(self, path: Path_, message: str) -> None: ...

    def raw(self, *path: str) -> Any: ...


def validate(state: Reporter, manager: ManagerConfig, services: dict[str, dict[str, Any]]) -> None:
    """Check rules that look at several fields or services at once.

    `services` maps names to ServiceConfig keyword arguments; fields that failed step 2
    hold their defaults, so rules that need a field ask `state.raw` whether the user
    wrote it, to avoid a second, misleading problem about the same line.
    """
    for name, svc in services.items():
        _check_needs_port(state, name, svc, manager.router)
    _check_ports(state, manager, services)
    _check_hostnames(state, services)
    _check_dependencies(state, services)


def _check_needs_port(state: Reporter, name: str, svc: dict[str, Any],
                      routed: bool = False) -> None:
    """hostname, ready_check and cors_proxy all point at the service's port (a number or
    `auto`); an auto port is the PORT the service gets, so its own env may not set one.
    With the router on (`routed`) a cors_proxy service without a `hostname` has its
    policy applied on its routed name, so its second port is optional."""
    prefix = ("services", name)
    has_port = state.raw(*prefix, "port") is not None
    if svc.get("port_auto") and "PORT" in svc.get("own_env", {}):
        state.add((*prefix, "env", "PORT"),
                  "port: auto exports the port it picks as PORT; setting PORT here would "
                  "make the service listen where Promenade never looks (remove one)")
    if svc["hostname"] and not has_port:
        state.add(
            (*prefix, "hostname"), "a hostname needs a 'port' (the port the service listens on)"
        )
    check = svc["ready_check"]
    if check and check.needs_port and not has_port:
        state.add((*prefix, "ready_check"),
                  f"a ready_check of type {check.type} needs a 'port' to check")
    if svc["cors_proxy"]:
        if not has_port:
            state.add((*prefix, "cors_proxy"), "cors_proxy needs a 'port' to forward to")
        on_router = routed and not svc["hostname"]
        if state.raw(*prefix, "cors_proxy_port") is None and not on_router:
            state.add((*prefix, "cors_proxy"),
                      "cors_proxy needs a 'cors_proxy_port' to listen on (or the router: "
                      "manager.router: true and no hostname)")


def _check_ports(
    state: Reporter, manager: ManagerConfig, services: dict[str, dict[str, Any]]
) -> None:
    """Every port is claimed once: the dashboard, the TCP bus, services, CORS proxies."""
    claims: list[tuple[int, Path_, str]] = []
    written = state.raw("manager", "port")
    if written is None:
        label = f"the dashboard (manager.port is {manager.port} by default; set another)"
        claims.append((manager.port, ("manager", "port"), label))
    elif written == manager.port:  # else it was invalid and already reported
        claims.append((manager.port, ("manager", "port"), "manager.port (the dashboard)"))
    if manager.bus_tcp:
        port = int(manager.bus_tcp.rpartition(":")[2])
        claims.append((port, ("manager", "bus_tcp"), "manager.bus_tcp"))
    for name, svc in services.items():
        if svc["port"] is not None:
            claims.append((svc["port"], ("services", name, "port"), f"service {name!r}"))
    for name, svc in services.items():
        if svc["cors_proxy_port"] is not None:
            label = f"the CORS proxy of service {name!r}"
            claims.append((svc["cors_proxy_port"], ("services", name, "cors_proxy_port"), label))
    owners: dict[int, str] = {}
    for port, path, label in claims:
        if port in owners:
            state.add(path, f"port {port} is already used by {owners[port]}")
        else:
            owners[port] = label


def _check_hostnames(state: Reporter, services: dict[str, dict[str, Any]]) -> None:
    owners: dict[str, str] = {}
    for name, svc in services.items():
        hostname = svc["hostname"]
        if not hostname:
            continue
        other = owners.setdefault(hostname.lower(), name)
        if other != name:
            state.add(
                ("services", name, "hostname"),
                f"hostname {hostname!r} is already used by service {other!r}",
            )


def _check_dependencies(state: Reporter, services: dict[str, dict[str, Any]]) -> None:
    """Unknown names, self-references, `healthy` without a check, and cycles (each
    cycle reported once)."""
    graph: dict[str, list[str]] = {}
    for name, svc in services.items():
        graph[name] = []
        mapping = isinstance(state.raw("services", name, "depends_on"), dict)
        for index, dep in enumerate(svc["depends_on"]):
            path: Path_ = ("services", name, "depends_on", dep if mapping else index)
            if dep == name:
                state.add(path, f"service {name!r} cannot depend on itself")
            elif dep not in services:
                state.add(path, f"unknown service {dep!r}{suggest(dep, list(services))}")
            else:
                graph[name].append(dep)
                if (svc.get("conditions", {}).get(dep) == Condition.HEALTHY
                        and services[dep].get("ready_check") is None):
                    state.add((*path, "condition"),
                              f"condition healthy needs a ready_check on service {dep!r}")
    for cycle in find_cycles(graph):
        state.add(("services", cycle[0], "depends_on"), f"dependency cycle: {' -> '.join(cycle)}")


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle per back edge of a depth-first search, rotated to start at the node that
    comes first in `graph`'s order: `[a, b, a]`. Iterative, so long chains are fine."""
    order = {name: i for i, name in enumerate(graph)}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []
    for root in graph:
        if root in state:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                loop = [n for n, _ in stack][[n for n, _ in stack].index(child) :]
                start = min(range(len(loop)), key=lambda i: order[loop[i]])
                loop = loop[start:] + loop[:start]
                cycles.append([*loop, loop[0]])
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(graph[child])))
    return cycles
