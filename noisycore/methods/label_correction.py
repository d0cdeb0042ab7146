"""Label correction as rounds of self-training (the blog post's ``correct_labels``).

The epochs are split into ``rounds + 1`` equal phases. At the end of each phase but the last, the
model predicts the un-augmented training split and every image whose predicted class has
probability above ``threshold`` (and differs from its current label) is relabelled to that class:

    new_i = argmax_k p_ik   if max_k p_ik > threshold   else current_i

Training then CONTINUES from the current weights on the corrected labels (no re-initialization:
it costs no extra epochs, and the network has already learned the clean patterns; the price is
that labels it has memorized by then look "confirmed" and are not corrected, so early rounds
matter most). Corrections accumulate across rounds. Each round's counts (changed, and with known
truth how many changes were right / wrong) go to ``corrections.csv`` and to the ``labels_changed``
metric column. Validation labels are never corrected. Early stopping may end training before
later rounds.

Options (``catalog.METHOD_DEFAULTS``): ``detector="confident_learning"`` acts on the labels confident
learning flags on the same predictions (its proposed label = the argmax) instead of the 0.9 rule;
``action="drop"`` leaves the flagged images out of the following phase instead of relabelling them
(each round decides afresh from all fit images; the pipeline skips them, so epochs get shorter; the
counts then read: changed = images left out, changed_correct / changed_wrong = of those, how many
labels were wrong / right, label_accuracy = accuracy of the labels still trained on);
``restart=True`` runs the learning-rate schedule once per phase (``lr_phase``).
"""
from __future__ import annotations

import csv
import os
import warnings
from typing import Optional

import numpy as np

from noisycore.catalog import METHOD_CHOICES
from noisycore.config import ConfigError
from noisycore.methods.confidence_weighting import ExampleAwareMethod

CORRECTION_COLUMNS = ("round", "epoch", "changed", "changed_correct", "changed_wrong", "label_accuracy")


