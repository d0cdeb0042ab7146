"""The fast preset chosen by measurement on this machine, and a time budget turned into epochs.

    seconds = calibrate()                      # {variant: seconds per training image}, cached per machine
    choice = choose_variant(seconds, num_fit)  # the variant that reaches TARGET_ACCURACY soonest
    epochs = budget_epochs(10, choice["seconds_per_epoch"])

A variant is a precision (float32 / bfloat16) and a network (fast_cnn's width and activation). How
fast a variant trains depends on the CPU (AMX, AVX-512 bf16, AVX2, Apple silicon): the calibration
times a few real training steps of each on this machine. How many epochs a network needs does not:
``ACCURACY_PER_EPOCH`` holds the test accuracy after each epoch that benchmarks/ recorded for each
network (CIFAR-10, 40% symmetric noise, seed 0, the fast preset's 24-epoch schedule). Both
precisions are taken to need the same epochs (the curves were recorded in bfloat16 only).

The calibration is cached in ``<data dir>/calibration/<cpu model>-<cores>-tf<version>.json``: the
first fast run of a machine pays its seconds, later runs read it. Pure parts (the choice, the budget)
never import TensorFlow; ``measure_variant`` does, lazily.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from noisycore.errors import UserError

# Test accuracy (%) after each epoch of the fast preset's 24-epoch schedule, CIFAR-10 40% symmetric, seed 0.
ACCURACY_PER_EPOCH: dict = {
    # fast_cnn width 0.75, fused BatchNorm + ReLU (the preset's network):
    # benchmarks/results/time_to_accuracy-cifar10-full-relu_epochs.csv (setting sym40, seed 0)
    ("relu", 0.75): (49.6, 63.7, 70.0, 72.6, 73.0, 72.5, 72.5, 76.6, 74.4, 73.8, 71.3, 73.9,
                     78.1, 77.2, 76.8, 79.6, 75.4, 80.0, 79.9, 81.2, 82.3, 82.8, 82.7, 83.3),
    # fast_cnn width 0.5, GELU (the preset's network before 2026-12-01):
    # benchmarks/results/time_to_accuracy-cifar10-full_epochs.csv (setting sym40, seed 0)
    ("gelu", 0.5): (42.3, 59.8, 67.6, 71.5, 73.6, 74.5, 73.2, 73.8, 74.4, 76.9, 76.2, 75.6,
                    76.8, 78.5, 77.2, 78.6, 79.0, 80.2, 79.8, 80.9, 82.1, 82.5, 82.6, 83.5),
}
TARGET_ACCURACY = 79.9      # %: the blog recipe's best at 40% symmetric noise (its epoch 54), the preset's goal
                            # (benchmarks/reference/blog_reference.json, runs.sym40; a test checks it)
PRECISIONS = ("float32", "bfloat16")
CALIBRATION_IMAGE = (32, 32, 3)   # CIFAR-sized images; other sizes scale the seconds by their pixels
CALIBRATION_BATCH = 256           # the fast preset's batch
CALIBRATION_STEPS = 6             # timed steps per variant (after two untimed ones that trace the graph)
EVAL_SHARE = 0.1                  # per-epoch evaluation at most a tenth of an epoch (noisycore.epoch_eval)
START_SECONDS = 60.0              # start-up and end: loading, the linear baseline, final predictions (estimate)


def variants() -> list:
    """Every (precision, activation, width) the calibration times."""
    return [(p, a, w) for p in PRECISIONS for (a, w) in ACCURACY_PER_EPOCH]


def variant_key(precision: str, activation: str, width: float) -> str:
    return f"{precision}/{activation}/{width:g}"


def epochs_to(target: float, curve) -> Optional[int]:
    """The first epoch (1-based) whose accuracy reaches ``target``, or None."""
    for epoch, acc in enumerate(curve, start=1):
        if acc >= target:
            return epoch
    return None


def choose_variant(seconds_per_image: dict, num_fit: int, *, target: float = TARGET_ACCURACY,
                   only: Optional[Callable] = None) -> dict:
    """The variant that reaches ``target`` soonest: min over variants of epochs_to(target, its curve)
    x seconds per epoch (seconds per image x num_fit). ``seconds_per_image``: {variant_key: s}.

    Returns {"precision", "activation", "width", "seconds_per_epoch", "epochs_to_target",
    "seconds_to_target", "why"}. A variant whose curve never reaches the target is not chosen, nor one
    that ``only(precision, activation, width)`` refuses (settings the user fixed)."""
    if not isinstance(num_fit, (int, np.integer)) or num_fit < 1:
        raise UserError(f"num_fit={num_fit!r} must be a positive number of images")
    best = None
    for precision, activation, width in variants():
        if only is not None and not only(precision, activation, width):
            continue
        s = seconds_per_image.get(variant_key(precision, activation, width))
        epochs = epochs_to(target, ACCURACY_PER_EPOCH[(activation, width)])
        if s is None or not s > 0 or epochs is None:
            continue
        total = epochs * s * num_fit
        if best is None or total < best["seconds_to_target"]:
            best = {"precision": precision, "activation": activation, "width": width,
                    "seconds_per_epoch": round(s * num_fit, 2), "epochs_to_target": epochs,
                    "seconds_to_target": round(total, 1)}
    if best is None:
        raise UserError("no calibrated variant fits these settings (precision, model width / activation); "
                        "leave them on auto for a budget, or delete the data dir's calibration folder and run again")
    best["why"] = (f"{best['precision']}, width {best['width']:g} {best['activation']}: {best['epochs_to_target']} "
                   f"epochs to {target:g}% (benchmarks) x {best['seconds_per_epoch']:.0f} s per epoch measured "
                   f"here = {best['seconds_to_target'] / 60:.1f} min, the soonest of {len(seconds_per_image)} timed")
    return best


def budget_epochs(budget_minutes, seconds_per_epoch: float, *, start_seconds: float = START_SECONDS,
                  eval_share: float = EVAL_SHARE, max_epochs: int = 200) -> int:
    """Epochs that fit in ``budget_minutes`` of wall time: floor((60 budget - start) / (epoch x (1 +
    eval_share))), at most ``max_epochs``; the schedule (warm-up + decay) is stretched to them.
    A budget too short for one epoch is a UserError naming the minimum."""
    if isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float)) or not budget_minutes > 0:
        raise UserError(f"budget_minutes={budget_minutes!r} must be a positive number of minutes")
    per_epoch = float(seconds_per_epoch) * (1.0 + eval_share)
    epochs = int(math.floor((60.0 * budget_minutes - start_seconds) / per_epoch))
    if epochs < 1:
        need = (start_seconds + per_epoch) / 60.0
        raise UserError(f"budget_minutes={budget_minutes:g} is too short for one epoch on this machine "
                        f"({per_epoch:.0f} s each, plus ~{start_seconds:.0f} s start-up); give at least {need:.1f}")
    return min(epochs, int(max_epochs))


# ------------------------------------------------------------------------------ the cache
def machine_key() -> str:
    """CPU model, core count and TensorFlow version (from its package metadata: no import)."""
    from importlib.metadata import PackageNotFoundError, version

    from noisycore.hardware import cpu_model

    try:
        tf_version = version("tensorflow")
    except PackageNotFoundError:
        tf_version = "none"
    raw = f"{cpu_model()}-{os.cpu_count()}cores-tf{tf_version}"
    return re.sub(r"[^A-Za-z0-9.]+", "_", raw).strip("_")


def cache_path(data_dir=None) -> Path:
    from noisycore.config import default_data_dir

    return Path(data_dir or default_data_dir()) / "calibration" / f"{machine_key()}.json"


def cached(data_dir=None) -> Optional[dict]:
    """This machine's calibration if it has one (no TensorFlow), else None."""
    try:
        record = json.loads(cache_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("seconds_per_image"), dict) else None


