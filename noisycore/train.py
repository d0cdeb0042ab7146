"""Run one training experiment from a TrainConfig and write its run folder (see runs.py).

    prepared = prepare(config)            # images + given labels (a labels.csv or injected noise)
    summary = run(config, run_dir)        # trains, writing status / metrics / models / predictions

Validation always comes from the training data (a stratified, seeded split of ``val_fraction``),
scored against the given (noisy) labels, or against the true ones with ``trusted_val``. The test
set is only reported: never used for early stopping, learning-rate changes or model selection.
After every epoch noisycore.epoch_eval fills the extra metric columns (training-set curves on a
stratified sample of a large set, one validation pass, a plain test pass) and the AUM margins of the
images trained on (validation images: NaN); the kept model's final numbers use the full sets.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from noisycore import baseline, calibration, runs  # noqa: E402
from noisycore.labelsets import SUBSET_KEY  # noqa: E402
from noisycore.config import MARGINS_AUTO_MAX_N, ConfigError, TrainConfig  # noqa: E402
from noisycore.catalog import method_params  # noqa: E402
from noisycore.methods.standard import EVAL_BATCH, TrainContext  # noqa: E402
from noisycore.util import (margins, one_line, print_traceback, save_npy, save_npz, stratified_split,  # noqa: E402,F401
                            stratified_subset)
from noisycore.pipeline import endless, predict_probs  # noqa: E402
from noisycore.epoch_eval import (EpochRecorder, Evaluation, curve_test_sample, is_large, probs_argmax,  # noqa: E402,F401
                                  train_sample, training_set_metrics)
from noisycore.resume import EpochBackup  # noqa: E402
from noisycore.averaging import SwapEMAWeights, averaging_callbacks  # noqa: E402,F401 (SwapEMAWeights: re-exported)

STATUS_INTERVAL = 0.5             # seconds between status.json writes during an epoch
STOP_EVENT = threading.Event()    # set by a SIGTERM handler (jobs.py): stop like a stop request


def request_stop() -> None:
    """Ask the run in this process to stop at the next batch end (safe from a signal handler)."""
    STOP_EVENT.set()


@dataclass(frozen=True, eq=False)
class Prepared:
    """The dataset and the given labels a run trains on."""

    dataset: object               # noisycore.datasets.Dataset
    noisy: object                 # noisycore.noise.NoisyLabels
    data: object = None           # the DataConfig loaded (image_size set when tiny images were scaled up)
    inputs: Optional[tuple] = None  # (train, test) float32 embeddings for a model on pretrained features
    features: Optional[str] = None  # which pixels those came from (embeddings.pixels_source)

    @property
    def model_inputs(self) -> tuple:
        """(train, test): what the model is fed for the dataset's training and held-out images: the images,
        or their pretrained embeddings (catalog.EMBEDDING_MODELS). Every fit, evaluation and prediction of a
        run reads this pair."""
        return self.inputs if self.inputs is not None else (self.dataset.x_train, self.dataset.x_test)


# ------------------------------------------------------------------------------ preparing data
def check_config(config: TrainConfig) -> None:
    """Check the model, loss and method names and parameters against the registries."""
    from noisycore.losses import LOSS_DEFAULTS
    from noisycore.models import MODELS

    if not isinstance(config, TrainConfig):
        raise ConfigError(f"expected a TrainConfig, got {type(config).__name__}")
    if config.model not in MODELS:
        raise ConfigError(f"model={config.model!r} is not valid; choose one of: {', '.join(MODELS)}")
    if config.loss not in LOSS_DEFAULTS:
        raise ConfigError(f"loss={config.loss!r} is not valid; choose one of: {', '.join(LOSS_DEFAULTS)}")
    unknown = sorted(set(config.loss_kwargs) - set(LOSS_DEFAULTS[config.loss]))
    if unknown:
        raise ConfigError(f"loss {config.loss!r} has no parameter {', '.join(unknown)}; "
                          f"valid: {', '.join(LOSS_DEFAULTS[config.loss]) or 'none'}")
    method_params(config.method, config.method_kwargs)


def validation_split(labels, *, fraction: float, seed: int) -> tuple:
    """(fit_idx, val_idx): a stratified (by given label), seeded split of the training indices."""
    labels = np.asarray(labels)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"val_fraction={fraction} must be in (0, 1)")
    val = stratified_split(labels, fraction, seed)
    if len(val) == 0:
        raise ConfigError(f"the training set ({len(labels)} images) is too small to hold out a validation split")
    return np.setdiff1d(np.arange(len(labels)), val), val


def _subset_labels(dataset, noisy, n: int, seed: int):
    """Stratified subset of n training images, applied to the dataset and its label set together.

    The images are the ones ``load_dataset`` keeps for ``max_train`` without a label set (the same
    splitter on the dataset's own labels with the data seed), so a saved label set trains on the
    same images as the injected noise it was made from."""
    from noisycore.noise import realized_matrix

    keep = stratified_subset(dataset.y_train, n, seed)
    ds = dataclasses.replace(dataset, x_train=dataset.x_train[keep], y_train=dataset.y_train[keep],
                             ids_train=dataset.ids_train[keep],
                             label_sets={k: v[keep] for k, v in dataset.label_sets.items()})
    true = None if noisy.true_labels is None else noisy.true_labels[keep]
    changes = dict(labels=noisy.labels[keep], true_labels=true,
                   is_noisy=None if true is None else noisy.labels[keep] != true)
    if true is not None:
        changes.update(realized_rate=float(changes["is_noisy"].mean()),
                       realized_matrix=realized_matrix(true, changes["labels"], dataset.num_classes))
    return ds, dataclasses.replace(noisy, **changes)


def restrict_to_label_set(dataset, labels_path):
    """The dataset cut to the images a label set lists when its noise.json sets ``subset_of_dataset``
    (K-fold training folds; reviewed labels without the excluded images) or when it is a run's own labels.csv
    (a run folder: the images that run trained on, e.g. its ``max_train`` subset, so ``--labels RUN_DIR``
    trains on exactly them); otherwise unchanged.

    A ``split`` column in its labels.csv places images explicitly: rows ``train`` are trained on (they
    may come from the dataset's test split: cross-validation over every image of the user's own data),
    rows ``test`` form the held-out set with the label set's labels (the reviewed labels of the same
    held-out images). Without test rows the held-out set is the dataset's, minus any image trained on."""
    from noisycore.human_labels import norm_ids

    path = Path(labels_path)
    csv_path = path / "labels.csv" if path.is_dir() else path
    of_a_run = runs.labels_run(csv_path) is not None   # a run folder: its labels list its training images
    try:
        meta = json.loads((csv_path.parent / "noise.json").read_text(encoding="utf-8"))
        if not (of_a_run or (isinstance(meta, dict) and meta.get(SUBSET_KEY))):
            return dataset
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        ids = df["id"]
    except (OSError, ValueError, KeyError):
        return dataset   # load_label_set reports an unreadable label set
    split = df["split"].str.strip().str.lower() if "split" in df else pd.Series("train", index=df.index)
    x = np.concatenate([dataset.x_train, dataset.x_test])
    y = np.concatenate([dataset.y_train, dataset.y_test])
    all_ids = np.concatenate([norm_ids(dataset.ids_train), norm_ids(dataset.ids_test)])
    raw_ids = np.concatenate([np.asarray(dataset.ids_train), np.asarray(dataset.ids_test)]).astype(str)
    n_train = len(dataset.y_train)
    train_keep = np.flatnonzero(np.isin(all_ids, norm_ids(ids[split != "test"])))
    only_train = bool((train_keep < n_train).all())   # a CSV's other label columns cover the training split only
    changes = dict(x_train=x[train_keep], y_train=y[train_keep], ids_train=raw_ids[train_keep],
                   label_sets={k: v[train_keep] for k, v in dataset.label_sets.items()} if only_train else {})
    test_rows = df[split == "test"]
    if len(test_rows):
        where = pd.Index(all_ids).get_indexer(norm_ids(test_rows["id"]))
        names = {n: i for i, n in enumerate(dataset.class_names)}
        found = where >= 0
        labels = test_rows["label"].map(names)
        found &= labels.notna().to_numpy()
        test = where[found]
        changes.update(x_test=x[test], y_test=labels[found].to_numpy(np.int64), ids_test=raw_ids[test])
    else:
        test = np.setdiff1d(np.arange(n_train, len(y)), train_keep)
        changes.update(x_test=x[test], y_test=y[test], ids_test=raw_ids[test])
    return dataclasses.replace(dataset, **changes)


