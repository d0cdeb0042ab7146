"""The small helpers every part of noisycore shares, each defined once here.

    atomic_write(path, write) / atomic_write_text / write_json / write_csv / save_npy / save_npz
                                            # files: temp file in the same folder + os.replace
    atomic_directory(dest, fill)            # folders: filled under a temp name, then renamed
    stratified_subset / stratified_split / stratified_folds   # the seeded, class-keeping splitters
    margins(probs, labels) / score_margins  # the AUM margin per example (of probabilities / of scores)
    check_labels(labels, num_classes)       # class-index arrays validated, one message style
    pct(value) / flatten(mapping)           # formatting shared by the CLI, the pages and the charts
    int_or_none(value)                      # a count read from JSON that others wrote

numpy and the standard library only (pandas only through the frame handed to write_csv), so every
module, the light ones included, may import it; it imports nothing from noisycore but errors.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from noisycore.errors import DataError


# ----------------------------------------------------------------------------- atomic writes
def atomic_write(path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it to ``path``: a reader
    never sees half a file, and a failed write leaves the old file (or none) in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically, flushed to disk."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return atomic_write(path, write)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):   # numpy scalars
        return value.item()
    return str(value)


def write_json(path, data) -> Path:
    """``data`` as indented JSON (numpy scalars and arrays as plain numbers and lists), atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=_json_default))


def write_csv(path, frame) -> Path:
    """A pandas DataFrame as CSV without its index, atomically."""
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def save_npy(path, array) -> Path:
    """One array as .npy (no pickles), atomically."""
    def write(tmp):
        with open(tmp, "wb") as f:     # a file object: np.save would append .npy to a path
            np.save(f, np.asarray(array), allow_pickle=False)
    return atomic_write(path, write)


def save_npz(path, **arrays) -> Path:
    """Arrays as one uncompressed .npz (no pickles: strings as unicode arrays), atomically."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return atomic_write(path, write)


def atomic_directory(dest, fill: Callable[[Path], None], *, exist_ok: bool = False) -> Path:
    """Create folder ``dest`` whole or not at all: ``fill(tmp)`` fills a temporary sibling folder, which
    is then renamed to ``dest`` (an existing empty ``dest`` is replaced). On any error the temporary
    folder is removed and the error propagates.

    ``exist_ok``: for content-addressed folders (the same name always gets the same content), a ``dest``
    that another process completed meanwhile is kept and this process's copy discarded, instead of the
    rename failing ("Directory not empty")."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        fill(tmp)
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        try:
            os.replace(tmp, dest)
        except OSError as e:
            if not (exist_ok and e.errno in (errno.ENOTEMPTY, errno.EEXIST) and dest.is_dir()):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# ----------------------------------------------------------------------------- stratified splits
# Each returns the same indices for the same (labels, size, seed), whoever calls it, so for example
# ``max_train`` picks the same images whether the labels come from injected noise or a saved label set.
# Every function draws from its own ``np.random.default_rng(seed)``.

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


# ----------------------------------------------------------------------------- margins and labels
def score_margins(scores, labels) -> np.ndarray:
    """The margin of each example's given label: ``z[..., n, y_n] - max_{k != y_n} z[..., n, k]`` for scores
    (logits or log-probabilities) of shape (N, K) or (E, N, K); returns (N,) or (E, N), float64."""
    z = np.array(scores, dtype=np.float64)   # a copy: modified below
    rows, y = np.arange(len(labels)), np.asarray(labels)
    given = z[..., rows, y]
    z[..., rows, y] = -np.inf
    return given - z.max(axis=-1)


def margins(probs, labels) -> np.ndarray:
    """AUM margin per example from probabilities: log p[y] - max_{k != y} log p[k] (Pleiss et al. 2020),
    which equals the logit margin (softmax only shifts a row). (N, K), (N,) -> float32 (N,)."""
    return score_margins(np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)), labels).astype(np.float32)


def check_labels(labels, num_classes: Optional[int] = None, what: str = "labels",
                 error: type = DataError) -> np.ndarray:
    """Class indices as int64 (N,), or ``error`` naming ``what``. An (N, 1) column (keras.datasets
    style) is flattened; whole-number floats are accepted; with ``num_classes`` every index must be in
    0..num_classes-1."""
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.size == 0:
        raise error(f"{what} must be a non-empty 1-D array of class indices, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) \
                or not np.all(arr == np.round(arr)):
            raise error(f"{what} must be integers 0..K-1 (class indices), got dtype {arr.dtype} "
                        f"(first value {arr.flat[0]!r}); map class names to indices first")
    arr = arr.astype(np.int64)
    if num_classes is not None:
        bad = np.flatnonzero((arr < 0) | (arr >= num_classes))
        if bad.size:
            i = int(bad[0])
            raise error(f"{what}[{i}] = {arr[i]} is outside 0..{num_classes - 1} (class index {arr[i]} is not one of "
                        f"0..{num_classes - 1} for K={num_classes} classes); {bad.size} label(s) out of range")
    return arr


# ----------------------------------------------------------------------------- formatting
def int_or_none(value) -> Optional[int]:
    """int(value), or None when it is missing or not a number (counts read from JSON written by others)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def pct(value, digits: int = 1, *, missing: str = "—", trim: bool = False) -> str:
    """A fraction as a percentage: pct(0.4) -> '40.0%'; trim drops a trailing '.0' ('40%');
    None or NaN -> ``missing``."""
    if value is None or not np.isfinite(float(value)):
        return missing
    text = f"{float(value) * 100:.{digits}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "%"


def flatten(mapping: Mapping, prefix: str = "", *, encode: bool = False) -> dict:
    """Nested dicts -> one level with dotted keys: {"noise": {"rate": 0.4}} -> {"noise.rate": 0.4}.
    With ``encode`` list, tuple and (empty) dict values become JSON text (for a table cell)."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}.", encode=encode))
        elif encode and isinstance(value, (list, tuple, Mapping)):
            out[f"{prefix}{key}"] = json.dumps(value)
        else:
            out[f"{prefix}{key}"] = value
    return out


def one_line(err: BaseException) -> str:
    """An exception as one line: its message (a ValueError's alone, else prefixed by its type)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, ValueError) else f"{type(err).__name__}: {text}"


def print_traceback(err: BaseException) -> None:
    """The full traceback on stderr (the worker's log.txt)."""
    import traceback

    traceback.print_exception(type(err), err, err.__traceback__)
