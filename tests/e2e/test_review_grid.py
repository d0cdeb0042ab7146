"""Grid triage in a real browser: one given -> proposed pair, tiles selected with number keys, a batch
accepted with A, the rest kept with K (the next page opens), U undoes the whole batch, a reload keeps
every decision. Screenshots at 1280x800 go to test-output/e2e/."""
import re

import pytest
from playwright.sync_api import expect

from e2e_support import choose_option, detected_run_without_training, press_key, screenshot, wait_idle

from noisycore import detect, triage
from noisycore.detectors import estimate_noise
from noisycore.review import ReviewStore

pytestmark = [pytest.mark.e2e]
expect.set_options(timeout=90_000)   # a shared 2-core machine


@pytest.fixture
def grid_run(app_home, monkeypatch):
    """300 built-in images, 40% pair noise (class i labelled i+1), predictions without training."""
    monkeypatch.setenv("NOISYLAB_HOME", str(app_home))
    return detected_run_without_training(app_home / "runs", "grid-triage",
                                         noise={"model": "pair", "rate": 0.4, "seed": 5}, seed=1)


def _grid_caption(page):
    return page.locator('[data-testid="stCaptionContainer"]').filter(has_text=re.compile(r"^Page \d+ of")).first


def test_grid_triage_with_the_keyboard(page, app_url, grid_run):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{app_url}/review?run={grid_run.name}&reviewer=gina")
    expect(page.get_by_role("combobox", name="Run")).to_have_value(grid_run.name)
    wait_idle(page)
    screenshot(page, "review-grid-start")
    page.get_by_text("Grid: one pair at a time").click()
    expect(_grid_caption(page)).to_contain_text("Page 1 of ")
    wait_idle(page)

    issues = detect.load_issues(grid_run, "confident_learning")
    info = detect.read_run_labels(grid_run)
    n = estimate_noise(info.labels, detect.pred_probs(grid_run, source="in_sample")).num_issues
    pairs = triage.pair_groups(triage.select_queue(issues, top_n=n))
    given, proposed = pairs["given_label"][0], pairs["proposed_label"][0]
    expect(page.get_by_role("combobox", name="Given → proposed")).to_have_value(re.compile(f"^{given} → {proposed}"))
    items = triage.pair_items(triage.select_queue(issues, top_n=n), given, proposed)["id"].tolist()
    assert len(items) > triage.PAGE_SIZE, f"the largest pair needs two pages, has {len(items)}"
    classes = list(info.class_names)

    press_key(page, "1")
    press_key(page, "3")
    accept = page.get_by_role("button", name=re.compile(f"^Accept {proposed} for the 2 selected"))
    expect(accept).to_be_visible()
    screenshot(page, "review-grid-selected")
    press_key(page, "a")                                          # A: the two selected
    expect(page.get_by_role("button", name=re.compile("for all 8 open on this page"))).to_have_count(2)
    store = ReviewStore.for_run(grid_run)
    for item in (items[0], items[2]):
        d = store.decision_of(item)
        assert (d["decision"], d["new_label"], d["reviewer"]) == ("accept", classes.index(proposed), "gina")

    rest = [i for i in items[:triage.PAGE_SIZE] if i not in (items[0], items[2])]
    press_key(page, "k")                                          # K: every open tile left on the page
    expect(_grid_caption(page)).to_contain_text("Page 2 of ")     # the page is done: the next one opens
    assert all(store.decision_of(i)["decision"] == "keep" for i in rest)

    press_key(page, "u")                                          # U: the whole keep batch, back to page 1
    expect(_grid_caption(page)).to_contain_text("Page 1 of ")
    assert all(store.decision_of(i) is None for i in rest)
    assert store.decision_of(items[0])["decision"] == "accept"
    undo_rows = store.history().query("decision == 'undo'")
    assert sorted(undo_rows["item_id"]) == sorted(rest)

    # a key right after choosing another pair in the selectbox reaches the shortcuts, not the selectbox
    choose_option(page, "Given → proposed", f"{pairs['given_label'][1]} → {pairs['proposed_label'][1]}")
    expect(page.get_by_role("combobox", name="Given → proposed")).to_have_value(
        re.compile(f"^{pairs['given_label'][1]} → {pairs['proposed_label'][1]}"))
    # the selectbox shows the new pair at once; wait until the page's run has drawn its tiles (a key pressed
    # on the old tiles would select there): the new pair's caption counts all its items open
    n_second = len(triage.pair_items(triage.select_queue(issues, top_n=n), pairs["given_label"][1],
                                     pairs["proposed_label"][1]))
    expect(_grid_caption(page)).to_contain_text(f"· {n_second} of {n_second} open")
    wait_idle(page)
    # the page gives the focus back to the document (the selectbox would swallow the key otherwise)
    page.wait_for_function("() => document.activeElement?.getAttribute('role') !== 'combobox'", timeout=10_000)
    press_key(page, "1")
    expect(page.get_by_role("button", name=re.compile("^Accept .* for the 1 selected"))).to_be_visible()

    page.reload()                                                 # a new session: the decisions stay
    expect(page.get_by_role("combobox", name="Run")).to_have_value(grid_run.name)
    wait_idle(page)
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Accepted")
    expect(metric).to_contain_text("2")
    screenshot(page, "review-grid-after-reload")