def calibrate(*, data_dir=None, measure: Optional[Callable] = None, steps: int = CALIBRATION_STEPS,
              force: bool = False) -> dict:
    """This machine's calibration: the cached one, or time every variant now (``measure(precision,
    activation, width, steps=)`` -> seconds per image, default ``measure_variant``) and cache it.
    Returns {"machine", "seconds_per_image": {variant_key: s}, "seconds" (its cost), "measured_at"}."""
    if not force and (record := cached(data_dir)) is not None:
        return record
    from noisycore.runs import atomic_write_text, now_iso

    measure = measure or measure_variant
    t0 = time.monotonic()
    seconds = {variant_key(*v): float(measure(*v, steps=steps)) for v in variants()}
    record = {"machine": machine_key(), "seconds_per_image": seconds, "steps": int(steps),
              "seconds": round(time.monotonic() - t0, 1), "measured_at": now_iso()}
    path = cache_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2))
    return record


def measure_variant(precision: str, activation: str, width: float, *, steps: int = CALIBRATION_STEPS,
                    image_shape=CALIBRATION_IMAGE, batch_size: int = CALIBRATION_BATCH) -> float:
    """Seconds per training image of fast_cnn (``width``, ``activation``) in ``precision``: the median of
    ``steps`` real training steps (SGD Nesterov) on random images, after two untimed ones (tracing)."""
    import keras

    from noisycore.models import build_model

    policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        rng = np.random.default_rng(0)
        x = rng.random((batch_size, *image_shape), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch_size)]
        net = build_model("fast_cnn", input_shape=tuple(image_shape), num_classes=10, seed=0,
                          width=float(width), activation=activation)
        net.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), loss="categorical_crossentropy")
        for _ in range(2):
            net.train_on_batch(x, y)
        times = []
        for _ in range(int(steps)):
            t0 = time.perf_counter()
            net.train_on_batch(x, y)
            times.append(time.perf_counter() - t0)
        # the median step: one slow step (a late kernel compile, a neighbour's burst) does not decide
        return float(np.median(times)) / batch_size
    finally:
        keras.mixed_precision.set_global_policy(policy)
        keras.backend.clear_session()


