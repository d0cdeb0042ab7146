"""Pretrained embeddings of a dataset's images, computed once and cached beside the decoded dataset.

    embed(dataset, *, size=DEFAULT_SIZE, batch=64, progress=None) -> float32 (N_train + N_test, 1280)

Rows: the training images (``dataset.x_train`` order) followed by the held-out images (``x_test``),
the order of ``detect.read_run_labels`` for own data; truth-known runs use the first N_train rows.
Each image is resized (bilinear, antialiased when shrinking) to ``size`` x ``size`` and passed through
ImageNet EfficientNet-Lite2 up to its global-average-pooled head (1280 features). Lite2, not the smaller Lite0:
on four planted sets of 900-1,200 photos its features put 95 of the 130 planted wrong labels in the queue's first M
against Lite0's 82 (benchmarks/README.md, "A stronger backbone"), for 1.0-1.5 times the embedding time.

Which pixels: a user's own photos (a folder, a zip, a CSV manifest) are decoded for the networks at <= 64 px
(datasets.base._choose_size); when the original files are larger than that, they are decoded again from the
files at ``size`` with the same framing (datasets.decode_file), chunk by chunk, so the features see the
photos at 160 px. Built-in images, CIFAR-10 and photos no larger than the decoded side are embedded from the
decoded arrays. A moved or changed source falls back to the decoded arrays and says so (``notice``).

Cache: ``default_data_dir()/cache/embeddings-<key>.npz`` (``embeddings``, ``ids``, ``meta``), one file
per image content + backbone + input size + precision, written atomically, so every run, fold and page
with the same images reuses it. While it is computed, chunks of CHUNK images are written to
``embeddings-<key>.partial/`` as they finish: an interrupted embed resumes at the first missing chunk.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from noisycore.errors import UserError
from noisycore.util import save_npy, save_npz, write_json

VARIANT = "lite2"                  # noisycore.backbones.efficientnet.VARIANTS
BACKBONE = f"efficientnet_{VARIANT}"
FEATURES = 1280
DEFAULT_SIZE = 160      # measured on 32-px CIFAR-10: benchmarks/README.md, "Embedding size and precision"
SIZES = (96, 128, 160, 224)
PRECISIONS = ("float32", "bfloat16")
DEFAULT_PRECISION = "float32"
CHUNK = 512             # images per resumable chunk file
VERSION = 1             # bump when the preprocessing changes: old caches are then not reused
ORIGINALS_VERSION = 1   # the same for features computed from the original files
HEADER_SAMPLE = 256     # original files (evenly spread) whose headers decide "larger than the decoded side"
PIXELS_ORIGINAL = "original photos at {size} px"
PIXELS_DECODED = "decoded images ({side} px) scaled to {size} px"


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


def cache_key(dataset, *, size: int = DEFAULT_SIZE, precision: str = DEFAULT_PRECISION, variant: str = VARIANT) -> str:
    """The content key: a hash of every image's pixels (train then test), the backbone, size and precision."""
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps({"backbone": f"efficientnet_{variant}", "size": size, "precision": precision,
                         "version": VERSION}).encode())
    parts, _ids, _n = _images(dataset)
    for part in parts:
        h.update(str(part.shape).encode())
        h.update(np.ascontiguousarray(part).data)
    return h.hexdigest()


@dataclass(frozen=True)
class _Plan:
    """Where one embed reads its pixels and keeps its result."""

    path: Path                     # the cache file
    pixels: str                    # which pixels the features come from, in words (the meta's "pixels")
    side: int                      # the side of the decoded images
    files: Optional[list] = None   # the original files (train then test) when the features come from them
    notice: Optional[str] = None   # why the original files are not used (a moved or changed source)


class _Changed(Exception):
    """An original file no longer decodes to the dataset's image (changed since the import)."""


def _originals_key(decoded_key: str, stats: list) -> str:
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps({"decoded": decoded_key, "pixels": "original", "files": stats,
                         "version": ORIGINALS_VERSION}).encode())
    return h.hexdigest()


