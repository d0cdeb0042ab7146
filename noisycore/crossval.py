"""K-fold cross-validation of a run: out-of-sample predicted probabilities for every training image.

    start(run_dir, folds=4)      # background worker (python -m noisycore.crossval RUN --folds 4)
    poll(run_dir)                # RUN/cv/status.json: state, fold, folds, epoch, epochs, batch, batches
    stop(run_dir)                # ends the fold in training within one batch; finished folds are kept
    cross_validate(run_dir, folds=4)   # the same, in this process (the worker and the CLI call it)

The run's images (:func:`detect.read_run_labels`: the training images, plus the held-out ones when
the truth is unknown) are split into K stratified folds (by given label, seeded by the run's seed).
For each fold a run with the same config trains on the other K-1 folds (holding out its own
validation split from them, as every run does) and its best model predicts the held-out fold, so
every image is judged by a model that never saw it (Northcutt et al. 2021, Sec. 4). Fold models
never see true labels (trusted_val off) and are the best noisy-validation epoch; on the user's own
labels they use :func:`recommended_recipe`. The result is
RUN/cv_probs.npy (N, K classes). Fold runs live in RUN/cv/fold<i>/; a finished fold is reused when
the cross-validation is started again. The worker takes the same slot lock as training jobs, so it
waits for (and blocks) other training runs: one training at a time on a laptop CPU. After the folds
it computes the nearest-neighbour features and runs every detector on the new probabilities.
``folds=0`` computes only the features (for in-sample detection). ``quality=True`` (task "quality") computes
the pretrained embeddings and the near-duplicate / outlier / poor-image lists (:mod:`noisycore.dataquality`)
instead of the features: the neighbour strip then uses those embeddings.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from noisycore import corrections, dataquality, detect, jobs, runs
from noisycore.catalog import takes_embeddings
from noisycore.errors import UserError
from noisycore.util import save_npy, stratified_folds

CV_DIR = "cv"
MAX_FOLDS = 20
_NOT_RECIPE = ("data", "noise", "labels_path", "max_train", "seed", "preset", "record_margins", "trusted_val")


class Stopped(Exception):
    """The cross-validation was asked to stop."""


def fold_assignments(labels, *, folds: int, seed: int) -> np.ndarray:
    """Fold number 0..folds-1 per example (N,), stratified by label (see util.stratified_folds)."""
    return stratified_folds(labels, folds, seed)


def recommended_recipe(num_images: Optional[int] = None, *, scratch: bool = False, **changes) -> dict:
    """TrainConfig fields of the recipe the app recommends for the user's own images of this many (the
    config.default_preset rule: ``pretrained``; with ``scratch`` the from-scratch rule of config.scratch_preset:
    ``fast`` from FAST_MIN_IMAGES images on, else ``small``), without the data, noise, subset and seed fields,
    with ``changes`` (TrainConfig fields) on top. The fold models of the user's own images (truth unknown) use
    it (a run trained from scratch gets scratch folds), all epochs run and the best noisy-validation epoch kept."""
    from noisycore.config import default_preset, preset_values, scratch_preset

    _check_recipe_changes(changes)
    preset = (scratch_preset if scratch else default_preset)("own", num_images)
    recipe = {**preset_values(preset, num_images), **changes}
    return {k: v for k, v in recipe.items() if k not in _NOT_RECIPE}


def recipe_fields() -> set:
    """The TrainConfig fields a fold's recipe may change (not the data, noise, subset, seed, ...)."""
    from noisycore.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)} - set(_NOT_RECIPE)


def _check_recipe_changes(changes: dict) -> None:
    allowed = recipe_fields()
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise UserError(f"recipe: {', '.join(map(repr, unknown))} is not a training setting of a fold; use one "
                        f"of: {', '.join(sorted(allowed))}")


# The teaching demo (the built-in shapes, truth known): its Quick run is built to show memorization (compact
# CNN, CE, constant learning rate), and its fold models were weak detectors (2 folds, 30% noise: confident
# learning's precision 0.55). Its folds train the small-data recipe for real images instead, for DEMO_FOLD_EPOCHS
# epochs, DEMO_FOLDS folds by default (benchmarks/README.md, "The demo's Review page").
DEMO_SOURCE = "builtin"
DEMO_FOLDS = 2
DEMO_FOLD_EPOCHS = 8
DEFAULT_FOLDS = 4


def demo_folds(config) -> bool:
    """True for the teaching demo's runs: the built-in shapes, any loss but the forward loss (whose folds keep
    its noise-matrix choice, see noisycore.forward)."""
    return config.data.source == DEMO_SOURCE and config.loss != "forward"


