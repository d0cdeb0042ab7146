"""The pretrained recipe (issue 29): a head on the cached EfficientNet-Lite2 embeddings, the default for a
user's own photos; the run, its cross-validation folds and the Review page share one embeddings file."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from noisycore import crossval, embeddings, runs, train
from noisycore.config import ConfigError, DataConfig, NoiseConfig, TrainConfig, default_preset

from helpers import own_folder

SIZE = 64   # the backbone's input side in these tests (the app's is embeddings.DEFAULT_SIZE): seconds, not minutes;
            # at 32 px Lite2's pooled features (1 x 1 before pooling) left the quadrant classes at 43% training accuracy


@pytest.fixture
def counted_backbone(monkeypatch):
    """embeddings.DEFAULT_SIZE at SIZE and a count of the images pushed through the backbone."""
    monkeypatch.setattr(embeddings, "DEFAULT_SIZE", SIZE)
    calls = {"images": 0}
    real = embeddings._embed_chunk

    def counted(model, images, batch, progress):
        calls["images"] += len(images)
        return real(model, images, batch, progress)

    monkeypatch.setattr(embeddings, "_embed_chunk", counted)
    return calls


def own_config(folder, **overrides) -> TrainConfig:
    values = dict(data=DataConfig(source=str(folder), image_size=16, test_fraction=0.2),
                  noise=NoiseConfig(model="none", rate=0.0), epochs=20, baseline=False)
    return TrainConfig.from_preset("pretrained", **{**values, **overrides})


def test_a_head_on_the_cached_embeddings_trains_and_its_folds_reuse_them(tmp_path, counted_backbone):
    folder, _ = own_folder(tmp_path / "photos", n_per_class=20, planted=4)
    config = own_config(folder, keep="last")   # 8 validation images would pick an epoch by chance
    assert (config.model, config.augment, config.tta) == ("pretrained_head", "none", "none")
    run = tmp_path / "run"
    seen = []
    summary = train.run(config, run, progress=seen.append)
    assert summary["state"] == "finished" and summary["epochs_done"] == 20
    phases = [i for i in seen if i.get("phase")]            # the CLI's and the page's "pretrained features: k of n"
    assert phases and phases[-1]["phase"] == "pretrained features: 80 of 80 images" and runs.read_status(run).get("phase") is None
    n_all = 80                                           # every image embedded once: training and held-out
    assert counted_backbone["images"] == n_all
    metrics = runs.read_metrics(run)
    assert list(metrics["epoch"]) == list(range(1, 21)) and metrics["val_accuracy"].notna().all()
    with np.load(run / "predictions.npz") as z:
        train_probs, test_probs = z["train_probs"], z["test_probs"]
        assert train_probs.shape == (summary["num_fit"] + summary["num_val"], 4) and test_probs.shape[1] == 4
        np.testing.assert_allclose(train_probs.sum(axis=1), 1.0, atol=1e-5)
    # the head learned the quadrant classes from the features of 16-px images at 32 px (chance is 25%)
    assert summary["train_acc_noisy"] >= 0.8 and summary["test_accuracy"] >= 0.5, summary
    # the embeddings file the run wrote is the one its folds read: not recomputed, not rewritten
    path = embeddings.embedding_file(_dataset(config), size=SIZE)
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    probs = crossval.cross_validate(run, folds=2, recipe={"epochs": 5})   # the fold recipe: 100 epochs here
    assert counted_backbone["images"] == n_all and path.stat().st_mtime_ns == mtime
    assert probs.shape == (n_all, 4) and np.isfinite(probs).all()
    fold_config = runs.read_config(run / "cv" / "k2-fold1" / "run")
    assert fold_config.model == "pretrained_head" and fold_config.augment == "none"


def _dataset(config):
    from noisycore.datasets import load_dataset

    return load_dataset(runs.run_data_config(config))


def test_the_default_preset_is_pretrained_for_own_photos_and_quick_for_the_shapes():
    assert default_preset("/photos/garden.zip") == "pretrained"
    assert default_preset("/photos/garden.zip", 450) == default_preset("/photos", 20_000) == "pretrained"
    assert default_preset("/photos/labels.csv", 300) == "pretrained"       # a CSV manifest of own photos
    assert default_preset("builtin") == "quick"                             # the memorization demo: from scratch
    assert default_preset("cifar10") == "fast" and default_preset("cifar10", 5000) == "small"
    assert crossval.recommended_recipe(675)["model"] == "pretrained_head"
    assert crossval.recommended_recipe(675, scratch=True)["model"] == "fast_cnn"   # one choice away


def test_the_cli_trains_an_own_zip_with_the_pretrained_preset(tmp_path):
    from noisycore.cli import build_parser
    from noisycore.cliargs import train_config

    args = build_parser().parse_args(["train", "--dataset", str(tmp_path / "own.zip")])
    config = train_config(args)
    assert (config.preset, config.model, config.noise.model) == ("pretrained", "pretrained_head", "none")
    builtin = train_config(build_parser().parse_args(["train", "--dataset", "builtin"]))
    assert builtin.preset == "quick" and builtin.model != "pretrained_head"


@pytest.mark.parametrize("changes,words", [
    ({"method": "coteaching"}, "method='coteaching' does not work with model 'pretrained_head'"),
    ({"augment": "flip_translate"}, "augment='flip_translate' does not apply to model 'pretrained_head'"),
    ({"tta": "flip"}, "tta='flip' does not apply"),
    ({"cutout": True}, "cutout=True does not apply"),
])
def test_what_cannot_work_on_embeddings_is_refused_in_one_line(changes, words):
    with pytest.raises(ConfigError, match=words) as e:
        TrainConfig.from_preset("pretrained", **changes)
    assert "\n" not in str(e.value)


def test_auto_augmentation_resolves_to_none_for_a_head_and_the_config_says_so():
    config = TrainConfig.from_preset("small", model="pretrained_head")   # the small preset's augment / tta auto
    assert (config.augment, config.tta) == ("none", "none")
    assert json.loads(config.to_json())["augment"] == "none"
    for method in ("standard", "confidence_weighting", "label_correction"):
        TrainConfig.from_preset("pretrained", method=method)
    TrainConfig.from_preset("pretrained", loss="gce")


def test_the_review_features_of_a_head_run_come_from_its_embeddings(tmp_path, counted_backbone):
    """detect.model_inputs: the run's rows of the cached file in read_run_labels' order (Review's neighbours)."""
    from noisycore import detect

    folder, _ = own_folder(tmp_path / "photos", n_per_class=12, planted=0)
    config = own_config(folder, epochs=1)
    run = tmp_path / "run"
    train.run(config, run)
    before = counted_backbone["images"]
    x = detect.model_inputs(run)
    info = detect.read_run_labels(run)
    whole = embeddings.load_cached(_dataset(config), size=SIZE)
    ds = _dataset(config)
    all_ids = pd.Index(np.concatenate([ds.ids_train, ds.ids_test]).astype(str))
    np.testing.assert_array_equal(x, whole[all_ids.get_indexer(info.ids)])
    assert counted_backbone["images"] == before and x.shape == (len(info.ids), 1280)
    feats = detect.compute_features(run)
    assert feats.shape == (len(info.ids), 256)         # the MLP head's "features" layer: its 256 hidden units
    # the run says which backbone its head read; a run from before that was recorded was trained on Lite0's
    # features, and its model is fed Lite0's again (another cache file), never Lite2's
    assert runs.read_status(run)["backbone"] == embeddings.BACKBONE == "efficientnet_lite2"
    assert detect.run_backbone(run) == "lite2"
    status = json.loads((run / "status.json").read_text())
    del status["backbone"]
    (run / "status.json").write_text(json.dumps(status))
    assert detect.run_backbone(run) == "lite0"
    old = detect.model_inputs(run)
    assert counted_backbone["images"] == before + len(whole)          # embedded once more, by Lite0
    lite0 = embeddings.embed(ds, size=SIZE, variant="lite0")
    np.testing.assert_array_equal(old, lite0[all_ids.get_indexer(info.ids)])
    assert not np.allclose(old, x, atol=1e-3)
    assert counted_backbone["images"] == before + len(whole)          # and cached under its own key


@pytest.mark.parametrize("method,params", [("confidence_weighting", {"warmup_epochs": 2}),
                                           ("label_correction", {"rounds": 1, "threshold": 0.5})])
def test_the_robust_methods_train_a_head_on_the_embeddings(tmp_path, counted_backbone, method, params):
    """The methods that make sense on frozen features train a head end to end and report their numbers."""
    folder, _ = own_folder(tmp_path / "photos", n_per_class=12, planted=4)
    config = own_config(folder, method=method, method_params=params, epochs=6, keep="last")
    summary = train.run(config, tmp_path / "run")
    assert summary["state"] == "finished" and summary["epochs_done"] == 6
    metrics = runs.read_metrics(tmp_path / "run")
    assert len(metrics) == 6 and metrics["accuracy"].notna().all()
    if method == "label_correction":
        with np.load(tmp_path / "run" / "predictions.npz") as z:
            assert z["train_labels_final"].shape == z["train_labels"].shape


# ---------------------------------------------------------------------------- pretrained features or pixels
def test_the_features_must_beat_the_pixels_by_more_than_two_standard_errors():
    from noisycore.baseline import features_not_better

    digits = {"cv_accuracy": 0.911, "cv_n": 1797, "embeddings": {"cv_accuracy": 0.881}}
    # SE of the difference: sqrt((0.911*0.089 + 0.881*0.119) / 1797) = 0.0101; the pixels lead by 0.030 > 2 x 0.0101
    note = features_not_better(digits)
    assert note and "better than one on the pretrained features (91.1% against 88.1%" in note and "small preset" in note
    # the robust suite's digit scans at 16 px: 89.8% against 88.1%, SE 0.0105: a tie, which also trains from scratch
    note = features_not_better({**digits, "cv_accuracy": 0.898})
    assert note and "about as well as one on the pretrained features (89.8% against 88.1%" in note
    # features ahead by 0.030 on 300 images: SE sqrt((0.851*0.149 + 0.881*0.119) / 300) = 0.0278, 0.030 < 0.0556: from scratch
    assert features_not_better({"cv_accuracy": 0.851, "cv_n": 300, "embeddings": {"cv_accuracy": 0.881}})
    # ... and on 1,797: SE 0.0114, 0.030 > 0.0227: clearly better, the features stay
    assert features_not_better({"cv_accuracy": 0.851, "cv_n": 1797, "embeddings": {"cv_accuracy": 0.881}}) is None
    assert features_not_better({"cv_accuracy": 0.5, "cv_n": 900, "embeddings": {"cv_accuracy": 0.85}}) is None
    assert features_not_better({"cv_accuracy": 0.9, "cv_n": 900}) is None          # no features measured
    assert features_not_better(None) is None


def test_a_pretrained_run_on_digit_scans_trains_from_scratch_and_says_why(tmp_path, counted_backbone):
    """sklearn's real 8-px digit scans: pooled ImageNet features lose to the pixels, so the pretrained preset's
    run becomes the small preset (from scratch, never mirrored: a mirror changes digits) and records why."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from noisycore import baseline
    from noisycore.datasets import load_dataset

    d = load_digits()
    folder = tmp_path / "scans"
    for i, (img, y) in enumerate(zip(d.images[:400], d.target[:400])):
        (folder / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8)).save(folder / str(y) / f"{i}.png")
    config = TrainConfig.from_preset("pretrained", data=DataConfig(source=str(folder), test_fraction=0.2),
                                     noise=NoiseConfig(model="none", rate=0.0))
    assert config.choose_features and config.model == "pretrained_head"
    run = tmp_path / "run"
    run.mkdir()
    runs.write_status(run, {"state": "running"})
    ds = load_dataset(runs.run_data_config(config))
    chosen = baseline.choose_for_run(run, config, ds, ds.y_train, truth_known=False)
    record = json.loads((run / "baseline.json").read_text())
    assert record["cv_accuracy"] > record["embeddings"]["cv_accuracy"]            # measured, not assumed
    assert (chosen.preset, chosen.model, chosen.choose_features) == ("small", "fast_cnn", False)
    assert (chosen.augment, chosen.tta) == ("translate", "none")                  # digits are never mirrored
    assert chosen.mixed_precision == TrainConfig().mixed_precision                # the head's float32 is not kept
    assert runs.read_config(run) == chosen                                        # folds and retrains follow it
    assert "pixels predicts the given labels better" in runs.read_status(run)["note"]
    # what the user changed in the pretrained preset is kept; the preset's own values are not
    mine = config.replace(epochs=3, loss="ce", loss_params={})
    run2 = tmp_path / "run2"
    run2.mkdir()
    runs.write_status(run2, {"state": "running"})
    chosen2 = baseline.choose_for_run(run2, mine, ds, ds.y_train, truth_known=False)
    assert (chosen2.model, chosen2.epochs, chosen2.loss) == ("fast_cnn", 3, "ce")
    assert (chosen2.weight_decay, chosen2.lr_schedule) == (5e-4, "warmup_linear")     # small's, not the head's
