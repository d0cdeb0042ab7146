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


def detected_run_without_training(root, name: str, *, noise: dict, max_train: int = 300, seed: int = 0) -> Path:
    """A finished run folder on ``max_train`` built-in images with injected ``noise`` and in-sample detection.

    Its predictions stand in for a model that learned the true classes (70% on the true class, the rest
    spread at random): for tests about reviewing, not training, so no TensorFlow. NOISYLAB_HOME must point
    at the app's home (the label set is saved there)."""
    import numpy as np

    from noisycore import detect, runs
    from noisycore.config import DataConfig, TrainConfig
    from noisycore.datasets import load_dataset
    from noisycore.noise import apply_noise, save_label_set

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
