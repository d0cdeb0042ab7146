"""The one set of stratified, seeded splitters every part of the app uses.

    stratified_subset(labels, n, seed)       # n examples keeping class shares: max_train / max_test
    stratified_split(labels, fraction, seed) # about fraction of each class: validation and test holdouts
    stratified_folds(labels, folds, seed)    # a fold number per example: K-fold cross-validation

Each returns the same indices for the same (labels, size, seed), whoever calls it, so for example
``max_train`` picks the same images whether the labels come from injected noise or a saved label set.
numpy only; every function draws from its own ``np.random.default_rng(seed)``.
"""
from __future__ import annotations

import numpy as np


def stratified_subset(labels, n: int, seed: int) -> np.ndarray:
    """Sorted indices of n examples keeping the class shares (largest-remainder quotas per class, a
    seeded choice within each class). All indices when n >= N. labels (N,) -> int (n,)."""
    y = np.asarray(labels)
    if n >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    quota = n * counts / len(y)
    take = np.floor(quota).astype(int)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), t, replace=False) for c, t in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def stratified_split(labels, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of round(fraction * n_c) examples of each class c, at least 1 and at most n_c - 1
    (a class with fewer than 2 examples gives none). labels (N,) -> int (M,)."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < 2:
            continue
        n = min(max(int(round(fraction * len(idx))), 1), len(idx) - 1)
        picked.append(rng.choice(idx, n, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def stratified_folds(labels, folds: int, seed: int) -> np.ndarray:
    """Fold number 0..folds-1 per example (N,), stratified by label: each class is shuffled (seeded)
    and dealt round-robin, continuing where the previous class stopped, so fold sizes differ by <= 1."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        out[idx] = (np.arange(len(idx)) + offset) % folds
        offset += len(idx)
    return out
