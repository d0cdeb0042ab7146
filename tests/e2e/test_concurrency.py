"""A classroom on one server, in real browsers: ten sessions at once, and two reviewers on one run.

Ten sessions: each picks its own noise model, rate and seed on the Data page, saves its own label set
and sets its own number of epochs on the Train page; none sees another's choice; the ten "Start
training" clicks queue behind ONE training process (never ten TensorFlow processes); the server's
memory (RSS) is measured before, at peak and after, and written to test-output/e2e/concurrency.json.

Two reviewers (?reviewer=alice, ?reviewer=bob) decide on the same run at once: every decision is its own
row with its reviewer; the page shows the latest decision per image and who made it; an undo only
cancels its own reviewer's decision.
"""
import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from e2e_support import OUTPUT, detected_run_without_training, screenshot, wait_idle

from noisycore import detect, jobs, runs, triage
from noisycore.config import DataConfig, NoiseConfig
from noisycore.datasets import load_dataset
from noisycore.detectors import estimate_noise
from noisycore.noise import apply_noise
from noisycore.review import ReviewStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
expect.set_options(timeout=90_000)   # a shared 2-core machine (the e2e modules set the same value)
SESSIONS = 10
# (noise model, rate): every session a different setup; the seed is the session number
SETUPS = [("symmetric", 0.1), ("pair", 0.2), ("asymmetric", 0.3), ("symmetric", 0.45), ("pair", 0.35),
          ("uniform", 0.5), ("symmetric", 0.25), ("pair", 0.05), ("asymmetric", 0.6), ("instance", 0.3)]
ITEM = re.compile(r"Item (\d+) of (\d+)")


# ----------------------------------------------------------------------------- the server process
def server_pid() -> int:
    """The streamlit server started by conftest: our child process running `streamlit run`."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"streamlit" in cmd:
            return int(stat.parent.name)
    pytest.skip("the streamlit server process was not found in /proc (not Linux?)")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process in MB from /proc/<pid>/status (VmRSS now, VmHWM = its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """Samples a process's RSS every 0.1 s in a thread; ``peak`` is the largest sample."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def worker_pid(run_dir: Path):
    """The pid of a run's training process (jobs.start writes RUN/worker.pid)."""
    try:
        return int((run_dir / "worker.pid").read_text())
    except (OSError, ValueError):
        return None


def loads_tensorflow(pid) -> bool:
    """Whether process ``pid`` has TensorFlow's shared library mapped (it imported TensorFlow)."""
    try:
        return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


# ----------------------------------------------------------------------------- page helpers
def goto_page(page, title: str) -> None:
    """Follow the sidebar link (keeps the browser session, unlike page.goto)."""
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).click()
    page.get_by_role("heading", name=title).first.wait_for()


def realized(page) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Realized rate")
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def item_caption(page):
    return page.locator('[data-testid="stCaptionContainer"]').filter(has_text=ITEM).first


def decided(page):
    """The note on a revisited image: 'Decided: relabelled to cat by alice, 10:42'."""
    return page.locator('[data-testid="stAlert"]').filter(has_text="Decided: ").first


def position(page) -> int:
    return int(ITEM.search(item_caption(page).inner_text()).group(1))


def settle(page, key: str, before: int, expect_pos: int, tries: int = 3) -> None:
    """Wait until a pressed shortcut has moved the page from item ``before`` to ``expect_pos``.

    On a loaded machine a key pressed while the page was still drawing can be lost (the shortcut's
    listener is not attached yet). If the page is idle and still shows ``before``, the key never
    arrived, so it is pressed again; a page that moved anywhere else fails the test."""
    for _ in range(tries):
        try:
            expect(item_caption(page)).to_contain_text(f"Item {expect_pos} of ", timeout=30_000)
            break
        except AssertionError:
            wait_idle(page)
            now = position(page)
            if now == expect_pos:
                break
            assert now == before, f"pressing {key!r} on item {before} went to item {now}, not {expect_pos}"
            page.keyboard.press(key)
    else:
        raise AssertionError(f"pressing {key!r} {tries} times never left item {before}")
    wait_idle(page)


def press(page, key: str, expect_pos: int) -> None:
    before = position(page)
    page.keyboard.press(key)
    settle(page, key, before, expect_pos)


