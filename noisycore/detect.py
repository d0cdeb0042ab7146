"""Label-issue detection on a training run: the run's images, labels and predicted probabilities, the
detectors run on them, their ranked tables, and the neighbour features the Review page shows.

    detect_all(run_dir, source="in_sample")     # every detector -> RUN/issues/<detector>.csv + .json
    load_issues(run_dir, "confident_learning")  # the ranked table the Review page walks through

Predicted probabilities come from the run's own best model (``in_sample``: fast, but the model has
seen, and partly memorized, the very labels it judges) or from K-fold cross-validation
(``cross_validation``: ``RUN/cv_probs.npy`` written by :mod:`noisycore.crossval`; out-of-sample as
the GUIDE asks). The algorithms are in :mod:`noisycore.detectors`; the review queue and decisions in
:mod:`noisycore.review`; exports and the retrain in :mod:`noisycore.corrections`. Everything here
reads the run folder; only :func:`compute_features` loads TensorFlow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from noisycore import detectors
from noisycore import runs
from noisycore.config import MARGINS_AUTO_MAX_N
from noisycore.errors import DataError, UserError
from noisycore.util import save_npy, write_csv

ISSUES_DIR = "issues"              # RUN/issues/<detector>.csv (ranked table) + <detector>.json (meta)
CV_PROBS = "cv_probs.npy"          # (N, K) out-of-sample probabilities, written by crossval
FEATURES = "features.npy"          # (N, D) float16 L2-normalized penultimate features of best.keras
SOURCES = {"in_sample": "the run's own best model (in-sample: it has seen these labels)",
           "cross_validation": "K-fold cross-validation (out-of-sample: each image judged by a model "
                               "that never saw it)",
           "baseline": "the linear baseline, a logistic regression on the pixels (4-fold, out-of-sample: "
                       "each image judged by a model that never saw it)",
           "embeddings": "a logistic regression on pretrained features (ImageNet EfficientNet-Lite2 embeddings; "
                         "4-fold, out-of-sample)",
           "ensemble": "the mean of the network's cross-validation and the pretrained features' predictions "
                       "(both out-of-sample: two different models' opinions of each image)"}
WEAK_ACCURACY = 0.8   # below this out-of-sample accuracy, model errors swamp label errors in confident learning's N


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
def run_path(run_dir) -> Path:
    """The folder of a finished run (labels.csv and predictions.npz), or a UserError saying what to do."""
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
    from noisycore.labelsets import truth_known_meta

    path = run_path(run_dir)
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
    if source == "ensemble":   # two out-of-sample opinions: their mean is out of sample too
        parts = [pred_probs(run_dir, source=s, ids=ids) for s in ("cross_validation", "embeddings")]
        return (parts[0] + parts[1]) / 2
    if source in ("baseline", "embeddings"):
        from noisycore import baseline

        probs = baseline.cv_probs(run_dir, ids, kind="pixels" if source == "baseline" else "embeddings")
        if probs is None:
            raise UserError(f"{Path(run_dir).name} has no {source} predictions for these images (a run from before "
                            "them, too few images, or not own photos); use cross_validation or in_sample")
        return _check_num_classes(probs, info, source)
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


def source_accuracy(run_dir, source: str) -> Optional[dict]:
    """How well ``source``'s predictions agree with the given labels out of sample:
    {"accuracy", "n", "what"}, or None when the source has no out-of-sample predictions yet.
    in_sample: only the run's held-out images are out of sample (its test accuracy)."""
    info = read_run_labels(run_dir)
    if source == "in_sample":
        summary = runs.read_summary(run_dir) or {}
        acc = summary.get("test_accuracy")
        return None if acc is None else {"accuracy": float(acc), "n": int(summary.get("num_test") or 0),
                                         "what": "held-out accuracy of the run's model"}
    try:
        probs = pred_probs(run_dir, source=source, ids=info.ids)
    except UserError:
        return None
    what = {"cross_validation": "network, K-fold", "baseline": "linear baseline, 4-fold",
            "embeddings": "pretrained features, 4-fold", "ensemble": "network and pretrained features"}[source]
    if source == "embeddings":
        from noisycore import baseline

        chosen = ((baseline.read(run_dir) or {}).get("embeddings") or {}).get("C")
        what += "" if chosen is None else f", L2 strength C = {chosen:g} chosen out of sample"
    return {"accuracy": float((probs.argmax(1) == info.labels).mean()), "n": int(len(info.ids)),
            "what": f"out-of-sample accuracy ({what})"}


# the cheap yardstick first; each later source must be clearly better than the best so far to take over
PREFERENCE = ("baseline", "embeddings", "cross_validation", "ensemble", "in_sample")


