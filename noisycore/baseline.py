"""The linear baseline: what a multinomial logistic regression on the pixels reaches on the same labels.

    record = fit_for_run(run_dir, dataset, labels, seed=0)    # baseline.json + baseline_cv_probs.npz
    read(run_dir) -> dict | None
    judge(network_accuracy, baseline_accuracy, n=..., chance=...) -> Verdict   # "learned nothing" etc.

Why: a network trained from scratch on a few hundred or thousand images can learn less than a linear
model, or nothing at all (issue 28: 8-pixel scans trained to chance in bfloat16, and the review queue
built on that model was noise, with no warning). A logistic regression on the standardized pixels
costs seconds, so every run fits one with the same data: its held-out accuracy (trained on the run's
training images, scored on its held-out images, the network's test set) and its K-fold out-of-sample
probabilities of every reviewable image (the same stratified folds as :mod:`noisycore.crossval`).
The pages and the CLI compare the two; Review can build its queue from the baseline's probabilities
when they are the better out-of-sample predictions.

Features: each image block-averaged to at most ``MAX_SIDE`` pixels per side (one channel when the
three are equal: grayscale), then standardized per pixel on the training images. Model: scikit-learn's
``LogisticRegression`` (L2, ``C``; lbfgs, at most ``MAX_ITER`` iterations). On sets above ``MAX_FIT``
images each fit uses a stratified, seeded subset of that many (the baseline is a yardstick, not a
contender on 50,000 photos, and must stay seconds).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from noisycore.errors import UserError
from noisycore.util import save_npz, stratified_folds, stratified_subset, write_json

BASELINE_JSON = "baseline.json"
BASELINE_PROBS = "baseline_cv_probs.npz"   # ids (N,) and probs (N, K), in the run's review order
EMBEDDING_PROBS = "embedding_cv_probs.npz"  # the same from the pretrained embeddings (own photos)
EMBEDDING_NAME = "logistic regression on pretrained features (ImageNet EfficientNet-Lite2)"
NAME = "logistic regression on the pixels"
MAX_SIDE = 16        # pixels per side the images are averaged down to (16 x 16 x 3 = 768 features)
C = 0.01             # inverse L2 strength: best of 0.001-1 on 8-px scans and 32-px photos (4-fold, 900-3,000 images)
MAX_ITER = 100       # lbfgs iterations: the accuracy is within 0.5 points of convergence, in a fraction of the time
BLAS_THREADS = 1     # per fit (see _fit_predict)
MAX_FIT = 10_000     # images per fit at most (stratified subset): seconds on 2 cores
FOLDS = 4            # as the Review page's cross-validation
CLEAR_MARGIN = 2.0   # standard errors: "clearly better" = more than this many apart
EMBEDDING_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)   # C tried on the standardized embeddings, chosen per image set
CHOOSE_MAX = 5_000   # images the choice of C is made on at most (a stratified subset): seconds on 2 cores
MIRROR_KEEP = 0.75   # a mirror "keeps the labels" when the baseline keeps this share of its above-chance accuracy on
                     # mirrored images (CIFAR-10: 1.05; sklearn's 8-px digits: 0.34; quadrant blobs: below 0)


def pixel_features(images) -> np.ndarray:
    """(N, D) float32 features of uint8 images (N, H, W, C): block means down to at most MAX_SIDE per
    side, one channel when the image set is grayscale (its channels are equal)."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise UserError(f"baseline features need images (N, H, W, C) with C in (1, 3), got shape {x.shape}")
    if x.shape[-1] == 3 and np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2]):
        x = x[..., :1]
    n, h, w, c = x.shape
    fh, fw = math.ceil(h / MAX_SIDE), math.ceil(w / MAX_SIDE)
    h2, w2 = h // fh, w // fw
    x = x[:, :h2 * fh, :w2 * fw].astype(np.float32) / 255.0
    return x.reshape(n, h2, fh, w2, fw, c).mean(axis=(2, 4)).reshape(n, -1)