def _plan(dataset, size: int, precision: str, cache_dir, *, remember: bool = False, variant: str = VARIANT) -> tuple:
    """(the plan embed follows, the decoded images' plan to fall back on). ``remember``: write down that a
    set's originals are no larger than its decoded images (embed does; the lookups only read)."""
    from noisycore.config import default_data_dir
    from noisycore.datasets import source_files

    folder = Path(cache_dir) if cache_dir else default_data_dir() / "cache"
    side = int(min(dataset.image_shape[:2]))
    decoded_key = cache_key(dataset, size=size, precision=precision, variant=variant)
    decoded = _Plan(folder / f"embeddings-{decoded_key}.npz", PIXELS_DECODED.format(side=side, size=size), side)
    ids = _images(dataset)[1]
    files = source_files(getattr(dataset, "source", ""), ids) if side < size else None
    if not files:                # not from files (built-in, CIFAR-10), decoded at least at the input size, or empty
        return decoded, decoded
    stats, gone = _file_stats(files, ids)
    if gone:
        where = (f"the folder, zip or CSV {dataset.source} is no longer there" if len(gone) == len(ids) else
                 f"{len(gone)} of {len(ids)} files are gone, e.g. {gone[0]}")
        return replace(decoded, notice=f"The original photos could not be read ({where}): the pretrained "
                                       f"features use the {decoded.pixels}."), decoded
    plan = _Plan(folder / f"embeddings-{_originals_key(decoded_key, stats)}.npz", PIXELS_ORIGINAL.format(size=size),
                 side, files=files)
    marker = plan.path.with_suffix(".json")    # this set's originals are not used: why (None = no larger)
    if plan.path.is_file():
        return plan, decoded
    if marker.is_file():
        try:
            return replace(decoded, notice=json.loads(marker.read_text(encoding="utf-8")).get("notice")), decoded
        except (OSError, ValueError):
            marker.unlink(missing_ok=True)
    try:
        larger, why = _larger(files, side), {"notice": None, "reason": f"the original files are not over {side} px"}
    except UserError as e:      # a file that no longer reads: the import is stale
        larger, why = False, {"notice": _changed_text(e, decoded, size)}
    if larger:
        return plan, decoded
    if remember:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(marker, why)
    return replace(decoded, notice=why["notice"]), decoded


def _changed_text(reason, decoded: _Plan, size: int) -> str:
    return (f"The original photos changed since they were loaded ({reason}): the pretrained features use the "
            f"{decoded.pixels}; load the dataset again to use the photos at {size} px.")


def _file_stats(files: list, ids) -> tuple:
    """([id, bytes, mtime_ns] per file: the key's part that changes when a file does, [ids of files gone])."""
    stats, gone = [], []
    for path, i in zip(files, ids):
        try:
            st = path.stat()
            stats.append([str(i), st.st_size, st.st_mtime_ns])
        except (AttributeError, OSError):    # None: gone
            gone.append(str(i))
    return stats, gone


def _larger(files: list, side: int) -> bool:
    """Are the originals larger than the decoded side? The most common size's shorter side among the headers
    of up to HEADER_SAMPLE files (the rule of datasets.base._choose_size)."""
    from collections import Counter

    from noisycore.datasets import file_dims

    rows = np.unique(np.linspace(0, len(files) - 1, min(len(files), HEADER_SAMPLE)).round().astype(int))
    sizes = Counter(tuple(file_dims(files[r])) for r in rows)      # UserError naming an unreadable file
    (w, h), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0]))
    return min(w, h) > side


def embedding_file(dataset, *, size: int = DEFAULT_SIZE, precision: str = DEFAULT_PRECISION,
                   cache_dir=None) -> Path:
    """Where ``embed`` keeps (or will keep) this dataset's embeddings."""
    return _plan(dataset, size, precision, cache_dir)[0].path


def load_cached(dataset, *, size: int = DEFAULT_SIZE, precision: str = DEFAULT_PRECISION,
                cache_dir=None) -> Optional[np.ndarray]:
    """The cached embeddings if this dataset was embedded at this size and precision, else None."""
    _check(dataset, size, 1, precision)
    path = embedding_file(dataset, size=size, precision=precision, cache_dir=cache_dir)
    return _read(path, _images(dataset)[2])


def pixels_source(dataset, *, size: int = DEFAULT_SIZE, precision: str = DEFAULT_PRECISION, cache_dir=None) -> str:
    """Which pixels this dataset's features come from, in words: "original photos at 160 px" or "decoded
    images (32 px) scaled to 160 px" (the cached file's meta once embedded). Never loads TensorFlow."""
    plan = _plan(dataset, size, precision, cache_dir)[0]
    try:
        return pixels_text(cache_meta(plan.path))
    except (OSError, ValueError, KeyError):
        return plan.pixels


def pixels_text(meta: dict) -> str:
    """The meta's "pixels" (files written before it existed were all embedded from the decoded images)."""
    return meta.get("pixels") or f"decoded images scaled to {meta.get('size', DEFAULT_SIZE)} px"


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


def feature_model(size: int, precision: str = DEFAULT_PRECISION, variant: str = VARIANT):
    """Keras model: uint8-range RGB (B, H, W, 3) of any H, W -> float32 embeddings (B, 1280)."""
    import keras

    from noisycore.backbones.efficientnet import build_efficientnet_lite

    # the policy is explicit: a training worker embeds under its own global policy (mixed_bfloat16), and the
    # cache is keyed by the precision asked for
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    backbone = build_efficientnet_lite(size, variant=variant, top=False, dtype=policy)
    inputs = keras.Input((None, None, 3), name="images")
    x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True, dtype=policy, name="resize")(inputs)
    return keras.Model(inputs, backbone(x), name=f"efficientnet_{variant}_{size}")


