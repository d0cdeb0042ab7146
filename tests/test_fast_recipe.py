"""The fast recipe's pieces: whitening init, TTA, EMA, precision choice, schedule, preset, a tiny run."""
import json

import keras
import numpy as np
import pytest

from noisycore.config import ConfigError, TrainConfig, choose_precision, default_preset, scratch_preset
from noisycore.models import build_model, init_from_data, whitening_weights
from noisycore.pipeline import predict_probs
from noisycore.schedules import lr_at, warmup_linear_lr


def _patches(x, k=2):
    n, h, w, c = x.shape
    return np.stack([x[:, i:h - k + 1 + i, j:w - k + 1 + j, :] for i in range(k) for j in range(k)],
                    axis=3).reshape(-1, k * k * c)


def test_whitening_makes_patch_covariance_identity_on_a_tiny_batch():
    rng = np.random.default_rng(0)
    # Correlated pixels: a shared brightness per image plus smooth noise, so the raw covariance is far from I.
    x = rng.random((6, 8, 8, 3)) * 0.2 + rng.random((6, 1, 1, 1)) * 0.6
    x[:, :, 1:] = 0.5 * x[:, :, 1:] + 0.5 * x[:, :, :-1]
    kern, bias = whitening_weights(x, eps=0.0)     # eps > 0 damps the weakest directions a little
    assert kern.shape == (2, 2, 3, 24) and bias.shape == (24,)
    p = _patches(x)
    raw_cov = np.cov(p, rowvar=False, bias=True)
    assert np.abs(raw_cov - np.eye(12)).max() > 0.5 * raw_cov.max() or raw_cov.max() < 0.1
    out = p @ kern.reshape(12, 24) + bias            # what the valid 2x2 conv computes per patch
    first = out[:, :12]
    np.testing.assert_allclose(first.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(np.cov(first, rowvar=False, bias=True), np.eye(12), atol=1e-4)
    np.testing.assert_allclose(out[:, 12:], -first, atol=1e-6)      # the negated copies


def test_whitening_layer_of_fast_cnn_is_set_from_images_and_frozen():
    rng = np.random.default_rng(1)
    x = (rng.random((4, 16, 16, 3)) * 255).astype(np.uint8)
    model = build_model("fast_cnn", input_shape=(16, 16, 3), num_classes=3, seed=0)
    init_from_data(model, x)
    layer = model.get_layer("whiten")
    assert not layer.trainable and all(w is not layer.kernel for w in model.trainable_weights)
    feats = keras.Model(model.inputs, layer.output).predict(x.astype(np.float32) / 255, verbose=0)
    got = feats.reshape(-1, 24)[:, :12]
    np.testing.assert_allclose(np.cov(got, rowvar=False, bias=True), np.eye(12), atol=0.02)
    init_from_data(build_model("compact_cnn", input_shape=(16, 16, 3), num_classes=3), x)  # no whiten layer: no-op


def test_flip_tta_is_the_mean_of_the_two_softmax_outputs():
    rng = np.random.default_rng(2)
    x = (rng.random((5, 4, 4, 3)) * 255).astype(np.uint8)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3),
                              keras.layers.Softmax()])
    w, b = [v.numpy() for v in model.layers[1].weights]

    def softmax_of(images):
        z = images.reshape(len(images), -1).astype(np.float64) / 255 @ w + b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    expected = (softmax_of(x) + softmax_of(x[:, :, ::-1])) / 2
    np.testing.assert_allclose(predict_probs(model, x, tta="flip", batch_size=2), expected, atol=1e-5)
    np.testing.assert_allclose(predict_probs(model, x, tta="none"), softmax_of(x), atol=1e-5)
    assert not np.allclose(expected, softmax_of(x), atol=1e-3)   # the mirror really changes the prediction
    with pytest.raises(Exception, match="unknown tta 'crop'"):
        predict_probs(model, x, tta="crop")


def test_predictions_of_arrays_equal_the_tf_data_path_for_any_chunking():
    """predict_probs feeds uint8 arrays through predict_on_batch (mirrors in the same call); the
    result is the tf.data path's, whatever the chunk size (odd sizes, a last short chunk)."""
    from noisycore.pipeline import make_dataset

    rng = np.random.default_rng(5)
    x = (rng.random((7, 6, 6, 3)) * 255).astype(np.uint8)
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(3), keras.layers.Softmax()])
    for tta in ("none", "flip"):
        reference = predict_probs(model, make_dataset(x, num_classes=3, batch_size=4), tta=tta)
        for batch in (1, 2, 3, 512):
            got = predict_probs(model, x, tta=tta, batch_size=batch)
            assert got.shape == (7, 3) and got.dtype == np.float32
            np.testing.assert_allclose(got, reference, atol=1e-6)


