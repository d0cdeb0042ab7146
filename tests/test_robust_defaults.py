"""Issue 28: defaults that hold on sets they were not tuned on (grayscale, tiny, class-sorted), and the
linear baseline that says when a network learned nothing."""
import json

import keras
import numpy as np
import pytest
from PIL import Image

from noisycore import baseline
from noisycore.config import DataConfig, NoiseConfig, TrainConfig
from noisycore.models import WHITEN_NULL_VARIANCE, build_model, init_from_data, whitening_weights


def _patches(x, k=2):
    n, h, w, c = x.shape
    return np.stack([x[:, i:h - k + 1 + i, j:w - k + 1 + j, :] for i in range(k) for j in range(k)],
                    axis=3).reshape(-1, k * k * c)


def _gray_blobs(n, *, size=8, seed=0, classes=4):
    """Grayscale uint8 images (three equal channels) on a flat black background: class c has a bright
    square in quadrant c (the shape of an 8-pixel digit scan: most 2x2 patches are constant)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = np.zeros((n, size, size), np.uint8)
    half = size // 2
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, r * half:(r + 1) * half, col * half:(col + 1) * half] = rng.integers(120, 256)
    return np.repeat(x[..., None], 3, axis=-1), y


def test_whitening_drops_the_null_directions_of_grayscale_images():
    x, _ = _gray_blobs(200, size=16)
    kern, bias = whitening_weights(x)
    filters = kern.reshape(12, 24)[:, :12]
    p = _patches(x.astype(np.float64) / 255)
    lam = np.linalg.eigvalsh(np.cov(p, rowvar=False, bias=True))
    null = int((lam < WHITEN_NULL_VARIANCE).sum())
    assert null >= 8                                    # three equal channels: 8 of 12 directions carry nothing
    norms = np.linalg.norm(filters, axis=0)
    assert (norms == 0).sum() == null                   # those filters are off, not amplified ~125x
    out = p @ kern.reshape(12, 24) + bias
    live = out[:, :12][:, norms > 0]
    np.testing.assert_allclose(np.cov(live, rowvar=False, bias=True), np.eye(live.shape[1]), atol=0.05)


def test_whitening_subset_is_drawn_from_every_class_of_a_class_sorted_set():
    # class 0: variance only in the red channel, class 1: only in green; sorted by class, as folders load
    rng = np.random.default_rng(0)
    x = np.zeros((400, 8, 8, 3), np.uint8)
    x[:200, ..., 0] = rng.integers(0, 256, (200, 8, 8))
    x[200:, ..., 1] = rng.integers(0, 256, (200, 8, 8))
    kern, bias = whitening_weights(x, max_images=200)   # the first 200 would all be class 0
    out = _patches(x.astype(np.float64) / 255) @ kern.reshape(12, 24)[:, :12] + bias[:12]
    cov = np.cov(out, rowvar=False, bias=True)
    # red and green: 4 + 4 live directions of ~unit variance (from class 0 alone: green is dropped as null)
    assert np.trace(cov) == pytest.approx(8, rel=0.15)
    assert (np.linalg.norm(kern.reshape(12, 24)[:, :12], axis=0) > 0).sum() == 8


def test_fast_cnn_whitens_in_float32_under_mixed_precision():
    policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model("fast_cnn", input_shape=(16, 16, 3), num_classes=4, seed=0)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert model.get_layer("whiten").compute_dtype == "float32"


def _scan_folder(root, *, n_per_class=40, size=8, classes=4):
    x, y = _gray_blobs(n_per_class * classes, size=size, classes=classes)
    for i, (img, c) in enumerate(zip(x, y)):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0], "L").save(root / f"c{c}" / f"{i:03d}.png")
    return root


def test_tiny_grayscale_scans_train_without_options_in_bfloat16(tmp_path):
    """8-pixel grayscale scans: scaled up to fast_cnn's 16 px (the run's config says so), trained in
    bfloat16 they learn (before: refused at 8 px, and at chance in bfloat16 when scaled up by hand)."""
    from noisycore import train

    folder = _scan_folder(tmp_path / "scans")
    config = TrainConfig(data=DataConfig(source=str(folder)), noise=NoiseConfig(model="none"), model="fast_cnn",
                         epochs=6, batch_size=32, learning_rate=0.05, lr_schedule="warmup_linear",
                         optimizer="nesterov", loss="gce", weight_decay=5e-4, ema_momentum=0.0, tta="none",
                         mixed_precision="bfloat16")
    summary = train.run(config, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["image_size"] == 16
    assert "scaled up to 16x16" in json.loads((tmp_path / "run" / "status.json").read_text())["note"]
    assert summary["precision"] == "bfloat16"
    assert summary["test_accuracy"] >= 0.9, summary
    record = baseline.read(tmp_path / "run")
    assert record["held_out_accuracy"] is not None and record["cv_n"] == 160   # truth unknown: every image
    # own images: the pretrained features too, out of sample over every image, in the review order
    from noisycore import detect

    info = detect.read_run_labels(tmp_path / "run")
    emb = baseline.cv_probs(tmp_path / "run", info.ids, kind="embeddings")
    assert emb.shape == (160, 4) and np.allclose(emb.sum(1), 1)
    assert record["embeddings"]["cv_accuracy"] == pytest.approx((emb.argmax(1) == info.labels).mean())
    source, found = detect.best_source(tmp_path / "run")
    assert set(found) >= {"baseline", "embeddings", "in_sample"} and source in found
    assert "ensemble" not in found                       # no cross-validation yet: nothing to average
    # a cross-validation that agrees with every given label: clearly the best, and the mean of two opinions
    cv = np.full((160, 4), 0.1)
    cv[np.arange(160), info.labels] = 0.7
    np.save(tmp_path / "run" / detect.CV_PROBS, cv.astype(np.float32))
    ens = detect.pred_probs(tmp_path / "run", source="ensemble", ids=info.ids)
    np.testing.assert_allclose(ens, (cv + emb) / 2, atol=1e-6)
    source, found = detect.best_source(tmp_path / "run")
    assert found["cross_validation"]["accuracy"] == 1.0
    assert source == "cross_validation" or found[source]["accuracy"] > 1.0 - 1e-9
    assert baseline.run_verdict(summary, record).kind == "better" or \
        summary["test_accuracy"] >= record["held_out_accuracy"]


def test_pixel_features_block_average_and_grayscale_collapse():
    x = np.zeros((1, 32, 32, 3), np.uint8)
    x[0, :2, :2] = 255                                   # one 2x2 block of the 32 px image = one 16 px pixel
    f = baseline.pixel_features(x)
    assert f.shape == (1, 16 * 16)                       # grayscale: one channel
    assert f[0, 0] == pytest.approx(1.0) and f[0, 1:].sum() == 0
    colour = x.copy()
    colour[0, 0, 0, 0] = 0                               # the channels differ: colour features, 16*16*3
    fc = baseline.pixel_features(colour)
    assert fc.shape == (1, 768) and fc[0, 0] == pytest.approx(0.75) and fc[0, 1] == pytest.approx(1.0)
    small = baseline.pixel_features(np.zeros((2, 8, 8, 3), np.uint8))
    assert small.shape == (2, 64)                        # smaller than 16 px: kept as it is


def test_out_of_sample_probs_find_planted_labels_on_separable_data():
    x, y = _gray_blobs(200, size=8)
    feats = baseline.pixel_features(x)
    given = y.copy()
    planted = np.arange(0, 200, 20)
    given[planted] = (y[planted] + 1) % 4
    probs = baseline.out_of_sample_probs(feats, given, folds=4, seed=0, num_classes=4)
    assert probs.shape == (200, 4) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y).mean() >= 0.95                 # it learned the true classes
    worst = np.argsort(probs[np.arange(200), given])[:10]        # self-confidence: lowest p[given]
    assert set(worst) == set(planted)


def test_baseline_fits_with_one_blas_thread(monkeypatch):
    """Issue 33, finding 13: OpenBLAS' spinning threads made the Quick demo's baseline 31 s instead of 4.5 s
    on a busy 2-core machine; each fit runs with one BLAS thread, and the process's setting comes back."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info

    blas = lambda: [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]  # noqa: E731
    seen, fit = [], LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, *a, **k: (seen.append(blas()), fit(self, *a, **k))[1])
    before = blas()
    x, y = _gray_blobs(80, size=8)
    probs = baseline.out_of_sample_probs(baseline.pixel_features(x), y, folds=4, seed=0, num_classes=4)
    assert (probs.argmax(1) == y).mean() >= 0.95
    assert len(seen) == 4 and all(threads and set(threads) == {1} for threads in seen)
    assert blas() == before


