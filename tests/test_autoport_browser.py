"""The dashboard card of a `port: auto` service shows the port of its run, in real
headless Chromium (Debian's) driven by Playwright, against a real manager."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support import free_port
from tests.support.web import start_dashboard

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

sync_api = pytest.importorskip("playwright.sync_api")


def test_the_card_shows_the_auto_port_and_the_fixed_one(tmp_path: Path) -> None:
    port, fixed = free_port(), free_port()
    serve = f"{sys.executable} -m http.server"
    dash = start_dashboard(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          auto:
            command: {serve} $PORT --bind 127.0.0.1
            port: auto
            ready_check: {{type: tcp, interval: 0.1}}
          fixed:
            command: {serve} {fixed} --bind 127.0.0.1
            port: {fixed}
    """, port=port)
    try:
        picked = dash.wait_status("auto", "running")["port"]
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            page.goto(dash.base + "/")
            card = page.locator('.card[data-service="auto"] .port')
            page.wait_for_function(
                "() => document.querySelector('.card[data-service=\"auto\"] .port')"
                f"?.textContent === '{picked} auto'")  # no card yet: wait, do not throw
            assert "port: auto" in (card.get_attribute("title") or "")
            fixed_card = page.locator('.card[data-service="fixed"] .port')
            assert fixed_card.text_content() == str(fixed)
            assert page.locator('.card[data-service="auto"] a.url').get_attribute(
                "href") == f"http://localhost:{picked}"
            browser.close()
    finally:
        dash.manager.cleanup()
