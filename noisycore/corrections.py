"""Applying review decisions: the final labels, the exports (CSV, manifest, a zip of class folders),
the corrected label set and the retrain on it.

    export(run_dir, fmt="csv", out="labels.csv")   # fmt: a key of EXPORT_FORMATS
    corrected_label_set(run_dir)                   # RUN/corrected/<time>/: the reviewed labels to train on
    retrain(run_dir)                               # a new background run on them

The decisions themselves live in :class:`noisycore.review.ReviewStore`.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from noisycore import runs
from noisycore.detect import RunLabels, detection_meta, load_issues, read_run_labels, run_images, run_path
from noisycore.errors import DataError, UserError
from noisycore.labelsets import SUBSET_KEY
from noisycore.review import NO_DECISION, ReviewStore
from noisycore.util import atomic_write, write_csv

CORRECTED_DIR = "corrected"        # RUN/corrected/<stamp>/labels.csv: reviewed labels for a retrain


# ----------------------------------------------------------------------------- applying decisions

def _check_items(ids, given_labels, class_names=None):
    ids = np.asarray([str(i) for i in ids], dtype=object)
    y = np.asarray(given_labels)
    if y.ndim != 1 or len(y) != len(ids) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"given_labels must be {len(ids)} integer labels (one per id), "
                        f"got shape {y.shape} dtype {y.dtype}")
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids).value_counts().index[0]
        raise DataError(f"ids must be unique; {dup!r} appears more than once")
    if class_names is not None and len(y) and (y.min() < 0 or y.max() >= len(class_names)):
        raise DataError(f"given label {y.max() if y.max() >= len(class_names) else y.min()} has no "
                        f"class name ({len(class_names)} classes)")
    return ids, y.astype(np.int64)


def final_labels(given_labels, ids, store: ReviewStore):
    """Apply the effective decisions to the given labels.

    Returns ``(final, excluded, decision)``, each (N,): final int labels (an excluded item keeps
    its given label here: drop it with the mask), excluded bool, decision str per item
    (``"unreviewed"`` where nobody decided). Decisions are matched by item id.
    """
    ids, y = _check_items(ids, given_labels)
    position = {item: i for i, item in enumerate(ids)}
    final, excluded = y.copy(), np.zeros(len(y), dtype=bool)
    decision = np.full(len(y), NO_DECISION, dtype=object)
    effective = store.latest()
    unknown = sorted(set(effective["item_id"]) - set(position))
    if unknown:
        raise DataError(f"{len(unknown)} reviewed item(s) are not in this dataset, e.g. {unknown[0]!r}; "
                        "was the review made on another dataset or label set?")
    for row in effective.itertuples(index=False):
        i = position[row.item_id]
        decision[i] = row.decision
        if row.decision == "exclude":
            excluded[i] = True
        else:
            final[i] = int(row.new_label)
    return final, excluded, decision


def review_frame(*, ids, given_labels, class_names: Sequence[str], store: ReviewStore,
                 scores=None) -> pd.DataFrame:
    """One row per item: id, given_label, final_label ("" if excluded), decision, score, reviewer."""
    names = np.asarray(list(class_names), dtype=object)
    ids, y = _check_items(ids, given_labels, names)
    final, excluded, decision = final_labels(y, ids, store)
    effective = store.latest().set_index("item_id")
    if scores is not None:
        score = np.asarray(scores, dtype=np.float64)
        if score.shape != (len(ids),):
            raise DataError(f"scores must have one value per id ({len(ids)}), got shape {score.shape}")
    else:
        score = effective["score"].reindex(ids).to_numpy(dtype=np.float64, na_value=np.nan)
    if len(final) and final.max() >= len(names):
        raise DataError(f"a decision sets label {final.max()} but there are only {len(names)} classes")
    return pd.DataFrame({
        "id": ids, "given_label": names[y],
        "final_label": np.where(excluded, "", names[final]),
        "decision": decision, "score": score,
        "reviewer": effective["reviewer"].reindex(ids).fillna("").to_numpy(dtype=object),
    })


def export_csv(path, *, ids, given_labels, class_names: Sequence[str], store: ReviewStore,
               scores=None, drop_excluded: bool = False) -> Path:
    """Write the reviewed labels: columns id, given_label, final_label, decision, score, reviewer
    (class names; final_label empty for an excluded item, or the row dropped with drop_excluded)."""
    frame = review_frame(ids=ids, given_labels=given_labels, class_names=class_names,
                         store=store, scores=scores)
    if drop_excluded:
        frame = frame[frame["decision"] != "exclude"]
    return write_csv(path, frame)


def export_manifest(path, *, ids, given_labels, class_names: Sequence[str], store: ReviewStore) -> Path:
    """Write a CSV manifest ``path,label`` (label = final class name, excluded items dropped, path =
    id) that ``datasets.load_csv_manifest`` reads back; put it where the ids are relative to."""
    frame = review_frame(ids=ids, given_labels=given_labels, class_names=class_names, store=store)
    frame = frame[frame["decision"] != "exclude"]
    out = pd.DataFrame({"path": frame["id"], "label": frame["final_label"]})
    return write_csv(path, out)


_UNSAFE = re.compile(r"[^\w. -]+")   # keeps letters and digits of every script (猫, 犬, é); \w is Unicode


def _safe_name(text: str, fallback: str) -> str:
    name = _UNSAFE.sub("_", str(text)).strip(" .")
    return name or fallback


def export_folder(path_zip, *, images, ids, given_labels, class_names: Sequence[str],
                  store: ReviewStore, files=None) -> Path:
    """Write a zip of an image-folder tree ``<final class>/<name>`` (excluded items dropped).

    files: the user's original file per item (a path, or None): copied byte for byte, any size and
    format, keeping its extension. Items without one are written from ``images`` (uint8 (N, H, W, 3)
    or (N, H, W) grey; may be None when every item has a file) as ``<name>.png``. name = the id's
    file name without extension, made filesystem-safe; a repeated name in one folder gets ``-2``,
    ``-3``... appended.
    """
    names = list(class_names)
    frame = review_frame(ids=ids, given_labels=given_labels, class_names=names, store=store)
    files = [None] * len(frame) if files is None else list(files)
    if len(files) != len(frame):
        raise DataError(f"files must list one path (or None) per item ({len(frame)}), got {len(files)}")
    x = None if images is None else np.asarray(images)
    if x is None and any(f is None for f in files):
        raise DataError("some items have no original file, so images are needed to export them")
    if x is not None and (x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) != len(frame)):
        raise DataError(f"images must be uint8 (N, H, W, 3) with N={len(frame)}, "
                        f"got {x.dtype} {x.shape}")
    folders = {c: _safe_name(c, f"class_{i}") for i, c in enumerate(names)}
    if len(set(folders.values())) != len(folders):
        raise DataError(f"class names {names} give clashing folder names; rename the classes")
    keep = np.flatnonzero(frame["decision"].to_numpy() != "exclude")

    def write(tmp):
        used = set()
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:  # PNG is compressed
            for i in keep:
                folder = folders[frame["final_label"].iat[i]]
                stem = _safe_name(Path(str(frame["id"].iat[i]).replace("\\", "/")).stem, f"item_{i}")
                ext = ".png" if files[i] is None else "." + _safe_name(Path(files[i]).suffix.lower().lstrip("."),
                                                                           "png")
                member, n = f"{folder}/{stem}{ext}", 1
                while member in used:
                    n += 1
                    member = f"{folder}/{stem}-{n}{ext}"
                used.add(member)
                if files[i] is not None:
                    zf.write(files[i], member)
                else:
                    zf.writestr(member, _png(x[i]))

    return atomic_write(path_zip, write)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(buf, "PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- reviewed labels


def write_label_subset(out_dir, run_dir, *, ids, labels, true_labels=None, split=None, columns=None,
                       extra: Optional[dict] = None) -> Path:
    """Write a labels.csv (id, label, true_label, is_noisy[, split][, columns]) + noise.json for some of
    a run's images.

    The noise.json copies the run's and sets ``subset_of_dataset``, so a training run with this
    ``labels_path`` trains on exactly these images (see train.restrict_to_label_set); ``split``
    ("train" / "test" per row) places images in the training or the held-out set. Without
    ``true_labels`` the truth columns stay empty and noise.json says ``truth_known: false``.
    ``columns``: extra per-row columns (e.g. the review provenance)."""
    info = read_run_labels(run_dir)
    names = np.asarray(info.class_names, dtype=object)
    labels = np.asarray(labels, dtype=np.int64)
    known = true_labels is not None
    table = pd.DataFrame({"id": np.asarray(ids, dtype=str), "label": names[labels],
                          "true_label": names[np.asarray(true_labels)] if known else "",
                          "is_noisy": np.where(labels != np.asarray(true_labels), "true", "false") if known else ""})
    if split is not None:
        table["split"] = np.asarray(split, dtype=object)
    for name, values in (columns or {}).items():
        table[name] = np.asarray(values, dtype=object)
    meta = json.loads((Path(run_dir) / "noise.json").read_text(encoding="utf-8"))
    train = np.ones(len(labels), bool) if split is None else np.asarray(split) != "test"
    noisy = None if not known else (labels != np.asarray(true_labels))[train]
    meta.update({SUBSET_KEY: True, "truth_known": known,
                 "realized_rate": None if noisy is None else float(noisy.mean()),
                 "counts": {"labels": int(train.sum()), "noisy": None if noisy is None else int(noisy.sum()),
                            "given_per_class": np.bincount(labels[train], minlength=len(names)).tolist()},
                 "created": datetime.now().astimezone().isoformat(timespec="seconds"), **(extra or {})})
    if not known:
        meta.update(realized_matrix=None)   # the requested (declared) matrix stays: forward correction reads it
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "labels.csv", table)
    runs.write_json(out / "noise.json", meta)
    return out


DECISION_WORDS = {"accept": "accepted", "keep": "kept", "relabel": "relabelled", "exclude": "excluded",
                  "unreviewed": "unreviewed"}


def _provenance(info: RunLabels, store) -> dict:
    """Per image: original_label (class name), decision (DECISION_WORDS value), reviewer, reviewed_at."""
    latest = store.latest().set_index("item_id")
    ids = pd.Index(info.ids)
    names = np.asarray(info.class_names, dtype=object)
    return {"original_label": names[info.labels],
            "reviewer": latest["reviewer"].reindex(ids).fillna("").to_numpy(dtype=object),
            "reviewed_at": latest["time"].reindex(ids).fillna("").to_numpy(dtype=object)}


def corrected_label_set(run_dir, *, store=None) -> Path:
    """The reviewed labels as the new given labels, RUN/corrected/<time>/ (excluded images left out),
    ready to train on. Returns the folder.

    labels.csv holds per image: label (the reviewed label), original_label, decision (kept / relabelled /
    accepted / excluded / unreviewed), reviewer, reviewed_at, split. The held-out images keep their
    place (split "test", with their reviewed labels), so a retrain is scored on the same held-out
    images. With the user's own labels noise.json says ``truth_known: false``: a reviewer's fix is
    never called noise. With injected noise the true labels are kept for evaluation only."""
    run = run_path(run_dir)
    info = read_run_labels(run)
    store = store or ReviewStore.for_run(run)
    final, excluded, decision = final_labels(info.labels, info.ids, store)
    keep = ~excluded
    if not (keep & (info.splits == "train")).any():
        raise UserError("every training image is excluded; undo some exclusions before retraining")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    words = np.asarray([DECISION_WORDS[d] for d in decision], dtype=object)
    prov = {k: v[keep] for k, v in _provenance(info, store).items()}
    changed = int(((final != info.labels) & keep).sum())
    review = {d: int((decision == d).sum()) for d in ("accept", "keep", "relabel", "exclude")}
    return write_label_subset(
        run / CORRECTED_DIR / stamp, run, ids=info.ids[keep], labels=final[keep],
        true_labels=None if info.true_labels is None else info.true_labels[keep], split=info.splits[keep],
        columns={**prov, "decision": words[keep]},
        extra={"reviewed_from": run.name, "excluded_ids": info.ids[excluded].tolist(), "review": review,
               "changed": changed, "excluded": int(excluded.sum()),
               "config": {"model": "none", "rate": 0.0} if info.true_labels is None
               else json.loads((run / "noise.json").read_text(encoding="utf-8")).get("config")})


def retrain_config(run_dir, labels_dir):
    """The run's TrainConfig, trained on the label set ``labels_dir`` (its images only)."""
    config = runs.read_config(run_dir)
    return config.replace(labels_path=str(Path(labels_dir).resolve()), max_train=None)