def test_judge_names_a_model_that_learned_nothing_and_one_not_better():
    # n = 400, network 0.10 with chance 0.10: within 2 standard errors (0.015) -> learned nothing
    v = baseline.judge(0.10, 0.91, n=400, chance=0.10)
    assert v.kind == "learned_nothing" and v.warn and "learned nothing" in v.text and "91.0%" in v.text
    # se at 0.60 with n=400 is 0.0245: baseline 0.58 is within 2 se below -> not clearly better
    v = baseline.judge(0.60, 0.58, n=400, chance=0.25)
    assert v.kind == "not_better" and v.warn and "not clearly better" in v.text
    v = baseline.judge(0.60, 0.50, n=400, chance=0.25)           # 0.10 > 2 * 0.0245
    assert v.kind == "better" and not v.warn
    assert baseline.judge(None, 0.5, n=0, chance=None).kind == "unknown"
    assert baseline.chance_rate([0, 0, 0, 1]) == 0.75


def test_auto_mirroring_follows_the_baselines_mirror_check():
    config = TrainConfig(augment="auto", tta="auto")
    off, note = baseline.resolve_mirror(config, {"mirror_retained": 0.2, "mirror_keeps_labels": False})
    assert (off.augment, off.tta) == ("translate", "none") and "changes the labels" in note and "20%" in note
    on, note = baseline.resolve_mirror(config, {"mirror_retained": 1.02, "mirror_keeps_labels": True})
    assert (on.augment, on.tta) == ("flip_translate", "flip") and "keeps the labels" in note
    assert baseline.resolve_mirror(config, None)[0].augment == "flip_translate"     # no check (a fold): as before
    fixed = TrainConfig(augment="flip_translate", tta="flip")                       # a choice the user made stays
    assert baseline.resolve_mirror(fixed, {"mirror_keeps_labels": False}) == (fixed, None)