def default_folds(config) -> int:
    """The folds the Review page proposes: DEMO_FOLDS for the demo's runs, else DEFAULT_FOLDS."""
    return DEMO_FOLDS if demo_folds(config) else DEFAULT_FOLDS


def fold_recipe_text(config, *, truth_known: bool) -> str:
    """What the fold models train with, in words for the Review page."""
    from noisycore.config import TrainConfig

    if truth_known and not demo_folds(config):
        return "this run's own recipe (best epoch on the noisy validation split)"
    if takes_embeddings(config.model):
        fold = TrainConfig(**recommended_recipe(None))
        return (f"a {fold.model} ({fold.loss.upper()}, {fold.epochs} epochs) on the run's cached pretrained embeddings "
                "(seconds per fold; the best epoch on the noisy validation split)")
    fold = TrainConfig(**recommended_recipe(None, scratch=True))
    epochs = f"{DEMO_FOLD_EPOCHS} epochs" if truth_known else "epochs by the number of images"
    return (f"the recipe recommended for real images ({fold.model}, {fold.loss.upper()}, weight averaging, "
            f"{epochs}; the best epoch on the noisy validation split), with this run's number format (float32 or bfloat16) and image size")


def fold_plan(run_dir) -> dict:
    """What the Review page proposes for a run: ``folds`` (K) and ``recipe`` (the fold models' recipe in words)."""
    run = detect.run_path(run_dir)
    config = runs.read_config(run)
    truth = detect.read_run_labels(run).true_labels is not None
    return {"folds": default_folds(config), "recipe": fold_recipe_text(config, truth_known=truth)}


def cv_used_text(run_dir) -> Optional[str]:
    """'2-fold cross-validation; each fold model: fast_cnn, GCE (q 0.7), 8 epochs, the best epoch on the noisy
    validation split, float32': what the run's cv_probs.npy came from (None before any fold finished)."""
    from noisycore import naming

    cv_dir = detect.run_path(run_dir) / CV_DIR
    folds = runs.read_status(cv_dir).get("folds")
    configs = sorted(cv_dir.glob(f"k{folds}-fold*/run/config.json")) if folds else []
    if not configs:
        return None
    c = runs.read_config(configs[0].parent)
    kept = "the best epoch on the noisy validation split" if c.keep == "best" else "the last epoch"
    return (f"{folds}-fold cross-validation; each fold model: {c.model}, {naming.recipe_words(c.to_dict())}, "
            f"{c.epochs} epochs, {kept}, {c.mixed_precision}")


def inherited(config, *, precision: Optional[str] = None, image_size: Optional[int] = None,
              own_choices: bool = True) -> dict:
    """The run's choices every fold keeps (issue 28: folds inherit what made the run work, they do not
    re-decide it): the precision the run resolved to (``precision``, from its summary), the image side it
    trained at (``image_size``), and with ``own_choices`` (the user's own images) its augmentation and TTA as
    the run resolved them (no flips where the run had none: mirror-sensitive classes)."""
    keep = {}
    if precision in ("float32", "bfloat16"):
        keep["mixed_precision"] = precision
    if own_choices and config.augment != "auto":   # the run's resolved mirroring (baseline.resolve_mirror)
        keep["augment"] = config.augment
    if own_choices and config.tta != "auto":
        keep["tta"] = config.tta
    if image_size is not None and config.data.image_size is None:
        keep["data"] = config.data.replace(image_size=int(image_size))
    return keep


def fold_config(config, labels_dir, *, truth_known: bool, recipe: Optional[dict] = None,
                precision: Optional[str] = None, image_size: Optional[int] = None):
    """The TrainConfig of one fold: the run's config on the fold's label set, never validated against
    true labels (trusted_val off); with the user's own labels (truth unknown) the recommended recipe,
    keeping what :func:`inherited` names (the run's resolved ``precision``, its ``image_size``, no flips
    where the run had none). ``recipe``: TrainConfig fields to change on top (a benchmark measuring a
    candidate, the demo's fold recipe)."""
    recipe = dict(recipe or {})
    _check_recipe_changes(recipe)
    demo = truth_known and demo_folds(config)
    scratch = not takes_embeddings(config.model)   # a pretrained head's folds train heads on its embeddings
    keep = inherited(config, precision=precision, image_size=image_size, own_choices=not truth_known)
    data = keep.pop("data", config.data)
    if demo and scratch:   # the teaching demo: the recommended recipe for a fixed, short schedule
        keep["epochs"] = DEMO_FOLD_EPOCHS
    if not truth_known or demo:   # the recipe on top of the defaults: only what made the run work leaks in
        # the size rule counts the images a run trains on: the fold's training rows (not its held-out fold)
        table = pd.read_csv(Path(labels_dir) / "labels.csv", usecols=lambda c: c in ("id", "split"))
        n = int((table["split"] != "test").sum()) if "split" in table else len(table)
        config = type(config)(data=data, noise=config.noise, seed=config.seed,
                              **recommended_recipe(n, scratch=scratch, **{**keep, **recipe}))
    else:
        config = config.replace(data=data, **{**keep, **recipe})
    return config.replace(labels_path=str(Path(labels_dir).resolve()), max_train=None,
                          record_margins=False, trusted_val=False, baseline=False)