def prepare(config: TrainConfig, *, progress: Optional[Callable] = None, notice: Optional[Callable] = None) -> Prepared:
    """Load the dataset (``config.data``, ``max_train`` applied) and the given labels
    (``labels_path`` if set, else ``apply_noise(dataset, config.noise)``); for a model on pretrained
    features also its inputs, the cached embeddings (``progress(done, total)`` while embedding; ``notice(text)``
    when the original photos cannot be used, see embeddings.embed)."""
    from noisycore.catalog import MODEL_MIN_SIDE, takes_embeddings
    from noisycore.datasets import load_dataset, scale_up
    from noisycore.labelsets import load_label_set
    from noisycore.noise import apply_noise

    data = config.data
    if config.max_train is not None and not config.labels_path:
        data = data.replace(max_train=min(config.max_train, data.max_train or config.max_train))
    dataset = load_dataset(data)
    data, dataset = scale_up(data, dataset, min_side=MODEL_MIN_SIDE.get(config.model, 0))
    whole = dataset   # as loaded: the embeddings are computed (and cached) for these images
    if config.labels_path:
        dataset = restrict_to_label_set(dataset, config.labels_path)
        noisy = load_label_set(config.labels_path, dataset)
        if config.max_train is not None and config.max_train < len(noisy.labels):
            dataset, noisy = _subset_labels(dataset, noisy, config.max_train, data.seed)
    else:
        noisy = apply_noise(dataset, config.noise)
    if config.aum_threshold_samples:   # the extra run for AUM's threshold (Pleiss et al. 2020)
        from noisycore.aum import add_fake_class

        dataset, noisy = add_fake_class(dataset, noisy, seed=config.seed)
    if config.trusted_val and noisy.true_labels is None:
        raise ConfigError("trusted_val=True needs the true labels, but they are unknown for this label set; "
                          "turn trusted_val off (validation then uses the given labels)")
    inputs = features = None
    if takes_embeddings(config.model):   # the one place a run's images become a model's input
        from noisycore.embeddings import inputs_for, pixels_source

        inputs = inputs_for(dataset, whole=whole, progress=progress, notice=notice)
        features = pixels_source(whole)
    return Prepared(dataset=dataset, noisy=noisy, data=data, inputs=inputs, features=features)