# ----------------------------------------------------------------------------- ten sessions
def test_ten_sessions_keep_their_own_state_and_queue_their_training(browser, app_url, app_home, monkeypatch):
    monkeypatch.setenv("NOISYLAB_HOME", str(app_home))      # the server's dataset cache
    runs_root = app_home / "runs"
    runs_root.mkdir(exist_ok=True)
    dataset = load_dataset(DataConfig())
    want = [f"{apply_noise(dataset, NoiseConfig(model=m, rate=r, seed=k)).realized_rate:.2%}"
            for k, (m, r) in enumerate(SETUPS)]
    assert len(set(want)) == SESSIONS, want                  # so a mix-up would show
    label_sets = [f"builtin-{m}-{round(r * 100)}-s{k}" for k, (m, r) in enumerate(SETUPS)]   # the default names

    pid = server_pid()
    before = rss_mb(pid)
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(SESSIONS)]
    pages = [c.new_page() for c in contexts]
    try:
        with RssSampler(pid) as sampler:
            t0 = time.monotonic()
            for k, (pg, (model, rate)) in enumerate(zip(pages, SETUPS)):   # all ten load at once
                pg.set_default_timeout(120_000)
                pg.goto(f"{app_url}/data?noise={model}&rate={rate}&seed={k}")
            for k, pg in enumerate(pages):
                expect(pg.locator('[data-testid="stMetric"]').filter(has_text="Realized rate")).to_contain_text(
                    want[k], timeout=240_000)                # ten first page runs share two CPUs
            load_seconds = time.monotonic() - t0
            for pg in pages:                               # each saves its own label set (session state)
                wait_idle(pg)
                pg.get_by_role("button", name="Use these labels").click()
            for k, pg in enumerate(pages):
                pg.get_by_text("The Train page will use this label set").wait_for()
                assert realized(pg) == want[k]              # nobody else's noise leaked in
            for k, pg in enumerate(pages):                 # own label set preselected, own epochs
                goto_page(pg, "Train")
                expect(pg.get_by_role("combobox", name="Label set")).to_have_value(label_sets[k])
                pg.locator('[data-testid="stExpander"] summary').filter(has_text="Optimization").click()
                epochs = pg.locator('[data-testid="stNumberInput"]').filter(has_text="Epochs").locator("input")
                epochs.fill(str(k + 1))
                epochs.press("Enter")
                expect(epochs).to_have_value(str(k + 1))
                wait_idle(pg)
            existing = {p.name for p in runs_root.iterdir()}
            for pg in pages:                               # ten clicks, as fast as a class can
                pg.get_by_role("button", name="Start training").click()
            new, states, max_running, tf_procs = [], [], 0, set()
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                new = [p for p in runs.run_dirs(runs_root) if p.name not in existing]   # complete runs only
                states = [runs.read_status(p).get("state") for p in new]
                max_running = max(max_running, states.count("running"))
                for p in new:
                    worker = worker_pid(p)
                    if worker and loads_tensorflow(worker):
                        tf_procs.add(worker)
                if len(new) == SESSIONS and states.count("running") == 1:
                    break
                time.sleep(0.2)
        peak = sampler.peak
        queued = [worker_pid(p) for p, state in zip(new, states) if state == "queued"]
        worker_rss = [rss_mb(w) for w in queued if w and jobs.pid_alive(w)]
        trainer = worker_pid(new[states.index("running")]) if "running" in states else None
        trainer_rss = rss_mb(trainer) if trainer and jobs.pid_alive(trainer) else float("nan")
        assert len(new) == SESSIONS, [p.name for p in new]
        assert states.count("running") == 1 and states.count("queued") == SESSIONS - 1, states
        assert max_running == 1, "two runs trained at once"
        assert len(tf_procs) <= 1, f"{len(tf_procs)} processes loaded TensorFlow"
        configs = [runs.read_config(p) for p in new]
        by_labels = {Path(c.labels_path).name: c.epochs for c in configs}
        assert by_labels == {label_sets[k]: k + 1 for k in range(SESSIONS)}   # each run = its session's choices
        assert worker_rss and max(worker_rss) < 60, f"a queued run holds {max(worker_rss or [0]):.0f} MB"
    finally:
        for p in sorted(runs.run_dirs(runs_root), key=lambda p: runs.read_status(p).get("state") == "running"):
            if p.is_dir() and runs.read_status(p).get("state") in runs.ACTIVE_STATES:
                jobs.stop(p)                               # queued ones first: none of them may start
        for c in contexts:
            c.close()

    deadline = time.monotonic() + 180
    while any(jobs.poll(p).get("state") in runs.ACTIVE_STATES for p in new) and time.monotonic() < deadline:
        time.sleep(0.5)
    final = [runs.read_status(p) for p in new]
    assert all(s["state"] == "stopped" for s in final), final
    assert sum(s.get("started") is not None for s in final) == 1, "only the first run ever trained"
    after = rss_mb(pid)
    result = {"sessions": SESSIONS, "server_rss_mb_before": round(before, 1), "server_rss_mb_peak": round(peak, 1),
              "server_rss_mb_after": round(after, 1), "server_peak_mb_hwm": round(rss_mb(pid, "VmHWM"), 1),
              "queued_worker_rss_mb_median": round(float(np.median(worker_rss)), 1),
              "queued_workers_rss_mb_total": round(float(np.sum(worker_rss)), 1),
              "training_worker_rss_mb": round(trainer_rss, 1),
              "ten_data_pages_seconds": round(load_seconds, 1), "cpus": os.cpu_count(),
              "load_average": os.getloadavg()[0]}
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "concurrency.json").write_text(json.dumps(result, indent=2))
    print(result)
    assert peak - before < 1024, result     # ten sessions add well under 1 GB to the server


