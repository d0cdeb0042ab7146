"""A new user's own images in a real browser: a zip of class folders with planted wrong folders and an
unreadable file -> Data (named after the zip, the skipped file listed, noise "none") -> Train -> Curves
(no claim of known truth) -> Review (every image, held-out ones included, judged) -> retrain on the
reviewed labels (provenance, not noise; the run named "<run> after review (...)").
Screenshots go to test-output/e2e/own-*.png.
"""
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect

from e2e_support import screenshot, wait_idle

from noisycore import detect, evaluation, runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import own_folder  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
expect.set_options(timeout=120_000)


def _goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).click()
    page.get_by_role("heading", name=title).first.wait_for()
    wait_idle(page)


def _newest(runs_root: Path, before: set) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = [p for p in runs.run_dirs(runs_root) if p.name not in before]
        if new:
            return new[-1]
        time.sleep(0.2)
    raise AssertionError(f"no new run folder under {runs_root}")


def _wait_finished(path: Path, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = json.loads((path / "status.json").read_text())["state"]
        except (OSError, ValueError, KeyError):
            state = None
        if state in ("finished", "stopped", "failed"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"{path} did not finish")


def test_own_zip_is_reviewed_without_claims_of_truth(page, app_url, app_home, tmp_path):
    root, planted = own_folder(tmp_path / "src" / "garden photos", n_per_class=25, planted=6, unreadable=1)
    archive = Path(shutil.make_archive(str(tmp_path / "garden photos"), "zip", root))
    runs_root = app_home / "runs"
    runs_root.mkdir(exist_ok=True)

    # Data: named after the zip, the unreadable file listed, the labels kept as given.
    page.goto(app_url + "/data")
    wait_idle(page)
    page.get_by_role("radio", name="Upload a zip").click()
    wait_idle(page)
    page.locator('input[type="file"]').set_input_files(str(archive))
    page.get_by_text("1 of 101 images could not be read and were left out: q0/broken-0.jpg").wait_for()
    page.get_by_text("garden photos", exact=True).first.wait_for()
    page.get_by_text("no injected noise: the labels are used as given").wait_for()
    assert page.get_by_text("Realized rate").count() == 0
    screenshot(page, "own-data")
    page.get_by_role("button", name="Use these labels").click()
    page.get_by_text("The Train page will use this label set").wait_for()

    # Train a short run.
    _goto(page, "Train")
    page.get_by_text("labels as given; which of them are wrong is unknown").wait_for()
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Optimization").click()
    box = page.locator('[data-testid="stNumberInput"]').filter(has_text="Epochs").locator("input")
    box.fill("3")
    box.press("Enter")
    wait_idle(page)
    before = {p.name for p in runs_root.iterdir()}
    page.get_by_role("button", name="Start training").click()
    run = _newest(runs_root, before)
    assert _wait_finished(run) == "finished", (run / "log.txt").read_text()[-2000:]
    page.locator('[data-testid="stMetric"]').filter(has_text="Held-out accuracy (given labels)").first.wait_for()
    assert page.get_by_text("Train accuracy on true labels").count() == 0

    # Curves: no clean / true-label numbers.
    _goto(page, "Curves & compare")
    page.get_by_role("heading", name="Evaluation").wait_for()
    page.locator('[data-testid="stMetric"]').filter(has_text="Held-out accuracy (given labels), best model").wait_for()
    assert page.get_by_text("Clean test accuracy").count() == 0
    screenshot(page, "own-curves")

    # Review: in-sample scores every image, the held-out ones too; nothing claims a truth.
    _goto(page, "Review")
    page.get_by_text("This run's own predictions").click()
    wait_idle(page)
    page.get_by_role("button", name="Find label issues").click()
    page.get_by_text("The true labels are unknown").first.wait_for(timeout=120_000)
    wait_idle(page)
    assert page.get_by_text("Precision", exact=True).count() == 0
    frame = detect.load_issues(run, "confident_learning")
    info = detect.read_run_labels(run)
    assert len(frame) == 100 and set(frame["id"]) == set(info.ids) and (info.splits == "test").any()
    assert "true_label" not in frame and evaluation.truth_known(runs.load_run(run)) is False
    screenshot(page, "own-review")

    # Retrain on the reviewed labels: the fixes are reviewed labels, not noise.
    first = frame.iloc[0]
    page.locator("body").press("a")
    wait_idle(page)
    page.get_by_role("button", name="Retrain with corrected labels").click()
    page.get_by_text("in the background").wait_for()
    new = _newest(runs_root, before | {run.name})
    reviewed = json.loads((new / evaluation.REVIEWED_FILE).read_text())
    assert reviewed["title"] == f"{run.name} after review ({int(first['proposed_label'] != first['given_label'])} " \
                                "changed, 0 excluded)"
    corrected = pd.read_csv(Path(reviewed["labels"]) / "labels.csv", keep_default_na=False).set_index("id")
    row = corrected.loc[first["id"]]
    assert (row["decision"], row["original_label"], row["label"]) == \
        ("accepted", first["given_label"], first["proposed_label"])
    assert (corrected["is_noisy"] == "").all() and json.loads(
        (Path(reviewed["labels"]) / "noise.json").read_text())["truth_known"] is False
    assert _wait_finished(new) == "finished"
    assert (pd.read_csv(new / "labels.csv", keep_default_na=False)["is_noisy"] == "").all()
