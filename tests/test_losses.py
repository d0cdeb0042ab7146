"""Robust losses: hand-computed values, Keras equivalence, gradients, dtypes, and real training."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from noisycore.errors import UserError
from noisycore.losses import (LOSS_DEFAULTS, LOSS_HELP, LOSSES, NoisyLabelLoss, estimate_noise_matrix,
                              get_loss, per_example_loss)

# Three examples, three classes. Example 2 is predicted wrongly (argmax 0, label 1).
Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
P = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]], dtype=np.float32)
T3 = np.array([[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.2, 0.0, 0.8]])
ln = math.log
A = ln(1e-4)  # the clipped log 0 of the reverse losses


def ce_row(t, p):
    return -sum(ti * ln(pi) for ti, pi in zip(t, p))


EXPECTED = {
    "ce": [-ln(0.7), -ln(0.3), -ln(0.5)],
    # targets (1 - 0.1) y + 0.1 / 3
    "label_smoothing": [ce_row([0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3], [0.7, 0.2, 0.1]),
                        ce_row([0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3], [0.6, 0.3, 0.1]),
                        ce_row([0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3], [0.2, 0.3, 0.5])],
    # 0.1 * CE + 1.0 * RCE, RCE = -A (1 - p_y)
    "sce": [0.1 * -ln(0.7) - A * 0.3, 0.1 * -ln(0.3) - A * 0.7, 0.1 * -ln(0.5) - A * 0.5],
    # (1 - p_y^0.7) / 0.7
    "gce": [(1 - 0.7 ** 0.7) / 0.7, (1 - 0.3 ** 0.7) / 0.7, (1 - 0.5 ** 0.7) / 0.7],
    # target 0.95 y + 0.05 p
    "bootstrap_soft": [ce_row([0.95 + 0.035, 0.01, 0.005], [0.7, 0.2, 0.1]),
                       ce_row([0.03, 0.95 + 0.015, 0.005], [0.6, 0.3, 0.1]),
                       ce_row([0.01, 0.015, 0.95 + 0.025], [0.2, 0.3, 0.5])],
    # target 0.8 y + 0.2 onehot(argmax p): example 2 is pulled towards its predicted class 0
    "bootstrap_hard": [-ln(0.7), ce_row([0.2, 0.8, 0.0], [0.6, 0.3, 0.1]), -ln(0.5)],
    # NCE = log p_y / sum_j log p_j, plus RCE
    "nce_rce": [ln(0.7) / (ln(0.7) + ln(0.2) + ln(0.1)) - A * 0.3,
                ln(0.3) / (ln(0.6) + ln(0.3) + ln(0.1)) - A * 0.7,
                ln(0.5) / (ln(0.2) + ln(0.3) + ln(0.5)) - A * 0.5],
    # CE(y, p @ T): (p @ T)[0] = [0.56, 0.14+0.04, ...] -> column y of p @ T
    "forward": [-ln(0.7 * 0.8 + 0.1 * 0.2), -ln(0.6 * 0.2 + 0.3 * 0.8), -ln(0.3 * 0.2 + 0.5 * 0.8)],
}
PARAMS = {"forward": {"noise_matrix": T3}}


def test_registries_agree():
    assert set(LOSSES) == set(LOSS_DEFAULTS) == set(LOSS_HELP) == set(EXPECTED)
    assert LOSS_DEFAULTS["sce"] == {"alpha": 0.1, "beta": 1.0} and LOSS_DEFAULTS["gce"] == {"q": 0.7}
    assert all(isinstance(h, str) and 20 < len(h) < 120 for h in LOSS_HELP.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hand_computed_values(name):
    fn = per_example_loss(name, num_classes=3, **PARAMS.get(name, {}))
    got = np.asarray(fn(Y, P))
    assert got.shape == (3,) and got.dtype == np.float32
    np.testing.assert_allclose(got, EXPECTED[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_keras_wrapper_reductions(name):
    params = PARAMS.get(name, {})
    none = get_loss(name, num_classes=3, reduction="none", **params)
    np.testing.assert_allclose(np.asarray(none(Y, P)), EXPECTED[name], rtol=1e-5, atol=1e-6)
    mean = get_loss(name, num_classes=3, **params)
    assert float(mean(Y, P)) == pytest.approx(np.mean(EXPECTED[name]), rel=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(mean))
    assert float(restored(Y, P)) == pytest.approx(np.mean(EXPECTED[name]), rel=1e-5)


def test_matches_keras_builtins():
    ls = keras.losses.CategoricalCrossentropy(label_smoothing=0.1, reduction="none")
    np.testing.assert_allclose(per_example_loss("label_smoothing", num_classes=3)(Y, P), ls(Y, P), rtol=1e-6)
    if not hasattr(keras.losses, "CategoricalGeneralizedCrossEntropy"):
        pytest.skip("this keras has no CategoricalGeneralizedCrossEntropy; covered by the hand values")
    ref = keras.losses.CategoricalGeneralizedCrossEntropy(q=0.7, reduction="none")  # integer labels
    np.testing.assert_allclose(per_example_loss("gce", num_classes=3)(Y, P), ref(np.argmax(Y, 1), P), rtol=1e-5)


def test_soft_targets_are_linear_for_gce_and_ce():
    soft = np.array([[0.5, 0.5, 0.0]], dtype=np.float32)
    p = P[:1]
    for name in ("ce", "gce"):  # (the reverse term of sce is not linear in y)
        fn = per_example_loss(name, num_classes=3)
        mixed = 0.5 * fn(Y[:1], p) + 0.5 * fn(Y[1:2], p)
        np.testing.assert_allclose(fn(soft, p), mixed, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gradients_finite_even_for_saturated_predictions(name):
    fn = per_example_loss(name, num_classes=3, **PARAMS.get(name, {}))
    logits = tf.Variable([[30.0, -30.0, 0.0], [0.0, 0.0, 0.0], [-50.0, 50.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(fn(Y, tf.nn.softmax(logits)))
    grad = tape.gradient(loss, logits).numpy()
    assert np.isfinite(float(loss)) and np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_bootstrap_target_carries_gradient():
    """Reed et al.: d/dp_k of -sum_k (b y_k + (1 - b) p_k) log p_k = -b y_k / p_k - (1 - b)(log p_k + 1)
    (the prediction inside the target is differentiated too; see tests/test_fidelity.py via logits)."""
    p = tf.Variable(P[:1])
    with tf.GradientTape() as tape:
        loss = per_example_loss("bootstrap_soft", num_classes=3)(Y[:1], p)
    expected = -0.95 * Y[:1] / P[:1] - 0.05 * (np.log(P[:1]) + 1.0)
    np.testing.assert_allclose(tape.gradient(loss, p).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_precision_predictions_are_cast_to_float32(dtype):
    for name in EXPECTED:
        fn = per_example_loss(name, num_classes=3, **PARAMS.get(name, {}))
        got = fn(Y, tf.cast(P, dtype))
        assert got.dtype == tf.float32, name
        np.testing.assert_allclose(got.numpy(), EXPECTED[name], rtol=2e-2, atol=1e-2)


def test_bad_names_and_hyperparameters_are_explained():
    with pytest.raises(UserError, match="unknown loss 'mae'.*gce"):
        get_loss("mae", num_classes=3)
    with pytest.raises(UserError, match="q=1.5"):
        get_loss("gce", num_classes=3, q=1.5)
    with pytest.raises(UserError, match="no hyperparameter epsilon.*alpha"):
        per_example_loss("sce", num_classes=3, epsilon=0.1)
    with pytest.raises(UserError, match="needs noise_matrix"):
        get_loss("forward", num_classes=3)
    with pytest.raises(UserError, match=r"shape \(2, 2\)"):
        get_loss("forward", num_classes=3, noise_matrix=np.eye(2))
    with pytest.raises(UserError, match="rows summing to 1"):
        get_loss("forward", num_classes=3, noise_matrix=np.full((3, 3), 0.5))
    with pytest.raises(UserError, match="reduction='avg'"):
        get_loss("ce", num_classes=3, reduction="avg")
    assert isinstance(get_loss("gce", num_classes=3, q=0.5), NoisyLabelLoss)


def test_estimate_noise_matrix_recovers_t_from_anchors():
    """Noisy-label posteriors are clean posteriors pushed through T; anchors are examples whose
    clean posterior is one-hot. Over-confident outliers (top 2%) must not be chosen as anchors."""
    rng = np.random.default_rng(0)
    t = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    n_rest, blocks = 940, []
    blocks.append(rng.dirichlet([1.0, 1.0, 1.0], size=n_rest) @ t)  # ordinary examples
    for i in range(3):
        blocks.append(np.tile(t[i], (20, 1)))           # anchors: clean posterior e_i -> T[i]
        blocks.append(np.tile(np.eye(3)[i], (20, 1)))  # outliers: p(i | x) = 1
    pred = np.concatenate(blocks)
    np.testing.assert_allclose(estimate_noise_matrix(pred), t, atol=1e-9)
    # with percentile 100 the outliers win: T would look noise-free
    np.testing.assert_allclose(estimate_noise_matrix(pred, percentile=100), np.eye(3), atol=1e-9)
    with pytest.raises(UserError, match="rows summing to 1"):
        estimate_noise_matrix(pred * 2)
    with pytest.raises(UserError, match="percentile=120"):
        estimate_noise_matrix(pred, percentile=120)


def _blobs(n, rng, noise_rate):
    centers = np.array([[0.0, 3.0], [-2.6, -1.5], [2.6, -1.5]])
    true = rng.integers(0, 3, n)
    x = centers[true] + rng.normal(size=(n, 2))
    flip = rng.random(n) < noise_rate
    given = np.where(flip, (true + 1) % 3, true)  # pair noise: T = 0.8 I + 0.2 shift
    return x.astype(np.float32), true, given


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_loss_learns_noisy_blobs(name):
    """A tiny softmax network on 3 Gaussian blobs with 20% pair noise beats chance (1/3) clearly."""
    rng = np.random.default_rng(1)
    x, _, given = _blobs(300, rng, 0.2)
    x_test, y_test, _ = _blobs(300, rng, 0.0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    params = {"noise_matrix": 0.8 * np.eye(3) + 0.2 * np.roll(np.eye(3), 1, axis=1)} if name == "forward" else {}
    # 25 passes as one epoch run 25 steps per call: the same training as epochs=25, less overhead
    model.compile(keras.optimizers.Adam(0.05), get_loss(name, num_classes=3, **params), steps_per_execution=25)
    targets = np.eye(3, dtype=np.float32)[given]
    model.fit(np.tile(x, (25, 1)), np.tile(targets, (25, 1)), batch_size=100, epochs=1, shuffle=False, verbose=0)
    accuracy = np.mean(np.argmax(model(x_test).numpy(), 1) == y_test)
    assert accuracy > 0.8, f"{name}: clean test accuracy {accuracy:.2f}"
