"""Own photos embedded from their original pixels (issue 29): a folder of photos larger than the decoded
images (<= 64 px) is embedded from the files at the backbone's input size with the dataset's framing, cached
under its own key; 32-px photos keep the decoded path and its old cache file; a moved or changed source falls
back to the decoded images and says so."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageOps

pytest.importorskip("keras")

from noisycore import embeddings  # noqa: E402
from noisycore.config import DataConfig  # noqa: E402
from noisycore.datasets import load_dataset  # noqa: E402

SIZE = embeddings.DEFAULT_SIZE   # 160: the app's input size; 12 images through the backbone take a second


@pytest.fixture(scope="module")
def model():
    return embeddings.feature_model(SIZE)


@pytest.fixture
def counted(monkeypatch, model):
    """The module's backbone, and a count of the images pushed through it."""
    calls = {"images": 0}
    real = embeddings._embed_chunk
    monkeypatch.setattr(embeddings, "feature_model", lambda size, precision="float32", variant="lite2": model)

    def wrapped(m, images, batch, progress):
        calls["images"] += len(images)
        return real(m, images, batch, progress)
    monkeypatch.setattr(embeddings, "_embed_chunk", wrapped)
    return calls


def photo_folder(root, *, height=96, width=128, per_class=6, seed=0):
    """2 x ``per_class`` photos (12) with detail finer than 64 px (stripes 2 px wide): class a vertical stripes,
    class b horizontal ones, random colours. a/05.jpg is a phone JPEG stored sideways (EXIF orientation 6)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    for c, stripes in (("a", (xx // 2) % 2), ("b", (yy // 2) % 2)):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = rng.integers(0, 256, 3)
            img = np.clip(base + stripes[..., None] * rng.integers(60, 160, 3) + rng.integers(0, 40, (height, width, 3)),
                          0, 255).astype(np.uint8)
            if (c, i) == ("a", 5):
                exif = Image.Exif()
                exif[0x0112] = 6      # "rotate 90 degrees clockwise to display"
                Image.fromarray(img.transpose(1, 0, 2)).save(root / c / f"{i:02d}.jpg", exif=exif.tobytes(), quality=95)
            else:
                Image.fromarray(img).save(root / c / f"{i:02d}.png")
    return root


def reference_pixels(root, ids) -> np.ndarray:
    """The originals as the dataset frames them, computed here from the files: EXIF rotation, RGB, squashed
    to SIZE x SIZE with Lanczos (datasets.base._decode's rule)."""
    out = []
    for i in ids:
        with Image.open(root / i) as im:
            img = ImageOps.exif_transpose(im).convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            out.append(np.asarray(img))
    return np.stack(out)


def all_ids(ds):
    return np.concatenate([ds.ids_train, ds.ids_test])


def test_large_photos_are_embedded_from_the_files_and_the_second_call_is_a_cache_hit(tmp_path, counted, model,
                                                                                      monkeypatch):
    root = photo_folder(tmp_path / "photos")
    ds = load_dataset(DataConfig(source=str(root), test_fraction=0.25))
    assert ds.image_shape == (64, 64, 3)           # decoded for the networks at the 64-px cap
    emb = embeddings.embed(ds, size=SIZE, batch=5)
    assert emb.shape == (12, 1280) and counted["images"] == 12
    direct = np.asarray(model.predict_on_batch(reference_pixels(root, all_ids(ds)).astype("float32")))
    np.testing.assert_allclose(emb, direct, rtol=1e-4, atol=1e-4)
    upsampled = np.asarray(model.predict_on_batch(np.concatenate([ds.x_train, ds.x_test]).astype("float32")))
    assert np.abs(emb - upsampled).max() > 0.1 and not np.allclose(emb, upsampled, rtol=1e-2, atol=1e-2)
    path = embeddings.embedding_file(ds, size=SIZE)
    assert path.is_file() and path.stem != f"embeddings-{embeddings.cache_key(ds, size=SIZE)}"   # its own key
    meta = embeddings.cache_meta(path)
    assert meta["pixels"] == "original photos at 160 px" and meta["decoded_side"] == 64
    assert embeddings.pixels_source(ds, size=SIZE) == "original photos at 160 px"
    # the second call: the cached file, no backbone and no file decoded
    monkeypatch.setattr(embeddings, "feature_model", lambda *a, **k: pytest.fail("the cache was not reused"))
    monkeypatch.setattr(embeddings, "_from_files", lambda *a, **k: pytest.fail("the files were decoded again"))
    seen = []
    again = embeddings.embed(ds, size=SIZE, progress=lambda d, t: seen.append((d, t)))
    np.testing.assert_array_equal(again, emb)
    assert seen == [(12, 12)] and counted["images"] == 12
    np.testing.assert_array_equal(embeddings.load_cached(ds, size=SIZE), emb)


def test_photos_no_larger_than_the_decoded_side_keep_the_old_key_and_pixels(tmp_path, counted, model):
    root = photo_folder(tmp_path / "small", height=32, width=32)
    ds = load_dataset(DataConfig(source=str(root), test_fraction=0.25))
    assert ds.image_shape == (32, 32, 3)
    old = f"embeddings-{embeddings.cache_key(ds, size=SIZE)}.npz"     # the file name before this change
    assert embeddings.embedding_file(ds, size=SIZE).name == old
    emb = embeddings.embed(ds, size=SIZE)
    path = embeddings.embedding_file(ds, size=SIZE)
    assert path.name == old and path.is_file() and counted["images"] == 12
    upsampled = np.asarray(model.predict_on_batch(np.concatenate([ds.x_train, ds.x_test]).astype("float32")))
    np.testing.assert_allclose(emb, upsampled, rtol=1e-4, atol=1e-4)
    assert embeddings.cache_meta(path)["pixels"] == "decoded images (32 px) scaled to 160 px"


def test_a_moved_source_falls_back_to_the_decoded_images_and_says_so(tmp_path, counted, model):
    root = photo_folder(tmp_path / "photos")
    ds = load_dataset(DataConfig(source=str(root), test_fraction=0.25))
    os.replace(root, tmp_path / "moved")
    notes = []
    emb = embeddings.embed(ds, size=SIZE, notice=notes.append)
    upsampled = np.asarray(model.predict_on_batch(np.concatenate([ds.x_train, ds.x_test]).astype("float32")))
    np.testing.assert_allclose(emb, upsampled, rtol=1e-4, atol=1e-4)
    assert len(notes) == 1 and str(root) in notes[0] and "no longer there" in notes[0]
    assert "decoded images (64 px) scaled to 160 px" in notes[0]
    path = embeddings.embedding_file(ds, size=SIZE)
    assert path.name == f"embeddings-{embeddings.cache_key(ds, size=SIZE)}.npz"
    assert embeddings.cache_meta(path)["pixels"] == "decoded images (64 px) scaled to 160 px"


def test_a_photo_changed_since_the_load_falls_back_once_and_is_remembered(tmp_path, counted, model, monkeypatch):
    root = photo_folder(tmp_path / "photos")
    ds = load_dataset(DataConfig(source=str(root), test_fraction=0.25))
    changed = root / "b" / "03.png"
    Image.fromarray(np.full((96, 128, 3), 200, np.uint8)).save(changed)      # another photo under the same name
    notes = []
    emb = embeddings.embed(ds, size=SIZE, notice=notes.append)
    upsampled = np.asarray(model.predict_on_batch(np.concatenate([ds.x_train, ds.x_test]).astype("float32")))
    np.testing.assert_allclose(emb, upsampled, rtol=1e-4, atol=1e-4)
    assert len(notes) == 1 and "b/03.png" in notes[0] and "changed since they were loaded" in notes[0]
    assert not list((embeddings.embedding_file(ds, size=SIZE).parent).glob("*.partial"))
    # the next call knows without decoding any file again, and says it again (once)
    monkeypatch.setattr(embeddings, "feature_model", lambda *a, **k: pytest.fail("the cache was not reused"))
    monkeypatch.setattr(embeddings, "_from_files", lambda *a, **k: pytest.fail("the files were decoded again"))
    again = []
    np.testing.assert_array_equal(embeddings.embed(ds, size=SIZE, notice=again.append), emb)
    assert again == notes


def test_a_run_on_large_photos_says_which_pixels_its_features_saw(tmp_path, counted):
    from noisycore import runs, train
    from noisycore.config import NoiseConfig, TrainConfig

    root = photo_folder(tmp_path / "photos", per_class=12)
    config = TrainConfig.from_preset("pretrained", data=DataConfig(source=str(root), test_fraction=0.25),
                                     noise=NoiseConfig(model="none", rate=0.0), epochs=2, baseline=False, keep="last")
    summary = train.run(config, tmp_path / "run")
    assert summary["state"] == "finished" and counted["images"] == 24
    status = runs.read_status(tmp_path / "run")
    assert status["features"] == "original photos at 160 px"
    assert "original photos" not in (status.get("note") or "")      # no fallback to tell
    # the photos move after training: the run's later predictions (folds, Review) fall back to the decoded
    # images, and the run's pages say so (status.json's note), not only the log
    from noisycore import detect

    dataset = load_dataset(runs.run_data_config(tmp_path / "run"))    # loaded (decoded, cached) before the move
    os.replace(root, tmp_path / "moved")
    x = detect.model_inputs(tmp_path / "run", dataset)
    assert x.shape == (24, 1280)
    note = runs.read_status(tmp_path / "run").get("note") or ""
    assert "no longer there" in note and "decoded images (64 px) scaled to 160 px" in note