def test_compiled_ema_swap_exchanges_weights_and_averages_like_keras():
    """averaging.SwapEMAWeights compiles Keras' swap: after one swap the model holds the averages and the
    averages the trained weights; a second swap restores both (no new variables)."""
    from noisycore.averaging import SwapEMAWeights

    # fixed start, small steps: no random initialization that could make the steps diverge
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(0.3))])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5), loss="mse")
    x, y = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32), np.array([[1.0], [0.0]], np.float32)
    for _ in range(6):   # train_on_batch: fit would copy the averages into the weights at its end
        model.train_on_batch(x, y)
    trained = [w.numpy().copy() for w in model.trainable_weights]
    averages = [a.numpy().copy() for a in model.optimizer._model_variables_moving_average]
    assert all(np.isfinite(t).all() for t in trained) and not all(np.allclose(t, a) for t, a in zip(trained, averages))
    n_vars = len(model.optimizer.variables)
    swap = SwapEMAWeights(swap_on_epoch=True)
    swap.set_model(model)
    swap._swap_variables()
    for w, a, t, avg in zip(model.trainable_weights, model.optimizer._model_variables_moving_average, trained, averages):
        np.testing.assert_allclose(w.numpy(), avg, atol=1e-6)
        np.testing.assert_allclose(a.numpy(), t, atol=1e-6)
    swap._swap_variables()
    for w, t in zip(model.trainable_weights, trained):
        np.testing.assert_allclose(w.numpy(), t, atol=1e-6)
    assert len(model.optimizer.variables) == n_vars


def test_ema_weights_follow_the_momentum_formula():
    """Keras use_ema: a_1 = w_1 (first step), then a_t = m a_{t-1} + (1 - m) w_t."""
    var = keras.Variable(np.array([1.0, -2.0], np.float32))
    opt = keras.optimizers.SGD(learning_rate=0.5, use_ema=True, ema_momentum=0.9)
    grads = [np.array([1.0, 1.0], np.float32), np.array([2.0, -4.0], np.float32)]
    opt.apply_gradients([(keras.ops.convert_to_tensor(grads[0]), var)])
    w1 = np.array([1.0, -2.0]) - 0.5 * grads[0]
    average = opt._model_variables_moving_average[0]
    np.testing.assert_allclose(var.numpy(), w1)
    np.testing.assert_allclose(average.numpy(), w1)
    opt.apply_gradients([(keras.ops.convert_to_tensor(grads[1]), var)])
    w2 = w1 - 0.5 * grads[1]
    np.testing.assert_allclose(var.numpy(), w2)
    np.testing.assert_allclose(average.numpy(), 0.9 * w1 + 0.1 * w2, rtol=1e-6)


@pytest.mark.parametrize("setting, flags, gpu, expected", [
    ("auto", {"fpu", "avx2", "avx512f", "avx512_bf16"}, False, "bfloat16"),   # AMD Zen 4 / EPYC
    ("auto", {"avx512f", "amx_bf16", "amx_tile"}, False, "bfloat16"),        # Intel Sapphire Rapids
    ("auto", {"fpu", "avx2", "avx512f"}, False, "float32"),                  # bf16 would be emulated
    ("auto", set(), True, "bfloat16"),                                       # a GPU
    ("auto", [], False, "float32"),
    ("float32", {"amx_bf16"}, True, "float32"),                              # forced
    ("bfloat16", set(), False, "bfloat16"),
    (True, set(), False, "bfloat16"), (False, {"amx_bf16"}, False, "float32"),  # old bool configs
])
def test_choose_precision_from_cpu_flags(setting, flags, gpu, expected):
    assert choose_precision(setting, cpu_flags=flags, has_gpu=gpu) == expected


def test_choose_precision_rejects_unknown_settings():
    with pytest.raises(ConfigError, match="mixed_precision='half'.*auto, float32, bfloat16"):
        choose_precision("half", cpu_flags=set(), has_gpu=False)


def test_old_configs_with_bool_mixed_precision_still_load():
    old = json.loads(TrainConfig().to_json())
    del old["tta"], old["ema_momentum"]   # fields newer than the run folder
    for value, expected in ((True, "bfloat16"), (False, "float32")):
        loaded = TrainConfig.from_dict({**old, "mixed_precision": value})
        assert (loaded.mixed_precision, loaded.tta, loaded.ema_momentum) == (expected, "none", 0.0)