def best_source(run_dir) -> tuple:
    """(source, {source: source_accuracy}): the predictions whose model agrees best with the given labels
    out of sample: the linear baseline's 4 folds, unless the network's K folds are clearly better (by two
    standard errors), unless the run's own model (judged by its held-out accuracy; its predictions of the
    training images have seen their labels) is clearly better still. A queue is only as good as the model
    under it; on 8-pixel scans or a few hundred photos the linear model can be the better one.

    The run's own model is measured on its held-out images only, so it is compared with the best source so far
    *on those same images* when they are among the reviewed ones (own photos): a lucky held-out split lifts
    both alike (900 photos: the held-out 180 gave the run's model 92.8% and the features' 4-fold logistic
    regression 93.3%, against 88.4% over all 900). ``found["in_sample"]["compared_with"]`` says with what."""
    found = {s: source_accuracy(run_dir, s) for s in PREFERENCE}
    found = {s: a for s, a in found.items() if a is not None}
    best = None
    for source in PREFERENCE:   # each later source must be clearly better (2 standard errors) to take over
        a = found.get(source)
        if a is None:
            continue
        if best is None:
            best = source
            continue
        base = found[best]["accuracy"]
        if source == "in_sample":
            same = _held_out_accuracy(run_dir, best)
            if same is not None:
                found[source] = a = {**a, "compared_with": {"source": best, **same}}
                base = same["accuracy"]
        if a["accuracy"] > base + 2 * _se(a):
            best = source
    return best or "in_sample", found


def network_agreement(best: str, found: dict) -> str:
    """The network's side of "``best``'s predictions agree with the given labels more often than the network's
    (...)", for the Review page and the CLI: its K folds when run, else the run's own model, which is measured on
    its held-out images and then quoted beside ``best``'s agreement on those same images."""
    net = found.get("cross_validation") or found.get("in_sample") or {}
    if not net:
        return "no network predictions yet"
    same = net.get("compared_with") or {}
    if "cross_validation" not in found and same.get("source") == best:
        return (f"on the {same['n']} held-out images its model never saw: {net['accuracy']:.1%}, these predictions "
                f"{same['accuracy']:.1%}")
    return f"{net['accuracy']:.1%}, {net.get('what', 'its own model')}"


def _held_out_accuracy(run_dir, source: str) -> Optional[dict]:
    """``source``'s agreement with the given labels on the run's held-out images ({"accuracy", "n"}), or None
    when those images are not among the reviewed ones (a truth-known run reviews its training images only)."""
    info = read_run_labels(run_dir)
    try:
        with np.load(Path(run_dir) / "predictions.npz", allow_pickle=False) as z:
            held_ids = np.asarray(z["test_ids"]).astype(str)
        probs = pred_probs(run_dir, source=source, ids=info.ids)
    except (OSError, KeyError, ValueError, UserError):
        return None
    held = np.isin(info.ids, held_ids)
    if not held.any() or held.sum() != len(held_ids):
        return None
    return {"accuracy": float((probs.argmax(1) == info.labels)[held].mean()), "n": int(held.sum())}


def _se(acc: dict) -> float:
    p, n = acc["accuracy"], max(int(acc["n"]), 1)
    return max((p * (1 - p) / n) ** 0.5, 1 / n)


def estimate_note(num_issues: int, n: int, accuracy: Optional[float], *, truth_known: bool = False) -> dict:
    """Confident learning's N with the accuracy it rests on: {"weak", "text", "suggested"}.

    N counts the images whose given label the model doubts. Low agreement with the given labels (below
    WEAK_ACCURACY out of sample) has two causes the estimate cannot tell apart: many wrong labels, or a model
    that is often wrong itself and doubts correct labels too (then N is too high). On the user's own labels
    the page says so and suggests what a reviewer can afford first (5% of the set, at least 20, at most N)
    instead of all N; with known truth (the demo) precision and recall answer it, so nothing changes."""
    if accuracy is None:
        return {"weak": False, "text": "", "suggested": num_issues}
    text = f"The estimate rests on predictions that agree with the given labels {100 * accuracy:.1f}% of the time out of sample."
    if accuracy >= WEAK_ACCURACY or truth_known:
        return {"weak": False, "text": text, "suggested": num_issues}
    suggested = int(min(num_issues, max(20, round(0.05 * n))))
    text += (f" That is low: either about {num_issues} labels really are wrong, or the model is too weak to tell and its "
             f"own mistakes count as wrong labels (then {num_issues} is too high). Review the {suggested} most "
             "suspicious first, and more if most of them are wrong.")
    return {"weak": True, "text": text, "suggested": suggested}


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
def _margin_state(run_dir) -> tuple:
    """(cover, threshold): whether margins.npy covers every reviewable image (True), only some of them (False:
    the training images of a truth-unknown run, which also reviews its held-out images) or is absent (None);
    whether the run has AUM threshold samples."""
    from noisycore import aum

    path = Path(run_dir) / "margins.npy"
    if not path.is_file():
        return None, False
    cover = np.load(path, mmap_mode="r").shape[1] == len(read_run_labels(run_dir).ids)
    return cover, cover and aum.has_threshold_samples(run_dir)


