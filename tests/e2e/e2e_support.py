"""Helpers for the real-browser tests (a module of its own: `conftest` is a name two folders share)."""
import re
import shutil
import time
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


def detected_run_without_training(root, name: str, *, noise: dict, max_train: int = 300, seed: int = 0) -> Path:
    """A finished run folder on ``max_train`` built-in images with injected ``noise`` and in-sample detection.

    Its predictions stand in for a model that learned the true classes (70% on the true class, the rest
    spread at random): for tests about reviewing, not training, so no TensorFlow. NOISYLAB_HOME must point
    at the app's home (the label set is saved there)."""
    import numpy as np

    from noisycore import detect, runs
    from noisycore.config import DataConfig, TrainConfig
    from noisycore.datasets import load_dataset
    from noisycore.labelsets import save_label_set
    from noisycore.noise import apply_noise

    config = TrainConfig.from_preset("quick", max_train=max_train, noise=noise)
    run = runs.create_run(config, root=root, name=name)
    dataset = load_dataset(DataConfig(max_train=max_train))
    noisy = apply_noise(dataset, config.noise)
    save_label_set(run, dataset, noisy, data_config=config.data)
    rng = np.random.default_rng(seed)

    def probs(true):
        p = rng.dirichlet(np.ones(dataset.num_classes), size=len(true)) * 0.3
        p[np.arange(len(true)), true] += 0.7
        return p.astype(np.float32)

    np.savez(run / "predictions.npz", train_probs=probs(noisy.true_labels), test_probs=probs(dataset.y_test),
             train_ids=dataset.ids_train.astype(str), test_ids=dataset.ids_test.astype(str))
    runs.update_status(run, state="finished", epoch=config.epochs, finished=runs.now_iso())
    detect.detect_all(run, source="in_sample")
    return run


# ----------------------------------------------------------------------------- page helpers shared by the tests
ITEM = re.compile(r"Item (\d+) of (\d+)")   # the one-by-one review view's counter


def goto_page(page, title: str) -> None:
    """Follow the sidebar link (keeps the browser session, unlike page.goto)."""
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).click()
    page.get_by_role("heading", name=title).first.wait_for()
    wait_idle(page)


def newest_run(runs_root: Path, before: set) -> Path:
    """The run folder that appeared under ``runs_root`` since ``before`` (names), waiting up to 30 s."""
    from noisycore import runs

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = [p for p in runs.run_dirs(runs_root) if p.name not in before]   # complete run folders only
        if new:
            return new[-1]
        time.sleep(0.2)
    raise AssertionError(f"no new run folder appeared under {runs_root}")


def item_caption(page):
    return page.locator('[data-testid="stCaptionContainer"]').filter(has_text=ITEM).first


def current_item(page) -> tuple[int, str]:
    """(position 1-based, item id) of the image on screen: 'Item 3 of 120 · <id> · label quality ...'."""
    text = item_caption(page).inner_text()
    return int(ITEM.search(text).group(1)), text.split("·")[1].strip()


def press(page, key: str, expect_pos: int) -> None:
    """Press a shortcut on the page body; wait until the item counter shows ``expect_pos`` and the run ends."""
    from playwright.sync_api import expect

    page.keyboard.press(key)
    expect(item_caption(page)).to_contain_text(f"Item {expect_pos} of ", timeout=60_000)
    wait_idle(page)


def press_key(page, name: str) -> None:
    """Press a shortcut whose effect has no counter to wait for (the grid): wait for the rerun to end."""
    page.keyboard.press(name)
    page.wait_for_timeout(300)   # the rerun starts
    wait_idle(page)


def tally(page) -> dict:
    """The Review page's decision counts: {"Accepted": n, "Kept": n, "Relabelled": n, "Excluded": n}."""
    out = {}
    for name in ("Accepted", "Kept", "Relabelled", "Excluded"):
        metric = page.locator('[data-testid="stMetric"]').filter(has_text=name).first
        out[name] = int(metric.locator('[data-testid="stMetricValue"]').inner_text())
    return out


def choose_option(page, combobox: str, option: str) -> None:
    """Pick the option containing ``option`` in the selectbox named ``combobox``."""
    box, choice = page.get_by_role("combobox", name=combobox), page.get_by_role("option").filter(has_text=option)
    for attempt in range(5):   # a rerun can close the list or redraw the option under the click: try again
        wait_idle(page)
        box.click()
        try:
            choice.first.wait_for(timeout=3_000)
            choice.first.click(timeout=10_000)
            break
        except Exception:
            if attempt == 4:
                raise
            page.keyboard.press("Escape")
    wait_idle(page)
