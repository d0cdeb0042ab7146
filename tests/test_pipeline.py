"""tf.data pipeline: dtypes and ranges, seeded shuffling, indices, augmentation, cutout, mixup."""
import numpy as np
import pytest
import keras
import tensorflow as tf

from noisycore.errors import DataError, UserError
from noisycore.pipeline import (AUGMENT_HELP, AUGMENTATIONS, PerImageRandomCrop, ReflectPad2D, augmentation_layers,
                                endless, make_dataset)

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (70, 32, 32, 3), dtype=np.uint8)
Y = RNG.integers(0, 4, 70)


def batches(ds):
    return [tuple(t.numpy() for t in b) if isinstance(b, tuple) else b.numpy() for b in ds]


def test_plain_batches_are_float_one_hot_in_order():
    out = batches(make_dataset(X, Y, num_classes=4, batch_size=32))
    assert [len(b[0]) for b in out] == [32, 32, 6]
    x = np.concatenate([b[0] for b in out])
    y = np.concatenate([b[1] for b in out])
    assert x.dtype == np.float32 and x.shape == (70, 32, 32, 3) and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x, X / 255.0, atol=1e-6)
    assert y.dtype == np.float32 and y.shape == (70, 4)
    np.testing.assert_array_equal(y, np.eye(4)[Y])
    assert [len(b[0]) for b in batches(make_dataset(X, Y, num_classes=4, batch_size=32, drop_remainder=True))] == [32, 32]


def test_without_labels_yields_images_and_optional_index():
    out = batches(make_dataset(X, num_classes=4, batch_size=50))
    assert out[0].shape == (50, 32, 32, 3)
    x, index = batches(make_dataset(X, num_classes=4, batch_size=50, with_index=True))[1]
    np.testing.assert_array_equal(index, np.arange(50, 70))


def test_shuffle_is_seeded_and_with_index_points_at_the_right_rows():
    def order(seed):
        ds = make_dataset(X, Y, num_classes=4, batch_size=16, shuffle=True, seed=seed, with_index=True)
        epochs = []
        for _ in range(2):
            rows = batches(ds)
            for x, y, index in rows:
                assert index.dtype == np.int64
                np.testing.assert_allclose(x, X[index] / 255.0, atol=1e-6)
                np.testing.assert_array_equal(y, np.eye(4)[Y[index]])
            epochs.append(np.concatenate([r[2] for r in rows]))
        return epochs

    first, again, other = order(1), order(1), order(2)
    assert sorted(first[0]) == list(range(70))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])   # epoch 2 repeats too
    assert not np.array_equal(first[0], first[1])         # but differs from epoch 1
    assert not np.array_equal(first[0], other[0])


def test_endless_passes_are_the_epochs_the_finite_dataset_gives():
    def make():
        return make_dataset(X, Y, num_classes=4, batch_size=16, shuffle=True, seed=3, augment="flip_translate",
                            with_index=True)

    looped, steps = endless(make())
    assert steps == 5                                         # ceil(70 / 16): the last batch of a pass has 6
    got = [tuple(t.numpy() for t in b) for b in looped.take(3 * steps)]
    assert [len(b[2]) for b in got] == [16, 16, 16, 16, 6] * 3
    passes = [np.concatenate([b[2] for b in got[i * steps:(i + 1) * steps]]) for i in range(3)]
    for p in passes:
        assert sorted(p) == list(range(70))                   # every image once per epoch
    assert not np.array_equal(passes[0], passes[1])           # reshuffled each pass
    finite = make()
    per_epoch = [batches(finite) for _ in range(3)]           # what fit() saw with a new iterator per epoch
    for e in range(3):                                        # the same order and the same augmented pixels
        np.testing.assert_array_equal(passes[e], np.concatenate([b[2] for b in per_epoch[e]]))
        np.testing.assert_array_equal(np.concatenate([b[0] for b in got[e * steps:(e + 1) * steps]]),
                                      np.concatenate([b[0] for b in per_epoch[e]]))


def test_endless_refuses_passes_of_unknown_length():
    keep = tf.Variable(np.ones(len(X), bool))
    with pytest.raises(UserError, match="known, non-zero number of batches"):
        endless(make_dataset(X, Y, num_classes=4, batch_size=16, keep=keep))


