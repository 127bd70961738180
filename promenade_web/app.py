"""The Flask application factory: REST API, WebSocket stream, dashboard, guards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.selectors
from flask import Flask, Response

from promenade_web import api, errors, security, stream, terminal
from promenade_web.hub import Hub

STATIC = Path(__file__).parent / "static"
#: Where index.html takes the page token (security.PageTokens).
TOKEN_PLACEHOLDER = "__PROMENADE_PAGE_TOKEN__"


class _WebSocketGreenlet(gevent.Greenlet):
    """simple-websocket starts its reader as `thread_class(target=f)`."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(target)


@dataclass
class Backend:
    """What the views need: a way to send control commands and the events hub."""

    request: Callable[..., Any]
    hub: Hub

    def managed_hostnames(self) -> list[str]:
        """The configured hostnames the manager reports as mapped to loopback now, and
        the routed names (a domain outside `.localhost`) whose URL it gives now."""
        routed = [name for names in self.hub.routed.values() for name in names]
        return [*self.hub.hostnames.values(), *routed]


def create_app(backend: Backend, bind_host: str = "127.0.0.1") -> Flask:
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 0
    # flask-sock on gevent.pywsgi needs gevent's thread, event and selector classes
    # (STACK-NOTES.md), whether or not the process is monkey-patched.
    app.config["SOCK_SERVER_OPTIONS"] = {
        "thread_class": _WebSocketGreenlet,
        "event_class": gevent.event.Event,
        "selector_class": gevent.selectors.GeventSelector,
    }
    app.extensions["promenade"] = backend
    errors.install(app)
    security.install(app, security.Guard(bind_host, backend.managed_hostnames))
    app.register_blueprint(api.bp)
    app.register_blueprint(stream.bp)
    app.register_blueprint(terminal.bp)
    tokens = app.extensions["promenade_tokens"] = security.PageTokens()
    page = (STATIC / "index.html").read_text()

    @app.get("/")
    def index() -> Response:
        security.private_page()
        return Response(page.replace(TOKEN_PLACEHOLDER, tokens.issue()),
                        mimetype="text/html")

    return app
