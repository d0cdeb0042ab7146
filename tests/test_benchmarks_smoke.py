"""Smoke test of benchmarks/throughput.py (--quick) and of its ImageDataGenerator emulation."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def test_quick_throughput_run_prints_a_table_and_writes_csv(tmp_path):
    out = tmp_path / "throughput.csv"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| (")]
    assert [line[3] for line in table] == list("abcde")
    assert "Goals (images/s medians):" in done.stdout and "QUICK SMOKE RUN" in done.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 10 and {r["variant"] for r in rows} == set("abcde")
    assert [r["variant"] for r in rows[5:]] == list("bcdea")  # the second repetition starts one later
    assert all(float(r["images_per_s"]) > 0 for r in rows)


def test_emulated_image_data_generator_matches_keras_affine_transform():
    """The NumPy fallback warps exactly like Keras' legacy apply_affine_transform (SciPy)."""
    pytest.importorskip("scipy")
    sys.path.insert(0, str(SCRIPT.parent))
    from throughput import blog_affine
    from keras.src.legacy.preprocessing.image import apply_affine_transform

    img = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    for theta, tx, ty in [(0.0, 0.0, 0.0), (12.5, 0.0, 0.0), (0.0, 3.2, -1.7), (-14.0, -2.5, 3.1)]:
        expected = apply_affine_transform(img, theta, tx, ty, row_axis=0, col_axis=1, channel_axis=2,
                                          fill_mode="nearest", order=1)
        np.testing.assert_allclose(blog_affine(img, theta, tx, ty, False), expected, atol=1e-4)
    np.testing.assert_allclose(blog_affine(img, 5.0, 1.0, 1.0, True), blog_affine(img, 5.0, 1.0, 1.0, False)[:, ::-1])


