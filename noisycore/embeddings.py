"""Pretrained embeddings of a dataset's images, computed once and cached beside the decoded dataset.

    embed(dataset, *, size=DEFAULT_SIZE, batch=64, progress=None) -> float32 (N_train + N_test, 1280)

Rows: the training images (``dataset.x_train`` order) followed by the held-out images (``x_test``),
the order of ``detect.read_run_labels`` for own data; truth-known runs use the first N_train rows.
Each image is resized (bilinear, antialiased when shrinking) to ``size`` x ``size`` and passed through
ImageNet EfficientNet-Lite0 up to its global-average-pooled head (1280 features).

Cache: ``default_data_dir()/cache/embeddings-<key>.npz`` (``embeddings``, ``ids``, ``meta``), one file
per image content + backbone + input size + precision, written atomically, so every run, fold and page
with the same images reuses it. While it is computed, chunks of CHUNK images are written to
``embeddings-<key>.partial/`` as they finish: an interrupted embed resumes at the first missing chunk.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from noisycore.errors import UserError
from noisycore.util import save_npy, save_npz

BACKBONE = "efficientnet_lite0"
FEATURES = 1280
DEFAULT_SIZE = 160      # measured on 32-px CIFAR-10: benchmarks/README.md, "Embedding size and precision"
SIZES = (96, 128, 160, 224)
PRECISIONS = ("float32", "bfloat16")
DEFAULT_PRECISION = "float32"
CHUNK = 512             # images per resumable chunk file
VERSION = 1             # bump when the preprocessing changes: old caches are then not reused


def check_options(*, size, batch, precision) -> None:
    """UserError naming a bad input size, batch or precision (the CLI checks before loading images)."""
    if not isinstance(size, int) or isinstance(size, bool) or not 32 <= size <= 512:
        raise UserError(f"embedding size {size!r} is not a whole number of pixels in 32..512; "
                        f"try {DEFAULT_SIZE} (measured sizes: {', '.join(map(str, SIZES))})")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise UserError(f"embedding batch {batch!r} must be a whole number >= 1, e.g. 64")
    if precision not in PRECISIONS:
        raise UserError(f"embedding precision {precision!r} is not one of {', '.join(PRECISIONS)}")


def _check(dataset, size, batch, precision) -> None:
    if not hasattr(dataset, "x_train") or not hasattr(dataset, "x_test"):
        raise UserError(f"embed expects a Dataset (noisycore.datasets.load_dataset), got {type(dataset).__name__}")
    check_options(size=size, batch=batch, precision=precision)


def _images(dataset) -> tuple:
    """(the images to embed as a list of uint8 arrays (train, test), ids (N,), total count)."""
    parts = [np.asarray(dataset.x_train), np.asarray(dataset.x_test)]
    ids = np.concatenate([np.asarray(dataset.ids_train, dtype=str), np.asarray(dataset.ids_test, dtype=str)])
    return parts, ids, sum(len(p) for p in parts)


def cache_key(dataset, *, size: int = DEFAULT_SIZE, precision: str = DEFAULT_PRECISION) -> str:
    """The content key: a hash of every image's pixels (train then test), the backbone, size and precision."""
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps({"backbone": BACKBONE, "size": size, "precision": precision, "version": VERSION}).encode())
    parts, _ids, _n = _images(dataset)
    for part in parts:
        h.update(str(part.shape).encode())
        h.update(np.ascontiguousarray(part).data)
    return h.hexdigest()


def embedding_file(dataset, *, size: int = DEFAULT_SIZE, precision: str = DEFAULT_PRECISION,
                   cache_dir=None) -> Path:
    """Where ``embed`` keeps (or will keep) this dataset's embeddings."""
    from noisycore.config import default_data_dir

    folder = Path(cache_dir) if cache_dir else default_data_dir() / "cache"
    return folder / f"embeddings-{cache_key(dataset, size=size, precision=precision)}.npz"


def load_cached(dataset, *, size: int = DEFAULT_SIZE, precision: str = DEFAULT_PRECISION,
                cache_dir=None) -> Optional[np.ndarray]:
    """The cached embeddings if this dataset was embedded at this size and precision, else None."""
    _check(dataset, size, 1, precision)
    path = embedding_file(dataset, size=size, precision=precision, cache_dir=cache_dir)
    return _read(path, _images(dataset)[2])


def _read(path: Path, n: int) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            emb = z["embeddings"]
        if emb.shape == (n, FEATURES) and emb.dtype == np.float32:
            return emb
    except Exception:  # noqa: BLE001 - an unreadable cache is recomputed, never shown to the user
        pass
    path.unlink(missing_ok=True)
    return None


