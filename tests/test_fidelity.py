"""Scientific fidelity: each loss, detector, noise model and method does what its paper says, and the
true labels enter no training or selection path (issue 13).

Hand-computed values that tests/test_losses.py, test_detectors.py and test_noise.py already pin are not
repeated here; this module adds what they did not check (gradients, the papers' exact procedures).
"""
import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from noisycore.losses import LOSSES, per_example_loss  # noqa: E402

ln = math.log


# ------------------------------------------------------------------------------ bootstrapping
def _softmax_grad(name, y, logits, **params):
    """d loss / d logits of the per-example loss ``name`` through a softmax (float64 in, numpy out)."""
    z = tf.Variable(np.asarray(logits, dtype=np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(per_example_loss(name, num_classes=len(y), **params)(
            np.asarray([y], dtype=np.float32), tf.nn.softmax(z)))
    return tape.gradient(loss, z).numpy()[0]


def test_soft_bootstrapping_gradient_flows_through_the_prediction_in_the_target():
    """Reed et al. 2015: L = -sum_k (b y_k + (1 - b) p_k) log p_k = b CE + (1 - b) H(p).

    By hand, with H = -sum_k p_k log p_k:  dCE/dz_j = p_j - y_j,  dH/dz_j = -p_j (log p_j + H).
    logits (1, 0, -1) give p = (0.6652, 0.2447, 0.0900); label 1; b = 0.95.
    """
    z = np.array([1.0, 0.0, -1.0])
    p = np.exp(z) / np.exp(z).sum()
    y = np.array([0.0, 1.0, 0.0])
    h = -(p * np.log(p)).sum()
    expected = 0.95 * (p - y) + 0.05 * (-p * (np.log(p) + h))
    got = _softmax_grad("bootstrap_soft", y, [z], beta=0.95)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    ce = _softmax_grad("ce", y, [z])
    assert np.abs(got - 0.95 * ce).max() > 1e-3        # not merely a rescaled cross-entropy (the old bug)
    assert np.abs(got - ce).max() > 1e-3


def test_hard_bootstrapping_gradient_is_that_of_ce_against_a_fixed_target():
    """Reed et al. 2015: z_k = 1[k = argmax p] is piecewise constant, so its derivative is 0 almost
    everywhere: the loss's gradient is that of CE against the fixed target b y + (1 - b) z, i.e.
    p - t through the softmax (stopping the gradient of the argmax one-hot changes nothing)."""
    z = np.array([1.0, 0.0, -1.0])
    p = np.exp(z) / np.exp(z).sum()
    y = np.array([0.0, 1.0, 0.0])
    target = 0.8 * y + 0.2 * np.array([1.0, 0.0, 0.0])      # argmax p = class 0
    np.testing.assert_allclose(_softmax_grad("bootstrap_hard", y, [z], beta=0.8), p - target, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------ every registry entry is pinned
# Where each loss, detector and noise model is pinned to its formula or reference with hand-computed
# values (or, for confident learning, cleanlab 2.9 as a test-only reference). A new registry entry
# without a pin fails here.
PINS = {
    "losses": ("test_losses", {name: "test_hand_computed_values" for name in LOSSES}),
    "detectors": ("test_detectors", {
        "confident_learning": "test_confident_learning_prunes_by_noise_rate_by_hand",
        "self_confidence": "test_self_confidence_and_margin_by_hand",
        "normalized_margin": "test_self_confidence_and_margin_by_hand",
        "aum": "test_aum_detector_by_hand",                   # + the threshold by hand in this module
        "aum_margin_below_0": "test_aum_detector_by_hand",
        "blog_threshold": "test_blog_threshold_by_hand"}),
    "noise models": ("test_noise", {
        "none": "test_none_model_and_unknown_truth",
        "symmetric": "test_symmetric_flips_exactly_round_rate_n_and_never_to_the_same_class",
        "uniform": "test_uniform_realized_rate_is_about_nine_tenths_of_rate",
        "pair": "test_pair_tiny_example_matrix_by_hand",
        "asymmetric": "test_asymmetric_cifar_per_source_class_and_twenty_percent_overall",
        "matrix": "test_matrix_model_matches_requested_on_20k_samples",
        "instance": "test_instance_noise_mean_rate_and_dependence_on_image",
        "human": "test_cifar10n_worst_label_set_has_40_21_percent_noise"}),
}


def test_every_loss_detector_and_noise_model_is_pinned():
    import importlib

    from noisycore.detectors import DETECTORS
    from noisycore.noise import NOISE_MODELS

    registries = {"losses": LOSSES, "detectors": DETECTORS, "noise models": NOISE_MODELS}
    for kind, (module, pins) in PINS.items():
        assert set(pins) == set(registries[kind]), f"{kind}: pin the new entries {set(registries[kind]) - set(pins)}"
        tests = importlib.import_module(module)
        assert all(callable(getattr(tests, fn, None)) for fn in pins.values()), kind
    from test_losses import EXPECTED

    assert set(EXPECTED) == set(LOSSES)                      # one hand-computed row per loss


# ------------------------------------------------------------------------------ documentation slips
def test_sce_documents_the_reference_codes_constant_not_the_papers():
    """RCE's log 0 is clipped to ln 1e-4 = -9.21 (Wang et al.'s code), not the paper's A = -4:
    beta here is 9.21 / 4 = 2.3 times the paper's; the docstrings and the help text say so."""
    from noisycore import catalog, losses

    y, p = np.array([[0.0, 1.0, 0.0]], np.float32), np.array([[0.5, 0.3, 0.2]], np.float32)
    rce = float(per_example_loss("sce", num_classes=3, alpha=0.0, beta=1.0)(y, p)[0])
    assert rce == pytest.approx(-ln(1e-4) * 0.7, rel=1e-5) and ln(1e-4) / -4 == pytest.approx(2.30, abs=0.01)
    assert "2.3" in losses.reverse_cross_entropy.__doc__ and "-4" in losses.reverse_cross_entropy.__doc__
    assert "2.3" in losses.symmetric_cross_entropy.__doc__ and "2.3" in catalog.LOSS_HELP["sce"]


def test_evaluation_describes_the_realized_matrix_as_given_given_true():
    from noisycore import evaluation

    doc = " ".join(evaluation.noise_matrices.__doc__.split())
    assert "P(given label j | true class i)" in doc and "share of true class i given label j" not in doc


def test_time_to_accuracy_is_a_report_not_a_selection():
    """The per-epoch test curve only reports: the kept epoch is the best noisy-VALIDATION epoch even when the
    test accuracy peaks elsewhere, and time-to-accuracy reads the curve without changing the kept model."""
    import pandas as pd

    from noisycore import train

    m = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_accuracy": [0.50, 0.60, 0.70, 0.65],
                      "test_accuracy": [0.55, 0.90, 0.60, 0.58]})   # test peaks at 2, validation at 3
    assert train._best_epoch(m) == (3, 0.70)
    assert train._last_epoch(m) == (4, 0.65)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import time_to_accuracy as tta

    m = m.assign(fit_seconds=10.0, seconds=12.0)
    row = tta.cell_row("sym40", 0, m, {"test_accuracy": 0.60, "best_epoch": 3}, blog_epoch=1.0)
    # reported: the first epoch at the target (epoch 2, 20 s); kept: the validation's epoch 3 and its accuracy
    assert (row["fast_epoch"], row["best_epoch"], row["final_test_accuracy"]) == (2, 3, 0.60)


# ------------------------------------------------------------------------------ splits and folds
@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    from helpers import quadrant_folder

    return quadrant_folder(tmp_path_factory.mktemp("quadrants"), n_per_class=40, size=8)


def test_max_train_selects_the_same_images_with_and_without_a_saved_label_set(quadrants, tmp_path):
    from helpers import tiny_config
    from noisycore import train
    from noisycore.labelsets import save_label_set

    whole = train.prepare(tiny_config(quadrants, data={"source": str(quadrants), "image_size": 8,
                                                       "test_fraction": 0.25, "seed": 3}))
    save_label_set(tmp_path, whole.dataset, whole.noisy)
    for seed in (0, 5):
        base = tiny_config(quadrants, max_train=50, seed=seed,
                           data={"source": str(quadrants), "image_size": 8, "test_fraction": 0.25, "seed": 3})
        injected = train.prepare(base)
        from_set = train.prepare(base.replace(labels_path=str(tmp_path)))
        assert len(injected.dataset.ids_train) == 50
        assert from_set.dataset.ids_train.tolist() == injected.dataset.ids_train.tolist()


def test_one_stratified_splitter_everywhere():
    from noisycore import crossval, datasets, train
    from noisycore import util as splits

    y = np.random.default_rng(0).integers(0, 4, 103)
    np.testing.assert_array_equal(train.validation_split(y, fraction=0.2, seed=4)[1], splits.stratified_split(y, 0.2, 4))
    np.testing.assert_array_equal(crossval.fold_assignments(y, folds=3, seed=4), splits.stratified_folds(y, 3, 4))
    assert datasets.base._stratified_subset is splits.stratified_subset
    mask = datasets.base._holdout(y, [str(c) for c in range(4)], 0.25, 4)
    np.testing.assert_array_equal(np.flatnonzero(mask), splits.stratified_split(y, 0.25, 4))
    sub = splits.stratified_subset(y, 40, 1)
    assert len(sub) == 40 and abs(np.bincount(y[sub], minlength=4) - 40 * np.bincount(y) / 103).max() < 1


@pytest.mark.slow
def test_fold_runs_never_use_the_truth(tmp_path):
    """A run trained with trusted validation: its cross-validation folds validate on the given labels
    and their label sets carry no true labels (fold models cannot be chosen with the truth)."""
    import json

    import pandas as pd

    from noisycore import crossval, runs
    from test_detect import fake_run

    run, ds, given, true = fake_run(tmp_path)
    config = runs.read_config(run).replace(epochs=1, batch_size=16, early_stopping_patience=0, trusted_val=True,
                                           lr_schedule="constant", batchnorm=False, val_fraction=0.2)
    (run / "config.json").write_text(config.to_json())
    crossval.cross_validate(run, folds=2)
    for fold in sorted((run / crossval.CV_DIR).glob("k2-fold*")):
        assert json.loads((fold / "run" / "config.json").read_text())["trusted_val"] is False
        for csv in (fold / "labels" / "labels.csv", fold / "run" / "labels.csv"):
            table = pd.read_csv(csv, dtype=str, keep_default_na=False)
            assert (table["true_label"] == "").all() and (table["is_noisy"] == "").all()
        assert json.loads((fold / "run" / "summary.json").read_text())["truth_known"] is False


# ------------------------------------------------------------------------------ forward correction
def _pair_label_set(quadrants, out):
    from helpers import tiny_config
    from noisycore import train
    from noisycore.config import NoiseConfig
    from noisycore.labelsets import save_label_set

    p = train.prepare(tiny_config(quadrants, noise=NoiseConfig(model="pair", rate=0.3, seed=2)))
    save_label_set(out, p.dataset, p.noisy)
    return p


@pytest.mark.slow
def test_forward_trains_on_a_saved_label_set_with_its_known_matrix(quadrants, tmp_path):
    """Patrini et al. 2017 with T known: the label set's noise.json holds the requested (declared)
    matrix; the run trains with it and records it (this used to raise for every saved label set)."""
    from helpers import tiny_config
    from noisycore import forward, train

    p = _pair_label_set(quadrants, tmp_path / "set")
    config = tiny_config(quadrants, labels_path=str(tmp_path / "set"), loss="forward", epochs=1)
    summary = train.run(config, tmp_path / "run")
    assert summary["state"] == "finished"
    record = forward.read_record(tmp_path / "run")
    np.testing.assert_allclose(record["noise_matrix"], p.noisy.requested_matrix)
    assert record["matrix"] == "known" and "noise.json" in record["source"] and not record["estimated"]
    pair = 0.7 * np.eye(4) + 0.3 * np.roll(np.eye(4), 1, axis=1)       # T[i, i+1] = 0.3
    np.testing.assert_allclose(record["noise_matrix"], pair)
    # a fold's label set (cross-validation) and a reviewed one (retrain) carry the declared matrix
    from noisycore import corrections, detect

    info = detect.read_run_labels(tmp_path / "run")
    subset = corrections.write_label_subset(tmp_path / "fold", tmp_path / "run", ids=info.ids[::2],
                                       labels=info.labels[::2], true_labels=None)
    for later in (config.replace(labels_path=str(subset)), corrections.retrain_config(tmp_path / "run", subset)):
        prepared = train.prepare(later)
        assert prepared.noisy.true_labels is None
        np.testing.assert_allclose(train._loss_kwargs(later, prepared.noisy, 4)["noise_matrix"], pair)


def test_forward_estimate_after_warm_up_is_confident_learnings_matrix_on_the_fit_split(tmp_path):
    """The built-in two stages: after the warm-up the loss's T becomes estimate_noise(fit labels,
    fit predictions).noise_matrix (T[true, given]); no true labels are involved."""
    import keras

    from noisycore import forward
    from noisycore.detectors import estimate_noise

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    probs = rng.dirichlet(np.ones(3), 60)
    probs[np.arange(60), labels] += 1.0
    probs /= probs.sum(1, keepdims=True)
    variable = keras.Variable(np.eye(3, dtype=np.float32), trainable=False)
    record = {"warmup_epochs": 2, "noise_matrix": np.eye(3).tolist(), "source": "pending"}
    cb = forward.make_warmup_callback(variable=variable, record=record, run_dir=tmp_path,
                                      fit_probs=lambda: probs, fit_labels=labels)
    cb.on_epoch_end(0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), np.eye(3))   # still CE in epoch 2
    cb.on_epoch_end(1)
    expected = estimate_noise(labels, probs).noise_matrix
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), expected, rtol=1e-6)
    saved = forward.read_record(tmp_path)
    np.testing.assert_allclose(saved["estimated_matrix"], expected)
    assert saved["estimated_at_epoch"] == 2 and "confident learning" in saved["source"]


