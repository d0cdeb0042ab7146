"""The per-epoch evaluation: training-set curves on a stratified sample, one validation pass, plain test pass."""
import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from noisycore import epoch_eval, runs, train  # noqa: E402
from noisycore.methods.standard import StandardMethod  # noqa: E402
from helpers import quadrant_folder, tiny_config  # noqa: E402


def test_train_sample_is_stratified_seeded_and_full_when_asked():
    given = np.array([0] * 6000 + [1] * 4000)
    sample = epoch_eval.train_sample(given, full=False, seed=3, size=5000)
    assert len(sample) == 5000 and np.bincount(given[sample]).tolist() == [3000, 2000]   # 60 / 40 kept
    assert np.array_equal(sample, epoch_eval.train_sample(given, full=False, seed=3, size=5000))
    assert not np.array_equal(sample, epoch_eval.train_sample(given, full=False, seed=4, size=5000))
    assert np.array_equal(epoch_eval.train_sample(given, full=True, seed=3, size=5000), np.arange(10000))
    assert np.array_equal(epoch_eval.train_sample(given[:4000], full=False, seed=3, size=5000), np.arange(4000))
    assert len(epoch_eval.train_sample(given, full=False, seed=3)) == epoch_eval.TRAIN_SAMPLE_MAX


def _mean_pixel_model():
    """A real Keras net: p(class 1) = sigmoid(20 * mean(x) - 10); uniform white images -> class 1."""
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    kernel = np.zeros((48, 2), np.float32)
    kernel[:, 1] = 20 / 48
    model.layers[-1].set_weights([kernel, np.array([0.0, -10.0], np.float32)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    return model


class _Method:
    def predictor(self, model):
        return model

    def after_epoch(self, epoch, probs_fit, model):
        return {}


class _Monitor:
    interrupted = False


def _images(white):
    return np.stack([np.full((4, 4, 3), 255 if w else 0, np.uint8) for w in white])


def test_curves_on_the_sample_and_one_tta_validation_pass_by_hand(tmp_path):
    runs.update_status(tmp_path, state="running")
    white = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0]          # fit 0-9 (predicted 1 = white), validation 10-11
    given = np.array([1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 1])
    true = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    fit_idx, val_idx = np.arange(10), np.array([10, 11])
    ev = epoch_eval.Evaluation(
        train_x=_images(white), test_x=_images([1, 1, 0, 0]), val_x=_images(white)[val_idx], fit_idx=fit_idx,
        val_idx=val_idx, y_val=given[val_idx], tta="flip", precision="float32", given_fit=given[fit_idx],
        true_fit=true[fit_idx], given_all=given, y_test=np.array([1, 0, 0, 0]), record_margins=False,
        sample=np.array([0, 1, 5, 7]), val_loss=keras.losses.categorical_crossentropy)
    recorder = epoch_eval.EpochRecorder(run_dir=tmp_path, method=_Method(), monitor=_Monitor(), evaluation=ev)
    model = _mean_pixel_model()
    recorder.set_model(model)
    logs = {"loss": 1.0, "accuracy": 0.5}
    recorder.on_epoch_begin(0)
    recorder.on_epoch_end(0, logs)
    row = runs.read_metrics(tmp_path).iloc[0]
    # sample predicted [1, 1, 0, 0], given [1, 0, 0, 1], true [1, 1, 0, 0]: 2/4 given, 4/4 true, and of the
    # two wrong labels (positions 1, 7) none is memorized. Every fit image would give 6/10 against the given.
    assert row["train_acc_given"] == pytest.approx(0.5)
    assert row["train_acc_true"] == pytest.approx(1.0)
    assert row["memorized"] == pytest.approx(0.0)
    assert recorder.fit_probs is None                      # a sample: no full fit predictions for the method
    # validation (white, black) both labelled 1: accuracy 1/2, CE = (log(1 + e^-10) + log(1 + e^10)) / 2
    assert row["val_accuracy"] == pytest.approx(0.5)
    assert row["val_loss"] == pytest.approx((np.log1p(np.exp(-10)) + np.log1p(np.exp(10))) / 2, rel=1e-4)
    assert logs["val_accuracy"] == pytest.approx(0.5)      # the checkpoint after us selects on it
    assert row["test_accuracy"] == pytest.approx(0.75)     # predicted [1, 1, 0, 0] vs [1, 0, 0, 0]


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    return quadrant_folder(tmp_path_factory.mktemp("quadrants"), n_per_class=40)


def test_run_with_tta_validates_once_and_samples_the_curves(quadrants, tmp_path, monkeypatch):
    def keras_validation(self):
        raise AssertionError("Keras' validation pass ran beside ours")

    monkeypatch.setattr(StandardMethod, "val_data", keras_validation)
    monkeypatch.setattr(epoch_eval, "TRAIN_SAMPLE_MAX", 40)
    summary = train.run(tiny_config(quadrants, epochs=1, tta="flip", record_margins=False), tmp_path)
    status = runs.read_status(tmp_path)
    assert status["train_sample"] == 40 and status["num_fit"] > 40 and status["margins_recorded"] is False
    metrics = runs.read_metrics(tmp_path)
    assert np.isfinite(metrics["val_loss"]).all() and np.isfinite(metrics["val_accuracy"]).all()
    with np.load(tmp_path / "predictions.npz") as p:      # the final predictions cover every image
        assert len(p["train_probs"]) == status["num_fit"] + status["num_val"]
    assert summary["num_fit"] == status["num_fit"]


def test_margins_keep_every_fit_image(quadrants, tmp_path, monkeypatch):
    monkeypatch.setattr(epoch_eval, "TRAIN_SAMPLE_MAX", 40)
    train.run(tiny_config(quadrants, epochs=1, record_margins=True), tmp_path)
    status = runs.read_status(tmp_path)
    assert status["train_sample"] == status["num_fit"] and status["margins_recorded"] is True
    margins = np.load(tmp_path / "margins.npy")
    assert np.isfinite(margins[0]).sum() == status["num_fit"]
    assert pd.notna(runs.read_metrics(tmp_path)["train_acc_given"]).all()


def test_curves_note_states_the_sample_size():
    from noisycore.evaluation import curves_note

    assert curves_note({"train_sample": 5000, "num_fit": 45000}).startswith(
        "Training-set curves on a 5,000-image stratified sample of the 45,000 images")
    assert "AUM margins" in curves_note({"train_sample": 45000, "num_fit": 45000, "margins_recorded": True})
    assert curves_note({"num_fit": 45000}) is None      # an older run folder
    assert "plain pass" in curves_note({"train_sample": 5000, "num_fit": 45000}, tta="flip")
    assert "plain pass" not in curves_note({"train_sample": 5000, "num_fit": 45000}, tta="none")


def test_curve_test_sample_only_for_large_sets():
    y = np.array([0] * 7000 + [1] * 3000)
    s = epoch_eval.curve_test_sample(y, large=True, seed=1)
    assert len(s) == epoch_eval.TEST_SAMPLE_MAX and np.bincount(y[s]).tolist() == [3500, 1500]
    assert np.array_equal(s, epoch_eval.curve_test_sample(y, large=True, seed=1))
    assert epoch_eval.curve_test_sample(y, large=False, seed=1) is None          # a small set: every test image
    assert epoch_eval.curve_test_sample(y[:4000], large=True, seed=1) is None    # a small test set
    assert epoch_eval.is_large(epoch_eval.TRAIN_SAMPLE_MAX + 1) and not epoch_eval.is_large(epoch_eval.TRAIN_SAMPLE_MAX)


def test_large_set_epoch_predicts_three_small_plain_passes(tmp_path, monkeypatch):
    """A large set's epoch: the curve sample, ONE plain validation pass and the test sample, nothing else
    (each pass's size and TTA recorded from the real predict_probs), with the test accuracy of the sample."""
    calls = []
    real = epoch_eval.predict_probs

    def spy(net, images, *, tta, batch_size):
        calls.append((len(images), tta))
        return real(net, images, tta=tta, batch_size=batch_size)

    monkeypatch.setattr(epoch_eval, "predict_probs", spy)
    runs.update_status(tmp_path, state="running")
    white = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0]
    given = np.array([1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 1])
    fit_idx, val_idx = np.arange(10), np.array([10, 11])
    ev = epoch_eval.Evaluation(
        train_x=_images(white), test_x=_images([1, 1, 0, 0, 1, 0]), val_x=_images(white)[val_idx], fit_idx=fit_idx,
        val_idx=val_idx, y_val=given[val_idx], tta="flip", precision="float32", given_fit=given[fit_idx],
        true_fit=None, given_all=given, y_test=np.array([1, 0, 0, 0, 0, 1]), record_margins=False,
        sample=np.array([0, 1, 5, 7]), test_sample=np.array([0, 2, 4]), val_tta="none",
        val_loss=keras.losses.categorical_crossentropy)
    recorder = epoch_eval.EpochRecorder(run_dir=tmp_path, method=_Method(), monitor=_Monitor(), evaluation=ev)
    recorder.set_model(_mean_pixel_model())
    recorder.on_epoch_begin(0)
    recorder.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})
    assert calls == [(4, "none"), (2, "none"), (3, "none")]
    row = runs.read_metrics(tmp_path).iloc[0]
    # the test sample (positions 0, 2, 4): white, black, white predicted [1, 0, 1] against [1, 0, 0]: 2 of 3;
    # all six test images would give 4 of 6
    assert row["test_accuracy"] == pytest.approx(2 / 3)
    assert row["val_accuracy"] == pytest.approx(0.5)