def _loss_kwargs(config: TrainConfig, noisy, num_classes: int) -> dict:
    """The loss hyper-parameters; the forward loss gets its starting T (see noisycore.forward)."""
    from noisycore import forward

    if config.loss != "forward":
        return config.loss_kwargs
    return {"noise_matrix": forward.initial_matrix(config, noisy, num_classes=num_classes)["noise_matrix"]}


def _forward_setup(config, noisy, ctx, run_dir: Path, fit_probs: Callable) -> list:
    """Forward loss: save noise_matrix_used.json; for the built-in two-stage estimate put T in a
    variable (identity = CE during the warm-up) and return the callback that estimates it."""
    from noisycore import forward

    if config.loss != "forward":
        return []
    record = forward.initial_matrix(config, noisy, num_classes=ctx.num_classes)
    forward.save_record(run_dir, record)
    if record["warmup_epochs"] is None:
        return []
    variable = keras.Variable(np.eye(ctx.num_classes, dtype=np.float32), dtype="float32", trainable=False,
                              name="forward_noise_matrix")
    ctx.loss_kwargs = {**ctx.loss_kwargs, "noise_matrix": variable}
    return [forward.make_warmup_callback(variable=variable, record=record, run_dir=run_dir, fit_probs=fit_probs,
                                         fit_labels=np.asarray(ctx.y_fit))]


