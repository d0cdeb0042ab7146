"""Label-issue detection: score every example, flag the likely mislabelled ones, evaluate the flags.

Every detector maps given ``labels`` (N,) and ``pred_probs`` (N, K) (out-of-sample predictions, see
the GUIDE) -- or, for ``aum``, per-epoch margins recorded during training -- to a :class:`LabelIssues`:
a ``label_quality`` score in [0, 1] (lower = more suspicious), a boolean flag per example and a
proposed label. Detectors are looked up by name in ``DETECTORS``; the app's dropdown, the CLI and
the tests read the same dict.

Confident learning is a numpy re-implementation from the paper (Northcutt, Jiang & Chuang 2021,
"Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR) that reproduces cleanlab's
``filter.find_label_issues(filter_by="prune_by_noise_rate")`` decisions; cleanlab itself is never
imported here (it is AGPL). cleanlab's confident joint is indexed ``[given, true]``, the transpose of
our ``noise_matrix`` convention; the functions below say which one they return.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from noisycore.catalog import DETECTOR_HELP, DETECTOR_NAMES, detector_name  # noqa: F401 (re-exported)
from noisycore.errors import DataError, UserError
from noisycore.util import check_labels, score_margins

PROB_SUM_TOLERANCE = 1e-3   # |row sum - 1| allowed in pred_probs (float32 softmax outputs drift ~1e-6)
_FUZZ = 1e-6                # cleanlab's floating-point comparison slack, kept so decisions match exactly
_MIN_THRESHOLD = 2 * _FUZZ  # lower bound on a per-class threshold (must exceed the slack above)
_MISSING_CLASS_THRESHOLD = 2.0  # a class nobody is labelled with gets an unreachable threshold


@dataclass(frozen=True, eq=False)
class LabelIssues:
    """What a detector found: one score, flag and proposal per example (arrays of length N)."""

    label_quality: np.ndarray   # float (N,) in [0, 1]; lower = more likely mislabelled
    is_label_issue: np.ndarray  # bool (N,)
    proposed_label: np.ndarray  # int (N,): the label the detector would give instead
    proposed_prob: np.ndarray   # float (N,): model probability of proposed_label (NaN if unknown)
    detector: str
    params: dict = field(default_factory=dict)

    @property
    def num_issues(self) -> int:
        return int(self.is_label_issue.sum())


# ----------------------------------------------------------------------------- validation

def _check_probs(pred_probs, n: int) -> np.ndarray:
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise DataError(f"pred_probs must have shape (N, K) with K >= 2 classes, got {p.shape}")
    if p.shape[0] != n:
        raise DataError(f"pred_probs has {p.shape[0]} rows but labels has {n} entries; "
                        "pass one row of probabilities per example")
    finite = np.isfinite(p).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(f"pred_probs row {i} contains NaN or inf: {p[i].tolist()}")
    if (p < 0).any():
        i, k = map(int, np.argwhere(p < 0)[0])
        raise DataError(f"pred_probs[{i}, {k}] = {p[i, k]:.6g} is negative; pass probabilities "
                        "(softmax outputs), not logits")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > PROB_SUM_TOLERANCE)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"pred_probs row {i} sums to {sums[i]:.6g}, not 1 (tolerance "
                        f"{PROB_SUM_TOLERANCE}); {bad.size} row(s) affected -- apply softmax first")
    return p


def _check_inputs(labels, pred_probs):
    p = np.asarray(pred_probs)
    if p.ndim != 2:
        raise DataError(f"pred_probs must have shape (N, K), got {p.shape}")
    y = check_labels(labels, p.shape[1])
    return y, _check_probs(p, len(y))


def _check_fraction(name: str, value, *, low=0.0, high=1.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}={value!r} is not a number") from None
    if not (low <= v <= high):
        raise UserError(f"{name}={value} is outside [{low}, {high}]")
    return v


# ----------------------------------------------------------------------------- confident learning

def confident_thresholds(labels, pred_probs) -> np.ndarray:
    """Per-class thresholds ``t_j = mean(p_j | given label j)``, shape (K,).

    A class nobody is labelled with gets 2.0 (no probability reaches it); all are clipped to >= 2e-6.
    """
    y, p = _check_inputs(labels, pred_probs)
    return _thresholds(y, p)


def _thresholds(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    t = np.array([np.mean(p[y == j, j]) if np.any(y == j) else _MISSING_CLASS_THRESHOLD
                  for j in range(p.shape[1])])
    return np.clip(t, _MIN_THRESHOLD, None)


def _confident_guess(y: np.ndarray, p: np.ndarray):
    """Each example's confidently-counted class (or -1 when no class reaches its threshold).

    An example is confident in class j when ``p_j >= t_j`` (with 1e-6 slack). With exactly one such
    class that class is the guess; with several, the overall argmax of the row (cleanlab's rule).
    """
    above = p >= _thresholds(y, p) - _FUZZ
    n_above = above.sum(axis=1)
    guess = np.where(n_above > 1, p.argmax(axis=1), above.argmax(axis=1))
    return np.where(n_above > 0, guess, -1)


def confident_joint(labels, pred_probs, *, calibrate: bool = True) -> np.ndarray:
    """Confident joint ``C[i, j]`` = #examples with given label i confidently counted in class j.

    Shape (K, K), int, indexed ``[given, true]`` (cleanlab's orientation; our noise_matrix is its
    transpose). The diagonal is clipped to >= 1. ``calibrate=True`` rescales each row to the count
    of label i (``C[i, :] * n_i / sum_j C[i, j]``), so the total is N, then rounds each row to ints
    keeping its total (Northcutt et al. 2021, eqs. 1-2).
    """
    y, p = _check_inputs(labels, pred_probs)
    return _confident_joint(y, p, calibrate=calibrate)


def _confident_joint(y, p, *, calibrate=True):
    k = p.shape[1]
    guess = _confident_guess(y, p)
    ok = guess >= 0
    cj = np.zeros((k, k), dtype=np.int64)
    np.add.at(cj, (y[ok], guess[ok]), 1)
    np.fill_diagonal(cj, np.maximum(cj.diagonal(), 1))
    if not calibrate:
        return cj
    counts = np.bincount(y, minlength=k)
    # column-major, like cleanlab's (a transposed confusion matrix): the float total below then sums
    # in the same memory order, so x.5 entries round identically and the joints agree bit for bit
    cj = np.asfortranarray(cj)
    cal = (cj.T / np.clip(cj.sum(axis=1), 1e-100, None) * counts).T
    cal = cal / np.clip(cal.sum(), 1e-100, None) * counts.sum()
    return np.vstack([_round_keep_sum(row) for row in cal])


def _round_keep_sum(values: np.ndarray) -> np.ndarray:
    """Round floats to ints so their rounded total is kept: the entries nearest to the next
    integer in the needed direction absorb the difference."""
    ints = np.round(values)
    target = np.round(values.sum())
    while abs(np.round(ints.sum()) - target) > _FUZZ:
        diff = target - np.round(ints.sum())
        step = 1 if diff > 0 else -1
        # numpy's default sort (not "stable") on purpose: equal residuals (e.g. two x.5 entries)
        # are then resolved as in cleanlab, so the confident joints agree exactly
        order = np.argsort(values - ints)
        chosen = (order[::-1] if step > 0 else order)[: min(int(abs(diff)), len(values))]
        ints[chosen] += step
    return ints.astype(np.int64)


def _prune_counts(cj: np.ndarray, *, min_per_class: int, frac_noise: float) -> np.ndarray:
    """How many examples to remove per (true j, given i) cell: ``P[j, i]`` from ``C[i, j]``.

    Raises each diagonal to at least ``min_per_class`` (taking the excess uniformly from that
    column's non-zero off-diagonals), scales off-diagonals by ``frac_noise`` and truncates to ints.
    """
    pm = cj.T.astype(np.float64)
    diag = pm.diagonal().copy()
    new_diag = np.maximum(diag, min_per_class)
    n_off = np.maximum(np.count_nonzero(pm, axis=0) - 1.0, 1.0)
    pm = np.clip(pm - (new_diag - diag) / n_off, 0, None)
    np.fill_diagonal(pm, new_diag)
    scaled = pm * frac_noise
    lost = pm - scaled
    np.fill_diagonal(lost, 0.0)
    np.fill_diagonal(scaled, pm.diagonal() + lost.sum(axis=0))  # column totals are kept
    return scaled.astype(np.int64)  # truncation, as in the reference implementation


def _prune_by_noise_rate(y, p, prune, *, min_per_class):
    """Flag, in each (given i, true j != i) cell, the ``prune[j, i]`` examples labelled i with the
    largest margin ``p_j - p_i``; returns the mask."""
    n, k = p.shape
    mask = np.zeros(n, dtype=bool)
    for i in range(k):
        idx = np.flatnonzero(y == i)
        if len(idx) <= max(min_per_class, 1):  # too few examples to prune (cleanlab warns here)
            continue
        for j in range(k):
            take = int(prune[j, i])
            if j == i or take <= 0:
                continue
            order = np.argsort(-(p[idx, j] - p[idx, i]))[:take]  # default sort: ties as in cleanlab
            mask[idx[order]] = True
    return mask


def _confident_learning(labels, pred_probs, *, min_examples_per_class: int = 1,
                        frac_noise: float = 1.0) -> LabelIssues:
    """Confident learning, prune by noise rate (Northcutt et al. 2021, Sec. 3.2, "C_confusion/PBNR").

    1. thresholds ``t_j = mean p_j`` over examples labelled j; 2. calibrated confident joint
    ``C[i, j]``; 3. for every off-diagonal cell remove the ``C[i, j]`` examples labelled i with the
    largest margin ``p_j - p_i``; 4. keep any example whose given label is still the argmax.
    label_quality = self-confidence ``p[label]``; proposed_label = the model's top class (for a flagged
    example never its given label, by step 4): what a reviewer sees first on the probabilities chart.
    """
    y, p = _check_inputs(labels, pred_probs)
    min_n = int(min_examples_per_class)
    if min_n < 0:
        raise UserError(f"min_examples_per_class={min_examples_per_class} must be >= 0")
    frac = _check_fraction("frac_noise", frac_noise)
    cj = _confident_joint(y, p)
    prune = _prune_counts(cj, min_per_class=min_n, frac_noise=frac)
    mask = _prune_by_noise_rate(y, p, prune, min_per_class=min_n)
    bumped = p.copy()
    bumped[np.arange(len(y)), y] += _FUZZ
    mask &= bumped.argmax(axis=1) != y  # the model still agrees with the given label: not an issue
    # The proposal is the top class, not the off-diagonal cell an example was pruned for: the cell can be
    # a runner-up (issue 33: "dog (41%)" proposed while the chart showed truck at 59%).
    return _result(p, y, np.clip(p[np.arange(len(y)), y], 0, 1), mask, "confident_learning",
                   {"min_examples_per_class": min_n, "frac_noise": frac})


@dataclass(frozen=True, eq=False)
class NoiseEstimate:
    """Confident learning's estimate of the label noise, from given labels and pred_probs alone."""

    noise_matrix: np.ndarray   # (K, K) T[true, given] = P(given = j | true = i), rows sum to 1
    joint: np.ndarray          # (K, K) calibrated confident joint, indexed [given, true] (cleanlab's)
    num_issues: int            # estimated number of wrong labels (cleanlab's "off_diagonal" count)
    noise_rate: float          # num_issues / N

    @property
    def num_examples(self) -> int:
        return int(self.joint.sum())


def estimate_noise(labels, pred_probs) -> NoiseEstimate:
    """Estimate the noise matrix and the number of wrong labels without any true labels.

    ``num_issues`` counts the examples whose confidently-counted class differs from the given label
    and whose argmax also differs (cleanlab's ``num_label_issues(estimation_method="off_diagonal")``).
    ``noise_matrix`` row-normalizes the transposed calibrated confident joint:
    ``T[i, j] = C[j, i] / sum_j' C[j', i]`` (Northcutt et al. 2021, eq. 3; cleanlab's
    ``estimate_noise_matrices`` returns the transpose). labels (N,), pred_probs (N, K).
    """
    y, p = _check_inputs(labels, pred_probs)
    cj = _confident_joint(y, p, calibrate=True)
    guess = _confident_guess(y, p)
    off = (guess >= 0) & (guess != y) & (p.argmax(axis=1) != y)
    true_given = cj.T.astype(np.float64)
    rows = true_given.sum(axis=1, keepdims=True)
    k = p.shape[1]
    matrix = np.where(rows > 0, true_given / np.clip(rows, 1e-12, None), np.eye(k))
    n_issues = int(off.sum())
    return NoiseEstimate(noise_matrix=matrix, joint=cj, num_issues=n_issues, noise_rate=n_issues / len(y))


# ----------------------------------------------------------------------------- score-based detectors

def _result(p, y, quality, mask, name, params, *, proposed=None) -> LabelIssues:
    n = len(y)
    if proposed is None:
        proposed = p.argmax(axis=1) if p is not None else y.copy()
    prob = p[np.arange(n), proposed] if p is not None else np.full(n, np.nan)
    return LabelIssues(label_quality=np.asarray(quality, dtype=np.float64),
                       is_label_issue=np.asarray(mask, dtype=bool),
                       proposed_label=np.asarray(proposed, dtype=np.int64),
                       proposed_prob=np.asarray(prob, dtype=np.float64), detector=name, params=params)


def _flag_lowest(quality: np.ndarray, threshold, num_issues) -> tuple[np.ndarray, dict]:
    """``quality < threshold``, or exactly the ``num_issues`` lowest (ties: lower index first)."""
    if num_issues is not None:
        n = int(num_issues)
        if not (0 <= n <= len(quality)):
            raise UserError(f"num_issues={num_issues} must be between 0 and N={len(quality)}")
        mask = np.zeros(len(quality), dtype=bool)
        mask[np.argsort(quality, kind="stable")[:n]] = True
        return mask, {"num_issues": n}
    t = _check_fraction("threshold", threshold)
    return quality < t, {"threshold": t}


def _self_confidence(labels, pred_probs, *, threshold: float = 0.5, num_issues=None) -> LabelIssues:
    """Self-confidence ``q = p[label]``; flag ``q < threshold`` (default 0.5) or the num_issues lowest.

    Northcutt et al. 2021 (cleanlab's default ranking score); shapes (N,), (N, K) -> (N,).
    """
    y, p = _check_inputs(labels, pred_probs)
    q = np.clip(p[np.arange(len(y)), y], 0.0, 1.0)
    mask, params = _flag_lowest(q, threshold, num_issues)
    return _result(p, y, q, mask, "self_confidence", params)


def _normalized_margin(labels, pred_probs, *, threshold: float = 0.5, num_issues=None) -> LabelIssues:
    """Normalized margin ``q = (p[label] - max_{k != label} p[k] + 1) / 2`` in [0, 1].

    Default threshold 0.5 flags exactly the examples where another class beats the given one
    (Wei et al. 2018 / Northcutt et al. 2021 "normalized margin"); or flag the num_issues lowest.
    """
    y, p = _check_inputs(labels, pred_probs)
    rows = np.arange(len(y))
    others = p.copy()
    others[rows, y] = -np.inf
    q = np.clip((p[rows, y] - others.max(axis=1) + 1.0) / 2.0, 0.0, 1.0)
    mask, params = _flag_lowest(q, threshold, num_issues)
    return _result(p, y, q, mask, "normalized_margin", params)


def _blog_threshold(labels, pred_probs, *, confidence: float = 0.9) -> LabelIssues:
    """The blog post's rule: flag when ``max_k p[k] > confidence`` (0.9) and ``argmax != label``.

    Ranked by self-confidence ``p[label]`` (only the flag rule differs); proposes the argmax.
    """
    y, p = _check_inputs(labels, pred_probs)
    c = _check_fraction("confidence", confidence)
    mask = (p.max(axis=1) > c) & (p.argmax(axis=1) != y)
    q = np.clip(p[np.arange(len(y)), y], 0.0, 1.0)
    return _result(p, y, q, mask, "blog_threshold", {"confidence": c})


# ----------------------------------------------------------------------------- area under the margin

def aum_margins(logits_or_probs_per_epoch, labels, *, kind: str = "auto") -> np.ndarray:
    """Per-epoch margin ``m[e, n] = z[e, n, y_n] - max_{k != y_n} z[e, n, k]`` (Pleiss et al. 2020).

    Input (E, N, K) or (N, K) for one epoch -> (E, N). ``kind="probs"`` (or "auto" when every row is
    a probability vector) uses ``z = log p``, which equals the logit margin (softmax only shifts a row).
    """
    z = np.array(logits_or_probs_per_epoch, dtype=np.float64)  # a copy: modified below
    if z.ndim == 2:
        z = z[None]
    if z.ndim != 3:
        raise DataError(f"expected (epochs, N, K) logits or probabilities, got shape {z.shape}")
    if kind not in ("auto", "logits", "probs"):
        raise UserError(f"kind={kind!r} is not valid; choose one of: auto, logits, probs")
    y = check_labels(labels, z.shape[2])
    if z.shape[1] != len(y):
        raise DataError(f"{z.shape[1]} examples per epoch but {len(y)} labels; they must match")
    if not np.isfinite(z).all():
        raise DataError("logits / probabilities contain NaN or inf; check the recording")
    is_probs = (z.min() >= 0 and np.abs(z.sum(axis=2) - 1).max() <= PROB_SUM_TOLERANCE)
    if kind == "probs" or (kind == "auto" and is_probs):
        z = np.log(np.clip(z, 1e-12, None))
    return score_margins(z, y)


def aum_threshold(threshold_margins, *, percentile: float = 99.0) -> float:
    """Pleiss et al.'s threshold: the ``percentile``-th (99th) percentile of the threshold samples' AUM.

    threshold_margins (E, M): per-epoch margins of M threshold samples against the fake class they
    were assigned to (``N / (K + 1)`` training images relabelled to an extra class K, a class no image
    truly belongs to, so their AUM shows what a surely-wrong label looks like). AUM = mean over epochs.
    """
    pct = _check_fraction("percentile", percentile, high=100.0)
    return float(np.percentile(_mean_margin(threshold_margins, None, "threshold_margins"), pct))


def _aum_scores(labels, pred_probs, margins):
    """(y, p, AUM (N,) with NaN for unscored examples) after checking the inputs."""
    y = check_labels(labels)
    p = None if pred_probs is None else _check_inputs(y, pred_probs)[1]
    if margins is None:
        raise UserError("the aum detectors need margins=(epochs, N) recorded during training "
                        "(see issues.aum_margins)")
    return y, p, _mean_margin(margins, len(y), "margins", unscored_ok=True)


def _aum_result(y, p, aum, threshold, name, params) -> LabelIssues:
    """Flag ``AUM < threshold``; label_quality = sigmoid(AUM) (0.5 at AUM = 0); NaN AUM (examples the
    network never trained on, or threshold samples) -> quality NaN, never flagged."""
    quality = 0.5 * (1.0 + np.tanh(aum / 2.0))  # = sigmoid(aum), without overflow
    with np.errstate(invalid="ignore"):
        mask = aum < threshold
    return _result(p, y, quality, mask, name, {**params, "unscored": int(np.isnan(aum).sum())})


def _aum_margin_below_0(labels, pred_probs=None, *, margins=None, threshold: float = 0.0) -> LabelIssues:
    """A cheap AUM rule, NOT the paper's threshold: flag ``AUM_n = mean_e m[e, n] < threshold`` (0: on
    average another class out-scored the given one). Needs no extra training.

    margins: (E, N) from :func:`aum_margins` (or (N,) for one epoch); NaN columns (validation images,
    which the network never trains on) are not scored. pred_probs (optional, e.g. the final epoch's)
    supplies the proposed label; without it the proposal is the given label and proposed_prob is NaN.
    """
    y, p, aum = _aum_scores(labels, pred_probs, margins)
    if not np.isfinite(float(threshold)):
        raise UserError(f"threshold={threshold} must be a finite margin (logit units)")
    return _aum_result(y, p, aum, float(threshold), "aum_margin_below_0", {"threshold": float(threshold)})


def _aum(labels, pred_probs=None, *, margins=None, threshold_margins=None, percentile: float = 99.0) -> LabelIssues:
    """Area under the margin with the paper's threshold (Pleiss et al. 2020, "Identifying Mislabeled
    Data using the Area Under the Margin Ranking"): flag ``AUM_n < aum_threshold(threshold_margins)``,
    the 99th percentile of the AUM of threshold samples assigned to a fake extra class.

    margins (E, N) of the examples (NaN = not scored: validation images and the threshold samples
    themselves); threshold_margins (E, M). The threshold samples come from a run trained with
    ``aum_threshold_samples`` (one extra training run with K + 1 outputs).
    """
    y, p, aum = _aum_scores(labels, pred_probs, margins)
    if threshold_margins is None:
        raise UserError("the aum detector needs the threshold samples' margins, which cost one extra training "
                        "run (train with aum_threshold_samples on); or use aum_margin_below_0, the cheap rule")
    threshold = aum_threshold(threshold_margins, percentile=percentile)
    return _aum_result(y, p, aum, threshold, "aum", {"threshold": threshold, "percentile": float(percentile)})


def _mean_margin(margins, n, name, *, unscored_ok: bool = False) -> np.ndarray:
    """Mean over epochs (axis 0) of (E, N) margins; with ``unscored_ok`` a column that is NaN in every
    epoch (an example never trained on) gives NaN, any other NaN or inf is an error."""
    m = np.asarray(margins, dtype=np.float64)
    if m.ndim == 1:
        m = m[None]
    if m.ndim != 2 or m.shape[0] == 0 or (n is not None and m.shape[1] != n):
        want = f"(epochs, {n})" if n is not None else "(epochs, M)"
        raise DataError(f"{name} must have shape {want}, got {np.shape(margins)}")
    unscored = np.isnan(m).all(axis=0) if unscored_ok else np.zeros(m.shape[1], bool)
    if not np.isfinite(m[:, ~unscored]).all():
        raise DataError(f"{name} contains NaN or inf; check the recording")
    out = np.full(m.shape[1], np.nan)
    out[~unscored] = m[:, ~unscored].mean(axis=0)
    return out


# ----------------------------------------------------------------------------- registry and API

DETECTORS: dict[str, Callable[..., LabelIssues]] = {
    "confident_learning": _confident_learning,
    "self_confidence": _self_confidence,
    "normalized_margin": _normalized_margin,
    "aum": _aum,
    "aum_margin_below_0": _aum_margin_below_0,
    "blog_threshold": _blog_threshold,
}
MARGIN_DETECTORS = ("aum", "aum_margin_below_0")   # read margins recorded during training (in-sample only)



def find_label_issues(labels, pred_probs=None, *, detector: str = "confident_learning",
                      margins=None, **params) -> LabelIssues:
    """Run the detector named ``detector`` (a key of DETECTORS) with its options ``params``.

    labels (N,) int, pred_probs (N, K) rows summing to 1 (needed by all but the MARGIN_DETECTORS),
    margins (E, N) for those (``aum`` also threshold_margins (E, M)). Returns a LabelIssues with arrays of length N.
    """
    if detector not in DETECTORS:
        raise UserError(f"detector={detector!r} is unknown; choose one of: {', '.join(DETECTORS)}")
    fn = DETECTORS[detector]
    options = _options(fn)
    if margins is not None:
        params["margins"] = margins
    unknown = sorted(set(params) - set(options))
    if unknown:
        raise UserError(f"detector {detector!r} has no option {', '.join(unknown)}; "
                        f"its options are: {', '.join(options) or 'none'}")
    if pred_probs is None and detector not in MARGIN_DETECTORS:
        raise UserError(f"detector {detector!r} needs pred_probs (N, K): out-of-sample predicted "
                        "probabilities, e.g. from cross-validation")
    return fn(labels, pred_probs, **params)


def _options(fn) -> list[str]:
    return [n for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY]


def rank(issues: LabelIssues) -> np.ndarray:
    """Indices, most suspicious first: flagged before unflagged, then by label_quality ascending,
    ties broken by index (deterministic). Shape (N,)."""
    q = np.asarray(issues.label_quality)
    return np.lexsort((np.arange(len(q)), q, ~np.asarray(issues.is_label_issue, dtype=bool)))


def _check_truth(is_noisy, n) -> np.ndarray:
    if is_noisy is None:
        raise DataError("is_noisy is unknown (no true labels for this label set); detectors can "
                        "only be scored on injected noise or a benchmark with clean labels")
    t = np.asarray(is_noisy)
    if t.shape != (n,):
        raise DataError(f"is_noisy must have shape ({n},) like the labels, got {t.shape}")
    if t.dtype != bool and not np.isin(t, (0, 1)).all():
        raise DataError("is_noisy must be booleans (True = the given label is wrong)")
    return t.astype(bool)


def evaluate(issues: LabelIssues, is_noisy) -> dict:
    """Score the flags and the ranking against the known truth (injected noise only).

    precision = TP / n_flagged, recall = TP / n_noisy, f1 = 2PR / (P + R) (0.0 when undefined);
    average_precision of ranking by ascending label_quality (sklearn's definition,
    ``sum_n (R_n - R_{n-1}) P_n``); ``noise_rate`` = n_noisy / N is what a random ranking scores.
    """
    truth = _check_truth(is_noisy, len(issues.is_label_issue))
    flagged = np.asarray(issues.is_label_issue, dtype=bool)
    tp, n_flag, n_noisy = int((flagged & truth).sum()), int(flagged.sum()), int(truth.sum())
    precision = tp / n_flag if n_flag else 0.0
    recall = tp / n_noisy if n_noisy else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n_flagged": n_flag,
            "n_noisy": n_noisy, "true_positives": tp,
            "average_precision": _average_precision(issues.label_quality, truth),
            "noise_rate": n_noisy / len(truth)}


