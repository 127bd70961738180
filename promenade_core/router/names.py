"""The manager's side of named URLs, as pure decisions: the project's domain, the name
each service gets on the router, the routes a manager holds and the URLs they give.

`manager.domain` (default: the config folder's name + `.localhost`) gives every service
that has a port the name `SERVICE.DOMAIN`, unless it sets `hostname` (that service keeps
today's URL). The dashboard gets the bare domain. A `*.localhost` domain needs nothing
more: browsers and curl resolve its names to loopback with no hosts entry. Any other domain
(`myapp.test`) works like a service `hostname`: its names are mapped to loopback through
hostsd (`hosts_entry_name`), and the local CA must permit it (`ca_domain`). Standard
library only, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from promenade_core.config.model import ManagerConfig, ServiceConfig
from promenade_core.router.protocol import RouteWire

SUFFIX = ".localhost"
MAX_LABEL = 63
MAX_NAME = 253
#: what a folder name becomes when nothing usable is left of it (`___`, `...`)
FALLBACK_LABEL = "promenade"
#: the dashboard's route names this service (the reserved name of the manager's events)
DASHBOARD_SERVICE = "promenade"
HTTPS_PORT = 443
#: Vite >= 6 refuses requests whose Host is not allowed; it adds this variable's host
#: (set by tools that put Vite behind a name of their own) to `server.allowedHosts`
VITE_ALLOWED_HOSTS = "__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS"

_INVALID = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class ServiceView:
    """What the route of one service depends on, as the supervisor sees it now."""

    config: ServiceConfig
    port: int | None          # the run's port (`port: auto`: the one picked)
    status: str
    status_reason: str | None


def label(text: str) -> str:
    """`text` as one RFC 1123 label: lower-case, anything else to `-`, no `-` at either
    end, at most 63 characters; empty when nothing usable is left."""
    cleaned = _INVALID.sub("-", text.lower()).strip("-")
    return cleaned[:MAX_LABEL].rstrip("-")


def default_domain(folder: Path) -> str:
    """`~/code/My_App/promenade.yaml` -> `my-app.localhost`."""
    return f"{label(folder.name) or FALLBACK_LABEL}{SUFFIX}"


def domain_problem(value: str) -> str | None:
    """Why `value` cannot be `manager.domain`: a valid RFC 1123 name of at least two
    labels (a project's own label and a suffix: `localhost`, `test` or `com` alone would
    claim every name below it). A domain under a public suffix (`myapp.dev`) is
    accepted: the CA is then asked for that domain alone (`ca_domain`)."""
    from promenade_hostsd.hostnames import hostname_problem

    problem = hostname_problem(value)
    if problem is not None:
        return problem
    if "." not in value:
        return (f"domain {value!r} needs a label of its own before its suffix, "
                "e.g. 'myapp.localhost' or 'myapp.test'")
    return None


def needs_hosts_entry(name: str) -> bool:
    """Whether `name` reaches this machine only through a hosts entry: every name but
    `*.localhost`, which browsers and curl resolve to loopback by themselves."""
    return not name.lower().endswith(SUFFIX)


def hosts_entry_name(manager: ManagerConfig, svc: ServiceConfig) -> str | None:
    """The name hostsd maps for `svc` while it runs: its `hostname` as always, else its
    routed name when the domain is not `*.localhost` (None when nothing is mapped)."""
    if svc.hostname:
        return svc.hostname
    name = routed_name(manager, svc)
    return name if name is not None and needs_hosts_entry(name) else None


def dashboard_entry_name(manager: ManagerConfig) -> str | None:
    """The bare domain (the dashboard's route) when it needs a hosts entry."""
    if not manager.router or not needs_hosts_entry(manager.domain):
        return None
    return manager.domain.lower()


def ca_domain(domain: str) -> str | None:
    """The subtree the local CA must permit for `domain`'s names; None for
    `*.localhost` (every CA permits it). The domain's suffix (`myapp.test` -> `test`, so
    one CA made with `promenade trust --name test` serves every `.test` project), or the
    domain itself when its suffix is a public one the CA must never cover
    (`myapp.dev` -> `myapp.dev`)."""
    from promenade_core.tls.names import domain_problem as ca_problem

    clean = domain.lower().rstrip(".")
    if not needs_hosts_entry(clean):
        return None
    suffix = clean.rsplit(".", 1)[-1]
    return suffix if ca_problem(suffix) is None else clean


def routed_name(manager: ManagerConfig, svc: ServiceConfig) -> str | None:
    """`SERVICE.DOMAIN` for a service with a port and no `hostname`; None when the
    router is off, the service has no port, sets its own hostname, or its name leaves
    no usable label (or too long a name)."""
    if not manager.router or not svc.has_port or svc.hostname:
        return None
    own = label(svc.name)
    name = f"{own}.{manager.domain.lower()}"
    return name if own and len(name) <= MAX_NAME else None


def route_set(manager: ManagerConfig, services: Iterable[ServiceView],
              dashboard_port: int | None) -> list[RouteWire]:
    """Every route this manager holds: one per routed service (its current port and
    status, so the router can say why it is not up; a `cors_proxy` service's CORS
    policy, so its routed name answers browsers as its proxy does) and the dashboard at
    the bare domain. Two services whose names give the same label (`a_b`, `a-b`): the first in
    config order keeps it."""
    if not manager.router:
        return []
    routes: dict[str, RouteWire] = {}
    if dashboard_port is not None:
        bare = manager.domain.lower()
        routes[bare] = _route(bare, dashboard_port, DASHBOARD_SERVICE, "running", None)
    for view in services:
        name = routed_name(manager, view.config)
        if name is not None and name not in routes:
            routes[name] = _route(name, view.port, view.config.name, view.status,
                                  view.status_reason)
            if view.config.cors_proxy:
                routes[name]["cors_allow_origins"] = list(view.config.cors_allow_origins)
    return list(routes.values())


def _route(name: str, port: int | None, service: str, status: str,
           reason: str | None) -> RouteWire:
    return {"name": name, "port": port, "service": service, "status": status,
            "status_reason": reason, "tls": True}


def url(name: str, https_port: int) -> str:
    """`https://api.myapp.localhost`, with the router's port when it is not 443."""
    return f"https://{name}" if https_port == HTTPS_PORT else f"https://{name}:{https_port}"

