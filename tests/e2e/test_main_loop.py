"""The main loop as a user does it, in a real browser, on the built-in shapes.

Data & noise (40% noise, "Use these labels") -> Train (Quick preset made smaller through its widgets;
progress bar and curves update; a second run is stopped mid-way) -> Curves & compare -> Review (in-sample
detection; ten images decided with the keyboard, one undo; reload resumes; CSV export checked row by row).
Screenshots of every page go to test-output/e2e/.
"""
import json
import time
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect

from e2e_support import current_item, goto_page, item_caption, newest_run, press, screenshot, tally, wait_idle

from noisycore import detect, triage
from noisycore.detectors import estimate_noise
from noisycore.review import ReviewStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EPOCHS = 3            # keep the first run well under a minute on a shared 2-core CPU
MAX_TRAIN = 1000
expect.set_options(timeout=90_000)   # a shared 2-core machine (the e2e modules set the same value)


# ----------------------------------------------------------------------------- small page helpers
def set_number(page, label: str, value: int) -> None:
    box = page.locator('[data-testid="stNumberInput"]').filter(has_text=label).locator("input")
    box.fill(str(value))
    box.press("Enter")
    expect(box).to_have_value(str(value))
    wait_idle(page)


def open_expander(page, title: str) -> None:
    page.locator('[data-testid="stExpander"] summary').filter(has_text=title).click()


def pick_option(page, label: str, option: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).click()
    page.get_by_role("option").filter(has_text=option).first.click()
    wait_idle(page)


def state_of(run: Path) -> str:
    try:
        return json.loads((run / "status.json").read_text())["state"]
    except (OSError, ValueError, KeyError):
        return "unknown"


