"""Retake the README's screenshots (and a few more) from the current app, in headless Chromium.

    python tests/e2e/screenshots.py                                   # 1280x800 into test-output/screenshots/
    python tests/e2e/screenshots.py --size 1920x1080 --out /tmp/shots
    python tests/e2e/screenshots.py --readme                          # 1280x800, README's images into docs/screenshots/
    python tests/e2e/screenshots.py --readme --epochs 30 --max-train 8000   # longer runs: a clearer memorization gap
    python tests/e2e/screenshots.py --home /tmp/shots-home            # keep (and reuse) the runs it trains

It makes its own small world first (skipped when --home already holds it): a 40% pair-noise label set
of the built-in shapes, two short runs on it (cross-entropy and GCE), in-sample detection on the first,
a tiny sweep (two rates x two losses) and a three-class image folder; about three minutes on a laptop CPU.
Then it starts `streamlit run app.py` (the project's own config) and photographs each page at the given
window size, each page's full height. The numbers in the pictures come from tiny runs: fine for showing
the app, not for quoting.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_cpu import CHROMIUM, start_server  # noqa: E402

LABELS = "builtin-pair-40-s0"
THREE = ("airplane", "automobile", "cat")
# name -> (address, README file name or None); the Review and Compare pages pick the runs made here.
# The README shows a part of some pages: README_PART[name] = ("chart", n) for the n-th visible chart,
# or ("main", max height in px) for the top of the page's main column.
README_PART = {"data": ("main", 1400), "memorization": ("chart", 1), "sweep": ("chart", 0), "review": ("main", 1400)}
SHOTS = {
    "home": ("/", None),
    "data": ("/data?noise=pair&rate=0.4", "data.png"),
    "data_3class": ("/data?dataset=Folder+or+CSV+on+this+computer&path={three}&noise=pair&rate=0.3", None),
    "train": ("/train", None),
    "memorization": ("/curves?view=Run", "memorization.png"),
    "compare": ("/curves?view=Compare", None),
    "sweep": ("/curves?view=Sweeps", "sweep.png"),
    "review": ("/review?run={ce_run}", "review.png"),
}


def _cli(home: Path, *args) -> str:
    env = dict(os.environ, NOISYLAB_HOME=str(home), NOISYLAB_RUNS=str(home / "runs"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "noisycore.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"noisycore {' '.join(map(str, args))} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def three_class_folder(root: Path) -> Path:
    """A tiny image folder with three classes (long names: the heatmap headers must not collide)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(THREE):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(30):
            img = rng.integers(0, 80, (16, 16, 3)).astype(np.uint8)
            img[:, :, c] += np.uint8(150)
            Image.fromarray(img).save(root / name / f"{i:02d}.png")
    return root


def make_world(home: Path, *, epochs: int = 12, max_train: int = 3000) -> dict:
    """Label set, two runs, detection, sweep and the 3-class folder under ``home`` (reused when present).
    ``epochs`` and ``max_train`` size the two runs (more of both: a clearer memorization gap, slower)."""
    runs_root, labels = home / "runs", home / "labels" / LABELS
    if not (labels / "labels.csv").exists():
        _cli(home, "inject", "--dataset", "builtin", "--noise", "pair", "--rate", "0.4", "--out", labels)
    made = sorted(p for p in runs_root.glob(f"*-{LABELS}") if (p / "summary.json").exists()) if runs_root.exists() else []
    if len(made) < 2:
        for loss in ("gce", "ce"):      # the ce run is the newest: the Run view shows its memorization gap
            _cli(home, "train", "--labels", labels, "--loss", loss, "--epochs", epochs, "--max-train", max_train,
                 "--out", runs_root)
        made = sorted(p for p in runs_root.glob(f"*-{LABELS}") if (p / "summary.json").exists())
    ce_run = next(p for p in reversed(made) if "-ce-" in p.name)
    if not (ce_run / "issues").exists():
        _cli(home, "detect", "--run", ce_run, "--detector", "confident_learning", "--folds", "0",
             "--out", home / "detected.csv")
    sweep = runs_root / "sweep-demo"
    if not (sweep / "summary.csv").exists():
        _cli(home, "sweep", "--noise", "symmetric", "--rates", "0,0.4", "--losses", "ce,gce", "--epochs", "8",
             "--max-train", "1000", "--out", sweep)    # the README's caption describes this sweep
    three = home / "three-classes"
    if not three.exists():
        three_class_folder(three)
    return {"ce_run": ce_run.name, "three": str(three)}