def _pr_points(label_quality, truth):
    """Precision and recall when flagging ``quality <= t`` for each distinct t (ascending)."""
    q = np.asarray(label_quality, dtype=np.float64)
    order = np.argsort(q, kind="stable")
    qs, hits = q[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(qs) != 0), len(qs) - 1]  # end of each run of equal q
    tp = np.cumsum(hits)[last]
    flagged = last + 1
    n_noisy = max(int(truth.sum()), 1)
    return qs[last], tp / flagged, tp / n_noisy


def _average_precision(label_quality, truth) -> float:
    if not truth.any():
        return 0.0
    _, precision, recall = _pr_points(label_quality, truth)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_recall_curve(label_quality, is_noisy, *, max_points: Optional[int] = None) -> pd.DataFrame:
    """Columns threshold, precision, recall: flagging every example with ``label_quality <= threshold``.

    One row per distinct quality value (ascending); ``max_points`` thins it evenly for charts
    (first and last rows kept).
    """
    q = np.asarray(label_quality, dtype=np.float64)
    if q.ndim != 1 or q.size == 0:
        raise DataError(f"label_quality must be a non-empty 1-D array, got shape {q.shape}")
    t, precision, recall = _pr_points(q, _check_truth(is_noisy, len(q)))
    frame = pd.DataFrame({"threshold": t, "precision": precision, "recall": recall})
    if max_points is not None and len(frame) > int(max_points) >= 2:
        keep = np.unique(np.linspace(0, len(frame) - 1, int(max_points)).round().astype(int))
        frame = frame.iloc[keep].reset_index(drop=True)
    return frame


