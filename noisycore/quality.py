"""Data-quality lists beyond wrong labels (issue 29), as cleanlab's Datalab and CleanVision report them,
written here in numpy (cleanlab is AGPL: tests only). Each list is a DataFrame, one row per image, most
severe first, with ``id``, ``score`` in [0, 1] (lower = more of an issue, like ``label_quality``),
``flag`` (bool) and ``reason`` (words for the page; "" when not flagged), plus the list's own columns.

    near_duplicates(embeddings, *, ids, labels=None, threshold=DUPLICATE_SIMILARITY)
        cosine similarity to the nearest other image; flagged images form groups (connected pairs);
        a group whose copies carry different labels comes first ("same image, different labels").
    outliers(embeddings, *, ids, labels=None, k=OUTLIER_K)
        mean cosine distance to the k nearest images of the set, and of the image's own class;
        flagged beyond Tukey's far-out fence (Q3 + 3 IQR) of either distance.
    image_quality(images, *, ids)
        too dark (99th-percentile perceived brightness), too bright (5th percentile), blurry (standard
        deviation of the grey image's Laplacian over that of the image: contrast does not count; and below
        0.4 x the set's median), low information (grey-level entropy in bits / 8).

``embeddings``: (N, D) from ``noisycore.embeddings.embed`` (the order of ``ids``); ``images``: uint8
(N, H, W, 3). ``nearest_neighbours`` is shared by the first two (compute it once and pass ``neighbours=`` to both:
it is the costly part, N^2 D) and meant for the Review page's neighbour strip.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from noisycore.errors import UserError
from noisycore.util import check_labels

DUPLICATE_SIMILARITY = 0.90   # cosine similarity of pooled Lite2 features (size 160): on 3,000 CIFAR-10 photos the
                              # 6 pairs above are the same photo (one a crop); 0.84-0.90 mixes copies with look-alikes
                              # (benchmarks/duplicate_threshold.py; Lite0's features gave the same threshold)
OUTLIER_K = 10                # neighbours averaged for the outlier distance (Datalab's default k is 10)
FENCE = 3.0                   # Tukey's far-out fence: Q3 + FENCE * (Q3 - Q1)
DARK = 0.22                   # flag when the 99th percentile of perceived brightness is below (CleanVision's value)
BRIGHT = 0.95                 # flag when even the 5th percentile is above this brightness
BLURRY = 0.25                 # flag when std(Laplacian) / std(grey) is below (0.1% of CIFAR-10 photos are under 0.3)
BLURRY_RELATIVE = 0.4         # ... and below 0.4 x the set's median: a set of upscaled photos is smooth as a whole,
                              # which is no fault of one image (303 CIFAR photos at 96 px: 137 flagged without it)
LOW_INFORMATION = 0.3         # flag when the grey-level entropy is below 0.3 * 8 bits (CleanVision's value)
BLOCK = 2048                  # rows per similarity block: memory BLOCK * N * 4 bytes


def _check_embeddings(embeddings, ids) -> tuple:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2 or not np.all(np.isfinite(x)):
        raise UserError(f"embeddings must be a finite (N, D) array with N >= 2, got shape {x.shape}; "
                        "compute them with noisycore.embeddings.embed")
    ids = np.asarray(ids if ids is not None else np.arange(len(x))).astype(str)
    if len(ids) != len(x):
        raise UserError(f"{len(ids)} ids for {len(x)} embeddings: give one id per row")
    return x, ids


def _labels(labels, n) -> Optional[np.ndarray]:
    if labels is None:
        return None
    y = check_labels(labels, what="labels", error=UserError)
    if len(y) != n:
        raise UserError(f"{len(y)} labels for {n} embeddings: give one label per row")
    return y


def nearest_neighbours(embeddings, k: int) -> tuple:
    """The k most cosine-similar other rows of each row: (indices int (N, k), similarities float32 (N, k)),
    most similar first (k is capped at N - 1). Computed in blocks of BLOCK rows: memory BLOCK * N * 4 bytes."""
    x = np.asarray(embeddings, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n, k = len(x), int(min(k, len(x) - 1))
    idx, sim = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
    for start in range(0, n, BLOCK):
        rows = np.arange(start, min(start + BLOCK, n))
        s = x[rows] @ x.T
        s[np.arange(len(rows)), rows] = -np.inf                  # never its own neighbour
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-best, axis=1, kind="stable")
        idx[rows], sim[rows] = np.take_along_axis(top, order, axis=1), np.take_along_axis(best, order, axis=1)
    return idx, sim


def _neighbours(x, k, given) -> tuple:
    """``given`` (a nearest_neighbours result with at least k columns, computed once for both lists), else
    computed here."""
    if given is None:
        return nearest_neighbours(x, k)
    idx, sim = given
    k = int(min(k, len(x) - 1))
    if np.shape(idx) != np.shape(sim) or len(idx) != len(x) or np.shape(idx)[1] < k:
        raise UserError(f"neighbours of shape {np.shape(idx)} do not fit {len(x)} embeddings and k={k}: "
                        "pass nearest_neighbours(embeddings, k)")
    return np.asarray(idx)[:, :k], np.asarray(sim)[:, :k]


def _groups(pairs: np.ndarray, n: int) -> np.ndarray:
    """Connected components of the pairs (union-find); -1 for rows in no pair, else 0.. by first row."""
    parent = np.arange(n)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n)])
    in_pair = np.zeros(n, bool)
    in_pair[pairs.ravel()] = True
    out = np.full(n, -1)
    for g, root in enumerate(sorted(set(roots[in_pair]))):
        out[in_pair & (roots == root)] = g
    return out


def near_duplicates(embeddings, *, ids=None, labels=None, class_names=None,
                    threshold: float = DUPLICATE_SIMILARITY, neighbours=None) -> pd.DataFrame:
    """One row per image: ``similarity`` to its nearest other image, ``duplicate_of`` (that image's id),
    ``group`` (-1 or a group number), ``labels_differ``; score = 1 - similarity; flagged at
    similarity >= threshold. Sorted: groups whose labels differ, then by similarity."""
    x, ids = _check_embeddings(embeddings, ids)
    y = _labels(labels, len(x))
    if not 0.0 < float(threshold) <= 1.0:
        raise UserError(f"duplicate threshold {threshold!r} must be a cosine similarity in (0, 1], e.g. "
                        f"{DUPLICATE_SIMILARITY}")
    idx, sim = _neighbours(x, OUTLIER_K, neighbours)
    close = sim >= threshold
    rows, cols = np.nonzero(close)
    group = _groups(np.stack([rows, idx[rows, cols]], axis=1), len(x))
    differ = np.zeros(len(x), bool)
    if y is not None:
        for g in np.unique(group[group >= 0]):
            members = group == g
            differ[members] = len(np.unique(y[members])) > 1
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    reasons = []
    for i in range(len(x)):
        if group[i] < 0:
            reasons.append("")
            continue
        size = int((group == group[i]).sum())
        text = f"near-duplicate of {ids[idx[i, 0]]} (similarity {sim[i, 0]:.3f}; {size} images in the group)"
        if differ[i]:
            text = "same image, different labels (" + ", ".join(
                sorted({name(c) for c in y[group == group[i]]})) + "): " + text
        reasons.append(text)
    df = pd.DataFrame({"id": ids, "score": np.clip(1.0 - sim[:, 0], 0.0, 1.0), "flag": group >= 0,
                       "reason": reasons, "similarity": sim[:, 0], "duplicate_of": ids[idx[:, 0]],
                       "group": group, "labels_differ": differ})
    return df.sort_values(["flag", "labels_differ", "score", "id"], ascending=[False, False, True, True],
                          kind="stable").reset_index(drop=True)


def _far_out(d: np.ndarray) -> np.ndarray:
    """Tukey's far-out fence over the finite values: d > Q3 + FENCE * IQR."""
    ok = np.isfinite(d)
    if ok.sum() < 4:
        return np.zeros(len(d), bool)
    q1, q3 = np.percentile(d[ok], [25, 75])
    return ok & (d > q3 + FENCE * (q3 - q1))


def outliers(embeddings, *, ids=None, labels=None, class_names=None, k: int = OUTLIER_K,
             neighbours=None) -> pd.DataFrame:
    """One row per image: ``distance`` (mean cosine distance to its k nearest images), ``class_distance``
    (the same within its given label; NaN without labels or for a class of one); score =
    exp(-d / median d) of the larger of the two ratios (1 at the typical distance .. 0 far away)."""
    x, ids = _check_embeddings(embeddings, ids)
    y = _labels(labels, len(x))
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UserError(f"outlier k {k!r} must be a whole number of neighbours >= 1, e.g. {OUTLIER_K}")
    _, sim = _neighbours(x, k, neighbours)
    d_set = (1.0 - sim).mean(axis=1)
    d_class = np.full(len(x), np.nan)
    for c in np.unique(y) if y is not None else ():
        rows = np.flatnonzero(y == c)                 # each class on its own: (N / K)^2 work per class
        if len(rows) > 1:
            d_class[rows] = (1.0 - nearest_neighbours(x[rows], k)[1]).mean(axis=1)
    far_set, far_class = _far_out(d_set), _far_out(d_class)
    ratio = d_set / max(float(np.median(d_set)), 1e-12)
    if y is not None and np.isfinite(d_class).any():
        class_ratio = d_class / max(float(np.nanmedian(d_class)), 1e-12)
        ratio = np.fmax(ratio, class_ratio)
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    reasons = [("far from every image" if fs else "") + (" and " if fs and fc else "") +
               (f"far from the images labelled {name(y[i])}" if fc else "")
               for i, (fs, fc) in enumerate(zip(far_set, far_class))]
    df = pd.DataFrame({"id": ids, "score": np.exp(-ratio), "flag": far_set | far_class, "reason": reasons,
                       "distance": d_set, "class_distance": d_class})
    return df.sort_values(["flag", "score", "id"], ascending=[False, True, True], kind="stable").reset_index(drop=True)


def _grey(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0


def _image_measures(images: np.ndarray) -> dict:
    """Per image: brightness percentiles, Laplacian standard deviation and grey-level entropy."""
    rgb = images.astype(np.float32) / 255.0
    perceived = np.sqrt(rgb ** 2 @ np.array([0.241, 0.691, 0.068], np.float32))   # CleanVision's brightness
    flat = perceived.reshape(len(images), -1)
    grey = _grey(images)
    lap = (grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
           - 4 * grey[:, 1:-1, 1:-1])
    levels = np.clip((grey * 255).round(), 0, 255).astype(np.int64).reshape(len(images), -1)
    entropy = np.empty(len(images))
    for i, row in enumerate(levels):
        p = np.bincount(row, minlength=256) / len(row)
        p = p[p > 0]
        entropy[i] = float(-(p * np.log2(p)).sum())
    return {"brightness_high": np.percentile(flat, 99, axis=1), "brightness_low": np.percentile(flat, 5, axis=1),
            "sharpness": lap.reshape(len(images), -1).std(axis=1)
            / np.maximum(grey.reshape(len(images), -1).std(axis=1), 1 / 255),
            "information": entropy / 8.0}


def image_quality(images, *, ids=None, batch: int = 4096) -> pd.DataFrame:
    """One row per image with ``dark``, ``bright``, ``blurry``, ``low_information`` scores in [0, 1]
    (lower = worse; 1 = clearly fine), ``score`` = their minimum, ``flag`` when any check fails and
    ``reason`` listing the failed checks."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8 or len(x) == 0 or min(x.shape[1:3]) < 3:
        raise UserError(f"images must be uint8 (N, H, W, 3) with H, W >= 3, got {x.dtype} {x.shape}")
    ids = np.asarray(ids if ids is not None else np.arange(len(x))).astype(str)
    if len(ids) != len(x):
        raise UserError(f"{len(ids)} ids for {len(x)} images: give one id per image")
    parts = [_image_measures(x[i:i + batch]) for i in range(0, len(x), batch)]
    m = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    blur_cut = min(BLURRY, BLURRY_RELATIVE * float(np.median(m["sharpness"])))
    checks = {   # name: (score in [0, 1], threshold on the score, words)
        "dark": (np.clip(m["brightness_high"] / (2 * DARK), 0, 1), 0.5, "too dark"),
        "bright": (np.clip((1 - m["brightness_low"]) / (2 * (1 - BRIGHT)), 0, 1), 0.5, "too bright"),
        "blurry": (np.clip(m["sharpness"] / (2 * blur_cut), 0, 1), 0.5, "blurry"),
        "low_information": (np.clip(m["information"] / (2 * LOW_INFORMATION), 0, 1), 0.5, "almost no information"),
    }
    flags = {name: score < cut for name, (score, cut, _) in checks.items()}
    reasons = ["; ".join(words for name, (_, _, words) in checks.items() if flags[name][i]) for i in range(len(x))]
    df = pd.DataFrame({"id": ids, "score": np.min([c[0] for c in checks.values()], axis=0),
                       "flag": np.any(list(flags.values()), axis=0), "reason": reasons,
                       **{name: c[0] for name, c in checks.items()}, **m})
    return df.sort_values(["flag", "score", "id"], ascending=[False, True, True], kind="stable").reset_index(drop=True)