def feature_model(size: int, precision: str = DEFAULT_PRECISION):
    """Keras model: uint8-range RGB (B, H, W, 3) of any H, W -> float32 embeddings (B, 1280)."""
    import keras

    from noisycore.backbones.efficientnet import build_efficientnet_lite0

    # the policy is explicit: a training worker embeds under its own global policy (mixed_bfloat16), and the
    # cache is keyed by the precision asked for
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    backbone = build_efficientnet_lite0(size, top=False, dtype=policy)
    inputs = keras.Input((None, None, 3), name="images")
    x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True, dtype=policy, name="resize")(inputs)
    return keras.Model(inputs, backbone(x), name=f"{BACKBONE}_{size}")


def embed(dataset, *, size: int = DEFAULT_SIZE, batch: int = 64, progress: Optional[Callable] = None,
          precision: str = DEFAULT_PRECISION, cache_dir=None) -> np.ndarray:
    """float32 (N_train + N_test, 1280): the pooled EfficientNet-Lite0 features of every image, cached.

    ``progress(done, total)`` is called after each batch (and once at the start with what a resumed
    run already had). A second call with the same images returns the cached array without TensorFlow.
    """
    _check(dataset, size, batch, precision)
    parts, ids, n = _images(dataset)
    path = embedding_file(dataset, size=size, precision=precision, cache_dir=cache_dir)
    cached = _read(path, n)
    if cached is not None:
        if progress:
            progress(n, n)
        return cached
    partial = path.with_name(path.stem + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    images = np.concatenate(parts)
    started, model = time.time(), None
    chunks = []
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        chunk_file = partial / f"chunk-{start:08d}-{stop:08d}.npy"
        done = _read_chunk(chunk_file, stop - start)
        if done is None:
            if model is None:
                model = feature_model(size, precision)
            done = _embed_chunk(model, images[start:stop], batch,
                                (lambda k, s=start: progress(s + k, n)) if progress else None)
            save_npy(chunk_file, done)
        elif progress:
            progress(stop, n)
        chunks.append(done)
    emb = np.concatenate(chunks) if chunks else np.zeros((0, FEATURES), np.float32)
    meta = {"backbone": BACKBONE, "size": size, "precision": precision, "n_train": len(parts[0]),
            "n_test": len(parts[1]), "seconds": round(time.time() - started, 1), "version": VERSION}
    save_npz(path, embeddings=emb, ids=ids, meta=np.array(json.dumps(meta)))
    shutil.rmtree(partial, ignore_errors=True)
    return emb


def _read_chunk(path: Path, rows: int) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
        if arr.shape == (rows, FEATURES) and arr.dtype == np.float32:
            return arr
    except (OSError, ValueError):
        pass
    path.unlink(missing_ok=True)
    return None


def _embed_chunk(model, images: np.ndarray, batch: int, progress) -> np.ndarray:
    out = np.empty((len(images), FEATURES), np.float32)
    for i in range(0, len(images), batch):
        x = images[i:i + batch].astype(np.float32)      # float per batch: the set stays uint8
        out[i:i + len(x)] = np.asarray(model.predict_on_batch(x), dtype=np.float32)
        if progress:
            progress(i + len(x))
    return out


def cache_meta(path) -> dict:
    """The meta record of an embeddings file (backbone, size, precision, n_train, n_test, seconds)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def inputs_for(dataset, *, whole=None, progress: Optional[Callable] = None, size: Optional[int] = None,
               precision: str = DEFAULT_PRECISION) -> tuple:
    """(train (N_train, 1280), test (N_test, 1280)) float32: the embeddings of ``dataset``'s images, the input
    of a model on pretrained features (catalog.EMBEDDING_MODELS) in place of the images.

    ``whole``: the dataset as loaded before a run cut it to a label set's images (a cross-validation fold, a
    training subset); its embeddings are the ones computed and cached, so the run, every fold and the Review
    page share one file, and ``dataset``'s rows are looked up in them by image id."""
    import pandas as pd

    whole = dataset if whole is None else whole
    emb = embed(whole, size=DEFAULT_SIZE if size is None else size, precision=precision, progress=progress)
    if whole is dataset:
        return emb[:len(dataset.x_train)], emb[len(dataset.x_train):]
    index = pd.Index(_images(whole)[1])
    out = []
    for ids in (dataset.ids_train, dataset.ids_test):
        pos = index.get_indexer(np.asarray(ids, dtype=str))
        if (pos < 0).any():
            raise UserError(f"{int((pos < 0).sum())} image(s) (e.g. {np.asarray(ids)[pos < 0][0]}) are not in the "
                            "embedded dataset; the label set belongs to another dataset")
        out.append(emb[pos])
    return tuple(out)
