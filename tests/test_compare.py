"""The Compare view's words (issue 33, finding 6): what a number is, whose labels score it, whether a
difference is within run-to-run noise, what a legend names, and which runs it opens with."""
import json
import math

import numpy as np
import pytest

from noisycore import evaluation, naming, runs
from noisycore.config import DataConfig, TrainConfig


def _run(folder, *, right: int, n: int = 100, truth_known: bool, reviewed_from=None, source="builtin"):
    """A finished run folder whose model gets ``right`` of ``n`` held-out images right (2 classes)."""
    folder.mkdir(parents=True)
    runs.atomic_write_text(folder / "config.json", TrainConfig(data=DataConfig(source=source)).to_json())
    runs.write_status(folder, {"state": "finished"})
    (folder / "noise.json").write_text(json.dumps({"dataset": {"class_names": ["a", "b"]},
                                                   "truth_known": truth_known}))
    labels = np.zeros(n, np.int64)
    probs = np.tile([0.9, 0.1], (n, 1))
    probs[right:] = [0.1, 0.9]                       # the last n - right images predicted wrong
    np.savez(folder / "predictions.npz", train_ids=np.array(["t0"]), train_labels=np.zeros(1, np.int64),
             train_probs=np.array([[0.9, 0.1]]), test_ids=np.array([f"x{i}" for i in range(n)]),
             test_labels=labels, test_probs=probs)
    if reviewed_from is not None:
        (folder / evaluation.REVIEWED_FILE).write_text(json.dumps({"title": f"{reviewed_from.name} after review",
                                                                   "from": str(reviewed_from)}))
    return folder


def test_noise_points_by_hand():
    assert evaluation.noise_points(0.5, 200) == pytest.approx(200 * math.sqrt(2 * 0.25 / 200))   # 10 points
    assert evaluation.noise_points(0.5, 200) == pytest.approx(10.0)
    assert evaluation.noise_points(1.0, 50) == 0.0


def test_a_retrain_on_injected_noise_is_scored_against_true_labels_and_a_small_gain_is_called_noise(tmp_path):
    """After a retrain on the shapes the held-out images were never reviewed: their true labels score both
    runs; -1 point on 100 images is within run-to-run noise (about ±11.4 points) and the line says so."""
    original = _run(tmp_path / "r1", right=80, truth_known=True)
    retrained = _run(tmp_path / "r2", right=79, truth_known=True, reviewed_from=original)
    [line] = evaluation.review_gain_lines([original, retrained])
    assert "(scored against their true labels): -1.0 points" in line and "reviewed labels" not in line
    assert "within run-to-run noise (about ±11.4 points on 100 images)" in line


def test_own_labels_are_scored_against_the_reviewed_labels_and_a_clear_gain_has_no_noise_note(tmp_path):
    original = _run(tmp_path / "r1", right=60, truth_known=False)
    retrained = _run(tmp_path / "r2", right=90, truth_known=False, reviewed_from=original)
    [line] = evaluation.review_gain_lines([original, retrained])
    assert "(scored against their reviewed labels): +30.0 points" in line and "noise" not in line


def test_legends_name_an_upload_by_its_file_not_its_internal_path():
    upload = "/home/me/.noisylab/uploads/0123456789abcdef/holiday photos.zip"
    labels = naming.legend_labels({"a": TrainConfig(data=DataConfig(source=upload)),
                                   "b": TrainConfig(data=DataConfig(source="builtin"))})
    assert labels == {"a": "holiday photos", "b": "built-in shapes"}
    assert naming.data_words("/data/pets/") == "pets" and naming.data_words("/data/pets.csv") == "pets"
    assert naming.data_words("cifar10") == "CIFAR-10"


def test_compare_opens_with_runs_of_one_dataset_and_names_the_kept_epochs_accuracy(tmp_path):
    from ui.curves import compare_column_title, default_compare

    newest = _run(tmp_path / "r3", right=50, truth_known=True)
    other = _run(tmp_path / "r2", right=50, truth_known=False, source=str(tmp_path / "photos.zip"))
    older = _run(tmp_path / "r1", right=50, truth_known=True)
    paths = [str(newest), str(other), str(older)]
    assert default_compare(paths) == [str(newest), str(older)]
    assert default_compare(paths, current=str(other)) == [str(other)]
    assert compare_column_title("best_test_accuracy", truth_known=True) == "test accuracy at the kept epoch"
    assert compare_column_title("final_test_accuracy", truth_known=False) == \
        "held-out accuracy (given labels) at the last epoch"
