"""A run's data-quality lists (issue 29): on a real tiny run of a user's own folder, the planted copy under
another label and the black image are found, rows follow the run's review order, the lists are saved and
read back without TensorFlow, and the neighbour strip switches to the pretrained embeddings."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("keras")

from noisycore import crossval, dataquality, detect, embeddings, runs  # noqa: E402
from helpers import noisylab_home, quality_run  # noqa: E402

SIZE = 64   # the backbone at a small input size: fast, and enough for 32-px shapes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("quality-home")
    with noisylab_home(home):
        yield quality_run(home)


@pytest.fixture(autouse=True)
def same_home(world, monkeypatch):
    """Every test sees the module's home (conftest gives each test its own), so the embedding cache is shared."""
    monkeypatch.setenv("NOISYLAB_HOME", str(world[0].parents[1]))
    monkeypatch.setenv("NOISYLAB_RUNS", str(world[0].parent))


@pytest.fixture(scope="module")
def computed(world):
    run, planted = world
    assert dataquality.quality_lists(run) is None and dataquality.neighbour_features(run) == (None, None)
    seen = []
    lists = dataquality.compute(run, size=SIZE, progress=lambda d, t: seen.append((d, t)))
    return run, planted, lists, seen


def test_planted_copy_and_black_image_are_found_in_review_order(computed):
    run, planted, lists, seen = computed
    info = detect.read_run_labels(run)
    assert set(lists) == set(dataquality.LISTS) and seen[-1] == (len(info.ids), len(info.ids))
    for frame in lists.values():
        assert len(frame) == len(info.ids)
        # index is the position in read_run_labels (train, then held-out images), given_label its class name
        assert (info.ids[frame["index"]] == frame["id"].to_numpy()).all()
        assert (np.asarray(info.class_names)[info.labels[frame["index"]]] == frame["given_label"].to_numpy()).all()
    near = dataquality.flagged(lists, "near_duplicates")
    assert set(near["id"][:2]) == set(planted["copy"]) and near["labels_differ"][:2].all()
    assert near["reason"][0].startswith("same image, different labels")
    poor = dataquality.flagged(lists, "image_quality").set_index("id")
    assert planted["black"] in poor.index and "too dark" in poor.loc[planted["black"], "reason"]
    meta = dataquality.read_meta(run)
    assert meta["counts"]["near_duplicates"] == len(near) and meta["duplicates_labels_differ"] >= 2
    assert meta["poor_by_check"]["dark"] >= 1 and meta["size"] == SIZE


def test_saved_lists_read_back_equal(computed):
    run, _, lists, _ = computed
    again = dataquality.quality_lists(run)
    for name, frame in lists.items():
        back = again[name]
        assert list(back.columns) == list(frame.columns)
        assert back["id"].tolist() == frame["id"].tolist() and back["flag"].tolist() == frame["flag"].tolist()
        np.testing.assert_allclose(back["score"], frame["score"], rtol=1e-6)
    assert again["outliers"]["class_distance"].dtype == float


def test_neighbours_come_from_the_pretrained_embeddings(computed):
    run, planted, _, _ = computed
    feats, kind = dataquality.neighbour_features(run)
    info = detect.read_run_labels(run)
    assert kind == "pretrained" and feats.shape == (len(info.ids), embeddings.FEATURES)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    ids = list(info.ids)
    a, b = (ids.index(i) for i in planted["copy"])
    assert detect.nearest_neighbours(feats, a, k=1)[0] == b   # the copy is its original's nearest neighbour
    # rows follow read_run_labels even though the cache is in dataset order (train then test)
    ds = dataquality._dataset(run)
    raw = embeddings.load_cached(ds, size=SIZE)[detect.dataset_positions(run, ds)]
    np.testing.assert_allclose(feats, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_a_gone_cache_falls_back_to_the_model_and_no_lists_for_other_images(computed, tmp_path):
    run, _, _, _ = computed
    meta = dataquality.read_meta(run)
    moved = tmp_path / "emb.npz"
    os.replace(meta["embeddings"], moved)
    try:
        assert dataquality.read_embeddings(run) is None
        assert dataquality.neighbour_features(run) == (None, None)   # no features.npy in this run either
    finally:
        os.replace(moved, meta["embeddings"])
    assert dataquality.read_embeddings(run) is not None


def test_the_worker_computes_the_lists_and_reports_progress(computed, monkeypatch):
    """crossval's background task "quality" (folds=0), run in this process: status finished, lists saved,
    the embeddings reused from the cache (no second pass through the network)."""
    run, _, _, _ = computed
    monkeypatch.setattr(embeddings, "DEFAULT_SIZE", SIZE)   # the size the fixture embedded at
    monkeypatch.setattr(embeddings, "feature_model", lambda *a, **k: pytest.fail("the cache was not reused"))
    cv_dir = run / crossval.CV_DIR
    cv_dir.mkdir(exist_ok=True)
    runs.write_status(cv_dir, {"state": "queued", "task": "quality", "folds": 0, "fold": 0})
    (run / dataquality.QUALITY_DIR / dataquality.META).unlink()
    assert crossval.worker(run, folds=0, quality=True) == 0
    status = runs.read_status(cv_dir)
    assert status["state"] == "finished" and status["step"] == "lists" and status["done"] == status["total"] > 0
    assert dataquality.quality_lists(run) is not None and not (run / detect.FEATURES).exists()
    assert crossval.progress({"step": "embeddings", "done": 128, "total": 512})[0] == pytest.approx(0.25)
    assert "128 of 512" in crossval.progress({"step": "embeddings", "done": 128, "total": 512})[1]


def test_bad_input_names_the_value(world):
    run, _ = world
    with pytest.raises(ValueError, match="embedding size 7"):
        dataquality.compute(run, size=7)
    with pytest.raises(ValueError, match="'blurry'"):
        dataquality.flagged({}, "blurry")
