"""Label-issue detection on a training run, the review queue, exports and the retrain on reviewed labels.

    detect_all(run_dir, source="in_sample")     # every detector -> RUN/issues/<detector>.csv + .json
    load_issues(run_dir, "confident_learning")  # the ranked table the Review page walks through
    review_queue(issues, decisions, state="unreviewed")
    export(run_dir, fmt="csv", out="labels.csv")
    retrain(run_dir)                            # a new background run on the reviewed labels

Predicted probabilities come from the run's own best model (``in_sample``: fast, but the model has
seen, and partly memorized, the very labels it judges) or from K-fold cross-validation
(``cross_validation``: ``RUN/cv_probs.npy`` written by :mod:`noisycore.crossval`; out-of-sample as
the GUIDE asks). Everything here reads the run folder; only :func:`compute_features` (nearest
neighbours in the model's feature space) loads TensorFlow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from noisycore import issues as issues_mod
from noisycore import runs
from noisycore.errors import DataError, UserError

ISSUES_DIR = "issues"              # RUN/issues/<detector>.csv (ranked table) + <detector>.json (meta)
CV_PROBS = "cv_probs.npy"          # (N, K) out-of-sample probabilities, written by crossval
FEATURES = "features.npy"          # (N, D) float16 L2-normalized penultimate features of best.keras
CORRECTED_DIR = "corrected"        # RUN/corrected/<stamp>/labels.csv: reviewed labels for a retrain
SOURCES = {"in_sample": "the run's own best model (in-sample: it has seen these labels)",
           "cross_validation": "K-fold cross-validation (out-of-sample: each image judged by a model "
                               "that never saw it)"}
DECISION_STATES = ("all", "unreviewed", "reviewed", "accept", "keep", "relabel", "exclude")


@dataclass(frozen=True, eq=False)
class RunLabels:
    """The images a run's labels can be judged and reviewed on, in a fixed order (arrays of length N).

    With known truth: the run's training images (labels.csv order). With unknown truth (the user's own
    labels): the training images followed by the held-out (test) images, so every image can be
    judged, reviewed and exported; ``split`` says which is which."""

    ids: np.ndarray                   # str (N,)
    labels: np.ndarray                # int64 (N,) given labels
    true_labels: Optional[np.ndarray]  # int64 (N,) or None when the truth is unknown
    class_names: tuple
    split: Optional[np.ndarray] = None  # str (N,): "train" or "test" (None = all "train", older callers)

    @property
    def is_noisy(self) -> Optional[np.ndarray]:
        return None if self.true_labels is None else self.labels != self.true_labels

    @property
    def splits(self) -> np.ndarray:
        return np.full(len(self.ids), "train", dtype=object) if self.split is None else self.split


# ----------------------------------------------------------------------------- reading a run
def _run_dir(run_dir) -> Path:
    path = Path(run_dir)
    if not (path / "labels.csv").is_file() or not (path / "predictions.npz").is_file():
        raise UserError(f"{path} is not a finished training run (it needs labels.csv and predictions.npz); "
                        "train a model first and wait for it to finish")
    return path


def _held_out(path: Path) -> tuple:
    """(ids, given labels) of the run's held-out images from predictions.npz."""
    with np.load(path / "predictions.npz", allow_pickle=False) as z:
        if "test_ids" not in z.files or "test_labels" not in z.files:
            return np.zeros(0, str), np.zeros(0, np.int64)
        return z["test_ids"].astype(str), z["test_labels"].astype(np.int64)