def test_forward_loss_with_identity_is_cross_entropy_and_follows_its_variable():
    import keras

    y = np.array([[0, 1, 0]], np.float32)
    p = np.array([[0.5, 0.3, 0.2]], np.float32)
    t = keras.Variable(np.eye(3, dtype=np.float32), trainable=False)
    fn = per_example_loss("forward", num_classes=3, noise_matrix=t, matrix="estimated", warmup_epochs=1)
    assert float(fn(y, p)[0]) == pytest.approx(-ln(0.3), rel=1e-6)
    pair = 0.8 * np.eye(3) + 0.2 * np.roll(np.eye(3), 1, axis=1)
    t.assign(pair.astype(np.float32))
    assert float(fn(y, p)[0]) == pytest.approx(-ln(0.5 * 0.2 + 0.3 * 0.8), rel=1e-6)


def test_forward_estimate_from_a_reference_run(tmp_path):
    from noisycore import forward
    from noisycore.detectors import estimate_noise
    from test_detect import fake_run

    run, ds, given, true = fake_run(tmp_path)
    t, text = forward.estimate_from_run(run, num_classes=4)
    probs = np.full((len(given), 4), 0.05)
    probs[np.arange(len(given)), true] = 0.85
    np.testing.assert_allclose(t, estimate_noise(given, probs).noise_matrix, atol=1e-6)
    assert "in-sample" in text and run.name in text
    np.save(run / "cv_probs.npy", probs.astype(np.float32))
    assert "cross-validation" in forward.estimate_from_run(run, num_classes=4)[1]