def correct_labels(probs, labels, *, threshold: float = 0.9) -> np.ndarray:
    """Relabel to the predicted class where max prob > threshold. probs (N, K), labels (N,) -> (N,) int64."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ConfigError(f"probs {p.shape} and labels {y.shape} must be (N, K) and (N,)")
    if not 0.0 < float(threshold) < 1.0:
        raise ConfigError(f"threshold={threshold!r} must be in (0, 1), e.g. 0.9")
    confident = p.max(axis=1) > threshold
    return np.where(confident, p.argmax(axis=1), y).astype(np.int64)


def correction_counts(old, new, true_labels: Optional[np.ndarray] = None) -> dict:
    """How many labels changed and, with the truth, how many changes are right (new == true) or wrong."""
    old, new = np.asarray(old), np.asarray(new)
    changed = old != new
    out = {"changed": int(changed.sum()), "changed_correct": None, "changed_wrong": None, "label_accuracy": None}
    if true_labels is not None:
        t = np.asarray(true_labels)
        out["changed_correct"] = int((changed & (new == t)).sum())
        out["changed_wrong"] = int((changed & (new != t)).sum())
        out["label_accuracy"] = float((new == t).mean())
    return out


def drop_counts(flagged, labels, true_labels: Optional[np.ndarray] = None) -> dict:
    """Counts of a drop round: how many images are left out and, with the truth, how many of those
    labels were wrong (a right decision) or right, and the accuracy of the labels kept."""
    flagged, labels = np.asarray(flagged, bool), np.asarray(labels)
    out = {"changed": int(flagged.sum()), "changed_correct": None, "changed_wrong": None, "label_accuracy": None}
    if true_labels is not None:
        wrong = labels != np.asarray(true_labels)
        out["changed_correct"] = int((flagged & wrong).sum())
        out["changed_wrong"] = int((flagged & ~wrong).sum())
        out["label_accuracy"] = float((~wrong[~flagged]).mean()) if (~flagged).any() else None
    return out


def round_ends(epochs: int, rounds: int) -> list:
    """Epochs (1-based counts) after which labels are corrected: round(E r / (R + 1)), r = 1..R, in [1, E)."""
    ends = sorted({int(round(epochs * r / (rounds + 1))) for r in range(1, rounds + 1)})
    return [e for e in ends if 1 <= e < epochs]


class LabelCorrectionMethod(ExampleAwareMethod):
    """Standard training whose labels are corrected at phase ends (see module doc)."""

    name = "label_correction"
    use_example_labels = True

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        thr, rounds = self.params["threshold"], self.params["rounds"]
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 < thr < 1:
            raise ConfigError(f"threshold={thr!r} must be a number in (0, 1), e.g. 0.9")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= 20:
            raise ConfigError(f"rounds={rounds!r} must be an integer in 1..20")
        for name, choices in METHOD_CHOICES["label_correction"].items():
            if self.params[name] not in choices:
                raise ConfigError(f"{name}={self.params[name]!r} must be one of: {', '.join(choices)}")
        if not isinstance(self.params["restart"], bool):
            raise ConfigError(f"restart={self.params['restart']!r} must be true or false")
        self.labels = np.asarray(ctx.y_fit, dtype=np.int64).copy()
        self.ends = round_ends(ctx.config.epochs, rounds)
        self.history: list = []
        self.keep = None   # drop: tf.Variable (N_fit,) bool read by the training pipeline

    def init_model(self, model) -> None:
        model.example_labels.assign(self.labels.astype(np.int32))

    def train_data(self):
        if self.params["action"] != "drop":
            return super().train_data()
        import tensorflow as tf

        # The epochs shrink when images are dropped: Keras then warns that the input "ran out of data"
        # (it expects the first epoch's length) and ends the epoch there, which is what is wanted.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        self.keep = tf.Variable(np.ones(len(self.labels), bool), trainable=False, name="keep")
        return self.train_dataset(with_index=True, keep=self.keep)

    def fit_batches(self) -> int:
        if self.keep is None:
            return super().fit_batches()
        return -(-int(self.keep.numpy().sum()) // self.ctx.config.batch_size)

    def lr_phase(self, epoch: int) -> tuple:
        """(epoch within its phase, phase length) with ``restart``; else the whole run."""
        if not self.params["restart"]:
            return super().lr_phase(epoch)
        bounds = [0, *self.ends, self.ctx.config.epochs]
        start = max(b for b in bounds[:-1] if b <= epoch)
        return epoch - start, bounds[bounds.index(start) + 1] - start

    def _flags(self, probs_fit) -> tuple:
        """(flagged (N,) bool, proposed labels (N,)) by the configured detector."""
        if self.params["detector"] == "threshold":
            new = correct_labels(probs_fit, self.labels, threshold=float(self.params["threshold"]))
            return new != self.labels, new
        from noisycore.detectors import find_label_issues

        issues = find_label_issues(self.labels, probs_fit, detector="confident_learning")
        return issues.is_label_issue, np.where(issues.is_label_issue, issues.proposed_label, self.labels)

    def after_epoch(self, epoch, probs_fit, model) -> dict:
        if epoch + 1 not in self.ends:
            return {"labels_changed": 0}
        flagged, proposed = self._flags(probs_fit)
        if self.params["action"] == "drop":
            if flagged.all():   # nothing would be left to train on: this round keeps every image
                flagged = np.zeros_like(flagged)
            counts = drop_counts(flagged, self.labels, self.ctx.report_truth)
            self.keep.assign(~flagged)
        else:
            counts = correction_counts(self.labels, proposed, self.ctx.report_truth)
            self.labels = proposed.astype(np.int64)
            model.example_labels.assign(self.labels.astype(np.int32))
        row = {"round": len(self.history) + 1, "epoch": epoch + 1, **counts}
        self.history.append(row)
        self._write(row)
        return {"labels_changed": row["changed"]}

    def _write(self, row: dict) -> None:
        if self.ctx.run_dir is None:
            return
        path = self.ctx.run_dir / "corrections.csv"
        new_file = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(CORRECTION_COLUMNS)
            writer.writerow(["" if row[c] is None else row[c] for c in CORRECTION_COLUMNS])
            f.flush()
            os.fsync(f.fileno())

    def final_fit_labels(self) -> np.ndarray:
        return self.labels

    def summary(self) -> dict:
        total = lambda key: None if not self.history or self.history[0][key] is None \
            else int(sum(r[key] for r in self.history))  # noqa: E731
        return {"correction_rounds": len(self.history), "labels_changed": total("changed"),
                "changed_correct": total("changed_correct"), "changed_wrong": total("changed_wrong")}
