"""Robust losses for noisy labels, looked up by name.

Each loss is a pure per-example function ``fn(y_true, y_pred, **hyperparams) -> (B,)`` plus a thin
Keras wrapper (``get_loss``). ``y_true``: one-hot or soft targets, float (B, K); ``y_pred``:
predicted probabilities (B, K), any float dtype (float16 / bfloat16 under mixed precision are
cast to float32 first, so the loss is always computed and returned in float32).

Registries (dropdowns, the CLI and the tests read the same dicts):
``LOSSES`` name -> factory, ``LOSS_DEFAULTS`` name -> {hyperparameter: default},
``LOSS_HELP`` name -> one line a student understands.
"""
from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from noisycore import catalog  # noqa: E402
from noisycore.errors import UserError  # noqa: E402

EPSILON = 1e-7        # probabilities are clipped to [EPSILON, 1] before a log or a power (as Keras does)
LABEL_CLIP = 1e-4     # reverse losses: log 0 of a one-hot target is clipped to log 1e-4 = A (Wang et al. 2019)


def _prep(y_true, y_pred):
    """Cast both to float32 (mixed precision) and clip the probabilities away from 0."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.clip(ops.cast(y_pred, "float32"), EPSILON, 1.0)
    return y_true, y_pred


def cross_entropy(y_true, y_pred):
    """Categorical cross-entropy: CE = -sum_k y_k log p_k. Shapes (B, K), (B, K) -> (B,)."""
    y_true, y_pred = _prep(y_true, y_pred)
    return -ops.sum(y_true * ops.log(y_pred), axis=-1)


def label_smoothing(y_true, y_pred, *, epsilon=0.1):
    """Cross-entropy against smoothed targets y' = (1 - eps) y + eps / K (Szegedy et al. 2016).

    Uses Keras' own ``categorical_crossentropy(label_smoothing=eps)``, as the blog post does.
    Shapes (B, K), (B, K) -> (B,).
    """
    y_true, y_pred = _prep(y_true, y_pred)
    return keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=float(epsilon))


def reverse_cross_entropy(y_true, y_pred):
    """Reverse cross-entropy: RCE = -sum_k p_k log clip(y_k, 1e-4, 1).

    For a one-hot y this is -A (1 - p_y) with A = ln 1e-4 = -9.21 (about 9.21 * (1 - p_y)). That is
    the value of the authors' reference code (clip to 1e-4), NOT the paper's A = -4: the reverse term
    here is 9.21 / 4 = 2.3 times the paper's, so a beta here equals about 2.3 x beta in the paper.
    Shapes (B, K), (B, K) -> (B,). Wang et al. 2019, "Symmetric Cross Entropy for Robust Learning
    with Noisy Labels".
    """
    y_true, y_pred = _prep(y_true, y_pred)
    return -ops.sum(y_pred * ops.log(ops.clip(y_true, LABEL_CLIP, 1.0)), axis=-1)


def symmetric_cross_entropy(y_true, y_pred, *, alpha=0.1, beta=1.0):
    """Symmetric cross-entropy: SCE = alpha * CE(y, p) + beta * RCE(y, p).

    Shapes (B, K), (B, K) -> (B,). Wang et al. 2019 (ICCV); CIFAR-10 defaults alpha 0.1, beta 1.0 (the
    reference code's values, with its A = ln 1e-4; with the paper's A = -4 the same loss needs beta 2.3).
    """
    return alpha * cross_entropy(y_true, y_pred) + beta * reverse_cross_entropy(y_true, y_pred)


def generalized_cross_entropy(y_true, y_pred, *, q=0.7):
    """Generalized cross-entropy: GCE = sum_k y_k (1 - p_k^q) / q  (= (1 - p_y^q) / q for one-hot y).

    q -> 0 gives CE, q = 1 gives MAE. Linear in y so soft targets (mixup) work.
    Shapes (B, K), (B, K) -> (B,). Zhang & Sabuncu 2018, "Generalized Cross Entropy Loss for
    Training Deep Neural Networks with Noisy Labels".
    """
    y_true, y_pred = _prep(y_true, y_pred)
    return ops.sum(y_true * (1.0 - ops.power(y_pred, q)) / q, axis=-1)


def bootstrap_soft(y_true, y_pred, *, beta=0.95):
    """Soft bootstrapping: CE(t, p) with target t = beta * y + (1 - beta) * p, p NOT stopped.

    L = -sum_k (beta y_k + (1 - beta) p_k) log p_k = beta * CE(y, p) + (1 - beta) * H(p): the gradient
    flows through the prediction in the target, which makes the extra term an entropy penalty that
    rewards confident predictions (Reed et al. 2015, Sec. 3.1, "Training Deep Neural Networks on Noisy
    Labels with Bootstrapping"). With the prediction's gradient stopped the extra term would add no
    gradient through a softmax and the loss would train exactly like 0.95 x CE.
    Shapes (B, K), (B, K) -> (B,).
    """
    y_true, y_pred = _prep(y_true, y_pred)
    target = beta * y_true + (1.0 - beta) * y_pred
    return -ops.sum(target * ops.log(y_pred), axis=-1)


def bootstrap_hard(y_true, y_pred, *, beta=0.8):
    """Hard bootstrapping: CE(t, p) with t = beta * y + (1 - beta) * onehot(argmax p).

    The argmax one-hot is piecewise constant (its derivative is 0 almost everywhere, as in Reed et al.
    2015), so the gradient is that of CE against the fixed target t; ``stop_gradient`` only says so.
    Shapes (B, K), (B, K) -> (B,). Reed et al. 2015.
    """
    y_true, y_pred = _prep(y_true, y_pred)
    k = ops.shape(y_pred)[-1]
    guess = ops.stop_gradient(ops.one_hot(ops.argmax(y_pred, axis=-1), k, dtype="float32"))
    target = beta * y_true + (1.0 - beta) * guess
    return -ops.sum(target * ops.log(y_pred), axis=-1)


def normalized_cross_entropy(y_true, y_pred):
    """Normalized cross-entropy: NCE = (-sum_k y_k log p_k) / (-sum_j log p_j). (B, K) -> (B,)."""
    y_true, y_pred = _prep(y_true, y_pred)
    logp = ops.log(y_pred)
    return ops.sum(y_true * logp, axis=-1) / ops.sum(logp, axis=-1)


def nce_rce(y_true, y_pred, *, alpha=1.0, beta=1.0):
    """Active-passive loss NCE+RCE = alpha * NCE(y, p) + beta * RCE(y, p).

    Shapes (B, K), (B, K) -> (B,). Ma et al. 2020, "Normalized Loss Functions for Deep Learning
    with Noisy Labels" (CIFAR-10: alpha = beta = 1).
    """
    return alpha * normalized_cross_entropy(y_true, y_pred) + beta * reverse_cross_entropy(y_true, y_pred)


def forward_corrected(y_true, y_pred, *, noise_matrix):
    """Forward correction: CE(y, p @ T), T[i, j] = P(given j | true i) (K, K), an array or a variable.

    The model's clean-label probabilities p are pushed through the noise so they are compared
    with the noisy labels. Which T (known or estimated) a run uses is chosen in noisycore.forward. Shapes (B, K), (B, K), (K, K) -> (B,). Patrini et al. 2017, "Making
    Deep Neural Networks Robust to Label Noise: a Loss Correction Approach".
    """
    y_true, y_pred = _prep(y_true, y_pred)
    noisy_pred = ops.matmul(y_pred, ops.convert_to_tensor(noise_matrix, dtype="float32"))
    return cross_entropy(y_true, noisy_pred)


# The defaults, ranges and help text live in noisycore.catalog (no TensorFlow, for pages and CLI).
_FUNCTIONS = {
    "ce": cross_entropy,
    "label_smoothing": label_smoothing,
    "sce": symmetric_cross_entropy,
    "gce": generalized_cross_entropy,
    "bootstrap_soft": bootstrap_soft,
    "bootstrap_hard": bootstrap_hard,
    "nce_rce": nce_rce,
    "forward": forward_corrected,
}
assert set(_FUNCTIONS) == set(catalog.LOSS_SPECS), "noisycore.catalog and losses disagree on loss names"
LOSS_DEFAULTS = {name: dict(catalog.LOSS_DEFAULTS[name]) for name in _FUNCTIONS}
LOSS_HELP = {name: catalog.LOSS_HELP[name] for name in _FUNCTIONS}


def _check_noise_matrix(matrix, num_classes):
    """Return T as float32 (K, K) after checking shape, range and row sums."""
    if matrix is None:
        raise UserError("the forward loss needs noise_matrix (K x K, T[i, j] = P(given j | true i)); "
                        "pass the known matrix or estimate_noise_matrix(pred_probs)")
    t = np.asarray(matrix, dtype=np.float64)
    if t.shape != (num_classes, num_classes):
        raise UserError(f"noise_matrix has shape {t.shape}; expected ({num_classes}, {num_classes}) for "
                        f"num_classes={num_classes}")
    if not np.all(np.isfinite(t)) or t.min() < 0 or not np.allclose(t.sum(axis=1), 1.0, atol=1e-3):
        raise UserError(f"noise_matrix must be non-negative with rows summing to 1; row sums are "
                        f"{np.round(t.sum(axis=1), 4).tolist()}")
    return (t / t.sum(axis=1, keepdims=True)).astype(np.float32)


def resolve_hyperparams(name, *, num_classes, **hyperparams) -> dict:
    """Validate a loss name and its hyperparameters; return the defaults updated with them."""
    if name not in _FUNCTIONS:
        raise UserError(f"unknown loss {name!r}; choose one of: {', '.join(_FUNCTIONS)}")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise UserError(f"num_classes={num_classes!r} must be an integer >= 2")
    defaults, ranges = catalog.LOSS_DEFAULTS[name], catalog.LOSS_RANGES[name]
    unknown = sorted(set(hyperparams) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise UserError(f"loss {name!r} has no hyperparameter {', '.join(unknown)}; valid: {valid}")
    params = {**defaults, **{k: v for k, v in hyperparams.items() if v is not None}}
    for key, (low, high) in ranges.items():
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
                or math.isnan(value):
            raise UserError(f"loss {name!r}: {key}={value!r} must be a number in [{low}, {high}]")
        params[key] = float(value)
    if name in ("sce", "nce_rce") and params["alpha"] == 0 and params["beta"] == 0:
        raise UserError(f"loss {name!r}: alpha and beta are both 0, so nothing would be learned")
    if name == "forward":
        for key in catalog.LOSS_SETUP_KEYS[name]:   # how T was chosen (noisycore.forward), not the loss's input
            params.pop(key, None)
        t = params["noise_matrix"]
        if isinstance(t, keras.Variable):   # the two-stage estimate: T is assigned after the warm-up
            _check_noise_matrix(keras.ops.convert_to_numpy(t), int(num_classes))
        else:
            params["noise_matrix"] = _check_noise_matrix(t, int(num_classes))
    return params


def _factory(name):
    fn = _FUNCTIONS[name]

    def make(*, num_classes, **hyperparams):
        params = resolve_hyperparams(name, num_classes=num_classes, **hyperparams)

        def per_example(y_true, y_pred):
            return fn(y_true, y_pred, **params)

        per_example.__name__ = f"{name}_per_example"
        per_example.__doc__ = fn.__doc__
        return per_example

    make.__name__ = f"make_{name}"
    make.__doc__ = f"Return the per-example {name!r} loss (y_true, y_pred) -> (B,). {LOSS_HELP[name]}"
    return make


LOSSES = {name: _factory(name) for name in _FUNCTIONS}


def per_example_loss(name, *, num_classes, **hyperparams):
    """The per-example loss ``(y_true (B, K), y_pred (B, K)) -> (B,)`` float32, e.g. for co-teaching."""
    if name not in LOSSES:
        raise UserError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    return LOSSES[name](num_classes=num_classes, **hyperparams)


@keras.saving.register_keras_serializable(package="noisycore")
class NoisyLabelLoss(keras.losses.Loss):
    """Keras wrapper around a per-example loss from ``LOSSES`` (saved and reloaded by name)."""

    def __init__(self, loss_name, *, num_classes, hyperparams=None, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(name=name or loss_name, reduction=reduction, dtype=dtype)
        self.loss_name = loss_name
        self.num_classes = int(num_classes)
        self.hyperparams = dict(hyperparams or {})
        self._fn = per_example_loss(loss_name, num_classes=self.num_classes, **self.hyperparams)

    def call(self, y_true, y_pred):
        return self._fn(y_true, y_pred)

    def get_config(self):
        def plain(v):
            if isinstance(v, keras.Variable):
                v = keras.ops.convert_to_numpy(v)
            return np.asarray(v).tolist() if isinstance(v, np.ndarray) else v

        params = {k: plain(v) for k, v in self.hyperparams.items()}
        return {**super().get_config(), "loss_name": self.loss_name, "num_classes": self.num_classes,
                "hyperparams": params}


_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def get_loss(name, *, num_classes, reduction="sum_over_batch_size", **hyperparams) -> keras.losses.Loss:
    """A Keras loss for ``compile``; ``reduction="none"`` gives the per-example (B,) values.

    ``ce`` and ``label_smoothing`` are Keras' own CategoricalCrossentropy; the others wrap the
    per-example functions of this module (see their docstrings for formulas and papers).
    """
    if reduction not in _REDUCTIONS:
        raise UserError(f"reduction={reduction!r} is not valid; choose one of: {_REDUCTIONS}")
    params = resolve_hyperparams(name, num_classes=num_classes, **hyperparams)
    if name in ("ce", "label_smoothing"):
        return keras.losses.CategoricalCrossentropy(label_smoothing=params.get("epsilon", 0.0),
                                                    reduction=reduction, name=name)
    return NoisyLabelLoss(name, num_classes=num_classes, hyperparams=hyperparams, reduction=reduction)


def _check_pred_probs(pred_probs) -> np.ndarray:
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] < p.shape[1]:
        raise UserError(f"pred_probs has shape {p.shape}; expected (N, K) probabilities with K >= 2 and N >= K")
    if not np.all(np.isfinite(p)) or p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise UserError("pred_probs must be finite, non-negative, with rows summing to 1 (softmax outputs)")
    return p


def estimate_noise_matrix(pred_probs, *, percentile=97.0) -> np.ndarray:
    """Estimate T[i, j] = P(given j | true i) from anchor points (Patrini et al. 2017).

    ``pred_probs`` (N, K): a model's predictions of the *given* (noisy) labels, best out-of-sample.
    For each class i the anchor is the example at the ``percentile``-th percentile of p(i | x)
    (not the maximum, which is often an over-confident outlier); then T[i, :] = p(. | anchor).
    Returns a float64 (K, K) row-stochastic matrix.
    """
    p = _check_pred_probs(pred_probs)
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 50 <= percentile <= 100:
        raise UserError(f"percentile={percentile!r} must be a number in [50, 100] (the paper uses 97)")
    k = p.shape[1]
    t = np.empty((k, k))
    for i in range(k):
        column = p[:, i]
        threshold = np.percentile(column, percentile, method="higher")  # an actual example's value
        anchor = int(np.argmax(np.where(column <= threshold, column, -np.inf)))
        t[i] = p[anchor]
    return t / t.sum(axis=1, keepdims=True)