@pytest.mark.slow
def test_cli_trains_forward_on_a_saved_pair_noise_set_and_reports_the_matrix(quadrants, tmp_path, capsys):
    from helpers import run_main

    _pair_label_set(quadrants, tmp_path / "set")
    result = run_main(["train", "--dataset", str(quadrants), "--image-size", "16", "--test-fraction", "0.25",
                       "--labels", str(tmp_path / "set"), "--loss", "forward", "--epochs", "1", "--batch-size", "64",
                       "--no-batchnorm", "--out", str(tmp_path / "runs")], capsys)
    assert result.returncode == 0, result.stderr
    assert "noise matrix T[true, given]" in result.stdout and "noise.json" in result.stdout
    assert " 0.70  0.30  0.00  0.00" in result.stdout


@pytest.mark.slow
def test_forward_runs_cross_validate(tmp_path):
    """Fold runs carry the forward loss's matrix choice (here: estimated from a reference run)."""
    from noisycore import crossval, forward, runs
    from test_detect import fake_run

    run, ds, given, true = fake_run(tmp_path)
    config = runs.read_config(run).replace(epochs=1, batch_size=16, early_stopping_patience=0, loss="forward",
                                           loss_params={"matrix": "estimated", "matrix_from": str(run)},
                                           lr_schedule="constant", batchnorm=False, val_fraction=0.2)
    (run / "config.json").write_text(config.to_json())
    probs = crossval.cross_validate(run, folds=2)
    assert np.isfinite(probs).all()
    for fold in sorted((run / crossval.CV_DIR).glob("k2-fold*")):
        assert forward.read_record(fold / "run")["reference_run"] == str(run)


