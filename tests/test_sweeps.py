"""Sweeps: the grid, cell configs, the sweep folder and summary, resume rules, stop, slot lock, CLI end to end."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from noisycore import jobs, runs, sweeps
from noisycore.cli import main as cli_main
from noisycore.config import ConfigError, DataConfig, TrainConfig
from noisycore.errors import UserError
from helpers import quadrant_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def spec(**over):
    base = TrainConfig(data=DataConfig(source="builtin"), loss="gce", loss_params={"q": 0.5}, epochs=1)
    values = dict(base=base, noise="pair", rates=(0.0, 0.4), losses=("ce", "gce"), seeds=(0, 1))
    values.update(over)
    return sweeps.SweepSpec(**values)


def finish_cell(sweep_dir, name, *, state="finished", test_accuracy=0.5, **status):
    """A cell folder as train.run leaves it (status + summary), written with the runs module."""
    path = Path(sweep_dir) / name
    path.mkdir(exist_ok=True)
    runs.write_status(path, {"state": state, "pid": None, **status})
    if state == "finished":
        runs.write_json(path / "summary.json", {"state": state, "test_accuracy": test_accuracy,
                                                "last_test_accuracy": test_accuracy - 0.1, "best_epoch": 1,
                                                "train_acc_true": 0.6, "memorized": 0.2, "epochs_done": 1})
    return path


# ------------------------------------------------------------------------------ the grid
def test_cells_names_order_and_recipes():
    s = spec(methods=("standard", "coteaching"))
    grid = sweeps.cells(s)
    assert len(grid) == 2 * 2 * 2 * 2
    assert [c.name for c in grid[:4]] == ["ce-standard-r0.00-s0", "ce-coteaching-r0.00-s0",
                                          "gce-standard-r0.00-s0", "gce-coteaching-r0.00-s0"]
    assert grid[-1].name == "gce-coteaching-r0.40-s1"       # seed is the outer loop
    assert grid[0].recipe == "ce" and grid[1].recipe == "coteaching + ce"
    assert len({c.name for c in grid}) == len(grid)


def test_cell_config_replaces_loss_method_noise_and_seed():
    s = spec()
    gce = sweeps.cell_config(s, sweeps.Cell("gce", "standard", 0.4, 1))
    assert (gce.loss, gce.loss_kwargs, gce.seed) == ("gce", {"q": 0.5}, 1)   # the base loss keeps its q
    assert (gce.noise.model, gce.noise.rate, gce.noise.seed) == ("pair", 0.4, 1)
    ce = sweeps.cell_config(s, sweeps.Cell("ce", "standard", 0.0, 0))
    assert ce.loss_kwargs == {} and ce.noise.rate == 0.0 and ce.epochs == 1


def test_spec_round_trips_through_json():
    s = spec()
    again = sweeps.SweepSpec.from_json(s.to_json())
    assert again.to_dict() == s.to_dict() and again.rates == (0.0, 0.4) and isinstance(again.base, TrainConfig)


@pytest.mark.parametrize("over, words", [
    (dict(rates=(0.2, 1.2)), "outside [0, 1)"),
    (dict(rates=(0.2, 0.2)), "repeats"),
    (dict(losses=("ce", "nope")), "nope"),
    (dict(methods=("magic",)), "magic"),
    (dict(noise="human"), "symmetric"),
    (dict(seeds=()), "empty"),
    (dict(base=TrainConfig(labels_path="x/labels.csv")), "labels_path"),
])
def test_bad_specs_name_the_value(over, words):
    with pytest.raises(ConfigError, match=None) as err:
        spec(**over)
    assert words in str(err.value)


# ------------------------------------------------------------------------------ the folder
def test_create_writes_spec_and_summary_and_resumes_only_the_same_grid(tmp_path):
    out = sweeps.create_sweep(spec(), tmp_path / "sweep-a")
    table = pd.read_csv(out / "summary.csv")
    assert list(table.columns) == list(sweeps.SUMMARY_COLUMNS)
    assert len(table) == 8 and set(table["state"]) == {"missing"}
    assert sweeps.create_sweep(spec(), out) == out                       # same grid: resume
    with pytest.raises(UserError, match="different sweep"):
        sweeps.create_sweep(spec(rates=(0.0, 0.2)), out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(UserError, match="not a sweep folder"):
        sweeps.create_sweep(spec(), tmp_path / "other")
    assert runs.list_runs(tmp_path).empty                               # sweeps are listed separately
    assert sweeps.list_sweeps(tmp_path)["name"].tolist() == ["sweep-a"]


def test_invalid_cell_config_writes_nothing(tmp_path):
    bad = spec(base=TrainConfig(mixup_alpha=0.2), methods=("standard", "coteaching"))
    with pytest.raises(ConfigError, match="coteaching"):
        sweeps.create_sweep(bad, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_summary_and_status_follow_the_cell_folders(tmp_path):
    out = sweeps.create_sweep(spec(rates=(0.4,), seeds=(0,)), tmp_path / "sweep")
    finish_cell(out, "ce-standard-r0.40-s0", test_accuracy=0.75)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    finish_cell(out, "gce-standard-r0.40-s0", state="running", pid=dead.pid)   # its worker is gone
    table = sweeps.write_summary(out).set_index("run")
    assert table.loc["ce-standard-r0.40-s0", "state"] == "finished"
    assert table.loc["ce-standard-r0.40-s0", "test_accuracy"] == 0.75
    assert table.loc["ce-standard-r0.40-s0", "last_test_accuracy"] == pytest.approx(0.65)
    assert table.loc["gce-standard-r0.40-s0", "state"] == "failed"
    assert sweeps.finished_only(table.reset_index())["run"].tolist() == ["ce-standard-r0.40-s0"]
    status = sweeps.sweep_status(out)
    assert (status["state"], status["done"], status["failed"], status["total"]) == ("incomplete", 1, 1, 2)
    finish_cell(out, "gce-standard-r0.40-s0")
    assert sweeps.sweep_status(out)["state"] == "finished"


def test_resume_rules_skip_finished_and_cells_tried_in_this_pass(tmp_path):
    out = sweeps.create_sweep(spec(rates=(0.4,), seeds=(0,)), tmp_path / "sweep")
    ce, gce = sweeps.cells(sweeps.load_spec(out))
    assert sweeps._should_run(out, ce, "pass-1")                      # missing
    finish_cell(out, ce.name)
    assert not sweeps._should_run(out, ce, "pass-1")                  # finished: never rerun
    finish_cell(out, gce.name, state="failed", sweep_pass="pass-1")
    assert not sweeps._should_run(out, gce, "pass-1")                 # failed in this pass: not again
    assert sweeps._should_run(out, gce, "pass-2")                     # failed earlier: rerun on resume


def test_work_does_nothing_when_stopped(tmp_path):
    out = sweeps.create_sweep(spec(rates=(0.4,), seeds=(0,)), tmp_path / "sweep")
    status = sweeps.stop_sweep(out)
    assert (out / sweeps.STOP_FILE).exists() and status["state"] == "stopped"
    table = sweeps.work(out)
    assert set(table["state"]) == {"missing"}
    assert not any(p.is_dir() for p in out.iterdir())


def test_background_worker_waits_for_the_training_slot_and_stops(tmp_path):
    """A sweep worker honours the jobs lock of its parent folder; stop ends it before training."""
    root = tmp_path / "runs"
    out = sweeps.create_sweep(spec(rates=(0.4,), seeds=(0,), losses=("ce",)), root / "sweep-lock")
    held = jobs.try_lock(root / jobs.LOCK_NAME)      # a single run is training
    try:
        status = sweeps.resume_sweep(out)
        assert status["active"] and status["state"] == "running"
        cell = out / "ce-standard-r0.40-s0"
        deadline = time.monotonic() + 60
        while runs.read_status(cell).get("state") != "queued" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert runs.read_status(cell)["state"] == "queued"             # waiting for the slot
        time.sleep(1.0)
        assert runs.read_status(cell)["state"] == "queued"
        sweeps.stop_sweep(out)
        while sweeps.sweep_status(out)["active"] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        held.release()
    status = sweeps.sweep_status(out)
    assert not status["active"] and status["state"] == "stopped"
    assert runs.read_status(cell)["state"] == "stopped" and not (cell / "metrics.csv").exists()
    with pytest.raises(UserError, match="not a sweep folder"):
        sweeps.resume_sweep(tmp_path)


# ------------------------------------------------------------------------------ CLI
@pytest.mark.parametrize("extra, words", [
    (["--labels", "x/labels.csv"], "--labels"),
    (["--rate", "0.4"], "--rates"),
    (["--jobs", "0"], "--jobs"),
    (["--rates", "0,abc"], "not a comma-separated list"),
    (["--losses", "ce,bogus"], "bogus"),
])
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, extra, words):
    out = tmp_path / "sweep"
    try:
        code = cli_main(["sweep", "--noise", "symmetric", "--out", str(out), *extra])
    except SystemExit as e:          # argparse type errors exit directly
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not out.exists()


def _sweep_cli(folder, out, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "noisycore.cli", "sweep", "--dataset", str(folder), "--test-fraction", "0.25",
           "--noise", "symmetric", "--rates", "0,0.5", "--losses", "ce", "--epochs", "1", "--batch-size", "32",
           "--no-batchnorm", "--out", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_cli_sweep_end_to_end_and_resume(tmp_path):
    folder = quadrant_folder(tmp_path / "images", n_per_class=30, size=12)
    out = tmp_path / "runs" / "sweep-tiny"
    first = _sweep_cli(folder, out)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "0 already finished, 2 to train" in first.stdout
    table = pd.read_csv(out / "summary.csv")
    assert table["state"].tolist() == ["finished", "finished"] and table["rate"].tolist() == [0.0, 0.5]
    assert table["test_accuracy"].between(0, 1).all() and (table["epochs_done"] == 1).all()
    for name in table["run"]:
        assert (out / name / "predictions.npz").exists() and (out / name / "metrics.csv").exists()
    stamp = (out / "ce-standard-r0.00-s0" / "status.json").stat().st_mtime_ns

    again = _sweep_cli(folder, out)                      # resume: nothing left to train
    assert again.returncode == 0 and "2 already finished, 0 to train" in again.stdout
    assert (out / "ce-standard-r0.00-s0" / "status.json").stat().st_mtime_ns == stamp

    runs.update_status(out / "ce-standard-r0.50-s0", state="failed", error="pretend")
    third = _sweep_cli(folder, out, "--jobs", "2")        # two workers share the one failed cell
    assert third.returncode == 0, third.stderr[-2000:]
    assert "1 already finished, 1 to train" in third.stdout
    assert third.stdout.count("ce-standard-r0.50-s0: finished") == 1
    assert (out / "ce-standard-r0.00-s0" / "status.json").stat().st_mtime_ns == stamp
    assert pd.read_csv(out / "summary.csv")["state"].tolist() == ["finished", "finished"]
