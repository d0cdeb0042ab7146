"""Run folders: ids, status written atomically, tolerant readers, listing."""
import json
import re

import pytest

from noisycore import runs
from noisycore.config import NoiseConfig, TrainConfig
from noisycore.errors import UserError


def test_create_run_writes_config_and_queued_status(tmp_path):
    config = TrainConfig(loss="gce", noise=NoiseConfig(model="pair", rate=0.2), epochs=3)
    path = runs.create_run(config, root=tmp_path)
    assert re.fullmatch(r"\d{8}-\d{6}-gce-pair20", path.name)
    assert TrainConfig.from_json((path / "config.json").read_text()) == config
    status = runs.read_status(path)
    assert status["state"] == "queued" and status["epochs"] == 3 and status["created"]
    second = runs.create_run(config, root=tmp_path)          # same second: still unique
    assert second != path and second.name.startswith(path.name[:15])
    named = runs.create_run(TrainConfig(method="coteaching"), root=tmp_path, name="My test!")
    assert named.name.endswith("-my-test")
    assert runs.describe(TrainConfig(method="coteaching")) == "coteaching-ce-symmetric40"


def test_default_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISYLAB_RUNS", str(tmp_path / "elsewhere"))
    path = runs.create_run(TrainConfig())
    assert path.parent == tmp_path / "elsewhere"


def test_write_status_is_atomic_and_validated(tmp_path):
    runs.write_status(tmp_path, {"state": "running", "epoch": 2})
    assert runs.read_status(tmp_path)["epoch"] == 2
    assert not list(tmp_path.glob("*.tmp"))                   # no temp file left behind
    runs.update_status(tmp_path, batch=5)
    assert runs.read_status(tmp_path)["batch"] == 5 and runs.read_status(tmp_path)["epoch"] == 2
    with pytest.raises(UserError, match="state='done'"):
        runs.write_status(tmp_path, {"state": "done"})
    (tmp_path / "status.json").write_text('{"state": "runn')   # a torn file from elsewhere
    assert runs.read_status(tmp_path)["state"] == "unknown"


def _write_metrics(path, rows):
    for row in rows:
        runs.append_metrics_row(path, row, runs.METRIC_COLUMNS)


def test_metrics_rows_and_truncated_last_line(tmp_path):
    _write_metrics(tmp_path, [{"epoch": 1, "loss": 2.0, "accuracy": 0.3, "val_accuracy": 0.25},
                              {"epoch": 2, "loss": 1.5, "accuracy": 0.5, "val_accuracy": 0.4}])
    df = runs.read_metrics(tmp_path)
    assert list(df.columns) == list(runs.METRIC_COLUMNS)
    assert df["epoch"].tolist() == [1, 2] and df["val_accuracy"].tolist() == [0.25, 0.4]
    assert df["train_acc_true"].isna().all()                  # unknown values are empty cells
    with open(tmp_path / "metrics.csv", "a") as f:            # the process died mid-write
        f.write("3,1.2,0.6,")
    df = runs.read_metrics(tmp_path)
    assert df["epoch"].tolist() == [1, 2]


def test_load_run_names_a_corrupt_config(tmp_path):
    path = runs.create_run(TrainConfig(epochs=2), root=tmp_path)
    _write_metrics(path, [{"epoch": 1, "val_accuracy": 0.5}])
    run = runs.load_run(path)
    assert run.config.epochs == 2 and run.state == "queued" and len(run.metrics) == 1 and run.summary is None
    (path / "config.json").write_text('{"epochs": 2, "model": ')
    with pytest.raises(UserError, match=re.escape(str(path / "config.json"))):
        runs.load_run(path)
    (path / "config.json").write_text(json.dumps({"epochs": -4}))
    with pytest.raises(UserError, match="config.json.*epochs=-4"):
        runs.load_run(path)
    with pytest.raises(UserError, match="does not exist"):
        runs.load_run(tmp_path / "nope")


def test_list_runs_newest_first_with_results(tmp_path):
    a = runs.create_run(TrainConfig(loss="ce"), root=tmp_path, name="a")
    b = runs.create_run(TrainConfig(loss="gce", noise=NoiseConfig(rate=0.2)), root=tmp_path, name="b")
    _write_metrics(b, [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}])
    runs.write_json(b / "summary.json", {"test_accuracy": 0.66})
    broken = runs.create_run(TrainConfig(), root=tmp_path, name="c")
    (broken / "config.json").write_text("garbage")
    df = runs.list_runs(tmp_path)
    assert list(df.columns) == list(runs.LIST_COLUMNS)
    assert df["id"].tolist() == [broken.name, b.name, a.name]
    row = df.set_index("id").loc[b.name]
    assert (row["loss"], row["rate"], row["epochs_done"], row["best_val_acc"], row["test_acc"]) == \
        ("gce", 0.2, 2, 0.7, 0.66)
    assert df.set_index("id").loc[broken.name].isna()["model"]   # listed, not hidden
    assert runs.list_runs(tmp_path / "empty").empty
