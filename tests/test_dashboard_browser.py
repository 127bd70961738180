"""The dashboard in real headless Chromium (Debian's), driven by Playwright, against a
real manager. Screenshots land in test-artifacts/ (git-ignored)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, free_port, write_script
from tests.support.web import Dashboard, start_dashboard

PY = sys.executable
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
FLOOD_LINES = 100_000

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

sync_api = pytest.importorskip("playwright.sync_api")

PAINTER = r"""
import sys, time
print("\x1b[31mRED ALERT\x1b[0m then \x1b[1;38;5;33mbold blue\x1b[0m and plain", flush=True)
print("<img src=x onerror=alert(1)> is just text", flush=True)
time.sleep(0.2)
print("painter warning", file=sys.stderr, flush=True)
time.sleep(600)
"""

TICKER = """
import itertools, time
for i in itertools.count():
    print(f"tick {i}", flush=True)
    time.sleep(0.2)
"""

FLOOD = """
import os, sys, time
while not os.path.exists("flood.go"):
    time.sleep(0.05)
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write(f"flood line {i} \\x1b[32mok\\x1b[0m " + "y" * 30 + "\\n")
out.write("flood done\\n")
out.flush()
time.sleep(600)
"""


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    folder = tmp_path_factory.mktemp("webui")
    write_script(folder, "painter.py", PAINTER)
    write_script(folder, "ticker.py", TICKER)
    write_script(folder, "flood.py", FLOOD)
    port, site_port = free_port(), free_port()
    d = start_dashboard(folder, f"""
        manager: {{port: {port}, hosts_management: disabled, config_poll_interval: 0.3}}
        services:
          site:
            command: {PY} -m http.server {site_port} --bind 127.0.0.1
            port: {site_port}
          ticker:
            command: {PY} ticker.py
          painter:
            command: {PY} painter.py
          toggler:
            command: {PY} -c "import time; time.sleep(600)"
          crasher:
            command: {PY} -c "import time; time.sleep(0.5); raise SystemExit(3)"
            restart_policy: never
          flood:
            command: {PY} flood.py {FLOOD_LINES}
    """, port=port)
    d.wait_status("crasher", "failed")
    yield d
    d.manager.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, dash: Dashboard) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    pg.goto(dash.base + "/")
    pg.wait_for_selector('.card[data-service="ticker"][data-status="running"]')
    pg.wait_for_selector("#conn[data-state='live']")
    yield pg
    context.close()
    assert not errors, errors


def shot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"))


def card(pg: Any, name: str) -> Any:
    return pg.locator(f'.card[data-service="{name}"]')


def test_the_page_lists_the_services_with_their_status(page: Any) -> None:
    names = page.locator(".card .name").all_text_contents()
    assert set(names) == {"site", "ticker", "painter", "toggler", "crasher", "flood"}
    page.wait_for_selector('.card[data-service="site"][data-status="running"]')
    site = card(page, "site")
    assert site.locator(".status").text_content() == "RUNNING"
    assert site.locator(".pid").text_content().isdigit()
    link = site.locator("a.url")
    assert link.get_attribute("target") == "_blank"
    assert re.fullmatch(r"http://localhost:\d+", link.get_attribute("href") or "")
    assert card(page, "crasher").locator(".status").text_content() == "FAILED"
    assert card(page, "crasher").locator(".exit").text_content() == "3"
    page.wait_for_function(
        "() => document.querySelector('.card[data-service=\"site\"] .mem').textContent"
        ".includes('MB')")
    shot(page, "light")


def test_clicking_stop_then_start_changes_the_card(page: Any) -> None:
    toggler = card(page, "toggler")
    page.wait_for_selector('.card[data-service="toggler"][data-status="running"]')
    toggler.locator('button[data-action="stop"]').click()
    page.wait_for_selector('.card[data-service="toggler"][data-status="stopped"]')
    assert toggler.locator(".status").text_content() == "STOPPED"
    assert toggler.locator(".pid").text_content() == "—"
    start = toggler.locator('button[data-action="start"]')
    start.wait_for(state="visible")
    page.wait_for_function(
        "() => !document.querySelector("
        "'.card[data-service=\"toggler\"] [data-action=\"start\"]').disabled")
    start.click()
    page.wait_for_selector('.card[data-service="toggler"][data-status="running"]')
    assert toggler.locator(".pid").text_content().isdigit()


def last_tick(pg: Any) -> int:
    texts = pg.locator(".line .msg").all_text_contents()
    ticks = [int(t.split()[1]) for t in texts if re.fullmatch(r"tick \d+", t)]
    return max(ticks) if ticks else -1


def test_the_log_viewer_shows_new_lines_live(page: Any) -> None:
    page.wait_for_function("() => document.querySelectorAll('.line').length > 0")
    first = last_tick(page)
    deadline = time.monotonic() + 10
    while last_tick(page) <= first + 2:
        assert time.monotonic() < deadline, f"no new tick after {first}"
        page.wait_for_timeout(100)


def test_filter_by_service_and_by_text_with_highlighting(page: Any) -> None:
    page.select_option("#log-service", "ticker")
    page.wait_for_function("() => document.querySelectorAll('.line').length > 3")
    services = set(page.locator(".line .svc").all_text_contents())
    assert services == {"[ticker]"}
    page.fill("#log-filter", "tick 1")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.line .msg')]"
        ".every(e => e.textContent.includes('tick 1'))"
        " && document.querySelectorAll('.line mark').length > 0")
    marks = set(page.locator(".line mark").all_text_contents())
    assert marks == {"tick 1"}
    page.select_option("#log-service", "")
    page.fill("#log-filter", "")
    page.wait_for_function("() => document.querySelectorAll('.line .svc').length > 0 && "
                           "new Set([...document.querySelectorAll('.line .svc')]"
                           ".map(e => e.textContent)).size > 1")


def test_scrolling_up_pauses_auto_scroll_until_the_user_comes_back(page: Any) -> None:
    page.wait_for_function(
        "() => { const v = document.getElementById('log-view');"
        " return v.scrollHeight > v.clientHeight + 200; }", timeout=30000)
    box = page.locator("#log-view").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function("() => !document.getElementById('autoscroll').checked")
    top = page.evaluate("() => document.getElementById('log-view').scrollTop")
    jump = page.locator("#jump-latest")
    jump.wait_for(state="visible")  # new lines arrived and were held back
    assert "new line" in (jump.text_content() or "")
    assert page.evaluate("() => document.getElementById('log-view').scrollTop") == top
    jump.click()
    page.wait_for_function(
        "() => { const v = document.getElementById('log-view');"
        " return document.getElementById('autoscroll').checked"
        " && v.scrollHeight - v.scrollTop - v.clientHeight < 30; }")
    assert jump.is_hidden()


def test_a_coloured_line_is_rendered_in_colour(page: Any) -> None:
    red = page.locator(".line .msg .ansi-fg-1", has_text="RED ALERT")
    red.wait_for()
    colour = red.evaluate("e => getComputedStyle(e).color")
    r, g, b = (int(v) for v in re.findall(r"\d+", colour)[:3])
    assert r > 150 and g < 100 and b < 100, colour
    blue = page.locator(".line .msg .ansi-bold", has_text="bold blue")
    assert blue.evaluate("e => getComputedStyle(e).color") == "rgb(0, 135, 255)"
    msg = red.locator("xpath=..").text_content()
    assert "\x1b" not in msg and "[31m" not in msg
    assert msg == "RED ALERT then bold blue and plain"


def test_log_text_is_never_html(page: Any) -> None:
    line = page.locator(".line .msg", has_text="is just text")
    line.wait_for()
    assert line.text_content() == "<img src=x onerror=alert(1)> is just text"
    assert page.locator("#log-view img").count() == 0


def test_stderr_lines_are_marked(page: Any) -> None:
    line = page.locator(".line.stderr", has_text="painter warning")
    line.wait_for()
    assert line.locator(".tag-stderr").text_content() == "[stderr]"


def test_a_failing_service_shows_a_toast(page: Any) -> None:
    crasher = card(page, "crasher")
    crasher.locator('button[data-action="start"]').click()
    toast = page.locator(".toast.error", has_text="crasher failed")
    toast.wait_for(timeout=15000)
    assert "exit code 3" in (toast.text_content() or "")
    page.wait_for_selector('.card[data-service="crasher"][data-status="failed"]')
    shot(page, "failure-toast")
    # errors stay until dismissed
    page.wait_for_timeout(4500)
    assert toast.is_visible()
    toast.locator("button").click()
    assert page.locator(".toast.error", has_text="crasher failed").count() == 0


def test_a_config_edit_shows_the_banner(page: Any, dash: Dashboard) -> None:
    path = dash.manager.path
    good = path.read_text()
    banner = page.locator("#banner")
    try:
        path.write_text(good + "  added:\n    command: sleep 600\n")
        page.wait_for_selector("#banner[data-kind='reloaded']:not([hidden])", timeout=10000)
        assert "Config reloaded" in (banner.text_content() or "")
        page.wait_for_selector('.card[data-service="added"]')
        path.write_text(good + "  broken: [\n")
        page.wait_for_selector("#banner[data-kind='invalid']:not([hidden])", timeout=10000)
        text = banner.text_content() or ""
        assert "Config invalid" in text and str(path) in text
        shot(page, "config-invalid")
    finally:
        path.write_text(good)
    page.wait_for_selector("#banner[data-kind='reloaded']:not([hidden])", timeout=10000)
    page.wait_for_selector('.card[data-service="added"]', state="detached")


def test_dark_mode_and_a_narrow_window(browser: Any, dash: Dashboard) -> None:
    context = browser.new_context(viewport={"width": 400, "height": 860}, color_scheme="dark")
    pg = context.new_page()
    try:
        pg.goto(dash.base + "/")
        pg.wait_for_selector('.card[data-service="ticker"][data-status="running"]')
        pg.wait_for_function("() => document.querySelectorAll('.line').length > 3")
        background = pg.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert sum(int(v) for v in re.findall(r"\d+", background)[:3]) < 150, background
        width = pg.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width}px wide in a 400px window"
        shot(pg, "dark-narrow")
    finally:
        context.close()


def test_a_flood_of_100000_lines_leaves_the_page_responsive(page: Any, dash: Dashboard) -> None:
    page.select_option("#log-service", "flood")
    (dash.folder / "flood.go").write_text("go")
    slowest = 0.0
    deadline = time.monotonic() + 60
    while True:
        started = time.monotonic()
        done = page.evaluate("() => [...document.querySelectorAll('.line .msg')]"
                             ".some(e => e.textContent === 'flood done')")
        slowest = max(slowest, time.monotonic() - started)
        if done:
            break
        assert time.monotonic() < deadline, "the flood's last line never showed"
        page.wait_for_timeout(50)
    assert slowest < 1.0, f"the page took {slowest:.2f} s to answer during the flood"
    assert page.evaluate("() => document.querySelectorAll('#log-view .line').length") <= 5000
    started = time.monotonic()
    page.select_option("#log-service", "")
    page.fill("#log-filter", "flood line 9999")
    page.wait_for_function(
        "() => { const all = [...document.querySelectorAll('.line .msg')];"
        " return all.length > 0 && all.every(e => e.textContent.includes('flood line 9999'))"
        " && all.some(e => e.textContent.startsWith('flood line 99999 ')); }")
    assert time.monotonic() - started < 5
    shot(page, "flood")


def test_an_open_tab_starts_afresh_after_a_manager_restart(browser: Any, tmp_path: Path) -> None:
    """After a manager restart a reconnecting tab asked for lines since the old run's
    seq and stayed silent; it must notice the new run id and reload status and logs."""
    port = free_port()
    write_script(tmp_path, "teller.py", """
        import time
        print(open("run.txt").read(), flush=True)
        time.sleep(600)
    """)
    config = f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          teller: {{command: {PY} teller.py}}
    """
    (tmp_path / "run.txt").write_text("from-the-first-run")
    first = start_dashboard(tmp_path, config, port=port)
    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.goto(first.base + "/")
        pg.wait_for_selector("#log-view >> text=from-the-first-run")
        old = pg.evaluate("window.promenade.runId")
        assert old
        assert first.manager.cli("stop").returncode == 0
        first.manager.wait_exit()
        first.manager.cleanup()
        (tmp_path / "run.txt").write_text("from-the-second-run")
        second = start_dashboard(tmp_path, config, port=port)
        try:
            pg.wait_for_selector("#log-view >> text=from-the-second-run", timeout=30_000)
            assert pg.evaluate("window.promenade.runId") not in (old, None)
            assert "from-the-first-run" not in pg.inner_text("#log-view")
            pg.wait_for_selector("#conn[data-state='live']")
        finally:
            second.manager.cleanup()
    finally:
        context.close()
        first.manager.cleanup()


