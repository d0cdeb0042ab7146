"""Which noise matrix T the forward loss uses, and where it came from (Patrini et al. 2017).

The forward loss trains on CE(y, p @ T) with ``T[i, j] = P(given j | true i)``. Its loss parameters:

    matrix="known"       T = loss_params noise_matrix if given, else the requested matrix of the noise
                         (injected noise, or the saved label set's noise.json ``requested_matrix``):
                         a declared matrix, never one counted from the true labels.
    matrix="estimated"   T estimated by confident learning (``issues.estimate_noise(labels, probs)``,
                         Northcutt et al. 2021; no true labels), in one of two ways:
      matrix_from=RUN    from a finished reference run: its out-of-sample cv_probs.npy when it was
                         cross-validated, else its in-sample predictions, with its given labels;
      (no matrix_from)   the built-in two-stage run: ``warmup_epochs`` epochs with T = I (exactly
                         cross-entropy), then T is estimated from the network's predictions on the FIT
                         split (the images it trains on, against their given labels) and the run
                         continues with the forward loss.

Why the built-in two stages: Patrini et al. estimate T from the predictions of a first network trained
on the noisy labels, then train the corrected one. Continuing the same network after a short CE
warm-up gives that procedure in one run (no second training from scratch); a short warm-up keeps the
estimate from the phase before the network memorizes the wrong labels, when its predictions are the
most informative about them. In-sample predictions are optimistic about the given labels, so the
estimate is conservative (closer to I); a cross-validated reference run (matrix_from) avoids that.
Either way T is only as good as the model that predicted: after a warm-up too short for the network to
learn the classes, the estimate is close to uniform rows and the forward loss then hurts (seen on the
built-in shapes: 2 warm-up epochs on 1,350 images, 13% accuracy, gave rows near 0.1).

The matrix used (and the estimate, when there is one) is written to RUN/noise_matrix_used.json.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from noisycore import catalog, runs
from noisycore.config import ConfigError, default_runs_dir

MATRIX_FILE = "noise_matrix_used.json"


def reference_run(matrix_from: str) -> Path:
    """The reference run folder: a path, or a run id under the runs folder."""
    path = Path(matrix_from).expanduser()
    if not path.is_dir():
        path = default_runs_dir() / matrix_from
    if not (path / "predictions.npz").is_file():
        raise ConfigError(f"forward loss: matrix_from={matrix_from!r} is not a finished run (no predictions.npz); "
                          "give the id or folder of a finished run on the same images")
    return path


def estimate_from_run(run_dir, *, num_classes: int) -> tuple:
    """(T (K, K), description): confident learning on a finished run's labels and probabilities
    (cross-validated when it has cv_probs.npy, else its in-sample predictions)."""
    from noisycore import detect
    from noisycore.detectors import estimate_noise

    run = reference_run(str(run_dir))
    info = detect.read_run_labels(run)
    source = "cross_validation" if (run / detect.CV_PROBS).is_file() else "in_sample"
    probs = detect.pred_probs(run, source=source, ids=info.ids)
    if probs.shape[1] != num_classes:
        raise ConfigError(f"forward loss: reference run {run.name} has {probs.shape[1]} classes, this run {num_classes}")
    text = f"estimated by confident learning from run {run.name} ({source.replace('_', '-')} predictions)"
    return estimate_noise(info.labels, probs).noise_matrix, text


def initial_matrix(config, noisy, *, num_classes: int) -> dict:
    """What the run starts with: {"noise_matrix": (K, K) list, "source": str, "estimated": bool,
    "warmup_epochs": int or None, "reference_run": str or None}. Raises ConfigError when T is unknown."""
    kw, opts = config.loss_kwargs, catalog.forward_options(config.loss_kwargs)
    record = {"matrix": opts["matrix"], "estimated": opts["matrix"] == "estimated", "warmup_epochs": None,
              "reference_run": None, "estimated_at_epoch": None, "estimated_matrix": None}
    if opts["matrix"] == "known":
        if kw.get("noise_matrix") is not None:
            t, text = np.asarray(kw["noise_matrix"], float), "given in loss_params noise_matrix"
        elif noisy.requested_matrix is not None:
            t = np.asarray(noisy.requested_matrix, float)
            text = ("the requested matrix of the label set's noise.json" if config.labels_path
                    else f"the requested matrix of the {config.noise.model} noise")
        else:
            raise ConfigError("the forward loss with matrix=known needs a declared noise matrix, but these labels "
                              "have none (human or unknown noise); use matrix=estimated (confident learning "
                              "after a CE warm-up, or matrix_from a finished run)")
    elif opts["matrix_from"] is not None:
        t, text = estimate_from_run(opts["matrix_from"], num_classes=num_classes)
        record.update(reference_run=opts["matrix_from"], estimated_matrix=t.tolist())
    else:
        catalog.check_forward(config)
        t = np.eye(num_classes)
        text = f"identity (plain CE) during the {opts['warmup_epochs']}-epoch warm-up; estimate pending"
        record["warmup_epochs"] = opts["warmup_epochs"]
    return {**record, "noise_matrix": np.asarray(t, float).tolist(), "source": text}


def save_record(run_dir, record: dict) -> None:
    runs.write_json(Path(run_dir) / MATRIX_FILE, record)


def read_record(run_dir) -> Optional[dict]:
    """RUN/noise_matrix_used.json, or None (other losses, runs made before it existed)."""
    from noisycore.evaluation import forward_record

    return forward_record(run_dir)


def describe(record: Optional[dict]) -> str:
    """A few lines for the terminal: where T came from and the matrix itself."""
    if not record:
        return "forward loss: no noise matrix recorded"
    t = np.asarray(record["noise_matrix"], float)
    rows = "\n".join("  " + " ".join(f"{v:5.2f}" for v in row) for row in t)
    return f"forward loss noise matrix T[true, given] ({record['source']}):\n{rows}"


def make_warmup_callback(*, variable, record: dict, run_dir, fit_probs, fit_labels):
    """A Keras callback that, after the warm-up, estimates T from ``fit_probs()`` (the fit split's
    predictions of that epoch) and ``fit_labels`` and assigns it to ``variable`` (the loss's T)."""
    import keras

    from noisycore.detectors import estimate_noise

    warmup = int(record["warmup_epochs"])

    class EstimateAfterWarmup(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 != warmup:
                return
            probs = fit_probs()
            if probs is None:   # the epoch was cut short by a stop request
                return
            p = np.asarray(probs, dtype=np.float64)
            p /= p.sum(axis=1, keepdims=True)
            t = estimate_noise(fit_labels, p).noise_matrix
            variable.assign(t.astype(np.float32))
            record.update(noise_matrix=t.tolist(), estimated_matrix=t.tolist(), estimated_at_epoch=warmup,
                          source=f"estimated by confident learning on the fit split's predictions after the "
                                 f"{warmup}-epoch CE warm-up (in-sample)")
            save_record(run_dir, record)

    return EstimateAfterWarmup()
