"""Idle server CPU: start `streamlit run app.py`, open one page at a time in headless Chromium, and
measure the server process's CPU time (utime + stime from /proc/<pid>/stat) while the tab sits idle.

    python benchmarks/idle_cpu.py                           # every page, 60 s each, the app folder's own config
    python benchmarks/idle_cpu.py --seconds 10 --pages home train
    python benchmarks/idle_cpu.py --app-dir /tmp/appcopy --watcher auto   # reproduce the old behaviour

Prints one row per page: CPU seconds used and the share of one core. Linux only (/proc). The server's
settings come from `<app-dir>/.streamlit/config.toml` unless --watcher overrides the file watcher.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"home": "", "data": "data", "train": "train", "curves": "curves", "review": "review"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()     # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app_dir: Path, *, home: Path, watcher: str | None = None, port: int | None = None):
    """Start the app headless on a loopback port; return (process, url) once /_stcore/health answers."""
    port = port or _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port)]
    if watcher:
        cmd += ["--server.fileWatcherType", watcher]
    env = dict(os.environ, NOISYLAB_HOME=str(home), NOISYLAB_RUNS=str(home / "runs"), TF_CPP_MIN_LOG_LEVEL="2")
    log = open(home / "streamlit.log", "ab")
    proc = subprocess.Popen(cmd, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("streamlit did not start: " + (home / "streamlit.log").read_text()[-2000:])
        time.sleep(0.2)


def _wait_idle(page, timeout: float = 180_000) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-test-script-state]')?.getAttribute('data-test-script-state') "
        "=== 'notRunning'", timeout=timeout)


def measure(url: str, pid: int, pages, *, seconds: float, settle: float = 5.0, browser=None) -> list[dict]:
    """Open each page in a fresh tab, let it settle, then measure the server's CPU over `seconds`.
    ``browser``: a Playwright browser to use (default: launch the system Chromium)."""
    if browser is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            own = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                return measure(url, pid, pages, seconds=seconds, settle=settle, browser=own)
            finally:
                own.close()
    rows = []
    for name in pages:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            tab = ctx.new_page()
            tab.goto(f"{url}/{PAGES[name]}")
            tab.wait_for_selector("[data-test-script-state]", state="attached", timeout=180_000)
            _wait_idle(tab)
            time.sleep(settle)
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            c1, t1 = cpu_seconds(pid), time.monotonic()
            rows.append({"page": name, "cpu_s": c1 - c0, "wall_s": t1 - t0, "core_pct": 100 * (c1 - c0) / (t1 - t0)})
        finally:
            ctx.close()
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app-dir", type=Path, default=ROOT, help="folder holding app.py (and maybe a .venv)")
    ap.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES))
    ap.add_argument("--seconds", type=float, default=60.0, help="measuring window per page")
    ap.add_argument("--watcher", choices=["auto", "watchdog", "poll", "none"], default=None,
                    help="override server.fileWatcherType (default: the app folder's config)")
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="idle-cpu-"))
    proc, url = start_server(args.app_dir, home=home, watcher=args.watcher)
    try:
        rows = measure(url, proc.pid, args.pages, seconds=args.seconds)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    load = os.getloadavg()
    print(f"app dir {args.app_dir}; watcher {args.watcher or 'from config'}; {os.cpu_count()} CPUs; "
          f"load average {load[0]:.1f} after")
    print("| page | server CPU s | window s | % of one core |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['page']} | {r['cpu_s']:.2f} | {r['wall_s']:.0f} | {r['core_pct']:.2f} |")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
