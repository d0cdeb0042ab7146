"""Classroom-ready, in a real browser: an idle server stays idle, wrong address parameters are named,
and the pages fit a 1280x800 laptop and a 1920x1080 projector (also in presenter mode).

Screenshots go to test-output/e2e/classroom-*.png: look at them after a change to a chart or a page.
"""
import shutil
import sys
from pathlib import Path

import pytest

from noisycore.config import PRESETS

from e2e_support import ROOT, screenshot, wait_idle

sys.path.insert(0, str(ROOT / "benchmarks"))
from idle_cpu import measure  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import three_class_folder  # noqa: E402

from noisycore import runs  # noqa: E402

pytestmark = pytest.mark.e2e
IDLE_LIMIT = 5.0     # % of one core; the recorded figure is ~0.4% (benchmarks/README.md), the goal 2%
SIZES = [(1280, 800), (1920, 1080)]


def test_idle_server_with_an_open_tab_stays_idle(app_server, browser):
    """The server as configured by the project (no file watcher) uses almost no CPU while a tab sits open.
    With the old watcher and a virtual environment inside the app folder this was ~75% of a core."""
    proc, url = app_server
    rows = measure(url, proc.pid, ["home", "train"], seconds=12, settle=3, browser=browser)
    for row in rows:
        assert row["core_pct"] < IDLE_LIMIT, rows


def _alerts(page) -> list[str]:
    return [a.inner_text() for a in page.locator('[data-testid="stAlert"]').all()]


@pytest.mark.parametrize("address, shown", [
    ("/data?noise=banana&rate=7", ["noise=banana", "none, symmetric", "Using noise=symmetric",
                                   "rate=7", "numbers from 0 to 0.95", "Using rate=0.4"]),
    ("/data?rate=nan&colour=red", ["rate=nan", "colour=red", "not a setting of this page"]),
    ("/train?preset=turbo", ["preset=turbo", ", ".join(PRESETS), "Using preset=quick"]),
    ("/curves?view=Banana", ["view=Banana", "Run, Compare, Sweeps", "Using view=Run"]),
])
def test_every_ignored_address_parameter_is_named(page, app_url, address, shown):
    page.goto(app_url + address)
    page.locator('[data-testid="stAlert"]').first.wait_for()
    wait_idle(page)
    text = " ".join(_alerts(page))
    for words in shown:
        assert words in text, text


def test_a_valid_address_gives_no_notice(page, app_url):
    page.goto(app_url + "/data?noise=pair&rate=0.2&seed=3")
    page.get_by_text("20% of each class is relabelled").wait_for()
    wait_idle(page)
    assert not [a for a in _alerts(page) if "page address" in a]


def _fits(page) -> dict:
    """Overflow checks in the live page: the main area, each chart and each button label."""
    return page.evaluate("""() => {
        const main = document.querySelector('[data-testid=stMain] [data-testid=stMainBlockContainer]');
        const right = main.getBoundingClientRect().right + 1;
        const svgs = [...document.querySelectorAll('[data-testid=stVegaLiteChart] svg.marks')];
        if (!svgs.length) return {charts: 'no chart found'};
        const charts = svgs.filter(c => c.getBoundingClientRect().right > right).length;
        const buttons = [...document.querySelectorAll('.stMarkdownEllipsis p, [data-testid=stMetricLabel] p')]
            .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText);
        return {pageScroll: main.scrollWidth > main.clientWidth + 1, charts, buttons};
    }""")


@pytest.mark.slow
@pytest.mark.parametrize("width, height", SIZES)
def test_data_pages_fit_laptop_and_projector_with_and_without_presenter_mode(browser, app_url, app_home,
                                                                              width, height):
    three = app_home / "three-classes"
    if not three.exists():
        three_class_folder(three)
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    try:
        for name, address in [("data10", "/data?noise=pair&rate=0.4"),
                              ("data3", f"/data?dataset=Folder+or+CSV+on+this+computer&path={three}&noise_own=pair")]:
            page.goto(app_url + address)
            page.get_by_text("Realized noise matrix").wait_for()
            wait_idle(page)
            page.wait_for_timeout(1500)               # the charts draw after the script ends
            assert _fits(page) == {"pageScroll": False, "charts": 0, "buttons": []}, name
            screenshot(page, f"classroom-{width}x{height}-{name}")
        page.get_by_text("Presenter mode (larger type)").click()
        wait_idle(page)
        page.wait_for_function("() => getComputedStyle(document.documentElement).fontSize === '21px'")
        page.wait_for_timeout(1500)
        assert _fits(page) == {"pageScroll": False, "charts": 0, "buttons": []}
        screenshot(page, f"classroom-{width}x{height}-data3-presenter")
    finally:
        ctx.close()


def _two_runs(app_home: Path) -> None:
    """Two finished hand-written runs on the three-class folder (no training): cross-entropy and GCE."""
    sys.path.insert(0, str(ROOT / "tests"))
    from hostile import tiny_run

    three = app_home / "three-classes"
    if not three.exists():
        three_class_folder(three)
    root = app_home / "runs"
    for name, loss in [("20260101-000000-ce-three-classes", {}), ("20260101-000001-gce-three-classes",
                                                                 {"loss": "gce", "loss_params": {"q": 0.7}})]:
        if (root / name).exists():
            continue
        made = tiny_run(app_home / "made" / name, three)
        config = runs.read_config(made).replace(**loss) if loss else runs.read_config(made)
        runs.atomic_write_text(made / "config.json", config.to_json())
        root.mkdir(parents=True, exist_ok=True)
        shutil.move(str(made), str(root / name))


