"""A user's own images (truth unknown): honest truth flags, every image reviewable and exported,
reviewed labels with provenance, a retrain on the same held-out images, the user's names."""
import json
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from helpers import own_folder
from noisycore import corrections, crossval, detect, evaluation, runs
from noisycore.config import DataConfig, NoiseConfig, TrainConfig
from noisycore.datasets import load_dataset, skipped_text
from noisycore.errors import UserError
from noisycore.errors import DataError
from noisycore.review import ReviewStore


def _config(folder, **kw):
    values = dict(data=DataConfig(source=str(folder), image_size=16, test_fraction=0.25),
                  noise=NoiseConfig(model="none", rate=0.0), batchnorm=False, dropout=0.0, epochs=2,
                  batch_size=32, learning_rate=3e-3, lr_schedule="constant", early_stopping_patience=0,
                  val_fraction=0.15)
    values.update(kw)
    return TrainConfig(**values)


def test_folder_and_zip_labels_have_unknown_truth_and_unreadable_files_are_listed(tmp_path):
    root, _ = own_folder(tmp_path / "holiday photos", n_per_class=10, planted=2, unreadable=2)
    ds = load_dataset(DataConfig(source=str(root)))
    assert ds.name == "holiday photos" and not ds.truth_known
    assert len(ds.y_train) + len(ds.y_test) == 40
    text = skipped_text(ds)
    assert text.startswith("2 of 42 images could not be read") and "q0/broken-0.jpg (" in text
    with pytest.raises(DataError, match="2 of 42 image files could not be read: q0/broken-0.jpg"):
        load_dataset(DataConfig(source=str(root), skip_unreadable=False))
    archive = shutil.make_archive(str(tmp_path / "my pets"), "zip", root)
    ds = load_dataset(DataConfig(source=archive))
    assert ds.name == "my pets" and not ds.truth_known and len(ds.skipped) == 2
    # an unusable zip is named by the user's file, never the import folder inside the app's data
    single = tmp_path / "one"
    shutil.copytree(root / "q1", single / "q1")
    bad = shutil.make_archive(str(tmp_path / "single class"), "zip", single)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(source=bad))
    assert "single class.zip" in str(err.value) and "imports" not in str(err.value)


def test_old_own_folder_label_sets_are_read_as_truth_unknown(tmp_path):
    from noisycore.labelsets import truth_known_meta

    own = {"config": {"model": "none"}, "dataset": {"source": str(tmp_path)}}
    assert truth_known_meta(own) is False
    assert truth_known_meta({"config": {"model": "symmetric"}, "dataset": {"source": str(tmp_path)}}) is True
    assert truth_known_meta({"config": {"model": "none"}, "dataset": {"source": "cifar10"}}) is True
    assert truth_known_meta({**own, "truth_known": True}) is True


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """A finished tiny run on an own folder (noise none), 8 planted wrong folders."""
    train = pytest.importorskip("noisycore.train")
    tmp = tmp_path_factory.mktemp("own")
    root, planted = own_folder(tmp / "photos", n_per_class=30, planted=8)
    config = _config(root)
    run = runs.create_run(config, root=tmp / "runs")
    summary = train.run(config, run)
    return run, root, planted, summary


def test_own_run_claims_no_truth_and_reviews_every_image(own_run, tmp_path):
    run, root, planted, summary = own_run
    loaded = runs.load_run(run)
    assert evaluation.truth_known(loaded) is False
    head = evaluation.headline(loaded)
    assert head["train_acc_true"] is None and head["memorized"] is None and summary["truth_known"] is False
    labels = pd.read_csv(run / "labels.csv", keep_default_na=False)
    assert (labels["true_label"] == "").all() and (labels["is_noisy"] == "").all()
    assert json.loads((run / "noise.json").read_text())["truth_known"] is False
    info = detect.read_run_labels(run)
    assert info.true_labels is None and len(info.ids) == 120 and len(set(info.ids)) == 120
    assert (info.splits == "test").sum() == summary["num_test"] > 20 and set(planted) <= set(info.ids)
    images = detect.run_images(run)
    ds = load_dataset(runs.read_config(run).data)
    where = {i: x for i, x in zip(np.r_[ds.ids_train, ds.ids_test], np.r_[ds.x_train, ds.x_test])}
    assert all((images[j] == where[i]).all() for j, i in enumerate(info.ids))
    frame = detect.detect(run, detector="self_confidence", source="in_sample")
    assert len(frame) == 120 and "true_label" not in frame and "is_noisy" not in frame
    assert "evaluation" not in detect.detection_meta(run)["self_confidence"]
    # every image in the exports, the user's original files (bytes unchanged) in the folder zip
    table = pd.read_csv(corrections.export(run, fmt="csv", out=tmp_path / "all.csv"), keep_default_na=False)
    assert len(table) == 120 and set(table["id"]) == set(info.ids)
    with zipfile.ZipFile(corrections.export(run, fmt="folder", out=tmp_path / "tree.zip")) as zf:
        names = zf.namelist()
        assert len(names) == 120
        first = info.ids[-1]     # a held-out image
        member = f"{first.split('/')[0]}/{first.split('/')[1]}"
        assert zf.read(member) == (root / first).read_bytes()


