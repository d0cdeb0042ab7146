"""Small generated data shared by the training, jobs, sweep and review tests."""
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from noisycore.config import DataConfig, NoiseConfig, TrainConfig

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10"   # real data, never committed


def quadrant_folder(root, *, n_per_class=100, size=16, seed=0):
    """Image folder of 4 classes q0..q3: class c has its quadrant c bright on a dark noisy background."""
    rng = np.random.default_rng(seed)
    half = size // 2
    for c in range(4):
        (root / f"q{c}").mkdir(parents=True, exist_ok=True)
        r, col = divmod(c, 2)
        for i in range(n_per_class):
            img = rng.integers(0, 70, (size, size, 3)).astype(np.uint8)
            img[r * half:(r + 1) * half, col * half:(col + 1) * half] += np.uint8(150)
            Image.fromarray(img).save(root / f"q{c}" / f"{i:03d}.png")
    return root


def tiny_config(folder, **overrides) -> TrainConfig:
    """A fast, learnable TrainConfig on a quadrant folder (20% symmetric noise, no BN, constant lr)."""
    values = dict(data=DataConfig(source=str(folder), image_size=16, test_fraction=0.25),
                  noise=NoiseConfig(model="symmetric", rate=0.2, seed=1), batchnorm=False, dropout=0.0,
                  epochs=2, batch_size=32, learning_rate=3e-3, lr_schedule="constant",
                  early_stopping_patience=0, val_fraction=0.15)
    values.update(overrides)
    return TrainConfig(**values)


def run_main(argv, capsys) -> subprocess.CompletedProcess:
    """noisycore's CLI main() in this process (argparse errors exit via SystemExit), as a CompletedProcess."""
    from noisycore.cli import main

    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def own_folder(root, *, n_per_class=40, planted=6, size=16, seed=0, unreadable=0):
    """A user's own image folder with planted mistakes: quadrant classes q0..q3 (see quadrant_folder),
    then ``planted`` images moved into a wrong class folder (the next class) and ``unreadable`` files
    that are not images. Returns (root, planted ids) with ids as the app sees them ("<folder>/<file>")."""
    root = quadrant_folder(Path(root), n_per_class=n_per_class, size=size, seed=seed)
    rng = np.random.default_rng(seed + 1)
    moved = []
    for j, c in enumerate(rng.permutation(np.arange(planted)) % 4):
        src = root / f"q{c}" / f"{j:03d}.png"
        dst = root / f"q{(c + 1) % 4}" / f"moved-{c}-{j:03d}.png"
        src.rename(dst)
        moved.append(f"q{(c + 1) % 4}/{dst.name}")
    for j in range(unreadable):
        (root / "q0" / f"broken-{j}.jpg").write_bytes(b"not an image")
    return root, sorted(moved)


def quality_run(home, *, n=48, seed=5):
    """A finished 1-epoch run on a user's own folder of generated shapes (32 px, truth unknown) with two
    planted data-quality problems: ``copy-002.png``, an exact copy of image 2 filed under another class,
    and ``black.png``, an all-black image. Returns (run folder, {"copy": (id, id), "black": id})."""
    from noisycore import train
    from noisycore.datasets import load_builtin

    ds = load_builtin(n_train=n, n_test=10, seed=seed, image_size=32)
    root = Path(home) / "shapes"
    names = list(ds.class_names)
    for i, (img, y) in enumerate(zip(ds.x_train, ds.y_train)):
        (root / names[y]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / names[y] / f"{i:03d}.png")
    other = names[(int(ds.y_train[2]) + 1) % len(names)]
    Image.fromarray(ds.x_train[2]).save(root / other / "copy-002.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / names[0] / "black.png")
    config = TrainConfig(data=DataConfig(source=str(root), image_size=32, test_fraction=0.2),
                         noise=NoiseConfig(model="none"), batchnorm=False, dropout=0.0, epochs=1, batch_size=32,
                         learning_rate=3e-3, lr_schedule="constant", early_stopping_patience=0, val_fraction=0.15,
                         baseline=False)
    run = Path(home) / "runs" / "20260102-000000-shapes"
    train.run(config, run)
    planted = {"copy": (f"{names[int(ds.y_train[2])]}/002.png", f"{other}/copy-002.png"),
               "black": f"{names[0]}/black.png"}
    return run, planted


def fake_run(folder, config: TrainConfig, *, state="finished", labels=120, metrics=None) -> Path:
    """A run folder as training leaves it, written by hand: config, status, labels.csv + noise.json (truth
    known), metrics.csv. Nothing is trained."""
    from noisycore import runs

    folder = Path(folder)
    folder.mkdir(parents=True)
    runs.atomic_write_text(folder / "config.json", config.to_json())
    runs.write_status(folder, {"state": state, "epoch": 2, "epochs": config.epochs})
    if labels:
        (folder / "labels.csv").write_text("id,label,true_label,is_noisy\n" + "".join(
            f"train/{i:05d}.png,circle,circle,false\n" for i in range(labels)))
        runs.write_json(folder / "noise.json", {"config": config.noise.to_dict(), "truth_known": True,
                                                "counts": {"labels": labels}})
    if metrics is not None:
        metrics.to_csv(folder / "metrics.csv", index=False)
    return folder


def metrics_frame(*, memorized, test_accuracy):
    """metrics.csv of a hand-written run: every column training writes, ``memorized`` and ``test_accuracy``
    as given (one value per epoch), the others plausible."""
    import pandas as pd

    n = len(test_accuracy)
    return pd.DataFrame({"epoch": range(1, n + 1), "loss": [2.0 - 0.1 * i for i in range(n)],
                         "accuracy": [0.3 + 0.05 * i for i in range(n)], "train_acc_true": test_accuracy,
                         "train_acc_given": [0.3 + 0.05 * i for i in range(n)], "memorized": memorized,
                         "val_loss": [2.1] * n, "val_accuracy": [0.3 + 0.04 * i for i in range(n)],
                         "test_accuracy": test_accuracy, "lr": [1e-3] * n, "seconds": [1.0] * n,
                         "fit_seconds": [0.8] * n})


@contextmanager
def noisylab_home(home):
    """NOISYLAB_HOME / NOISYLAB_RUNS set to ``home`` (and home/runs) for a module fixture, restored after."""
    old = {k: os.environ.get(k) for k in ("NOISYLAB_HOME", "NOISYLAB_RUNS")}
    os.environ.update(NOISYLAB_HOME=str(home), NOISYLAB_RUNS=str(Path(home) / "runs"))
    try:
        yield Path(home)
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def wait_for(run_dir, predicate, what, *, timeout=240):
    """The run's status (jobs.poll, every 0.2 s) once ``predicate(status)`` holds; AssertionError with the
    status and the end of its log after ``timeout`` seconds (generous: the machine is shared)."""
    from noisycore import jobs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = jobs.poll(run_dir)
        if predicate(status):
            return status
        time.sleep(0.2)
    log = (run_dir / "log.txt").read_text(errors="replace")[-3000:] if (run_dir / "log.txt").exists() else ""
    raise AssertionError(f"{run_dir.name}: not {what} after {timeout} s; status {jobs.poll(run_dir)}\n{log}")
