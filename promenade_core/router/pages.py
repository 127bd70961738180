"""What the router answers itself: a routed service that is not up, an unknown name.

Pure: a request's Accept header and what the registry knows in, a `Page` out. The HTML
is for a person at the browser (so it names the service, says why, and reloads itself
while the service is starting, so the page turns into the app by itself); JSON is for
fetch calls and scripts (`Accept: application/json`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from promenade_core.proxy.headers import Page, Refusal
from promenade_core.router.protocol import Route
from promenade_core.supervise.states import Status

#: Statuses after which the service comes up by itself: the page keeps reloading.
COMING_UP = frozenset({Status.PENDING.value, Status.STARTING.value, Status.RETRYING.value})
REFRESH_SECONDS = 2
_JSON = b"application/json"
_HTML = b"text/html; charset=utf-8"


def wants_json(accept: bytes | None) -> bool:
    """JSON when the client asks for it before (or instead of) HTML."""
    if not accept:
        return False
    text = accept.decode("latin-1").lower()
    json_at, html_at = text.find("application/json"), text.find("text/html")
    return json_at >= 0 and (html_at < 0 or json_at < html_at)


def _html(title: str, paragraphs: Sequence[str], refresh: bool) -> bytes:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!doctype html><html><head><meta charset=\"utf-8\">{meta}"
            f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}"
            f"</h1>{body}<p><small>Promenade router</small></p></body></html>").encode()


def not_up_page(route: Route, accept: bytes | None) -> Page:
    """503 for a routed service that cannot take requests now, saying why."""
    starting = route.status in COMING_UP
    reason = route.status_reason or (
        "it has no port yet" if route.port is None else f"it is {route.status}")
    if wants_json(accept):
        body = json.dumps({"error": {
            "code": "service_not_up", "name": route.name, "service": route.service,
            "status": route.status, "status_reason": route.status_reason,
            "message": f"service {route.service!r} is {route.status}: {reason}"}}).encode()
        return Page(503, _JSON, body, ((b"Retry-After", b"2"),) if starting else ())
    title = f"{route.service} is {route.status}"
    paragraphs = [f"<b>{html.escape(route.name)}</b> is served by service "
                  f"<b>{html.escape(route.service)}</b>, which is "
                  f"<b>{html.escape(route.status)}</b>: {html.escape(reason)}."]
    if starting:
        paragraphs.append(f"This page reloads every {REFRESH_SECONDS} s until it is up.")
    else:
        paragraphs.append(f"Start it with <code>promenade start {html.escape(route.service)}"
                          "</code>, then reload.")
    return Page(503, _HTML, _html(title, paragraphs, starting))


def not_answering_page(route: Route, refusal: Refusal, accept: bytes | None) -> Page:
    """502 for a service marked running that did not answer: often a dev server that is
    still binding its port, so the page reloads itself like a starting one."""
    if wants_json(accept):
        body = json.dumps({"error": {
            "code": refusal.code, "name": route.name, "service": route.service,
            "status": route.status, "message": refusal.message}}).encode()
        return Page(502, _JSON, body, ((b"Retry-After", b"2"),))
    title = f"{route.service} is not answering"
    paragraphs = [f"<b>{html.escape(route.name)}</b> is served by service "
                  f"<b>{html.escape(route.service)}</b>, which is "
                  f"<b>{html.escape(route.status)}</b> but did not answer: "
                  f"{html.escape(refusal.message)}.",
                  f"This page reloads every {REFRESH_SECONDS} s until it answers."]
    return Page(502, _HTML, _html(title, paragraphs, refresh=True))


def unknown_name_page(host: str, names: Sequence[str], accept: bytes | None) -> Page:
    """404 for a name no manager registered, listing the ones that are."""
    if wants_json(accept):
        body = json.dumps({"error": {
            "code": "unknown_name", "name": host, "names": list(names),
            "message": f"no running Promenade project serves {host!r}"}}).encode()
        return Page(404, _JSON, body)
    if names:
        items = "".join(f'<li><a href="https://{html.escape(n)}/">{html.escape(n)}</a></li>'
                        for n in names)
        listing = f"Names served now:</p><ul>{items}</ul><p>"
    else:
        listing = "No names are served now: no running project registered any."
    paragraphs = [f"No running Promenade project serves <b>{html.escape(host)}</b>.",
                  listing]
    return Page(404, _HTML, _html(f"Unknown name {host}", paragraphs, refresh=False))