def available_detectors(run_dir) -> list[str]:
    """The DETECTORS this run supports: the margin detectors need margins.npy of every reviewable image
    (the training margins do not cover the held-out images that a truth-unknown run also reviews);
    ``aum`` also needs threshold samples, i.e. a run trained with aum_threshold_samples."""
    cover, threshold = _margin_state(run_dir)
    return [d for d in detectors.DETECTORS
            if d not in detectors.MARGIN_DETECTORS or (threshold if d == "aum" else cover)]


def unavailable_note(run_dir) -> str:
    """One sentence on why margin detectors are missing from :func:`available_detectors` (empty when both
    are there), so a table without them is not read as "they found nothing"."""
    from noisycore.catalog import detector_name

    cover, threshold = _margin_state(run_dir)
    if threshold:
        return ""
    if cover:
        return (f"Not listed: {detector_name('aum')}. It needs AUM threshold samples: a run trained with that option "
                "(Train, \"AUM threshold samples\"; CLI --aum-threshold-samples).")
    names = "the two AUM (area under the margin) detectors"
    if cover is None:
        return (f"Not listed: {names}. They read margins recorded during training, which this run did not record "
                f"(recorded by default up to {MARGINS_AUTO_MAX_N:,} training images; on a larger set train with "
                "--record-margins or with AUM threshold samples).")
    return (f"Not listed: {names}. Their margins were recorded on the training images only, and this review "
            "also scores the held-out images, which were never trained on.")


def detect(run_dir, *, detector: str = "confident_learning", source: str = "in_sample",
           save: bool = True, **params) -> pd.DataFrame:
    """Run one detector on a run; the ranked table (see :func:`issues.to_frame`) plus true_label and
    is_noisy when the truth is known. Saved as RUN/issues/<detector>.csv with a .json of source,
    params and, with the truth, precision / recall / F1 (:func:`issues.evaluate`)."""
    run = run_path(run_dir)
    info = read_run_labels(run)
    probs = pred_probs(run, source=source, ids=info.ids)
    margins = read_margins(run) if detector in detectors.MARGIN_DETECTORS else None
    if detector in detectors.MARGIN_DETECTORS and margins is None:
        raise UserError(f"{run.name} recorded no margins, so the {detector} detector cannot run; pick another detector")
    if margins is not None and margins.shape[1] != len(info.ids):
        raise DataError(f"margins.npy has {margins.shape[1]} columns but the run has {len(info.ids)} images")
    if detector == "aum":
        from noisycore import aum

        params.update(aum.detector_margins(info, margins))
        margins = params.pop("margins")
    found = detectors.find_label_issues(info.labels, probs, detector=detector, margins=margins, **params)
    frame = detectors.to_frame(found, ids=info.ids, labels=info.labels, class_names=info.class_names)
    meta = {"detector": detector, "source": source, "params": found.params, "n": len(info.ids),
            "flagged": found.num_issues, "created": datetime.now().astimezone().isoformat(timespec="seconds"),
            # confident learning's estimate of how many labels are wrong (no truth needed)
            "estimated_issues": detectors.estimate_noise(info.labels, probs).num_issues,
            # what the queue rests on: how often these predictions agree with the given labels
            "source_accuracy": (source_accuracy(run, source) or {}).get("accuracy") if source == "in_sample"
            else float((probs.argmax(1) == info.labels).mean())}
    if info.true_labels is not None:
        names = np.asarray(info.class_names, dtype=object)
        frame["true_label"] = names[info.true_labels[frame["index"]]]
        frame["is_noisy"] = info.is_noisy[frame["index"]]
        meta["evaluation"] = detectors.evaluate(found, info.is_noisy)
        curve = detectors.precision_recall_curve(found.label_quality, info.is_noisy, max_points=200)
        meta["curve"] = curve.to_dict(orient="list")
    if save:
        out = run / ISSUES_DIR
        out.mkdir(exist_ok=True)
        write_csv(out / f"{detector}.csv", frame)
        runs.write_json(out / f"{detector}.json", meta)
    return frame


def detect_all(run_dir, *, source: str = "in_sample", detectors=None) -> pd.DataFrame:
    """Run every available detector (or ``detectors``) with default options and save each; returns
    :func:`evaluation_table`."""
    for name in detectors or available_detectors(run_dir):
        detect(run_dir, detector=name, source=source)
    return evaluation_table(run_dir)


