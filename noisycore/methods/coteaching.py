"""Co-teaching (Han et al. 2018, "Co-teaching: Robust Training of Deep Neural Networks with
Extremely Noisy Labels"): two networks, each trained on the small-loss images its PEER selects.

Per batch of B images with per-example losses l1 (network 1) and l2 (network 2):

    keep = floor((1 - R(e)) * B)                 R(e) = tau * min(e / T_k, 1)  (schedules.py)
    S1 = argsort(l1)[:keep],  S2 = argsort(l2)[:keep]
    network 1 descends mean(l1[S2]),  network 2 descends mean(l2[S1])

Networks fit clean, easy patterns before they memorize wrong labels, so early on the small-loss
images are mostly correctly labelled; exchanging the selections stops one network's selection
errors from reinforcing themselves. tau defaults to the noise rate (see ``CoTeachingMethod``).

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
    """Sets ``model.forget_rate`` to R(epoch) at the beginning of each epoch."""

    def __init__(self, *, tau: float, t_k: int):
        super().__init__()
        self.tau, self.t_k = float(tau), int(t_k)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.forget_rate.assign(coteaching_forget_rate(epoch, tau=self.tau, t_k=self.t_k))


class CoTeachingMethod(StandardMethod):
    """Co-teaching with tau = method_params forget_rate, else ctx.noise_rate (the realized rate
    when the truth is known, else the config's requested rate)."""

    name = "coteaching"

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        tau = self.params["forget_rate"]
        if tau is None:
            tau = ctx.noise_rate
        if tau is None:
            raise ConfigError("co-teaching needs a forget rate: the noise rate is unknown, so set "
                              "method_params forget_rate (the share of labels you believe are wrong, e.g. 0.2)")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 <= tau <= MAX_FORGET_RATE:
            raise ConfigError(f"forget_rate={tau!r} must be a number in [0, {MAX_FORGET_RATE}]")
        t_k = self.params["t_k"]
        if isinstance(t_k, bool) or not isinstance(t_k, int) or t_k < 0:
            raise ConfigError(f"t_k={t_k!r} must be an integer >= 0 (epochs)")
        self.tau, self.t_k = float(tau), t_k

    def build(self) -> keras.Model:
        model = CoTeachingModel(self.network(), self.network(seed_offset=1), self.per_example_loss())
        model(np.zeros((1, *self.ctx.input_shape), np.float32))  # build it (train_step never calls it)
        model.compile(optimizer=self.optimizer())
        return model

    def callbacks(self) -> list:
        return [ForgetRateCallback(tau=self.tau, t_k=self.t_k)]

    def predictor(self, model):
        return model.net1

    def after_epoch(self, epoch, probs_fit, model) -> dict:
        return {"forget_rate": float(model.forget_rate.numpy())}

    def summary(self) -> dict:
        return {"forget_rate_tau": self.tau, "t_k": self.t_k}
