"""noisycore.averaging: the averaged weights come with averaged BatchNorm statistics, at every epoch end and
when fit ends, also after an early stop (issue 31, points 2 and 3)."""
import numpy as np
import pytest

import keras

from noisycore.averaging import KeepAverageOnStop, SwapEMAWeights, averaging_callbacks, batchnorm_statistics
from noisycore.models import FusedBatchNorm

MOMENTUM = 0.8


def _model(norm):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((2, 2, 3))
    x = keras.layers.Conv2D(4, 1)(inputs)
    x = norm(x)
    x = keras.layers.Flatten()(keras.layers.Activation("relu")(x))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2, use_ema=True, ema_momentum=MOMENTUM),
                  loss="categorical_crossentropy")
    return model


class Raw(keras.callbacks.Callback):
    """Records the raw weights and statistics after every training batch, and what the model holds at
    each epoch end and when training ends."""

    def __init__(self):
        super().__init__()
        self.steps, self.epoch_ends, self.at_end = [], [], None

    def _now(self):
        return ([v.numpy().copy() for v in self.model.trainable_variables],
                [v.numpy().copy() for v in batchnorm_statistics(self.model)])

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self._now())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append((len(self.steps), self._now()))

    def on_train_end(self, logs=None):   # where train.LastModelSaver saves last.keras
        self.at_end = self._now()


class StopAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True   # as EarlyStopping does, after the swap into the averages


def _average(values):
    """Keras' EMA by hand: a_1 = v_1, a_t = m a_{t-1} + (1 - m) v_t."""
    a = np.asarray(values[0], np.float64)
    for v in values[1:]:
        a = MOMENTUM * a + (1 - MOMENTUM) * np.asarray(v, np.float64)
    return a


def _expected(steps, n):
    weights = [_average([s[0][i] for s in steps[:n]]) for i in range(len(steps[0][0]))]
    stats = [_average([s[1][i] for s in steps[:n]]) for i in range(len(steps[0][1]))]
    return weights, stats


def _assert_holds(now, expected):
    for got, want in zip(now[0] + now[1], expected[0] + expected[1]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", [lambda x: keras.layers.BatchNormalization(momentum=0.5)(x),
                                  lambda x: FusedBatchNorm(momentum=0.4)(x)], ids=["keras_bn", "fused_bn"])
@pytest.mark.parametrize("stop", [None, 1], ids=["complete", "early_stop"])
def test_model_holds_averaged_weights_with_averaged_batchnorm_statistics(norm, stop):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 2, 2, 3)).astype(np.float32) + 2.0   # a mean far from BatchNorm's start (0, 1)
    y = keras.utils.to_categorical(rng.integers(0, 2, 24), 2)
    model = _model(norm)
    head, tail = averaging_callbacks(MOMENTUM)
    raw = Raw()
    callbacks = head + [raw] + ([StopAfter(stop)] if stop is not None else []) + tail
    model.fit(x, y, batch_size=8, epochs=4, validation_data=(x[:8], y[:8]), shuffle=False, callbacks=callbacks,
              verbose=0)
    steps = raw.steps
    assert len(steps) == 3 * (4 if stop is None else stop + 1)
    # every epoch end (the recorder, the checkpoint): the averages of weights AND statistics
    for n, now in raw.epoch_ends:
        _assert_holds(now, _expected(steps, n))
    # fit's end (last.keras), complete or stopped early: the same averages, not the raw weights
    _assert_holds(raw.at_end, _expected(steps, len(steps)))
    raw_stats = steps[-1][1]
    assert not all(np.allclose(a, b, atol=1e-3) for a, b in zip(raw.at_end[1], raw_stats)), \
        "the test cannot tell averaged from raw statistics"


def test_no_average_no_callbacks():
    assert averaging_callbacks(0.0) == ([], [])
    head, tail = averaging_callbacks(0.9)
    assert isinstance(head[0], SwapEMAWeights) and isinstance(tail[0], KeepAverageOnStop) and tail[0].swap is head[0]