def _noise_rate(config: TrainConfig, noisy) -> Optional[float]:
    """The noise rate the noise settings DECLARE (injected noise, or the label set's noise.json), or None.

    The requested rate of a rate-based model; for the matrix model the mean off-diagonal mass of the
    requested matrix (balanced classes). Never the realized rate: that is counted from the true labels."""
    settings = noisy.config if getattr(noisy, "config", None) is not None else config.noise
    if settings.model in ("none", "human"):
        return None
    if settings.model == "matrix":
        if noisy.requested_matrix is None:
            return None
        return float(1.0 - np.mean(np.diag(np.asarray(noisy.requested_matrix, dtype=float))))
    return float(settings.rate)


# ------------------------------------------------------------------------------ callbacks
class RunMonitor(keras.callbacks.Callback):
    """Writes progress to status.json (at most every STATUS_INTERVAL s) and stops the run within
    one batch when RUN_DIR/stop.request appears or STOP_EVENT is set (SIGTERM)."""

    def __init__(self, run_dir: Path, *, epochs: int, batches: int, progress: Optional[Callable] = None,
                 batches_fn: Optional[Callable[[], int]] = None):
        super().__init__()
        self.run_dir, self.epochs, self.batches, self.progress = run_dir, epochs, batches, progress
        self.batches_fn = batches_fn  # batches of the coming epoch, when a method leaves images out
        self.stopped = False          # a stop was requested
        self.interrupted = False      # ... in the middle of an epoch (that epoch is not recorded)
        self.epoch = 0
        self._last = 0.0

    def _stop_requested(self) -> bool:
        return STOP_EVENT.is_set() or runs.stop_requested(self.run_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1
        if self.batches_fn is not None:
            self.batches = self.batches_fn()

    def on_train_batch_end(self, batch, logs=None):
        if not self.stopped and self._stop_requested():
            self.stopped = True
            self.interrupted = batch + 1 < self.batches
            self.model.stop_training = True
        now = time.monotonic()
        if now - self._last >= STATUS_INTERVAL or batch + 1 == self.batches:
            self._last = now
            info = {"epoch": self.epoch, "epochs": self.epochs, "batch": batch + 1, "batches": self.batches}
            runs.update_status(self.run_dir, **info)
            if self.progress is not None:
                self.progress({"state": "running", **info})

    def on_epoch_end(self, epoch, logs=None):
        # A stop requested during validation still ends the run after this (complete) epoch.
        if not self.stopped and self._stop_requested():
            self.stopped = True
            self.model.stop_training = True




class CompleteEpochCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that ignores an epoch cut short by a stop request (its metrics are not recorded)."""

    def __init__(self, *args, monitor_run: RunMonitor, **kwargs):
        super().__init__(*args, **kwargs)
        self.monitor_run = monitor_run

    def on_epoch_end(self, epoch, logs=None):
        if not self.monitor_run.interrupted:
            super().on_epoch_end(epoch, logs)


class LastModelSaver(keras.callbacks.Callback):
    """Saves last.keras when training ends, before EarlyStopping restores the best weights."""

    def __init__(self, path: Path, method):
        super().__init__()
        self.path, self.method = path, method

    def on_train_end(self, logs=None):
        self.method.predictor(self.model).save(self.path)


# ------------------------------------------------------------------------------ the run
def run(config: TrainConfig, run_dir, *, progress: Optional[Callable] = None, verbose: int = 0) -> dict:
    """Train one experiment in this process, writing the run folder; return the summary.

    Status goes running -> finished | stopped (stop.request or SIGTERM) | failed (exception,
    re-raised). ``progress(dict)`` is called with batch / epoch progress; ``verbose`` is fit()'s.
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"run needs a TrainConfig, got {type(config).__name__}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.json").exists():
        runs.atomic_write_text(run_dir / "config.json", config.to_json())
    policy = keras.mixed_precision.global_policy().name
    try:
        check_config(config)
        runs.update_status(run_dir, state="running", started=runs.now_iso(), pid=os.getpid(), error=None,
                           epoch=0, epochs=config.epochs, batch=0, finished=None)
        return _train(config, run_dir, progress=progress, verbose=verbose, t_start=time.monotonic())
    except KeyboardInterrupt:
        runs.update_status(run_dir, state="stopped", error="interrupted", finished=runs.now_iso())
        raise
    except Exception as e:
        runs.update_status(run_dir, state="failed", error=one_line(e), finished=runs.now_iso())
        raise
    finally:
        keras.mixed_precision.set_global_policy(policy)


