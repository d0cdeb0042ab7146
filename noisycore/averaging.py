"""The averaged weights (``ema_momentum`` > 0): Keras' optimizer EMA plus the BatchNorm statistics that go with it.

Keras' ``use_ema`` averages the trainable variables only: a_t = m a_{t-1} + (1 - m) w_t (a_1 = w_1).
BatchNorm's moving mean and variance are not trainable, so a model holding the averaged weights would
normalize with the statistics of the raw weights. Like airbench's lookahead (which averages the BatchNorm
buffers with the weights), ``SwapEMAWeights`` keeps the same average of every BatchNorm moving statistic,
updated after each training batch, s_t = m s_{t-1} + (1 - m) b_t (s_1 = b_1), and swaps it in and out with
the averaged weights: validation, the per-epoch evaluation, best.keras and last.keras all see one
consistent averaged network. (Measured against re-estimating the statistics on training batches for the
averaged weights: benchmarks/README.md, "Averaged weights and BatchNorm".)

    head, tail = averaging_callbacks(ema_momentum)   # head first in the callback list, tail last

``tail`` (``KeepAverageOnStop``) makes a run that stops early (early stopping, a stop request) end with
the averaged weights in the model, as a complete run does: Keras copies the optimizer's averages into the
model when ``fit`` ends, and after an epoch-end swap those hold the RAW weights.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

BN_STATISTICS = ("moving_mean", "moving_variance")   # the BatchNorm variables averaged with the weights


def batchnorm_statistics(model) -> list:
    """Every BatchNorm moving statistic of ``model`` (Keras' BatchNormalization and models.FusedBatchNorm)."""
    return [v for v in model.non_trainable_variables if v.name in BN_STATISTICS]


class SwapEMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras' SwapEMAWeights with the BatchNorm statistics averaged and swapped too, and every swap
    compiled into one graph. Keras swaps each weight with three eager assignments, four swaps per epoch
    (validation and epoch end); on a few hundred images that was a fifth of a run's time
    (benchmarks/README.md, "Prediction overhead"). The arithmetic is Keras' own (swap by addition)."""

    def __init__(self, swap_on_epoch=False):
        super().__init__(swap_on_epoch=swap_on_epoch)
        self._compiled: dict = {}     # name -> compiled function
        self._stats: list = []        # the model's BatchNorm statistics
        self._stat_averages: list = []
        self._steps = 0               # training batches averaged so far

    # -- the BatchNorm averages ---------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._stats = batchnorm_statistics(self.model)
        self._stat_averages = [tf.Variable(v.value, trainable=False, name=f"average_{v.name}") for v in self._stats]
        self._steps = 0
        self._compiled.clear()

    def _momentum(self) -> float:
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        return float(optimizer.ema_momentum)

    def _compile(self, name, fn):
        if name not in self._compiled:
            self._compiled[name] = tf.function(fn, autograph=False)
        return self._compiled[name]

    def on_train_batch_end(self, batch, logs=None):
        if not self._stats:
            return
        self._steps += 1
        if self._steps == 1:   # Keras' first step: the average is the value itself
            self._compile("first", lambda: [a.assign(v.value) for a, v in zip(self._stat_averages, self._stats)])()
            return
        m = self._momentum()
        self._compile("update", lambda: [a.assign(m * a + (1.0 - m) * v.value)
                                         for a, v in zip(self._stat_averages, self._stats)])()

    def _swap_statistics(self):
        def swap():
            for v, a in zip(self._stats, self._stat_averages):
                raw = tf.identity(v.value)
                v.assign(a)
                a.assign(raw)
        self._compile("swap_stats", swap)()

    def _swap_variables(self):
        super()._swap_variables()
        if self._stats:
            self._swap_statistics()

    def _finalize_ema_values(self):
        super()._finalize_ema_values()
        if self._stats:   # the averages in the model now: keep them when fit ends
            self._compile("finalize_stats", lambda: [a.assign(v.value) for a, v in zip(self._stat_averages, self._stats)])()

    def _tf_swap_variables(self, optimizer):
        key = f"swap_{id(optimizer)}"
        parent = super()._tf_swap_variables
        self._compile(key, lambda: parent(optimizer))()


class KeepAverageOnStop(keras.callbacks.Callback):
    """Last in the callback list: when the run stops after this epoch (early stopping, a stop request) while
    the averaged weights are in the model, make them the ones fit() leaves there (Keras' own rule does this
    after the final epoch only)."""

    def __init__(self, swap: SwapEMAWeights):
        super().__init__()
        self.swap = swap

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training and self.swap._ema_weights_in_model and epoch != self.params["epochs"] - 1:
            self.swap._finalize_ema_values()


def averaging_callbacks(ema_momentum: float) -> tuple:
    """(head, tail): the callbacks of the averaged weights, ``head`` first in fit's list (the later callbacks
    see the averaged weights at each epoch end), ``tail`` last. Both empty without an average."""
    if ema_momentum <= 0:
        return [], []
    swap = SwapEMAWeights(swap_on_epoch=True)
    return [swap], [KeepAverageOnStop(swap)]
