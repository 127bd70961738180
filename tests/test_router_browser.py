"""Named HTTPS URLs as a browser sees them: headless Chromium (Debian's), trusting the
local CA through a temporary NSS database, loads https://web.shop.localhost:PORT from a
real manager through the real router with no certificate error; a page there calls
https://api.shop.localhost:PORT (a `cors_proxy` service, so the router applies the CORS
policy on its name) with credentials, and a `Secure; SameSite=None` cookie the api set
comes back on the next call. A page from a foreign origin (a name that is not local,
mapped to loopback inside Chromium only) is refused by the router, before the api.

The browser is the judge that matters: it rejects a certificate, a missing or wrong
Access-Control-Allow-* header, or a cookie it would not send, and the page shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Manager, free_port, wait_for, write_script
from tests.support.router import RouterEnv
from tests.support.tls import browser_home

PY = sys.executable
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: not a local name: Chromium alone maps it to loopback (--host-resolver-rules)
FOREIGN = "foreign.example"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.skipif(shutil.which("certutil") is None, reason="needs certutil (libnss3-tools)"),
]

sync_api = pytest.importorskip("playwright.sync_api")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--host-resolver-rules=MAP {FOREIGN} 127.0.0.1"]

#: The api: `/login` sets a Secure, SameSite=None cookie; every answer shows the Cookie,
#: X-Token and body it was sent. No CORS headers of its own (nor an OPTIONS handler):
#: those come from the router. Every request's method, path, Origin and Cookie is
#: appended to argv[1], one JSON line each.
API = r"""
import http.server, json, os, sys

LOG = sys.argv[1]

class Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer(b"")

    def do_PUT(self):
        self.answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def answer(self, sent):
        seen = {"method": self.command, "path": self.path,
                "origin": self.headers.get("Origin"), "cookie": self.headers.get("Cookie")}
        with open(LOG, "a") as log:
            log.write(json.dumps(seen) + "\n")
        body = json.dumps({"cookie": seen["cookie"], "token": self.headers.get("X-Token"),
                           "sent": sent.decode()}).encode()
        self.send_response(200)
        if self.path == "/login":
            self.send_header("Set-Cookie", "sid=s3cret; Path=/; Secure; SameSite=None")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Api).serve_forever()
"""

#: The page (served by the web service, and by the foreign server): `signIn(api)` logs
#: in, asks who it is, both with credentials, and shows what the api saw in #out.
PAGE = """<!doctype html>
<title>shop</title>
<pre id="out">not yet</pre>
<script>
window.call = async (url, options) => {
  try {
    const response = await fetch(url, {credentials: "include", ...options});
    return {ok: true, status: response.status, body: await response.text()};
  } catch (error) {
    return {ok: false, error: String(error)};
  }
};
window.signIn = async (api) => {
  const login = await call(api + "/login");
  const whoami = await call(api + "/whoami");
  document.getElementById("out").textContent =
    whoami.ok ? "api saw cookie: " + JSON.parse(whoami.body).cookie
              : "refused: " + whoami.error;
  return {login, whoami};
};
</script>
"""


@pytest.fixture
def shop(tmp_path: Path, router_env: RouterEnv) -> Iterator[Manager]:
    """Project `shop` (domain shop.localhost) on the test's router: `web` serves PAGE,
    `api` is a cors_proxy service; both on automatic ports."""
    folder = tmp_path / "shop"
    (folder / "site").mkdir(parents=True)
    (folder / "site" / "index.html").write_text(PAGE)
    write_script(folder, "api.py", API)
    m = Manager(folder, f"""
        manager: {{hosts_management: disabled}}
        services:
          web:
            command: {PY} -m http.server $PORT --bind 127.0.0.1 --directory site
            port: auto
          api:
            command: {PY} api.py api.log
            port: auto
            cors_proxy: true
            cors_proxy_port: {free_port()}
    """)
    m.env = {k: v for k, v in os.environ.items() if k != "PROMENADE_ROUTER"}
    m.env["XDG_STATE_HOME"] = str(folder / "state")
    try:
        m.start()
        for service in ("web", "api"):
            wanted = f"https://{service}.shop.localhost:{router_env.https_port}"
            wait_for(lambda s=service, w=wanted: m.status(s)["url"] == w, 30,
                     f"the routed URL {wanted}")
        router_env.ensure()
        yield m
    finally:
        m.cleanup()


@pytest.fixture
def browser(tmp_path: Path, router_env: RouterEnv, shop: Manager) -> Iterator[Any]:
    """Chromium whose only trust in the local CA is the NSS database of its home."""
    home = browser_home(tmp_path / "browser", ca=router_env.ca_path)
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS,
                                     env={**os.environ, "HOME": str(home)})
        try:
            yield launched.new_context()
        finally:
            launched.close()


def api_requests(shop: Manager) -> list[dict[str, Any]]:
    log = shop.tmp / "api.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_page_on_web_calls_api_and_its_secure_cookie_comes_back(
        router_env: RouterEnv, shop: Manager, browser: Any) -> None:
    web = f"https://web.shop.localhost:{router_env.https_port}"
    api = f"https://api.shop.localhost:{router_env.https_port}"
    page = browser.new_page()
    response = page.goto(f"{web}/index.html", timeout=20_000)  # a certificate error raises
    assert response is not None and response.status == 200
    assert response.security_details()["subjectName"] == "web.shop.localhost"

    result = page.evaluate("(api) => signIn(api)", api)
    assert result["login"]["ok"] and json.loads(result["login"]["body"])["cookie"] is None
    assert result["whoami"]["ok"], result
    assert json.loads(result["whoami"]["body"])["cookie"] == "sid=s3cret"
    assert page.text_content("#out") == "api saw cookie: sid=s3cret"
    # a PUT with a custom header: the router answers Chromium's preflight itself
    put = page.evaluate("""(api) => call(api + "/cart", {method: "PUT", body: "1 apple",
                                          headers: {"X-Token": "t0k3n"}})""", api)
    assert put["ok"] and json.loads(put["body"]) == {
        "cookie": "sid=s3cret", "token": "t0k3n", "sent": "1 apple"}, put
    assert [(r["method"], r["path"], r["origin"]) for r in api_requests(shop)] == [
        ("GET", "/login", web), ("GET", "/whoami", web), ("PUT", "/cart", web)]


def test_a_foreign_page_is_refused_before_the_api(
        router_env: RouterEnv, shop: Manager, browser: Any) -> None:
    port = free_port()
    foreign = f"http://{FOREIGN}:{port}"
    router_env.procs.append(subprocess.Popen(
        [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(shop.tmp / "site")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    page = browser.new_page()
    wait_for(lambda: _loads(page, f"{foreign}/index.html"), 10, f"the page at {foreign}")
    refused = page.evaluate("(api) => signIn(api)", f"https://api.shop.localhost:{router_env.https_port}")
    assert refused["whoami"]["ok"] is False, refused
    assert page.text_content("#out") == "refused: TypeError: Failed to fetch"
    assert api_requests(shop) == []
    # what Chromium was told: the router's refusal, not a missing header of the api's
    status, _, body = router_env.get("api.shop.localhost", "/whoami", {"Origin": foreign})
    assert (status, json.loads(body)["error"]["code"]) == (403, "origin_refused")


def _loads(page: Any, url: str) -> bool:
    """The page loaded (False while its server is not listening yet)."""
    try:
        response = page.goto(url, timeout=5_000)
    except sync_api.Error:
        return False
    return response is not None and response.status == 200
