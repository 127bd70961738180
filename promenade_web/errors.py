"""Every error the web process returns is JSON: `{"error": {"code", "message"}}`.

Codes are stable (scripts branch on them); bus error codes pass through unchanged, so
`unknown_service` means the same thing from the CLI and from the REST API.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.routing import WebsocketMismatch

from promenade_core.bus import protocol
from promenade_core.bus.client import BusError

# Codes that only the web process produces.
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
FORBIDDEN_ORIGIN = "forbidden_origin"
FORBIDDEN_HOST = "forbidden_host"
WEBSOCKET_REQUIRED = "websocket_required"

#: HTTP status for each bus error code; anything else is a 502 (the manager failed).
BUS_STATUS = {
    protocol.UNKNOWN_SERVICE: 404,
    protocol.BAD_REQUEST: 400,
    protocol.CONFIG_INVALID: 422,
    protocol.SHUTTING_DOWN: 503,
    protocol.TIMEOUT: 504,
}


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def _http_code(exc: HTTPException) -> str:
    name = (exc.name or "error").lower().replace(" ", "_")
    return {"not_found": NOT_FOUND, "method_not_allowed": METHOD_NOT_ALLOWED}.get(name, name)


def install(app: Flask) -> None:
    """Register JSON handlers for HTTP errors, bus errors and crashes."""

    @app.errorhandler(WebsocketMismatch)
    def plain_request_to_websocket(exc: WebsocketMismatch) -> Response:
        return error_response(
            400, WEBSOCKET_REQUIRED,
            "this endpoint is a WebSocket: connect with ws://…/api/logs/stream",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, _http_code(exc), exc.description or "")
        if exc.code == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(BusError)
    def bus_error(exc: BusError) -> Response:
        return error_response(BUS_STATUS.get(exc.code, 502), exc.code, exc.message)

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Response:
        # A bug, not a user error: keep the traceback for the supervisor's log.
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return error_response(
            500, protocol.INTERNAL, f"internal error in the web process: {type(exc).__name__}"
        )