def _check_folds(folds, n: int, *, allow_zero: bool = False) -> int:
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) \
            or not ((allow_zero and folds == 0) or 2 <= folds <= MAX_FOLDS):
        raise UserError(f"folds={folds!r} must be an integer in 2..{MAX_FOLDS}" + (" (or 0: features only)"
                                                                                     if allow_zero else ""))
    if folds and n < 10 * folds:
        raise UserError(f"{n} training images are too few for {folds} folds; use fewer folds (each training "
                        "fold needs a few images per class)")
    return int(folds)


def _fold_progress(cv_dir: Path, fold: int, folds: int, progress: Optional[Callable]):
    def report(info: dict) -> None:
        if runs.stop_requested(cv_dir) or jobs.TERM.is_set():
            from noisycore import train
            train.request_stop()
        keys = {k: info[k] for k in ("epoch", "epochs", "batch", "batches") if k in info}
        status = runs.update_status(cv_dir, state="running", fold=fold, folds=folds, **keys)
        if progress is not None:
            progress(status)
    return report


def fold_folder(cv_dir: Path, fold: int, folds: int) -> tuple:
    """(RUN/cv/k<K>-fold<i>/, its heldout_probs.npy) of fold ``fold`` (0-based) of ``folds``."""
    fold_dir = Path(cv_dir) / f"k{folds}-fold{fold + 1}"
    return fold_dir, fold_dir / "heldout_probs.npy"


def prepare_fold(run: Path, info, config, held, fold_dir: Path, *, recipe: Optional[dict] = None):
    """Write the fold's label set (``held``: the held-out images, the fold run's test set) afresh; return
    the fold run's TrainConfig. The truth stays out of the folds: no true labels in their label sets,
    validation on the given labels, so nothing about a fold model can depend on it."""
    shutil.rmtree(fold_dir, ignore_errors=True)   # a fold cut short starts again
    labels_dir = corrections.write_label_subset(
        fold_dir / "labels", run, ids=info.ids, labels=info.labels, true_labels=None,
        split=np.where(held, "test", "train"), extra={"realized_matrix": None})
    precision = (runs.read_summary(run) or {}).get("precision") or runs.read_status(run).get("precision")
    return fold_config(config, labels_dir, truth_known=info.true_labels is not None, recipe=recipe,
                       precision=precision)


def cross_validate(run_dir, *, folds: int = 4, progress: Optional[Callable] = None,
                   recipe: Optional[dict] = None) -> np.ndarray:
    """Train ``folds`` runs on folds of the run's training set; return and save the out-of-sample
    probabilities RUN/cv_probs.npy, shape (N, K). ``progress(status dict)`` during training;
    ``recipe``: TrainConfig fields changed in every fold's config (see fold_config)."""
    import keras

    from noisycore import train
    from noisycore.pipeline import predict_probs

    run = detect.run_path(run_dir)
    info = detect.read_run_labels(run)
    folds = _check_folds(folds, len(info.ids))
    _check_recipe_changes(dict(recipe or {}))
    config = runs.read_config(run)
    cv_dir = run / CV_DIR
    cv_dir.mkdir(exist_ok=True)
    if poll(run).get("state") not in runs.ACTIVE_STATES:   # called directly (CLI), not by the worker
        runs.write_status(cv_dir, {"state": "running", "task": "cross_validation", "folds": folds,
                                   "pid": os.getpid(), "started": runs.now_iso(), "error": None})
    assign = fold_assignments(info.labels, folds=folds, seed=config.seed)
    images = detect.model_inputs(run)   # the images, or a pretrained head's cached embeddings
    k = len(info.class_names)
    probs = np.full((len(info.ids), k), np.nan)
    for f in range(folds):
        held = assign == f
        fold_dir, done = fold_folder(cv_dir, f, folds)
        if done.is_file():
            probs[held] = np.load(done, allow_pickle=False)
            continue
        cfg = prepare_fold(run, info, config, held, fold_dir, recipe=recipe)
        runs.update_status(cv_dir, fold=f + 1, folds=folds, fold_started=runs.now_iso(), epoch=0, batch=0)
        summary = train.run(cfg, fold_dir / "run", progress=_fold_progress(cv_dir, f + 1, folds, progress))
        if summary.get("state") != "finished":
            raise Stopped(f"stopped during fold {f + 1} of {folds}")
        model = keras.models.load_model(fold_dir / "run" / "best.keras", compile=False, safe_mode=True)
        p = predict_probs(model, images[held], tta=cfg.tta)   # the fold's test-time augmentation
        keras.backend.clear_session()   # the next fold builds a fresh model
        p = np.asarray(p, dtype=np.float64)
        p /= p.sum(axis=1, keepdims=True)
        np.save(done, p, allow_pickle=False)
        probs[held] = p
    save_npy(run / detect.CV_PROBS, probs.astype(np.float32))
    return probs