def shoot(url: str, out: Path, *, width: int, height: int, names=None, values=None) -> list[Path]:
    """Photograph each page (full height) into ``out``; returns the files."""
    from playwright.sync_api import sync_playwright

    from e2e_support import wait_idle

    out.mkdir(parents=True, exist_ok=True)
    files = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for name in names or SHOTS:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.set_default_timeout(180_000)
                page.goto(url + SHOTS[name][0].format(**(values or {})))
                page.wait_for_selector("[data-test-script-state]", state="attached")
                wait_idle(page)
                time.sleep(2.0)                      # charts draw after the script ends
                page_height = page.evaluate(
                    "() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 0")
                page.set_viewport_size({"width": width, "height": max(height, min(int(page_height) + 40, 6000))})
                time.sleep(1.0)
                path = out / f"{name}.png"
                page.screenshot(path=str(path), full_page=True)
                files.append(path)
                if name in README_PART:
                    files.append(_readme_part(page, name, out))
                page.close()
        finally:
            browser.close()
    return files


def _readme_part(page, name: str, out: Path) -> Path:
    """The part of the page the README shows (see README_PART), as ``<name>-readme.png``."""
    kind, n = README_PART[name]
    path = out / f"{name}-readme.png"
    if kind == "chart":   # the window is as tall as the page (see shoot), so a clip needs no scrolling
        boxes = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stVegaLiteChart] svg.marks')]
            .filter(e => e.checkVisibility()).map(e => { const r = e.getBoundingClientRect();
                return {x: r.x, y: r.y + window.scrollY, width: r.width, height: r.height}; })""")
        box = dict(boxes[n])     # charts in a closed expander are left out
    else:
        box = page.locator("[data-testid=stMainBlockContainer]").bounding_box()
        box["height"] = min(box["height"], n)
    page.screenshot(path=str(path), clip={k: box[k] for k in ("x", "y", "width", "height")}, full_page=True)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x800", help="window WIDTHxHEIGHT (default 1280x800)")
    ap.add_argument("--out", type=Path, default=ROOT / "test-output" / "screenshots")
    ap.add_argument("--home", type=Path, default=None, help="data and runs folder to make or reuse")
    ap.add_argument("--readme", action="store_true", help="also copy the README's images into docs/screenshots/")
    ap.add_argument("--pages", nargs="+", choices=list(SHOTS), default=list(SHOTS))
    ap.add_argument("--epochs", type=int, default=12, help="epochs of the two runs it trains (default 12)")
    ap.add_argument("--max-train", type=int, default=3000, help="training images of those runs (default 3000)")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    home = args.home or Path(tempfile.mkdtemp(prefix="noisylab-shots-"))
    home.mkdir(parents=True, exist_ok=True)
    values = make_world(home, epochs=args.epochs, max_train=args.max_train)
    proc, url = start_server(ROOT, home=home)
    try:
        files = shoot(url, args.out, width=width, height=height, names=args.pages, values=values)
    finally:
        proc.terminate()
        proc.wait(10)
    for f in files:
        print(f)
    if args.readme:
        import shutil

        for name in args.pages:
            target = SHOTS[name][1]
            if target:
                shutil.copyfile(args.out / f"{name}-readme.png", ROOT / "docs" / "screenshots" / target)
                print(f"README: docs/screenshots/{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
