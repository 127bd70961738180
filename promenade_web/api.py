"""The REST API of SPEC.md, each endpoint one control command on the bus.

The web process keeps no state of its own here: the manager is the only source of
truth, so `promenade status` and `/api/status` can never disagree.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from promenade_core.bus import protocol
from promenade_core.masking import mask_config
from promenade_web.errors import error_response
from promenade_web.hub import spec_lines

bp = Blueprint("api", __name__, url_prefix="/api")

ACTIONS = ("start", "stop", "restart")
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