def test_large_run_validates_once_plain_and_says_so(quadrants, tmp_path, monkeypatch):
    def keras_validation(self):
        raise AssertionError("Keras' validation pass ran beside ours")

    monkeypatch.setattr(StandardMethod, "val_data", keras_validation)
    monkeypatch.setattr(epoch_eval, "TRAIN_SAMPLE_MAX", 40)     # the quadrants count as a large set
    monkeypatch.setattr(epoch_eval, "TEST_SAMPLE_MAX", 12)
    summary = train.run(tiny_config(quadrants, epochs=1, tta="none", record_margins=False), tmp_path)
    status = runs.read_status(tmp_path)
    assert status["val_tta"] == "none" and status["test_sample"] == 12 and status["num_test"] > 12
    assert np.isfinite(runs.read_metrics(tmp_path)["val_accuracy"]).all()
    with np.load(tmp_path / "predictions.npz") as p:          # the kept model's numbers: every test image
        assert len(p["test_probs"]) == status["num_test"]
    assert summary["num_fit"] == status["num_fit"]
    from noisycore.evaluation import curves_note
    note = curves_note(status, tta="flip")
    assert "12-image stratified sample of the" in note and "Validation (which picks the kept epoch) is one plain" in note


def test_margins_by_default_only_up_to_the_auto_limit(quadrants, tmp_path, monkeypatch):
    monkeypatch.setattr(epoch_eval, "TRAIN_SAMPLE_MAX", 40)
    monkeypatch.setattr(train, "MARGINS_AUTO_MAX_N", 50)           # the quadrants are beyond it
    train.run(tiny_config(quadrants, epochs=1), tmp_path / "beyond")
    status = runs.read_status(tmp_path / "beyond")
    assert status["margins_recorded"] is False and status["train_sample"] == 40
    assert not (tmp_path / "beyond" / "margins.npy").exists()
    train.run(tiny_config(quadrants, epochs=1, aum_threshold_samples=True), tmp_path / "aum")   # AUM's run needs them
    assert runs.read_status(tmp_path / "aum")["margins_recorded"] is True
    monkeypatch.setattr(train, "MARGINS_AUTO_MAX_N", 10_000)
    train.run(tiny_config(quadrants, epochs=1), tmp_path / "within")
    assert runs.read_status(tmp_path / "within")["margins_recorded"] is True
    assert (tmp_path / "within" / "margins.npy").exists()