def retrain_title(run_name: str, changed: int, excluded: int) -> str:
    return f"{run_name} after review ({changed} changed, {excluded} excluded)"


def retrain(run_dir, *, store=None, root=None, owner=None) -> Path:
    """Start a background training run with the same config on the reviewed labels; returns its folder
    (listed with the other runs, so the Curves page can compare it with the original). The new run's
    reviewed.json names it "<run> after review (N changed, M excluded)" (evaluation.display_name).
    ``owner``: whose new run it is (the reviewer's workspace; None: ``workspaces.default_owner()``)."""
    from noisycore import jobs
    from noisycore.evaluation import REVIEWED_FILE, display_name

    run = run_path(run_dir)
    labels_dir = corrected_label_set(run, store=store)
    meta = json.loads((labels_dir / "noise.json").read_text(encoding="utf-8"))
    config = retrain_config(run, labels_dir)
    new = jobs.start(config, root=root or run.parent, name=f"reviewed-{runs.describe(runs.read_config(run))}",
                     owner=owner)
    title = retrain_title(display_name(runs.load_run(run)), meta["changed"], meta["excluded"])
    runs.write_json(new / REVIEWED_FILE, {"title": title, "from": str(run), "changed": meta["changed"],
                                          "excluded": meta["excluded"], "labels": str(labels_dir)})
    runs.write_json(labels_dir / "retrain.json", {"run": str(new), "from": str(run)})
    return new