# ----------------------------------------------------------------------------- two reviewers
@pytest.fixture
def review_run(app_home, monkeypatch):
    """A finished run folder on 300 built-in images with 40% symmetric noise and in-sample detection.

    The predictions stand in for a model that learned the true classes (70% on the true class): this
    test is about two people reviewing at once, not about training, so it skips TensorFlow."""
    monkeypatch.setenv("NOISYLAB_HOME", str(app_home))
    return detected_run_without_training(app_home / "runs", "two-reviewers",
                                         noise={"model": "symmetric", "rate": 0.4, "seed": 3})


def test_two_reviewers_on_one_run_keep_both_decisions_and_names(browser, app_url, review_run):
    alice_ctx, bob_ctx = browser.new_context(), browser.new_context()
    try:
        alice, bob = alice_ctx.new_page(), bob_ctx.new_page()
        for pg, name in ((alice, "alice"), (bob, "bob")):
            pg.set_default_timeout(90_000)
            pg.goto(f"{app_url}/review?run={review_run.name}&reviewer={name}")
        for pg in (alice, bob):
            expect(item_caption(pg)).to_contain_text("Item 1 of ")
            expect(pg.get_by_role("combobox", name="Run")).to_have_value(review_run.name)
            wait_idle(pg)
        issues = detect.load_issues(review_run, "confident_learning")
        given = detect.read_run_labels(review_run).labels    # the queue: the N least likely labels (N: CL's estimate)
        n = estimate_noise(given, detect.pred_probs(review_run, source="in_sample")).num_issues
        ids = triage.select_queue(issues, top_n=n)["id"].tolist()
        names = list(json.loads((review_run / "noise.json").read_text())["dataset"]["class_names"])

        press(bob, "ArrowRight", 2)
        press(bob, "ArrowRight", 3)
        alice.keyboard.press("a")                  # both decide at the same moment, on different images
        bob.keyboard.press("x")
        settle(alice, "a", 1, 2)
        settle(bob, "x", 3, 4)
        press(alice, "k", 3)                       # alice reaches the image bob excluded, and sees who did it
        expect(decided(alice)).to_contain_text("Decided: excluded by bob, ")
        press(alice, "a", 4)                       # ... and overrides it with her own decision
        press(bob, "u", 3)                         # bob's undo cancels only his own exclusion
        expect(decided(bob)).to_contain_text("Decided: accepted: ")
        expect(decided(bob)).to_contain_text("by alice")
        screenshot(bob, "review-two-reviewers")

        store = ReviewStore.for_run(review_run)
        history = store.history()
        rows = [(r.reviewer, r.decision, r.item_id) for r in history.itertuples()]
        assert sorted(rows[:2]) == sorted([("alice", "accept", ids[0]), ("bob", "exclude", ids[2])])
        assert rows[2:] == [("alice", "keep", ids[1]), ("alice", "accept", ids[2]), ("bob", "undo", ids[2])]
        bob_exclude = history[(history["reviewer"] == "bob") & (history["decision"] == "exclude")]["id"].iloc[0]
        assert history.iloc[-1]["undoes"] == bob_exclude
        latest = store.latest().set_index("item_id")
        assert list(latest["reviewer"]) == ["alice"] * 3
        assert dict(latest["decision"]) == {ids[0]: "accept", ids[1]: "keep", ids[2]: "accept"}
        proposed = issues.set_index("id").loc[ids[2], "proposed_label"]
        assert int(latest.loc[ids[2], "new_label"]) == names.index(proposed)
    finally:
        alice_ctx.close()
        bob_ctx.close()
