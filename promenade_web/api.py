"""The REST API of SPEC.md, each endpoint one control command on the bus.

The web process keeps no state of its own here: the manager is the only source of
truth, so `promenade status` and `/api/status` can never disagree.
"""

from __future__ import annotations

from typing import Any

import gevent.lock
from flask import Blueprint, Response, current_app, jsonify, request

from promenade_core.bus import protocol
from promenade_core.masking import mask_config
from promenade_core.supervise import waiting
from promenade_web.errors import error_response
from promenade_web.hub import spec_lines

bp = Blueprint("api", __name__, url_prefix="/api")

ACTIONS = ("start", "stop", "restart")
#: The bus request of a wait outlives the wait itself by this much (seconds).
WAIT_MARGIN = 10.0
#: GET /api/wait's status when the services are not all up (failed or timed out): the
#: request was fine, the services' state conflicts with it; the body says which.
NOT_UP = 409
#: Waits in flight at once: each holds one of the bus pool's sockets (promenade_web.bus,
#: 8) for up to its timeout, and the dashboard's own requests need the rest.
MAX_WAITS = 4
BUSY = "busy"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


class BadParameter(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def bus_request(cmd: str, **args: Any) -> Any:
    return current_app.extensions["promenade"].request(cmd, **args)


def int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise BadParameter(f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def bool_arg(name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    word = raw.lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise BadParameter(f"{name} must be true or false, got {raw!r}")


@bp.errorhandler(BadParameter)
def bad_parameter(exc: BadParameter) -> Response:
    return error_response(400, protocol.BAD_REQUEST, exc.message)


@bp.get("/status")
def status() -> Response:
    return jsonify(bus_request("status"))


@bp.get("/services/<name>")
def service(name: str) -> Response:
    return jsonify(bus_request("service", service=name))


@bp.post("/services/<name>/<action>")
def control(name: str, action: str) -> Response:
    if action not in ACTIONS:
        return error_response(
            404, "not_found",
            f"unknown action {action!r} for service {name!r}; use one of {', '.join(ACTIONS)}",
        )
    wait = bool_arg("wait", True)
    return jsonify(bus_request(action, service=name, wait=wait))


@bp.get("/services/<name>/logs")
def logs(name: str) -> Response:
    args: dict[str, Any] = {"service": name}
    for key in ("tail", "since"):
        value = int_arg(key)
        if value is not None:
            args[key] = value
    result = bus_request("logs", **args)
    # SPEC.md's REST shape has one object per line: messages are unpacked here only.
    lines = [entry for message in result["messages"] for entry in spec_lines(message)]
    return jsonify({"service": name, "seq": result["seq"], "lines": lines})


@bp.get("/services/<name>/history")
def history(name: str) -> Response:
    """Lines from the log files (older than the buffer holds, or a search): `before`
    (a timestamp), `skip` (lines stamped exactly `before` the page has already),
    `limit`, `grep` (a regex), `ignore_case`. `promenade` is the manager's events."""
    args: dict[str, Any] = {"service": name}
    for key in ("skip", "limit"):
        value = int_arg(key)
        if value is not None:
            args[key] = value
    for key in ("before", "grep"):
        if request.args.get(key):
            args[key] = request.args[key]
    args["ignore_case"] = bool_arg("ignore_case", False)
    return jsonify(bus_request("log_history", **args))


@bp.post("/restart-all")
def restart_all() -> Response:
    return jsonify(bus_request("restart_all"))


@bp.get("/config")
def config() -> Response:
    result = bus_request("config")
    # The manager masks its document already; masking again costs little and keeps
    # the page safe should a manager of another version not do it.
    return jsonify(mask_config(result))


@bp.post("/reload")
def reload() -> Response:
    result: protocol.ReloadResult = bus_request("reload", dry_run=bool_arg("dry_run", False))
    error = result.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else str(error)
        return error_response(
            422, protocol.CONFIG_INVALID, message or "the config file is invalid",
            details=error, result=result,
        )
    return jsonify(result)


def wait_timeout_arg() -> float:
    raw = request.args.get("timeout")
    try:
        return waiting.wait_timeout(None if raw in (None, "") else float(raw or ""))
    except ValueError:
        raise BadParameter(
            f"timeout must be a number of seconds, more than 0 and at most "
            f"{protocol.MAX_WAIT:g}, got {raw!r}") from None


def services_arg() -> list[str] | None:
    raw = request.args.get("services")
    names = [n.strip() for n in (raw or "").split(",") if n.strip()]
    return names or None


@bp.get("/wait")
def wait() -> Response:
    """Block until the services are up: 200 with the `wait` command's result; 409 with
    the same body when one failed or was never started, or the timeout passed."""
    timeout = wait_timeout_arg()
    services = services_arg()
    slots = current_app.extensions.setdefault(
        "promenade_waits", gevent.lock.BoundedSemaphore(MAX_WAITS))
    if not slots.acquire(blocking=False):
        return error_response(503, BUSY, f"{MAX_WAITS} waits are running already; "
                              "try again when one has ended")
    try:
        result: protocol.WaitResult = bus_request(
            "wait", timeout=timeout + WAIT_MARGIN, services=services,
            timeout_seconds=timeout)
    finally:
        slots.release()
    response = jsonify(result)
    if not result["ok"]:
        response.status_code = NOT_UP
    return response
