"""Evaluate a finished run from its folder: the headline numbers, test predictions, the noise
matrices, a filterable prediction grid and a table comparing runs. No TensorFlow needed.

    preds = load_predictions(run_dir)      # predictions.npz + labels.csv of the best model
    headline(run)                          # best / final test accuracy, train accuracy on given / true labels
    grid_rows(preds, split="train", show="noisy_right")   # the examples to draw, with their labels
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from noisycore import runs

from noisycore.errors import DataError, UserError
from noisycore.util import flatten


@dataclass(frozen=True, eq=False)
class RunPredictions:
    """The best model's predictions on the training and test images (N train, M test, K classes)."""

    class_names: tuple
    train_ids: np.ndarray       # str (N,)
    train_given: np.ndarray     # int (N,) the labels trained on
    train_true: Optional[np.ndarray]   # int (N,) or None when the truth is unknown
    train_probs: np.ndarray     # float (N, K)
    is_val: np.ndarray          # bool (N,) held out for validation
    test_ids: np.ndarray        # str (M,)
    test_true: np.ndarray       # int (M,)
    test_probs: np.ndarray      # float (M, K)

    @property
    def train_pred(self) -> np.ndarray:
        return self.train_probs.argmax(axis=1)

    @property
    def test_pred(self) -> np.ndarray:
        return self.test_probs.argmax(axis=1)


