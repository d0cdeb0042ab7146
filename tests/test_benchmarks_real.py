"""The real-data benchmark scripts (benchmarks/robustness.py, detection.py) in their small version:
the built-in shapes, the `smoke` budget (200 images, 2 epochs), run as a user runs them."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import robustness  # noqa: E402


def bench(script, *args, timeout=300):
    return subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.fixture(scope="module")
def robust(tmp_path_factory):
    """blog and gce at 40% symmetric noise, seed 0, trained once for the module."""
    tmp = tmp_path_factory.mktemp("bench")
    os.environ.setdefault("NOISYLAB_HOME", str(tmp / "home"))
    args = ("--dataset", "builtin", "--settings", "sym40", "--recipes", "blog,gce", "--seeds", "0",
            "--work", tmp / "work", "--out", tmp / "out" / "rob")
    done = bench("robustness.py", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, args, done


@pytest.mark.slow
def test_robustness_writes_one_row_per_cell_and_the_markdown_table(robust):
    tmp, _, done = robust
    cells = pd.read_csv(tmp / "out" / "rob.csv")
    assert list(cells["recipe"]) == ["blog", "gce"] and set(cells["setting"]) == {"sym40"}
    assert cells["noise_rate"].tolist() == [0.4, 0.4]             # 80 of the 200 labels flipped
    for _, row in cells.iterrows():
        m = pd.read_csv(Path(row["run"]) / "metrics.csv")
        assert len(m) == 2 == row["epochs"]
        # best = test accuracy at the epoch with the best noisy-validation accuracy (first of ties)
        best = int(m.loc[m["val_accuracy"].idxmax(), "epoch"])
        assert row["best_epoch"] == best
        assert row["test_best"] == pytest.approx(m.loc[m["epoch"] == best, "test_accuracy"].iloc[0])
        assert row["test_last"] == pytest.approx(m["test_accuracy"].iloc[-1])
        assert row["drop"] == pytest.approx(row["test_best"] - row["test_last"])
        assert row["fit_seconds"] == pytest.approx(m["fit_seconds"].sum(), abs=0.1)
        assert (m["fit_seconds"] <= m["seconds"]).all()
    epochs = pd.read_csv(tmp / "out" / "rob_epochs.csv")
    assert len(epochs) == 4 and set(epochs["recipe"]) == {"blog", "gce"}
    md = (tmp / "out" / "rob.md").read_text()
    assert "| noise | blog best | blog last | gce best | gce last | gce − blog (best) | seeds |" in md
    gain = 100 * (cells["test_best"].iloc[1] - cells["test_best"].iloc[0])
    assert f"| {gain:+.1f} |" in md
    assert "Time to the blog recipe's best test accuracy" in md and "2 of 2 cells finished" in done.stdout
    # time to accuracy: the target is the blog cell's best, the ratio the two cumulative fit times
    metrics = {(r["setting"], r["recipe"], r["seed"]): pd.read_csv(Path(r["run"]) / "metrics.csv")
               for _, r in cells.iterrows()}
    times = robustness.time_table(cells, metrics)
    assert len(times) == 1 and times["recipe"].iloc[0] == "gce"
    assert times["target"].iloc[0] == pytest.approx(cells["test_best"].iloc[0])
    blog_s, blog_e = robustness.time_to(metrics[("sym40", "blog", 0)], cells["test_best"].iloc[0])
    assert (times["baseline_seconds"].iloc[0], times["baseline_epoch"].iloc[0]) == (blog_s, blog_e)
    if times["seconds"].iloc[0] is not None:
        assert times["ratio"].iloc[0] == pytest.approx(times["seconds"].iloc[0] / blog_s)
        assert f"| {times['ratio'].iloc[0]:.2f} |" in md


@pytest.mark.slow
def test_robustness_resumes_keeping_finished_cells_and_retraining_a_cut_one(robust):
    tmp, args, _ = robust
    blog, gce = tmp / "work" / "sym40" / "blog-s0", tmp / "work" / "sym40" / "gce-s0"
    blog_mtime = (blog / "metrics.csv").stat().st_mtime_ns
    (gce / "summary.json").unlink()                   # as if the process was killed in the last epoch
    done = bench("robustness.py", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = [line for line in done.stdout.splitlines() if "training" in line]
    assert trained == ["[2/2] training sym40/gce-s0 ..."]
    assert (blog / "metrics.csv").stat().st_mtime_ns == blog_mtime
    gce_mtime = (gce / "metrics.csv").stat().st_mtime_ns
    assert (gce / "summary.json").is_file()
    assert len(pd.read_csv(tmp / "out" / "rob.csv")) == 2
    (tmp / "out" / "rob.md").unlink()
    report = bench("robustness.py", *args, "--report")      # tables only: nothing trained, exit 0
    assert report.returncode == 0, report.stderr[-3000:]
    assert "training" not in report.stdout and (tmp / "out" / "rob.md").is_file()
    assert (gce / "metrics.csv").stat().st_mtime_ns == gce_mtime


def test_tables_gather_every_finished_cell_of_the_work_folder(tmp_path):
    """Cells of earlier commands (e.g. a second seed for some settings) count; partial or foreign ones do not."""
    for cell in ("sym40/gce-s1", "clean/blog-s0", "sym40/blog-s0", "nope/blog-s0", "sym40/magic-s0",
                 "sym40/.gce-s2.partial", "worst/gce-s0"):
        (tmp_path / cell).mkdir(parents=True)
        (tmp_path / cell / "summary.json").write_text("{}")
    (tmp_path / "sym40" / "gce-s3").mkdir()                      # no summary: not finished
    assert robustness.finished_cells(tmp_path) == [("clean", "blog", 0), ("sym40", "blog", 0),
                                                   ("sym40", "gce", 1), ("worst", "gce", 0)]


def test_a_cell_another_process_is_training_is_left_alone(tmp_path):
    from noisycore import jobs

    path = tmp_path / "sym40" / "gce-s0"
    partial = tmp_path / "sym40" / ".gce-s0.partial"
    partial.mkdir(parents=True)
    (partial / "metrics.csv").write_text("epoch\n1\n")      # the other process's run in progress
    held = jobs.try_lock(tmp_path / "sym40" / ".gce-s0.lock")
    try:
        config = common.cell_config(dataset="builtin", budget=common.BUDGETS["smoke"], setting="sym40",
                                    recipe="gce", seed=0)
        assert common.train_cell(path, config) is None
        assert (partial / "metrics.csv").read_text() == "epoch\n1\n" and not path.exists()
    finally:
        held.release()


@pytest.mark.slow
def test_detection_reuses_the_run_scores_every_detector_and_resumes_folds(robust):
    tmp, _, _ = robust
    args = ("--dataset", "builtin", "--settings", "sym40", "--recipe", "gce", "--folds", "2",
            "--work", tmp / "work", "--out", tmp / "out" / "det")
    done = bench("detection.py", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training gce" not in done.stdout                # the robustness cell is reused
    frame = pd.read_csv(tmp / "out" / "det.csv")
    assert set(frame["source"]) == {"in-sample", "2-fold CV"}
    assert set(frame[frame["source"] == "in-sample"]["detector"]) == {
        "confident_learning", "self_confidence", "normalized_margin", "aum_margin_below_0", "blog_threshold"}
    assert not {"aum", "aum_margin_below_0"} & set(frame[frame["source"] == "2-fold CV"]["detector"])
    run = Path(frame["run"].iloc[0])
    labels = pd.read_csv(run / "labels.csv")
    wrong = labels["label"] != labels["true_label"]
    assert (frame["n"] == len(labels)).all() and (frame["n_noisy"] == wrong.sum()).all()
    # precision and recall of one detector recomputed from its flags
    from noisycore import detect, detectors
    info = detect.read_run_labels(run)
    found = detectors.find_label_issues(info.labels, detect.pred_probs(run, source="cross_validation"),
                                     detector="confident_learning")
    tp = int((found.is_label_issue & info.is_noisy).sum())
    row = frame[(frame["source"] == "2-fold CV") & (frame["detector"] == "confident_learning")].iloc[0]
    assert row["flagged"] == found.is_label_issue.sum()
    assert row["precision"] == pytest.approx(tp / max(found.is_label_issue.sum(), 1))
    assert row["recall"] == pytest.approx(tp / wrong.sum())
    folds = sorted((run / "cv").glob("k2-fold*/heldout_probs.npy"))
    assert len(folds) == 2
    stamps = [f.stat().st_mtime_ns for f in folds]
    again = bench("detection.py", *args)                  # resume: the folds are not trained again
    assert again.returncode == 0, again.stderr[-3000:]
    assert [f.stat().st_mtime_ns for f in folds] == stamps
    assert "| symmetric 40% (40.0% wrong) | confident_learning |" in (tmp / "out" / "det.md").read_text()


@pytest.mark.parametrize("script,args,message", [
    ("robustness.py", ("--settings", "sym40,nope"), "unknown setting 'nope'"),
    ("robustness.py", ("--recipes", "blog,magic"), "unknown recipe 'magic'"),
    ("robustness.py", ("--seeds", "0,x"), "--seeds"),
    ("robustness.py", ("--settings", "worst"), "unknown setting 'worst'"),   # no CIFAR-10N on builtin
    ("detection.py", ("--folds", "1"), "--folds 1 must be in 2..20"),
    ("detection.py", ("--settings", "clean"), "unknown setting 'clean'"),
])
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, script, args, message):
    done = bench(script, "--dataset", "builtin", *args, "--work", tmp_path / "work", "--out", tmp_path / "out" / "x",
                 timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()


def test_time_to_accuracy_counts_training_seconds_until_the_target_is_first_reached():
    m = pd.DataFrame({"epoch": [1, 2, 3, 4], "test_accuracy": [0.30, 0.52, 0.49, 0.61],
                      "fit_seconds": [10.0, 12.0, 11.0, 9.0], "seconds": [15.0, 16.0, 15.0, 14.0]})
    assert robustness.time_to(m, 0.50) == (22.0, 2)
    assert robustness.time_to(m, 0.61) == (42.0, 4)
    assert robustness.time_to(m, 0.62) == (None, None)
    assert robustness.time_to(m.drop(columns="fit_seconds"), 0.50) == (31.0, 2)   # runs before fit_seconds


def test_mean_and_spread_are_percentages_with_half_the_range():
    assert common.mean_spread([0.724]) == "72.4"
    assert common.mean_spread([0.70, 0.74]) == "72.0 ± 2.0"
    assert common.mean_spread([None, float("nan")]) == "n/a"


def test_cell_configs_share_the_budget_and_differ_only_by_recipe():
    budget = common.BUDGETS["cpu"]
    blog = common.cell_config(dataset="cifar10", budget=budget, setting="worst", recipe="blog", seed=1)
    gce = common.cell_config(dataset="cifar10", budget=budget, setting="worst", recipe="gce", seed=1)
    for c in (blog, gce):
        assert (c.epochs, c.data.max_train, c.data.max_test, c.early_stopping_patience) == (12, 5000, 2000, 0)
        assert c.noise.model == "human" and c.noise.label_set == "worst" and c.seed == c.noise.seed == 1
    assert (blog.model, blog.loss, blog.loss_kwargs, blog.augment) == ("blog_cnn", "label_smoothing",
                                                                       {"epsilon": 0.1}, "blog")
    assert (blog.learning_rate, blog.batch_size, blog.optimizer) == (1e-3, 128, "adam")
    assert gce.model == "compact_cnn" and gce.loss == "gce"