def read_run_labels(run_dir) -> RunLabels:
    """Every image a run's labels can be reviewed on: labels.csv (id, label, true_label, is_noisy) with
    the class names of noise.json, plus, when the truth is unknown, the held-out images of
    predictions.npz (their given labels). ``true_labels`` is None unless noise.json knows the truth
    (see :func:`noisycore.noise.truth_known_meta`)."""
    from noisycore.noise import truth_known_meta

    path = _run_dir(run_dir)
    try:
        meta = json.loads((path / "noise.json").read_text(encoding="utf-8"))
        names = tuple(meta["dataset"]["class_names"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{path / 'noise.json'} is missing or has no class names; the run folder is incomplete") from None
    df = pd.read_csv(path / "labels.csv", dtype=str, keep_default_na=False)
    lookup = {n: i for i, n in enumerate(names)}
    labels = df["label"].map(lookup)
    if labels.isna().any():
        raise DataError(f"{path / 'labels.csv'} has labels that are not class names: "
                        f"{sorted(set(df['label'][labels.isna()]))[:3]}")
    ids, labels = df["id"].to_numpy(dtype=str), labels.to_numpy(dtype=np.int64)
    split = np.full(len(ids), "train", dtype=object)
    if truth_known_meta(meta) and "true_label" in df and (df["true_label"] != "").all():
        true = df["true_label"].map(lookup).to_numpy(dtype=np.int64)
        return RunLabels(ids=ids, labels=labels, true_labels=true, class_names=names, split=split)
    test_ids, test_labels = _held_out(path)
    fresh = ~np.isin(test_ids, ids)
    return RunLabels(ids=np.concatenate([ids, test_ids[fresh]]), labels=np.concatenate([labels, test_labels[fresh]]),
                     true_labels=None, class_names=names,
                     split=np.concatenate([split, np.full(int(fresh.sum()), "test", dtype=object)]))


def in_sample_probs(run_dir, ids: Sequence[str]) -> np.ndarray:
    """The best model's probabilities of predictions.npz, (N, K), reordered to ``ids`` (every id required):
    train_probs for training images, test_probs for held-out ones (out-of-sample by construction)."""
    with np.load(Path(run_dir) / "predictions.npz", allow_pickle=False) as z:
        probs = np.concatenate([z["train_probs"], z["test_probs"]])
        pred_ids = np.concatenate([z["train_ids"].astype(str), z["test_ids"].astype(str)])
    return probs[_positions(pred_ids, ids, what="predictions.npz")].astype(np.float64)


def _positions(source_ids, wanted_ids, *, what: str) -> np.ndarray:
    index = pd.Index(np.asarray(source_ids, dtype=str))
    pos = index.get_indexer(np.asarray(wanted_ids, dtype=str))
    if (pos < 0).any():
        missing = np.asarray(wanted_ids)[pos < 0]
        raise DataError(f"{what} has no prediction for {missing.size} training image(s) (e.g. {missing[0]}); "
                        "it belongs to another run or is incomplete")
    return pos


def pred_probs(run_dir, *, source: str = "in_sample", ids=None) -> np.ndarray:
    """Predicted probabilities (N, K) of every training image from ``source`` (a key of SOURCES)."""
    if source not in SOURCES:
        raise UserError(f"source={source!r} is not valid; choose one of: {', '.join(SOURCES)}")
    info = read_run_labels(run_dir)
    ids = info.ids if ids is None else ids
    if source == "in_sample":
        return _check_num_classes(in_sample_probs(run_dir, ids), info, "predictions.npz")
    path = Path(run_dir) / CV_PROBS
    if not path.is_file():
        raise UserError(f"{path.parent.name} has no cross-validated predictions yet; run cross-validation "
                        "first (noisycore detect --folds 4, or the Review page), or use source in_sample")
    probs = np.load(path, allow_pickle=False).astype(np.float64)
    n_train = int((info.splits == "train").sum())
    if probs.shape[0] == n_train < len(ids) and np.array_equal(np.asarray(ids, dtype=str), info.ids):
        # a cross-validation from before held-out images were reviewable: they keep the run's own
        # predictions, which are out-of-sample too (the model never trained on them)
        probs = np.concatenate([probs, in_sample_probs(run_dir, info.ids[n_train:])])
    if probs.shape[0] != len(ids):
        raise DataError(f"{path} has {probs.shape[0]} rows but the run has {len(ids)} training images; "
                        "delete it and run cross-validation again")
    return _check_num_classes(probs, info, CV_PROBS)


def _check_num_classes(probs: np.ndarray, info: RunLabels, what: str) -> np.ndarray:
    """probs (N, K) unchanged if K is the run's number of classes; else a DataError naming both numbers."""
    k, found = len(info.class_names), probs.shape[-1] if probs.ndim == 2 else None
    if found != k:
        raise DataError(f"{what} holds predictions for {found} classes but the run's labels have {k} classes "
                        f"({', '.join(info.class_names)}); it comes from a model of another dataset: "
                        "train this run again")
    return probs


def read_margins(run_dir) -> Optional[np.ndarray]:
    """margins.npy (E, N) recorded during training (for AUM), or None when the run has none."""
    path = Path(run_dir) / "margins.npy"
    return np.load(path, allow_pickle=False).astype(np.float64) if path.is_file() else None


# ----------------------------------------------------------------------------- detection
def available_detectors(run_dir) -> list[str]:
    """The DETECTORS this run supports: the margin detectors need margins.npy of every reviewable image
    (the training margins do not cover the held-out images that a truth-unknown run also reviews);
    ``aum`` also needs threshold samples, i.e. a run trained with aum_threshold_samples."""
    from noisycore import aum

    path = Path(run_dir) / "margins.npy"
    has_margins = path.is_file() and np.load(path, mmap_mode="r").shape[1] == len(read_run_labels(run_dir).ids)
    has_threshold = has_margins and aum.has_threshold_samples(run_dir)
    return [d for d in issues_mod.DETECTORS
            if d not in issues_mod.MARGIN_DETECTORS or (has_threshold if d == "aum" else has_margins)]


def detect(run_dir, *, detector: str = "confident_learning", source: str = "in_sample",
           save: bool = True, **params) -> pd.DataFrame:
    """Run one detector on a run; the ranked table (see :func:`issues.to_frame`) plus true_label and
    is_noisy when the truth is known. Saved as RUN/issues/<detector>.csv with a .json of source,
    params and, with the truth, precision / recall / F1 (:func:`issues.evaluate`)."""
    run = _run_dir(run_dir)
    info = read_run_labels(run)
    probs = pred_probs(run, source=source, ids=info.ids)
    margins = read_margins(run) if detector in issues_mod.MARGIN_DETECTORS else None
    if detector in issues_mod.MARGIN_DETECTORS and margins is None:
        raise UserError(f"{run.name} recorded no margins, so the {detector} detector cannot run; pick another detector")
    if margins is not None and margins.shape[1] != len(info.ids):
        raise DataError(f"margins.npy has {margins.shape[1]} columns but the run has {len(info.ids)} images")
    if detector == "aum":
        from noisycore import aum

        params.update(aum.detector_margins(info, margins))
        margins = params.pop("margins")
    found = issues_mod.find_label_issues(info.labels, probs, detector=detector, margins=margins, **params)
    frame = issues_mod.to_frame(found, ids=info.ids, labels=info.labels, class_names=info.class_names)
    meta = {"detector": detector, "source": source, "params": found.params, "n": len(info.ids),
            "flagged": found.num_issues, "created": datetime.now().astimezone().isoformat(timespec="seconds"),
            # confident learning's estimate of how many labels are wrong (no truth needed)
            "estimated_issues": issues_mod.estimate_noise(info.labels, probs).num_issues}
    if info.true_labels is not None:
        names = np.asarray(info.class_names, dtype=object)
        frame["true_label"] = names[info.true_labels[frame["index"]]]
        frame["is_noisy"] = info.is_noisy[frame["index"]]
        meta["evaluation"] = issues_mod.evaluate(found, info.is_noisy)
        curve = issues_mod.precision_recall_curve(found.label_quality, info.is_noisy, max_points=200)
        meta["curve"] = curve.to_dict(orient="list")
    if save:
        out = run / ISSUES_DIR
        out.mkdir(exist_ok=True)
        _atomic_csv(frame, out / f"{detector}.csv")
        runs.write_json(out / f"{detector}.json", meta)
    return frame


def detect_all(run_dir, *, source: str = "in_sample", detectors=None) -> pd.DataFrame:
    """Run every available detector (or ``detectors``) with default options and save each; returns
    :func:`evaluation_table`."""
    for name in detectors or available_detectors(run_dir):
        detect(run_dir, detector=name, source=source)
    return evaluation_table(run_dir)


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def detection_meta(run_dir) -> dict:
    """detector -> the .json written by :func:`detect` (only detectors that were run)."""
    out = {}
    for name in issues_mod.DETECTORS:
        path = Path(run_dir) / ISSUES_DIR / f"{name}.json"
        if path.is_file() and (path.with_suffix(".csv")).is_file():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def evaluation_table(run_dir) -> pd.DataFrame:
    """One row per detector run: detector, source, flagged, and (truth known) precision, recall, f1,
    average_precision, true_positives, n_noisy."""
    rows = []
    for name, meta in detection_meta(run_dir).items():
        ev = meta.get("evaluation") or {}
        rows.append({"detector": name, "source": meta["source"], "flagged": meta["flagged"],
                     **{k: ev.get(k) for k in ("precision", "recall", "f1", "average_precision",
                                               "true_positives", "n_noisy")}})
    return pd.DataFrame(rows, columns=["detector", "source", "flagged", "precision", "recall", "f1",
                                       "average_precision", "true_positives", "n_noisy"])


def pr_curves(run_dir) -> pd.DataFrame:
    """Columns detector, threshold, precision, recall of every saved detection (truth known only)."""
    parts = [pd.DataFrame(meta["curve"]).assign(detector=name)
             for name, meta in detection_meta(run_dir).items() if meta.get("curve")]
    if not parts:
        return pd.DataFrame(columns=["detector", "threshold", "precision", "recall"])
    return pd.concat(parts, ignore_index=True)[["detector", "threshold", "precision", "recall"]]


def load_issues(run_dir, detector: str) -> Optional[pd.DataFrame]:
    """The saved ranked table of ``detector`` (most suspicious first), or None if it was not run."""
    if detector not in issues_mod.DETECTORS:
        raise UserError(f"detector={detector!r} is unknown; choose one of: {', '.join(issues_mod.DETECTORS)}")
    path = Path(run_dir) / ISSUES_DIR / f"{detector}.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype={"id": str, "given_label": str, "proposed_label": str, "true_label": str},
                        keep_default_na=False)
    frame["is_label_issue"] = frame["is_label_issue"].astype(str).str.lower() == "true"
    if "is_noisy" in frame:
        frame["is_noisy"] = frame["is_noisy"].astype(str).str.lower() == "true"
    return frame


# ----------------------------------------------------------------------------- the review queue
def review_queue(issues: pd.DataFrame, decisions: pd.DataFrame, *, class_names: Sequence[str],
                 given: Optional[str] = None, proposed: Optional[str] = None, state: str = "all",
                 flagged_only: bool = True) -> pd.DataFrame:
    """The items to review, most suspicious first: the ranked ``issues`` (flagged ones only by
    default), filtered by given class, proposed class and decision state (one of DECISION_STATES,
    matched against ``decisions`` = ReviewStore.latest()). Adds ``decision`` and ``final_label``
    (class name; the given label while unreviewed, "" when excluded)."""
    if state not in DECISION_STATES:
        raise UserError(f"state={state!r} is not valid; choose one of: {', '.join(DECISION_STATES)}")
    q = issues[issues["is_label_issue"]] if flagged_only else issues
    ids = decisions["item_id"].astype(str)
    names = np.asarray(list(class_names) + [""], dtype=object)   # index -1 -> "" (excluded)
    new = names[decisions["new_label"].fillna(-1).astype(int).to_numpy()] if len(decisions) else []
    q = q.assign(decision=q["id"].map(dict(zip(ids, decisions["decision"]))).fillna("unreviewed"))
    q = q.assign(final_label=q["id"].map(dict(zip(ids, new))).fillna(q["given_label"]))
    if given:
        q = q[q["given_label"] == given]
    if proposed:
        q = q[q["proposed_label"] == proposed]
    if state == "unreviewed":
        q = q[q["decision"] == "unreviewed"]
    elif state == "reviewed":
        q = q[q["decision"] != "unreviewed"]
    elif state != "all":
        q = q[q["decision"] == state]
    return q.reset_index(drop=True)


def reviewer_accuracy(queue: pd.DataFrame) -> Optional[dict]:
    """Teaching mode: how often the reviewer's decisions made the label right (truth known only).

    A decision is right when its final label equals the true label; an exclusion is right when the
    given label was wrong. Returns correct, decided and accuracy = correct / decided (None if none)."""
    if "true_label" not in queue or "final_label" not in queue:
        return None
    decided = queue[queue["decision"] != "unreviewed"]
    if decided.empty:
        return {"correct": 0, "decided": 0, "accuracy": None}
    excluded = decided["decision"] == "exclude"
    right = np.where(excluded, decided["given_label"] != decided["true_label"],
                     decided["final_label"] == decided["true_label"])
    return {"correct": int(right.sum()), "decided": int(len(decided)), "accuracy": float(right.mean())}


def top_k(probs_row, class_names, *, k: int = 5) -> pd.DataFrame:
    """The k most probable classes of one row: class, probability (descending)."""
    p = np.asarray(probs_row, dtype=np.float64)
    order = np.argsort(-p, kind="stable")[:k]
    return pd.DataFrame({"class": np.asarray(class_names, dtype=object)[order], "probability": p[order]})


# ----------------------------------------------------------------------------- images and neighbours
def run_images(run_dir, dataset=None) -> np.ndarray:
    """The images of :func:`read_run_labels` (training, then held-out when the truth is unknown),
    uint8 (N, H, W, 3), in the same order.

    ``dataset``: the loaded Dataset of the run's config (e.g. from a cache); loaded if None."""
    from noisycore.datasets import load_dataset
    from noisycore.noise import _norm_ids

    ids = read_run_labels(run_dir).ids
    if dataset is None:
        dataset = load_dataset(run_data_config(run_dir))
    all_ids = np.concatenate([_norm_ids(dataset.ids_train), _norm_ids(dataset.ids_test)])
    pos = _positions(all_ids, _norm_ids(ids), what="the run's dataset")
    n = len(dataset.ids_train)
    if (pos < n).all():
        return dataset.x_train[pos]
    return np.concatenate([dataset.x_train, dataset.x_test])[pos]


def run_data_config(run_dir):
    """The DataConfig whose training set holds every image of the run (the config's data, without the
    training subset: the run's labels.csv picks its images)."""
    config = runs.read_config(run_dir)
    return config.data


def compute_features(run_dir, *, images=None, batch_size: int = 512) -> np.ndarray:
    """Penultimate-layer features of the run's best model for every training image, L2-normalized,
    saved as RUN/features.npy (float16, (N, D)). Loads TensorFlow."""
    import keras

    from noisycore import losses  # noqa: F401  (registers the custom objects best.keras may hold)
    from noisycore.models import feature_extractor
    from noisycore.pipeline import make_dataset

    run = _run_dir(run_dir)
    if not (run / "best.keras").is_file():
        raise UserError(f"{run.name} has no best.keras; the run did not finish an epoch")
    x = run_images(run) if images is None else images
    model = keras.models.load_model(run / "best.keras", compile=False, safe_mode=True)  # no lambdas from files
    k, names = int(model.outputs[0].shape[-1]), read_run_labels(run).class_names
    if k != len(names):
        raise UserError(f"{run.name}/best.keras outputs {k} classes but the run's labels have {len(names)} "
                        f"classes ({', '.join(names)}); the model belongs to another dataset: train this run again")
    feats = feature_extractor(model).predict(make_dataset(x, num_classes=k, batch_size=batch_size), verbose=0)
    feats = np.asarray(feats, dtype=np.float32).reshape(len(x), -1)
    feats /= np.clip(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12, None)
    tmp = run / f".{FEATURES}.tmp"
    with open(tmp, "wb") as f:
        np.save(f, feats.astype(np.float16), allow_pickle=False)
    tmp.replace(run / FEATURES)
    return feats


def read_features(run_dir) -> Optional[np.ndarray]:
    """RUN/features.npy, or None when missing or not one row per reviewable image (e.g. computed before
    the held-out images of a truth-unknown run became reviewable: compute it again)."""
    path = Path(run_dir) / FEATURES
    if not path.is_file():
        return None
    feats = np.load(path, allow_pickle=False).astype(np.float32)
    return feats if len(feats) == len(read_run_labels(run_dir).ids) else None


def nearest_neighbours(features, index: int, *, k: int = 8) -> np.ndarray:
    """The k images most similar to image ``index`` (cosine similarity of L2-normalized features,
    ``s_j = f_j . f_index``), most similar first, the image itself left out. features (N, D) -> (k,)."""
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2 or not 0 <= int(index) < len(f):
        raise UserError(f"index={index} is outside 0..{len(f) - 1} (features shape {f.shape})")
    sim = f @ f[int(index)]
    sim[int(index)] = -np.inf
    k = min(int(k), len(f) - 1)
    top = np.argpartition(-sim, k - 1)[:k] if k > 0 else np.zeros(0, int)
    return top[np.argsort(-sim[top], kind="stable")]


# ----------------------------------------------------------------------------- reviewed labels
SUBSET_KEY = "subset_of_dataset"   # noise.json flag read by train.restrict_to_label_set (same string)


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
    _atomic_csv(table, out / "labels.csv")
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
    from noisycore.review import ReviewStore, final_labels

    run = _run_dir(run_dir)
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


def retrain(run_dir, *, store=None, root=None) -> Path:
    """Start a background training run with the same config on the reviewed labels; returns its folder
    (listed with the other runs, so the Curves page can compare it with the original). The new run's
    reviewed.json names it "<run> after review (N changed, M excluded)" (evaluation.run_title)."""
    from noisycore import jobs
    from noisycore.evaluation import REVIEWED_FILE, run_title

    run = _run_dir(run_dir)
    labels_dir = corrected_label_set(run, store=store)
    meta = json.loads((labels_dir / "noise.json").read_text(encoding="utf-8"))
    config = retrain_config(run, labels_dir)
    new = jobs.start(config, root=root or run.parent, name=f"reviewed-{runs.describe(runs.read_config(run))}")
    title = retrain_title(run_title(runs.load_run(run)), meta["changed"], meta["excluded"])
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
    from noisycore import review

    if fmt not in EXPORT_FORMATS:
        raise UserError(f"format={fmt!r} is not valid; choose one of: {', '.join(EXPORT_FORMATS)}")
    run = _run_dir(run_dir)
    info = read_run_labels(run)
    files = images = None
    if fmt == "folder":   # before the store: a failure writes nothing
        from noisycore.datasets import original_files

        files = original_files(run_data_config(run), info.ids)
        images = run_images(run, dataset) if any(f is None for f in files) else None
    store = store or review.ReviewStore.for_run(run)
    common = dict(ids=info.ids, given_labels=info.labels, class_names=info.class_names, store=store)
    if fmt == "folder":
        return review.export_folder(out, images=images, files=files, **common)
    return review.export_csv(out, scores=_scores(run, info.ids, detector), drop_excluded=fmt == "csv_kept", **common)


# ----------------------------------------------------------------------------- command line
def add_cli(subparsers) -> None:
    """Add ``noisycore detect`` and ``noisycore export``."""
    p = subparsers.add_parser("detect", help="find likely wrong labels in a training run")
    p.add_argument("--run", required=True, help="a finished run folder")
    p.add_argument("--detector", default="confident_learning", choices=list(issues_mod.DETECTORS))
    p.add_argument("--folds", type=int, default=None,
                   help="out-of-sample probabilities by K-fold cross-validation (K >= 2 trainings, in this "
                        "terminal); 0 = the run's own (in-sample) predictions; default: reuse an earlier "
                        "cross-validation of the run if there is one, else in-sample")
    p.add_argument("--out", required=True, help="CSV to write (every training image, most suspicious first)")
    p.set_defaults(func=cmd_detect)

    p = subparsers.add_parser("export", help="export a run's reviewed labels")
    p.add_argument("--run", required=True, help="a run folder with review decisions")
    p.add_argument("--format", choices=list(EXPORT_FORMATS), default="csv",
                   help="; ".join(f"{k}: {v}" for k, v in EXPORT_FORMATS.items()))
    p.add_argument("--detector", default=None, help="whose label_quality goes into the score column")
    p.add_argument("--out", required=True, help="file to write (.csv or .zip)")
    p.set_defaults(func=cmd_export)


def _source_for(run: Path, folds: Optional[int]) -> str:
    if folds is None:
        return "cross_validation" if (run / CV_PROBS).is_file() else "in_sample"
    if folds == 0:
        return "in_sample"
    if folds < 2:
        raise UserError(f"--folds {folds} is not valid: use 0 (in-sample) or at least 2 folds")
    from noisycore.cli import import_quietly
    from noisycore.console import StatusLine

    crossval = import_quietly("noisycore.crossval")   # loads TensorFlow: its start-up noise hidden
    line = StatusLine()     # redrawn in place on a terminal; one line per fold and epoch when piped
    try:
        crossval.cross_validate(run, folds=folds, progress=lambda status: line.show(crossval_text(status)))
    except BaseException as e:
        line.close()
        runs.update_status(run / crossval.CV_DIR, state="stopped" if isinstance(e, KeyboardInterrupt) else "failed",
                           error=" ".join(str(e).split()) or type(e).__name__, finished=runs.now_iso())
        raise
    line.close()
    runs.update_status(run / crossval.CV_DIR, state="finished", error=None, finished=runs.now_iso())
    return "cross_validation"


def crossval_text(status: dict) -> str:
    """'fold 2 of 4, epoch 3 of 10' from a cross-validation status dict."""
    text = f"fold {status.get('fold') or 0} of {status.get('folds') or '?'}"
    if status.get("epochs"):
        text += f", epoch {status.get('epoch') or 0} of {status['epochs']}"
    return text


def cmd_detect(args) -> int:
    run = _run_dir(args.run)
    if args.detector not in available_detectors(run):
        raise UserError(f"{run.name} cannot run {args.detector}: it recorded no margins (aum also needs a run "
                        "trained with aum_threshold_samples); pick another detector")
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a .csv file name")
    source = _source_for(run, args.folds)
    frame = detect(run, detector=args.detector, source=source)
    cols = ["id", "given_label", "proposed_label", "label_quality", "is_label_issue"]
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_csv(frame[cols], out)
    n_flag = int(frame["is_label_issue"].sum())
    print(f"{args.detector} ({source.replace('_', '-')} predictions): {n_flag} of {len(frame)} labels flagged; "
          f"written to {out}")
    meta = detection_meta(run)[args.detector]
    print(f"confident learning estimates {meta['estimated_issues']} wrong label(s) among the {len(frame)} images; "
          "review the most suspicious ones first")
    if source == "in_sample":
        print("note: in-sample predictions come from a model that trained on these labels; "
              "use --folds 4 for out-of-sample ones")
    ev = detection_meta(run)[args.detector].get("evaluation")
    if ev:
        print(f"against the true labels: precision {ev['precision']:.1%}, recall {ev['recall']:.1%}, "
              f"F1 {ev['f1']:.3f} ({ev['true_positives']} of {ev['n_noisy']} wrong labels found)")
    return 0


def cmd_export(args) -> int:
    path = export(args.run, fmt=args.format, out=args.out, detector=args.detector)
    print(f"written: {path}")
    return 0