def test_fast_preset_round_trips_and_is_the_default_for_real_images():
    c = TrainConfig.from_preset("fast", data={"source": "cifar10"})
    assert (c.model, c.tta, c.augment, c.optimizer, c.lr_schedule) == \
        ("fast_cnn", "auto", "auto", "nesterov", "warmup_linear")   # auto: mirror unless it changes the labels
    assert c.ema_momentum > 0 and (c.loss, c.loss_kwargs, c.epochs, c.weight_decay) == ("gce", {"q": 0.7}, 24, 5e-4)
    assert TrainConfig.from_json(c.to_json()) == c
    assert default_preset("cifar10") == scratch_preset("/data/photos", 20_000) == "fast"
    assert scratch_preset("/data/photos", 450) == "small"   # a few dozen steps of batch 256 would not learn
    assert default_preset("builtin") == "quick"


def test_warmup_linear_schedule_rises_then_decays():
    lrs = [warmup_linear_lr(e, lr=1.0, epochs=10) for e in range(10)]
    assert lrs[0] == pytest.approx(0.2 + 0.8 * 0.05 / 0.23)          # t = 0.05, in the warm-up
    assert lrs[9] == pytest.approx(1 + (0.07 - 1) * (0.95 - 0.23) / 0.77)
    assert max(lrs) == lrs[2] and lrs == [lr_at("warmup_linear", e, lr=1.0, epochs=10) for e in range(10)]


def test_dirac_init_makes_the_first_filters_copy_their_input_channels():
    from noisycore.models import DiracInit

    kernel = keras.ops.convert_to_numpy(DiracInit(seed=0)((3, 3, 4, 6)))
    eye = np.zeros((3, 3, 4, 4))
    eye[1, 1, range(4), range(4)] = 1.0
    np.testing.assert_array_equal(kernel[..., :4], eye)               # filters 0..3: identity on channel i
    assert np.std(kernel[..., 4:]) > 0.1 and np.count_nonzero(kernel[..., 4:]) == 3 * 3 * 4 * 2   # He-normal
    x = np.random.default_rng(3).random((2, 5, 5, 4)).astype(np.float32)
    conv = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, kernel_initializer=DiracInit(seed=0))
    y = keras.ops.convert_to_numpy(conv(x))
    np.testing.assert_allclose(y[..., :4], x, atol=1e-6)               # the conv starts as an identity map
    assert DiracInit.from_config(DiracInit(seed=5).get_config()).seed == 5
    wide_in = keras.ops.convert_to_numpy(DiracInit(seed=0)((3, 3, 6, 2)))   # more inputs than filters
    assert wide_in[1, 1, 0, 0] == wide_in[1, 1, 1, 1] == 1 and wide_in[1, 1, 2:, :].sum() == 0


def test_fast_cnn_with_dirac_init_saves_and_loads(tmp_path):
    model = build_model("fast_cnn", input_shape=(16, 16, 3), num_classes=3, seed=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    x = np.random.default_rng(4).random((2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    plain = build_model("fast_cnn", input_shape=(16, 16, 3), num_classes=3, seed=0, dirac=False)
    assert not np.allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)


def test_fused_batchnorm_normalizes_by_hand_and_updates_moving_statistics():
    from noisycore.models import FusedBatchNorm

    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, (4, 3, 3, 2)).astype(np.float32)
    layer = FusedBatchNorm(momentum=0.4, epsilon=1e-5)
    layer.build(x.shape)
    layer.beta.assign([0.5, -1.0])
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    flat = x.reshape(-1, 2)                                         # 36 values per channel
    mean, var = flat.mean(0), flat.var(0)                           # biased variance normalizes
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5) + [0.5, -1.0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), 0.6 * mean, rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance),
                               0.4 * 1.0 + 0.6 * var * 36 / 35, rtol=1e-5)   # unbiased for the average
    mm, mv = keras.ops.convert_to_numpy(layer.moving_mean), keras.ops.convert_to_numpy(layer.moving_variance)
    y_inf = keras.ops.convert_to_numpy(layer(x, training=False))     # inference: the moving statistics
    np.testing.assert_allclose(y_inf, (x - mm) / np.sqrt(mv + 1e-5) + [0.5, -1.0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), mm)   # and leaves them alone
    assert [w.name for w in layer.weights] == ["beta", "moving_mean", "moving_variance"]
    assert [w.name for w in layer.trainable_weights] == ["beta"]
    assert FusedBatchNorm.from_config(layer.get_config()).momentum == 0.4