def test_mirror_check_tells_quadrants_from_symmetric_classes():
    x, y = _gray_blobs(200, size=8)                         # class = quadrant: a mirror swaps classes 0<->1, 2<->3
    feats, mirrored = baseline.pixel_features(x), baseline.pixel_features(x[:, :, ::-1])
    probs, flipped = baseline.out_of_sample_probs(feats, y, folds=4, seed=0, num_classes=4, mirrored=mirrored)
    assert baseline.mirror_retained(probs, flipped, y) < baseline.MIRROR_KEEP
    assert not baseline.mirror_keeps_labels(probs, flipped, y)
    # a weak model's small drop is noise, not a mirror that changes labels: 100 images, accuracy 0.30 -> 0.24
    # (chance 0.25 of 4 balanced classes: retained (0.24 - 0.25) / (0.30 - 0.25) < 0; drop 0.06 < 2 se = 0.13)
    y4 = np.arange(100) % 4
    right, mirrored_right = np.eye(4)[y4], np.eye(4)[(y4 + 1) % 4]
    weak = np.where(np.arange(100)[:, None] < 30, right, mirrored_right)
    weak_m = np.where(np.arange(100)[:, None] < 24, right, mirrored_right)
    assert baseline.mirror_retained(weak, weak_m, y4) < 0 and baseline.mirror_keeps_labels(weak, weak_m, y4)
    top = np.zeros((200, 8, 8, 3), np.uint8)                # class = top half or bottom half bright: mirror-proof
    ys = np.arange(200) % 2
    top[ys == 0, :4] = 200
    top[ys == 1, 4:] = 200
    top = np.clip(top.astype(int) + np.random.default_rng(0).integers(0, 40, top.shape), 0, 255).astype(np.uint8)
    f, m = baseline.pixel_features(top), baseline.pixel_features(top[:, :, ::-1])
    probs, flipped = baseline.out_of_sample_probs(f, ys, folds=4, seed=0, num_classes=2, mirrored=m)
    assert baseline.mirror_retained(probs, flipped, ys) >= baseline.MIRROR_KEEP
    assert baseline.mirror_keeps_labels(probs, flipped, ys)


def test_estimate_note_admits_a_weak_model_on_own_labels_only():
    from noisycore import detect

    strong = detect.estimate_note(30, 900, 0.92)
    assert not strong["weak"] and strong["suggested"] == 30 and "92.0%" in strong["text"]
    weak = detect.estimate_note(132, 600, 0.58)        # issue 28's 600 photos: 58% and N = 132 for 24 planted
    assert weak["weak"] and weak["suggested"] == 30 and "too weak" in weak["text"]   # 5% of 600
    assert detect.estimate_note(10, 100, 0.5)["suggested"] == 10                     # never more than N
    assert detect.estimate_note(40, 100, 0.5)["suggested"] == 20                     # at least 20
    demo = detect.estimate_note(3200, 8000, 0.58, truth_known=True)                  # 40% injected noise: truth known
    assert not demo["weak"] and demo["suggested"] == 3200
