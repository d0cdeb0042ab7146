"""A run's data-quality lists beyond wrong labels (issue 29): near-duplicates, outliers and poor images,
from the pretrained embeddings of its images, in the run's review order.

    compute(run_dir, *, size=160, progress=None)  # embeddings (cached beside the dataset) -> RUN/quality/*.csv
    quality_lists(run_dir) -> {list name: DataFrame} | None     # the saved lists (never loads TensorFlow)
    read_meta(run_dir) -> dict | None                           # RUN/quality/quality.json: counts, size, file
    read_embeddings(run_dir) -> (N, 1280) | None                # L2-normalised, rows in read_run_labels order
    neighbour_features(run_dir) -> (features, kind)             # pretrained when computed, else the run's model

Rows of every list: the images of :func:`detect.read_run_labels` (``index`` = position there, ``id``,
``given_label`` as a class name), with the columns of :mod:`noisycore.quality` (``score``, ``flag``,
``reason``, ...), most severe first. Near-duplicates are ordered by group (groups whose copies carry
different labels first), so the copies of one photo sit side by side. Only :func:`compute` loads
TensorFlow (through :func:`noisycore.embeddings.embed`); the crossval worker calls it in the background.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from noisycore import detect, embeddings, quality, runs
from noisycore.util import write_csv

QUALITY_DIR = "quality"            # RUN/quality/<list>.csv + quality.json
META = "quality.json"
LISTS = {"near_duplicates": "Near-duplicates", "outliers": "Outliers", "image_quality": "Poor images"}
LIST_HELP = {
    "near_duplicates": "The same photo twice (cosine similarity of the pretrained features at least "
                       f"{quality.DUPLICATE_SIMILARITY}). Copies with different labels come first: one of the "
                       "labels is wrong. Copies also inflate held-out accuracy when one lands in each split.",
    "outliers": "Far from every image of the set, or from every image of its own class (Tukey's far-out fence "
                "on the mean distance to the 10 nearest images): a stray photo, or a label that puts it in the "
                "wrong crowd.",
    "image_quality": "Too dark, too bright, blurry or almost no information (as CleanVision checks them), "
                     "on the images as the model sees them.",
}


def _dataset(run: Path):
    from noisycore.datasets import load_dataset

    return load_dataset(runs.run_data_config(run, training_subset=False))


def compute(run_dir, *, size: Optional[int] = None, progress: Optional[Callable] = None, dataset=None) -> dict:
    """Embed the run's dataset (cached: once per images and size), compute the three lists and save them
    as RUN/quality/<list>.csv with RUN/quality/quality.json; returns {list name: DataFrame}.
    ``size``: the backbone's input size (None: embeddings.DEFAULT_SIZE). ``progress(done, total)`` while
    embedding (see embeddings.embed). Loads TensorFlow unless cached."""
    run = detect.run_path(run_dir)
    size = embeddings.DEFAULT_SIZE if size is None else size
    embeddings.check_options(size=size, batch=64, precision=embeddings.DEFAULT_PRECISION)
    info = detect.read_run_labels(run)
    dataset = _dataset(run) if dataset is None else dataset
    emb = embeddings.embed(dataset, size=size, progress=progress,   # a moved photo's fallback: on the run's pages
                           notice=lambda text: runs.add_note(run, text))[detect.dataset_positions(run, dataset)]
    images = detect.run_images(run, dataset)
    lists = _lists(emb, images, info)
    out = run / QUALITY_DIR
    out.mkdir(exist_ok=True)
    for name, frame in lists.items():
        write_csv(out / f"{name}.csv", frame)
    near = lists["near_duplicates"]
    poor = lists["image_quality"]
    meta = {"size": size, "backbone": embeddings.BACKBONE, "n": len(info.ids),
            "embeddings": str(embeddings.embedding_file(dataset, size=size)),
            "pixels": embeddings.pixels_source(dataset, size=size),
            "created": datetime.now().astimezone().isoformat(timespec="seconds"),
            "counts": {name: int(frame["flag"].sum()) for name, frame in lists.items()},
            "duplicate_groups": int(near.loc[near["flag"], "group"].nunique()),
            "duplicates_labels_differ": int(near["labels_differ"].sum()),
            "poor_by_check": {c: int((poor[c] < 0.5).sum()) for c in ("dark", "bright", "blurry", "low_information")}}
    runs.write_json(out / META, meta)
    return lists


def _lists(emb: np.ndarray, images: np.ndarray, info) -> dict:
    """The three lists over embeddings and images in the run's order, with index and given_label first."""
    names = np.asarray(info.class_names, dtype=object)
    shared = quality.nearest_neighbours(emb, quality.OUTLIER_K)   # the N^2 part, once for both lists
    kw = {"ids": info.ids, "labels": info.labels, "class_names": info.class_names, "neighbours": shared}
    found = {"near_duplicates": _by_group(quality.near_duplicates(emb, **kw)),
             "outliers": quality.outliers(emb, **kw),
             "image_quality": quality.image_quality(images, ids=info.ids)}
    position = pd.Series(np.arange(len(info.ids)), index=np.asarray(info.ids, dtype=str))
    out = {}
    for name, frame in found.items():
        index = position.loc[frame["id"].astype(str)].to_numpy()
        out[name] = frame.assign(index=index, given_label=names[info.labels[index]])[
            ["index", "id", "given_label"] + [c for c in frame.columns if c != "id"]]
    return out


