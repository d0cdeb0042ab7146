"""Confidence weighting: after a warm-up, each image counts in proportion to p[given label]^gamma.

The blog post weights by the *maximum* probability, max_k p_k. That is unsound: an image whose
label is wrong but whose true class the model already recognizes has a high max probability, so it
is *up*-weighted, and the loss then pushes hard towards the wrong label; the weight measures the
model's confidence in its own prediction, not in the label. Weighting by the probability of the
GIVEN label does the opposite: an image the model confidently assigns to another class gets a
small weight, so likely-wrong labels count less (cf. the small-loss trick; w is a monotone
function of the CE loss, w = exp(-gamma * CE)).

    w_i = p_i[y_i]^gamma / mean_j p_j[y_j]^gamma      (normalized to mean 1; 1 during the warm-up)

The weights are recomputed after every epoch from predictions on the un-augmented training split
(the same pass that fills metrics.csv) and read per batch, by example index, in a custom
``train_step`` that otherwise defers to Keras (so fit(), callbacks and metrics are unchanged).
Weighting starts after ``warmup_epochs`` because an untrained network's p[y] is ~1/K everywhere.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from noisycore.config import ConfigError
from noisycore.methods.standard import StandardMethod

MIN_WEIGHT = 1e-3   # keeps every image in play a little (p[y] can underflow to 0)


def confidence_weights(p_given, *, gamma: float = 1.0) -> np.ndarray:
    """w = p^gamma normalized to mean 1. p_given: (N,) probabilities of the given labels -> (N,) float32."""
    p = np.asarray(p_given, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1 + 1e-6:
        raise ConfigError(f"p_given must be a non-empty (N,) array of probabilities, got shape {p.shape}")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 10:
        raise ConfigError(f"gamma={gamma!r} must be a number in [0, 10]")
    w = np.maximum(p, MIN_WEIGHT) ** float(gamma)
    return (w / w.mean()).astype(np.float32)


class ExampleAwareModel(keras.Model):
    """One network whose training batches (x, y, index) look up a weight, and optionally a
    replacement label, per example: sample_weight = weights[index], y = onehot(labels[index]).

    Both tables are non-trainable variables that callbacks may overwrite between epochs.
    Predictions, evaluation and saving go through ``self.net``.
    """

    def __init__(self, net, *, num_examples, num_classes, use_example_labels=False, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{net.name}_example_aware"), **kwargs)
        self.net = net
        self.num_classes = int(num_classes)
        self.use_example_labels = bool(use_example_labels)
        self.example_weights = self.add_weight(shape=(int(num_examples),), initializer="ones",
                                               trainable=False, name="example_weights")
        self.example_labels = self.add_weight(shape=(int(num_examples),), initializer="zeros", dtype="int32",
                                              trainable=False, name="example_labels")

    def call(self, x, training=False):
        return self.net(x, training=training)

    def train_step(self, data):
        x, y, index = data
        if self.use_example_labels:
            y = tf.one_hot(tf.gather(self.example_labels, index), self.num_classes, dtype=tf.float32)
        weights = tf.gather(self.example_weights, index)
        return super().train_step((x, y, weights))


class ExampleAwareMethod(StandardMethod):
    """Base of the methods that train an ExampleAwareModel (per-example weights, or labels that
    change during training); what it predicts and saves is the plain inner network."""

    use_example_labels = False
    uses_fit_probs = True       # weights / labels follow every fit image's prediction

    def build(self) -> keras.Model:
        model = ExampleAwareModel(self.network(), num_examples=len(self.ctx.y_fit),
                                  num_classes=self.ctx.num_classes, use_example_labels=self.use_example_labels)
        self.init_model(model)
        model.compile(optimizer=self.optimizer(), loss=self.loss(),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
        return model

    def init_model(self, model) -> None:
        """Set the model's per-example variables before training (default: weights 1, given labels)."""

    def train_data(self):
        return self.train_dataset(with_index=True)

    def predictor(self, model):
        return model.net


class ConfidenceWeightingMethod(ExampleAwareMethod):
    """Standard training with per-example weights p[given]^gamma after a warm-up (see module doc)."""

    name = "confidence_weighting"

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        w, g = self.params["warmup_epochs"], self.params["gamma"]
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ConfigError(f"warmup_epochs={w!r} must be an integer >= 0")
        confidence_weights(np.ones(1), gamma=g)  # validates gamma
        self._weights = np.ones(len(ctx.y_fit), np.float32)

    def after_epoch(self, epoch, probs_fit, model) -> dict:
        """From the epoch that follows the warm-up on, weight by confidence in the given label."""
        if epoch + 1 >= self.params["warmup_epochs"]:
            p_given = probs_fit[np.arange(len(self.ctx.y_fit)), self.ctx.y_fit]
            self._weights = confidence_weights(p_given, gamma=float(self.params["gamma"]))
            model.example_weights.assign(self._weights)
        return self._report()

    def _report(self) -> dict:
        """Mean weight of wrong vs right labels for the NEXT epoch (evaluation only; needs the truth)."""
        truth = self.ctx.report_truth
        if truth is None:
            return {"weight_noisy": None, "weight_clean": None}
        noisy = truth != self.ctx.y_fit
        mean = lambda m: float(self._weights[m].mean()) if m.any() else None  # noqa: E731
        return {"weight_noisy": mean(noisy), "weight_clean": mean(~noisy)}

    def summary(self) -> dict:
        return {f"final_{k}": v for k, v in self._report().items()}