# ------------------------------------------------------------------------------ co-teaching's forget rate
def _coteaching(quadrants, tmp_path, forget_rate=None, **overrides):
    from helpers import tiny_config
    from noisycore import train
    from noisycore.config import NoiseConfig
    from noisycore.methods.coteaching import CoTeachingMethod

    params = {} if forget_rate is None else {"forget_rate": forget_rate}
    config = tiny_config(quadrants, method="coteaching", method_params=params,
                         noise=NoiseConfig(model="symmetric", rate=0.2, seed=1, per_example=True), **overrides)
    prepared = train.prepare(config)
    ctx, _, _ = train.make_context(config, prepared, tmp_path)
    return CoTeachingMethod(ctx, **config.method_kwargs), prepared, ctx


def test_coteaching_default_forget_rate_is_the_declared_rate_not_read_from_the_truth(quadrants, tmp_path):
    """Han et al. assume the noise rate is known: the default tau is the rate the noise settings
    declare (here 0.2, requested), never the realized rate counted from the true labels."""
    method, prepared, _ = _coteaching(quadrants, tmp_path)
    assert prepared.noisy.realized_rate != pytest.approx(0.2, abs=1e-3)     # per-example noise: realized differs
    assert method.tau == 0.2 and "declared" in method.summary()["forget_rate_source"]