# ----------------------------------------------------------------------------- the loop
def test_main_loop_data_train_curves_review_export(page, app_url, app_home):
    runs_root = app_home / "runs"
    runs_root.mkdir(exist_ok=True)

    # 1. Data & noise: 40% symmetric noise on the built-in shapes, saved as the label set to train on.
    page.goto(app_url + "/data?noise=symmetric&rate=0.4&seed=0")
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Realized rate")
    expect(metric).to_contain_text("40.00%")
    wait_idle(page)
    screenshot(page, "data")
    page.get_by_role("textbox", name="Name of the label set").fill("main-loop-sym40")
    page.get_by_role("textbox", name="Name of the label set").press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Use these labels").click()
    page.get_by_text("The Train page will use this label set").wait_for()
    assert (app_home / "labels" / "main-loop-sym40" / "labels.csv").is_file()

    # 2. Train: the Quick preset, smaller through the widgets; watch the progress bar and the curves.
    goto_page(page, "Train")
    expect(page.get_by_role("combobox", name="Label set")).to_have_value("main-loop-sym40")
    open_expander(page, "Optimization")
    set_number(page, "Epochs", EPOCHS)
    open_expander(page, "Validation and early stopping")
    set_number(page, "Max. training images", MAX_TRAIN)
    before = {p.name for p in runs_root.iterdir()}
    page.get_by_role("button", name="Start training").click()
    first = newest_run(runs_root, before)
    config = json.loads((first / "config.json").read_text())
    assert (config["epochs"], config["max_train"], config["preset"]) == (EPOCHS, MAX_TRAIN, "quick")
    assert config["labels_path"].endswith("main-loop-sym40")

    progress = page.locator('[data-testid="stProgress"]')
    texts, deadline = [], time.monotonic() + 240
    while state_of(first) in ("queued", "running", "unknown") and time.monotonic() < deadline:
        if progress.count():
            try:
                text = progress.first.inner_text(timeout=1000).strip()
            except Exception:   # the fragment redrew it between count() and inner_text()
                text = ""
            if text and (not texts or texts[-1] != text):
                texts.append(text)
        time.sleep(0.25)
    assert state_of(first) == "finished", (first / "log.txt").read_text()[-2000:]
    assert any(t.startswith("epoch ") for t in texts), texts    # 'epoch 2 of 3, batch 5 of 27, about 9 s left'
    assert len(set(texts)) >= 2, texts                           # it moved while we watched
    page.get_by_text(f"{first.name}: finished").first.wait_for()
    expect(page.locator('[data-testid="stVegaLiteChart"]')).to_have_count(2)   # accuracy and loss curves
    page.locator('[data-testid="stMetric"]').filter(has_text="Test accuracy (best epoch").wait_for()
    screenshot(page, "train")

    # A second, longer run, stopped once it trains: it ends "stopped" and keeps its partial results.
    set_number(page, "Epochs", 40)
    before = {p.name for p in runs_root.iterdir()}
    page.get_by_role("button", name="Start training").click()
    second = newest_run(runs_root, before)
    page.get_by_text(f"{second.name}: running").wait_for(timeout=120_000)
    expect(progress.first).to_contain_text("epoch ", timeout=120_000)
    page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text(f"{second.name}: stopped").first.wait_for(timeout=120_000)
    status = json.loads((second / "status.json").read_text())
    assert status["state"] == "stopped" and status["epoch"] < 40, status

    # 3. Curves & compare: the finished run's curves and evaluation.
    goto_page(page, "Curves & compare")
    pick_option(page, "Run", first.name)
    page.get_by_role("heading", name="Evaluation").wait_for()
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2
    screenshot(page, "curves")

    # 4. Review: in-sample detection, then ten images with the keyboard.
    goto_page(page, "Review")
    expect(page.get_by_role("combobox", name="Run")).to_have_value(first.name)
    page.get_by_text("This run's own predictions").click()
    wait_idle(page)
    page.get_by_role("button", name="Find label issues").click()
    page.get_by_text("3. Review the likely wrong labels").first.wait_for(timeout=120_000)   # a folded section
    expect(item_caption(page)).to_contain_text("Item 1 of ")
    wait_idle(page)
    issues = detect.load_issues(first, "confident_learning")
    given = detect.read_run_labels(first).labels   # the queue: the N least likely labels, N = CL's estimate
    estimate = estimate_noise(given, detect.pred_probs(first, source="in_sample")).num_issues
    flagged = triage.select_queue(issues, top_n=estimate)
    assert len(flagged) >= 12, f"only {len(flagged)} labels to review"
    names = list(json.loads((first / "noise.json").read_text())["dataset"]["class_names"])

    # key, the queue position on screen before (1-based), and after
    steps = [("a", 1, 2), ("k", 2, 3), ("3", 3, 4), ("u", 4, 3), ("5", 3, 4), ("ArrowRight", 4, 5),
             ("a", 5, 6), ("x", 6, 7), ("k", 7, 8), ("1", 8, 9), ("a", 9, 10), ("k", 10, 11), ("a", 11, 12)]
    seen = {}
    for key, pos, after in steps:
        shown, item_id = current_item(page)
        assert shown == pos, (key, shown, pos)
        seen[pos] = item_id
        press(page, key, after)
    assert [seen[p] for p in range(1, 12)] == flagged["id"].tolist()[:11]   # most suspicious first

    def expected(pos, key):
        row = flagged.iloc[pos - 1]
        given, proposed = names.index(row["given_label"]), names.index(row["proposed_label"])
        if key == "a":
            return "accept", proposed
        if key == "k":
            return "keep", given
        if key == "x":
            return "exclude", None
        k = int(key) - 1
        return ("keep" if k == given else "relabel"), k

    want = {seen[p]: expected(p, k) for k, p, _ in steps if k not in ("u", "ArrowRight", "3")}
    store = ReviewStore.for_run(first)
    latest = store.latest().set_index("item_id")
    assert set(latest.index) == set(want), "exactly the ten decided images have a decision"
    for item_id, (decision, label) in want.items():
        row = latest.loc[item_id]
        assert row["decision"] == decision and row["reviewer"] == "reviewer", (item_id, dict(row))
        assert (pd.isna(row["new_label"]) if label is None else int(row["new_label"]) == label), (item_id, dict(row))
    history = store.history()
    undo_row = history[history["decision"] == "undo"]
    assert len(undo_row) == 1 and undo_row.iloc[0]["item_id"] == seen[3]         # the "3" was undone
    counts = {"Accepted": 4, "Excluded": 1}
    counts["Kept"] = sum(d == "keep" for d, _ in want.values())
    counts["Relabelled"] = sum(d == "relabel" for d, _ in want.values())
    assert tally(page) == counts

    # Reload: a new browser session finds every decision and resumes at the first unreviewed item (4).
    assert f"run={first.name}" in page.url
    page.reload()
    expect(item_caption(page)).to_contain_text("Item 4 of ")
    expect(page.get_by_role("combobox", name="Run")).to_have_value(first.name)
    wait_idle(page)
    assert current_item(page)[1] == seen[4]
    assert tally(page) == counts
    expect(page.locator('[data-testid="stProgress"]').first).to_contain_text(f"10 of {len(flagged)} reviewed")
    screenshot(page, "review")

    # Export: the corrected CSV has one row per training example, with the decisions as made.
    with page.expect_download() as info:
        page.get_by_role("button", name="Corrected labels (CSV)").click()
    path = info.value.path()
    csv = pd.read_csv(path, dtype=str, keep_default_na=False)
    trained = pd.read_csv(first / "labels.csv", dtype=str, keep_default_na=False)
    assert len(csv) == len(trained) and 0.98 * MAX_TRAIN <= len(csv) <= MAX_TRAIN   # a stratified subset
    assert set(csv["id"]) == set(trained["id"])
    rows = csv.set_index("id")
    for item_id, (decision, label) in want.items():
        assert rows.loc[item_id, "decision"] == decision
        assert rows.loc[item_id, "final_label"] == ("" if label is None else names[label])
    untouched = rows.drop(index=list(want))
    assert (untouched["decision"] == "unreviewed").all()
    assert (untouched["final_label"] == untouched["given_label"]).all()