def _fit_predict(x_fit, y_fit, x_pred, *, num_classes: int, seed: int, c: float = C):
    """Probabilities (M, K) of ``x_pred`` (or a tuple of arrays: one (M_i, K) each) from a logistic
    regression fitted on (x_fit, y_fit); classes missing from y_fit get probability 0."""
    if isinstance(x_pred, tuple):
        both = _fit_predict(x_fit, y_fit, np.concatenate(x_pred), num_classes=num_classes, seed=seed, c=c)
        return tuple(np.split(both, np.cumsum([len(x) for x in x_pred])[:-1]))
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    if len(x_fit) > MAX_FIT:
        keep = stratified_subset(y_fit, MAX_FIT, seed)
        x_fit, y_fit = x_fit[keep], y_fit[keep]
    mean, std = x_fit.mean(axis=0), x_fit.std(axis=0) + 1e-6
    present = np.unique(y_fit)
    out = np.zeros((len(x_pred), num_classes))
    if len(present) == 1:
        out[:, present[0]] = 1.0
        return out
    model = LogisticRegression(C=c, max_iter=MAX_ITER, tol=1e-3, random_state=seed)
    # One BLAS thread: its matrices are small, and OpenBLAS' threads spin while they wait; on a busy 2-core
    # machine (a classroom server) two of them made the Quick demo's baseline 31 s instead of 4.5 s (same result).
    with warnings.catch_warnings(), threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)   # MAX_ITER stops it early on purpose
        model.fit((x_fit - mean) / std, y_fit)
        out[:, model.classes_] = model.predict_proba((x_pred - mean) / std)
    return out


def out_of_sample_probs(features, labels, *, folds: int = FOLDS, seed: int = 0, num_classes=None,
                        mirrored=None, c: float = C):
    """K-fold out-of-sample probabilities (N, K): each row from a model fitted on the other folds
    (``util.stratified_folds(labels, folds, seed)``, the folds cross-validation uses). With ``mirrored``
    (the features of the mirrored images, N rows) also the same models' probabilities of those: (probs, mirrored)."""
    labels = np.asarray(labels, dtype=np.int64)
    k = int(num_classes or labels.max() + 1)
    assign = stratified_folds(labels, folds, seed)
    probs, flipped = np.zeros((len(labels), k)), np.zeros((len(labels), k))
    for f in range(folds):
        held = assign == f
        x_pred = features[held] if mirrored is None else (features[held], mirrored[held])
        out = _fit_predict(features[~held], labels[~held], x_pred, num_classes=k, seed=seed, c=c)
        if mirrored is None:
            probs[held] = out
        else:
            probs[held], flipped[held] = out
    return probs if mirrored is None else (probs, flipped)


def choose_c(features, labels, *, grid=EMBEDDING_GRID, folds: int = FOLDS, seed: int = 0, num_classes=None,
             max_n: int = CHOOSE_MAX) -> tuple:
    """(C, {C: out-of-sample accuracy}, probs or None): the L2 strength of ``grid`` whose K-fold out-of-sample
    probabilities agree best with the given labels (the first of equals in the grid's order, which starts at the
    strongest L2). No value of C suits every image set: on 32-px photos scaled up for the backbone 0.0003-0.003
    agreed 2-4 points better than 0.1 and flagged half as many images (benchmarks/README.md, "Choosing C"). The
    choice is made on at most ``max_n`` images (stratified); ``probs`` are the chosen C's (N, K) probabilities
    when it was made on every image, else None."""
    labels = np.asarray(labels, dtype=np.int64)
    if not grid:
        raise UserError("choose_c needs at least one value of C to try")
    keep = stratified_subset(labels, max_n, seed)
    x, y = features[keep], labels[keep]
    found, best, best_probs = {}, None, None
    for c in grid:
        probs = out_of_sample_probs(x, y, folds=folds, seed=seed, num_classes=num_classes, c=c)
        found[c] = round(float((probs.argmax(1) == y).mean()), 4)
        if best is None or found[c] > found[best]:
            best, best_probs = c, probs
    return best, {str(c): a for c, a in found.items()}, (best_probs if len(keep) == len(labels) else None)


def features_text(record: Optional[dict]) -> str:
    """What the linear model on the pretrained features reached and which L2 strength it chose, in one sentence
    (empty when the run measured no features): the pages and the CLI say what the default chose."""
    emb = (record or {}).get("embeddings") or {}
    if emb.get("cv_accuracy") is None:
        return ""
    tried = emb.get("C_tried") or {}
    grid = f", the best of {min(map(float, tried)):g}-{max(map(float, tried)):g}" if len(tried) > 1 else ""
    chosen = f" (L2 strength C = {emb['C']:g}{grid}, chosen by that agreement)" if emb.get("C") is not None else ""
    return (f"A logistic regression on the pretrained features agrees with the given labels "
            f"{100 * emb['cv_accuracy']:.1f}% of the time out of sample{chosen}.")