def test_fused_batchnorm_trains_its_offset_in_mixed_precision():
    from noisycore.models import FusedBatchNorm

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((2, 2, 1))
        model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(FusedBatchNorm(momentum=0.4)(inputs)))
        assert [w.dtype for w in model.weights] == ["float32"] * 3
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        x = np.random.default_rng(6).normal(size=(8, 2, 2, 1)).astype(np.float32)
        model.fit(x, np.full((8, 1), 2.0, np.float32), epochs=20, batch_size=8, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    beta = keras.ops.convert_to_numpy(model.layers[1].beta)
    np.testing.assert_allclose(beta, [2.0], atol=0.05)     # the normalized mean is 0: the offset learns the target


def test_fast_cnn_activation_option_and_its_errors():
    from noisycore.errors import UserError

    from noisycore.models import FusedBatchNorm

    default = build_model("fast_cnn", input_shape=(16, 16, 3), num_classes=3, seed=0)   # the preset's network
    acts = lambda m: {layer.get_config()["activation"] for layer in m.layers     # noqa: E731
                      if isinstance(layer, keras.layers.Activation) and layer.name != "probs"}
    assert acts(default) == {"relu"}
    assert [type(layer) for layer in default.layers if "normalization" in type(layer).__name__.lower()
            or isinstance(layer, FusedBatchNorm)] == [FusedBatchNorm] * 6           # fused, none of Keras' own
    assert [c.filters for c in default.layers if isinstance(c, keras.layers.Conv2D)][1:] == [48, 48, 192, 192, 192, 192]
    gelu = build_model("fast_cnn", input_shape=(16, 16, 3), num_classes=3, seed=0, activation="gelu", width=0.5)
    assert acts(gelu) == {"gelu"} and gelu.get_layer("features").output.shape[-1] == 128
    with pytest.raises(UserError, match="activation=.tanh. must be one of relu, gelu"):
        build_model("fast_cnn", input_shape=(16, 16, 3), num_classes=3, activation="tanh")


def test_fast_cnn_refuses_images_too_small_for_its_three_poolings():
    from noisycore.errors import UserError

    assert build_model("fast_cnn", input_shape=(9, 9, 3), num_classes=3).output_shape == (None, 3)
    with pytest.raises(UserError, match="at least 9 pixels per side .* got 8x8; set the image size to 16"):
        build_model("fast_cnn", input_shape=(8, 8, 3), num_classes=3)


def test_tiny_fast_cnn_run_on_the_builtin_shapes_beats_chance(tmp_path):
    from noisycore import train

    config = TrainConfig.from_preset("fast", max_train=600, epochs=3, batch_size=32, learning_rate=0.1,
                                     mixed_precision="float32", noise={"model": "none"},
                                     data={"max_test": 300})
    summary = train.run(config, tmp_path / "run")
    assert summary["tta"] == "flip" and summary["precision"] == "float32"
    assert summary["test_accuracy"] > 0.3          # 10 classes: chance is 0.1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["mixed_precision"] == "float32" and saved["preset"] == "fast"

    # The epoch is chosen on the validation images' flip-TTA accuracy; the per-epoch training-set
    # curves are one plain forward pass per image. The kept model (best.keras) reproduces both.
    import pandas as pd

    run = tmp_path / "run"
    pred = np.load(run / "predictions.npz")
    is_val, given = pred["is_val"], pred["train_labels"]
    tta_val = (pred["train_probs"][is_val].argmax(1) == given[is_val]).mean()   # final predictions: TTA
    assert summary["best_val_accuracy"] == pytest.approx(tta_val, abs=1.01 / is_val.sum())
    x_train = train.prepare(config).dataset.x_train
    net = keras.models.load_model(run / "best.keras", compile=False)
    plain = predict_probs(net, x_train[~is_val], tta="none").argmax(1)
    row = pd.read_csv(run / "metrics.csv").set_index("epoch").loc[summary["best_epoch"]]
    assert row["train_acc_given"] == pytest.approx((plain == given[~is_val]).mean(), abs=1.01 / (~is_val).sum())


def test_cli_picks_the_fast_preset_for_real_images_and_reads_the_precision(capsys):
    from helpers import run_main

    from noisycore.cli import build_parser
    from noisycore.cliargs import train_config

    parse = build_parser().parse_args
    c = train_config(parse(["train", "--dataset", "cifar10", "--noise", "symmetric", "--rate", "0.4"]))
    assert (c.preset, c.model, c.data.source, c.mixed_precision) == ("fast", "fast_cnn", "cifar10", "auto")
    assert train_config(parse(["train"])).preset == "quick"                       # the built-in shapes
    assert train_config(parse(["train", "--precision", "float32"])).mixed_precision == "float32"
    assert train_config(parse(["train", "--mixed-precision"])).mixed_precision == "bfloat16"
    assert train_config(parse(["train", "--dataset", "cifar10", "--preset", "blog"])).model == "blog_cnn"
    r = run_main(["train", "--precision", "half"], capsys)
    assert r.returncode == 2 and "mixed_precision='half'" in r.stderr and "auto, float32, bfloat16" in r.stderr