def to_frame(issues: LabelIssues, *, ids: Sequence, labels, class_names: Sequence[str]) -> pd.DataFrame:
    """One row per example, most suspicious first (see :func:`rank`).

    Columns: id, index (position in the dataset), given_label, proposed_label (class names),
    proposed_prob, label_quality, is_label_issue.
    """
    n = len(issues.label_quality)
    names = np.asarray(list(class_names), dtype=object)
    y = check_labels(labels, len(names))
    if len(ids) != n or len(y) != n:
        raise DataError(f"ids ({len(ids)}), labels ({len(y)}) and the issues ({n}) must have one "
                        "entry per example")
    proposed = np.asarray(issues.proposed_label)
    if proposed.min() < 0 or proposed.max() >= len(names):
        raise DataError(f"proposed labels go up to {proposed.max()} but only {len(names)} class names")
    order = rank(issues)
    return pd.DataFrame({
        "id": np.asarray(ids, dtype=object)[order].astype(str),
        "index": order,
        "given_label": names[y[order]],
        "proposed_label": names[proposed[order]],
        "proposed_prob": np.asarray(issues.proposed_prob)[order],
        "label_quality": np.asarray(issues.label_quality)[order],
        "is_label_issue": np.asarray(issues.is_label_issue, dtype=bool)[order],
    })
