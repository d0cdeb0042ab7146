"""Helpers for the real-browser tests (a module of its own: `conftest` is a name two folders share)."""
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = ROOT / "test-output" / "e2e"


def wait_idle(page, timeout: float = 120_000) -> None:
    """Wait until the app's script has finished its run (no fixed sleeps)."""
    page.wait_for_selector("[data-test-script-state=notRunning]", timeout=timeout, state="attached")
    page.wait_for_function(
        "() => document.querySelector('[data-test-script-state]')?.getAttribute('data-test-script-state') === 'notRunning'",
        timeout=timeout)


def screenshot(page, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    # Streamlit scrolls inside its main container, so grow the window to the content's height first.
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 0")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 5000))})
    wait_idle(page)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path
