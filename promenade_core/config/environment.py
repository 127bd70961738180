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

A service with a name on the router (`SERVICE.DOMAIN`, router/names.py) also gets
`__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS=SERVICE.DOMAIN`: Vite >= 6 answers 403 to a
Host it does not know, and this is the variable it reads for one more allowed host.
As with PORT, the service's own `env:` wins.

A service on pipes (`tty: false`, the default) also gets PIPE_VARIABLES: tools that
colour only on a terminal honour FORCE_COLOR (Node's chalk/picocolors, Vite, rich),
CLICOLOR_FORCE or PY_COLORS (pytest) instead, and Python flushes every line at once
rather than 8 KiB blocks. They are set only where neither the service nor the user set
them, and the colour ones not at all when NO_COLOR is set. `promenade run` does not add
them: its command writes to the user's own terminal or pipe.

The supervisor adds its instance markers on top (supervise/osproc.py); a one-off
command does not get them, so a running manager never takes it for a leftover of its
own services. Standard library only, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from promenade_core.config.model import Config, ManagerConfig, ServiceConfig
from promenade_core.router.names import VITE_ALLOWED_HOSTS, routed_name

PORT = "PORT"
NO_COLOR = "NO_COLOR"
#: Colour on, for the tools that decide by these rather than by isatty().
COLOUR_VARIABLES = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1", "PY_COLORS": "1"}
#: What a service whose output is a pipe gets (see the module).
PIPE_VARIABLES = {**COLOUR_VARIABLES, "PYTHONUNBUFFERED": "1"}


def service_environment(service: ServiceConfig, base: Mapping[str, str],
                        port: int | None = None,
                        manager: ManagerConfig | None = None) -> dict[str, str]:
    """`base` < the service's merged env, with PORT from `port` (the run's port), else
    from `port:`, and with `manager` its routed name for Vite (see the module)."""
    env = dict(base)
    env.update(service.env)
    port = service.port if port is None else port
    if port is not None and PORT not in service.own_env:
        env[PORT] = str(port)
    name = routed_name(manager, service) if manager is not None else None
    if name is not None and VITE_ALLOWED_HOSTS not in service.own_env:
        env[VITE_ALLOWED_HOSTS] = name
    return env


def project_environment(config: Config, base: Mapping[str, str]) -> dict[str, str]:
    """What no particular service adds: `base` < `.env` < `defaults.env`."""
    return {**base, **config.dotenv_values, **config.defaults.env}


def with_pipe_variables(env: Mapping[str, str]) -> dict[str, str]:
    """`env` plus PIPE_VARIABLES it does not set; no colour ones under NO_COLOR
    (https://no-color.org: set and not empty)."""
    added = {key: value for key, value in PIPE_VARIABLES.items() if key not in env}
    if env.get(NO_COLOR):
        added = {key: value for key, value in added.items()
                 if key not in COLOUR_VARIABLES}
    return {**env, **added}
