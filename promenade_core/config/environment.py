"""The environment a service's process gets, computed once for the supervisor and for
`promenade run`, so that a one-off command sees exactly what the service would.

Precedence, weakest first: the caller's environment (the manager's, or the shell that
runs `promenade run`) < `.env` < `defaults.env` < `env_file` < the service's `env:`
(load.py has already merged those four into `ServiceConfig.env`). `PORT` is the
service's port unless its own `env:` sets PORT: a PORT left in the user's shell or
in `.env` (honcho's base port) would otherwise give every service the same port, and
the service would listen where Promenade neither checks nor probes. The port is the
run's: `port:` as written, or for `port: auto` the one picked for this start (the
caller passes it; supervise/autoport.py picks it).

The supervisor adds its instance markers on top (supervise/osproc.py); a one-off
command does not get them, so a running manager never takes it for a leftover of its
own services. Standard library only, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from promenade_core.config.model import Config, ServiceConfig

PORT = "PORT"


def service_environment(service: ServiceConfig, base: Mapping[str, str],
                        port: int | None = None) -> dict[str, str]:
    """`base` < the service's merged env, with PORT from `port` (the run's port), else
    from `port:` (see the module)."""
    env = dict(base)
    env.update(service.env)
    port = service.port if port is None else port
    if port is not None and PORT not in service.own_env:
        env[PORT] = str(port)
    return env


def project_environment(config: Config, base: Mapping[str, str]) -> dict[str, str]:
    """What no particular service adds: `base` < `.env` < `defaults.env`."""
    return {**base, **config.dotenv_values, **config.defaults.env}