def test_coteaching_estimates_the_forget_rate_by_confident_learning_when_nothing_is_declared(quadrants, tmp_path):
    from noisycore.detectors import estimate_noise

    method, _, ctx = _coteaching(quadrants, tmp_path, forget_rate="estimated")
    assert method.tau is None                                               # pending until the first epoch ends
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), len(ctx.y_fit))
    probs[np.arange(len(ctx.y_fit)), ctx.y_fit] += 1.5
    probs /= probs.sum(1, keepdims=True)

    class FakeModel:   # after_epoch reads the forget rate variable only
        forget_rate = tf.Variable(0.0)

    method.after_epoch(0, probs, FakeModel())
    assert method.tau == pytest.approx(estimate_noise(ctx.y_fit, probs).noise_rate)
    assert "confident learning" in method.summary()["forget_rate_source"]


def test_coteaching_oracle_is_labelled_as_using_the_true_labels(quadrants, tmp_path):
    method, prepared, ctx = _coteaching(quadrants, tmp_path, forget_rate="oracle_uses_true_labels")
    assert method.tau == pytest.approx(float((ctx.report_truth != ctx.y_fit).mean()))
    assert method.summary()["forget_rate_source"] == "oracle (uses true labels)"
    from noisycore.catalog import METHOD_PARAM_HELP

    assert "oracle (uses true labels)" in METHOD_PARAM_HELP["coteaching"]["forget_rate"]