def mirror_keeps_labels(probs, mirrored_probs, labels) -> bool:
    """False only when mirroring clearly changes the labels: the model keeps less than MIRROR_KEEP of its
    above-chance accuracy on the mirrored images AND the drop is more than two standard errors of a
    difference of two accuracies on these n images (a near-chance model's drop is noise: the built-in shapes'
    pixel model at 20% kept 0.73 by chance on 600 images)."""
    labels = np.asarray(labels)
    acc, acc_m = (probs.argmax(1) == labels).mean(), (mirrored_probs.argmax(1) == labels).mean()
    se = math.sqrt(2 * acc * (1 - acc) / max(len(labels), 1))
    return not (mirror_retained(probs, mirrored_probs, labels) < MIRROR_KEEP and acc - acc_m > 2 * se)


def mirror_retained(probs, mirrored_probs, labels) -> float:
    """The share of a model's above-chance accuracy it keeps on mirrored images:
    (acc_mirrored - chance) / (acc - chance); about 1 when a mirror keeps the labels, near 0 when it changes them."""
    labels = np.asarray(labels)
    chance = chance_rate(labels)
    acc, acc_m = (probs.argmax(1) == labels).mean(), (mirrored_probs.argmax(1) == labels).mean()
    return float((acc_m - chance) / (acc - chance)) if acc > chance else 1.0


def fit_for_run(run_dir, dataset, labels, *, truth_known: bool, seed: int = 0, folds: int = FOLDS) -> dict:
    """Fit the baseline for a run and save it (RUN/baseline.json, RUN/baseline_cv_probs.npz).

    ``dataset``: the run's Dataset; ``labels``: the given labels of its training images. Held-out
    accuracy: trained on the training images, scored on the held-out ones against their labels (the
    network's test set). Out-of-sample probabilities: K-fold over every reviewable image (training
    images, plus the held-out ones when the truth is unknown, as :func:`detect.read_run_labels`)."""
    t0 = time.monotonic()
    k = dataset.num_classes
    train_x, test_x = pixel_features(dataset.x_train), pixel_features(dataset.x_test)
    given = np.asarray(labels, dtype=np.int64)
    test_y = np.asarray(dataset.y_test, dtype=np.int64)
    record = {"model": NAME, "max_side": MAX_SIDE, "C": C, "features": int(train_x.shape[1]),
              "num_train": int(len(given)), "num_test": int(len(test_y)), "held_out_accuracy": None}
    if len(test_y):
        p = _fit_predict(train_x, given, test_x, num_classes=k, seed=seed)
        record["held_out_accuracy"] = float((p.argmax(1) == test_y).mean())
    ids = np.asarray(dataset.ids_train).astype(str)
    x, y = train_x, given
    if not truth_known and len(test_y):
        ids = np.concatenate([ids, np.asarray(dataset.ids_test).astype(str)])
        x, y = np.concatenate([train_x, test_x]), np.concatenate([given, test_y])
    if len(y) >= 10 * folds:
        mirrored = pixel_features(np.concatenate([dataset.x_train, dataset.x_test])[:len(y), :, ::-1])
        probs, flipped = out_of_sample_probs(x, y, folds=folds, seed=seed, num_classes=k, mirrored=mirrored)
        save_npz(Path(run_dir) / BASELINE_PROBS, ids=ids, probs=probs.astype(np.float32))
        retained = mirror_retained(probs, flipped, y)
        record.update(cv_accuracy=float((probs.argmax(1) == y).mean()), folds=folds, cv_n=int(len(y)),
                      mirror_retained=round(retained, 3), mirror_keeps_labels=mirror_keeps_labels(probs, flipped, y))
    record["seconds"] = round(time.monotonic() - t0, 2)
    if not truth_known and len(y) >= 10 * folds:   # own photos: also the pretrained features (cached per dataset)
        record["embeddings"] = _embedding_baseline(run_dir, dataset, ids, y, given, test_y, folds=folds, seed=seed)
    write_json(Path(run_dir) / BASELINE_JSON, record)
    return record