def test_reviewed_labels_carry_provenance_and_retrain_on_the_same_held_out_images(own_run, tmp_path):
    train = pytest.importorskip("noisycore.train")
    run, root, planted, summary = own_run
    info = detect.read_run_labels(run)
    n_test = summary["num_test"]
    names = list(info.class_names)
    pos = {i: n for n, i in enumerate(info.ids)}
    moved = planted[0]                       # "q2/moved-1-....png": truly class 1, in folder q2
    right = names.index(f"q{moved.split('-')[1]}")
    test_id = info.ids[info.splits == "test"][0]
    kept_id = info.ids[0] if info.ids[0] != moved else info.ids[1]
    store = ReviewStore(tmp_path / "review.sqlite")
    store.record(item_id=moved, index=pos[moved], decision="relabel", previous_label=int(info.labels[pos[moved]]),
                 new_label=right, reviewer="ann")
    store.record(item_id=test_id, index=pos[test_id], decision="exclude", previous_label=int(info.labels[pos[test_id]]),
                 new_label=None, reviewer="bob")
    store.record(item_id=kept_id, index=pos[kept_id], decision="keep", previous_label=int(info.labels[pos[kept_id]]),
                 new_label=None, reviewer="ann")
    folder = corrections.corrected_label_set(run, store=store)
    table = pd.read_csv(folder / "labels.csv", keep_default_na=False).set_index("id")
    meta = json.loads((folder / "noise.json").read_text())
    assert meta["truth_known"] is False and meta["changed"] == 1 and meta["excluded"] == 1
    assert (table["is_noisy"] == "").all() and (table["true_label"] == "").all()
    row = table.loc[moved]
    assert (row["label"], row["original_label"], row["decision"], row["reviewer"]) == \
        (names[right], moved.split("/")[0], "relabelled", "ann") and row["reviewed_at"]
    assert table.loc[kept_id, "decision"] == "kept" and test_id not in table.index
    assert len(table) == 119 and (table["split"] == "test").sum() == n_test - 1
    config = corrections.retrain_config(run, folder)
    prepared = train.prepare(config)
    assert prepared.noisy.true_labels is None and prepared.noisy.is_noisy is None
    original = np.load(run / "predictions.npz")
    assert set(prepared.dataset.ids_test) == set(original["test_ids"]) - {test_id}
    assert set(prepared.dataset.ids_train) == set(original["train_ids"])
    new = runs.create_run(config.replace(epochs=1), root=tmp_path / "runs")
    train.run(config.replace(epochs=1), new)
    loaded = runs.load_run(new)
    assert evaluation.truth_known(loaded) is False
    assert (pd.read_csv(new / "labels.csv", keep_default_na=False)["is_noisy"] == "").all()
    gain = evaluation.review_gain(run, new)
    assert gain["n"] == n_test - 1 and gain["gain"] == pytest.approx(gain["retrained"] - gain["original"])
    assert corrections.retrain_title("r1", 1, 1) == "r1 after review (1 changed, 1 excluded)"
    (new / evaluation.REVIEWED_FILE).write_text(json.dumps({"title": "r1 after review (1 changed, 1 excluded)"}))
    assert evaluation.headline(runs.load_run(new))["title"] == "r1 after review (1 changed, 1 excluded)"