def test_a_missing_hostsd_shows_a_warning_toast(browser: Any, tmp_path: Path) -> None:
    """hostsd's "Warning: hostnames are not mapped" went out at level info, so the
    dashboard showed it only as a log line, never as the warning toast it is."""
    port = free_port()
    config = f"""
        manager: {{port: {port}, hosts_management: auto, config_poll_interval: 0.3,
                   hostsd_socket: {tmp_path / "absent.sock"}}}
        services:
          plain: {{command: sleep 600}}
    """
    dash = start_dashboard(tmp_path, config, port=port)
    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.goto(dash.base + "/")
        pg.wait_for_selector('.card[data-service="plain"][data-status="running"]')
        pg.wait_for_selector("#conn[data-state='live']")
        path = dash.manager.path
        path.write_text(path.read_text() + "  named: {command: sleep 600, port: "
                        f"{free_port()}, hostname: named.test}}\n")
        toast = pg.locator(".toast.warning", has_text="hostnames are not mapped")
        toast.wait_for(timeout=15000)
        shot(pg, "hostsd-missing-toast")
    finally:
        context.close()
        dash.manager.cleanup()


def test_cards_show_why_a_task_badge_manual_start_and_what_a_pending_service_waits_for(
        browser: Any, tmp_path: Path) -> None:
    """Orchestration on the cards: `status_reason` as text (never HTML), the "completed"
    badge of a task that exited 0, "manual start" and a Start button for
    `autostart: false`, and the dependency a pending service waits for, with its
    condition. The hostile reason is a real one: the port of `blocked` is held by a
    process whose command line carries markup, and the reason quotes it."""
    port = free_port()
    taken = free_port()
    hostile = "<img src=x onerror=alert(1)>"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import socket, sys, time\n"
         "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
         "print('bound', flush=True); time.sleep(600)", str(taken), hostile],
        stdout=subprocess.PIPE, start_new_session=True)
    assert holder.stdout is not None and holder.stdout.readline() == b"bound\n"
    dash = start_dashboard(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled, dependency_timeout: 120}}
        services:
          db:
            command: sleep 600
            port: {free_port()}
            ready_check: {{type: tcp, interval: 0.2}}
          api: {{command: sleep 600, depends_on: [db]}}
          migrate: {{command: "true", restart_policy: never}}
          tool: {{command: sleep 600, autostart: false}}
          blocked: {{command: sleep 600, port: {taken}, restart_policy: never}}
    """, port=port)
    context = browser.new_context()
    errors: list[str] = []
    try:
        pg = context.new_page()
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
        pg.goto(dash.base + "/")
        pg.wait_for_selector('.card[data-service="api"][data-status="pending"]')
        deps = card(pg, "api").locator(".deps")
        deps.wait_for(state="visible")
        assert deps.text_content() == "waits for db (healthy)"
        assert card(pg, "api").locator(".reason").text_content() == "waiting for db (healthy)"

        tool = card(pg, "tool")
        pg.wait_for_selector('.card[data-service="tool"][data-status="stopped"]')
        assert tool.locator(".tag.manual").is_visible()
        assert tool.locator('button[data-action="start"]').is_visible()
        assert not card(pg, "db").locator(".tag.manual").is_visible()

        migrate = card(pg, "migrate")
        migrate.locator(".tag.completed").wait_for(state="visible", timeout=10_000)
        assert migrate.locator(".reason").text_content() == "completed: exited with code 0"
        assert not tool.locator(".tag.completed").is_visible()

        pg.wait_for_selector('.card[data-service="blocked"][data-status="failed"]')
        blocked = card(pg, "blocked").locator(".reason")
        assert hostile in (blocked.text_content() or "")
        assert card(pg, "blocked").locator("img").count() == 0
        shot(pg, "orchestration")

        tool.locator('button[data-action="start"]').click()
        pg.wait_for_selector('.card[data-service="tool"][data-status="running"]')
        assert tool.locator(".tag.manual").is_visible()   # still not an autostart one
        assert not deps.is_hidden() and card(pg, "api").get_attribute("data-status") == "pending"
    finally:
        context.close()
        dash.manager.cleanup()
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert not errors, errors