def embed(dataset, *, size: int = DEFAULT_SIZE, batch: int = 64, progress: Optional[Callable] = None,
          precision: str = DEFAULT_PRECISION, cache_dir=None, notice: Optional[Callable] = None,
          variant: str = VARIANT) -> np.ndarray:
    """float32 (N_train + N_test, 1280): the pooled EfficientNet-Lite2 features of every image, cached.
    ``variant``: another backbone of noisycore.backbones.efficientnet.VARIANTS (a run trained on Lite0 features
    before Lite2 became the default reads Lite0's, see detect.model_inputs).

    ``progress(done, total)`` is called after each batch (and once at the start with what a resumed
    run already had). A second call with the same images returns the cached array without TensorFlow.
    Own photos larger than their decoded images are embedded from the original files (module docstring);
    ``notice(text)`` (default: the log) is told once per call when they cannot be (moved, changed).
    """
    _check(dataset, size, batch, precision)
    from noisycore.backbones.efficientnet import spec

    spec(variant)                       # an unknown backbone: UserError naming the choices
    plan, decoded = _plan(dataset, size, precision, cache_dir, remember=True, variant=variant)
    say = notice or logging.getLogger(__name__).warning
    if plan.notice:
        say(plan.notice)
    try:
        return _compute(dataset, plan, size=size, batch=batch, progress=progress, precision=precision,
                        variant=variant)
    except _Changed as e:
        text = _changed_text(e, decoded, size)
        write_json(plan.path.with_suffix(".json"), {"notice": text})
        shutil.rmtree(_partial(plan.path), ignore_errors=True)
        say(text)
        return _compute(dataset, decoded, size=size, batch=batch, progress=progress, precision=precision,
                        variant=variant)


def _partial(path: Path) -> Path:
    return path.with_name(path.stem + ".partial")


def _compute(dataset, plan: _Plan, *, size, batch, progress, precision, variant=VARIANT) -> np.ndarray:
    parts, ids, n = _images(dataset)
    cached = _read(plan.path, n)
    if cached is not None:
        if progress:
            progress(n, n)
        return cached
    partial = _partial(plan.path)
    partial.mkdir(parents=True, exist_ok=True)
    images = np.concatenate(parts)
    started, model = time.time(), None
    chunks = []
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        chunk_file = partial / f"chunk-{start:08d}-{stop:08d}.npy"
        done = _read_chunk(chunk_file, stop - start)
        if done is None:
            pixels = images[start:stop] if plan.files is None else \
                _from_files(plan.files[start:stop], ids[start:stop], images[start:stop], size)
            if model is None:
                model = feature_model(size, precision, variant)
            done = _embed_chunk(model, pixels, batch,
                                (lambda k, s=start: progress(s + k, n)) if progress else None)
            save_npy(chunk_file, done)
        elif progress:
            progress(stop, n)
        chunks.append(done)
    emb = np.concatenate(chunks) if chunks else np.zeros((0, FEATURES), np.float32)
    meta = {"backbone": f"efficientnet_{variant}", "size": size, "precision": precision, "n_train": len(parts[0]),
            "n_test": len(parts[1]), "seconds": round(time.time() - started, 1), "version": VERSION,
            "pixels": plan.pixels, "decoded_side": plan.side}
    save_npz(plan.path, embeddings=emb, ids=ids, meta=np.array(json.dumps(meta)))
    shutil.rmtree(partial, ignore_errors=True)
    return emb


def _from_files(files: list, ids, decoded: np.ndarray, size: int) -> np.ndarray:
    """uint8 (n, size, size, 3): each original file decoded at ``size``, framed as the dataset's image (which
    it must still decode to at the dataset's side, else _Changed: the file is not the one loaded)."""
    from noisycore.datasets import decode_file

    side = decoded.shape[1]
    out = np.empty((len(files), size, size, 3), np.uint8)
    for row, (path, i) in enumerate(zip(files, ids)):
        try:
            same = np.array_equal(decode_file(path, side), decoded[row])
            out[row] = decode_file(path, size)
        except UserError as e:
            raise _Changed(str(e)) from None
        if not same:
            raise _Changed(f"{i} is not the image that was loaded")
    return out


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
    """The meta record of an embeddings file (backbone, size, precision, n_train, n_test, seconds, pixels:
    which pixels the features came from, in words, see pixels_text; decoded_side)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def inputs_for(dataset, *, whole=None, progress: Optional[Callable] = None, size: Optional[int] = None,
               precision: str = DEFAULT_PRECISION, notice: Optional[Callable] = None) -> tuple:
    """(train (N_train, 1280), test (N_test, 1280)) float32: the embeddings of ``dataset``'s images, the input
    of a model on pretrained features (catalog.EMBEDDING_MODELS) in place of the images.

    ``whole``: the dataset as loaded before a run cut it to a label set's images (a cross-validation fold, a
    training subset); its embeddings are the ones computed and cached, so the run, every fold and the Review
    page share one file, and ``dataset``'s rows are looked up in them by image id. ``notice``: see embed."""
    import pandas as pd

    whole = dataset if whole is None else whole
    emb = embed(whole, size=DEFAULT_SIZE if size is None else size, precision=precision, progress=progress,
                notice=notice)
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
