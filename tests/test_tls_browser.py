"""Headless Chromium (Debian's) trusts the local CA once `promenade trust` put it in the
NSS database of its home, and loads https://web.myapp.localhost:PORT from one SNI
socket with no certificate error; with a home whose database lacks the CA it refuses
the same page, which shows the trust came from that database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.tls import browser_home, tls_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CERTUTIL = shutil.which("certutil")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.skipif(CERTUTIL is None, reason="needs certutil (libnss3-tools)"),
]

sync_api = pytest.importorskip("playwright.sync_api")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _load(home: Path, url: str) -> tuple[str | None, Any]:
    """Open `url` in Chromium running with `home`: (the error, or None; the page text)."""
    env = {**os.environ, "HOME": str(home)}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, env=env)
        try:
            page = browser.new_context().new_page()
            try:
                response = page.goto(url, timeout=20_000)
            except sync_api.Error as exc:
                return str(exc), None
            return None, (response.status if response else None, page.text_content("body"))
        finally:
            browser.close()


def test_chromium_trusts_the_ca_from_its_nss_database(tmp_path: Path) -> None:
    trusted, untrusted = browser_home(tmp_path / "trusted"), browser_home(tmp_path / "untrusted")
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    env.update(HOME=str(trusted), XDG_DATA_HOME=str(data),
               PROMENADE_TRUST_SYSTEM_DIR=str(tmp_path), PROMENADE_TRUST_UPDATE="")
    done = subprocess.run([sys.executable, "-m", "promenade_cli", "trust"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with tls_server(tmp_path, {"XDG_DATA_HOME": str(data)}) as port:
        url = f"https://web.myapp.localhost:{port}/"
        error, page = _load(trusted, url)
        assert error is None, error
        assert page == (200, f"hello from web.myapp.localhost:{port}")
        error, page = _load(untrusted, url)
        assert error is not None and "ERR_CERT_AUTHORITY_INVALID" in error, (error, page)
