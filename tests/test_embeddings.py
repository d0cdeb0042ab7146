"""Embeddings (issue 29): the pooled EfficientNet-Lite2 features of every image, computed once per
images + size + precision, reused without TensorFlow, resumed chunk by chunk after an interruption."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from noisycore import embeddings
from noisycore.datasets import load_builtin
from noisycore.errors import UserError

SIZE = 32


@pytest.fixture(scope="module")
def dataset():
    return load_builtin(n_train=30, n_test=10, seed=3, image_size=32)


@pytest.fixture(scope="module")
def model():
    return embeddings.feature_model(SIZE)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(embeddings, "CHUNK", 16)


class Calls:
    """Wraps _embed_chunk: counts the images actually pushed through the network."""

    def __init__(self, monkeypatch, model, stop_after=None):
        self.images, self.stop_after, real = 0, stop_after, embeddings._embed_chunk
        monkeypatch.setattr(embeddings, "feature_model", lambda size, precision="float32", variant="lite2": model)

        def wrapped(m, images, batch, progress):
            if self.stop_after is not None and self.images >= self.stop_after:
                raise KeyboardInterrupt("killed mid-embed")
            self.images += len(images)
            return real(m, images, batch, progress)
        monkeypatch.setattr(embeddings, "_embed_chunk", wrapped)


def test_embed_is_the_models_pooled_features_train_then_test(dataset, model, tmp_path, small_chunks, monkeypatch):
    calls = Calls(monkeypatch, model)
    seen = []
    emb = embeddings.embed(dataset, size=SIZE, batch=8, cache_dir=tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert emb.shape == (40, 1280) and emb.dtype == np.float32 and calls.images == 40
    direct = np.asarray(model.predict_on_batch(np.concatenate([dataset.x_train, dataset.x_test]).astype("float32")))
    np.testing.assert_allclose(emb, direct, rtol=1e-4, atol=1e-4)
    assert seen[-1] == (40, 40) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    path = embeddings.embedding_file(dataset, size=SIZE, cache_dir=tmp_path)
    assert path.is_file() and not list(tmp_path.glob("*.partial"))
    meta = embeddings.cache_meta(path)
    assert (meta["n_train"], meta["n_test"], meta["size"]) == (30, 10, SIZE)


def test_second_call_reuses_the_cache_without_the_network(dataset, model, tmp_path, small_chunks, monkeypatch):
    Calls(monkeypatch, model)
    first = embeddings.embed(dataset, size=SIZE, cache_dir=tmp_path)
    monkeypatch.setattr(embeddings, "feature_model", lambda *a, **k: pytest.fail("the cache was not reused"))
    again = embeddings.embed(dataset, size=SIZE, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(embeddings.load_cached(dataset, size=SIZE, cache_dir=tmp_path), first)
    # other images, or another size, are another file
    other = dataclasses.replace(dataset, x_train=dataset.x_train[::-1].copy())
    assert embeddings.load_cached(other, size=SIZE, cache_dir=tmp_path) is None
    assert embeddings.embedding_file(dataset, size=64, cache_dir=tmp_path) != \
        embeddings.embedding_file(dataset, size=SIZE, cache_dir=tmp_path)


def test_an_interrupted_embed_resumes_at_the_first_missing_chunk(dataset, model, tmp_path, small_chunks,
                                                                  monkeypatch):
    calls = Calls(monkeypatch, model, stop_after=16)      # dies when starting the second chunk
    with pytest.raises(KeyboardInterrupt):
        embeddings.embed(dataset, size=SIZE, cache_dir=tmp_path)
    path = embeddings.embedding_file(dataset, size=SIZE, cache_dir=tmp_path)
    assert not path.exists()                              # no half result is ever the cache
    assert len(list(path.with_name(path.stem + ".partial").glob("chunk-*.npy"))) == 1
    calls.stop_after, calls.images = None, 0
    emb = embeddings.embed(dataset, size=SIZE, cache_dir=tmp_path)
    assert calls.images == 24                             # 40 images, the first chunk of 16 kept
    direct = np.asarray(model.predict_on_batch(np.concatenate([dataset.x_train, dataset.x_test]).astype("float32")))
    np.testing.assert_allclose(emb, direct, rtol=1e-4, atol=1e-4)


def test_a_damaged_cache_file_is_recomputed(dataset, model, tmp_path, small_chunks, monkeypatch):
    calls = Calls(monkeypatch, model)
    path = embeddings.embedding_file(dataset, size=SIZE, cache_dir=tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an npz")
    assert embeddings.embed(dataset, size=SIZE, cache_dir=tmp_path).shape == (40, 1280)
    assert calls.images == 40


@pytest.mark.parametrize("kw, match", [({"size": 8}, "size 8"), ({"size": 96.5}, "96.5"),
                                       ({"batch": 0}, "batch 0"), ({"precision": "float16"}, "float16")])
def test_bad_options_are_refused_by_name(dataset, tmp_path, kw, match):
    with pytest.raises(UserError, match=match):
        embeddings.embed(dataset, cache_dir=tmp_path, **kw)
    assert not list(tmp_path.iterdir())


def test_cli_embed_prints_progress_and_reuses_the_cache(tmp_path, monkeypatch, capsys, model, small_chunks):
    from noisycore import cli

    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "photos" / cls / f"{i}.png")
    calls = Calls(monkeypatch, model)
    argv = ["embed", "--dataset", str(tmp_path / "photos"), "--size", str(SIZE)]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "12 images x 1280 features" in out and "embedding 12/12 images" in err and calls.images == 12
    assert cli.main(argv) == 0 and calls.images == 12          # the second time from the cache
    assert "images/s" not in capsys.readouterr().err           # nothing computed, no rate
    assert cli.main(argv[:-1] + ["7"]) == 2
    assert "size 7" in capsys.readouterr().err
