"""Label noise: make the given labels from the true labels, and read real human labels.

Every model is a function ``(dataset, config) -> NoisyLabels`` in ``NOISE_MODELS``; the array-level
functions (``symmetric_noise``, ``pair_noise``, ...) need no Dataset. Vocabulary: ``N`` examples,
``K`` classes, ``T[i, j] = P(given = j | true = i)`` (rows sum to 1; cleanlab uses the transpose).
A dataset is anything with ``class_names``, ``y_train``, ``ids_train`` (and ``x_train``,
``truth_known``, ``label_sets``, ``name``, ``source`` where a model needs them).
"""
from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from noisycore.config import ConfigError, NoiseConfig
from noisycore.errors import DataError, UserError

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")
# Fallback copy of datasets.ASYMMETRIC_PAIRS["cifar10"] (Patrini et al., 2017): truck->automobile,
# bird->airplane, deer->horse, cat<->dog. Used only if noisycore.datasets cannot be imported.
_CIFAR10_PAIRS = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
# CIFAR-10N label set names -> keys in CIFAR-10_human.pt (Wei et al., ICLR 2022).
PT_LABEL_SETS = {"aggre": "aggre_label", "worst": "worse_label", "random1": "random_label1",
                 "random2": "random_label2", "random3": "random_label3", "clean": "clean_label"}
MAX_PT_BYTES = 50 * 2**20      # a CIFAR-10N file is about 2.4 MB; refuse anything far larger
MATRIX_TOLERANCE = 1e-6        # a row of a noise matrix may miss 1 by this much
CHUNK_ROWS = 2048              # instance noise: images converted to float per chunk of this many


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


# ----------------------------------------------------------------------------- validation helpers

def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise UserError(f"num_classes={num_classes!r} must be a positive integer (the number of classes K)")
    return int(num_classes)


def _check_labels(labels, num_classes: int, what: str = "true_labels") -> np.ndarray:
    """Labels as int64 (N,); an (N, 1) column (keras.datasets style) is flattened."""
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.size == 0:
        raise UserError(f"{what} must be a non-empty 1-D array of class indices, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{what} must hold integer class indices 0..{num_classes - 1}, got dtype {arr.dtype}")
    bad = np.flatnonzero((arr < 0) | (arr >= num_classes))
    if bad.size:
        raise UserError(f"{what} contains class index {int(arr[bad[0]])} (position {int(bad[0])}, "
                        f"{bad.size} bad in all); valid indices are 0..{num_classes - 1} for K={num_classes}")
    return arr.astype(np.int64)


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


# ----------------------------------------------------------------------------- matrices and rates

def realized_matrix(true_labels, labels, num_classes: int) -> np.ndarray:
    """Row-normalized confusion of (true, given): T[i, j] = #(true=i, given=j) / #(true=i), shape (K, K).

    A class absent from ``true_labels`` gets an identity row, so every row sums to 1.
    """
    k = _check_num_classes(num_classes)
    t = _check_labels(true_labels, k)
    g = _check_labels(labels, k, "labels")
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


# ----------------------------------------------------------------------------- array-level models

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
    t = _check_labels(true_labels, k)
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
    t = _check_labels(true_labels, k)
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
    t = _check_labels(true_labels, k)
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
    t = _check_labels(true_labels, k)
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
    t = _check_labels(true_labels, k)
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


# ----------------------------------------------------------------------------- asymmetric pairs

def _datasets_module():
    """noisycore.datasets, or None while it does not exist (imported lazily: it is heavier)."""
    try:
        from noisycore import datasets
    except ModuleNotFoundError as e:
        if e.name != "noisycore.datasets":
            raise
        return None
    return datasets


def _builtin_class_names(ds) -> Optional[tuple]:
    for attr in ("BUILTIN_CLASS_NAMES", "BUILTIN_CLASSES"):
        if ds is not None and getattr(ds, attr, None) is not None:
            return tuple(getattr(ds, attr))
    return None