def _by_group(near: pd.DataFrame) -> pd.DataFrame:
    """Flagged rows group by group (labels differing first, then the closest group), the rest after."""
    flagged = near[near["flag"]]
    best = flagged.groupby("group")["score"].transform("min")
    flagged = flagged.assign(_best=best).sort_values(["labels_differ", "_best", "group", "score", "id"],
                                                     ascending=[False, True, True, True, True], kind="stable")
    return pd.concat([flagged.drop(columns="_best"), near[~near["flag"]]], ignore_index=True)


def read_meta(run_dir) -> Optional[dict]:
    """RUN/quality/quality.json, or None when the lists were never computed (or are incomplete)."""
    folder = Path(run_dir) / QUALITY_DIR
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if all((folder / f"{name}.csv").is_file() for name in LISTS) else None


def quality_lists(run_dir) -> Optional[dict]:
    """{list name: DataFrame} as :func:`compute` saved them (every image, most severe first), or None when
    not computed yet or computed for another set of images (the run's reviewable images changed)."""
    meta = read_meta(run_dir)
    if meta is None:
        return None
    folder = Path(run_dir) / QUALITY_DIR
    out = {name: pd.read_csv(folder / f"{name}.csv", dtype={"id": str, "given_label": str, "duplicate_of": str},
                             keep_default_na=False, na_values={"class_distance": [""]}) for name in LISTS}
    if any(len(frame) != meta.get("n") for frame in out.values()):
        return None
    for frame in out.values():
        for col in ("flag", "labels_differ"):
            if col in frame:
                frame[col] = frame[col].astype(str).str.lower() == "true"
    return out


def flagged(lists: dict, name: str) -> pd.DataFrame:
    """The flagged rows of one list (most severe first), ready for review.review_queue(flagged_only=False)."""
    if name not in LISTS:
        from noisycore.errors import UserError
        raise UserError(f"list {name!r} is unknown; choose one of: {', '.join(LISTS)}")
    frame = lists[name]
    return frame[frame["flag"]].reset_index(drop=True)


def read_embeddings(run_dir) -> Optional[np.ndarray]:
    """The pretrained embeddings :func:`compute` used, float32 (N, 1280) L2-normalised, in the order of
    read_run_labels; None when not computed or the cached file is gone or belongs to other images."""
    from noisycore.human_labels import norm_ids

    meta = read_meta(run_dir)
    if meta is None:
        return None
    try:
        with np.load(meta["embeddings"], allow_pickle=False) as z:
            emb, ids = z["embeddings"], z["ids"]
    except (OSError, KeyError, ValueError, TypeError):
        return None
    wanted = norm_ids(detect.read_run_labels(run_dir).ids)
    pos = pd.Index(norm_ids(ids)).get_indexer(wanted)
    if (pos < 0).any():
        return None
    x = emb[pos].astype(np.float32)
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def neighbour_features(run_dir) -> tuple:
    """(features (N, D) in the run's review order, kind): ``"pretrained"`` (ImageNet EfficientNet-Lite2
    embeddings, when computed) before ``"model"`` (the run's own penultimate layer, RUN/features.npy);
    (None, None) when neither exists."""
    emb = read_embeddings(run_dir)
    if emb is not None:
        return emb, "pretrained"
    feats = detect.read_features(run_dir)
    return (feats, "model") if feats is not None else (None, None)