@pytest.mark.slow
def test_cross_validation_covers_every_image_without_truth(own_run, monkeypatch):
    run, _, planted, _ = own_run
    from noisycore.config import PRESETS, TrainConfig

    recipe = PRESETS["small"]   # 120 images: the small-data recipe (fast needs FAST_MIN_IMAGES)
    monkeypatch.setitem(recipe, "epochs", 2)
    monkeypatch.setattr("noisycore.config.SMALL_IMAGES_SEEN", 0)   # 2 epochs, not the size rule's 100
    monkeypatch.setitem(recipe, "batch_size", 32)
    expected = TrainConfig(**crossval.recommended_recipe(120, scratch=True))
    probs = crossval.cross_validate(run, folds=2)
    assert probs.shape == (120, 4) and np.isfinite(probs).all()
    folds = sorted((run / crossval.CV_DIR).glob("k2-fold*"))
    run_cfg, precision = runs.read_config(run), runs.read_summary(run)["precision"]
    for fold in folds:
        cfg = runs.read_config(fold / "run")
        assert cfg.trusted_val is False   # the recommended recipe for real images, not the run's own
        # ... keeping what made the run work: its resolved precision, its size, no flips (it had none)
        assert (run_cfg.mixed_precision, run_cfg.augment, run_cfg.tta) == ("auto", "none", "none")
        assert (cfg.mixed_precision, cfg.augment, cfg.tta, cfg.data.image_size) == (precision, "none", "none", 16)
        # the held-out fold is predicted with the fold's TTA (none)
        import keras
        from noisycore.pipeline import predict_probs
        held_ids = np.load(fold / "run" / "predictions.npz")["test_ids"]
        model = keras.models.load_model(fold / "run" / "best.keras", compile=False)
        images = detect.run_images(run)
        ids = list(detect.read_run_labels(run).ids)
        p = predict_probs(model, images[[ids.index(i) for i in held_ids]], tta="none")
        np.testing.assert_allclose(np.sort(np.load(fold / "heldout_probs.npy").max(1)),
                                   np.sort((p / p.sum(1, keepdims=True)).max(1)), atol=1e-5)
        assert (cfg.model, cfg.loss, cfg.lr_schedule) == (expected.model, expected.loss, expected.lr_schedule)
        trained = set(pd.read_csv(fold / "run" / "labels.csv")["id"])
        held = set(np.load(fold / "run" / "predictions.npz")["test_ids"])
        assert len(trained) == 60 and trained.isdisjoint(held) and len(trained | held) == 120
    frame = detect.detect(run, detector="confident_learning", source="cross_validation")
    assert len(frame) == 120 and set(planted) <= set(frame["id"])


def test_an_old_own_folder_run_opens_as_truth_unknown(own_run, tmp_path):
    """Runs written before the truth rule copied the folder labels into true_label; they read as unknown."""
    run, _, _, _ = own_run
    old = tmp_path / run.name
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("cv", "issues", "corrected", "*.sqlite*"))
    meta = json.loads((old / "noise.json").read_text())
    meta.pop("truth_known")
    (old / "noise.json").write_text(json.dumps(meta))
    labels = pd.read_csv(old / "labels.csv", keep_default_na=False)
    labels["true_label"], labels["is_noisy"] = labels["label"], "false"
    labels.to_csv(old / "labels.csv", index=False)
    summary = json.loads((old / "summary.json").read_text())
    summary.update(truth_known=True, train_acc_true=0.9, memorized=None)
    (old / "summary.json").write_text(json.dumps(summary))
    loaded = runs.load_run(old)
    assert evaluation.truth_known(loaded) is False and evaluation.headline(loaded)["train_acc_true"] is None
    info = detect.read_run_labels(old)
    assert info.true_labels is None and len(info.ids) == 120


