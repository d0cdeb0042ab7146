"""benchmarks/evaluation_cost.py: evaluation share, overhead and the user's wait, by hand from run folders."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluation_cost.py"


STARTED = 1_800_000_000      # the run began (epoch seconds); written as status.json's ISO "started"


def _cell(work: Path, setting: str, seed: int, accuracies, *, fit=10.0, evaluation=1.0, startup=5.0, end=15.0):
    path = work / setting / f"fast-s{seed}"
    path.mkdir(parents=True)
    n = len(accuracies)
    pd.DataFrame({"epoch": range(1, n + 1), "test_accuracy": accuracies, "fit_seconds": [fit] * n,
                  "seconds": [fit + evaluation] * n}).to_csv(path / "metrics.csv", index=False)
    last_epoch_end = STARTED + startup + n * (fit + evaluation)
    os.utime(path / "metrics.csv", (last_epoch_end, last_epoch_end))
    (path / "summary.json").write_text(json.dumps({"seconds": startup + n * (fit + evaluation) + end,
                                                   "test_accuracy": max(accuracies), "precision": "bfloat16"}))
    (path / "status.json").write_text(json.dumps({
        "started": pd.Timestamp(STARTED, unit="s", tz="UTC").isoformat(), "train_sample": 5000, "test_sample": 5000,
        "val_tta": "none"}))
    return path


def test_share_overhead_and_wait_by_hand(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    import evaluation_cost as ec

    work = tmp_path / "w"
    (work).mkdir()
    (work / "blog_epoch-float32.json").write_text(json.dumps({"precision": "float32", "epoch_seconds": 2.0}))
    (work / "blog_epoch-bfloat16.json").write_text(json.dumps({"precision": "bfloat16", "epoch_seconds": 1.0}))
    # sym40's target 0.7991 at blog epoch 54: reached at epoch 3; 5 s start-up, 4 epochs of 10 s fit + 1 s
    # evaluation, 15 s at the end
    _cell(work, "sym40", 1, [0.5, 0.7, 0.80, 0.85])
    rows = ec.collect(work, "after")
    assert len(rows) == 1
    r = rows[0]
    assert (r["seed"], r["epochs"], r["crossing_epoch"]) == (1, 4, 3)
    assert r["evaluation_share"] == pytest.approx(0.1) and r["evaluation_seconds_per_epoch"] == pytest.approx(1.0)
    assert r["startup_seconds"] == pytest.approx(5.0, abs=0.01) and r["end_seconds"] == pytest.approx(15.0, abs=0.01)
    assert r["wait_seconds"] == pytest.approx(5 + 33, abs=0.01)           # start-up + three epochs of 11 s
    assert r["wait_ratio_float32"] == pytest.approx(38 / 108, abs=1e-3)   # blog: 54 epochs x 2 s
    assert r["wait_ratio_bfloat16"] == pytest.approx(38 / 54, abs=1e-3)
    assert r["wait_goal_met_bfloat16"] is False


def test_cli_refuses_a_missing_folder_and_writes_results(tmp_path):
    missing = subprocess.run([sys.executable, str(SCRIPT), "--work", str(tmp_path / "nope"), "--out",
                              str(tmp_path / "r")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such folder" in missing.stderr and not (tmp_path / "r.jsonl").exists()
    work = tmp_path / "w"
    _cell(work, "worst", 0, [0.6, 0.78], fit=20.0, evaluation=1.0, startup=8.0)
    done = subprocess.run([sys.executable, str(SCRIPT), "--work", str(work), "--label", "x", "--out",
                           str(tmp_path / "r")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert record["label"] == "x" and record["evaluation_share"] == pytest.approx(0.05)
    assert record["wait_seconds"] == pytest.approx(8 + 42, abs=0.01)   # start-up, both epochs (0.78 >= 0.7705)
