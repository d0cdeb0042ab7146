"""Co-teaching (Han et al. 2018, "Co-teaching: Robust Training of Deep Neural Networks with
Extremely Noisy Labels"): two networks, each trained on the small-loss images its PEER selects.

Per batch of B images with per-example losses l1 (network 1) and l2 (network 2):

    keep = floor((1 - R(e)) * B)                 R(e) = tau * min(e / T_k, 1)  (schedules.py)
    S1 = argsort(l1)[:keep],  S2 = argsort(l2)[:keep]
    network 1 descends mean(l1[S2]),  network 2 descends mean(l2[S1])

Networks fit clean, easy patterns before they memorize wrong labels, so early on the small-loss
images are mostly correctly labelled; exchanging the selections stops one network's selection
errors from reinforcing themselves. tau is the share of wrong labels, which Han et al. assume known:
here the rate the user gives, the rate the noise settings declare, or confident learning's estimate
(see ``CoTeachingMethod``); the true labels are read only by the "oracle_uses_true_labels" choice.

``CoTeachingModel`` is one ``keras.Model`` with a custom ``train_step`` (the shape of the keras.io
GAN example), so it keeps ``fit()``, callbacks and the progress bar. Predictions, evaluation,
checkpoints of the "best" epoch and the saved best.keras / last.keras use NETWORK 1 (a plain
functional model anyone can load); network 2's validation accuracy is logged as
``val_accuracy_2``. (Averaging the two would be a slightly stronger ensemble but would make the
saved model a custom class.)
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from noisycore.config import ConfigError
from noisycore.methods.standard import StandardMethod
from noisycore.schedules import coteaching_forget_rate

MAX_FORGET_RATE = 0.9


def select_small_loss(peer_losses, forget_rate):
    """Indices of the floor((1 - forget_rate) * B) examples with the smallest peer loss (at least 1).

    peer_losses: (B,) float; forget_rate: scalar in [0, 1). Returns int32 (keep,), ordered by
    increasing loss (ties keep the lower index first).
    """
    losses = tf.convert_to_tensor(peer_losses, dtype=tf.float32)
    batch = tf.shape(losses)[0]
    keep = tf.cast(tf.floor((1.0 - tf.cast(forget_rate, tf.float32)) * tf.cast(batch, tf.float32)), tf.int32)
    keep = tf.clip_by_value(keep, tf.minimum(1, batch), batch)
    return tf.argsort(losses, stable=True)[:keep]


def coteaching_selection(loss1, loss2, forget_rate) -> tuple:
    """(keep_for_1, keep_for_2): network 1 trains on the small-loss examples of network 2's loss
    and vice versa (the cross update of Han et al. 2018). loss1, loss2: (B,) per-example losses."""
    return select_small_loss(loss2, forget_rate), select_small_loss(loss1, forget_rate)


class CoTeachingModel(keras.Model):
    """Two networks trained by co-teaching; ``call`` returns network 1's probabilities."""

    def __init__(self, net1, net2, per_example_loss, **kwargs):
        super().__init__(name=kwargs.pop("name", "coteaching"), **kwargs)
        self.net1, self.net2 = net1, net2
        self.per_example_loss = per_example_loss
        self.forget_rate = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="forget_rate")
        self.loss_tracker = keras.metrics.Mean(name="loss")          # network 1's loss on its selection
        self.loss2_tracker = keras.metrics.Mean(name="loss_2")
        self.acc1 = keras.metrics.CategoricalAccuracy(name="accuracy")  # on all given labels of the batch
        self.acc2 = keras.metrics.CategoricalAccuracy(name="accuracy_2")

    @property
    def metrics(self):
        return [self.loss_tracker, self.loss2_tracker, self.acc1, self.acc2]

    def call(self, x, training=False):
        return self.net1(x, training=training)

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            p1 = self.net1(x, training=True)
            p2 = self.net2(x, training=True)
            l1 = self.per_example_loss(y, p1)
            l2 = self.per_example_loss(y, p2)
            keep_for_1, keep_for_2 = coteaching_selection(tf.stop_gradient(l1), tf.stop_gradient(l2),
                                                          self.forget_rate)
            loss1 = tf.reduce_mean(tf.gather(l1, keep_for_1))
            loss2 = tf.reduce_mean(tf.gather(l2, keep_for_2))
            penalty = sum(self.net1.losses, 0.0) + sum(self.net2.losses, 0.0)  # weight decay, if any
            total = loss1 + loss2 + penalty
        variables = self.net1.trainable_variables + self.net2.trainable_variables
        grads = tape.gradient(total, variables)
        self.optimizer.apply_gradients(zip(grads, variables))  # disjoint variables: one optimizer serves both
        self.loss_tracker.update_state(loss1)
        self.loss2_tracker.update_state(loss2)
        self.acc1.update_state(y, p1)
        self.acc2.update_state(y, p2)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data[0], data[1]
        p1 = self.net1(x, training=False)
        p2 = self.net2(x, training=False)
        self.loss_tracker.update_state(tf.reduce_mean(self.per_example_loss(y, p1)))
        self.loss2_tracker.update_state(tf.reduce_mean(self.per_example_loss(y, p2)))
        self.acc1.update_state(y, p1)
        self.acc2.update_state(y, p2)
        return {m.name: m.result() for m in self.metrics}


