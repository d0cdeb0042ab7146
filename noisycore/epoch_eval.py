"""The per-epoch evaluation of a run: what each metrics.csv row is computed on, at little cost.

After every epoch (``EpochRecorder``, a Keras callback):

- training-set curves (accuracy against the given and the true labels, memorized): one plain pass
  over the fit images, or, for a large set (more than ``TRAIN_SAMPLE_MAX`` fit images), over a fixed
  stratified seeded sample of ``TRAIN_SAMPLE_MAX`` of them (``train_sample``). Every fit image is
  predicted when something needs all of them: AUM margins (``record_margins``: on by default up to
  ``config.MARGINS_AUTO_MAX_N`` images), a method that reweights or relabels from the predictions
  (``method.uses_fit_probs``), the forward loss's estimate of T;
- validation: ONE pass. Ours when the run has TTA or the set is large (``val_tta``: the run's TTA on a
  small set, so the accuracy that selects the best epoch is the one the kept model will have; plain on
  a large set, where a second pass would cost more than the tenth of an epoch the evaluation is
  allowed), giving ``val_accuracy`` and ``val_loss`` (the method's loss plus the model's penalties, as
  Keras computes it), and Keras does not validate; otherwise Keras' own ``validation_data`` pass.
  Co-teaching (``method.extra_val_metrics``) keeps Keras' pass for its second network's columns;
- test accuracy: one plain pass (no TTA: the curve shows the rise and fall; the summary's test
  accuracy of the kept model uses TTA), on a fixed stratified seeded sample of ``TEST_SAMPLE_MAX``
  test images for a large set (``test_sample``).

The kept model's final numbers and predictions.npz are computed on the full sets with the run's TTA
(train._finish). On full CIFAR-10 with the fast preset this is 5,000 + 5,000 + 5,000 images per epoch
(about 8% of an epoch's fit time) instead of 45,000 (margins) + 2 x 5,000 + 10,000 before issue 32's
last change, and 50,000 + 2 x 5,000 (+ Keras' 5,000) + 2 x 10,000 before its first.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import keras
import numpy as np

from noisycore import runs
from noisycore.methods.standard import EVAL_BATCH
from noisycore.pipeline import predict_probs
from noisycore.util import margins, save_npy, stratified_subset

TRAIN_SAMPLE_MAX = 5000   # fit images predicted per epoch for the training-set curves (large sets)
TEST_SAMPLE_MAX = 5000    # test images predicted per epoch for the test curve (large sets; None = all)


def is_large(num_fit: int) -> bool:
    """A set whose per-epoch evaluation is cut to samples and one plain validation pass."""
    return int(num_fit) > TRAIN_SAMPLE_MAX


def curve_test_sample(y_test, *, large: bool, seed: int) -> Optional[np.ndarray]:
    """Positions in the test set of the per-epoch test curve: None (every test image) for a small set
    or a test set of at most ``TEST_SAMPLE_MAX``, else a stratified (by label) seeded sample."""
    y_test = np.asarray(y_test)
    if not large or TEST_SAMPLE_MAX is None or len(y_test) <= TEST_SAMPLE_MAX:
        return None
    return stratified_subset(y_test, TEST_SAMPLE_MAX, seed)


def train_sample(given_fit, *, full: bool, seed: int, size: Optional[int] = None) -> np.ndarray:
    """Positions in the fit split that the training-set curves are computed on: every one when
    ``full`` or when there are at most ``size``, else a stratified (by given label) seeded sample of
    ``size`` (util.stratified_subset: the class shares kept). given_fit (N_fit,) -> int (n,), sorted."""
    given_fit = np.asarray(given_fit)
    size = TRAIN_SAMPLE_MAX if size is None else int(size)
    if full or len(given_fit) <= size:
        return np.arange(len(given_fit))
    return stratified_subset(given_fit, size, seed)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """What the per-epoch and final evaluations need: the training, validation and test images (uint8
    arrays, predicted un-augmented through pipeline.predict_probs), the
    fit / validation split, the labels to score against, and how to predict (TTA, precision)."""

    train_x: np.ndarray               # uint8 every training image (fit + validation)
    test_x: np.ndarray                # uint8 the test images
    val_x: Optional[np.ndarray]       # uint8 the validation images (val_idx order) for our pass; None: Keras validates
    fit_idx: np.ndarray               # int (n_fit,) positions of the images the model trains on
    val_idx: np.ndarray               # int (n_val,) positions of the validation images
    y_val: np.ndarray                 # the labels validation scores against (given, or true with trusted_val)
    tta: str                          # "none" | "flip"
    precision: str                    # "float32" | "bfloat16", as resolved for this run
    given_fit: np.ndarray             # given labels of the fit images
    true_fit: Optional[np.ndarray]    # true labels of the fit images (None when the truth is unknown)
    given_all: np.ndarray             # given labels of every training image
    y_test: np.ndarray                # labels of the test images
    record_margins: bool              # keep each epoch's margins (AUM) in margins.npy
    sample: Optional[np.ndarray] = None     # positions in the fit split of the per-epoch curves (None: all)
    test_sample: Optional[np.ndarray] = None  # positions in the test set of the per-epoch test curve (None: all)
    val_tta: Optional[str] = None           # TTA of the per-epoch validation pass (None: the run's ``tta``)
    val_loss: Optional[Callable] = None     # per-example loss (y (B, K), p (B, K)) -> (B,): ours is the one
                                            # validation pass (Keras' validation_data off); None: Keras validates

    @property
    def full(self) -> bool:
        """Every fit image is predicted each epoch."""
        return self.sample is None or len(self.sample) == len(self.fit_idx)


class EpochRecorder(keras.callbacks.Callback):
    """After each complete epoch: predict the training-set sample, the validation set (when ours is the
    validation pass) and the test set, append a metrics.csv row and the margins, and let the method
    react (weights, relabelling). See the module docstring for what each pass covers."""

    def __init__(self, *, run_dir, method, monitor, evaluation: Evaluation, progress=None):
        super().__init__()
        self.run_dir, self.method, self.monitor, self.ev, self.progress = run_dir, method, monitor, evaluation, progress
        self.columns = None
        self.margins: list = []
        self.fit_probs = None             # (N_fit, K) of the last epoch when every fit image is predicted
        self._t0, self._lr = 0.0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.monotonic()

    def _validate(self, net, logs: dict) -> None:
        """Our validation pass: val_accuracy, and val_loss when Keras did not validate."""
        ev = self.ev
        if ev.val_x is None:
            return
        val_tta = ev.tta if ev.val_tta is None else ev.val_tta
        val_probs = predict_probs(net, ev.val_x, tta=val_tta, batch_size=EVAL_BATCH)
        # model selection (checkpoint, early stopping: later callbacks) uses this accuracy
        logs["val_accuracy"] = float((probs_argmax(val_probs) == ev.y_val).mean())
        if ev.val_loss is not None:
            onehot = np.eye(val_probs.shape[1], dtype=np.float32)[ev.y_val]
            per_example = keras.ops.convert_to_numpy(ev.val_loss(onehot, val_probs))
            penalty = sum(float(keras.ops.convert_to_numpy(v)) for v in self.model.losses)
            logs["val_loss"] = float(np.mean(per_example)) + penalty

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor.interrupted:
            return
        fit_seconds = time.monotonic() - self._t0   # the epoch's steps (+ Keras' validation), before ours
        # The lr this epoch used: schedulers set it at epoch begin; ReduceLROnPlateau (later in the
        # callback list) lowers it only after this runs.
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        ev, logs = self.ev, (logs if logs is not None else {})
        net = self.method.predictor(self.model)
        sample = np.arange(len(ev.fit_idx)) if ev.sample is None else ev.sample
        probs = predict_probs(net, ev.train_x[ev.fit_idx[sample]], tta="none", batch_size=EVAL_BATCH)
        self.fit_probs = probs if ev.full else None
        self._validate(net, logs)
        test_x, y_test = ((ev.test_x, ev.y_test) if ev.test_sample is None
                          else (ev.test_x[ev.test_sample], ev.y_test[ev.test_sample]))
        test_probs = predict_probs(net, test_x, tta="none", batch_size=EVAL_BATCH)
        true = None if ev.true_fit is None else ev.true_fit[sample]
        row = {"epoch": epoch + 1, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
               **training_set_metrics(probs, ev.given_fit[sample], true),
               "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
               "test_accuracy": float((probs_argmax(test_probs) == y_test).mean()), "lr": self._lr}
        extras = self.method.after_epoch(epoch, self.fit_probs, self.model)
        extras.update({k: logs[k] for k in ("val_accuracy_2",) if k in logs})
        row.update(extras)
        row["seconds"] = round(time.monotonic() - self._t0, 3)
        row["fit_seconds"] = round(fit_seconds, 3)
        if self.columns is None:
            self.columns = list(runs.METRIC_COLUMNS) + [k for k in extras if k not in runs.METRIC_COLUMNS]
        runs.append_metrics_row(self.run_dir, row, self.columns)
        if ev.record_margins:   # training dynamics: the fit images only (validation images stay NaN)
            row_margins = np.full(len(ev.given_all), np.nan, dtype=np.float32)
            row_margins[ev.fit_idx] = margins(probs, ev.given_fit)
            self.margins.append(row_margins.astype(np.float16))
            save_npy(self.run_dir / "margins.npy", np.stack(self.margins))
        runs.update_status(self.run_dir, epoch=epoch + 1, epochs_done=epoch + 1)
        if self.progress is not None:
            self.progress({"state": "running", "epoch": epoch + 1, "metrics": row})


# ------------------------------------------------------------------------------ metrics helpers
def probs_argmax(probs) -> np.ndarray:
    return np.asarray(probs).argmax(axis=1)


def training_set_metrics(probs, given, true=None) -> dict:
    """Accuracy against the given and the true labels, and the share of wrong labels memorized.

    memorized = mean over examples with given != true of [argmax p == given]. probs (N, K), labels (N,).
    """
    pred = probs_argmax(probs)
    out = {"train_acc_given": float((pred == given).mean()), "train_acc_true": None, "memorized": None}
    if true is not None:
        out["train_acc_true"] = float((pred == true).mean())
        noisy = given != true
        if noisy.any():
            out["memorized"] = float((pred[noisy] == given[noisy]).mean())
    return out