def make_context(config: TrainConfig, prepared: Prepared, run_dir: Path):
    """Split off validation and build the TrainContext (+ index arrays for evaluation)."""
    ds, noisy = prepared.dataset, prepared.noisy
    given, true = np.asarray(noisy.labels), noisy.true_labels
    fit_idx, val_idx = validation_split(given, fraction=config.val_fraction, seed=config.seed)
    y_val = true[val_idx] if config.trusted_val else given[val_idx]
    x_train = prepared.model_inputs[0]
    ctx = TrainContext(config=config, x_fit=x_train[fit_idx], y_fit=given[fit_idx], x_val=x_train[val_idx],
                       y_val=np.asarray(y_val), num_classes=ds.num_classes, loss_kwargs=_loss_kwargs(config, noisy, ds.num_classes),
                       noise_rate=_noise_rate(config, noisy), run_dir=run_dir,
                       report_truth=None if true is None else true[fit_idx])  # sliced, never read here
    return ctx, fit_idx, val_idx


def _callbacks(config: TrainConfig, run_dir: Path, method, monitor, recorder) -> list:
    from noisycore.schedules import lr_at

    # EMA first: from the end of each epoch its weights (and BatchNorm statistics) are in the model, so the
    # recorder evaluates and the checkpoint saves them (fit's validation swaps them in too); training resumes
    # on the raw ones. Its tail comes last: a run that stops early ends on the averaged weights too.
    ema, ema_tail = averaging_callbacks(config.ema_momentum)
    # keep=last: every complete epoch overwrites it, so a stopped run keeps its last complete epoch too
    best = CompleteEpochCheckpoint(str(run_dir / "best.weights.h5"), monitor="val_accuracy", mode="max",
                                   save_best_only=config.keep == "best", save_weights_only=True, monitor_run=monitor)
    cbs = ema + [monitor, recorder, best, LastModelSaver(run_dir / "last.keras", method)]  # before EarlyStopping
    if config.early_stopping_patience > 0:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", restore_best_weights=True,
                                                 patience=config.early_stopping_patience))
    if config.lr_schedule == "plateau":
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.plateau_factor,
                                                     patience=config.plateau_patience, min_lr=config.min_lr))
    else:
        def schedule(epoch, lr):
            at, length = method.lr_phase(epoch)   # a method may restart the schedule in phases
            return lr_at(config.lr_schedule, at, lr=config.learning_rate, epochs=length, min_lr=config.min_lr)

        cbs.append(keras.callbacks.LearningRateScheduler(schedule))
    if config.tensorboard:
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))
    return cbs + method.callbacks() + ema_tail + [EpochBackup(run_dir, recorder=recorder, checkpoint=best)]


