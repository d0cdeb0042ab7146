"""tf.data input pipeline: uint8 images in memory -> shuffled, augmented float32 batches.

Images stay uint8 in memory; each batch is gathered by index, converted to float32 in [0, 1] and
augmented inside the graph with Keras preprocessing layers (not ImageDataGenerator, whose
per-image Python loop starves the model), then prefetched while the model trains.

Presets (``AUGMENTATIONS``): ``none``; ``blog`` (the blog post's rotation 15 degrees, shifts 10%,
horizontal flip); ``strong`` (horizontal flip + a random crop of each image after 4-pixel reflect
padding, the standard CIFAR recipe); ``flip_translate`` (the same with 2-pixel padding: airbench's flip +
translate 2). ``cutout`` adds one erased square of half the image side (16x16 at 32 px,
DeVries & Taylor 2017). ``mixup_alpha`` > 0 mixes each batch with a shuffled copy of itself
(Zhang et al. 2018).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from noisycore import catalog  # noqa: E402
from noisycore.errors import DataError, UserError  # noqa: E402

AUGMENT_HELP = dict(catalog.AUGMENT_HELP)  # help texts live in the TensorFlow-free catalog
AUGMENTATIONS = tuple(AUGMENT_HELP)
CUTOUT_HELP, MIXUP_HELP = catalog.CUTOUT_HELP, catalog.MIXUP_HELP


class ReflectPad2D(keras.layers.Layer):
    """Pad height and width by ``pad`` pixels on every side, mirroring the border (reflect)."""

    def __init__(self, pad, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, x):
        p = self.pad
        return keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.pad  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


class PerImageRandomCrop(keras.layers.Layer):
    """Crop a random ``size`` x ``size`` window from each image of a batch, each at its own offset.

    keras.layers.RandomCrop draws one offset per call, so every image of a batch would share the
    same translation; the standard CIFAR crop (and airbench's translate) shifts each image on its own.
    Offsets are uniform over 0..(H - size) and 0..(W - size), drawn from a seeded generator.
    """

    def __init__(self, size, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.size, self.seed = int(size), seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=True):
        if not training:
            return x
        shape = tf.shape(x)
        spare = tf.cast(tf.stack([shape[1], shape[2]]) - self.size + 1, tf.float32)
        offsets = tf.cast(keras.random.uniform((shape[0], 2), seed=self.generator) * spare, tf.int32)
        window = tf.range(self.size)
        x = tf.gather(x, offsets[:, :1] + window[None], axis=1, batch_dims=1)     # rows of each image
        return tf.gather(x, offsets[:, 1:] + window[None], axis=2, batch_dims=1)  # then its columns

    def compute_output_shape(self, shape):
        return (shape[0], self.size, self.size, shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "seed": self.seed}


def augmentation_layers(name, *, cutout=False, seed=0, image_size=32) -> keras.Sequential:
    """The Keras preprocessing layers of preset ``name`` (apply to float [0, 1] batches, training=True).

    ``image_size`` (pixels per side) scales the crop padding (4 px at 32) and the cutout square
    (half the side). Layer seeds derive from ``seed``.
    """
    if name not in AUGMENT_HELP:
        raise UserError(f"unknown augmentation {name!r}; choose one of: {', '.join(AUGMENTATIONS)}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise UserError(f"image_size={image_size!r} must be an integer >= 8 pixels")
    L = keras.layers
    layers = []
    if name == "blog":  # ImageDataGenerator(rotation_range=15, width/height_shift_range=0.1, horizontal_flip)
        layers = [L.RandomRotation(15 / 360, fill_mode="nearest", seed=seed),
                  L.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
                  L.RandomFlip("horizontal", seed=seed + 2)]
    elif name in ("strong", "flip_translate", "translate", "auto"):   # auto: a run resolves it first (train.py)
        pad = max(1, round((4 if name == "strong" else 2) * image_size / 32))
        layers = ([] if name == "translate" else [L.RandomFlip("horizontal", seed=seed)]) + \
            [ReflectPad2D(pad), PerImageRandomCrop(image_size, seed=seed + 1)]
    if cutout:
        # scale = erased area fraction: (1/2)^2 of the image, a square of half the side; factor 1 = always.
        layers.append(L.RandomErasing(factor=(1.0, 1.0), scale=(0.25, 0.25), fill_value=0.5,
                                      value_range=(0.0, 1.0), seed=seed + 3))
    return keras.Sequential(layers, name=f"augment_{name}{'_cutout' if cutout else ''}")


def is_embeddings(x) -> bool:
    """Whether ``x`` holds pretrained embeddings (float32 (N, D)) rather than images (uint8 (N, H, W, C))."""
    return isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2


def _check_images(images) -> np.ndarray:
    if is_embeddings(images):   # a model on pretrained embeddings (catalog.EMBEDDING_MODELS): fed as they are
        if images.shape[0] == 0:
            raise DataError("no embeddings to feed: the array has 0 rows")
        return images
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"images must be a uint8 numpy array (N, H, W, C) with values 0..255, got {got}; "
                        "keep images uint8 in memory and let the pipeline convert each batch")
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] not in (1, 3):
        raise DataError(f"images have shape {images.shape}; expected (N, H, W, 3) or (N, H, W, 1) with N >= 1")
    return images


def _check_targets(n, labels, label_probs, num_classes):
    """Return (int64 labels or None, float32 soft targets or None) after validation."""
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise UserError(f"num_classes={num_classes!r} must be an integer >= 2")
    if labels is not None and label_probs is not None:
        raise UserError("pass either labels or label_probs (soft targets), not both")
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"labels must be integers of shape ({n},), got {y.dtype} {y.shape}")
        if y.min() < 0 or y.max() >= num_classes:
            raise DataError(f"labels must lie in 0..{num_classes - 1}; found {y.min()}..{y.max()}")
        return y.astype(np.int64), None
    if label_probs is not None:
        p = np.asarray(label_probs, dtype=np.float32)
        if p.shape != (n, num_classes):
            raise DataError(f"label_probs has shape {p.shape}; expected ({n}, {num_classes})")
        if not np.all(np.isfinite(p)) or p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
            raise DataError("label_probs must be non-negative with rows summing to 1")
        return None, p
    return None, None


def _check_options(batch_size, augment, mixup_alpha, seed):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise UserError(f"batch_size={batch_size!r} must be a positive integer (e.g. 128)")
    if augment not in AUGMENT_HELP:
        raise UserError(f"unknown augmentation {augment!r}; choose one of: {', '.join(AUGMENTATIONS)}")
    if isinstance(mixup_alpha, bool) or not isinstance(mixup_alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= mixup_alpha <= 10.0:
        raise UserError(f"mixup_alpha={mixup_alpha!r} must be a number in [0, 10] (0 = no mixup)")
    if not isinstance(seed, (int, np.integer)):
        raise UserError(f"seed={seed!r} must be an integer")


# The mapped functions have no tensor-dependent Python control flow: skip AutoGraph's conversion.
_plain = tf.autograph.experimental.do_not_convert


def _mixup(x, y, seeds, alpha):
    """x' = lam x + (1 - lam) x[perm], y' likewise; lam ~ Beta(alpha, alpha) per batch (stateless)."""
    gammas = tf.random.stateless_gamma([2], seed=seeds, alpha=alpha)
    lam = gammas[0] / (gammas[0] + gammas[1])
    perm = tf.argsort(tf.random.stateless_uniform(tf.shape(x)[:1], seed=seeds[::-1]))
    x = lam * x + (1.0 - lam) * tf.gather(x, perm)
    y = lam * y + (1.0 - lam) * tf.gather(y, perm)
    return x, y


def make_dataset(images_uint8, labels=None, *, num_classes, batch_size=128, augment="none", cutout=False,
                 shuffle=False, seed=0, mixup_alpha=0.0, label_probs=None, with_index=False,
                 drop_remainder=False, keep=None) -> tf.data.Dataset:
    """A tf.data pipeline of batches ``(x, y)`` or ``(x, y, index)`` from uint8 images (or float32 embeddings
    (N, D), fed as they are: no augmentation or cutout applies to them).

    x: float32 (B, H, W, C) in [0, 1]; y: float32 (B, K) one-hot of ``labels`` or rows of
    ``label_probs`` (soft targets); index: int64 (B,) positions in the input arrays. Without
    labels it yields x alone (or (x, index)). Shuffling (reshuffled every epoch), augmentation
    and mixup are all seeded by ``seed``: the same seed gives the same batches.
    ``keep``: a boolean ``tf.Variable`` of shape (N,); each pass yields only the images whose entry
    is True when the pass starts (set it between epochs to leave images out without rebuilding).
    """
    x_all = _check_images(images_uint8)
    n, height = x_all.shape[0], x_all.shape[1]
    features = is_embeddings(x_all)
    if features and (augment != "none" or cutout):
        raise UserError(f"augment={augment!r} / cutout={cutout} do not apply to embeddings (they are no images); "
                        "use augment='none' without cutout")
    y_int, y_soft = _check_targets(n, labels, label_probs, num_classes)
    _check_options(batch_size, augment, mixup_alpha, seed)
    has_y = y_int is not None or y_soft is not None
    if mixup_alpha > 0 and not has_y:
        raise UserError("mixup needs labels (it mixes the targets too)")

    images = tf.constant(x_all)  # uint8; the float32 copy is made one batch at a time
    targets = tf.constant(y_soft) if y_soft is not None else (tf.constant(y_int) if has_y else None)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=int(seed), reshuffle_each_iteration=True)
    if keep is not None:
        if not isinstance(keep, tf.Variable) or keep.dtype != tf.bool or tuple(keep.shape) != (n,):
            raise UserError(f"keep must be a boolean tf.Variable of shape ({n},)")
        ds = ds.filter(_plain(lambda i: tf.gather(keep, i)))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    @_plain
    def load(index):
        x = tf.gather(images, index) if features else tf.cast(tf.gather(images, index), tf.float32) / 255.0
        if not has_y:
            return x, index
        y = tf.gather(targets, index)
        y = y if y_soft is not None else tf.one_hot(y, num_classes, dtype=tf.float32)
        return x, y, index

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if augment != "none" or cutout:
        layers = augmentation_layers(augment, cutout=cutout, seed=int(seed), image_size=int(height))

        @_plain
        def augment_batch(x, *rest):
            # Keras' layers compute in the global policy's dtype (bfloat16 under mixed precision): the
            # batches stay float32 as documented, and mixup's float32 mixing weight can multiply them.
            return (tf.clip_by_value(tf.cast(layers(x, training=True), tf.float32), 0.0, 1.0), *rest)

        # One call at a time: the layers' random state advances in order, so a seed repeats exactly.
        ds = ds.map(augment_batch, num_parallel_calls=None)
    if mixup_alpha > 0:
        seeds = tf.data.Dataset.random(seed=int(seed), rerandomize_each_iteration=True).batch(2)
        mix = _plain(lambda batch, s: (*_mixup(batch[0], batch[1], s, float(mixup_alpha)), batch[2]))
        ds = tf.data.Dataset.zip(ds, seeds).map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    if not with_index:
        ds = ds.map(_plain(lambda *batch: batch[:-1] if has_y else batch[0]))
    return ds.prefetch(tf.data.AUTOTUNE)


def endless(dataset: tf.data.Dataset) -> tuple:
    """(the batches of ``dataset`` repeated without end, batches per pass) for ``fit(...,
    steps_per_epoch=...)``: one iterator then serves every epoch, and epoch e is exactly pass e
    (each pass reshuffled and augmented anew, as before).

    Why: Keras builds a new iterator over a finite dataset for every epoch and destroys the old one,
    which still has batches prefetched; with TensorFlow 2.21 on a 2-core CPU that destruction often
    waited ~18 s with both cores idle (a 22 s epoch took 41 s in a third to half of the epochs;
    benchmarks/README.md, "Idle stalls between epochs"). Needs passes of a known, fixed length
    (make_dataset's ``keep`` filter makes them shrink: not for those).
    """
    steps = int(dataset.cardinality())
    if steps <= 0:   # unknown (-2, e.g. a filter), infinite (-1) or empty
        raise UserError("endless() needs a dataset whose passes have a known, non-zero number of batches "
                        f"(cardinality {steps}); iterate it epoch by epoch instead")
    return dataset.repeat(), steps


def predict_probs(model, images, *, tta="none", batch_size=512) -> np.ndarray:
    """Predicted probabilities (N, K) float32 of ``model`` for uint8 images (N, H, W, C), or for a
    tf.data dataset of image batches (float [0, 1]).

    tta="flip": p = (softmax(f(x)) + softmax(f(mirror(x)))) / 2, the mean of the model's outputs
    for each image and its left-right mirror (test-time augmentation); "none": p = f(x).
    Every prediction of a run (validation accuracy for model selection, test accuracy,
    predictions.npz, detection) goes through here so that they all use the same TTA.

    uint8 images are fed to ``model.predict_on_batch`` chunk by chunk, with the mirrors in the same
    call as their images (a chunk of batch_size / 2 images and their mirrors: the same batch of
    batch_size as one plain pass, so the same peak memory). That skips building a tf.data iterator for
    every call, which cost more than the prediction itself for a few hundred images: a training run
    predicts three or four times per epoch (benchmarks/README.md, "Prediction overhead").
    """
    if tta not in catalog.TTA_HELP:
        raise UserError(f"unknown tta {tta!r}; choose one of: {', '.join(catalog.TTA_HELP)}")
    tta = "flip" if tta == "auto" else tta   # a run resolves auto before it predicts (train.py); unresolved = flip
    if isinstance(images, tf.data.Dataset):
        probs = model.predict(images, verbose=0).astype(np.float32)
        if tta == "flip":
            mirrored = images.map(_plain(lambda x: tf.reverse(x, axis=[2])))
            probs = (probs + model.predict(mirrored, verbose=0).astype(np.float32)) / 2
        return probs
    x = _check_images(images)
    if is_embeddings(x):
        if tta == "flip":
            raise UserError("tta='flip' does not apply to embeddings (an embedding cannot be mirrored); use tta='none'")
        return np.concatenate([np.asarray(model.predict_on_batch(x[i:i + batch_size]), dtype=np.float32)
                               for i in range(0, len(x), max(1, int(batch_size)))], axis=0)
    step = max(1, int(batch_size) // 2) if tta == "flip" else max(1, int(batch_size))
    parts = []
    for start in range(0, len(x), step):
        chunk = tf.cast(x[start:start + step], tf.float32) / 255.0
        m = int(chunk.shape[0])
        if tta == "flip":
            chunk = tf.concat([chunk, tf.reverse(chunk, axis=[2])], axis=0)
        p = np.asarray(model.predict_on_batch(chunk), dtype=np.float32)
        if p.shape[0] != int(chunk.shape[0]):   # e.g. a distribution strategy concatenating replicas
            raise RuntimeError(f"the model returned {p.shape[0]} predictions for {int(chunk.shape[0])} images")
        parts.append((p[:m] + p[m:]) / 2 if tta == "flip" else p)
    return np.concatenate(parts, axis=0)
