"""Threshold samples for the area under the margin (Pleiss et al. 2020, "Identifying Mislabeled Data
using the Area Under the Margin Ranking", Sec. 3). numpy only.

A run trained with ``TrainConfig.aum_threshold_samples`` is the one EXTRA training run the paper's
threshold costs: ``N // (K + 1)`` training images (a seeded, stratified choice) are given a fake extra
class K ("(AUM threshold class)"), and the network gets K + 1 outputs. No image belongs to the fake
class, so the threshold samples show the AUM of surely-wrong labels; the ``aum`` detector flags every
other training image whose AUM is below the 99th percentile of theirs (``issues.aum_threshold``).

What is done here, and what is not: one threshold run scores the images that are not threshold
samples; the threshold samples themselves (and the validation images, which the network never trains
on) are not scored (NaN). Pleiss et al. train a second threshold run with a disjoint set of threshold
samples to score those too; that second run is not automated. The threshold samples' given labels are
replaced, so the run's own accuracy and memorization numbers include them.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from noisycore.util import stratified_subset

FAKE_CLASS_NAME = "(AUM threshold class)"
COST_NOTE = "needs one extra training run: this run gives N/(K+1) images a fake class to set AUM's threshold"


def threshold_samples(labels, *, num_classes: int, seed: int) -> np.ndarray:
    """Sorted indices of N // (K + 1) examples (stratified by the given label, seeded). labels (N,)."""
    y = np.asarray(labels)
    return stratified_subset(y, len(y) // (num_classes + 1), seed)


def add_fake_class(dataset, noisy, *, seed: int) -> tuple:
    """(dataset with K + 1 class names, labels with the threshold samples given class K). The true
    labels stay as they were (for evaluation only)."""
    from noisycore.noise import realized_matrix

    k = dataset.num_classes
    idx = threshold_samples(noisy.labels, num_classes=k, seed=seed)
    labels = np.asarray(noisy.labels).copy()
    labels[idx] = k
    ds = dataclasses.replace(dataset, class_names=tuple(dataset.class_names) + (FAKE_CLASS_NAME,))
    changes = {"labels": labels, "requested_matrix": None}
    if noisy.true_labels is not None:
        is_noisy = labels != noisy.true_labels
        changes.update(is_noisy=is_noisy, realized_rate=float(is_noisy.mean()),
                       realized_matrix=realized_matrix(noisy.true_labels, labels, k + 1))
    return ds, dataclasses.replace(noisy, **changes)


def has_threshold_samples(run_dir) -> bool:
    """Whether the run was trained with threshold samples (its config says so)."""
    from noisycore import runs

    try:
        return bool(getattr(runs.read_config(run_dir), "aum_threshold_samples", False))
    except Exception:   # an unreadable config: no threshold samples to offer
        return False


def detector_margins(info, margins) -> dict:
    """{"margins": (E, N) with the threshold samples' columns NaN (not scored), "threshold_margins":
    (E, M) of the threshold samples that were trained on} for ``issues.find_label_issues``."""
    names = list(info.class_names)
    if FAKE_CLASS_NAME not in names:
        from noisycore.errors import UserError

        raise UserError("the aum detector needs a run trained with aum_threshold_samples (" + COST_NOTE + "); "
                        "use aum_margin_below_0 on this run")
    fake = np.asarray(info.labels) == names.index(FAKE_CLASS_NAME)
    m = np.asarray(margins, dtype=np.float64)
    trained = fake & ~np.isnan(m).all(axis=0)
    scored = m.copy()
    scored[:, fake] = np.nan
    return {"margins": scored, "threshold_margins": m[:, trained]}
