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