@pytest.mark.parametrize("name", ["blog", "strong"])
def test_augmentation_changes_pixels_keeps_shape_and_range_and_repeats_with_seed(name):
    ds = make_dataset(X, Y, num_classes=4, batch_size=35, augment=name, seed=3)
    epoch1, epoch2 = np.concatenate([b[0] for b in batches(ds)]), np.concatenate([b[0] for b in batches(ds)])
    assert epoch1.shape == X.shape and epoch1.dtype == np.float32
    assert epoch1.min() >= 0.0 and epoch1.max() <= 1.0
    changed = np.abs(epoch1 - X / 255.0).mean(axis=(1, 2, 3)) > 1e-3
    assert changed.mean() > 0.5            # most images moved (a flip or crop may leave a few)
    assert not np.allclose(epoch1, epoch2)  # a new draw each epoch
    rerun = np.concatenate([b[0] for b in batches(make_dataset(X, Y, num_classes=4, batch_size=35,
                                                               augment=name, seed=3))])
    np.testing.assert_allclose(rerun, epoch1, atol=1e-6)


def test_strong_crop_shifts_by_whole_pixels_with_reflect_padding():
    """A flip + pad-4 crop of an image is a shifted (maybe mirrored) copy: an interior window matches."""
    x = augmentation_layers("strong", seed=0)(tf.constant(X[:8] / 255.0, tf.float32), training=True).numpy()
    for original, out in zip(X[:8] / 255.0, x):
        found = any(np.allclose(out[8:24, 8:24], img[8 + dy:24 + dy, 8 + dx:24 + dx], atol=1e-6)
                    for img in (original, original[:, ::-1]) for dy in range(-4, 5) for dx in range(-4, 5))
        assert found


def test_translation_shifts_each_image_of_a_batch_on_its_own():
    """keras.layers.RandomCrop shares one offset per batch; the pipeline's crop draws one per image:
    a dot at (16, 16) lands at 16 + dy, 16 + dx with every shift in -2..2 present in one batch of 400."""
    dots = np.zeros((400, 32, 32, 1), np.float32)
    dots[:, 16, 16, 0] = 1.0
    crop = keras.Sequential([ReflectPad2D(2), PerImageRandomCrop(32, seed=1)])
    out = crop(tf.constant(dots), training=True).numpy()[..., 0]
    where = [tuple(np.argwhere(im == 1.0)[0]) for im in out]
    assert all(len(np.argwhere(im == 1.0)) == 1 for im in out)        # moved, not duplicated or lost
    assert {r for r, _ in where} == set(range(14, 19)) and {c for _, c in where} == set(range(14, 19))
    assert len(set(where)) == 25                                      # every (dy, dx) pair
    again = keras.Sequential([ReflectPad2D(2), PerImageRandomCrop(32, seed=1)])(tf.constant(dots), training=True)
    np.testing.assert_array_equal(again.numpy()[..., 0], out)       # seeded: the same shifts again
    np.testing.assert_array_equal(PerImageRandomCrop(32)(tf.constant(dots), training=False).numpy(), dots)


def test_keep_leaves_images_out_from_the_next_pass_on():
    keep = tf.Variable(np.ones(len(X), bool))
    ds = make_dataset(X, Y, num_classes=4, batch_size=16, shuffle=True, seed=2, with_index=True, keep=keep)
    seen = lambda: np.concatenate([b[2] for b in batches(ds)])   # noqa: E731
    assert sorted(seen()) == list(range(len(X)))
    out = np.arange(len(X)) % 3 == 0
    keep.assign(~out)                                             # between epochs, as label correction does
    second = seen()
    assert sorted(second) == sorted(np.flatnonzero(~out)) and len(second) == (~out).sum()
    x, y, index = batches(ds)[0]
    np.testing.assert_allclose(x, X[index] / 255.0, atol=1e-6)    # images and labels still match their index
    np.testing.assert_array_equal(y.argmax(axis=1), Y[index])
    with pytest.raises(UserError, match=r"keep must be a boolean tf.Variable of shape \(70,\)"):
        make_dataset(X, Y, num_classes=4, keep=np.ones(len(X), bool))


def test_cutout_blanks_one_half_side_square():
    x = np.concatenate([b[0] for b in batches(make_dataset(X, Y, num_classes=4, batch_size=35, cutout=True))])
    gray = np.all(x == 0.5, axis=-1)  # 0.5 is no k/255 value, so only erased pixels are exactly 0.5
    assert np.all(gray.sum(axis=(1, 2)) == 16 * 16)
    small = make_dataset(X[:, :16, :16], Y, num_classes=4, batch_size=70, cutout=True)
    assert np.all(np.all(batches(small)[0][0] == 0.5, axis=-1).sum(axis=(1, 2)) == 8 * 8)


