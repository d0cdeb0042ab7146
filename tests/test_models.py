"""Model builders: the blog CNN exactly, switches, features, seeds, mixed precision, distribution."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from noisycore.errors import UserError
from noisycore.models import MODEL_HELP, MODELS, build_model, feature_extractor

ROOT = Path(__file__).resolve().parents[1]


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_blog_cnn_is_the_blog_posts_network():
    model = build_model("blog_cnn", input_shape=(32, 32, 3), num_classes=10)
    assert model.count_params() == 816_938
    convs = layers_of(model, keras.layers.Conv2D)
    assert [c.filters for c in convs] == [32, 32, 64, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    assert [d.rate for d in layers_of(model, keras.layers.Dropout)] == [0.2, 0.3, 0.4, 0.5]
    assert len(layers_of(model, keras.layers.BatchNormalization)) == 7
    assert [d.units for d in layers_of(model, keras.layers.Dense)] == [256, 10]
    assert len(layers_of(model, keras.layers.MaxPooling2D)) == 3


@pytest.mark.parametrize("name,width", [("blog_cnn", 256), ("compact_cnn", 128), ("resnet", 64), ("fast_cnn", 192)])
def test_outputs_probabilities_and_named_features(name, width):
    options = {"width": 8} if name == "resnet" else {}
    model = build_model(name, input_shape=(32, 32, 3), num_classes=4, seed=0, **options)
    x = np.random.default_rng(0).random((5, 32, 32, 3), dtype=np.float32)
    probs = model(x, training=False).numpy()
    assert probs.shape == (5, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    features = feature_extractor(model)(x).numpy()
    assert features.shape == (5, width) and np.all(np.isfinite(features))
    assert name in MODEL_HELP


def test_resnet18_width64_has_the_usual_cifar_parameter_count():
    """ResNet-18 for CIFAR (3x3 stem, no max-pool, 1x1 projection shortcuts): 11,173,962 trainable
    parameters, plus 2 x 4,800 BatchNorm moving statistics."""
    model = build_model("resnet", input_shape=(32, 32, 3), num_classes=10, width=64)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 11_173_962
    assert model.count_params() == 11_173_962 + 9_600
    assert len(layers_of(model, keras.layers.Conv2D)) == 1 + 8 * 2 + 3


def test_regularization_switches():
    plain = build_model("compact_cnn", input_shape=(16, 16, 3), num_classes=3, dropout=0.0, batchnorm=False)
    assert not layers_of(plain, keras.layers.Dropout) and not layers_of(plain, keras.layers.BatchNormalization)
    assert not plain.losses
    half = build_model("blog_cnn", input_shape=(32, 32, 3), num_classes=10, dropout=0.5)
    assert [d.rate for d in layers_of(half, keras.layers.Dropout)] == [0.1, 0.15, 0.2, 0.25]
    decayed = build_model("blog_cnn", input_shape=(32, 32, 3), num_classes=10, weight_decay=1e-4)
    assert len(decayed.losses) == 6 + 2  # one L2 term per conv and dense kernel
    dense = layers_of(decayed, keras.layers.Dense)[0]
    expected = 1e-4 * float(np.sum(dense.kernel.numpy() ** 2))
    assert any(abs(float(loss) - expected) < 1e-6 * max(1.0, expected) for loss in decayed.losses)


def test_seed_fixes_initial_weights():
    def weights(seed):
        model = build_model("compact_cnn", input_shape=(16, 16, 3), num_classes=3, seed=seed)
        return [w.numpy() for w in model.trainable_weights if w.ndim > 1]

    a, b, c = weights(7), weights(7), weights(8)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_mixed_precision_keeps_float32_probabilities():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model("compact_cnn", input_shape=(16, 16, 3), num_classes=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert layers_of(model, keras.layers.Conv2D)[0].compute_dtype == "bfloat16"
    probs = model(np.zeros((2, 16, 16, 3), np.float32))
    assert probs.dtype == "float32"
    np.testing.assert_allclose(np.asarray(probs).sum(axis=1), 1.0, atol=1e-5)


def test_bad_arguments_are_explained():
    with pytest.raises(UserError, match="unknown model 'vgg'.*compact_cnn"):
        build_model("vgg", input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(UserError, match="input_shape"):
        build_model("blog_cnn", input_shape=(32, 32), num_classes=10)
    with pytest.raises(UserError, match="num_classes=1"):
        build_model("blog_cnn", input_shape=(32, 32, 3), num_classes=1)
    with pytest.raises(UserError, match="dropout=-1"):
        build_model("blog_cnn", input_shape=(32, 32, 3), num_classes=10, dropout=-1)
    with pytest.raises(UserError, match="no options"):
        build_model("blog_cnn", input_shape=(32, 32, 3), num_classes=10, width=8)
    with pytest.raises(UserError, match="no layer named 'features'"):
        feature_extractor(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    assert set(MODELS) == {"blog_cnn", "compact_cnn", "resnet", "fast_cnn", "pretrained_head"}
    with pytest.raises(UserError, match=r"must be \(D,\) for pretrained_head"):
        build_model("pretrained_head", input_shape=(32, 32, 3), num_classes=3)


@pytest.mark.parametrize("width,hidden", [(0, None), (None, 256), (0.25, 128)])
def test_pretrained_head_standardizes_its_fit_embeddings_then_classifies(width, hidden):
    """pretrained_head: (B, D) embeddings -> probabilities; its frozen ``standardize`` layer is set from the fit
    embeddings by init_from_data: (x - mean) / sqrt(var + 0.01 mean(var)) per feature, so a feature constant on
    them (var 0) cannot blow up another image's value; a linear head's "features" are the standardized
    embeddings (width 0), else a hidden ReLU layer of width x 512 units (default 0.5)."""
    from noisycore.models import init_from_data

    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 20)).astype(np.float32)
    x[:, 0] = 0.0                                                   # a silent unit
    model = build_model("pretrained_head", input_shape=(20,), num_classes=3, seed=0, width=width)
    init_from_data(model, x)
    standardize = keras.Model(model.inputs[0], model.get_layer("standardize").output)
    var = x.astype(np.float64).var(axis=0)
    expected = (x - x.mean(axis=0)) / np.sqrt(var + 0.01 * var.mean())
    np.testing.assert_allclose(standardize(x).numpy(), expected, rtol=1e-4, atol=1e-4)
    other = np.ones((1, 20), np.float32)                           # the silent unit fires on another image
    assert abs(standardize(other).numpy()[0, 0]) == pytest.approx(1 / np.sqrt(0.01 * var.mean()), rel=1e-4)
    probs = model(x, training=False).numpy()
    assert probs.shape == (64, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    features = feature_extractor(model)(x).numpy()
    assert features.shape == (64, hidden or 20)
    assert not model.get_layer("standardize").trainable_weights
    assert "pretrained_head" in MODEL_HELP


def shapes(n, seed, size=16):
    """Three classes of noisy 16x16 images: a horizontal bar, a vertical bar, a hollow square."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 90, (n, size, size, 3))
    for img, label in zip(images, labels):
        c = rng.integers(3, size - 4, 2)
        color = rng.integers(150, 256, 3)
        if label == 0:
            img[c[0]:c[0] + 3, 2:size - 2] = color
        elif label == 1:
            img[2:size - 2, c[1]:c[1] + 3] = color
        else:
            img[c[0] - 3:c[0] + 4, c[1] - 3:c[1] + 4] = color
            img[c[0] - 1:c[0] + 2, c[1] - 1:c[1] + 2] = rng.integers(0, 90, 3)
    return images.astype(np.uint8), labels