# ------------------------------------------------------------------------------ area under the margin
def test_aum_threshold_is_the_99th_percentile_of_the_threshold_samples_aum():
    """Pleiss et al. 2020, Sec. 3: AUM of a threshold sample = mean over epochs of its margin against
    the fake class; the threshold is the 99th percentile of those AUMs. By hand: AUMs -2, -1, 0, 3
    (two epochs each); np.percentile(..., 99) interpolates 0 + 0.97 * 3 = 2.91."""
    from noisycore.detectors import aum_threshold

    fake = np.array([[-3.0, -1.0, 0.0, 2.0], [-1.0, -1.0, 0.0, 4.0]])
    assert aum_threshold(fake) == pytest.approx(2.91)
    assert aum_threshold(fake, percentile=50) == pytest.approx(-0.5)


def test_aum_uses_the_threshold_samples_and_the_cheap_rule_has_its_own_name():
    from noisycore.errors import UserError
    from noisycore.detectors import DETECTOR_HELP, DETECTORS, find_label_issues

    margins = np.array([[1.0, -2.0, 0.5, np.nan], [3.0, 1.0, -1.5, np.nan]])   # AUM 2, -0.5, -0.5, unscored
    cheap = find_label_issues([0, 1, 2, 0], None, detector="aum_margin_below_0", margins=margins)
    assert cheap.is_label_issue.tolist() == [False, True, True, False]
    assert np.isnan(cheap.label_quality[3]) and "below 0" in DETECTOR_HELP["aum_margin_below_0"]
    fake = np.array([[-1.0, 0.0], [-1.0, 0.0]])                                 # AUMs -1, 0 -> 99th pct -0.01
    paper = find_label_issues([0, 1, 2, 0], None, detector="aum", margins=margins, threshold_margins=fake)
    assert paper.params["threshold"] == pytest.approx(-0.01)
    assert paper.is_label_issue.tolist() == [False, True, True, False]
    with pytest.raises(UserError, match="one extra training run"):
        find_label_issues([0, 1, 2, 0], None, detector="aum", margins=margins)
    assert "threshold" in DETECTOR_HELP["aum"] and set(DETECTORS) >= {"aum", "aum_margin_below_0"}


def test_threshold_samples_are_n_over_k_plus_1_given_the_fake_class(quadrants):
    from helpers import tiny_config
    from noisycore import aum, train

    p = train.prepare(tiny_config(quadrants, aum_threshold_samples=True))
    k = p.dataset.num_classes
    assert k == 5 and p.dataset.class_names[-1] == aum.FAKE_CLASS_NAME
    fake = p.noisy.labels == k - 1
    assert fake.sum() == len(p.noisy.labels) // k                     # N / (K + 1) with K = 4 real classes
    again = train.prepare(tiny_config(quadrants, aum_threshold_samples=True))
    np.testing.assert_array_equal(again.noisy.labels, p.noisy.labels)   # seeded


@pytest.mark.slow
def test_margins_are_recorded_for_the_fit_images_only(quadrants, tmp_path):
    """AUM is a training dynamic: validation images, never trained on, get no margin (NaN)."""
    from helpers import tiny_config
    from noisycore import train

    train.run(tiny_config(quadrants, epochs=1), tmp_path)
    margins = np.load(tmp_path / "margins.npy")
    with np.load(tmp_path / "predictions.npz") as z:
        is_val = z["is_val"]
    assert margins.shape == (1, len(is_val)) and is_val.any()
    assert np.isnan(margins[:, is_val]).all() and np.isfinite(margins[:, ~is_val]).all()