def test_mixup_targets_still_sum_to_one_and_images_are_mixtures():
    """Every row is lam * own + (1 - lam) * partner, for images and targets alike, one lam per batch."""
    ds = make_dataset(X, Y, num_classes=4, batch_size=35, mixup_alpha=0.4, seed=5, with_index=True)
    lams = []
    for x, y, index in batches(ds):
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
        own = X[index] / 255.0
        lam = y[np.arange(len(y)), Y[index]].min()  # rows whose partner has another label show lam
        lams.append(lam)
        for r in range(len(x)):
            mixes = [np.allclose(x[r], lam * own[r] + (1 - lam) * own[j], atol=1e-5)
                     and np.allclose(y[r], lam * np.eye(4)[Y[index[r]]] + (1 - lam) * np.eye(4)[Y[index[j]]],
                                     atol=1e-5) for j in range(len(x))]
            assert any(mixes), f"row {r} is not a mixture with lam={lam:.3f}"
    assert 0.0 < min(lams) < 1.0 and len(set(np.round(lams, 6))) == len(lams)  # lambdas vary by batch
    again = batches(make_dataset(X, Y, num_classes=4, batch_size=35, mixup_alpha=0.4, seed=5))
    first = batches(make_dataset(X, Y, num_classes=4, batch_size=35, mixup_alpha=0.4, seed=5))
    np.testing.assert_allclose(first[0][0], again[0][0], atol=1e-6)


def test_augmented_and_mixed_batches_stay_float32_under_mixed_precision():
    """The fast preset trains in bfloat16 (Keras' global policy), where the augmentation layers compute in
    bfloat16: mixup then failed with 'Input y of Mul has type bfloat16 that does not match float32'."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        for aug in ("flip_translate", "strong", "blog"):
            x, y, index = batches(make_dataset(X, Y, num_classes=4, batch_size=35, augment=aug, mixup_alpha=0.4,
                                               seed=3, with_index=True))[0]
            assert x.dtype == np.float32 and y.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
            np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
            lam = y[np.arange(len(y)), Y[index]].min()
            assert 0.0 < lam < 1.0     # the targets are mixtures of two one-hot rows
            plain = batches(make_dataset(X, Y, num_classes=4, batch_size=35, augment=aug, seed=3))[0][0]
            assert plain.dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy(before)


def test_soft_label_probs_pass_through():
    probs = RNG.dirichlet(np.ones(4), size=70).astype(np.float32)
    x, y = batches(make_dataset(X, num_classes=4, batch_size=70, label_probs=probs))[0]
    np.testing.assert_allclose(y, probs, atol=1e-6)


def test_presets_and_bad_inputs_are_explained():
    assert set(AUGMENTATIONS) == set(AUGMENT_HELP) == {"none", "blog", "strong", "flip_translate", "translate", "auto"}
    flips = {name: any(isinstance(layer, keras.layers.RandomFlip) for layer in augmentation_layers(name).layers)
             for name in ("flip_translate", "translate", "auto")}
    assert flips == {"flip_translate": True, "translate": False, "auto": True}   # auto unresolved = the mirror version
    with pytest.raises(DataError, match="uint8"):
        make_dataset(X / 255.0, Y, num_classes=4)
    with pytest.raises(DataError, match=r"0\.\.3"):
        make_dataset(X, Y + 1, num_classes=4)
    with pytest.raises(UserError, match="unknown augmentation 'heavy'.*blog"):
        make_dataset(X, Y, num_classes=4, augment="heavy")
    with pytest.raises(UserError, match="batch_size=0"):
        make_dataset(X, Y, num_classes=4, batch_size=0)
    with pytest.raises(UserError, match="mixup needs labels"):
        make_dataset(X, num_classes=4, mixup_alpha=0.2)
    with pytest.raises(UserError, match="not both"):
        make_dataset(X, Y, num_classes=4, label_probs=np.full((70, 4), 0.25))


def test_blog_augmentation_draws_a_transform_per_image():
    same = np.repeat(X[:1], 16, axis=0)
    x = batches(make_dataset(same, num_classes=4, batch_size=16, augment="blog", seed=0))[0]
    distinct = {tuple(np.round(img[::8, ::8, 0].ravel(), 3)) for img in x}
    assert len(distinct) >= 12
