"""Which Origins and Hosts count as local: the drive-by rule shared by the dashboard
and the CORS proxies.

A foreign web page must neither read logs nor stop services, while pages served by the
user's own local services (any port on localhost, `*.localhost`, configured hostnames
while they are mapped to loopback: see promenade_core.hosts.mapped_names) may. Callers pass
only the mapped names as `managed`; a configured name that nothing maps is not local.
Standard library only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_local_hostname(host: str, managed: Iterable[str] = ()) -> bool:
    """True for loopback names and addresses, `*.localhost`, and the `managed` names
    (the configured hostnames mapped to loopback right now)."""
    host = host.lower().rstrip(".")
    if host in LOCAL_NAMES or host.endswith(".localhost") or _is_loopback_ip(host):
        return True
    return host in {m.lower() for m in managed}


def split_host_header(value: str) -> str:
    """The host part of a Host header value (`[::1]:9000` -> `::1`)."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_local_host_header(value: str | None, managed: Iterable[str] = ()) -> bool:
    """A request's Host header is local (DNS-rebinding guard). A missing Host is refused."""
    if not value:
        return False
    return is_local_hostname(split_host_header(value), managed)


def is_local_origin(origin: str | None, managed: Iterable[str] = ()) -> bool:
    """An Origin header is local. A request without Origin (curl, the CLI) is allowed."""
    if origin is None:
        return True
    if origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return is_local_hostname(parts.hostname, managed)


def routed_names(status: Mapping[str, object]) -> tuple[str, ...]:
    """The names a service's status object shows leading here through the router: the
    host of an `https://` URL (the manager gives the routed URL only while its name leads
    to this machine: `*.localhost`, or mapped by hostsd, or resolving to loopback) and
    the project's bare domain (the dashboard's route, `api.myapp.test` -> `myapp.test`,
    mapped on the same hostsd lease). Needed for domains outside `.localhost`, whose
    names are not local by their suffix."""
    url = status.get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        return ()
    host = (urlsplit(url).hostname or "").lower()
    if "." not in host:
        return ()
    return (host, host.split(".", 1)[1])
