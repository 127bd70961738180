"""The dashboard log viewer's per-service mute, in real headless Chromium (issue 14,
point 4): a chip per service hides its lines from the view only, and the choice
survives a reload (localStorage)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, write_script
from tests.support.web import Dashboard, start_dashboard

PY = sys.executable
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

sync_api = pytest.importorskip("playwright.sync_api")

TALKER = """
    import itertools, sys, time
    for i in itertools.count():
        print(f"{sys.argv[1]} says {i}", flush=True)
        time.sleep(0.1)
"""
#: the services whose own lines are in the view (the manager's messages left out)
SERVICES_SHOWN = ("() => new Set([...document.querySelectorAll('.line .svc')]"
                  ".map(e => e.textContent).filter(t => t !== '[promenade]'))")


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dashboard]:
    write_script(tmp_path, "talker.py", TALKER)
    port = free_port()
    d = start_dashboard(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          chatty: {{command: {PY} talker.py chatty}}
          calm: {{command: {PY} talker.py calm}}
    """, port=port)
    yield d
    d.manager.cleanup()


@pytest.fixture
def page(dash: Dashboard) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        pg = browser.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(dash.base + "/")
        pg.wait_for_selector("#conn[data-state='live']")
        yield pg
        browser.close()
        assert not errors, errors


def chip(pg: Any, name: str) -> Any:
    return pg.locator(f'.mute-chip[data-service="{name}"]')


def shown_now(pg: Any) -> set[str]:
    return set(pg.evaluate(f"() => [...({SERVICES_SHOWN})()]"))


def wait_shown(pg: Any, wanted: list[str]) -> None:
    """Wait until the view shows lines of exactly these services (new lines arrive
    every 0.1 s, so a muted service's lines would show up quickly)."""
    pg.wait_for_function(f"() => {{ const s = ({SERVICES_SHOWN})();"
                         f" const w = {wanted!r}.map(n => `[${{n}}]`);"
                         " return s.size === w.length && w.every(n => s.has(n)); }")


def test_muting_a_service_hides_its_lines_and_is_remembered(page: Any) -> None:
    wait_shown(page, ["chatty", "calm"])
    assert chip(page, "chatty").get_attribute("aria-pressed") == "false"

    chip(page, "chatty").click()
    assert chip(page, "chatty").get_attribute("aria-pressed") == "true"
    wait_shown(page, ["calm"])
    page.wait_for_timeout(500)       # five more lines of each; none of chatty's shows
    assert shown_now(page) == {"[calm]"}
    assert "1 muted" in page.locator("#log-stats").text_content()

    page.reload()
    page.wait_for_selector("#conn[data-state='live']")
    page.wait_for_selector('.mute-chip[data-service="chatty"][aria-pressed="true"]')
    page.wait_for_function("() => document.querySelectorAll('.line').length > 5")
    assert shown_now(page) == {"[calm]"}

    page.select_option("#log-service", "chatty")     # chosen by name: shown anyway
    wait_shown(page, ["chatty"])
    page.select_option("#log-service", "")

    chip(page, "chatty").click()
    assert chip(page, "chatty").get_attribute("aria-pressed") == "false"
    wait_shown(page, ["chatty", "calm"])
    assert page.evaluate("() => localStorage.getItem('promenade.mutedServices')") == "[]"