def _embedding_baseline(run_dir, dataset, ids, y, given, test_y, *, folds: int, seed: int) -> dict:
    """The same two measures on EfficientNet-Lite2 embeddings (noisycore.embeddings: computed once per
    dataset, cached, resumable; rows = training images then held-out ones, the order of ``ids``)."""
    from noisycore import embeddings, runs

    t0 = time.monotonic()

    def progress(done, total):
        runs.update_status(run_dir, phase=f"pretrained features: {done} of {total} images")

    emb = embeddings.embed(dataset, size=embeddings.DEFAULT_SIZE, progress=progress,
                           notice=lambda text: runs.add_note(run_dir, text))
    pixels = embeddings.pixels_source(dataset, size=embeddings.DEFAULT_SIZE)
    runs.update_status(run_dir, features=pixels)
    train_e, test_e = emb[:len(given)], emb[len(given):]
    c, tried, probs = choose_c(emb[:len(y)], y, folds=folds, seed=seed, num_classes=dataset.num_classes)
    out = {"model": EMBEDDING_NAME, "C": c, "C_tried": tried, "size": embeddings.DEFAULT_SIZE, "pixels": pixels,
           "held_out_accuracy": None}
    if len(test_y):
        p = _fit_predict(train_e, given, test_e, num_classes=dataset.num_classes, seed=seed, c=c)
        out["held_out_accuracy"] = float((p.argmax(1) == test_y).mean())
    if probs is None:   # chosen on a subset: the chosen C's folds over every image
        probs = out_of_sample_probs(emb[:len(y)], y, folds=folds, seed=seed, num_classes=dataset.num_classes, c=c)
    save_npz(Path(run_dir) / EMBEDDING_PROBS, ids=ids, probs=probs.astype(np.float32))
    runs.update_status(run_dir, phase=None)
    out.update(cv_accuracy=float((probs.argmax(1) == y).mean()), seconds=round(time.monotonic() - t0, 2))
    return out


def read(run_dir) -> Optional[dict]:
    """RUN/baseline.json, or None (a run from before baselines, or a fold run)."""
    path = Path(run_dir) / BASELINE_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cv_probs(run_dir, ids, *, kind: str = "pixels") -> Optional[np.ndarray]:
    """The baseline's out-of-sample probabilities (N, K) reordered to ``ids`` (``kind`` pixels or embeddings),
    or None when the run has none for every id (an older run, too few images, or not own photos)."""
    path = Path(run_dir) / (BASELINE_PROBS if kind == "pixels" else EMBEDDING_PROBS)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        have, probs = z["ids"].astype(str), z["probs"].astype(np.float64)
    pos = {i: n for n, i in enumerate(have)}
    rows = [pos.get(i) for i in np.asarray(ids, dtype=str)]
    return None if any(r is None for r in rows) else probs[rows]


@dataclass(frozen=True)
class Verdict:
    """How a network's out-of-sample accuracy compares with the baseline's and with chance."""

    kind: str            # "learned_nothing" | "not_better" | "better" | "unknown"
    text: str            # one plain sentence for the page and the CLI
    network: Optional[float]
    baseline: Optional[float]
    chance: Optional[float]

    @property
    def warn(self) -> bool:
        return self.kind in ("learned_nothing", "not_better")


def chance_rate(labels) -> float:
    """The accuracy of always answering the most common label (the floor any model must beat)."""
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else 0.0


def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def judge(network: Optional[float], baseline: Optional[float], *, n: int, chance: Optional[float],
          what: str = "held-out accuracy") -> Verdict:
    """Name what the network learned, from its accuracy and the baseline's on the same ``n`` images.

    learned_nothing: the network is within CLEAR_MARGIN standard errors of ``chance`` (the most common
    label's share); not_better: the baseline is not more than CLEAR_MARGIN standard errors below the
    network (binomial standard error sqrt(p (1 - p) / n) at the network's accuracy, at least 1 / n)."""
    if network is None or not n:
        return Verdict("unknown", "", network, baseline, chance)
    se = max(math.sqrt(max(network * (1 - network), 0.0) / n), 1.0 / n)
    if chance is not None and network <= chance + CLEAR_MARGIN * se:
        text = (f"The network learned nothing: its {what} {_pct(network)} is no better than always answering the "
                f"most common label ({_pct(chance)}). Do not review a queue built on it"
                + (f"; the {NAME} reaches {_pct(baseline)}" if baseline is not None else "") + ".")
        return Verdict("learned_nothing", text, network, baseline, chance)
    if baseline is not None and network <= baseline + CLEAR_MARGIN * se:
        text = (f"The network ({what} {_pct(network)}) is not clearly better than a {NAME} "
                f"({_pct(baseline)}) on the same images: a queue built on it is no better than one built on the "
                "linear model.")
        return Verdict("not_better", text, network, baseline, chance)
    text = (f"The network ({_pct(network)}) beats the {NAME} ({_pct(baseline)})" if baseline is not None
            else f"The network's {what} is {_pct(network)}")
    return Verdict("better", text + ".", network, baseline, chance)


