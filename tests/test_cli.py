"""The `noisycore` command end to end: real processes, exit codes, one-line errors, files written."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SHARED_CIFAR, run_main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, home: Path, timeout=600):
    env = dict(os.environ, NOISYLAB_HOME=str(home), NOISYLAB_RUNS=str(home / "runs"), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "noisycore.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_datasets_lists_builtin(tmp_path):
    r = cli("datasets", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "builtin" in r.stdout and "cifar10" in r.stdout


def test_inject_pair_noise_writes_labels_and_reports_rate(tmp_path):
    out = tmp_path / "pair40"
    r = cli("inject", "--dataset", "builtin", "--noise", "pair", "--rate", "0.4", "--seed", "3", "--out", out,
            home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "realized noise rate: 40.00%" in r.stdout
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert list(rows[0]) == ["id", "label", "true_label", "is_noisy"]
    assert len(rows) == 8000
    flipped = [r for r in rows if r["is_noisy"] == "true"]
    assert len(flipped) == 3200 and all(r["label"] != r["true_label"] for r in flipped)
    meta = json.loads((out / "noise.json").read_text())
    assert meta["config"]["model"] == "pair" and meta["config"]["seed"] == 3
    again = cli("inject", "--dataset", "builtin", "--noise", "pair", "--rate", "40%", "--seed", "3",
                "--out", tmp_path / "again", home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "labels.csv").read_text() == (out / "labels.csv").read_text()


@pytest.mark.parametrize("args, words", [
    (["--noise", "symmetric", "--rate", "1.5"], ["rate=1.5", "[0, 1)"]),
    (["--noise", "symmetric", "--rate", "-0.1"], ["rate=-0.1"]),
    (["--noise", "symmetric", "--rate", "1"], ["rate=1"]),
    (["--noise", "symmetric", "--rate", "lots"], ["lots"]),
    (["--noise", "bogus", "--rate", "0.2"], ["bogus"]),
    (["--noise", "matrix", "--matrix", "missing.csv"], ["missing.csv"]),
    (["--noise", "symmetric", "--rate", "0.2", "--dataset", "/no/such/folder"], ["/no/such/folder"]),
])
def test_inject_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "out"
    assert_user_error(run_main(["inject", *args, "--out", str(out)], capsys), *words)
    assert not out.exists()


def test_inject_matrix_with_bad_row_names_the_row(tmp_path, capsys):
    m = tmp_path / "m.csv"
    rows = [[1.0 if i == j else 0.0 for j in range(10)] for i in range(10)]
    rows[3][3] = 0.5                     # row 3 sums to 0.5
    m.write_text("\n".join(",".join(map(str, r)) for r in rows))
    assert_user_error(run_main(["inject", "--noise", "matrix", "--matrix", str(m), "--out", str(tmp_path / "o")],
                               capsys), "row 3")


def test_train_rejects_bad_options_before_creating_a_run(tmp_path, capsys):
    r = run_main(["train", "--model", "nope", "--out", str(tmp_path / "runs")], capsys)
    assert_user_error(r, "model='nope'", "compact_cnn")
    assert not (tmp_path / "runs").exists()
    r = run_main(["train", "--noise", "symmetric", "--rate", "0.2", "--labels", "x.csv"], capsys)
    assert_user_error(r, "--labels or --noise")
    r = run_main(["train", "--loss", "gce", "--loss-params", "z=1"], capsys)
    assert_user_error(r, "no parameter z", "q")
    for command in (["train"], ["sweep", "--rates", "0,0.2"]):   # a reservation without a cluster to make it on
        r = run_main(command + ["--cpus-per-run", "2", "--out", str(tmp_path / "runs" / "x")], capsys)
        assert_user_error(r, "--cpus-per-run 2 is a reservation on a cluster", "--cluster auto")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_train_tiny_run_prints_folder_and_metrics(tmp_path):
    r = cli("train", "--noise", "symmetric", "--rate", "0.2", "--max-train", "300", "--epochs", "2",
            "--out", tmp_path / "runs", home=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    folder = Path(r.stdout.split("run folder: ")[1].splitlines()[0])
    assert (folder / "metrics.csv").read_text().count("\n") == 3       # header + 2 epochs
    assert "finished: 2 epochs" in r.stdout and "test accuracy" in r.stdout
    assert json.loads((folder / "status.json").read_text())["state"] == "finished"


@pytest.mark.shared
@pytest.mark.slow
def test_inject_cifar10n_worst_reports_40_21_percent(tmp_path):
    tarball = SHARED_CIFAR / "cifar10-images.tar.xz"
    manifest = SHARED_CIFAR / "cifar10n-train-labels.csv"
    if not (tarball.exists() and manifest.exists()):
        pytest.skip(f"the real CIFAR-10 files are not in {SHARED_CIFAR}")
    r = cli("inject", "--dataset", "cifar10", "--noise", "human", "--human-labels", manifest, "--label-set", "worst",
            "--out", tmp_path / "worst", home=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "realized noise rate: 40.21%" in r.stdout


def test_parse_pairs_reads_numbers_booleans_and_text():
    import argparse

    from noisycore.cliargs import parse_pairs

    got = parse_pairs("q=0.7, rounds=2,restart=TRUE,drop=false,detector=confident_learning,shift=-3")
    assert got == {"q": 0.7, "rounds": 2, "restart": True, "drop": False, "detector": "confident_learning",
                   "shift": -3}
    assert isinstance(got["rounds"], int) and isinstance(got["restart"], bool)
    assert parse_pairs("") == {}
    with pytest.raises(argparse.ArgumentTypeError, match="not NAME=VALUE"):
        parse_pairs("q0.7")
