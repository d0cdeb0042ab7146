"""Label noise: make the given labels from the true labels (real human labels are read by
noisycore.human_labels, label sets on disk by noisycore.labelsets).

Every model is a function ``(dataset, config) -> NoisyLabels`` in ``NOISE_MODELS``; the array-level
functions (``symmetric_noise``, ``pair_noise``, ...) need no Dataset. Vocabulary: ``N`` examples,
``K`` classes, ``T[i, j] = P(given = j | true = i)`` (rows sum to 1; cleanlab uses the transpose).
A dataset is anything with ``class_names``, ``y_train``, ``ids_train`` (and ``x_train``,
``truth_known``, ``label_sets``, ``name``, ``source`` where a model needs them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd

from noisycore.config import ConfigError, NoiseConfig
from noisycore.datasets.base import ASYMMETRIC_PAIRS, CIFAR10_CLASSES
from noisycore.datasets.builtin import BUILTIN_CLASSES
from noisycore.errors import UserError
from noisycore.human_labels import human_labels
from noisycore.util import check_labels, pct


MATRIX_TOLERANCE = 1e-6        # a row of a noise matrix may miss 1 by this much
CHUNK_ROWS = 2048              # instance noise: images converted to float per chunk of this many


def _labels(labels, num_classes: int, what: str = "true_labels") -> np.ndarray:
    return check_labels(labels, num_classes, what, error=UserError)


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """Given labels with what is known about how they were made (all arrays are (N,), matrices (K, K))."""

    labels: np.ndarray                         # int64 (N,): the given labels
    true_labels: Optional[np.ndarray]          # int64 (N,), None when the truth is unknown
    is_noisy: Optional[np.ndarray]             # bool (N,): labels != true_labels
    requested_matrix: Optional[np.ndarray]     # (K, K) the model's T; None for instance / human noise
    realized_matrix: Optional[np.ndarray]      # (K, K) row-normalized counts of (true, given)
    realized_rate: Optional[float]             # share of labels that differ from the truth
    config: NoiseConfig

    @property
    def num_noisy(self) -> Optional[int]:
        """How many labels differ from the truth (None when the truth is unknown)."""
        return None if self.is_noisy is None else int(self.is_noisy.sum())


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise UserError(f"num_classes={num_classes!r} must be a positive integer (the number of classes K)")
    return int(num_classes)


def _check_rate(rate, num_classes: int) -> float:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"noise rate={rate!r} is not a number; use e.g. 0.4 for 40%") from None
    if not (0.0 <= r < 1.0):
        raise ConfigError(f"noise rate={rate} is outside [0, 1); use e.g. 0.4 for 40%")
    if r > 0 and num_classes < 2:
        raise ConfigError(f"noise rate={rate} needs at least 2 classes to flip between, got K={num_classes}")
    return r


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative integer")
    return np.random.default_rng(int(seed))


def _exact_count(rate: float, n: int) -> int:
    """How many of n examples an exact-count model flips: round(rate * n)."""
    return int(round(rate * n))


def realized_matrix(true_labels, labels, num_classes: int) -> np.ndarray:
    """Row-normalized confusion of (true, given): T[i, j] = #(true=i, given=j) / #(true=i), shape (K, K).

    A class absent from ``true_labels`` gets an identity row, so every row sums to 1.
    """
    k = _check_num_classes(num_classes)
    t = _labels(true_labels, k)
    g = _labels(labels, k, "labels")
    if t.shape != g.shape:
        raise UserError(f"labels has {g.size} entries but true_labels has {t.size}; they must match")
    counts = np.bincount(t * k + g, minlength=k * k).reshape(k, k).astype(np.float64)
    totals = counts.sum(axis=1)
    counts[totals == 0] = np.eye(k)[totals == 0]
    return counts / counts.sum(axis=1, keepdims=True)


def overall_rate(matrix, class_counts=None) -> float:
    """Expected share of wrong labels: sum_i w_i (1 - T[i, i]), w = class shares (uniform by default)."""
    t = np.asarray(matrix, dtype=np.float64)
    w = np.ones(t.shape[0]) if class_counts is None else np.asarray(class_counts, dtype=np.float64)
    if w.shape != (t.shape[0],) or w.sum() <= 0:
        raise UserError(f"class_counts must be {t.shape[0]} non-negative counts with a positive total")
    return float(np.dot(w / w.sum(), 1.0 - np.diag(t)))


def _mapping_matrix(rate: float, num_classes: int, mapping: dict) -> np.ndarray:
    """T for 'class i flips to mapping[i] with probability rate' (other classes stay): (K, K)."""
    t = np.eye(num_classes)
    for src, dst in mapping.items():
        t[src, src] -= rate
        t[src, dst] += rate
    return t


def symmetric_matrix(rate: float, num_classes: int) -> np.ndarray:
    """T = (1 - rate) on the diagonal, rate / (K - 1) elsewhere: (K, K)."""
    k = _check_num_classes(num_classes)
    r = _check_rate(rate, k)
    if k == 1:
        return np.ones((1, 1))
    return np.full((k, k), r / (k - 1)) + np.eye(k) * (1.0 - r - r / (k - 1))


def uniform_matrix(rate: float, num_classes: int) -> np.ndarray:
    """T = (1 - rate) I + rate / K everywhere (the redraw may hit the true class): (K, K)."""
    k = _check_num_classes(num_classes)
    r = _check_rate(rate, k)
    return (1.0 - r) * np.eye(k) + r / k


def validate_matrix(matrix, num_classes: int, *, class_names=None) -> np.ndarray:
    """Check a user noise matrix T (K, K): finite, non-negative, rows sum to 1 (within 1e-6); return float64."""
    k = _check_num_classes(num_classes)
    try:
        t = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"the noise matrix is not a {k} x {k} table of numbers; "
                          "give one row per true class, one column per given class") from None
    if t.shape != (k, k):
        raise ConfigError(f"the noise matrix has shape {t.shape}; it must be K x K = {k} x {k} "
                          f"(K={k} classes: one row per true class, one column per given class)")

    def row_name(i):
        return f"row {i}" + (f" ({class_names[i]})" if class_names is not None else "")

    for i, row in enumerate(t):
        bad = np.flatnonzero(~np.isfinite(row))
        if bad.size:
            raise ConfigError(f"noise matrix {row_name(i)}, column {bad[0]} is {row[bad[0]]}; "
                              "every entry must be a finite probability")
        bad = np.flatnonzero(row < 0)
        if bad.size:
            raise ConfigError(f"noise matrix {row_name(i)}, column {bad[0]} is {row[bad[0]]:g}; "
                              "probabilities must be >= 0")
        if abs(row.sum() - 1.0) > MATRIX_TOLERANCE:
            raise ConfigError(f"noise matrix {row_name(i)} sums to {row.sum():.6g}, not 1; each row is "
                              "P(given label | true class) and must sum to 1 (within 1e-6)")
    return t


def _pick(rng: np.random.Generator, n: int, rate: float, per_example: bool) -> np.ndarray:
    """Mask of examples to corrupt: exactly round(rate*n) chosen uniformly, or each with probability rate."""
    if per_example:
        return rng.random(n) < rate
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=_exact_count(rate, n), replace=False)] = True
    return mask


def _flip_setup(true_labels, rate, num_classes, seed, per_example) -> tuple:
    """Validated (K, labels, rng, mask of the examples to flip) for the symmetric / uniform models."""
    k = _check_num_classes(num_classes)
    t = _labels(true_labels, k)
    r = _check_rate(rate, k)
    rng = _rng(seed)
    return k, t, rng, _pick(rng, t.size, r, per_example)


def symmetric_noise(true_labels, *, rate: float, num_classes: int, seed: int,
                    per_example: bool = False) -> np.ndarray:
    """Flip labels to a uniformly chosen *other* class: T = (1-rate) I + rate/(K-1) off the diagonal.

    Exactly round(rate*N) examples flip (or, with ``per_example``, each with probability ``rate``);
    the new label is (y + U{1..K-1}) mod K, so it never equals y. Shapes: (N,) -> (N,) int64.
    The blog post's add_label_noise, vectorized and seeded.
    """
    k, t, rng, flip = _flip_setup(true_labels, rate, num_classes, seed, per_example)
    labels = t.copy()
    labels[flip] = (t[flip] + rng.integers(1, k, size=int(flip.sum()))) % k if k > 1 else t[flip]
    return labels


def uniform_noise(true_labels, *, rate: float, num_classes: int, seed: int,
                  per_example: bool = False) -> np.ndarray:
    """Redraw round(rate*N) labels uniformly from all K classes (may hit the true one): T = (1-rate) I + rate/K.

    Realized noise rate is about (K-1)/K * rate. Shapes: (N,) -> (N,) int64. DivideMix / ELR convention.
    """
    k, t, rng, flip = _flip_setup(true_labels, rate, num_classes, seed, per_example)
    labels = t.copy()
    labels[flip] = rng.integers(0, k, size=int(flip.sum()))
    return labels


def _flip_per_class(true: np.ndarray, mapping: dict, rate: float, rng: np.random.Generator) -> np.ndarray:
    """For each source class s (ascending), relabel exactly round(rate * n_s) of its examples as mapping[s]."""
    labels = true.copy()
    for src in sorted(mapping):
        rows = np.flatnonzero(true == src)
        n_flip = _exact_count(rate, rows.size)
        if n_flip:
            labels[rng.choice(rows, size=n_flip, replace=False)] = mapping[src]
    return labels


def pair_noise(true_labels, *, rate: float, num_classes: int, seed: int) -> np.ndarray:
    """Pair flipping: exactly round(rate * n_i) examples of class i become (i + 1) mod K.

    T[i, i] = 1 - rate, T[i, i+1 mod K] = rate. Shapes: (N,) -> (N,). Han et al., 2018 (Co-teaching).
    """
    k = _check_num_classes(num_classes)
    t = _labels(true_labels, k)
    r = _check_rate(rate, k)
    return _flip_per_class(t, {i: (i + 1) % k for i in range(k)} if k > 1 else {}, r, _rng(seed))


def _check_pairs(pairs, num_classes: int) -> dict:
    out = {}
    for src, dst in dict(pairs).items():
        for v in (src, dst):
            if not (0 <= int(v) < num_classes):
                raise ConfigError(f"asymmetric pair {src}->{dst} names class {v}, outside 0..{num_classes - 1}")
        out[int(src)] = int(dst)
    return out


def asymmetric_noise(true_labels, *, rate: float, num_classes: int, pairs: dict, seed: int) -> np.ndarray:
    """Class-dependent flips to a similar class: exactly round(rate * n_s) of each source s become pairs[s].

    Classes not in ``pairs`` stay clean, so the overall rate is rate * (share of source classes),
    e.g. 40% -> about 20% on CIFAR-10 (5 of 10 classes). Shapes: (N,) -> (N,). Patrini et al., 2017.
    """
    k = _check_num_classes(num_classes)
    t = _labels(true_labels, k)
    r = _check_rate(rate, k)
    return _flip_per_class(t, _check_pairs(pairs, k), r, _rng(seed))


def _sample_rows(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling of one class per row of probs (n, K) from uniforms u (n,) in [0, 1).

    u is scaled by the row total, so a zero-probability class can never be drawn.
    """
    cdf = np.cumsum(probs, axis=1)
    target = u * cdf[:, -1]
    return np.minimum((target[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1).astype(np.int64)


def matrix_noise(true_labels, *, matrix, num_classes: int, seed: int) -> np.ndarray:
    """Draw each given label from row T[y] of a user matrix: P(given = j | true = i) = T[i, j].

    Shapes: true_labels (N,), matrix (K, K) -> (N,) int64. Rows are validated by ``validate_matrix``.
    """
    k = _check_num_classes(num_classes)
    t = _labels(true_labels, k)
    m = validate_matrix(matrix, k)
    u = _rng(seed).random(t.size)
    labels = t.copy()
    for c in range(k):
        rows = np.flatnonzero(t == c)
        if rows.size:
            labels[rows] = _sample_rows(np.broadcast_to(m[c], (rows.size, k)), u[rows])
    return labels


def _truncated_normal(rng: np.random.Generator, n: int, mean: float, std: float) -> np.ndarray:
    """n draws of N(mean, std^2) truncated to [0, 1] by rejection (what scipy.stats.truncnorm samples)."""
    if std == 0:
        return np.full(n, min(max(mean, 0.0), 1.0))
    out = rng.normal(mean, std, n)
    for _ in range(1000):
        bad = (out < 0) | (out > 1)
        if not bad.any():
            break
        out[bad] = rng.normal(mean, std, int(bad.sum()))
    return np.clip(out, 0.0, 1.0)


def instance_noise(true_labels, images, *, rate: float, num_classes: int, seed: int,
                   std: float = 0.1, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Instance-dependent noise (Xia et al., 2020, "Part-dependent label noise", their generator).

    q_n ~ N(rate, std^2) truncated to [0, 1]; W_y ~ N(0, 1) of shape (D, K) per class y;
    s = x_n W_y with x_n the flattened image (uint8: /255 - 0.5), s[y] = -inf;
    p = q_n softmax(s), p[y] = 1 - q_n; given ~ p. Images (N, ...) -> D = prod(...); labels (N,).
    Images are converted to float32 in chunks of ``chunk_rows`` (never the whole set at once).
    """
    k = _check_num_classes(num_classes)
    t = _labels(true_labels, k)
    r = _check_rate(rate, k)
    if k < 2:
        raise ConfigError("instance noise needs at least 2 classes")
    x_all = np.asarray(images)
    if x_all.shape[0] != t.size or x_all.ndim < 2:
        raise UserError(f"images has shape {x_all.shape}; it must hold one image per label ({t.size})")
    d = int(np.prod(x_all.shape[1:]))
    _rng(seed)  # validates the seed
    children = np.random.SeedSequence(int(seed)).spawn(k + 1)  # one stream for q and u, one per class W
    rng = np.random.default_rng(children[0])
    q = _truncated_normal(rng, t.size, r, float(std))
    u = rng.random(t.size)
    labels = t.copy()
    for c in range(k):
        rows_c = np.flatnonzero(t == c)
        if not rows_c.size:
            continue
        w = np.random.default_rng(children[c + 1]).standard_normal((d, k), dtype=np.float32)
        for start in range(0, rows_c.size, chunk_rows):
            rows = rows_c[start:start + chunk_rows]
            x = x_all[rows].reshape(rows.size, d).astype(np.float32)
            if x_all.dtype == np.uint8:
                x /= 255.0
                x -= 0.5  # centred, as Xia's generator sees normalized images: the flip target depends on the image
            s = (x @ w).astype(np.float64)
            s[:, c] = -np.inf
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p *= (q[rows] / p.sum(axis=1))[:, None]
            p[:, c] = 1.0 - q[rows]
            labels[rows] = _sample_rows(p, u[rows])
    return labels


def asymmetric_pairs(class_names) -> dict:
    """Source -> target class indices for asymmetric noise, chosen by the dataset's class names."""
    names = tuple(class_names)
    if names == CIFAR10_CLASSES:
        return dict(ASYMMETRIC_PAIRS["cifar10"])
    if names == BUILTIN_CLASSES:
        return dict(ASYMMETRIC_PAIRS["builtin"])
    raise ConfigError("asymmetric noise has class pairs only for CIFAR-10 and the built-in dataset; "
                      f"these classes ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''}) have none. "
                      "Use 'pair' (class i -> i+1) or 'matrix' (your own K x K flip table) instead")


def _pair_text(pairs: dict, class_names) -> str:
    def nm(i):
        return class_names[i] if class_names is not None and i < len(class_names) else str(i)
    return ", ".join(f"{nm(s)}->{nm(d)}" for s, d in pairs.items())


def _num_classes(dataset) -> int:
    return len(dataset.class_names)


def _true(dataset) -> np.ndarray:
    return _labels(dataset.y_train, _num_classes(dataset), "dataset.y_train")


def make_noisy_labels(labels, true_labels, requested, config: NoiseConfig, num_classes: int) -> NoisyLabels:
    """Wrap labels with is_noisy, the realized matrix and rate (all None when the truth is unknown)."""
    labels = _labels(labels, num_classes, "labels")
    if true_labels is None:
        return NoisyLabels(labels, None, None, requested, None, None, config)
    is_noisy = labels != true_labels
    return NoisyLabels(labels=labels, true_labels=true_labels, is_noisy=is_noisy,
                       requested_matrix=requested,
                       realized_matrix=realized_matrix(true_labels, labels, num_classes),
                       realized_rate=float(is_noisy.mean()), config=config)


def _apply_none(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    known = bool(getattr(dataset, "truth_known", True))
    return make_noisy_labels(y.copy(), y if known else None, np.eye(k), config, k)


def _apply_symmetric(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = symmetric_noise(y, rate=config.rate, num_classes=k, seed=config.seed, per_example=config.per_example)
    return make_noisy_labels(labels, y, symmetric_matrix(config.rate, k), config, k)


def _apply_uniform(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = uniform_noise(y, rate=config.rate, num_classes=k, seed=config.seed, per_example=config.per_example)
    return make_noisy_labels(labels, y, uniform_matrix(config.rate, k), config, k)


def _apply_pair(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = pair_noise(y, rate=config.rate, num_classes=k, seed=config.seed)
    mapping = {i: (i + 1) % k for i in range(k)} if k > 1 else {}
    return make_noisy_labels(labels, y, _mapping_matrix(config.rate, k, mapping), config, k)


def _apply_asymmetric(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    pairs = _check_pairs(asymmetric_pairs(dataset.class_names), k)
    labels = asymmetric_noise(y, rate=config.rate, num_classes=k, pairs=pairs, seed=config.seed)
    return make_noisy_labels(labels, y, _mapping_matrix(config.rate, k, pairs), config, k)


def _apply_matrix(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    m = validate_matrix(config.matrix, k, class_names=tuple(dataset.class_names))
    labels = matrix_noise(y, matrix=m, num_classes=k, seed=config.seed)
    return make_noisy_labels(labels, y, m, config, k)


def _apply_instance(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = instance_noise(y, dataset.x_train, rate=config.rate, num_classes=k, seed=config.seed,
                            std=config.instance_std)
    return make_noisy_labels(labels, y, None, config, k)


def _apply_human(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = human_labels(dataset, label_set=config.label_set, source=config.human_labels)
    known = bool(getattr(dataset, "truth_known", True))
    return make_noisy_labels(labels, y if known else None, None, config, k)


NOISE_MODELS: dict[str, Callable] = {
    "none": _apply_none, "symmetric": _apply_symmetric, "uniform": _apply_uniform, "pair": _apply_pair,
    "asymmetric": _apply_asymmetric, "matrix": _apply_matrix, "instance": _apply_instance,
    "human": _apply_human,
}


def apply_noise(dataset, config: NoiseConfig) -> NoisyLabels:
    """Make the given labels for ``dataset``'s training set with the model named in ``config``."""
    if not isinstance(config, NoiseConfig):
        raise ConfigError(f"apply_noise needs a NoiseConfig, got {type(config).__name__}")
    model = NOISE_MODELS.get(config.model)
    if model is None:
        raise ConfigError(f"noise model {config.model!r} is unknown; choose one of: {', '.join(NOISE_MODELS)}")
    return model(dataset, config)


def _share(x: float) -> str:
    """0.4 -> '40%', 0.355 -> '35.5%' (no trailing .0)."""
    return pct(x, trim=True)


def describe(config: NoiseConfig, num_classes: int, *, class_names=None) -> str:
    """One line for the UI / CLI saying what the model does and what share of labels ends up wrong."""
    k, r, m = _check_num_classes(num_classes), float(config.rate), config.model
    if m == "none":
        return "no injected noise: the labels are used as given"
    if m == "symmetric":
        how = "each label flips with probability" if config.per_example else "exactly"
        return f"symmetric {_share(r)}: {how} {_share(r)} of labels flip to a different class, chosen uniformly"
    if m == "uniform":
        return (f"uniform {_share(r)}: about {_share(r * (k - 1) / k)} of labels end up wrong, "
                "since a redraw can land on the true class")
    if m == "pair":
        return f"pair {_share(r)}: {_share(r)} of each class is relabelled as the next class (i -> i+1)"
    if m == "asymmetric":
        names = tuple(class_names) if class_names is not None else (CIFAR10_CLASSES if k == 10 else None)
        try:
            pairs = asymmetric_pairs(names or ())
        except ConfigError:
            return f"asymmetric {_share(r)}: not available for these classes (use pair or matrix)"
        share = overall_rate(_mapping_matrix(r, k, _check_pairs(pairs, k)))
        return (f"asymmetric {_share(r)}: {_share(r)} of {len(pairs)} classes flip to a similar class "
                f"({_pair_text(pairs, names)}); about {_share(share)} of all labels end up wrong")
    if m == "matrix":
        try:
            share = overall_rate(validate_matrix(config.matrix, k))
        except ConfigError as e:
            return f"matrix: invalid ({e})"
        return f"matrix: labels drawn from your {k} x {k} table; about {_share(share)} wrong if classes are balanced"
    if m == "instance":
        return (f"instance {_share(r)}: each image flips with its own probability (mean {_share(r)}, "
                f"std {_share(config.instance_std)}) towards classes its pixels point to (Xia et al., 2020)")
    src = config.human_labels or "the dataset's own CSV"
    return f"human labels: label set {config.label_set!r} from {src}"


def flipped_examples(noisy: NoisyLabels, *, true_class: Optional[int] = None,
                     given_class: Optional[int] = None, limit: Optional[int] = None) -> np.ndarray:
    """Indices (ascending) of examples whose given label differs from the truth, optionally filtered."""
    if noisy.is_noisy is None:
        raise UserError("the true labels are unknown for this label set, so flipped examples cannot be listed")
    k = noisy.realized_matrix.shape[0]
    for name, value in (("true_class", true_class), ("given_class", given_class)):
        if value is not None and not (isinstance(value, (int, np.integer)) and 0 <= value < k):
            raise UserError(f"{name}={value!r} is not a class index; valid: 0..{k - 1} or None for all")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise UserError(f"limit={limit!r} must be a non-negative integer or None")
    mask = noisy.is_noisy.copy()
    if true_class is not None:
        mask &= noisy.true_labels == true_class
    if given_class is not None:
        mask &= noisy.labels == given_class
    idx = np.flatnonzero(mask)
    return idx if limit is None else idx[:limit]


def class_counts(noisy: NoisyLabels, class_names) -> pd.DataFrame:
    """One row per class: class, true (count; <NA> when the truth is unknown), given (count)."""
    names = list(class_names)
    k = len(names)
    labels = _labels(noisy.labels, k, "labels")
    given = np.bincount(labels, minlength=k)
    if noisy.true_labels is None:
        true = pd.array([pd.NA] * k, dtype="Int64")
    else:
        true = pd.array(np.bincount(_labels(noisy.true_labels, k), minlength=k), dtype="Int64")
    return pd.DataFrame({"class": names, "true": true, "given": pd.array(given, dtype="Int64")})
