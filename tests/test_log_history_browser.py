"""The dashboard's log viewer reaching into the log files, in headless Chromium: older
lines when scrolled to the top, and a search beyond what is on screen."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, write_script
from tests.support.web import Dashboard, start_dashboard

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

sync_api = pytest.importorskip("playwright.sync_api")

COUNTER = """
import sys, time
for i in range(1000):
    print(f"line {i}", flush=True)
    if i == 3:   # on stdout: stderr is another pty, read in no set order with stdout
        print("needle in the haystack", flush=True)
print("done", flush=True)
time.sleep(600)
"""


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dashboard]:
    write_script(tmp_path, "counter.py", COUNTER)
    port = free_port()
    d = start_dashboard(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled, log_buffer_lines: 20}}
        services:
          counter: {{command: {sys.executable} counter.py}}
    """, port=port)
    try:
        yield d
    finally:
        d.manager.cleanup()


@pytest.fixture
def page(dash: Dashboard) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            pg = browser.new_page()
            errors: list[str] = []
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            pg.goto(dash.base + "/")
            yield pg
            assert errors == []
        finally:
            browser.close()


def test_scrolling_to_the_top_loads_older_lines_from_the_files(dash: Dashboard,
                                                               page: Any) -> None:
    view = page.locator("#log-view")
    sync_api.expect(view).to_contain_text("done", timeout=15000)
    sync_api.expect(view).not_to_contain_text("line 900")      # the buffer has 20 lines
    page.select_option("#log-service", "counter")
    view.hover()
    page.mouse.wheel(0, -400)
    sync_api.expect(view).to_contain_text("line 900", timeout=10000)
    rows = view.locator(".line .msg").all_inner_texts()
    numbers = [int(text.split()[1]) for text in rows if text.startswith("line ")]
    assert numbers == list(range(numbers[0], 1000)), "older lines out of order or repeated"
    assert numbers[0] < 990


def test_search_files_finds_what_left_the_buffer(dash: Dashboard, page: Any) -> None:
    view = page.locator("#log-view")
    sync_api.expect(view).to_contain_text("done", timeout=15000)
    sync_api.expect(view).not_to_contain_text("needle")
    page.fill("#log-filter", "NEEDLE")
    page.click("#log-search")
    sync_api.expect(view).to_contain_text("line(s) from the log files matching", timeout=10000)
    sync_api.expect(view).to_contain_text("needle in the haystack")
    page.check("#autoscroll")             # back to the live view
    sync_api.expect(view).not_to_contain_text("from the log files")