def test_own_data_benchmark_smoke_finds_planted_mislabels(tmp_path):
    """benchmarks/own_data.py --smoke: zip import, training, 2-fold CV over every image, recall@N recorded;
    --recipe changes the run's and the folds' recipe; an unknown setting exits 2 with one line."""
    import json

    out = tmp_path / "own.md"
    script, env = str(ROOT / "benchmarks" / "own_data.py"), {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, script, "--smoke", "--work", str(tmp_path / "work"), "--out", str(out),
                           "--preset", "small", "--recipe", "tta=flip,loss=label_smoothing,loss_params.epsilon=0.2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["images"] == 120 and result["planted"] == 8       # every image judged, held-out ones too
    assert result["recipe"] == {"tta": "flip", "loss": "label_smoothing", "loss_params": {"epsilon": 0.2}}
    run_config = json.loads((tmp_path / "work" / "run" / "config.json").read_text())
    assert run_config["tta"] == "flip" and run_config["loss"] == "label_smoothing"
    assert 0.0 <= result["cv_accuracy_truth"] <= 1.0
    first = result["found_in_first_k"]                    # json keys: the review budgets 1x and 2x the planted
    assert list(first) == ["8", "16"] and first["8"] <= first["16"] <= 8
    bad = subprocess.run([sys.executable, script, "--smoke", "--work", str(tmp_path / "bad"), "--recipe", "colour=red"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "'colour' is not a training setting" in bad.stderr
    assert not (tmp_path / "bad" / "run").exists()
    # the numbers are what the Review page shows: N is confident learning's estimate on the saved out-of-sample
    # probabilities, and "found in the first k" counts the planted images in the page's queue of k
    from noisycore import detect, detectors, triage
    run = tmp_path / "work" / "run"
    info = detect.read_run_labels(run)
    # the predictions the Review page preselects (detect.best_source), which the benchmark scores
    assert result["source"] == detect.best_source(run)[0] != "in_sample"
    probs = detect.pred_probs(run, source=result["source"], ids=info.ids)
    n_est = detectors.estimate_noise(info.labels, probs).num_issues
    issues = detect.load_issues(run, "confident_learning")
    planted_ids = set(json.loads((tmp_path / "work" / "planted.json").read_text()))
    def found(k):
        return int(triage.select_queue(issues, top_n=k)["id"].isin(planted_ids).sum())
    assert result["estimated_issues"] == n_est and result["flagged"] == int(issues["is_label_issue"].sum())
    assert result["found_in_first_n"] == found(n_est) and first == {"8": found(8), "16": found(16)}
    assert "| N (estimated wrong labels) |" in out.read_text()
    planted = json.loads((tmp_path / "work" / "planted.json").read_text())
    assert len(planted) == 8 and all(k.split("/")[0] != v for k, v in planted.items())
    # the time reported is the training recorded by the run and its 2 folds, also when an invocation resumes
    import platform
    import re

    summaries = [tmp_path / "work" / "run" / "summary.json",
                 *sorted((tmp_path / "work" / "run" / "cv").glob("k2-fold*/run/summary.json"))]
    assert len(summaries) == 3
    minutes = f"{sum(json.loads(f.read_text())['seconds'] for f in summaries) / 60:.1f} min of training"
    assert minutes in out.read_text()
    # the JSON holds what the headline table quotes: the same training minutes, the machine and the date
    assert f"{result['training_minutes']:.1f} min of training" == minutes
    assert result["machine"].endswith(platform.python_version()) and re.fullmatch(r"\d{4}-\d\d-\d\d", result["date"])
    again = subprocess.run([sys.executable, script, "--smoke", "--work", str(tmp_path / "work"), "--out", str(out),
                            "--preset", "small", "--recipe", "tta=flip,loss=label_smoothing,loss_params.epsilon=0.2"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert minutes in out.read_text() and re.search(r"\d+\.\d min of training", out.read_text())


def test_own_data_benchmark_measures_the_pretrained_default(tmp_path):
    """benchmarks/own_data.py without --preset: the default for own photos, a head on the cached embeddings, in
    the run and in every fold; the queue is scored as for the small preset."""
    import json

    out = tmp_path / "own.md"
    script, env = str(ROOT / "benchmarks" / "own_data.py"), {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, script, "--smoke", "--work", str(tmp_path / "work"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["preset"] == "pretrained" and result["images"] == 120 and "preset pretrained" in out.read_text()
    configs = [tmp_path / "work" / "run" / "config.json",
               *sorted((tmp_path / "work" / "run" / "cv").glob("k2-fold*/run/config.json"))]
    # the pretrained preset compares pixels and features first (the smoke's tiny quadrant images may favour the
    # pixels): the run's model follows that comparison, and every fold trains the run's model
    from noisycore.baseline import features_not_better

    record = json.loads((tmp_path / "work" / "run" / "baseline.json").read_text())
    expected = "fast_cnn" if features_not_better(record) else "pretrained_head"
    assert len(configs) == 3 and {json.loads(c.read_text())["model"] for c in configs} == {expected}


def test_small_run_benchmark_reports_epoch_seconds_and_refuses_bad_sizes(tmp_path):
    """benchmarks/small_run.py: one JSON line per repeat with the epoch's fit and evaluation seconds taken
    from the run's metrics.csv (they add up to the epoch); a too-small folder exits 2 with one line."""
    import json

    script = str(ROOT / "benchmarks" / "small_run.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NOISYLAB_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, script, "--images", "40", "--epochs", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1 and rows[0]["images"] == 40 and rows[0]["epochs"] == 2 and rows[0]["size"] == 16
    r = rows[0]
    assert r["fit_s"] > 0 and r["evaluation_s"] >= 0 and r["epoch_s"] <= r["total_s"]
    bad = subprocess.run([sys.executable, script, "--images", "8"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--images must be at least 40" in bad.stderr
    odd = subprocess.run([sys.executable, script, "--size", "15"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert odd.returncode == 2 and odd.stderr.strip().count("\n") == 0 and "--size 15" in odd.stderr


def test_recipe_probe_two_phases_on_the_builtin_shapes(tmp_path):
    """benchmarks/recipe_probe.py: one JSON line per run; the second phase drops exactly the flagged
    labels (its label accuracy is that of the rest), and a bad combination exits 2 with one line."""
    out = tmp_path / "probe.jsonl"
    script = str(ROOT / "benchmarks" / "recipe_probe.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NOISYLAB_HOME": str(tmp_path / "home")}
    args = ["--dataset", "builtin", "--setting", "sym40", "--max-train", "400", "--epochs", "2", "--loss", "gce",
            "--precision", "float32", "--out", str(out)]
    done = subprocess.run([sys.executable, script, "--tag", "two", *args, "--phase2", "1", "--batch-crop",
                           "--every-epoch", "--phase2-reinit", "--mixup", "0.2", "--q", "0.8", "--elr", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["tag"] == "two" and row["options"]["phase2"] == 1 and row["options"]["batch_crop"] is True
    assert row["options"]["phase2_reinit"] is True and row["options"]["mixup"] == 0.2 and row["options"]["q"] == 0.8
    assert row["options"]["elr"] == 1.0
    assert row["fit_images"] == 360                                  # 400 minus the 10% validation split
    assert 0 < row["flagged"] < row["fit_images"] and 0 <= row["flag_precision"] <= 1
    n, f, right = row["fit_images"], row["flagged"], row["label_accuracy"] * row["fit_images"]
    assert 0.5 < row["label_accuracy"] < 0.7                         # 40% symmetric noise
    kept_right = right - (1 - row["flag_precision"]) * f             # the right labels that were not flagged
    assert row["label_accuracy_phase2"] == pytest.approx(kept_right / (n - f))   # phase 2 = exactly the rest
    assert 0 <= row["phase1_test_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1
    assert 0 <= row["phase1_val_accuracy"] <= 1 and 0 <= row["val_accuracy"] <= 1 and row["val_images"] == 40
    # --every-epoch: phase 1's epochs, each on the averaged weights: the last one is the model phase 1 ends with
    assert len(row["test_accuracy_per_epoch"]) == 2
    assert row["test_accuracy_per_epoch"][-1] == pytest.approx(100 * row["phase1_test_accuracy"], abs=0.006)
    bad = subprocess.run([sys.executable, script, "--tag", "x", *args, "--phase2", "1", "--per-step"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--per-step and --phase2" in bad.stderr
    bad = subprocess.run([sys.executable, script, "--tag", "x", *args, "--phase2", "1", "--elr", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--phase2-reinit" in bad.stderr
    assert len(out.read_text().splitlines()) == 1                    # the refused runs wrote nothing


def test_recipe_probe_ensemble_reports_members_and_their_average(tmp_path):
    """--ensemble 2: two networks (seeds 0 and 1) trained, each member's accuracy listed besides the
    average's; --ensemble 0 and --ensemble with --phase2 are refused (exit 2, one line, nothing written)."""
    import json

    out = tmp_path / "probe.jsonl"
    script = str(ROOT / "benchmarks" / "recipe_probe.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NOISYLAB_HOME": str(tmp_path / "home")}
    args = ["--dataset", "builtin", "--setting", "sym40", "--max-train", "300", "--epochs", "1", "--loss", "gce",
            "--precision", "float32", "--out", str(out)]
    probs = tmp_path / "probs.npz"
    done = subprocess.run([sys.executable, script, "--tag", "ens", *args, "--ensemble", "2",
                           "--save-test-probs", str(probs)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["options"]["ensemble"] == 2 and len(row["member_test_accuracy"]) == 2
    saved = np.load(probs)
    members, y_test = saved["members"], saved["y_test"]
    assert members.shape[0] == 2 and not np.allclose(members[0], members[1])     # two different networks
    for p, acc in zip(members, row["member_test_accuracy"]):
        assert acc == pytest.approx(float((p.argmax(1) == y_test).mean()))
    assert row["test_accuracy"] == pytest.approx(float((members.mean(0).argmax(1) == y_test).mean()))
    # the validation accuracy is that of the noisy validation split (given labels), not of the test set
    val_members, y_val = saved["val_members"], saved["y_val"]
    assert len(y_val) == row["val_images"] == 300 - row["fit_images"] != len(y_test)
    for p, acc in zip(val_members, row["member_val_accuracy"]):
        assert acc == pytest.approx(float((p.argmax(1) == y_val).mean()))
    assert row["val_accuracy"] == pytest.approx(float((val_members.mean(0).argmax(1) == y_val).mean()))
    assert all(0 <= a <= 1 for a in row["member_test_accuracy"]) and 0 <= row["test_accuracy"] <= 1
    bad = subprocess.run([sys.executable, script, "--tag", "x", *args, "--ensemble", "2", "--phase2", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--ensemble" in bad.stderr
    bad = subprocess.run([sys.executable, script, "--tag", "x", *args, "--ensemble", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--ensemble" in bad.stderr
    assert len(out.read_text().splitlines()) == 1


def test_recipe_probe_reports_validation_and_chooses_on_it_not_on_test(tmp_path):
    """A tiny probe reports the noisy-validation accuracy beside the test accuracy; --choose names the run
    with the best validation accuracy even where test accuracy orders the runs the other way, and refuses
    (exit 2, one line) a tag without a run or a run recorded without validation."""
    import json

    out = tmp_path / "probe.jsonl"
    script = str(ROOT / "benchmarks" / "recipe_probe.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NOISYLAB_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, script, "--tag", "tiny", "--dataset", "builtin", "--setting", "sym40",
                           "--max-train", "300", "--epochs", "1", "--precision", "float32", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    [tiny] = [json.loads(line) for line in out.read_text().splitlines()]
    assert tiny["val_images"] + tiny["fit_images"] == 300 and 25 <= tiny["val_images"] <= 35   # the ~10% split
    assert 0 <= tiny["val_accuracy"] <= 1 and 0 <= tiny["test_accuracy"] <= 1

    def choose(*tags):
        return subprocess.run([sys.executable, script, "--choose", ",".join(tags), "--out", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, env=env)

    # two more runs: "val_best" is best on validation and worst on test, "test_best" the other way round
    rows = [{**tiny, "tag": "val_best", "val_accuracy": tiny["val_accuracy"] + 0.2, "test_accuracy": 0.01},
            {**tiny, "tag": "test_best", "val_accuracy": max(tiny["val_accuracy"] - 0.2, 0), "test_accuracy": 0.99}]
    with out.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    picked = choose("tiny", "val_best", "test_best")
    assert picked.returncode == 0, picked.stderr
    assert picked.stdout.strip().splitlines()[-1] == "chosen on validation: val_best"
    picked = choose("tiny", "test_best")                 # tiny's validation beats test_best's, its test does not
    assert picked.stdout.strip().splitlines()[-1] == "chosen on validation: tiny"
    with out.open("a") as f:                             # a later run of a tag replaces its earlier one
        f.write(json.dumps({**rows[1], "val_accuracy": 1.0}) + "\n")
    assert choose("tiny", "val_best", "test_best").stdout.strip().splitlines()[-1] == "chosen on validation: test_best"
    bad = choose("tiny", "nosuch")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "'nosuch'" in bad.stderr
    old = {k: v for k, v in tiny.items() if k != "val_accuracy"}
    with out.open("a") as f:
        f.write(json.dumps({**old, "tag": "old"}) + "\n")
    bad = choose("tiny", "old")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "'old' has no val_accuracy" in bad.stderr


def test_epoch_stall_benchmark_times_each_epoch(tmp_path):
    """benchmarks/epoch_stall.py: one record per epoch (wall, CPU, their ratio) in both modes; bad sizes exit 2."""
    import json

    out = tmp_path / "stall.jsonl"
    script = str(ROOT / "benchmarks" / "epoch_stall.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NOISYLAB_HOME": str(tmp_path / "home")}
    for mode in ("per-epoch", "endless"):
        done = subprocess.run([sys.executable, script, "--mode", mode, "--epochs", "2", "--images", "600",
                               "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["mode"] for r in rows] == ["per-epoch", "endless"]
    for r in rows:
        assert len(r["epochs"]) == 2 and all(e["wall"] > 0 and e["cpu"] >= 0 for e in r["epochs"])
        assert r["total_wall"] == pytest.approx(sum(e["wall"] for e in r["epochs"]), abs=0.1)
        walls = [e["wall"] for e in r["epochs"]]
        assert r["stalled_epochs"] == sum(w > 1.3 * min(walls) for w in walls) and r["cpu_model"]
    bad = subprocess.run([sys.executable, script, "--mode", "endless", "--epochs", "0", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--epochs" in bad.stderr
    assert len(out.read_text().splitlines()) == 2


def test_precision_probe_times_each_block_variant_in_its_own_process(tmp_path):
    """benchmarks/precision_probe.py --blocks: one table row per variant, each naming its blocks, with a
    positive speed; an unknown variant is refused with one line and exit code 2 before anything runs."""
    script = str(ROOT / "benchmarks" / "precision_probe.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NOISYLAB_HOME": str(tmp_path / "home")}
    args = ["--widths", "0.1", "--precisions", "float32", "--batches", "64", "--images", "256", "--rounds", "1"]
    done = subprocess.run([sys.executable, script, *args, "--blocks", "keras-gelu,fused-relu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| float32")]
    assert [r[2].strip() for r in rows] == ["keras-gelu", "fused-relu"]
    assert all(float(r[6]) > 0 for r in rows)                         # images/s
    bad = subprocess.run([sys.executable, script, *args, "--blocks", "fused-tanh"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.strip().count("\n") == 0
    assert "--blocks fused-tanh unknown; choose from keras-gelu, keras-relu, fused-gelu, fused-relu" in bad.stderr


def test_embedding_benchmark_smoke_measures_each_size_and_precision(tmp_path):
    """benchmarks/embedding.py on 40 built-in images at 32 px: a row per precision with speed, cache size,
    a linear model's accuracy, and bfloat16's cosine similarity to float32."""
    import json

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "embedding.py"), "--dataset", "builtin",
                           "--n", "40", "--sizes", "32", "--folds", "2", "--batch", "16", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NOISYLAB_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "embedding-builtin-40.json").read_text())
    f32, bf16 = record["rows"]
    assert (f32["precision"], bf16["precision"], f32["images"]) == ("float32", "bfloat16", 50)
    assert f32["images_per_s"] > 0 and f32["cache_mb_per_10k"] > 0 and 0 <= f32["linear_cv_accuracy"] <= 1
    assert 0.9 < bf16["cosine_to_float32_mean"] <= 1.0
    assert "| 32 | bfloat16 |" in (tmp_path / "embedding-builtin-40.md").read_text()