@pytest.mark.slow
@pytest.mark.parametrize("width, height", SIZES)
def test_train_and_curves_pages_fit_laptop_and_projector(browser, app_url, app_home, width, height):
    _two_runs(app_home)
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    try:
        for name, address, ready in [("train", "/train", "Test accuracy (best epoch"),
                                     ("curves-run", "/curves?view=Run", "Clean test accuracy (best epoch"),
                                     ("curves-compare", "/curves?view=Compare", "Download as CSV")]:
            page.goto(app_url + address)
            page.get_by_text(ready).first.wait_for()
            wait_idle(page)
            page.wait_for_timeout(1500)
            assert _fits(page) == {"pageScroll": False, "charts": 0, "buttons": []}, name
            screenshot(page, f"classroom-{width}x{height}-{name}")
    finally:
        ctx.close()


# ------------------------------------------------------------------------------ workspaces (issue 33)
def _options(page, label: str) -> list[str]:
    """The choices of the selectbox ``label`` (opened, read, closed again)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    if not page.get_by_role("option").count():
        box.press("ArrowDown")                          # react-aria's combobox also opens on the arrow key
    page.get_by_role("option").first.wait_for()
    found = [o.inner_text() for o in page.get_by_role("option").all()]
    page.keyboard.press("Escape")
    return found


@pytest.fixture
def classroom(tmp_path, monkeypatch):
    """A server of its own (its runs do not disturb the other tests' pages): alice's label set and her run
    training (epoch 2 of 4 after 30 s; its worker is a stand-in process), the teacher's shared label set
    and finished run, the teacher's private run; the training slot is held, so a new run stays queued."""
    import subprocess
    from datetime import datetime, timedelta

    from idle_cpu import start_server

    from noisycore import jobs, workspaces
    from noisycore.config import DataConfig, NoiseConfig, TrainConfig
    from noisycore.datasets import load_dataset
    from noisycore.labelsets import save_label_set
    from noisycore.noise import apply_noise

    home = tmp_path / "home"
    monkeypatch.setenv("NOISYLAB_HOME", str(home))       # this process's dataset cache too
    root = home / "runs"
    root.mkdir(parents=True)
    data = DataConfig(max_train=40)
    dataset = load_dataset(data)
    for name, owner, shared in [("alice-pets", "alice", False), ("teacher-demo", "teacher", True)]:
        out = save_label_set(home / "labels" / name, dataset, apply_noise(dataset, NoiseConfig(model="pair", rate=0.2)),
                             data_config=data)
        workspaces.write_owner(out, owner, shared=shared)
    worker = subprocess.Popen(["sleep", "600"])
    made = {}
    for name, owner, state in [("teacher-shared", "teacher", "finished"), ("teacher-private", "teacher", "finished"),
                               ("alice-run", "alice", "running")]:
        made[name] = runs.create_run(TrainConfig(epochs=4), root=root, name=name, owner=owner)
        runs.update_status(made[name], state=state, pid=worker.pid)
    workspaces.set_shared(made["teacher-shared"], True, by="teacher")
    start = datetime.now().astimezone() - timedelta(seconds=30)
    runs.update_status(made["alice-run"], epoch=2, epochs=4, batch=5, batches=10, started=start.isoformat())
    slot = jobs.try_lock(root / jobs.LOCK_NAME)          # the slot alice's run would hold
    proc, url = start_server(ROOT, home=home)
    try:
        yield url, root, made
    finally:
        for run in runs.run_dirs(root):
            if runs.read_status(run).get("state") == "queued":
                jobs.stop(run)
        proc.terminate()
        proc.wait(10)
        slot.release()
        worker.kill()
        worker.wait()


def test_two_named_sessions_see_their_own_and_the_shared_items_and_the_queue_place(browser, classroom):
    from playwright.sync_api import expect

    url, root, made = classroom
    sessions = {name: browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
                for name in ("alice", "bob")}
    try:
        alice, bob = sessions["alice"], sessions["bob"]
        for name, page in sessions.items():
            page.set_default_timeout(60_000)
            page.goto(f"{url}/train?user={name}")
            page.get_by_text("3. Runs").wait_for()
            wait_idle(page)
            expect(page.get_by_role("textbox", name="Your name (your workspace)")).to_have_value(name)
        demo, shared_set = "Built-in shapes, 40% symmetric noise", "teacher-demo (teacher's, shared)"
        assert _options(bob, "Label set") == [demo, shared_set]
        assert _options(alice, "Label set") == [demo, "alice-pets", shared_set]
        bob_runs = _options(bob, "Run")
        assert [o.split(" (")[0] for o in bob_runs] == [made["teacher-shared"].name], bob_runs
        assert [o.split(" (")[0] for o in _options(alice, "Run")] == [made["alice-run"].name, made["teacher-shared"].name]

        bob.get_by_role("button", name="Start training").click()
        bar = bob.get_by_text("queued: place 1 in the queue")
        bar.wait_for()
        text = bar.inner_text()
        assert f"waiting for {made['alice-run'].name} (alice's)" in text and "estimated wait" in text, text
        assert "?user=bob" in bob.url or "user=bob" in bob.url
        screenshot(bob, "classroom-bob-queued")
        [queued] = [r for r in runs.run_dirs(root) if r not in made.values()]
        assert runs.read_status(queued)["owner"] == "bob" and runs.read_status(queued)["state"] == "queued"

        alice.reload()                                        # alice never sees bob's run
        alice.get_by_text("3. Runs").wait_for()
        wait_idle(alice)
        assert queued.name not in " ".join(_options(alice, "Run"))
    finally:
        for page in sessions.values():
            page.context.close()