def detection_meta(run_dir) -> dict:
    """detector -> the .json written by :func:`detect` (only detectors that were run)."""
    out = {}
    for name in detectors.DETECTORS:
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
    if detector not in detectors.DETECTORS:
        raise UserError(f"detector={detector!r} is unknown; choose one of: {', '.join(detectors.DETECTORS)}")
    path = Path(run_dir) / ISSUES_DIR / f"{detector}.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype={"id": str, "given_label": str, "proposed_label": str, "true_label": str},
                        keep_default_na=False)
    frame["is_label_issue"] = frame["is_label_issue"].astype(str).str.lower() == "true"
    if "is_noisy" in frame:
        frame["is_noisy"] = frame["is_noisy"].astype(str).str.lower() == "true"
    return frame


# ----------------------------------------------------------------------------- images and neighbours
def run_images(run_dir, dataset=None) -> np.ndarray:
    """The images of :func:`read_run_labels` (training, then held-out when the truth is unknown),
    uint8 (N, H, W, 3), in the same order.

    ``dataset``: the loaded Dataset of the run's config (e.g. from a cache); loaded if None."""
    from noisycore.datasets import load_dataset

    if dataset is None:
        dataset = load_dataset(runs.run_data_config(run_dir, training_subset=False))
    pos = dataset_positions(run_dir, dataset)
    n = len(dataset.ids_train)
    if (pos < n).all():
        return dataset.x_train[pos]
    return np.concatenate([dataset.x_train, dataset.x_test])[pos]


def model_inputs(run_dir, dataset=None) -> np.ndarray:
    """What the run's models are fed for the images of :func:`read_run_labels`, in the same order: the
    images (:func:`run_images`), or for a model on pretrained features (catalog.EMBEDDING_MODELS) their
    cached embeddings, float32 (N, 1280), the file the run computed (its dataset as loaded, so no recompute).
    ``dataset``: the run's Dataset as its training loaded it (``runs.run_data_config(run)``); loaded if None."""
    from noisycore.catalog import takes_embeddings

    if not takes_embeddings(runs.read_config(run_dir).model):
        return run_images(run_dir, dataset)
    from noisycore import embeddings
    from noisycore.datasets import load_dataset

    dataset = load_dataset(runs.run_data_config(run_dir)) if dataset is None else dataset
    return embeddings.embed(dataset, size=embeddings.DEFAULT_SIZE, variant=run_backbone(run_dir),
                            # a moved photo's fallback: on the run's pages
                            notice=lambda text: runs.add_note(run_dir, text))[dataset_positions(run_dir, dataset)]


def run_backbone(run_dir) -> str:
    """The backbone variant whose features a run on pretrained features was trained on: its status.json's
    "backbone" ("efficientnet_lite2" -> "lite2"); a run from before that was recorded used Lite0's."""
    name = str(runs.read_status(run_dir).get("backbone") or "efficientnet_lite0")
    return name.removeprefix("efficientnet_")


def dataset_positions(run_dir, dataset) -> np.ndarray:
    """Row of each image of :func:`read_run_labels` in the dataset's training images followed by its test
    images (the row order of ``embeddings.embed``), int (N,)."""
    from noisycore.human_labels import norm_ids

    all_ids = np.concatenate([norm_ids(dataset.ids_train), norm_ids(dataset.ids_test)])
    return _positions(all_ids, norm_ids(read_run_labels(run_dir).ids), what="the run's dataset")


def compute_features(run_dir, *, images=None, batch_size: int = 512) -> np.ndarray:
    """Penultimate-layer features of the run's best model for every training image, L2-normalized,
    saved as RUN/features.npy (float16, (N, D)). Loads TensorFlow."""
    import keras

    from noisycore import losses  # noqa: F401  (registers the custom objects best.keras may hold)
    from noisycore.models import feature_extractor
    from noisycore.pipeline import make_dataset

    run = run_path(run_dir)
    if not (run / "best.keras").is_file():
        raise UserError(f"{run.name} has no best.keras; the run did not finish an epoch")
    x = model_inputs(run) if images is None else images
    model = keras.models.load_model(run / "best.keras", compile=False, safe_mode=True)  # no lambdas from files
    k, names = int(model.outputs[0].shape[-1]), read_run_labels(run).class_names
    if k != len(names):
        raise UserError(f"{run.name}/best.keras outputs {k} classes but the run's labels have {len(names)} "
                        f"classes ({', '.join(names)}); the model belongs to another dataset: train this run again")
    feats = feature_extractor(model).predict(make_dataset(x, num_classes=k, batch_size=batch_size), verbose=0)
    feats = np.asarray(feats, dtype=np.float32).reshape(len(x), -1)
    feats /= np.clip(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12, None)
    save_npy(run / FEATURES, feats.astype(np.float16))
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
