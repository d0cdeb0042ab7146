"""The teaching comparison (issue 29, item 6): a from-scratch run's exact labels trained again on pretrained
features (its twin), the pair found among compared runs, and the lesson in one line (hand-computed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noisycore import runs, teaching
from noisycore.config import DataConfig, NoiseConfig, TrainConfig
from noisycore.errors import UserError

from helpers import fake_run, run_main


def quick(data=None, **changes) -> TrainConfig:
    """The quick preset on 120 built-in images (16 px, 40 test images), seed 7, a 20% validation share."""
    values = dict(max_train=120, seed=7, val_fraction=0.2, noise=NoiseConfig(model="symmetric", rate=0.4, seed=3))
    return TrainConfig.from_preset("quick", data={"max_test": 40, "image_size": 16, **(data or {})},
                                   **{**values, **changes})


def test_the_twin_is_the_pretrained_preset_on_the_runs_exact_labels_images_seed_and_split(tmp_path):
    scratch = quick()
    run = tmp_path / "runs" / "20261207-173153-ce-symmetric40"
    twin = teaching.twin_config(scratch, run, num_images=120)
    assert (twin.preset, twin.model, twin.loss) == ("pretrained", "pretrained_head", "gce")
    assert twin.labels_path == str(run.resolve())                     # the run's own labels.csv
    assert (twin.seed, twin.val_fraction, twin.max_train) == (7, 0.2, 120)   # same validation split, same subset
    # the images the run trained on: its max_train subset is part of the data (the labels list exactly those)
    assert twin.data == DataConfig(source="builtin", max_test=40, image_size=16, max_train=120)
    assert twin.noise == scratch.noise and twin.trusted_val is False
    assert twin.choose_features is False           # a twin never swaps itself back to the pixels
    assert twin.epochs == 100      # the pretrained preset's epochs for 120 labels: 20,000 images seen, at most 100
    assert TrainConfig.from_json(twin.to_json()) == twin


def test_the_twin_of_a_run_on_a_saved_label_set_keeps_the_whole_dataset_and_the_subset(tmp_path):
    scratch = quick(labels_path=str(tmp_path / "labels" / "builtin-pair-40-s0"))
    twin = teaching.twin_config(scratch, tmp_path / "run")
    # prepare() applies max_train to a saved label set after loading it, so the data stays whole here and the
    # run's labels.csv (a run folder) picks the images: train.restrict_to_label_set
    assert twin.data == scratch.data and twin.data.max_train is None and twin.max_train == 120


def test_twin_names_read_as_a_pair_and_fit_a_run_name():
    assert teaching.twin_name("20261207-173153-ce-symmetric40") == "pretrained-173153-ce-symmetric40"
    assert teaching.twin_name("quick-s0") == "pretrained-quick-s0"
    assert len(teaching.twin_name("20261207-173153-coteaching-gce-builtin-pair-40-s0")) <= 40


def test_pairs_finds_each_scratch_run_with_its_twin_and_nothing_else(tmp_path):
    a, b, c = (str(tmp_path / n) for n in ("a", "b", "c"))
    configs = {a: quick(), b: teaching.twin_config(quick(), a),
               c: TrainConfig.from_preset("pretrained", labels_path=str(Path(c) / "elsewhere"))}
    assert teaching.pairs(configs) == [(a, b)]
    assert teaching.pairs({b: configs[b], a: configs[a]}) == [(a, b)]
    # the labels given as RUN/labels.csv name the same run; a twin of another run is no twin of this one
    assert teaching.is_twin_of(configs[b].replace(labels_path=str(Path(a) / "labels.csv")), a)
    assert teaching.pairs({a: configs[a], c: configs[c]}) == []


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame({"epoch": range(1, len(next(iter(columns.values()))) + 1), **columns})


def test_the_lesson_in_one_line_hand_computed():
    scratch = frame(memorized=[0.10, 0.20, 0.34], test_accuracy=[0.50, 0.62, 0.55])
    twin = frame(memorized=[0.02, 0.04, 0.06], test_accuracy=[0.80, 0.82, 0.81])
    assert teaching.lesson(scratch, twin) == (
        "Wrong labels memorized at the end: 34.0% from scratch (epoch 3), 6.0% on pretrained features (epoch 3); "
        "test accuracy then 55.0% and 81.0% (from scratch it peaked at 62.0% in epoch 2).")
    # still training: the epoch says so; another loss is named; no peak clause when the last epoch is the best
    rising = frame(memorized=[0.1, 0.2], test_accuracy=[0.5, 0.6])
    assert teaching.lesson(rising, twin.iloc[:1], epochs=(None, 30), recipes=("cross-entropy", "GCE (q 0.7)")) == (
        "Wrong labels memorized at the end: 20.0% from scratch (epoch 2), 2.0% on pretrained features (epoch 1 of "
        "30 so far); test accuracy then 60.0% and 80.0%. The losses differ too: cross-entropy from scratch, "
        "GCE (q 0.7) on the features.")


def test_the_lesson_without_the_truth_or_without_an_epoch_claims_nothing():
    scratch = frame(memorized=[np.nan, np.nan], test_accuracy=[0.5, 0.7])
    twin = frame(memorized=[np.nan], test_accuracy=[0.9])
    line = teaching.lesson(scratch, twin, truth_known=False)
    assert line.startswith("Held-out accuracy (given labels) at the end: 70.0% from scratch (epoch 2), 90.0% on "
                           "pretrained features (epoch 1)") and "memorized at the end" not in line
    empty = pd.DataFrame(columns=["epoch", "memorized", "test_accuracy"])
    assert teaching.lesson(scratch, empty) == ("Teaching comparison: the run on pretrained features has no finished "
                                               "epoch yet; the lesson appears after its first.")


def test_lesson_lines_read_the_two_runs_metrics(tmp_path):
    scratch_dir = fake_run(tmp_path / "s", quick(), metrics=frame(memorized=[0.1, 0.3], test_accuracy=[0.6, 0.5]))
    fake_run(tmp_path / "t", teaching.twin_config(quick(), scratch_dir), state="running", labels=0,
             metrics=frame(memorized=[0.05], test_accuracy=[0.7]))
    lines = teaching.lesson_lines([tmp_path / "t", scratch_dir, tmp_path / "missing"])
    epochs = teaching.twin_config(quick(), scratch_dir).epochs
    assert lines == [f"Wrong labels memorized at the end: 30.0% from scratch (epoch 2), 5.0% on pretrained features "
                     f"(epoch 1 of {epochs} so far); test accuracy then 50.0% and 70.0% (from scratch it peaked at "
                     "60.0% in epoch 1). The losses differ too: cross-entropy from scratch, GCE (q 0.7) on the "
                     "features."]


def test_refusals_are_one_line_and_a_twin_is_found_not_made_again(tmp_path, monkeypatch):
    import noisycore.datasets

    root = tmp_path / "runs"
    head = fake_run(root / "head", TrainConfig.from_preset("pretrained"))
    assert "already trains a head on pretrained features" in teaching.refusal(head)
    assert "has no labels.csv" in teaching.refusal(fake_run(root / "queued", quick(), labels=0))
    assert "AUM's threshold samples" in teaching.refusal(fake_run(root / "aum", quick(aum_threshold_samples=True)))
    monkeypatch.setattr(noisycore.datasets, "cifar10_available", lambda: False)
    cifar = fake_run(root / "cifar", quick(data={"source": "cifar10"}))
    assert teaching.refusal(cifar) == "CIFAR-10 is not on this computer: download it on the Data & noise page first."
    gone = fake_run(root / "gone", quick(data={"source": str(tmp_path / "photos.zip")}, noise=NoiseConfig("none")))
    assert teaching.refusal(gone) == "The images of gone (photos) are not on this computer any more."
    with pytest.raises(UserError, match="CIFAR-10 is not on this computer"):
        teaching.start_twin(cifar, root=root)
    assert sorted(p.name for p in root.iterdir()) == ["aum", "cifar", "gone", "head", "queued"]   # nothing made
    scratch = fake_run(root / "scratch", quick())
    assert teaching.refusal(scratch) is None and teaching.find_twin(scratch, root=root) is None
    fake_run(root / "failed-twin", teaching.twin_config(quick(), scratch), state="failed", labels=0)
    assert teaching.find_twin(scratch, root=root) is None                    # a failed twin is trained again
    twin = fake_run(root / "twin", teaching.twin_config(quick(), scratch), state="stopped", labels=0)
    assert teaching.start_twin(scratch, root=root) == (twin, False)          # reused, nothing started


def cli_config(argv):
    from noisycore.cli import build_parser, on_a_runs_labels
    from noisycore.cliargs import train_config

    args = build_parser().parse_args(argv)
    return on_a_runs_labels(train_config(args), args)


def test_the_cli_on_a_runs_labels_builds_the_twins_config(tmp_path, capsys):
    run = fake_run(tmp_path / "runs" / "scratch", quick())
    twin = teaching.twin_config(quick(), run, num_images=120)
    assert cli_config(["train", "--labels", str(run), "--preset", "pretrained"]) == twin
    assert cli_config(["train", "--labels", str(run / "labels.csv"), "--preset", "pretrained"]) == twin
    # an option given on the command line wins; the rest stays the run's
    mine = cli_config(["train", "--labels", str(run), "--preset", "pretrained", "--seed", "1"])
    assert (mine.seed, mine.val_fraction, mine.max_train) == (1, 0.2, 120)
    r = run_main(["train", "--labels", str(run), "--dataset", "cifar10", "--out", str(tmp_path / "out")], capsys)
    assert r.returncode == 2 and "leave out --dataset" in r.stderr and not (tmp_path / "out").exists()
    # a label set that is no run folder is left as it was
    plain = tmp_path / "labels"
    plain.mkdir()
    (plain / "labels.csv").write_text("id,label\n")
    assert cli_config(["train", "--labels", str(plain)]).labels_path == str(plain)


@pytest.mark.slow
def test_train_labels_run_dir_preset_pretrained_trains_the_same_wrong_labels_and_split(tmp_path, capsys, monkeypatch):
    """The CLI end to end on a real tiny run: before issue 29 item 6 it stopped at "has no row for 7880 of
    the 8000 training images" (the run's labels.csv lists only its max_train subset)."""
    from noisycore import embeddings, train

    monkeypatch.setattr(embeddings, "DEFAULT_SIZE", 32)   # the backbone at 32 px: seconds, not minutes
    scratch = tmp_path / "runs" / "20261207-173153-ce-symmetric40"
    train.run(quick(epochs=1, baseline=False), scratch)
    r = run_main(["train", "--labels", str(scratch), "--preset", "pretrained", "--epochs", "2",
                  "--out", str(tmp_path / "runs")], capsys)
    assert r.returncode == 0, r.stderr[-2000:]
    twin = Path(r.stdout.split("run folder: ")[1].splitlines()[0])
    config = runs.read_config(twin)
    assert config.model == "pretrained_head" and config.labels_path == str(scratch.resolve())
    assert teaching.is_twin_of(config, scratch) and teaching.find_twin(scratch, root=tmp_path / "runs") == twin
    # the exact wrong labels (and truth) on the same images, and the same validation images
    assert (twin / "labels.csv").read_text() == (scratch / "labels.csv").read_text()
    with np.load(scratch / "predictions.npz") as a, np.load(twin / "predictions.npz") as b:
        assert list(a["train_ids"]) == list(b["train_ids"]) and list(a["test_ids"]) == list(b["test_ids"])
        np.testing.assert_array_equal(a["is_val"], b["is_val"])
    summary = runs.read_summary(twin)
    assert summary["truth_known"] and summary["noise_rate"] == runs.read_summary(scratch)["noise_rate"]
    assert summary["num_fit"] + summary["num_val"] == 120 and summary["memorized"] is not None
    assert json.loads((twin / "noise.json").read_text())["counts"]["noisy"] == 48   # 40% of 120