# ----------------------------------------------------------------------------- background worker
def start(run_dir, *, folds: int = 4, quality: bool = False, worker: Optional[list] = None) -> dict:
    """Start cross-validation (or, with folds=0, only the neighbour features) in a detached process.
    ``quality``: the data-quality lists (pretrained embeddings) instead of the features; with folds=0, only them.
    ``worker``: the module and arguments run instead of this module's worker, before the run folder
    (noisycore.fanout's follower: the folds as cluster jobs)."""
    run = detect.run_path(run_dir)
    folds = _check_folds(folds, len(detect.read_run_labels(run).ids), allow_zero=True)
    status = poll(run)
    if status.get("state") in runs.ACTIVE_STATES:
        raise UserError(f"{status.get('task', 'cross_validation').replace('_', '-')} is already running for "
                        f"{run.name}; wait for it or stop it")
    cv_dir = run / CV_DIR
    cv_dir.mkdir(exist_ok=True)
    (cv_dir / runs.STOP_FILE).unlink(missing_ok=True)
    task = "cross_validation" if folds else "quality" if quality else "features"
    runs.write_status(cv_dir, {"state": "queued", "task": task, "folds": folds, "fold": 0, "error": None,
                               "created": runs.now_iso()})
    proc = jobs.spawn([*(worker or ["noisycore.crossval"]), str(run.resolve()), "--folds", str(folds)]
                      + (["--quality"] if quality else []), cv_dir / "log.txt")
    return runs.update_status(cv_dir, pid=proc.pid)


def progress(status: dict) -> tuple:
    """(fraction done, 'fold 2 of 4, epoch 3 of 10, about 6 min left') from a cross-validation status.

    Time left: the running fold's projected time T = elapsed in it / its fraction done (from its second
    epoch on: the first carries the start-up), then T x (1 - fraction) + T x folds still to come (folds
    cost alike: the same recipe on as many images). Folds reused from an earlier start cost nothing.
    The data-quality task: images embedded so far, then the lists."""
    if status.get("step") in ("embeddings", "lists"):
        return _quality_progress(status)
    if status.get("executor") == "ray" and status.get("text"):   # folds as cluster jobs (noisycore.fanout)
        return float(status.get("share") or 0.0), status["text"]
    folds, fold = int(status.get("folds") or 0), int(status.get("fold") or 0)
    epochs, epoch = int(status.get("epochs") or 0), int(status.get("epoch") or 0)
    batch, batches = status.get("batch") or 0, status.get("batches") or 0
    in_fold = (max(epoch - 1, 0) + (batch / batches if batches else 0.0)) / epochs if epochs else 0.0
    in_fold = min(max(in_fold, 0.0), 1.0)
    done = min(max((max(fold - 1, 0) + in_fold) / folds, 0.0), 1.0) if folds else 0.0
    text = f"fold {fold} of {folds or '?'}"
    if epochs:
        text += f", epoch {epoch} of {epochs}"
    left = _seconds_left(status, in_fold, folds - fold)
    if left is not None:
        text += f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"
    return done, text


def _quality_progress(status: dict) -> tuple:
    done, total = int(status.get("done") or 0), int(status.get("total") or 0)
    if status.get("step") == "lists":
        return 1.0, "Comparing every image with every other: near-duplicates, outliers, image quality…"
    return (done / total if total else 0.0), (f"Embedding images with the pretrained EfficientNet-Lite2: {done:,} "
                                              f"of {total:,}" if total else "Loading the pretrained network…")


