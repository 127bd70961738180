"""The CORS proxies of a config's services, started and stopped with their service and
reconfigured in place by a hot reload. A proxy forwards to `Service.port`, the port of
the run it was opened for: with `port: auto` each start may pick another, and each
start opens the proxy anew."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from promenade_core.bus.protocol import Emit
from promenade_core.config.model import ServiceConfig
from promenade_core.errors import PromenadeError
from promenade_core.supervise.service import Service
from promenade_core.supervise.states import ALIVE

if TYPE_CHECKING:
    from promenade_core.proxy.server import CorsProxy


class Proxies:
    """Follows the supervisor's service events (its Attachments protocol)."""

    def __init__(self, emit: Emit,
                 hostnames: Callable[[], Iterable[str]]) -> None:
        self._emit = emit
        self._hostnames = hostnames
        self._proxies: dict[str, CorsProxy] = {}

    def _open(self, service: Service) -> None:
        svc, port = service.config, service.port
        if not (svc.cors_proxy and svc.cors_proxy_port and port):
            return
        # Imported here: h11 and the relay cost memory only in configs that use a proxy.
        from promenade_core.proxy.server import CorsProxy

        try:
            proxy = CorsProxy(service.name, svc.cors_proxy_port, port,
                              svc.cors_allow_origins, self._hostnames,
                              warn=lambda message: self._emit(message, "warning",
                                                              service=service.name))
            proxy.start()
        except PromenadeError as exc:
            self._emit(f"{service.name}: CORS proxy not started: {exc}", "error",
                       service=service.name)
            return
        self._proxies[service.name] = proxy
        self._emit(f"{service.name}: CORS proxy on http://127.0.0.1:{svc.cors_proxy_port} "
                   f"-> {port}", "info", service=service.name)

    def _close(self, name: str) -> None:
        proxy = self._proxies.pop(name, None)
        if proxy is not None:
            proxy.stop()

    def on_started(self, service: Service) -> None:
        if service.name not in self._proxies:
            self._open(service)

    def on_stopped(self, service: Service) -> None:
        self._close(service.name)

    def on_updated(self, service: Service, old: ServiceConfig) -> None:
        new = service.config
        proxy = self._proxies.get(service.name)
        if proxy is not None and new.cors_proxy and new.cors_proxy_port == old.cors_proxy_port:
            if service.port is not None:
                proxy.reconfigure(service.port, new.cors_allow_origins)
            return
        self._close(service.name)
        if service.status in ALIVE:
            self._open(service)

    def close(self) -> None:
        for name in list(self._proxies):
            self._close(name)