@pytest.mark.slow
def test_aum_threshold_run_end_to_end(quadrants, tmp_path):
    """The extra training run: K + 1 outputs, threshold samples labelled with the fake class; the aum
    detector then flags the other fit images below the threshold samples' 99th-percentile AUM."""
    from helpers import tiny_config
    from noisycore import aum, detect, detectors, train

    train.run(tiny_config(quadrants, epochs=2, aum_threshold_samples=True), tmp_path)
    assert "aum" in detect.available_detectors(tmp_path)
    frame = detect.detect(tmp_path, detector="aum")
    info = detect.read_run_labels(tmp_path)
    fake = info.labels == 4
    margins = detect.read_margins(tmp_path)
    expected = detectors.aum_threshold(margins[:, fake & np.isfinite(margins).all(axis=0)])
    assert detect.detection_meta(tmp_path)["aum"]["params"]["threshold"] == pytest.approx(expected)
    by_index = frame.set_index("index")
    assert not by_index.loc[np.flatnonzero(fake), "is_label_issue"].any()       # threshold samples: not scored
    assert by_index.loc[np.flatnonzero(fake), "label_quality"].isna().all()
    assert aum.FAKE_CLASS_NAME in info.class_names


# ------------------------------------------------------------------------------ truth withheld from training
class TruthLeak(AssertionError):
    """A training or selection code path read the true labels."""


# The only functions allowed to read the truth during a run: evaluation-only reports.
REPORTERS = {("epoch_eval.py", "training_set_metrics"), ("train.py", "_summary_truth"), ("labelsets.py", "save_label_set"),
             ("label_correction.py", "correction_counts"), ("confidence_weighting.py", "_report")}


class Withheld:
    """Stands in for the true labels (or anything computed from them). Slicing is free (it reveals
    nothing); reading a value (``np.asarray``, comparisons, ``len``, ``float``, attributes) raises
    TruthLeak unless a REPORTERS function is on the call stack."""

    def __init__(self, values):
        self._values = values

    def _read(self):
        import sys

        frame = sys._getframe(2)
        while frame is not None:
            if (frame.f_code.co_filename.rsplit("/", 1)[-1], frame.f_code.co_name) in REPORTERS:
                return self._values
            frame = frame.f_back
        raise TruthLeak("the true labels were read outside the evaluation reports")

    def __getitem__(self, index):
        return Withheld(np.asarray(self._values)[index])

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._read(), dtype=dtype)

    def __len__(self):
        return len(self._read())

    def __float__(self):
        return float(self._read())

    def __iter__(self):
        return iter(self._read())

    def __eq__(self, other):
        return self._read() == other

    def __ne__(self, other):
        return self._read() != other

    def __bool__(self):
        return bool(self._read())

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._read(), name)

    __hash__ = None


def _withhold(noisy):
    """The NoisyLabels with every truth-derived field replaced by a Withheld sentinel."""
    import dataclasses

    fields = ("true_labels", "is_noisy", "realized_matrix", "realized_rate")
    return dataclasses.replace(noisy, **{f: Withheld(getattr(noisy, f)) for f in fields
                                         if getattr(noisy, f) is not None})


@pytest.fixture
def truth_withheld(monkeypatch):
    import dataclasses

    from noisycore import train

    real = train.prepare

    def prepare(config, **kwargs):
        prepared = real(config, **kwargs)
        return dataclasses.replace(prepared, noisy=_withhold(prepared.noisy))

    monkeypatch.setattr(train, "prepare", prepare)
    return train