def asymmetric_pairs(class_names, *, dataset_name: Optional[str] = None) -> dict:
    """Source -> target class indices for asymmetric noise, chosen by the dataset's class names."""
    ds = _datasets_module()
    table = dict(getattr(ds, "ASYMMETRIC_PAIRS", None) or {})
    table.setdefault("cifar10", _CIFAR10_PAIRS)
    names = tuple(class_names)
    if names == CIFAR10_CLASS_NAMES:
        return dict(table["cifar10"])
    builtin = _builtin_class_names(ds)
    if "builtin" in table and (names == builtin or (builtin is None and dataset_name == "builtin")):
        return dict(table["builtin"])
    raise ConfigError("asymmetric noise has class pairs only for CIFAR-10 and the built-in dataset; "
                      f"these classes ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''}) have none. "
                      "Use 'pair' (class i -> i+1) or 'matrix' (your own K x K flip table) instead")


def _pair_text(pairs: dict, class_names) -> str:
    def nm(i):
        return class_names[i] if class_names is not None and i < len(class_names) else str(i)
    return ", ".join(f"{nm(s)}->{nm(d)}" for s, d in pairs.items())


# ----------------------------------------------------------------------------- CIFAR-10N .pt reader

def _multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: only the latin-1 codec is allowed."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise DataError(f"refusing to load: the pickle calls _codecs.encode with codec {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict:
    ma = _multiarray()
    import collections
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("collections", "OrderedDict"): collections.OrderedDict,
               ("_codecs", "encode"): _latin1_encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = ma._reconstruct
        allowed[(mod, "scalar")] = ma.scalar
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays, dtypes, scalars and dicts; everything else is refused."""

    def __init__(self, file, *, source: str):
        super().__init__(file)
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"refusing to load {self._source}: the file contains {module}.{name}, "
                            "which a CIFAR-10N label file never needs") from None

    def persistent_load(self, pid):
        raise DataError(f"refusing to load {self._source}: it holds torch tensor storage, but a CIFAR-10N "
                        "label file is a dict of numpy arrays")


def _pickle_bytes(path: Path) -> bytes:
    """The pickle inside a torch.save zip (``<archive>/data.pkl``), or the file itself if it is a raw pickle."""
    if path.stat().st_size > MAX_PT_BYTES:
        raise DataError(f"{path} is {path.stat().st_size / 2**20:.0f} MB; a CIFAR-10N label file is about "
                        f"2.4 MB (limit {MAX_PT_BYTES // 2**20} MB)")
    if not zipfile.is_zipfile(path):
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if i.filename.endswith("data.pkl")
                       and i.filename.count("/") <= 1]
            if len(members) != 1:
                raise DataError(f"{path} is a zip but not a torch.save file: expected one <archive>/data.pkl, "
                                f"found {len(members)}")
            if members[0].file_size > MAX_PT_BYTES:
                raise DataError(f"{path}: data.pkl unpacks to {members[0].file_size} bytes, over the "
                                f"{MAX_PT_BYTES // 2**20} MB limit")
            return zf.read(members[0])
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is a damaged zip archive ({e})") from None


def read_cifar10n_pt(path) -> dict:
    """Read CIFAR-10_human.pt (Wei et al., ICLR 2022) without torch: {key: int64 array (N,)}.

    The file is a torch.save zip whose data.pkl is a pickled dict of numpy int arrays (a raw pickle
    is accepted too). A restricted unpickler builds only numpy arrays and dicts, so a planted
    pickle cannot run code: anything else raises DataError.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"CIFAR-10N label file {path} does not exist; give the path to CIFAR-10_human.pt")
    data = _pickle_bytes(p)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), source=str(p)).load()
    except DataError:
        raise
    except Exception as e:  # truncated / not a pickle: any unpickling failure means an unusable file
        raise DataError(f"{path} is not a readable CIFAR-10N label file ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{path} holds a {type(obj).__name__}, not a dict of label arrays")
    out = {}
    for key, value in obj.items():
        arr = np.asarray(value)
        if not isinstance(key, str) or arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{path}: entry {key!r} is not a 1-D integer label array (shape {arr.shape}, "
                            f"dtype {arr.dtype})")
        out[key] = arr.astype(np.int64)
    return out


