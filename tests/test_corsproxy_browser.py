"""The CORS proxy as a browser sees it: a page on one local port calls a service on
another through the proxy, with and without credentials, in headless Chromium.

The browser is the only judge of CORS that matters: these tests fail if a header the
proxy sends (or omits) would make Chromium hide a response from the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.corsproxy import Child, Proxy, Server, write_scripts

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.timeout(60),
]

PAGE_SERVER = r"""
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=sys.argv[1]))
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""

PAGE = """<!doctype html>
<title>calls another port</title>
<script>
window.call = async (url, options) => {
  try {
    const response = await fetch(url, options || {});
    return {
      ok: true,
      status: response.status,
      body: await response.text(),
      service: response.headers.get("X-Service"),
    };
  } catch (error) {
    return {ok: false, error: String(error)};
  }
};
window.events = (url, count) => new Promise((resolve) => {
  const source = new EventSource(url, {withCredentials: true});
  const got = [];
  source.onmessage = (event) => {
    got.push(event.data);
    if (got.length === count) { source.close(); resolve(got); }
  };
  source.onerror = () => {
    if (got.length < count) { source.close(); resolve(["error", ...got]); }
  };
});
window.socket = (url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  const got = [];
  ws.onmessage = (event) => {
    got.push(event.data);
    if (got.length === 1) ws.send("from the page");
    else { ws.close(); resolve(got); }
  };
  ws.onerror = () => resolve(["error", ...got]);
});
</script>
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def spawn(tmp_path: Path, children: list[Child]) -> Callable[..., Any]:
    """Starts a tiny service, the page server or a proxy, killed after the test."""
    scripts = write_scripts(tmp_path, pages=PAGE_SERVER)

    def start(kind: str, *args: Any) -> Any:
        child: Child
        if kind == "proxy":
            child = Proxy(scripts["launcher"], args[0])
            children.append(child)
            assert child.first.get("ready"), child.first
        else:
            child = Server(scripts[kind], *map(str, args))
            children.append(child)
        return child

    return start


@pytest.fixture
def page(browser: Browser, spawn: Callable[..., Any], tmp_path: Path) -> Iterator[Page]:
    """A page served from its own local port (its own origin), fresh cookies."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    pages = spawn("pages", site)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{pages.port}/index.html")
    yield page
    context.close()


@pytest.fixture
def api(spawn: Callable[..., Any]) -> tuple[str, str]:
    """(the service's own URL, the proxy's URL in front of it)."""
    service = spawn("upstream")
    proxy = spawn("proxy", service.port)
    return f"http://127.0.0.1:{service.port}", f"http://127.0.0.1:{proxy.port}"


def call(page: Page, url: str, options: dict | None = None) -> dict:
    return page.evaluate("([url, options]) => call(url, options)", [url, options or {}])


def test_page_reads_another_port_through_the_proxy(page: Page, api: tuple[str, str]) -> None:
    direct, proxied = api
    result = call(page, f"{proxied}/plain")
    assert result == {"ok": True, "status": 200, "body": "plain", "service": None}
    # the same request straight to the service is blocked by the browser: no CORS there
    assert call(page, f"{direct}/plain")["ok"] is False
    # a header the service sent is readable: the proxy exposes it by name
    assert call(page, f"{proxied}/hello")["service"] == "demo"


def test_credentials_work_through_the_proxy(page: Page, api: tuple[str, str]) -> None:
    direct, proxied = api
    include = {"credentials": "include"}
    assert call(page, f"{proxied}/set-cookie", include)["status"] == 200
    whoami = call(page, f"{proxied}/whoami", include)
    assert whoami["ok"], whoami
    assert '"cookie": "sid=s3cret"' in whoami["body"]
    # the service's own `Access-Control-Allow-Origin: *` is refused with credentials;
    # the proxy replaced it with the echoed origin
    assert call(page, f"{direct}/hello", include)["ok"] is False
    assert call(page, f"{proxied}/hello", include)["body"] == "hello"


def test_preflighted_put_with_a_custom_header(page: Page, api: tuple[str, str]) -> None:
    _, proxied = api
    options = {
        "method": "PUT",
        "credentials": "include",
        "headers": {"Content-Type": "application/json", "X-Token": "t0k3n"},
        "body": '{"hello": "world"}',
    }
    result = call(page, f"{proxied}/sha", options)
    assert result["ok"], result
    assert '"length": 18' in result["body"]


def test_event_source_with_credentials(page: Page, api: tuple[str, str]) -> None:
    _, proxied = api
    got = page.evaluate("(url) => events(url, 3)", f"{proxied}/sse?count=3")
    assert got == ["event 0", "event 1", "event 2"]


def test_websocket_from_the_page(page: Page, spawn: Callable[..., Any]) -> None:
    service = spawn("raw", "ws")
    proxy = spawn("proxy", service.port)
    got = page.evaluate("(url) => socket(url)", f"ws://127.0.0.1:{proxy.port}/hmr")
    origin = page.evaluate("() => location.origin")
    assert got == [f"welcome {origin}", "from the page"]