class ForgetRateCallback(keras.callbacks.Callback):
    """Sets ``model.forget_rate`` to R(epoch) at the beginning of each epoch (tau read from the method,
    which may estimate it after the first epoch; 0 until then)."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def on_epoch_begin(self, epoch, logs=None):
        tau = self.method.tau or 0.0
        self.model.forget_rate.assign(coteaching_forget_rate(epoch, tau=tau, t_k=self.method.t_k))


class CoTeachingMethod(StandardMethod):
    """Co-teaching; tau from method_params forget_rate (catalog.FORGET_RATE_SOURCES):

    a number   the rate the user declares;
    declared   ctx.noise_rate, the rate the noise settings declare (requested, not realized);
    estimated  confident learning's ``estimate_noise(y_fit, probs_fit).noise_rate`` from network 1's
               predictions on the fit split after the first epoch (R(0) = 0 with a ramp, t_k > 0, so
               the first epoch never needs tau; with t_k = 0 the first epoch forgets nothing);
    auto       (None, the default) declared when the settings give a rate, else estimated;
    oracle_uses_true_labels   the realized rate of the fit split (reads the true labels: experiments only).
    """

    name = "coteaching"
    extra_val_metrics = True    # val_accuracy_2 (the second network): Keras validates

    @property
    def uses_fit_probs(self) -> bool:
        """The estimate of tau needs every fit image's prediction until it is made."""
        return self.tau is None

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        choice = self.params["forget_rate"]
        choice = "auto" if choice is None else choice
        t_k = self.params["t_k"]
        if isinstance(t_k, bool) or not isinstance(t_k, int) or t_k < 0:
            raise ConfigError(f"t_k={t_k!r} must be an integer >= 0 (epochs)")
        self.t_k = t_k
        self.tau, self.source = self._initial_tau(choice)
        if self.tau is not None and not 0 <= self.tau <= MAX_FORGET_RATE:
            raise ConfigError(f"forget_rate={self.tau!r} must be a number in [0, {MAX_FORGET_RATE}]")

    def _initial_tau(self, choice) -> tuple:
        """(tau or None while it waits for the estimate, a description of where it comes from)."""
        from noisycore.catalog import FORGET_RATE_SOURCES

        if isinstance(choice, (int, float)) and not isinstance(choice, bool):
            return float(choice), "given in method_params"
        if choice not in FORGET_RATE_SOURCES:
            raise ConfigError(f"forget_rate={choice!r} must be a number in [0, {MAX_FORGET_RATE}] or one of: "
                              f"{', '.join(FORGET_RATE_SOURCES)}")
        declared = self.ctx.noise_rate
        if choice == "declared" and declared is None:
            raise ConfigError("forget_rate=declared, but these labels declare no noise rate (human or unknown "
                              "noise); give a number or use forget_rate=estimated")
        if choice in ("declared", "auto") and declared is not None:
            return float(declared), "declared: the requested noise rate of the noise settings"
        if choice == "oracle_uses_true_labels":
            if self.ctx.report_truth is None:
                raise ConfigError("forget_rate=oracle_uses_true_labels needs the true labels, which are unknown here")
            return float((np.asarray(self.ctx.report_truth) != np.asarray(self.ctx.y_fit)).mean()), \
                "oracle (uses true labels)"
        return None, "estimated by confident learning after epoch 1 (pending)"

    def build(self) -> keras.Model:
        model = CoTeachingModel(self.network(), self.network(seed_offset=1), self.per_example_loss())
        model(np.zeros((1, *self.ctx.input_shape), np.float32))  # build it (train_step never calls it)
        model.compile(optimizer=self.optimizer())
        return model

    def callbacks(self) -> list:
        return [ForgetRateCallback(self)]

    def predictor(self, model):
        return model.net1

    def after_epoch(self, epoch, probs_fit, model) -> dict:
        if self.tau is None:   # "estimated": confident learning on network 1's fit-split predictions
            from noisycore.detectors import estimate_noise

            p = np.asarray(probs_fit, dtype=np.float64)
            rate = estimate_noise(self.ctx.y_fit, p / p.sum(axis=1, keepdims=True)).noise_rate
            self.tau = min(float(rate), MAX_FORGET_RATE)
            self.source = f"estimated by confident learning after epoch {epoch + 1}"
        return {"forget_rate": float(model.forget_rate.numpy())}

    def summary(self) -> dict:
        return {"forget_rate_tau": self.tau, "forget_rate_source": self.source, "t_k": self.t_k}