# ----------------------------------------------------------------------------- ids and label values

def _norm_ids(ids) -> np.ndarray:
    """Ids compared as relative paths: str, '/' separators, no leading './'."""
    s = pd.Series(np.asarray(ids, dtype=object)).astype(str).str.strip().str.replace("\\", "/", regex=False)
    return s.str.replace(r"^(\./)+", "", regex=True).to_numpy(dtype=object)


def _examples(values, n: int = 3) -> str:
    values = list(values)
    return ", ".join(map(str, values[:n])) + (", ..." if len(values) > n else "")


def _match_ids(source_ids, dataset_ids, *, what: str) -> np.ndarray:
    """Row of ``source_ids`` for every dataset id (N,); DataError if ids repeat or some are missing."""
    index = pd.Index(_norm_ids(source_ids))
    if not index.is_unique:
        dup = index[index.duplicated()].unique()
        raise DataError(f"{what} lists {len(dup)} id(s) more than once (e.g. {_examples(dup)}); "
                        "each image may have one row")
    wanted = _norm_ids(dataset_ids)
    rows = index.get_indexer(wanted)
    missing = wanted[rows < 0]
    if missing.size:
        raise DataError(f"{what} has no row for {missing.size} of the {wanted.size} training images "
                        f"(e.g. {_examples(missing)}); every training id must be covered")
    return rows


def _labels_from_values(values, class_names, *, what: str) -> np.ndarray:
    """Class names (or integer strings) -> int64 indices; empty cells -> -1."""
    s = pd.Series(np.asarray(values, dtype=object))
    missing = s.isna() | (s.astype(str).str.strip() == "")
    text = s.astype(str).str.strip()
    lookup = {name: i for i, name in enumerate(class_names)}
    lookup.update({str(i): i for i in range(len(class_names)) if str(i) not in lookup})
    out = text.map(lookup)
    unknown = ~missing & out.isna()
    if unknown.any():
        bad = text[unknown].unique()
        raise DataError(f"{what} contains {len(bad)} unknown class name(s) (e.g. {_examples(bad)}); "
                        f"valid names: {', '.join(class_names)}")
    return out.where(~missing, -1).astype(np.int64).to_numpy()


def _require_complete(labels: np.ndarray, ids, *, what: str) -> np.ndarray:
    gaps = np.flatnonzero(labels < 0)
    if gaps.size:
        raise DataError(f"{what} has no label for {gaps.size} training image(s) "
                        f"(e.g. {_examples(np.asarray(ids)[gaps])}); fill them in or pick another label set")
    return labels


# ----------------------------------------------------------------------------- human labels

def _human_from_dataset(dataset, label_set: str) -> np.ndarray:
    sets = dict(getattr(dataset, "label_sets", None) or {})
    if label_set not in sets:
        choices = ", ".join(sorted(sets)) or "none (load a CSV manifest with extra label columns)"
        raise ConfigError(f"label set {label_set!r} is not a column of this dataset; available: {choices}")
    labels = np.asarray(sets[label_set]).astype(np.int64)
    return _require_complete(labels, dataset.ids_train, what=f"label set {label_set!r}")


def _read_manifest(path: Path) -> pd.DataFrame:
    ds = _datasets_module()
    if ds is not None and hasattr(ds, "read_label_manifest"):
        return ds.read_label_manifest(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path} is not a readable CSV ({e})") from None
    if "path" not in df.columns:
        raise DataError(f"{path} has no 'path' column (columns: {', '.join(df.columns)}); "
                        "a label manifest needs path plus one column per label set")
    return df