def _train(config, run_dir, *, progress, verbose, t_start) -> dict:
    from noisycore.hardware import resolve_precision
    from noisycore.methods import METHODS
    from noisycore.labelsets import save_label_set

    keras.utils.set_random_seed(config.seed)

    def embedding_progress(done, total):   # a pretrained head's inputs: every image embedded once (cached)
        phase = f"pretrained features: {done} of {total} images"
        runs.update_status(run_dir, phase=phase if done < total else None)
        if progress is not None:
            progress({"state": "running", "phase": phase, "done": done, "total": total})

    def prepared_for(config):
        prepared = prepare(config, progress=embedding_progress, notice=lambda text: runs.add_note(run_dir, text))
        if prepared.features:   # the status says which pixels the features saw (the original photos or not)
            from noisycore.embeddings import BACKBONE   # and which backbone: a head reads no other's features

            runs.update_status(run_dir, features=prepared.features, backbone=BACKBONE)
        if prepared.data.image_size != config.data.image_size:   # tiny images scaled up: folds and detection too
            side = prepared.data.image_size
            config = runs.record_choice(run_dir, config.replace(data=prepared.data), f"The images are smaller than "
                                        f"{config.model} needs; they were scaled up to {side}x{side} pixels.")
        return prepared, config

    prepared, config = prepared_for(config)
    save_label_set(run_dir, prepared.dataset, prepared.noisy)
    # seconds: the linear baseline (the line to beat), pretrained features or pixels, mirroring (augment / tta auto)
    chosen = baseline.choose_for_run(run_dir, config, prepared.dataset, prepared.noisy.labels,
                                     truth_known=prepared.noisy.true_labels is not None)
    if chosen.model != config.model:   # the features do not beat the pixels: images, not embeddings, go in
        prepared, chosen = prepared_for(chosen)
    config, ds, noisy = chosen, prepared.dataset, prepared.noisy
    x_train, x_test = prepared.model_inputs
    # the fast preset: precision and network timed on this machine (cached), epochs from a time budget
    num_fit = len(noisy.labels) - len(validation_split(noisy.labels, fraction=config.val_fraction, seed=config.seed)[1])
    config = calibration.choose_for_run(run_dir, config, num_fit=num_fit, image_shape=ds.x_train.shape[1:])
    keras.utils.set_random_seed(config.seed)
    precision = resolve_precision(config.mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    runs.update_status(run_dir, precision=precision)
    ctx, fit_idx, val_idx = make_context(config, prepared, run_dir)
    fit_probs = lambda: None if monitor.interrupted else recorder.fit_probs  # noqa: E731 (set below)
    extra_callbacks = _forward_setup(config, noisy, ctx, run_dir, fit_probs)
    method = METHODS[config.method](ctx, **config.method_kwargs)
    model = method.build()
    batches = method.fit_batches()
    k = ds.num_classes
    record = (config.record_margins if config.record_margins is not None
              else len(ds.y_train) <= MARGINS_AUTO_MAX_N or bool(config.aum_threshold_samples))
    # the training-set curves on a sample, unless margins, the method or forward's T need every fit image
    sample = train_sample(ctx.y_fit, full=record or method.uses_fit_probs or bool(extra_callbacks), seed=config.seed)
    # a large set: one plain validation pass of ours and the test curve on a sample (epoch_eval docstring)
    large = is_large(len(fit_idx))
    own_val = bool(len(val_idx)) and (config.tta != "none" or large) and not method.extra_val_metrics
    evaluation = Evaluation(train_x=x_train, test_x=x_test, val_x=x_train[val_idx] if own_val else None,
                            fit_idx=fit_idx, val_idx=val_idx, y_val=ctx.y_val, tta=config.tta, precision=precision,
                            given_fit=ctx.y_fit, true_fit=ctx.report_truth, given_all=np.asarray(noisy.labels),
                            y_test=np.asarray(ds.y_test), record_margins=record, sample=sample,
                            test_sample=curve_test_sample(ds.y_test, large=large, seed=config.seed),
                            val_tta="none" if large else None,
                            val_loss=method.per_example_loss() if own_val else None)
    monitor = RunMonitor(run_dir, epochs=config.epochs, batches=batches, progress=progress,
                         batches_fn=method.fit_batches)
    recorder = EpochRecorder(run_dir=run_dir, method=method, monitor=monitor, evaluation=evaluation, progress=progress)
    runs.update_status(run_dir, batches=batches, num_fit=len(fit_idx), num_val=len(val_idx),
                       train_sample=len(sample), margins_recorded=bool(record), num_test=len(ds.y_test),
                       test_sample=len(ds.y_test) if evaluation.test_sample is None else len(evaluation.test_sample),
                       val_tta=evaluation.val_tta or config.tta)
    data, steps = method.train_data(), None
    if int(data.cardinality()) > 0:   # passes of a fixed length: one iterator for the whole run (no stalls)
        data, steps = endless(data)
    model.fit(data, validation_data=None if own_val else method.val_data(), epochs=config.epochs, steps_per_epoch=steps,
              callbacks=_callbacks(config, run_dir, method, monitor, recorder) + extra_callbacks, verbose=verbose,
              shuffle=False)  # the pipeline already reshuffles each pass
    return _finish(config, run_dir, model=model, method=method, prepared=prepared, evaluation=evaluation,
                   val_idx=val_idx, stopped=monitor.stopped, t_start=t_start)


def _last_epoch(metrics) -> tuple:
    """(epoch, val_accuracy) of the last recorded epoch (keep=last), or (None, None)."""
    if not len(metrics):
        return None, None
    row = metrics.iloc[-1]
    return int(row["epoch"]), _num(row.get("val_accuracy"))


def _best_epoch(metrics) -> tuple:
    """(epoch, val_accuracy) of the first epoch with the highest val_accuracy, or (None, None)."""
    if not len(metrics) or "val_accuracy" not in metrics or metrics["val_accuracy"].isna().all():
        return None, None
    row = metrics.loc[metrics["val_accuracy"].idxmax()]
    return int(row["epoch"]), float(row["val_accuracy"])


def _finish(config, run_dir, *, model, method, prepared, evaluation, val_idx, stopped, t_start) -> dict:
    """Restore the best weights, save best.keras, predictions.npz and summary.json; set the final state."""
    ds, noisy = prepared.dataset, prepared.noisy
    best = run_dir / "best.weights.h5"
    if best.exists():  # else no epoch completed: the current weights are the best we have
        model.load_weights(best)
    net = method.predictor(model)
    net.save(run_dir / "best.keras")
    train_probs = predict_probs(net, evaluation.train_x, tta=evaluation.tta, batch_size=EVAL_BATCH)
    test_probs = predict_probs(net, evaluation.test_x, tta=evaluation.tta, batch_size=EVAL_BATCH)
    given, fit_idx = evaluation.given_all, evaluation.fit_idx
    final_labels = given.copy()
    final_labels[fit_idx] = method.final_fit_labels()
    is_val = np.zeros(len(given), bool)
    is_val[val_idx] = True
    save_npz(run_dir / "predictions.npz", train_probs=train_probs, test_probs=test_probs,
              train_ids=np.asarray(ds.ids_train).astype(str), test_ids=np.asarray(ds.ids_test).astype(str),
              train_labels=given, test_labels=evaluation.y_test, is_val=is_val, train_labels_final=final_labels)
    metrics = runs.read_metrics(run_dir)
    best_epoch, best_val = _best_epoch(metrics) if config.keep == "best" else _last_epoch(metrics)
    fit = training_set_metrics(train_probs[fit_idx], evaluation.given_fit, evaluation.true_fit)
    last = metrics.iloc[-1] if len(metrics) else None
    state = "stopped" if stopped else "finished"
    summary = {
        "state": state, "epochs_done": int(len(metrics)), "epochs": config.epochs,
        "best_epoch": best_epoch, "best_val_accuracy": best_val,
        "test_accuracy": float((test_probs.argmax(1) == evaluation.y_test).mean()),
        "train_acc_noisy": fit["train_acc_given"], "train_acc_true": fit["train_acc_true"],
        "memorized": fit["memorized"],
        "last_test_accuracy": None if last is None else _num(last.get("test_accuracy")),
        "last_memorized": None if last is None else _num(last.get("memorized")),
        "num_fit": int(len(fit_idx)), "num_val": int(len(val_idx)), "num_test": int(len(ds.y_test)),
        "num_classes": ds.num_classes, **_summary_truth(noisy), "trusted_val": config.trusted_val,
        "skipped_images": _skipped(ds), "precision": evaluation.precision, "tta": config.tta,
        "chance": baseline.chance_rate(evaluation.y_test),
        "seconds": round(time.monotonic() - t_start, 2), **method.summary(),
    }
    runs.write_json(run_dir / "summary.json", summary)
    best.unlink(missing_ok=True)
    runs.update_status(run_dir, state=state, finished=runs.now_iso(), error=None)
    return summary


def _summary_truth(noisy) -> dict:
    """The report's truth fields (evaluation only, after training): truth_known and the realized rate."""
    rate = noisy.realized_rate
    return {"truth_known": noisy.true_labels is not None, "noise_rate": None if rate is None else float(rate)}


def _skipped(ds) -> Optional[str]:
    from noisycore.datasets import skipped_text
    return skipped_text(ds)


def _num(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)