def test_fold_config_without_truth_is_the_recommended_recipe_on_defaults(tmp_path):
    from noisycore.config import TrainConfig

    run_cfg = TrainConfig.from_preset("quick", data={"source": str(tmp_path)}, seed=3)   # dropout 0, constant lr
    (tmp_path / "labels").mkdir()
    # a fold of 400 images: 300 to train on, 100 held out (the fold's test split)
    pd.DataFrame({"id": [f"a/{i}.png" for i in range(400)], "label": "a", "split": ["train"] * 300 + ["test"] * 100}
                 ).to_csv(tmp_path / "labels" / "labels.csv", index=False)
    fold = crossval.fold_config(run_cfg, tmp_path / "labels", truth_known=False)
    expected = TrainConfig(**crossval.recommended_recipe(300, scratch=True))
    # the small-data recipe (batch 64), its epochs for the 300 training images: round(20,000 / 300) = 67
    assert (expected.model, expected.loss, expected.batch_size, expected.epochs) == ("fast_cnn", "gce", 64, 67)
    big = TrainConfig(**crossval.recommended_recipe(50_000, scratch=True))
    assert (big.model, big.batch_size, big.epochs) == ("fast_cnn", 256, 24)
    for field in ("model", "loss", "loss_kwargs", "lr_schedule", "dropout", "epochs", "batch_size",
                  "early_stopping_patience"):
        assert getattr(fold, field) == getattr(expected, field), field
    # what made the run work is inherited (issue 28): its resolved mirroring and precision, not the recipe's auto
    mirror_off = run_cfg.replace(augment="translate", tta="none")
    fold = crossval.fold_config(mirror_off, tmp_path / "labels", truth_known=False, precision="float32")
    assert (fold.augment, fold.tta, fold.mixed_precision, fold.model) == ("translate", "none", "float32", "fast_cnn")
    assert expected.augment == expected.tta == "auto"     # a run resolves auto before it trains
    fold = crossval.fold_config(run_cfg, tmp_path / "labels", truth_known=False)
    assert fold.seed == 3 and fold.data == run_cfg.data and fold.trusted_val is False
    # the quick preset has no augmentation and no TTA: the fold keeps none of either (mirror-sensitive classes)
    assert (run_cfg.augment, run_cfg.tta, fold.augment, fold.tta) == ("none", "none", "none", "none")
    flips = crossval.fold_config(run_cfg.replace(augment="flip_translate", tta="flip"), tmp_path / "labels",
                                 truth_known=False)
    assert (flips.augment, flips.tta) == ("flip_translate", "flip")
    kept = crossval.fold_config(run_cfg, tmp_path / "labels", truth_known=True)   # injected noise: the run's recipe
    assert (kept.model, kept.dropout, kept.lr_schedule) == (run_cfg.model, run_cfg.dropout, run_cfg.lr_schedule)
    # a benchmark's candidate: changed fields on top of either recipe; an unknown field is refused
    changed = crossval.fold_config(run_cfg, tmp_path / "labels", truth_known=False, recipe={"epochs": 7, "ema_momentum": 0.9})
    assert (changed.epochs, changed.ema_momentum, changed.model, changed.loss) == (7, 0.9, "fast_cnn", "gce")
    assert crossval.fold_config(run_cfg, tmp_path / "labels", truth_known=True, recipe={"epochs": 7}).epochs == 7
    with pytest.raises(UserError, match="'max_train'.*not a training setting of a fold"):
        crossval.fold_config(run_cfg, tmp_path / "labels", truth_known=False, recipe={"max_train": 10})
    with pytest.raises(UserError, match="'nope'"):
        crossval.recommended_recipe(200, nope=1)


@pytest.mark.parametrize("truth_known", [False, True])
def test_folds_inherit_the_runs_precision_image_size_and_no_flips(tmp_path, truth_known):
    """Issue 28/31: a fold does not re-decide what made the run work. The run resolved ``auto`` to float32
    and trained at 12 px with augment none and TTA none: every fold does the same, on either recipe."""
    (tmp_path / "labels").mkdir()
    pd.DataFrame({"id": [f"a/{i}.png" for i in range(400)], "label": "a", "split": ["train"] * 300 + ["test"] * 100}
                 ).to_csv(tmp_path / "labels" / "labels.csv", index=False)
    run_cfg = TrainConfig.from_preset("small", data={"source": str(tmp_path)}, augment="none", tta="none",
                                      mixed_precision="auto")
    fold = crossval.fold_config(run_cfg, tmp_path / "labels", truth_known=truth_known, precision="float32",
                                image_size=12)
    assert (fold.mixed_precision, fold.data.image_size, fold.augment, fold.tta) == ("float32", 12, "none", "none")
    assert fold.data.source == str(tmp_path)
    bf16 = crossval.fold_config(run_cfg.replace(data=run_cfg.data.replace(image_size=20)), tmp_path / "labels",
                                truth_known=truth_known, precision="bfloat16", image_size=20)
    assert (bf16.mixed_precision, bf16.data.image_size) == ("bfloat16", 20)
    # a benchmark's candidate recipe still wins over what is inherited
    flip = crossval.fold_config(run_cfg, tmp_path / "labels", truth_known=truth_known, precision="float32",
                                recipe={"tta": "flip"})
    assert flip.tta == "flip" and flip.augment == "none"


