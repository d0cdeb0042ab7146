"""Training methods: the pure parts by hand, the mechanisms on tiny models, and every method
training on a tiny learnable dataset (class = which quadrant of the image is bright)."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from noisycore import train  # noqa: E402
from noisycore.config import ConfigError  # noqa: E402
from noisycore.catalog import METHOD_CHOICES, METHOD_DEFAULTS, METHOD_HELP, method_params  # noqa: E402
from noisycore.methods import METHODS  # noqa: E402
from noisycore.methods.confidence_weighting import ExampleAwareModel, confidence_weights  # noqa: E402
from noisycore.methods.coteaching import coteaching_selection, select_small_loss  # noqa: E402
from noisycore.methods.label_correction import correct_labels, correction_counts, drop_counts, round_ends  # noqa: E402
from helpers import quadrant_folder, tiny_config as _tiny_config  # noqa: E402


# ------------------------------------------------------------------------------ registry
def test_registry_help_and_defaults_share_the_names():
    assert list(METHODS) == list(METHOD_HELP) == list(METHOD_DEFAULTS)
    assert method_params("coteaching", {"t_k": 3}) == {"forget_rate": None, "t_k": 3}
    with pytest.raises(ConfigError, match="no parameter gamma; valid: threshold, rounds"):
        method_params("label_correction", {"gamma": 2})


def test_every_text_option_of_a_method_has_its_choices():
    """The Train page shows a text-valued method option as a select box of METHOD_CHOICES[method][name]."""
    for method, defaults in METHOD_DEFAULTS.items():
        for name, default in defaults.items():
            if isinstance(default, str):
                assert default in METHOD_CHOICES[method][name], (method, name)
    assert set(METHOD_CHOICES["label_correction"]) == {"detector", "action"}


# ------------------------------------------------------------------------------ co-teaching selection
def test_small_loss_selection_keeps_exactly_the_smallest_fraction():
    losses = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    kept = select_small_loss(losses, 0.3).numpy()
    assert kept.tolist() == [9, 1, 5, 3, 7, 0, 8]             # floor(0.7 * 10) = 7 smallest, by loss
    assert select_small_loss(losses, 0.0).numpy().size == 10
    assert select_small_loss(losses, 0.95).numpy().tolist() == [9]   # at least one example


def test_each_network_trains_on_its_peers_small_loss_examples():
    loss1 = np.array([0.1, 0.2, 3.0, 4.0])    # network 1 finds examples 0, 1 easy
    loss2 = np.array([5.0, 6.0, 0.3, 0.4])    # network 2 finds examples 2, 3 easy
    keep_for_1, keep_for_2 = coteaching_selection(loss1, loss2, 0.5)
    assert sorted(keep_for_1.numpy().tolist()) == [2, 3]      # chosen by network 2's loss
    assert sorted(keep_for_2.numpy().tolist()) == [0, 1]      # chosen by network 1's loss


# ------------------------------------------------------------------------------ confidence weights
def test_confidence_weights_by_hand():
    np.testing.assert_allclose(confidence_weights([0.8, 0.2, 0.5, 0.5]), [1.6, 0.4, 1.0, 1.0], rtol=1e-6)
    p2 = np.array([0.64, 0.04, 0.25, 0.25])
    np.testing.assert_allclose(confidence_weights([0.8, 0.2, 0.5, 0.5], gamma=2), p2 / p2.mean(), rtol=1e-6)
    np.testing.assert_allclose(confidence_weights([0.9, 0.1], gamma=0), [1.0, 1.0])
    with pytest.raises(ConfigError, match="gamma=-1"):
        confidence_weights([0.5], gamma=-1)


def test_weight_uses_the_given_label_not_the_max_probability():
    # The model is sure image 0 is class 0, but its label says 1 (likely wrong): the blog's max-prob
    # weight would be 0.9 (up-weighted); p[given] gives it the smallest weight.
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    given = np.array([1, 1, 2])
    w = confidence_weights(probs[np.arange(3), given])
    np.testing.assert_allclose(w, np.array([0.05, 0.8, 0.6]) / (1.45 / 3), rtol=1e-6)
    assert w.argmin() == 0


def _tiny_net(k=3, seed=0):
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(k, activation="softmax",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    return keras.Model(inputs, outputs)


def _indexed_batches(n=24, k=3, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.random((n, 4, 4, 3)).astype("float32")
    y = np.eye(k, dtype="float32")[rng.integers(0, k, n)]
    return tf.data.Dataset.from_tensor_slices((x, y, np.arange(n))).batch(8), x


def test_example_aware_model_reads_weights_and_labels_by_index():
    data, x = _indexed_batches()
    model = ExampleAwareModel(_tiny_net(), num_examples=24, num_classes=3)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy")
    model.build((None, 4, 4, 3))
    before = [w.copy() for w in model.net.get_weights()]
    model.example_weights.assign(np.zeros(24, "float32"))     # weight 0: nothing is learned
    model.fit(data, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(before, model.net.get_weights()):
        np.testing.assert_allclose(a, b)
    model = ExampleAwareModel(_tiny_net(), num_examples=24, num_classes=3, use_example_labels=True)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy")
    model.example_labels.assign(np.full(24, 2, "int32"))     # relabel everything as class 2
    model.fit(data, epochs=15, verbose=0, shuffle=False)
    assert (model.net.predict(x, verbose=0).argmax(1) == 2).all()


# ------------------------------------------------------------------------------ label correction
def test_correct_labels_and_counts_by_hand():
    probs = np.array([[0.95, 0.03, 0.02],    # confident 0, label 1 -> 0 (true 0: right)
                      [0.05, 0.93, 0.02],    # confident 1, label 1 -> unchanged
                      [0.50, 0.40, 0.10],    # not confident -> unchanged
                      [0.01, 0.01, 0.98],    # confident 2, label 0 -> 2 (true 0: wrong)
                      [0.92, 0.04, 0.04]])   # confident 0, label 2 -> 0 (true 0: right)
    labels = np.array([1, 1, 2, 0, 2])
    true = np.array([0, 1, 2, 0, 0])
    new = correct_labels(probs, labels, threshold=0.9)
    assert new.tolist() == [0, 1, 2, 2, 0]
    counts = correction_counts(labels, new, true)
    assert counts == {"changed": 3, "changed_correct": 2, "changed_wrong": 1, "label_accuracy": 0.8}
    assert correction_counts(labels, new) == {"changed": 3, "changed_correct": None, "changed_wrong": None,
                                              "label_accuracy": None}
    with pytest.raises(ConfigError, match="threshold=1.5"):
        correct_labels(probs, labels, threshold=1.5)


def test_drop_counts_by_hand():
    flagged = np.array([True, False, True, False, False])
    labels = np.array([1, 1, 2, 0, 2])
    true = np.array([0, 1, 2, 0, 0])       # wrong labels: items 0 and 4
    assert drop_counts(flagged, labels, true) == {"changed": 2, "changed_correct": 1, "changed_wrong": 1,
                                                  "label_accuracy": 2 / 3}   # kept 1, 3, 4: two right
    assert drop_counts(flagged, labels) == {"changed": 2, "changed_correct": None, "changed_wrong": None,
                                            "label_accuracy": None}


def test_label_correction_options_are_checked(quadrants):
    from noisycore.methods.label_correction import LabelCorrectionMethod

    ctx = train.make_context(tiny_config(quadrants), train.prepare(tiny_config(quadrants)), None)[0]
    for params, match in [({"detector": "oracle"}, "detector='oracle' must be one of: threshold, confident_learning"),
                          ({"action": "delete"}, "action='delete' must be one of: relabel, drop"),
                          ({"restart": "yes"}, "restart='yes' must be true or false")]:
        with pytest.raises(ConfigError, match=match):
            LabelCorrectionMethod(ctx, **method_params("label_correction", params))
    method = LabelCorrectionMethod(ctx, **method_params("label_correction", {"rounds": 2, "restart": True}))
    # 4 epochs, 2 rounds: phases end after epochs 1 and 3 -> [0], [1, 2], [3]
    assert [method.lr_phase(e) for e in range(4)] == [(0, 1), (0, 2), (1, 2), (0, 1)]
    plain = LabelCorrectionMethod(ctx, **method_params("label_correction", {"rounds": 2}))
    assert [plain.lr_phase(e) for e in range(4)] == [(e, 4) for e in range(4)]
    drop = LabelCorrectionMethod(ctx, **method_params("label_correction", {"rounds": 1, "action": "drop",
                                                                         "threshold": 0.5}))
    drop.train_data()
    n, k = len(ctx.y_fit), ctx.num_classes
    against = np.eye(k)[(ctx.y_fit + 1) % k]                      # sure of another class for every image
    assert drop.after_epoch(drop.ends[0] - 1, against, None) == {"labels_changed": 0}   # never an empty epoch
    assert drop.keep.numpy().all()
    some = against.copy()
    some[: n // 2] = np.eye(k)[ctx.y_fit[: n // 2]]                # the first half agrees with its label
    drop.ends = [drop.ends[0] + 1]
    assert drop.after_epoch(drop.ends[0] - 1, some, None) == {"labels_changed": n - n // 2}
    assert drop.keep.numpy().tolist() == [True] * (n // 2) + [False] * (n - n // 2)
    assert drop.fit_batches() == -(-(n // 2) // ctx.config.batch_size)


def test_round_ends_split_the_epochs_into_phases():
    assert round_ends(10, 2) == [3, 7]
    assert round_ends(9, 1) == [4]
    assert round_ends(2, 3) == [1]            # never after the last epoch, no duplicates


# ------------------------------------------------------------------------------ every method trains


def tiny_config(folder, **overrides):
    return _tiny_config(folder, **{"epochs": 4, **overrides})


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    return quadrant_folder(tmp_path_factory.mktemp("quadrants"))


@pytest.mark.slow
@pytest.mark.parametrize("method, params", [
    ("standard", {}),
    ("confidence_weighting", {"warmup_epochs": 2}),
    ("coteaching", {"t_k": 2}),
    ("label_correction", {"rounds": 1, "threshold": 0.6}),
    ("label_correction", {"rounds": 1, "detector": "confident_learning", "action": "drop", "restart": True}),
])
def test_every_method_beats_chance(quadrants, tmp_path, method, params):
    run_dir = tmp_path / method
    extra = {"lr_schedule": "cosine"} if params.get("restart") else {}   # a schedule that changes per epoch
    summary = train.run(tiny_config(quadrants, method=method, method_params=params, **extra), run_dir)
    assert summary["state"] == "finished" and summary["epochs_done"] == 4
    assert summary["test_accuracy"] > 0.5                     # chance is 0.25
    metrics = train.runs.read_metrics(run_dir)
    if method == "confidence_weighting":
        last = metrics.iloc[-1]
        assert last["weight_noisy"] < last["weight_clean"]    # the wrong labels count less
    if method == "coteaching":
        np.testing.assert_allclose(metrics["forget_rate"], [0.0, 0.1, 0.2, 0.2], atol=0.02)  # tau = the declared 0.2
        assert metrics["val_accuracy_2"].notna().all()
    if method == "label_correction" and params.get("action") == "drop":
        import pandas as pd

        row = pd.read_csv(run_dir / "corrections.csv").iloc[0]
        assert row["epoch"] == 2 and row["changed"] == summary["labels_changed"] > 0
        assert row["changed_correct"] > row["changed_wrong"]   # most images left out had a wrong label
        assert row["label_accuracy"] > 0.8 + 0.05              # the labels still trained on are cleaner (20% noise)
        lr = metrics["lr"].tolist()
        assert lr[:2] == lr[2:] and lr[0] > lr[1]                       # the schedule ran once per phase
        status = train.runs.read_status(run_dir)
        kept = status["num_fit"] - row["changed"]
        assert status["batches"] == -(-kept // 32) < -(-status["num_fit"] // 32)   # shorter epochs after the drop
        return
    if method == "label_correction":
        import pandas as pd

        table = pd.read_csv(run_dir / "corrections.csv")
        assert table["round"].tolist() == [1] and table["epoch"].tolist() == [2]
        row = table.iloc[0]
        assert row["changed"] == row["changed_correct"] + row["changed_wrong"] == summary["labels_changed"]
        assert metrics["labels_changed"].tolist()[1] == row["changed"]
        assert row["changed_correct"] > row["changed_wrong"]  # most corrections fix a wrong label