def test_only_a_run_folders_labels_cut_the_dataset_to_its_images(tmp_path):
    """``--labels RUN_DIR`` on a max_train run: the run folder's labels.csv (120 of the 8000 built-in training
    images) picks its images, so the label set loads (before: "has no row for 7880 of the 8000 training images").
    The same two files outside a run folder change nothing (a plain label set must still cover every image), and
    a fold's label set keeps placing held-out images of the dataset's test split in training (cross-validation over
    every image of the user's own data)."""
    import shutil

    from noisycore import train
    from noisycore.datasets import load_dataset
    from noisycore.errors import DataError
    from noisycore.labelsets import load_label_set, save_label_set
    from noisycore.noise import apply_noise

    config = quick()
    run = runs.create_run(config, root=tmp_path / "runs", name="small")
    small = load_dataset(config.data.replace(max_train=120))
    noisy = apply_noise(small, config.noise)
    save_label_set(run, small, noisy, data_config=config.data)
    whole = load_dataset(config.data)
    assert len(whole.ids_train) == 8000 and len(whole.ids_test) == 40

    cut = train.restrict_to_label_set(whole, run)
    assert list(cut.ids_train) == list(small.ids_train)                       # the run's 120, in its order
    assert list(cut.ids_test) == list(whole.ids_test)                         # the held-out images unchanged
    np.testing.assert_array_equal(load_label_set(run, cut).labels, noisy.labels)

    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("labels.csv", "noise.json"):
        shutil.copy(run / name, plain / name)
    assert train.restrict_to_label_set(whole, plain) is whole                 # no config.json: not a run folder
    with pytest.raises(DataError, match="no row for 7880"):
        load_label_set(plain, whole)

    # a fold of cross-validation over every image: 20 of the run's images and 10 held-out ones in training,
    # the other 100 of the run as the fold's held-out set
    ids = np.concatenate([small.ids_train, whole.ids_test[:10]])
    labels = np.concatenate([noisy.labels, whole.y_test[:10]])
    split = np.where(np.arange(130) < 20, "train", np.where(np.arange(130) < 120, "test", "train"))
    fold = run / "cv" / "k2-fold1" / "labels"   # as corrections.write_label_subset writes it
    fold.mkdir(parents=True)
    pd.DataFrame({"id": ids, "label": np.asarray(whole.class_names)[labels], "split": split}).to_csv(
        fold / "labels.csv", index=False)
    meta = json.loads((run / "noise.json").read_text())
    (fold / "noise.json").write_text(json.dumps({**meta, train.SUBSET_KEY: True}))
    cut = train.restrict_to_label_set(whole, fold)
    assert sorted(cut.ids_train) == sorted([*small.ids_train[:20], *whole.ids_test[:10]])
    assert sorted(cut.ids_test) == sorted(small.ids_train[20:])