def test_cross_validation_progress_says_how_long_is_left():
    """crossval.progress: the bar's fraction over all folds, and the time left from the running fold's pace
    (its second epoch on), the folds to come costing the same."""
    s = {"folds": 4, "fold": 2, "epochs": 10, "epoch": 3, "batch": 2, "batches": 4,
         "fold_started": "2026-12-01T10:00:00+00:00", "updated": "2026-12-01T10:01:15+00:00"}
    # this fold is (2 + 2/4) / 10 = 25% done after 75 s: 300 s a fold, 225 s left in it + 2 folds x 300 s = 825 s
    done, text = crossval.progress(s)
    assert done == pytest.approx((1 + 0.25) / 4)
    assert text == "fold 2 of 4, epoch 3 of 10, about 14 min left"
    assert crossval.progress({**s, "epoch": 1})[1] == "fold 2 of 4, epoch 1 of 10"   # start-up: no guess yet
    late = {**s, "fold": 4, "epoch": 10, "batch": 3, "updated": "2026-12-01T10:04:00+00:00"}
    # 97.5% of the last fold after 240 s: 240 / 0.975 x 0.025 = 6.2 s
    assert crossval.progress(late)[1] == "fold 4 of 4, epoch 10 of 10, about 6 s left"
    assert crossval.progress({}) == (0.0, "fold 0 of ?")
    assert crossval.progress_text(s) == text


def test_cli_train_on_an_own_folder_injects_no_noise_unless_asked(tmp_path):
    """`noisycore train --dataset <folder>` without --noise trains on the folder names as given labels
    (truth unknown); the teaching default of 40% symmetric noise applies to builtin and CIFAR-10 only."""
    from noisycore.cli import build_parser
    from noisycore.cliargs import train_config

    root, _ = own_folder(tmp_path / "photos", n_per_class=4, planted=0)
    parse = lambda *extra: build_parser().parse_args(["train", "--dataset", str(root), *extra])  # noqa: E731
    assert train_config(parse()).noise.model == "none"
    asked = train_config(parse("--noise", "symmetric", "--rate", "0.2")).noise
    assert (asked.model, asked.rate) == ("symmetric", 0.2)
    demo = train_config(build_parser().parse_args(["train", "--dataset", "builtin"])).noise
    assert (demo.model, demo.rate) == ("symmetric", 0.4)


def test_the_demo_folds_train_the_recommended_recipe_briefly_and_the_page_says_so(tmp_path):
    """Issue 31, the demo's Review page: a Quick run on the built-in shapes (truth known) proposes 2 folds whose
    models train the recommended recipe for DEMO_FOLD_EPOCHS epochs (its own CE compact CNN was a weak
    detector), keeping the run's precision; a forward-loss run and another data set keep their own recipe."""
    (tmp_path / "labels").mkdir()
    pd.DataFrame({"id": [str(i) for i in range(200)], "label": "a", "split": ["train"] * 100 + ["test"] * 100}
                 ).to_csv(tmp_path / "labels" / "labels.csv", index=False)
    quick = TrainConfig.from_preset("quick", data={"source": "builtin"})
    fold = crossval.fold_config(quick, tmp_path / "labels", truth_known=True, precision="float32")
    small = TrainConfig(**crossval.recommended_recipe(100, scratch=True))
    assert (fold.model, fold.loss, fold.loss_kwargs, fold.ema_momentum, fold.augment, fold.tta) == \
        (small.model, small.loss, small.loss_kwargs, small.ema_momentum, small.augment, small.tta)
    assert (fold.epochs, fold.mixed_precision, fold.keep, fold.trusted_val) == (crossval.DEMO_FOLD_EPOCHS, "float32", "best", False)
    assert crossval.default_folds(quick) == crossval.DEMO_FOLDS == 2
    assert f"{crossval.DEMO_FOLD_EPOCHS} epochs" in crossval.fold_recipe_text(quick, truth_known=True)
    forward = quick.replace(loss="forward", loss_params={})
    assert crossval.fold_config(forward, tmp_path / "labels", truth_known=True).loss == "forward"
    other = quick.replace(data=quick.data.replace(source=str(tmp_path)))
    kept = crossval.fold_config(other, tmp_path / "labels", truth_known=True)
    assert (kept.model, kept.loss, kept.epochs) == (quick.model, quick.loss, quick.epochs)
    assert crossval.default_folds(other) == 4 and "own recipe" in crossval.fold_recipe_text(other, truth_known=True)
