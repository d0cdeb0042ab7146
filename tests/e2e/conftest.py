"""Real-browser tests: a headless Streamlit server on a free loopback port, driven by the system Chromium.

Never `playwright install` (it downloads a browser and fails offline): Debian's chromium is used.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from e2e_support import CHROMIUM, ROOT  # noqa: F401  (one place for the paths)

sys.path.insert(0, str(ROOT / "benchmarks"))
from idle_cpu import start_server  # noqa: E402  (one way to start the app, shared with the idle-CPU benchmark)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def app_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e-home")


@pytest.fixture(scope="session")
def app_server(app_home):
    """Start `streamlit run app.py` headless with the project's own .streamlit/config.toml (so the tests see
    the server a user gets); wait for /_stcore/health; stop it afterwards. Yields the process and its URL."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    try:
        proc, url = start_server(ROOT, home=app_home)
    except RuntimeError as e:
        pytest.fail(str(e))
    yield proc, url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def app_url(app_server):
    return app_server[1]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()
