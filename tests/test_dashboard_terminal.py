"""The dashboard's terminal panel: headless Chromium typing into a service, and the
page token that typing needs (a foreign page, or a request without it, gets 403 and
nothing is typed)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, free_port, wait_for, write_script
from tests.support.web import Dashboard, start_dashboard, ws_handshake

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.timeout(120)

#: Stops in pdb; after `c` it echoes each line it reads.
DEBUGGEE = """
    import sys
    print("\\x1b[32mbefore the breakpoint\\x1b[0m", flush=True)
    breakpoint()
    print("continued", flush=True)
    for line in sys.stdin:
        print("read " + line.strip(), flush=True)
"""


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    folder = tmp_path_factory.mktemp("terminal")
    write_script(folder, "debuggee.py", DEBUGGEE)
    port = free_port()
    d = start_dashboard(folder, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          dbg: {{command: {sys.executable} debuggee.py, tty: true}}
    """, port=port)
    d.wait_status("dbg", "running")
    yield d
    d.manager.cleanup()


def _token(dash: Dashboard) -> str:
    page = dash.get("/").raw.decode()
    found = re.search(r'<meta name="promenade-token" content="([^"]+)">', page)
    assert found is not None, page[:400]
    return found.group(1)


def _input(dash: Dashboard, text: str, headers: dict[str, str]) -> Any:
    body = json.dumps({"data": base64.b64encode(text.encode()).decode()}).encode()
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", dash.port, timeout=10)
    try:
        conn.request("POST", "/api/services/dbg/input", body=body, headers={
            "Host": f"127.0.0.1:{dash.port}", "Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_the_page_carries_a_fresh_token_and_no_cors_header(dash: Dashboard) -> None:
    """Other origins must not be able to read the token: the page alone is served
    without Access-Control-Allow-Origin, and not cached."""
    first, second = _token(dash), _token(dash)
    assert first != second and "__PROMENADE" not in first
    page = dash.get("/")
    assert "access-control-allow-origin" not in page.headers
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert dash.get("/api/status").headers["access-control-allow-origin"] == "*"


def test_input_without_the_token_or_from_a_foreign_page_is_refused(dash: Dashboard) -> None:
    before = dash.manager.lines("dbg")
    token = _token(dash)
    for headers, code in [
        ({}, "forbidden_token"),
        ({"X-Promenade-Token": "guessed"}, "forbidden_token"),
        ({"X-Promenade-Token": token, "Origin": "http://evil.example"}, "forbidden_origin"),
    ]:
        status, body = _input(dash, "c\n", headers)
        assert (status, body["error"]["code"]) == (403, code), headers
    for headers in ({"Origin": "http://evil.example"}, {"Origin": f"http://127.0.0.1:{dash.port}"}):
        status, sock = ws_handshake(dash.port, headers,
                                    "/api/services/dbg/terminal?token=guessed")
        sock.close()
        assert status == 403, headers
    time.sleep(0.5)
    assert dash.manager.lines("dbg") == before, "nothing was typed"


def test_input_with_the_page_token_is_typed(dash: Dashboard) -> None:
    """The same request, with the token the page carries (as the dashboard sends it)."""
    status, body = _input(dash, "\n", {"X-Promenade-Token": _token(dash),
                                       "Origin": f"http://127.0.0.1:{dash.port}"})
    assert status == 200 and body == {"written": 1}


def test_a_terminal_without_the_token_is_read_only_and_takes_no_keyboard(
        dash: Dashboard) -> None:
    """A page on another local port may watch the output (as it may read the logs),
    but its socket must not hold the keyboard and lock out a real attach."""
    status, sock = ws_handshake(dash.port, {"Origin": "http://localhost:3000"},
                                "/api/services/dbg/terminal")
    try:
        assert status == 101

        def others() -> int:
            """Leases on dbg but this probe's (a read-only one: it changes nothing)."""
            probe = dash.manager.request("attach", service="dbg", read_only=True)
            dash.manager.request("detach", lease=probe["lease"])
            return int(probe["attached"]) - 1

        wait_for(others, 10, "the socket to attach")
        grant = dash.manager.request("attach", service="dbg")
        assert grant["writer"] is True and grant["attached"] == 2
        dash.manager.request("detach", lease=grant["lease"])
    finally:
        sock.close()


# ------------------------------------------------------------------ in Chromium

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def _screen(pg: Any) -> str:
    return str(pg.locator(".terminal-panel .xterm-rows").inner_text())


def test_the_terminal_panel_types_into_the_service(browser: Any, dash: Dashboard) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(str(exc)))
    pg.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    try:
        pg.goto(dash.base + "/")
        pg.wait_for_selector('.card[data-service="dbg"][data-status="running"]')
        pg.locator('.card[data-service="dbg"] .terminal-open').click()
        pg.wait_for_selector('.terminal-panel[data-writer="1"]')
        pg.keyboard.press("Enter")          # pdb answers with its prompt
        wait_for(lambda: "(Pdb)" in _screen(pg), 10, "pdb's prompt in the panel")
        pg.keyboard.type("c")
        pg.keyboard.press("Enter")
        wait_for(lambda: "continued" in dash.manager.lines("dbg"), 10, "the service to go on")
        pg.keyboard.type("hello")
        pg.keyboard.press("Enter")
        wait_for(lambda: "read hello" in _screen(pg), 10, "the service's answer in the panel")
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "dashboard-terminal.png"))
        assert "read hello" in dash.manager.lines("dbg")
        pg.locator(".terminal-close").click()
        assert pg.locator(".terminal-panel").count() == 0
    finally:
        context.close()
    assert not problems, problems