# (loss, method, loss_params, method_params, epochs): one epoch unless a second is needed for the
# method's own step (T estimated after epoch 1, labels corrected after epoch 1, weights used in epoch 2)
TRAIN_CASES = [(loss, "standard", {}, {}, 1) for loss in LOSSES if loss != "forward"] + [
    ("forward", "standard", {}, {}, 1),                                           # T known: the declared matrix
    ("forward", "standard", {"matrix": "estimated", "warmup_epochs": 1}, {}, 2),  # T estimated after a CE warm-up
    ("ce", "confidence_weighting", {}, {"warmup_epochs": 1}, 2),
    ("ce", "coteaching", {}, {"t_k": 1}, 1),                                      # tau: the declared rate
    ("ce", "coteaching", {}, {"t_k": 1, "forget_rate": "estimated"}, 2),
    ("ce", "label_correction", {}, {"rounds": 1, "threshold": 0.3}, 2),
]


@pytest.mark.slow
@pytest.mark.parametrize("loss, method, loss_params, method_params, epochs", TRAIN_CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(TRAIN_CASES)])
def test_every_loss_and_method_trains_with_the_true_labels_withheld(quadrants, tmp_path, truth_withheld,
                                                                    loss, method, loss_params, method_params, epochs):
    """Ground truth enters no training or selection path: each loss and method trains (1-2 epochs, 120
    images, validation on the given labels) while the truth is a sentinel that only reports may read."""
    from helpers import tiny_config

    config = tiny_config(quadrants, loss=loss, loss_params=loss_params, method=method,
                         method_params=method_params, epochs=epochs, batch_size=64, max_train=120)
    summary = truth_withheld.run(config, tmp_path)
    assert summary["state"] == "finished" and summary["truth_known"] is True
    assert summary["train_acc_true"] is not None                       # the reports did read it


def test_the_sentinel_catches_a_leak(quadrants, tmp_path, truth_withheld):
    """The oracle forget rate reads the truth, and the sentinel says so (the check can fail)."""
    from helpers import tiny_config

    config = tiny_config(quadrants, method="coteaching", method_params={"forget_rate": "oracle_uses_true_labels"},
                         epochs=1)
    with pytest.raises(TruthLeak):
        truth_withheld.run(config, tmp_path)


def test_bad_forward_and_forget_rate_choices_are_refused_before_anything_is_written(tmp_path, capsys):
    from helpers import run_main
    from noisycore.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match="matrix='bogus' is not valid; choose one of: known, estimated"):
        TrainConfig(loss="forward", loss_params={"matrix": "bogus"})
    with pytest.raises(ConfigError, match="warmup_epochs=5 must be below epochs=3"):
        TrainConfig(loss="forward", loss_params={"matrix": "estimated"}, epochs=3)
    with pytest.raises(ConfigError, match="forget_rate='sometimes'.*oracle_uses_true_labels"):
        TrainConfig(method="coteaching", method_params={"forget_rate": "sometimes"})
    result = run_main(["train", "--loss", "forward", "--loss-params", "matrix=bogus", "--out", str(tmp_path)], capsys)
    assert result.returncode == 2 and "matrix='bogus'" in result.stderr and not any(tmp_path.iterdir())


def test_declared_noise_rate_comes_from_the_settings_never_from_the_truth():
    import types

    from noisycore import train
    from noisycore.config import NoiseConfig, TrainConfig

    def labels(model, rate=0.0, requested=None):
        return types.SimpleNamespace(config=NoiseConfig(model=model, rate=rate, matrix=requested, label_set="worst"),
                                     requested_matrix=requested, realized_rate=Withheld(0.123))

    config = TrainConfig()
    assert train._noise_rate(config, labels("pair", 0.3)) == 0.3
    t = [[0.8, 0.2, 0.0], [0.0, 0.6, 0.4], [0.0, 0.0, 1.0]]             # off-diagonal mass 0.2, 0.4, 0
    assert train._noise_rate(config, labels("matrix", requested=t)) == pytest.approx(0.2)
    assert train._noise_rate(config, labels("human")) is None and train._noise_rate(config, labels("none")) is None