def run_verdict(summary: dict, record: Optional[dict]) -> Verdict:
    """judge() for a finished run: its held-out accuracy against the baseline's held-out accuracy and
    chance on the held-out labels (``summary['chance']``)."""
    record = record or {}
    return judge(summary.get("test_accuracy"), record.get("held_out_accuracy"),
                 n=int(summary.get("num_test") or 0), chance=summary.get("chance"))


def resolve_mirror(config, record: Optional[dict]) -> tuple:
    """(config, note): augment / tta "auto" become the mirror versions (flip_translate, flip) when mirroring
    keeps the labels, else translate / none, from the baseline's mirror check (``record``; without one,
    e.g. a fold run, the mirror versions). ``note`` says what was chosen and why (None: nothing to say)."""
    from noisycore.catalog import MIRROR_AUGMENT

    if config.augment != "auto" and config.tta != "auto":
        return config, None
    keeps = bool((record or {}).get("mirror_keeps_labels", True))
    changes = {}
    if config.augment == "auto":
        changes["augment"] = "flip_translate" if keeps else MIRROR_AUGMENT["flip_translate"]
    if config.tta == "auto":
        changes["tta"] = "flip" if keeps else "none"
    retained = (record or {}).get("mirror_retained")
    why = "" if retained is None else f" (a {NAME} keeps {100 * min(retained, 1.0):.0f}% of its accuracy on mirrored images)"
    note = (f"Mirroring keeps the labels of these images{why}: training mirrors them." if keeps else
            f"Mirroring changes the labels of these images{why}, so the run never mirrors them: augmentation "
            f"{changes.get('augment', config.augment)}, test-time augmentation {changes.get('tta', config.tta)}.")
    return config.replace(**changes), note


SCRATCH_PRESET = "small"    # what a pretrained-features run trains instead when the features do not help


def features_not_better(record: Optional[dict]) -> Optional[str]:
    """When a linear model on the pretrained features does not predict the given labels clearly better out of
    sample than one on the pixels (by more than two standard errors of the difference), a sentence that says so
    with both accuracies: the ImageNet features do not suit these images (tiny scans, text, medical slides) and a
    network trained from scratch, which learns features of these images, is the better bet; else None. On photos
    the features win by 10-40 points; on sklearn's 8-px digit scans (scaled up to 16 px) the two are within about
    two points and the network from scratch beats both (benchmarks/README.md, robust defaults)."""
    emb = (record or {}).get("embeddings") or {}
    pixels, features, n = (record or {}).get("cv_accuracy"), emb.get("cv_accuracy"), (record or {}).get("cv_n")
    if pixels is None or features is None or not n:
        return None
    se = math.sqrt((pixels * (1 - pixels) + features * (1 - features)) / n)
    if features - pixels > 2 * se:
        return None
    than = "better than" if pixels > features + 2 * se else "about as well as"
    return (f"On these images a linear model on the pixels predicts the given labels {than} one on the "
            f"pretrained features ({100 * pixels:.1f}% against {100 * features:.1f}% out of sample), so the run "
            f"trains the {SCRATCH_PRESET} preset from scratch instead of a head on the features.")


def choose_for_run(run_dir, config, dataset, labels, *, truth_known: bool):
    """Before a run trains: fit the baseline (``config.baseline``); a pretrained-features run that chooses
    (``config.choose_features``) becomes the from-scratch SCRATCH_PRESET when the features do not clearly beat the pixels
    (features_not_better); augment / tta "auto" are resolved from the mirror check. Each choice is written to
    the run folder (runs.record_choice). Returns the config."""
    from noisycore import runs
    from noisycore.catalog import takes_embeddings
    from noisycore.config import PRESETS, TrainConfig, preset_values

    record = fit_for_run(run_dir, dataset, labels, truth_known=truth_known, seed=config.seed) \
        if config.baseline else None
    switch = features_not_better(record) if config.choose_features and takes_embeddings(config.model) else None
    if switch:
        own = PRESETS.get(config.preset or "", {})
        reference = TrainConfig(**preset_values(config.preset, len(labels))) if own else config
        # the preset's own values go back to the defaults; what the user changed (e.g. the epochs) is kept
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in own}
        changed = {k: getattr(config, k) for k in own
                   if k not in ("model", "choose_features") and getattr(config, k) != getattr(reference, k)}
        scratch = {**defaults, **preset_values(SCRATCH_PRESET, len(labels)), **changed, "choose_features": False}
        config = runs.record_choice(run_dir, config.replace(**scratch), switch)
    resolved, note = resolve_mirror(config, record)
    return runs.record_choice(run_dir, resolved, note) if resolved != config else config
