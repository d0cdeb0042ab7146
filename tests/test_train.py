"""train.run writes a complete run folder; validation comes from the training data; stops and failures."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from noisycore import runs, train  # noqa: E402
from noisycore.config import ConfigError  # noqa: E402
from noisycore.errors import UserError  # noqa: E402
from noisycore.schedules import lr_at  # noqa: E402
from helpers import quadrant_folder, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    return quadrant_folder(tmp_path_factory.mktemp("quadrants"))


# ------------------------------------------------------------------------------ pure helpers
def test_training_set_metrics_by_hand():
    probs = np.eye(3)[[0, 1, 2, 2, 0]]          # predictions 0 1 2 2 0
    given = np.array([0, 1, 1, 2, 2])
    true = np.array([0, 1, 2, 2, 0])            # examples 2 and 4 are mislabelled; neither is memorized
    m = train.training_set_metrics(probs, given, true)
    assert m == {"train_acc_given": 0.6, "train_acc_true": 1.0, "memorized": 0.0}
    m = train.training_set_metrics(np.eye(3)[[0, 1, 1, 2, 0]], given, true)   # example 2 memorized
    assert m["memorized"] == 0.5 and m["train_acc_true"] == 0.8
    assert train.training_set_metrics(probs, given)["train_acc_true"] is None


def test_margins_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]])
    np.testing.assert_allclose(train.margins(probs, np.array([0, 2])),
                               [np.log(0.7 / 0.2), np.log(0.1 / 0.7)], rtol=1e-6)


def test_validation_split_is_stratified_seeded_and_disjoint():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    fit, val = train.validation_split(labels, fraction=0.1, seed=3)
    assert np.bincount(labels[val]).tolist() == [5, 3, 2]
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 100
    again = train.validation_split(labels, fraction=0.1, seed=3)[1]
    assert again.tolist() == val.tolist()
    assert train.validation_split(labels, fraction=0.1, seed=4)[1].tolist() != val.tolist()


def test_context_validates_on_noisy_or_trusted_labels(quadrants, tmp_path):
    config = tiny_config(quadrants)
    prepared = train.prepare(config)
    noisy = prepared.noisy
    ctx, fit, val = train.make_context(config, prepared, tmp_path)
    assert ctx.y_val.tolist() == noisy.labels[val].tolist()                 # default: noisy labels
    assert (noisy.labels[val] != noisy.true_labels[val]).any()
    trusted, _, val2 = train.make_context(config.replace(trusted_val=True), prepared, tmp_path)
    assert val2.tolist() == val.tolist() and trusted.y_val.tolist() == noisy.true_labels[val].tolist()
    assert len(ctx.y_fit) + len(ctx.y_val) == len(prepared.dataset.y_train) == 300   # never the test images


def test_labels_file_without_truth_and_max_train(quadrants, tmp_path):
    from noisycore.labelsets import save_label_set

    prepared = train.prepare(tiny_config(quadrants))
    unknown = dataclasses.replace(prepared.noisy, true_labels=None, is_noisy=None, realized_rate=None,
                                  realized_matrix=None)
    save_label_set(tmp_path, prepared.dataset, unknown)
    config = tiny_config(quadrants, labels_path=str(tmp_path / "labels.csv"), max_train=100)
    p = train.prepare(config)
    assert len(p.noisy.labels) == len(p.dataset.ids_train) == 100 and p.noisy.true_labels is None
    by_id = dict(zip(prepared.dataset.ids_train, prepared.noisy.labels))
    assert [by_id[i] for i in p.dataset.ids_train] == p.noisy.labels.tolist()
    with pytest.raises(ConfigError, match="trusted_val"):
        train.prepare(config.replace(trusted_val=True))
    # the forward loss reads the label set's declared matrix (noise.json); none declared -> estimate it
    kw = train._loss_kwargs(config.replace(loss="forward"), p.noisy, 4)
    np.testing.assert_allclose(kw["noise_matrix"], prepared.noisy.requested_matrix)
    human = dataclasses.replace(p.noisy, requested_matrix=None)
    with pytest.raises(ConfigError, match="matrix=estimated"):
        train._loss_kwargs(config.replace(loss="forward"), human, 4)
    kw = train._loss_kwargs(tiny_config(quadrants, loss="forward"), prepared.noisy, 4)
    np.testing.assert_allclose(np.asarray(kw["noise_matrix"]).sum(axis=1), 1.0)


# ------------------------------------------------------------------------------ full runs
@pytest.mark.slow
def test_run_writes_a_complete_run_folder(quadrants, tmp_path):
    config = tiny_config(quadrants, lr_schedule="cosine", epochs=2)
    run_dir = runs.create_run(config, root=tmp_path)
    seen = []
    summary = train.run(config, run_dir, progress=seen.append)
    assert runs.read_status(run_dir)["state"] == "finished" and summary["state"] == "finished"
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    for name in ("config.json", "labels.csv", "noise.json", "metrics.csv", "best.keras", "last.keras",
                 "predictions.npz", "margins.npy"):
        assert (run_dir / name).exists(), name
    labels = pd.read_csv(run_dir / "labels.csv")
    assert list(labels.columns[:4]) == ["id", "label", "true_label", "is_noisy"]

    metrics = runs.read_metrics(run_dir)
    assert list(metrics.columns) == list(runs.METRIC_COLUMNS)
    assert metrics["epoch"].tolist() == [1, 2]
    assert metrics[["train_acc_true", "train_acc_given", "memorized", "test_accuracy"]].notna().all().all()
    np.testing.assert_allclose(metrics["lr"], [lr_at("cosine", e, lr=3e-3, epochs=2, min_lr=1e-7) for e in (0, 1)],
                               rtol=1e-5)
    assert summary["best_epoch"] == int(metrics.loc[metrics["val_accuracy"].idxmax(), "epoch"])

    pred = np.load(run_dir / "predictions.npz", allow_pickle=False)
    n = len(labels)
    assert pred["train_probs"].shape == (n, 4) and pred["test_probs"].shape == (100, 4)
    assert pred["train_ids"].tolist() == labels["id"].astype(str).tolist()
    assert pred["is_val"].sum() == summary["num_val"] and summary["num_fit"] + summary["num_val"] == n
    assert summary["test_accuracy"] == pytest.approx((pred["test_probs"].argmax(1) == pred["test_labels"]).mean())
    margins = np.load(run_dir / "margins.npy")
    assert margins.shape == (2, n) and margins.dtype == np.float16

    best = keras.saving.load_model(run_dir / "best.keras")
    x_test = train.prepare(config).dataset.x_test.astype("float32") / 255.0
    np.testing.assert_allclose(best.predict(x_test, verbose=0), pred["test_probs"], atol=1e-4)
    assert any("batch" in p for p in seen) and [p["epoch"] for p in seen if "metrics" in p] == [1, 2]


def test_keep_last_keeps_the_final_epoch_not_the_best_validation_one(quadrants, tmp_path):
    """keep=last: the kept model (best.keras, predictions.npz, the summary's epoch and test accuracy) is the
    final epoch's, the one last.keras holds, whatever epoch validation liked best."""
    config = tiny_config(quadrants, epochs=3, keep="last")
    run_dir = runs.create_run(config, root=tmp_path)
    summary = train.run(config, run_dir)
    metrics = runs.read_metrics(run_dir)
    assert summary["best_epoch"] == 3 and summary["best_val_accuracy"] == pytest.approx(metrics["val_accuracy"].iloc[-1])
    assert summary["test_accuracy"] == pytest.approx(metrics["test_accuracy"].iloc[-1])
    x_test = train.prepare(config).dataset.x_test.astype("float32") / 255.0
    kept, last = (keras.saving.load_model(run_dir / n) for n in ("best.keras", "last.keras"))
    np.testing.assert_allclose(kept.predict(x_test, verbose=0), last.predict(x_test, verbose=0), atol=1e-5)
    from noisycore import evaluation   # the pages name the kept model for what it is
    run = runs.load_run(run_dir)
    assert evaluation.best_epoch(run) == 3 and evaluation.kept_epoch_text(run, 3) == "last epoch 3"
    assert evaluation.kept_marker(run) == "model kept (last epoch)"
    assert evaluation.keeps_last(run) and evaluation.kept_reason(run) == "the last epoch, kept"
    best_run = dataclasses.replace(run, config=config.replace(keep="best"))
    assert evaluation.kept_epoch_text(best_run, 2) == "best epoch 2" and evaluation.kept_marker(best_run) == "best model"
    assert not evaluation.keeps_last(best_run) and evaluation.kept_reason(best_run) == "highest validation accuracy"
    with pytest.raises(ConfigError, match="keep='first' is not valid; choose one of: best, last"):
        dataclasses.replace(config, keep="first")


def test_training_keeps_one_iterator_when_every_pass_has_the_same_length(quadrants, tmp_path, monkeypatch):
    """fit gets an endless dataset and steps_per_epoch = the batches of one pass (no iterator torn down
    between epochs: benchmarks/README.md "Idle stalls between epochs"); label correction's drop, whose
    passes shrink, still iterates epoch by epoch. Both runs see every epoch through."""
    calls = []
    original = keras.Model.fit

    def spy(self, x=None, *args, **kwargs):
        calls.append((int(x.cardinality()), kwargs.get("steps_per_epoch")))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    config = tiny_config(quadrants, epochs=2)
    run_dir = runs.create_run(config, root=tmp_path / "standard")
    summary = train.run(config, run_dir)
    assert calls == [(-1, -(-summary["num_fit"] // 32))]          # infinite; ceil(fit images / batch 32)
    assert runs.read_status(run_dir)["batches"] == calls[0][1]
    assert runs.read_metrics(run_dir)["epoch"].tolist() == [1, 2]
    calls.clear()
    dropping = tiny_config(quadrants, epochs=2, method="label_correction",
                           method_params={"detector": "confident_learning", "action": "drop", "rounds": 1})
    run_dir = runs.create_run(dropping, root=tmp_path / "drop")
    assert train.run(dropping, run_dir)["state"] == "finished"
    assert calls == [(-2, None)]                                  # unknown length (the keep filter): per epoch
    assert runs.read_metrics(run_dir)["epoch"].tolist() == [1, 2]


@pytest.mark.slow
def test_stop_request_ends_the_run_as_stopped(quadrants, tmp_path):
    config = tiny_config(quadrants, epochs=5)
    run_dir = runs.create_run(config, root=tmp_path)
    (run_dir / runs.STOP_FILE).write_text("now")             # requested before the first batch ends
    summary = train.run(config, run_dir)
    assert summary["state"] == "stopped" == runs.read_status(run_dir)["state"]
    assert summary["epochs_done"] == 0 and summary["best_epoch"] is None   # the cut epoch is not recorded
    assert (run_dir / "last.keras").exists() and (run_dir / "predictions.npz").exists()


def test_an_error_marks_the_run_failed(quadrants, tmp_path):
    # a bad model name is refused when the config is built, before any run folder exists
    with pytest.raises(ConfigError, match="model='no_such_net'.*compact_cnn"):
        tiny_config(quadrants, model="no_such_net")
    # an error that only shows once training starts (the label file is gone) marks the run failed
    config = tiny_config(quadrants, labels_path=str(tmp_path / "gone" / "labels.csv"))
    run_dir = runs.create_run(config, root=tmp_path / "runs")
    with pytest.raises(UserError):
        train.run(config, run_dir)
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "labels.csv" in status["error"]