# ----------------------------------------------------------------------------- exports
EXPORT_FORMATS = {"csv": "corrected labels: id, given_label, final_label, decision, score, reviewer",
                  "csv_kept": "the same without the excluded images",
                  "folder": "a zip of an image-folder tree <final class>/<image> (your original files where "
                            "they exist, else PNG; excluded images left out)"}


def _scores(run_dir, ids, detector: Optional[str]):
    metas = detection_meta(run_dir)
    if detector is None:
        detector = next(iter(metas), None)
    frame = load_issues(run_dir, detector) if detector else None
    if frame is None:
        if detector is not None and detector not in metas:
            raise UserError(f"detector {detector!r} has not been run on this run; run it first or omit it")
        return None
    return frame.set_index("id")["label_quality"].reindex(np.asarray(ids, dtype=str)).to_numpy(dtype=np.float64)


def export(run_dir, *, fmt: str, out, detector: Optional[str] = None, store=None, dataset=None) -> Path:
    """Export the reviewed labels of a run (fmt: a key of EXPORT_FORMATS) to ``out``; returns the path.

    score = the detector's label_quality (default: the first detector that was run)."""
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"format={fmt!r} is not valid; choose one of: {', '.join(EXPORT_FORMATS)}")
    run = run_path(run_dir)
    info = read_run_labels(run)
    files = images = None
    if fmt == "folder":   # before the store: a failure writes nothing
        from noisycore.datasets import original_files

        files = original_files(runs.run_data_config(run, training_subset=False), info.ids)
        images = run_images(run, dataset) if any(f is None for f in files) else None
    store = store or ReviewStore.for_run(run)
    common = dict(ids=info.ids, given_labels=info.labels, class_names=info.class_names, store=store)
    if fmt == "folder":
        return export_folder(out, images=images, files=files, **common)
    return export_csv(out, scores=_scores(run, info.ids, detector), drop_excluded=fmt == "csv_kept", **common)