def _seconds_left(status: dict, in_fold: float, folds_after: int):
    from datetime import datetime

    if (status.get("epoch") or 0) < 2 or not 0 < in_fold < 1:
        return None
    try:
        elapsed = (datetime.fromisoformat(status["updated"]) - datetime.fromisoformat(status["fold_started"])
                   ).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None
    per_fold = elapsed / in_fold
    return max(per_fold * (1 - in_fold) + per_fold * max(folds_after, 0), 0.0)


def progress_text(status: dict) -> str:
    """The text of :func:`progress` (the CLI's progress line)."""
    return progress(status)[1]


def poll(run_dir) -> dict:
    """RUN/cv/status.json (``state`` unknown if never started); a dead worker's run is marked failed.
    Finished children of this process are reaped (no zombie after a finished cross-validation)."""
    jobs.reap()
    cv_dir = Path(run_dir) / CV_DIR
    status = runs.read_status(cv_dir)
    if status.get("state") in runs.ACTIVE_STATES and not jobs.pid_alive(status.get("pid")):
        status = runs.read_status(cv_dir)
        if status.get("state") in runs.ACTIVE_STATES:
            status = runs.update_status(cv_dir, state="failed", error=jobs.DEAD_WORKER_ERROR, finished=runs.now_iso())
    return status


def stop(run_dir) -> dict:
    """Ask the cross-validation to stop (RUN/cv/stop.request); finished folds are kept."""
    cv_dir = Path(run_dir) / CV_DIR
    if poll(run_dir).get("state") in runs.ACTIVE_STATES:
        runs.atomic_write_text(cv_dir / runs.STOP_FILE, runs.now_iso())
    return runs.read_status(cv_dir)


def _wait_for_slot(run: Path):
    while True:
        if jobs.TERM.is_set() or runs.stop_requested(run / CV_DIR):
            return None
        lock = jobs.try_lock(run.parent / jobs.LOCK_NAME)
        if lock is not None:
            return lock
        time.sleep(jobs.WAIT_SECONDS)


def _embedding_progress(cv_dir: Path):
    def report(done: int, total: int) -> None:
        if runs.stop_requested(cv_dir) or jobs.TERM.is_set():
            raise Stopped(f"stopped after embedding {done} of {total} images (they are kept: start again to go on)")
        # every image embedded: the lists come next (the N^2 comparison, no further progress from it)
        runs.update_status(cv_dir, step="lists" if done >= total else "embeddings", done=int(done), total=int(total))
    return report


def worker(run_dir, *, folds: int, quality: bool = False, train_folds: Optional[Callable] = None) -> int:
    """The background process: cross-validate (holding the training slot), then the data-quality lists
    (``quality``) or the model's features, and detection. ``train_folds(run, folds=)``: trains the folds
    and combines them instead of :func:`cross_validate` here (noisycore.fanout: cluster jobs, no slot)."""
    run = Path(run_dir).resolve()
    cv_dir = run / CV_DIR
    signal.signal(signal.SIGTERM, jobs.on_sigterm)
    runs.update_status(cv_dir, pid=os.getpid())
    lock = _wait_for_slot(run) if folds and train_folds is None else None
    if folds and train_folds is None and lock is None:
        runs.update_status(cv_dir, state="stopped", error="stopped before it started", finished=runs.now_iso())
        return 0
    try:
        runs.update_status(cv_dir, state="running", started=runs.now_iso())
        if folds:
            (train_folds or cross_validate)(run, folds=folds)
        if quality:
            runs.update_status(cv_dir, state="running", step="embeddings", done=0, total=0)
            dataquality.compute(run, progress=_embedding_progress(cv_dir))
        else:
            runs.update_status(cv_dir, state="running", step="features")
            detect.compute_features(run)
        if folds:
            detect.detect_all(run, source=detect.best_source(run)[0])   # the network's folds or the linear baseline
        runs.update_status(cv_dir, state="finished", finished=runs.now_iso(), error=None)
        return 0
    except Stopped as e:
        runs.update_status(cv_dir, state="stopped", error=str(e), finished=runs.now_iso())
        return 0
    except Exception as e:  # the page shows the message; the traceback goes to the log
        import traceback

        traceback.print_exc()
        runs.update_status(cv_dir, state="failed", error=" ".join(str(e).split()) or type(e).__name__,
                           finished=runs.now_iso())
        return 1
    finally:
        if lock is not None:
            lock.release()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noisycore.crossval",
                                     description="cross-validation worker (started by crossval.start)")
    parser.add_argument("run_dir")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--quality", action="store_true", help="the data-quality lists instead of the features")
    args = parser.parse_args(argv)
    return worker(args.run_dir, folds=args.folds, quality=args.quality)


if __name__ == "__main__":
    sys.exit(main())