def _human_from_csv(dataset, path: Path, label_set: str) -> np.ndarray:
    df = _read_manifest(path)
    if label_set not in df.columns or label_set == "path":
        cols = [c for c in df.columns if c != "path"]
        raise ConfigError(f"label set {label_set!r} is not a column of {path.name}; available: {', '.join(cols)}")
    rows = _match_ids(df["path"].to_numpy(), dataset.ids_train, what=f"{path.name}")
    labels = _labels_from_values(df[label_set].to_numpy()[rows], dataset.class_names,
                                 what=f"{path.name} column {label_set!r}")
    return _require_complete(labels, dataset.ids_train, what=f"{path.name} column {label_set!r}")


def cifar10n_ids(clean_labels, class_names=CIFAR10_CLASS_NAMES) -> np.ndarray:
    """Id of each row of a CIFAR-10N array (keras.datasets order): the k-th image of class c is
    ``train/<class_names[c]>/<k:04d>.jpg``. Shapes: (N,) -> (N,) str."""
    clean = np.asarray(clean_labels)
    ids = np.empty(clean.size, dtype=object)
    for c, name in enumerate(class_names):
        rows = np.flatnonzero(clean == c)
        ids[rows] = [f"train/{name}/{k:04d}.jpg" for k in range(rows.size)]
    return ids


def _human_from_pt(dataset, path: Path, label_set: str) -> np.ndarray:
    key = PT_LABEL_SETS.get(label_set, label_set)
    arrays = read_cifar10n_pt(path)
    if key not in arrays or "clean_label" not in arrays:
        raise ConfigError(f"label set {label_set!r} is not in {path.name}; choose one of: "
                          f"{', '.join(n for n, k in PT_LABEL_SETS.items() if k in arrays)}")
    if tuple(dataset.class_names) != CIFAR10_CLASS_NAMES:
        raise DataError(f"{path.name} holds CIFAR-10 labels, but this dataset's classes are "
                        f"{', '.join(dataset.class_names)}")
    clean, chosen = arrays["clean_label"], arrays[key]
    if chosen.shape != clean.shape or clean.min() < 0 or clean.max() > 9 or chosen.min() < 0 or chosen.max() > 9:
        raise DataError(f"{path.name}: {key} and clean_label must be equal-length arrays of classes 0..9")
    try:
        rows = _match_ids(cifar10n_ids(clean), dataset.ids_train, what=path.name)
    except DataError as e:
        raise DataError(f"these labels are not for this CIFAR-10 copy: {e}") from None
    wrong = np.flatnonzero(clean[rows] != np.asarray(dataset.y_train))
    if wrong.size:
        examples = _examples(np.asarray(dataset.ids_train)[wrong])
        raise DataError(f"these labels are not for this CIFAR-10 copy: the file's clean label differs from "
                        f"the dataset's for {wrong.size} image(s) (e.g. {examples})")
    return chosen[rows].astype(np.int64)


def human_labels(dataset, *, label_set: str, source=None) -> np.ndarray:
    """Real human labels (N,) for the dataset's training ids, from one of three places:
    ``source`` None -> ``dataset.label_sets[label_set]``; a ``.csv`` manifest (path column + label
    columns, matched by id); a CIFAR-10N ``CIFAR-10_human.pt`` (Wei et al., ICLR 2022)."""
    if not label_set:
        raise ConfigError("human labels need a label set name (e.g. aggre, worst, random1)")
    if source is None:
        return _human_from_dataset(dataset, label_set)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"human label file {source} does not exist; give a CSV manifest or CIFAR-10_human.pt")
    if path.suffix.lower() in (".csv", ".txt"):
        return _human_from_csv(dataset, path, label_set)
    return _human_from_pt(dataset, path, label_set)


# ----------------------------------------------------------------------------- dataset-level models

def _num_classes(dataset) -> int:
    return len(dataset.class_names)


def _true(dataset) -> np.ndarray:
    return _check_labels(dataset.y_train, _num_classes(dataset), "dataset.y_train")