# ------------------------------------------------------------------------------ a run
CALIBRATE_MIN_IMAGES = 10_000   # smaller sets keep the preset's variant (seconds per epoch: nothing to win)


def choose_for_run(run_dir, config, *, num_fit: int, image_shape, data_dir=None, measure=None):
    """The fast preset on this machine: with precision auto and no model width / activation given, and
    at least CALIBRATE_MIN_IMAGES images, the calibrated variant; with ``budget_minutes`` the epochs that
    fit in it. Recorded in config.json (the chosen precision, width, activation and epochs: explicit, so
    reruns, folds and retrains train the same; the budget itself in status.json), a note in words and
    status.json ``calibration``. Other configs are returned unchanged."""
    from noisycore import runs

    budget = config.budget_minutes
    free = config.mixed_precision == "auto" and config.model_width is None and config.model_activation is None
    if config.preset != "fast" or config.model != "fast_cnn" or not (
            budget is not None or (free and num_fit >= CALIBRATE_MIN_IMAGES)):
        return config
    fresh = cached(data_dir) is None
    record = calibrate(data_dir=data_dir, measure=measure)
    scale = float(np.prod(image_shape)) / float(np.prod(CALIBRATION_IMAGE))   # seconds grow with the pixels
    seconds = {k: v * scale for k, v in record["seconds_per_image"].items()}

    def only(precision, activation, width):
        return ((config.mixed_precision in ("auto", precision)) and config.model_activation in (None, activation)
                and config.model_width in (None, width))

    choice = choose_variant(seconds, int(num_fit), only=only)
    changes = {"mixed_precision": choice["precision"], "model_width": choice["width"],
               "model_activation": choice["activation"]}
    note = f"Calibrated on this machine ({record['seconds']:g} s, cached): {choice['why']}."
    if budget is not None:
        # config.json keeps the epochs, not the budget: a rerun, a fold or a retrain trains exactly these
        # the first run of a machine also pays for its calibration out of the budget
        start = START_SECONDS + (float(record["seconds"]) if fresh else 0.0)
        changes.update(epochs=budget_epochs(budget, choice["seconds_per_epoch"], start_seconds=start),
                       budget_minutes=None)
        note += (f" Budget {budget:g} min: {changes['epochs']} epochs (the schedule's warm-up and decay "
                 f"stretched to them).")
    config = runs.record_choice(run_dir, config.replace(**changes), note)
    runs.update_status(run_dir, epochs=config.epochs, calibration={
        **{k: choice[k] for k in ("precision", "activation", "width", "seconds_per_epoch", "epochs_to_target")},
        "why": choice["why"], "machine": record["machine"], "calibration_seconds": record["seconds"],
        "budget_minutes": budget, "epochs": config.epochs})
    return config


def describe(record: Optional[dict] = None) -> str:
    """One line for the Train page and the CLI: this machine's calibration, or that it has none yet."""
    record = cached() if record is None else record
    if record is None:
        return ("This machine is not calibrated yet: the first fast-preset run on 10,000+ images (or with a "
                "time budget) times each precision and network for a few seconds and keeps the fastest.")
    per_image = record["seconds_per_image"]
    fastest = min(per_image, key=per_image.get)
    return (f"Calibrated ({record['machine']}): {fastest} trains ~{1 / per_image[fastest]:,.0f} images/s, "
            + ", ".join(f"{k} {1 / v:,.0f}" for k, v in per_image.items() if k != fastest) + ".")


def budget_note(budget_minutes, *, num_images: Optional[int], val_fraction: float, image_size: Optional[int] = 32,
                channels: int = 3) -> str:
    """What a time budget gives on this machine, for the Train page (before the run starts)."""
    record = cached()
    if not budget_minutes:
        return "No budget: the preset's epochs."
    if record is None or not num_images:
        return (f"Budget {budget_minutes:g} min: the run times this machine first (a few seconds, once) and "
                f"then sets the epochs.")
    num_fit = max(1, int(round(num_images * (1 - val_fraction))))
    side = image_size or 32
    scale = side * side * channels / float(np.prod(CALIBRATION_IMAGE))
    choice = choose_variant({k: v * scale for k, v in record["seconds_per_image"].items()}, num_fit)
    try:
        epochs = budget_epochs(budget_minutes, choice["seconds_per_epoch"])
    except UserError as e:
        return str(e)
    return (f"Budget {budget_minutes:g} min: about {epochs} epochs of ~{choice['seconds_per_epoch']:.0f} s "
            f"({choice['precision']}, width {choice['width']:g}) on this machine; the schedule is stretched to them.")