def _class_names(run_dir: Path) -> tuple:
    try:
        meta = json.loads((run_dir / "noise.json").read_text(encoding="utf-8"))
        return tuple(meta["dataset"]["class_names"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{run_dir / 'noise.json'} is missing or has no class names; is {run_dir.name} a run folder "
                        "written by noisycore?") from None


def _true_labels(run_dir: Path, ids: np.ndarray, names: tuple) -> Optional[np.ndarray]:
    """True label per id from the run's labels.csv (None when the truth is unknown)."""
    path = run_dir / "labels.csv"
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if "true_label" not in df or (df["true_label"].str.strip() == "").all():
        return None
    index = {name: i for i, name in enumerate(names)}
    by_id = dict(zip(df["id"], df["true_label"].map(index)))
    true = pd.Series(ids).map(by_id)
    if true.isna().any():
        raise DataError(f"{path} lacks the true label of {int(true.isna().sum())} training image(s) of "
                        "predictions.npz; the run folder is inconsistent")
    return true.to_numpy(np.int64)


def load_predictions(run_dir) -> RunPredictions:
    """Read predictions.npz (written when a run ends) and the true labels from labels.csv."""
    run_dir = Path(run_dir)
    path = run_dir / "predictions.npz"
    if not path.is_file():
        raise UserError(f"{run_dir.name} has no predictions yet: they are saved when the run ends")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is unreadable ({e}); train the run again") from None
    names = _class_names(run_dir)
    for key in ("train_probs", "test_probs"):
        found = data[key].shape[-1] if data[key].ndim == 2 else None
        if found != len(names):
            raise DataError(f"{path.name} holds predictions for {found} classes but the run's labels have "
                            f"{len(names)} classes ({', '.join(names)}); it comes from a model of another "
                            "dataset: train this run again")
    ids = data["train_ids"].astype(str)
    return RunPredictions(
        class_names=names, train_ids=ids, train_given=data["train_labels"].astype(np.int64),
        train_true=_true_labels(run_dir, ids, names), train_probs=data["train_probs"],
        is_val=data.get("is_val", np.zeros(len(ids), bool)).astype(bool), test_ids=data["test_ids"].astype(str),
        test_true=data["test_labels"].astype(np.int64), test_probs=data["test_probs"])


# ------------------------------------------------------------------------------ headline numbers
def _num(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(value) else value


def keeps_last(run: runs.Run) -> bool:
    """True when the run keeps its last epoch's model (TrainConfig.keep == "last"), not the best one."""
    return getattr(run.config, "keep", "best") == "last"


def best_epoch(run: runs.Run) -> Optional[int]:
    """The epoch of the model the run keeps: from summary.json, else (running) the last epoch with
    keep=last, or the first epoch with the top val_accuracy."""
    if run.summary and run.summary.get("best_epoch"):
        return int(run.summary["best_epoch"])
    m = run.metrics
    if keeps_last(run):
        return int(m["epoch"].iloc[-1]) if len(m) else None
    if len(m) and "val_accuracy" in m and m["val_accuracy"].notna().any():
        return int(m.loc[m["val_accuracy"].idxmax(), "epoch"])
    return None


def kept_epoch_text(run: runs.Run, epoch: Optional[int]) -> str:
    """How the pages name the model a run keeps: "best epoch 12" (keep=best: the best validation
    accuracy), "last epoch 30" (keep=last), or "best model" / "last epoch" before an epoch is known."""
    last = keeps_last(run)
    if not epoch:
        return "last epoch" if last else "best model"
    return f"{'last' if last else 'best'} epoch {int(epoch)}"


def kept_reason(run: runs.Run) -> str:
    """Why the run keeps the model it keeps, for the pages' help texts."""
    return "the last epoch, kept" if keeps_last(run) else "highest validation accuracy"


def kept_marker(run: runs.Run) -> str:
    """The label of the curves' dashed rule at the kept model's epoch."""
    return "model kept (last epoch)" if keeps_last(run) else "best model"


def headline(run: runs.Run) -> dict:
    """The blog post's numbers: test accuracy of the best and of the final model (against the true
    labels of the test set; for the user's own data: against the given labels of the held-out images),
    and train accuracy of the best model on the given and on the true labels (None where unknown)."""
    s, m = run.summary or {}, run.metrics
    last = m.iloc[-1] if len(m) else {}
    known = truth_known(run)
    if not known:   # runs written before the truth rule may hold numbers computed against copied labels
        s = {k: v for k, v in s.items() if k not in ("train_acc_true", "memorized")}
    return {"best_test_accuracy": _num(s.get("test_accuracy")),
            "final_test_accuracy": _num(s.get("last_test_accuracy", last.get("test_accuracy") if len(m) else None)),
            "train_acc_noisy": _num(s.get("train_acc_noisy")), "train_acc_true": _num(s.get("train_acc_true")),
            "memorized": _num(s.get("memorized")), "best_epoch": best_epoch(run),
            "epochs_done": int(len(m)), "truth_known": known, "title": display_name(run)}


def _noise_meta(run_dir) -> Optional[dict]:
    try:
        meta = json.loads((Path(run_dir) / "noise.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def truth_known(run: runs.Run) -> bool:
    """Whether the run's true training labels are known: the one test the pages use before showing
    precision, recall, "memorized", "clean" or "train accuracy on true labels".

    True for injected noise (the labels before injection are the truth) and benchmark label sets;
    False for the user's own labels (a folder, a zip, a CSV without a true-label column, noise "none"),
    also in runs written before noise.json recorded ``truth_known``, and for a retrain on reviewed
    labels of such data (a reviewer's fix is not a truth)."""
    from noisycore.labelsets import truth_known_meta

    meta = _noise_meta(run.path)
    if meta is not None:
        return truth_known_meta(meta) and bool((run.summary or {}).get("truth_known", True))
    if run.summary is not None and "truth_known" in run.summary:
        return bool(run.summary["truth_known"])
    m = run.metrics
    if len(m):
        return "train_acc_true" in m and m["train_acc_true"].notna().any()
    cfg = run.config
    if cfg.labels_path:
        return False
    from noisycore.config import is_own_source

    return not (cfg.noise.model == "none" and is_own_source(cfg.data.source))


REVIEWED_FILE = "reviewed.json"   # in a retrained run: title, from (the original run), changed, excluded


def reviewed_record(run) -> Optional[dict]:
    """RUN/reviewed.json of a retrain on reviewed labels (written by corrections.retrain): title, from
    (the original run's folder), changed, excluded, labels; None for any other run."""
    path = Path(getattr(run, "path", run))
    try:
        info = json.loads((path / REVIEWED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def display_name(run) -> str:
    """The name the pages show for a run (a Run or its folder): "<run> after review (N changed, M excluded)"
    for a retrain on reviewed labels, else the folder name."""
    info = reviewed_record(run)
    return str(info["title"]) if info and info.get("title") else Path(getattr(run, "path", run)).name


def review_gain(original_run, retrained_run) -> dict:
    """Held-out accuracy of the original and the retrained run on the SAME held-out images, scored
    against the same labels (the retrained run's: the reviewed labels of those images).

    Returns {"n": images compared, "original": acc, "retrained": acc, "gain": retrained - original}
    (accuracies None when no image is shared). The truth is not needed: with the user's own labels
    this is accuracy against the reviewed (given) labels, not against a truth."""
    a, b = (Path(getattr(r, "path", r)) for r in (original_run, retrained_run))
    pa, pb = load_predictions(a), load_predictions(b)
    if tuple(pa.class_names) != tuple(pb.class_names):
        raise UserError(f"{a.name} and {b.name} have different classes; compare runs of one dataset")
    where = pd.Index(pa.test_ids).get_indexer(pb.test_ids)
    shared = where >= 0
    n = int(shared.sum())
    if n == 0:
        return {"n": 0, "original": None, "retrained": None, "gain": None}
    ref = pb.test_true[shared]
    acc_a = float((pa.test_pred[where[shared]] == ref).mean())
    acc_b = float((pb.test_pred[shared] == ref).mean())
    return {"n": n, "original": acc_a, "retrained": acc_b, "gain": acc_b - acc_a}


def noise_points(accuracy: float, n: int) -> float:
    """Run-to-run noise of a difference of two accuracies near ``accuracy`` on ``n`` images, in points:
    twice the binomial standard error of a difference, ``2 * sqrt(2 p (1 - p) / n) * 100`` (about a 95%
    band). A seed changes more than which images are right, so this is a lower bound."""
    p = min(max(float(accuracy), 0.0), 1.0)
    return 200.0 * math.sqrt(2.0 * p * (1.0 - p) / max(int(n), 1))


def review_gain_lines(run_dirs) -> list:
    """One sentence per retrained run among ``run_dirs`` whose original run still exists: its held-out
    accuracy gain over the original on the same held-out images (see review_gain), scored against the
    true labels when they are known (nobody reviewed those images) else against the reviewed labels, and
    a word when the gain is within run-to-run noise (:func:`noise_points`)."""
    out = []
    for path in map(Path, run_dirs):
        info = reviewed_record(path)
        if not info or not info.get("from"):
            continue   # not a retrain
        original = Path(info["from"])
        try:
            gain = review_gain(original, path)
        except (OSError, ValueError, KeyError, TypeError):
            continue   # a run without predictions yet, or its original is gone
        if gain["n"]:
            against = "true" if truth_known(runs.load_run(path)) else "reviewed"
            line = (f"{info.get('title', path.name)}: held-out accuracy {gain['retrained']:.1%} vs "
                    f"{gain['original']:.1%} for {original.name} on the same {gain['n']:,} held-out images "
                    f"(scored against their {against} labels): {gain['gain'] * 100:+.1f} points")
            noise = noise_points((gain["retrained"] + gain["original"]) / 2, gain["n"])
            if abs(gain["gain"]) * 100 < noise:
                line += (f", within run-to-run noise (about ±{noise:.1f} points on {gain['n']:,} images): "
                         "train both again with other seeds before reading it as a gain or a loss")
            out.append(line)
    return out


# ------------------------------------------------------------------------------ noise matrices
def noise_matrices(run_dir) -> Optional[dict]:
    """The matrix the forward loss used beside the realized one, for runs with the forward loss.

    Returns None for other losses, else ``{"used": (K, K), "used_title": str, "estimated": bool,
    "source": str, "truth": (K, K) or None, "counts": (K, K) or None, "class_names": tuple}``. ``used``
    comes from noise_matrix_used.json (see noisycore.forward; older runs: the config or noise.json); truth = the
    realized ``T[i, j] = P(given label j | true class i)``: among the training images of true class i, the
    share given label j (rows sum to 1; the GUIDE's noise_matrix convention).
    """
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    if config.loss != "forward":
        return None
    names = _class_names(run_dir)
    meta = json.loads((run_dir / "noise.json").read_text(encoding="utf-8"))
    given = config.loss_kwargs.get("noise_matrix")
    used = given if given is not None else meta.get("requested_matrix")
    estimated, source = given is not None, "given in the config" if given is not None else "the requested noise"
    record = forward_record(run_dir)
    if record is not None:
        used, estimated, source = record.get("noise_matrix"), bool(record.get("estimated")), record.get("source", "")
    truth, counts = _realized(run_dir, names)
    return {"used": None if used is None else np.asarray(used, dtype=float),
            "used_title": "Matrix the forward loss used (estimated by confident learning)" if estimated
            else "Matrix the forward loss used (the requested noise)",
            "estimated": estimated, "source": source, "truth": truth, "counts": counts, "class_names": names}


def forward_record(run_dir) -> Optional[dict]:
    """RUN/noise_matrix_used.json (noisycore.forward.MATRIX_FILE) or None; read without TensorFlow."""
    try:
        return json.loads((Path(run_dir) / "noise_matrix_used.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _realized(run_dir: Path, names: tuple) -> tuple:
    df = pd.read_csv(run_dir / "labels.csv", dtype=str, keep_default_na=False)
    if "true_label" not in df or (df["true_label"].str.strip() == "").any():
        return None, None
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    counts = np.bincount(df["true_label"].map(index).to_numpy(int) * k + df["label"].map(index).to_numpy(int),
                         minlength=k * k).reshape(k, k)
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.full((k, k), np.nan), where=rows > 0), counts


# ------------------------------------------------------------------------------ prediction grid
GRID_FILTERS = {
    "all": "All images",
    "noisy": "Wrong given label",
    "noisy_right": "Wrong given label, model right anyway",
    "memorized": "Wrong given label, model repeats it (memorized)",
    "mistakes": "Model wrong",
    "right": "Model right",
}
NEEDS_TRUTH = ("noisy", "noisy_right", "memorized")
GRID_COLUMNS = ("index", "id", "true", "given", "predicted", "confidence", "correct", "noisy", "validation")


def _grid_frame(preds: RunPredictions, split: str) -> pd.DataFrame:
    if split == "train":
        true, given, probs, ids, val = preds.train_true, preds.train_given, preds.train_probs, preds.train_ids, \
            preds.is_val
    else:
        true, given, probs, ids, val = preds.test_true, preds.test_true, preds.test_probs, preds.test_ids, \
            np.zeros(len(preds.test_ids), bool)
    pred = probs.argmax(axis=1)
    reference = given if true is None else true
    return pd.DataFrame({"index": np.arange(len(ids)), "id": ids,
                         "true": -1 if true is None else true, "given": given, "predicted": pred,
                         "confidence": probs[np.arange(len(ids)), pred].astype(float),
                         "correct": pred == reference, "noisy": False if true is None else given != true,
                         "validation": val})


def grid_rows(preds: RunPredictions, *, split: str = "train", show: str = "all", true_class: Optional[int] = None,
              predicted_class: Optional[int] = None, limit: int = 48, seed: int = 0) -> tuple:
    """The examples to draw in the prediction grid: (rows, number matching the filter).

    ``show``: a GRID_FILTERS key ("noisy_right": given != true and predicted == true; "memorized":
    given != true and predicted == given). ``correct`` = predicted == true label (the given label
    when the truth is unknown; on the test set given = true). Rows (at most ``limit``, a seeded
    random sample in index order) have columns GRID_COLUMNS; ``true`` is -1 when unknown.
    """
    if split not in ("train", "test"):
        raise UserError(f"split={split!r} is not valid; choose 'train' or 'test'")
    if show not in GRID_FILTERS:
        raise UserError(f"show={show!r} is not valid; choose one of: {', '.join(GRID_FILTERS)}")
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise UserError(f"limit={limit!r} must be a positive integer")
    known = split == "test" or preds.train_true is not None
    if show in NEEDS_TRUTH and not known:
        raise UserError(f"the filter {GRID_FILTERS[show]!r} needs the true labels, which are unknown for this run; "
                        "choose 'all', 'mistakes' or 'right'")
    df = _grid_frame(preds, split)
    keep = {"all": np.ones(len(df), bool), "noisy": df["noisy"], "mistakes": ~df["correct"], "right": df["correct"],
            "noisy_right": df["noisy"] & (df["predicted"] == df["true"]),
            "memorized": df["noisy"] & (df["predicted"] == df["given"])}[show]
    k = len(preds.class_names)
    for name, value, column in (("true_class", true_class, "true" if known else "given"),
                                ("predicted_class", predicted_class, "predicted")):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < k:
                raise UserError(f"{name}={value!r} must be a class index in 0..{k - 1}")
            keep = keep & (df[column] == value)
    df = df[np.asarray(keep, bool)]
    total = len(df)
    if total > limit:
        pick = np.sort(np.random.default_rng(seed).choice(total, int(limit), replace=False))
        df = df.iloc[pick]
    return df.reset_index(drop=True), total


def images_for(dataset, ids, *, split: str = "train") -> np.ndarray:
    """The dataset's uint8 images (n, H, W, 3) for the given ids of its train or test split."""
    if split not in ("train", "test"):
        raise UserError(f"split={split!r} is not valid; choose 'train' or 'test'")
    all_ids = np.asarray(dataset.ids_train if split == "train" else dataset.ids_test).astype(str)
    images = dataset.x_train if split == "train" else dataset.x_test
    where = {i: n for n, i in enumerate(all_ids)}
    missing = [i for i in map(str, ids) if i not in where]
    if missing:
        raise DataError(f"{len(missing)} image id(s) of the run are not in the dataset (e.g. {missing[0]!r}); "
                        "were its images moved or changed since the run?")
    return images[[where[i] for i in map(str, ids)]]


# ------------------------------------------------------------------------------ comparing runs


KEY_FIELDS = ("loss", "method", "noise.model", "noise.rate", "model", "epochs")
METRIC_FIELDS = ("best_test_accuracy", "final_test_accuracy", "train_acc_noisy", "train_acc_true", "memorized",
                 "best_epoch", "epochs_done")


def compare_table(run_dirs, *, labels: Optional[dict] = None) -> pd.DataFrame:
    """One row per run: id, state, the key config fields plus every other field that differs between
    the runs, and the headline numbers (fractions; see ``headline``)."""
    loaded = [runs.load_run(p) for p in run_dirs]
    if not loaded:
        raise UserError("pick at least one run to compare")
    flat = [flatten(r.config.to_dict(), encode=True) for r in loaded]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differ = [k for k in keys if k not in KEY_FIELDS and len({json.dumps(f.get(k), default=str) for f in flat}) > 1]
    rows = []
    for run, f in zip(loaded, flat):
        h = headline(run)
        rows.append({"run": run.id, "name": display_name(run), "label": (labels or {}).get(str(run.path), display_name(run)),
                     "state": run.state,
                     **{k: f.get(k) for k in KEY_FIELDS + tuple(differ)}, **{k: h[k] for k in METRIC_FIELDS}})
    return pd.DataFrame(rows)


def curves_note(status: dict, *, tta: str = "none") -> Optional[str]:
    """What a run's per-epoch curves are computed on (status.json ``train_sample``, ``num_fit``,
    ``margins_recorded``, ``test_sample``, ``num_test``, ``val_tta``, written by train.py; the run's
    ``tta``), for the Train and Curves pages; None for older runs."""
    sample, num_fit = status.get("train_sample"), status.get("num_fit")
    if not sample or not num_fit:
        return None
    test_sample, num_test = status.get("test_sample"), status.get("num_test")
    if test_sample and num_test and test_sample < num_test:
        test = (f" The test curve is one plain pass over a {test_sample:,}-image stratified sample of the "
                f"{num_test:,} test images; the headline test accuracy uses all of them"
                + (" and test-time augmentation." if tta not in (None, "none") else "."))
    else:
        test = (" The test curve is one plain pass per epoch; the headline test accuracy uses test-time "
                "augmentation." if tta not in (None, "none") else "")
    val = (" Validation (which picks the kept epoch) is one plain pass per epoch; the kept model's numbers use "
           "test-time augmentation." if status.get("val_tta") == "none" and tta not in (None, "none") else "")
    if sample < num_fit:
        return (f"Training-set curves on a {sample:,}-image stratified sample of the {num_fit:,} images trained "
                f"on (cheaper per epoch); the final numbers use every image.{test}{val}")
    why = " (the AUM margins need every image each epoch)" if status.get("margins_recorded") else ""
    return f"Training-set curves on all {num_fit:,} images trained on{why}.{test}{val}"