def _finish(labels, true_labels, requested, config: NoiseConfig, num_classes: int) -> NoisyLabels:
    """Wrap labels with is_noisy, the realized matrix and rate (all None when the truth is unknown)."""
    labels = _check_labels(labels, num_classes, "labels")
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
    return _finish(y.copy(), y if known else None, np.eye(k), config, k)


def _apply_symmetric(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = symmetric_noise(y, rate=config.rate, num_classes=k, seed=config.seed, per_example=config.per_example)
    return _finish(labels, y, symmetric_matrix(config.rate, k), config, k)


def _apply_uniform(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = uniform_noise(y, rate=config.rate, num_classes=k, seed=config.seed, per_example=config.per_example)
    return _finish(labels, y, uniform_matrix(config.rate, k), config, k)


def _apply_pair(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = pair_noise(y, rate=config.rate, num_classes=k, seed=config.seed)
    mapping = {i: (i + 1) % k for i in range(k)} if k > 1 else {}
    return _finish(labels, y, _mapping_matrix(config.rate, k, mapping), config, k)


def _apply_asymmetric(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    pairs = _check_pairs(asymmetric_pairs(dataset.class_names, dataset_name=getattr(dataset, "name", None)), k)
    labels = asymmetric_noise(y, rate=config.rate, num_classes=k, pairs=pairs, seed=config.seed)
    return _finish(labels, y, _mapping_matrix(config.rate, k, pairs), config, k)


def _apply_matrix(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    m = validate_matrix(config.matrix, k, class_names=tuple(dataset.class_names))
    labels = matrix_noise(y, matrix=m, num_classes=k, seed=config.seed)
    return _finish(labels, y, m, config, k)


def _apply_instance(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = instance_noise(y, dataset.x_train, rate=config.rate, num_classes=k, seed=config.seed,
                            std=config.instance_std)
    return _finish(labels, y, None, config, k)


def _apply_human(dataset, config: NoiseConfig) -> NoisyLabels:
    k, y = _num_classes(dataset), _true(dataset)
    labels = human_labels(dataset, label_set=config.label_set, source=config.human_labels)
    known = bool(getattr(dataset, "truth_known", True))
    return _finish(labels, y if known else None, None, config, k)


NOISE_MODELS: dict[str, Callable] = {
    "none": _apply_none, "symmetric": _apply_symmetric, "uniform": _apply_uniform, "pair": _apply_pair,
    "asymmetric": _apply_asymmetric, "matrix": _apply_matrix, "instance": _apply_instance,
    "human": _apply_human,
}

NOISE_HELP: dict[str, str] = {
    "none": "keep the labels as given",
    "symmetric": "flip to a random other class",
    "uniform": "redraw at random, may land on the true class",
    "pair": "class i becomes class i+1",
    "asymmetric": "similar classes swap (cat↔dog, truck→automobile…)",
    "matrix": "you set P(given | true) per class pair",
    "instance": "harder-looking images flip more (Xia et al. 2020)",
    "human": "real annotators' labels (e.g. CIFAR-10N)",
}


def apply_noise(dataset, config: NoiseConfig) -> NoisyLabels:
    """Make the given labels for ``dataset``'s training set with the model named in ``config``."""
    if not isinstance(config, NoiseConfig):
        raise ConfigError(f"apply_noise needs a NoiseConfig, got {type(config).__name__}")
    model = NOISE_MODELS.get(config.model)
    if model is None:
        raise ConfigError(f"noise model {config.model!r} is unknown; choose one of: {', '.join(NOISE_MODELS)}")
    return model(dataset, config)


# ----------------------------------------------------------------------------- descriptions for the UI

def _pct(x: float) -> str:
    return f"{x * 100:.1f}".rstrip("0").rstrip(".") + "%"


def describe(config: NoiseConfig, num_classes: int, *, class_names=None) -> str:
    """One line for the UI / CLI saying what the model does and what share of labels ends up wrong."""
    k, r, m = _check_num_classes(num_classes), float(config.rate), config.model
    if m == "none":
        return "no injected noise: the labels are used as given"
    if m == "symmetric":
        how = "each label flips with probability" if config.per_example else "exactly"
        return f"symmetric {_pct(r)}: {how} {_pct(r)} of labels flip to a different class, chosen uniformly"
    if m == "uniform":
        return (f"uniform {_pct(r)}: about {_pct(r * (k - 1) / k)} of labels end up wrong, "
                "since a redraw can land on the true class")
    if m == "pair":
        return f"pair {_pct(r)}: {_pct(r)} of each class is relabelled as the next class (i -> i+1)"
    if m == "asymmetric":
        names = tuple(class_names) if class_names is not None else (CIFAR10_CLASS_NAMES if k == 10 else None)
        try:
            pairs = asymmetric_pairs(names or ())
        except ConfigError:
            return f"asymmetric {_pct(r)}: not available for these classes (use pair or matrix)"
        share = overall_rate(_mapping_matrix(r, k, _check_pairs(pairs, k)))
        return (f"asymmetric {_pct(r)}: {_pct(r)} of {len(pairs)} classes flip to a similar class "
                f"({_pair_text(pairs, names)}); about {_pct(share)} of all labels end up wrong")
    if m == "matrix":
        try:
            share = overall_rate(validate_matrix(config.matrix, k))
        except ConfigError as e:
            return f"matrix: invalid ({e})"
        return f"matrix: labels drawn from your {k} x {k} table; about {_pct(share)} wrong if classes are balanced"
    if m == "instance":
        return (f"instance {_pct(r)}: each image flips with its own probability (mean {_pct(r)}, "
                f"std {_pct(config.instance_std)}) towards classes its pixels point to (Xia et al., 2020)")
    src = config.human_labels or "the dataset's own CSV"
    return f"human labels: label set {config.label_set!r} from {src}"


# ----------------------------------------------------------------------------- label sets on disk

def _atomic_write(path: Path, text: str) -> None:
    """Write text to path via a temp file in the same folder + os.replace (never a half-written file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _matrix_json(m) -> Optional[list]:
    return None if m is None else np.asarray(m, dtype=float).tolist()


def save_label_set(out_dir, dataset, noisy: NoisyLabels, *, data_config=None) -> Path:
    """Write ``labels.csv`` (id, label, true_label, is_noisy; class names) and ``noise.json``; return the folder.

    Both files are written atomically (temp file + os.replace). Labels (N,) follow ``dataset.ids_train``.
    ``data_config`` (a DataConfig) is stored too, so the label set names the exact images it belongs to.
    """
    names = np.asarray(dataset.class_names, dtype=object)
    ids = np.asarray(dataset.ids_train)
    labels = _check_labels(noisy.labels, len(names), "labels")
    if labels.size != ids.size:
        raise UserError(f"the label set has {labels.size} labels but the dataset has {ids.size} training images")
    known = noisy.true_labels is not None
    table = pd.DataFrame({"id": ids, "label": names[labels],
                          "true_label": names[noisy.true_labels] if known else "",
                          "is_noisy": np.where(noisy.is_noisy, "true", "false") if known else ""})
    meta = {"config": noisy.config.to_dict(), "truth_known": known,
            "data_config": data_config.to_dict() if data_config is not None else None,
            "dataset": {"name": getattr(dataset, "name", None), "source": getattr(dataset, "source", None),
                        "class_names": list(dataset.class_names), "num_train": int(ids.size)},
            "requested_matrix": _matrix_json(noisy.requested_matrix),
            "realized_matrix": _matrix_json(noisy.realized_matrix),
            "realized_rate": None if noisy.realized_rate is None else float(noisy.realized_rate),
            "counts": {"labels": int(labels.size), "noisy": noisy.num_noisy,
                       "given_per_class": np.bincount(labels, minlength=len(names)).tolist(),
                       "true_per_class": (np.bincount(noisy.true_labels, minlength=len(names)).tolist()
                                          if known else None)},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "labels.csv", table.to_csv(index=False))
    _atomic_write(out / "noise.json", json.dumps(meta, indent=2))
    return out


def _read_noise_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); delete it or write the label set again") from None
    return meta if isinstance(meta, dict) else {}


def _is_own_source(source) -> bool:
    """A folder or zip of the user's images (not builtin, cifar10 or a CSV manifest)."""
    src = str(source or "").strip()
    return bool(src) and src not in ("builtin", "cifar10") and not src.lower().endswith(".csv")


def truth_known_meta(meta: dict) -> bool:
    """Whether a label set's noise.json (a dict) knows the true labels.

    ``truth_known`` when recorded; for label sets written before that key: False when no noise was
    injected into a folder or zip (the folder names were then wrongly copied as true labels)."""
    if not isinstance(meta, dict):
        return True
    if "truth_known" in meta:
        return bool(meta["truth_known"])
    model = (meta.get("config") or {}).get("model")
    source = (meta.get("dataset") or {}).get("source") or (meta.get("data_config") or {}).get("source")
    return not (model == "none" and _is_own_source(source))


def load_label_set(path, dataset) -> NoisyLabels:
    """Read a label set written by ``save_label_set`` (path: labels.csv or its folder), in dataset order."""
    p = Path(path)
    csv_path = p / "labels.csv" if p.is_dir() else p
    if not csv_path.is_file():
        raise DataError(f"no label set at {path}: expected labels.csv (or a folder holding it)")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{csv_path} is not a readable CSV ({e})") from None
    missing_cols = {"id", "label"} - set(df.columns)
    if missing_cols:
        raise DataError(f"{csv_path} lacks column(s) {', '.join(sorted(missing_cols))}; "
                        f"found: {', '.join(df.columns)} (expected id, label, true_label, is_noisy)")
    if "split" in df.columns:   # rows of the held-out split (reviewed test labels) are not training labels
        df = df[df["split"].str.strip().str.lower() != "test"].reset_index(drop=True)
    unknown = sorted(set(_norm_ids(df["id"])) - set(_norm_ids(dataset.ids_train)))
    if unknown:
        raise DataError(f"{csv_path} has {len(unknown)} id(s) that are not in the dataset "
                        f"(e.g. {_examples(unknown)}); is it for another dataset?")
    rows = _match_ids(df["id"].to_numpy(), dataset.ids_train, what=str(csv_path))
    names, k = tuple(dataset.class_names), len(dataset.class_names)
    labels = _labels_from_values(df["label"].to_numpy()[rows], names, what=f"{csv_path} column 'label'")
    labels = _require_complete(labels, dataset.ids_train, what=f"{csv_path} column 'label'")
    meta = _read_noise_json(csv_path.parent / "noise.json")
    true = None
    if "true_label" in df.columns and (df["true_label"].str.strip() != "").any() and truth_known_meta(meta):
        true = _labels_from_values(df["true_label"].to_numpy()[rows], names,
                                   what=f"{csv_path} column 'true_label'")
        true = _require_complete(true, dataset.ids_train, what=f"{csv_path} column 'true_label'")
    config = NoiseConfig.from_dict(meta["config"]) if "config" in meta else NoiseConfig(model="none", rate=0.0)
    requested = meta.get("requested_matrix")
    requested = np.asarray(requested, dtype=float) if requested is not None else None
    if requested is not None and requested.shape != (k, k):
        requested = None
    return _finish(labels, true, requested, config, k)


# ----------------------------------------------------------------------------- views for the page

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
    labels = _check_labels(noisy.labels, k, "labels")
    given = np.bincount(labels, minlength=k)
    if noisy.true_labels is None:
        true = pd.array([pd.NA] * k, dtype="Int64")
    else:
        true = pd.array(np.bincount(_check_labels(noisy.true_labels, k), minlength=k), dtype="Int64")
    return pd.DataFrame({"class": names, "true": true, "given": pd.array(given, dtype="Int64")})