@pytest.mark.slow
def test_compact_cnn_learns_simple_shapes():
    from noisycore.pipeline import make_dataset

    x, y = shapes(300, 0)
    x_test, y_test = shapes(150, 1)
    model = build_model("compact_cnn", input_shape=(16, 16, 3), num_classes=3, seed=0)
    model.compile(keras.optimizers.Adam(3e-3), "categorical_crossentropy")
    model.fit(make_dataset(x, y, num_classes=3, batch_size=32, shuffle=True, seed=0), epochs=5,
              shuffle=False, verbose=0)  # the dataset shuffles itself
    probs = model.predict(make_dataset(x_test, num_classes=3, batch_size=150), verbose=0)
    assert np.mean(np.argmax(probs, axis=1) == y_test) > 0.8


MIRRORED_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from noisycore.models import build_model
    from noisycore.pipeline import make_dataset
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 256)
    with strategy.scope():
        model = build_model("compact_cnn", input_shape=(32, 32, 3), num_classes=10, seed=0)
        model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    ds = make_dataset(x, y, num_classes=10, batch_size=64, augment="blog", shuffle=True, seed=0)
    history = model.fit(ds, epochs=1, shuffle=False, verbose=0)
    print("LOSS", history.history["loss"][-1])
""")


@pytest.mark.slow
def test_builders_train_under_mirrored_strategy_on_two_logical_cpus():
    """Logical devices must be set before TensorFlow initializes, hence a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    loss = float(done.stdout.split("LOSS")[-1])
    assert np.isfinite(loss) and 0 < loss < 10
