"""The Dataset every source produces, and what all sources share: decoding images safely, the
test holdout, training subsets and the note on skipped files."""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from noisycore.errors import DataError
from noisycore.util import stratified_split, stratified_subset


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Asymmetric (class-dependent) noise: source class index -> target class index.
# CIFAR-10 pairs from Patrini et al., 2017: truck->automobile, bird->airplane, deer->horse, cat<->dog.
ASYMMETRIC_PAIRS = {
    "cifar10": {9: 1, 2: 0, 4: 7, 3: 5, 5: 3},
    # built-in look-alikes: circle->hexagon, ring->frame, square->diamond, triangle->arrow, star->plus
    "builtin": {0: 8, 1: 3, 2: 5, 4: 9, 6: 7},
}


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


MAX_PIXELS = 40_000_000        # refuse any single image above 40 megapixels (decompression-bomb guard)


DEFAULT_SIZE_CAP = 64          # automatic image size: the most common size, capped at 64 px per side


MIN_SIZE = 8


ZIP_MAX_BYTES = 2 * 1024**3    # 2 GiB uncompressed


ZIP_MAX_FILES = 200_000


CACHE_VERSION = 1              # bump when the decoded-array format changes


_HIDDEN_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images (uint8, N x H x W x 3), labels (int64, 0..K-1), class names and stable ids, split train/test."""

    name: str                       # "builtin", "cifar10", or the folder / CSV name
    class_names: tuple
    x_train: np.ndarray             # uint8 (N, H, W, 3)
    y_train: np.ndarray             # int64 (N,): the best-known labels (the truth where truth_known)
    ids_train: np.ndarray           # str (N,): stable id, the relative path where images came from files
    x_test: np.ndarray
    y_test: np.ndarray
    ids_test: np.ndarray
    truth_known: bool = True        # False for the user's own labels (a folder, a zip, a CSV without true_label)
    label_sets: dict = field(default_factory=dict)  # CSV label columns over train rows (int, -1 = missing)
    source: str = ""                # what was loaded (for the config / run folder)
    skipped: tuple = ()             # ((id, reason), ...) image files left out as unreadable (skip_unreadable)
    total_files: int = 0            # image files found (loaded + skipped); 0 when not loaded from files

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        k = len(self.class_names)
        for part in ("train", "test"):
            x, y, ids = (getattr(self, f"{a}_{part}") for a in ("x", "y", "ids"))
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
                raise DataError(f"x_{part} must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
            if y.shape != (len(x),) or ids.shape != (len(x),):
                raise DataError(f"y_{part} and ids_{part} must have shape ({len(x)},), "
                                f"got {y.shape} and {ids.shape}")
            if len(y) and (y.min() < 0 or y.max() >= k):
                raise DataError(f"y_{part} holds labels outside 0..{k - 1}")
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise DataError(f"train images {self.x_train.shape[1:]} and test images "
                            f"{self.x_test.shape[1:]} differ in size")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])


class _BadImage(Exception):
    """One file could not be used; collected and reported together."""


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in _HIDDEN_NAMES


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not _is_hidden(name)


def _why(path: Path, err: BaseException) -> str:
    """A short, user-readable reason why ``path`` could not be decoded."""
    from PIL import Image, UnidentifiedImageError
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError:
        return "cannot be read (missing or no permission)"
    if isinstance(err, _BadImage):
        return str(err)
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"too many pixels (over the {MAX_PIXELS // 1_000_000} MP limit)"
    if isinstance(err, UnidentifiedImageError):
        return "not an image Pillow can read (corrupt, or a different file type renamed)"
    if "truncated" in str(err).lower():
        return "truncated image (the file is cut short)"
    return f"corrupt image ({type(err).__name__}: {str(err)[:80]})"


def _open(path: Path):
    """Open an image lazily (header only) and refuse oversized ones before any pixel is decoded."""
    from PIL import Image
    im = Image.open(path)
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise _BadImage(f"{w}x{h} pixels is over the {MAX_PIXELS // 1_000_000} MP limit")
    return im


def _to_rgb(im):
    """Any Pillow mode -> RGB: 16-bit scaled to 8-bit (v * 255 / 65535), alpha composited on white."""
    from PIL import Image
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I") or mode == "F":
        a = np.asarray(im).astype(np.float64)
        hi = 65535.0 if (mode.startswith("I;16") or a.max(initial=0) > 255) else 255.0
        if mode == "F" and a.max(initial=0) <= 1.0:
            hi = 1.0
        a8 = np.rint(np.clip(a, 0, hi) * (255.0 / hi)).astype(np.uint8)
        return Image.fromarray(a8, "L").convert("RGB")
    if "A" in mode or "a" in mode or "transparency" in im.info:
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        bg.alpha_composite(rgba)
        return bg.convert("RGB")
    return im.convert("RGB")


def preview(path, max_side: int) -> np.ndarray:
    """The user's original image file for a person to look at: uint8 (h, w, 3), EXIF rotation applied,
    RGB, shrunk (aspect kept) so that its longer side is at most ``max_side`` pixels. Raises DataError
    naming the file and the reason when it cannot be read (moved, changed, corrupt)."""
    from PIL import Image, ImageOps
    path = Path(path)
    try:
        with _open(path) as im:
            if im.format == "JPEG":
                im.draft(im.mode, (max_side, max_side))
            if "exif" in im.info and im.getexif().get(0x0112, 1) != 1:
                im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 (any decoding failure becomes one readable message)
        raise DataError(f"{path}: {_why(path, e)}") from None


def _decode(path: Path, size: int) -> np.ndarray:
    """Decode one file to uint8 (size, size, 3): EXIF rotation applied, converted to RGB, resized (squashed)."""
    from PIL import Image, ImageOps
    with _open(path) as im:
        if im.format == "JPEG":
            im.draft(im.mode, (size, size))  # decode a JPEG at a reduced scale that is still >= size
        if "exif" in im.info and im.getexif().get(0x0112, 1) != 1:
            im = ImageOps.exif_transpose(im)
        rgb = _to_rgb(im)
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
        arr = np.asarray(rgb, dtype=np.uint8)
    if arr.shape != (size, size, 3):
        raise _BadImage(f"decoded to an unexpected shape {arr.shape}")
    return arr


def decode_file(path, size: int) -> np.ndarray:
    """One image file framed exactly as a loaded dataset decodes it (EXIF rotation, RGB, squashed to
    ``size`` x ``size``, Lanczos): uint8 (size, size, 3). DataError naming the file and the reason when it
    cannot be read (moved, changed, corrupt)."""
    path = Path(path)
    try:
        return _decode(path, int(size))
    except Exception as e:  # noqa: BLE001 (any decoding failure becomes one readable message)
        raise DataError(f"{path}: {_why(path, e)}") from None


def file_dims(path) -> tuple:
    """(width, height) of an image file from its header (no pixels decoded); DataError when unreadable."""
    path = Path(path)
    try:
        with _open(path) as im:
            return im.size
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: {_why(path, e)}") from None


def _raise_bad(bad: list, total: int) -> None:
    """One DataError listing up to 5 bad files, the total count, and what to do."""
    if not bad:
        return
    shown = "; ".join(f"{i}: {why}" for i, why in bad[:5])
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    raise DataError(f"{len(bad)} of {total} image files could not be read: {shown}{more}. "
                    "Remove or fix these files, then load again.")


def _choose_size(files: list, image_size: Optional[int], bad: Optional[list] = None) -> int:
    """The output side: ``image_size`` if given, else the most common size's shorter side, in 8..64.

    ``bad``: a list to collect (id, reason) of unreadable files in (skip them); None = raise on any."""
    if image_size is not None:
        return _check_size(image_size)
    sizes, found = Counter(), []
    for path, rel in files:
        try:
            with _open(path) as im:
                sizes[im.size] += 1
        except Exception as e:  # noqa: BLE001 - any Pillow failure is reported per file
            found.append((rel, _why(path, e)))
    if bad is None or not sizes:
        _raise_bad(found, len(files))
    else:
        bad.extend(found)
    (w, h), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0]))
    return int(min(max(min(w, h), MIN_SIZE), DEFAULT_SIZE_CAP))


def _check_size(image_size) -> int:
    try:
        size = int(image_size)
    except (TypeError, ValueError):
        raise DataError(f"image_size={image_size!r} is not a whole number of pixels") from None
    if not (MIN_SIZE <= size <= 256) or size != image_size:
        raise DataError(f"image_size={image_size!r} must be a whole number in {MIN_SIZE}..256 pixels")
    return size


def _decode_all(files: list, size: int, bad: Optional[list] = None) -> np.ndarray:
    """Decode every (path, id) once into one preallocated uint8 (N, size, size, 3) array.

    ``bad``: a list to collect (id, reason) of unreadable files in (their rows stay zero; drop them
    with :func:`_readable`); None = raise a DataError listing them."""
    x = np.zeros((len(files), size, size, 3), np.uint8)
    found, known_bad = [], {rel for rel, _ in bad or ()}
    for i, (path, rel) in enumerate(files):
        if rel in known_bad:   # already found unreadable while choosing the size
            continue
        try:
            x[i] = _decode(path, size)
        except Exception as e:  # noqa: BLE001
            found.append((rel, _why(path, e)))
    if bad is None or len(found) + len(known_bad) == len(files):
        _raise_bad((bad or []) + found, len(files))
    if bad is not None:
        bad.extend(found)
    return x


def _readable(ids, bad: list) -> np.ndarray:
    """Boolean mask of the ids not listed in ``bad`` ((id, reason) pairs)."""
    skip = {rel for rel, _ in bad}
    return np.array([i not in skip for i in ids], bool)


def skipped_text(dataset, *, limit: int = 5) -> Optional[str]:
    """'2 of 452 images could not be read: a.jpg (not an image), ...' for a dataset loaded with
    skip_unreadable, or None when every image was read."""
    bad = list(getattr(dataset, "skipped", ()) or ())
    if not bad:
        return None
    total = int(getattr(dataset, "total_files", 0) or 0) or len(bad) + len(dataset.y_train) + len(dataset.y_test)
    shown = ", ".join(f"{rel} ({why})" for rel, why in bad[:limit])
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} of {total} images could not be read and were left out: {shown}{more}"


def _class_order(names) -> tuple:
    """Sorted class names, but CIFAR-10's own order when the set is exactly CIFAR-10's."""
    names = set(names)
    return CIFAR10_CLASSES if names == set(CIFAR10_CLASSES) else tuple(sorted(names))


def _holdout(y: np.ndarray, class_names, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask: round(test_fraction * n_c) images of each class c (at least 1, at most n_c - 1)."""
    if not (0.0 < float(test_fraction) < 0.9):
        raise DataError(f"test_fraction={test_fraction} must be in (0, 0.9)")
    counts = np.bincount(y, minlength=len(class_names))
    small = [f"{class_names[c]} ({counts[c]})" for c in range(len(class_names)) if counts[c] < 2]
    if small:
        raise DataError(f"to hold out a test split every class needs at least 2 images; too few in: "
                        f"{', '.join(small)}. Add images, remove those classes, or provide train/ and test/ "
                        "folders.")
    test = np.zeros(len(y), bool)
    test[stratified_split(y, test_fraction, seed)] = True
    return test


_stratified_subset = stratified_subset   # the one subset rule (noisycore.util), also used by train.prepare


def _limit(ds: Dataset, max_train: Optional[int], max_test: Optional[int], seed: int) -> Dataset:
    """Seeded stratified subsets of at most max_train / max_test images (None keeps all)."""
    changes = {}
    if max_train is not None and max_train < len(ds.y_train):
        i = _stratified_subset(ds.y_train, int(max_train), seed)
        changes.update(x_train=ds.x_train[i], y_train=ds.y_train[i], ids_train=ds.ids_train[i],
                       label_sets={k: v[i] for k, v in ds.label_sets.items()})
    if max_test is not None and max_test < len(ds.y_test):
        i = _stratified_subset(ds.y_test, int(max_test), seed + 1)
        changes.update(x_test=ds.x_test[i], y_test=ds.y_test[i], ids_test=ds.ids_test[i])
    return dataclasses.replace(ds, **changes) if changes else ds


def _assemble(name, source, class_names, x, y, ids, test_mask, *, truth_known=True, label_sets=None,
              bad=(), keep=None):
    """Dataset from all images plus a boolean test mask (label sets are cut to the train rows).

    ``keep``: boolean mask of the readable images (the others, listed in ``bad``, are left out)."""
    keep = np.ones(len(y), bool) if keep is None else keep
    tr, te = ~test_mask & keep, test_mask & keep
    return Dataset(name=name, class_names=tuple(class_names), x_train=x[tr], y_train=y[tr],
                   ids_train=ids[tr], x_test=x[te], y_test=y[te], ids_test=ids[te],
                   truth_known=truth_known, source=source,
                   label_sets={k: v[tr] for k, v in (label_sets or {}).items()},
                   skipped=tuple((str(r), str(w)) for r, w in bad), total_files=int(len(y)))
