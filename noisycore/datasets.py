"""Datasets: uint8 images, int64 labels, class names and stable ids, from every source the app offers.

Sources: the built-in offline shapes set, CIFAR-10 (Krizhevsky, 2009; keras cache, a local image-folder
tarball, or a download), an image folder, a .zip of one, and a CSV manifest (``path,label,...``).
Images stay uint8 (N, H, W, 3) in memory; float conversion happens per batch in the input pipeline.
Every bad input raises ``DataError`` naming the file / row and what to do.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

import numpy as np

from noisycore.config import DataConfig, default_data_dir
from noisycore.errors import DataError, UserError
from noisycore.splits import stratified_split, stratified_subset

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
BUILTIN_CLASSES = ("circle", "ring", "square", "frame", "triangle", "diamond", "star", "plus", "hexagon",
                   "arrow")
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


# ============================================================================ decoding images

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


# ============================================================================ splits and subsets

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


_stratified_subset = stratified_subset   # the one subset rule (noisycore.splits), also used by train.prepare


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


# ============================================================================ image folders

@dataclass
class _Scan:
    """What an image folder holds, before decoding: (path, id, class, split) per image."""

    root: Path
    files: list        # [(Path, id)], sorted by split, class, id
    classes: list      # class name per file
    splits: list       # "train" / "test" / None (None = hold out a test split)


def _walk_images(folder: Path, root: Path) -> list:
    """(path, id) of every image under folder, skipping hidden files and folders; id relative to root."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        for f in filenames:
            if _is_image_name(f):
                p = Path(dirpath, f)
                out.append((p, p.relative_to(root).as_posix()))
    return sorted(out, key=lambda t: t[1])


def _visible(folder: Path) -> tuple:
    """(subfolders, image files) directly inside folder, hidden ones ignored."""
    dirs, images = [], []
    for e in sorted(os.scandir(folder), key=lambda e: e.name):
        if _is_hidden(e.name):
            continue
        if e.is_dir():
            dirs.append(Path(e.path))
        elif _is_image_name(e.name):
            images.append(Path(e.path))
    return dirs, images


def _effective_root(root: Path) -> Path:
    """Step into a lone wrapper folder (as zips often have) that itself holds class folders."""
    for _ in range(3):
        dirs, images = _visible(root)
        if len(dirs) != 1 or images or dirs[0].name.lower() in ("train", "test"):
            return root
        inner_dirs, _ = _visible(dirs[0])
        if not inner_dirs:
            return root
        root = dirs[0]
    return root


def _scan_folder(root) -> _Scan:
    """Find root/<class>/* or root/train/<class>/* + root/test/<class>/*; raise DataError if unusable."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist; give the path of a folder with one sub-folder per class")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give a folder with one sub-folder per class")
    root = _effective_root(root)
    dirs, loose = _visible(root)
    by_name = {d.name.lower(): d for d in dirs}
    if "train" in by_name and "test" in by_name:
        parts = {"train": by_name["train"], "test": by_name["test"]}
    else:  # no test/ folder: hold out a test split from train/ (or from root)
        parts = {None: by_name.get("train", root)}
    files, classes, splits = [], [], []
    for split, folder in parts.items():
        for cdir in _visible(folder)[0]:
            found = _walk_images(cdir, root)
            files += found
            classes += [cdir.name] * len(found)
            splits += [split] * len(found)
    if not files:
        hint = f" ({len(loose)} image(s) lie directly in it)" if loose else ""
        raise DataError(f"no images found in class folders under {root}{hint}; expected "
                        f"{root}/<class>/*.png|jpg|jpeg|bmp|gif|webp, one folder per class")
    return _Scan(root, files, classes, splits)


def _check_classes(scan: _Scan, class_order: Optional[tuple]) -> tuple:
    """Class names for a scan: at least 2; test classes must also appear in train."""
    found = sorted(set(scan.classes))
    if len(found) < 2:
        raise DataError(f"{scan.root} has only one class folder ({found[0]!r}); need at least 2 classes, "
                        "one sub-folder per class")
    train = {c for c, s in zip(scan.classes, scan.splits) if s != "test"}
    extra = sorted(set(found) - train)
    if extra:
        raise DataError(f"class folder(s) {', '.join(extra)} exist only in test/ under {scan.root}; "
                        "add training images for them or remove them")
    if class_order is not None:
        if set(found) != set(class_order):
            raise DataError(f"{scan.root} has classes {', '.join(found)}; expected exactly "
                            f"{', '.join(class_order)}")
        return tuple(class_order)
    return _class_order(found)


def _load_scan(scan: _Scan, *, name: str, source: str, image_size, test_fraction, seed,
               class_order=None, truth_known: bool = True, skip_unreadable: bool = False) -> Dataset:
    """Decode a scanned folder into a Dataset (holding out a stratified test split if there is no test/).

    ``skip_unreadable``: leave unreadable files out (listed in Dataset.skipped) instead of refusing all.
    The test split is drawn over all files first, so a skipped file never moves another image."""
    class_names = _check_classes(scan, class_order)
    index = {c: i for i, c in enumerate(class_names)}
    y = np.array([index[c] for c in scan.classes], np.int64)
    if scan.splits[0] is None:
        test = _holdout(y, class_names, test_fraction, seed)
    else:
        test = np.array([s == "test" for s in scan.splits])
    bad = [] if skip_unreadable else None
    size = _choose_size(scan.files, image_size, bad)
    x = _decode_all(scan.files, size, bad)
    ids = np.array([rel for _, rel in scan.files], dtype=str)
    keep = _readable(ids, bad or [])
    return _assemble(name, source, class_names, x, y, ids, test, truth_known=truth_known, bad=bad or (),
                     keep=keep)


def load_image_folder(root, *, image_size=None, test_fraction=0.2, seed=0, skip_unreadable=False) -> Dataset:
    """Load root/<class>/*.{png,jpg,...} (or root/train/<class> + root/test/<class>) as a Dataset.

    Images are converted to RGB and resized to image_size x image_size (default: the most common
    size's shorter side, capped at 64). Without a test/ folder a stratified, seeded test_fraction of
    each class is held out. Ids are paths relative to root with forward slashes (e.g. "cat/001.jpg").
    The folder names are the user's own labels: their truth is unknown (truth_known=False).
    """
    scan = _scan_folder(root)
    return _load_scan(scan, name=Path(root).resolve().name, source=str(root), image_size=image_size,
                      test_fraction=test_fraction, seed=seed, truth_known=False, skip_unreadable=skip_unreadable)


# ============================================================================ CSV manifests

_SPECIAL_COLUMNS = ("path", "label", "true_label", "clean", "split")
_INT_RE = re.compile(r"^[+-]?\d+$")


def _normalize_rel(p: str, where: str) -> str:
    """A manifest path as a clean relative posix path; DataError if empty, absolute or escaping."""
    q = p.replace("\\", "/")
    if not q:
        raise DataError(f"{where}: the path is empty; every row needs a path relative to the CSV's folder")
    if q.startswith("/") or re.match(r"^[A-Za-z]:", q) or "\x00" in q:
        raise DataError(f"{where}: path {p!r} is absolute; use a path relative to the CSV's folder")
    parts = [s for s in PurePosixPath(q).parts if s != "."]
    if ".." in parts or not parts:
        raise DataError(f"{where}: path {p!r} points outside the CSV's folder; keep images next to "
                        "or below the CSV")
    return "/".join(parts)


def _read_csv(path: Path):
    import pandas as pd
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save it as 'CSV UTF-8'") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; expected a header 'path,label' and one row per image") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{path} is not a valid CSV file ({str(e).strip()[:120]})") from None
    rename = {c: (str(c).strip().lower() if str(c).strip().lower() in _SPECIAL_COLUMNS else str(c).strip())
              for c in df.columns}
    return df.rename(columns=rename)


def read_label_manifest(csv_path):
    """Read and validate a CSV manifest (a ``path`` column plus label columns) without decoding images.

    Returns a pandas DataFrame of stripped strings; ``path`` is normalized to the image id (relative,
    forward slashes). Raises DataError naming the line for an empty, absolute, escaping or duplicate
    path, a missing path column, or a file without rows. E.g. CIFAR-10N: path,clean,aggre,worst,random1..3.
    """
    path = Path(csv_path).expanduser()
    if not path.is_file():
        raise DataError(f"CSV manifest {path} does not exist; give the path of a .csv file")
    df = _read_csv(path)
    if "path" not in df.columns:
        raise DataError(f"{path.name} has no 'path' column (columns: {', '.join(map(str, df.columns))}); "
                        "the first row must be a header like 'path,label'")
    if len(df) == 0:
        raise DataError(f"{path.name} has a header but no rows; add one row per image")
    df = df.apply(lambda s: s.str.strip())
    ids, seen = [], {}
    for i, p in enumerate(df["path"]):
        rel = _normalize_rel(p, f"{path.name} line {i + 2}")
        if rel in seen:
            raise DataError(f"{path.name} line {i + 2}: path {p!r} is listed twice (first on line "
                            f"{seen[rel]}); each image may appear only once")
        seen[rel] = i + 2
        ids.append(rel)
    df["path"] = ids
    return df


def _given_column(df, label_column: Optional[str]) -> str:
    if label_column is not None:
        if label_column not in df.columns:
            raise DataError(f"label_column={label_column!r} is not in the CSV (columns: "
                            f"{', '.join(map(str, df.columns))})")
        return label_column
    for name in ("label", "clean", "true_label"):
        if name in df.columns:
            return name
    raise DataError(f"the CSV has no 'label' column (columns: {', '.join(map(str, df.columns))}); "
                    "name the label column 'label' or pass label_column")


def _label_mapping(values: set, class_names) -> tuple:
    """(class names, value -> index) for label strings: names, or integers 0..K-1 if all are integers."""
    all_int = bool(values) and all(_INT_RE.match(v) for v in values)
    if class_names is not None:
        names = tuple(str(c) for c in class_names)
        mapping = {c: i for i, c in enumerate(names)}
        if all_int and not values <= set(mapping):
            mapping = {str(i): i for i in range(len(names))}
            mapping.update({v: int(v) for v in values if 0 <= int(v) < len(names)})
        return names, mapping
    if all_int:
        ints = {int(v) for v in values}
        if min(ints) < 0:
            raise DataError(f"integer labels must be 0..K-1, found {min(ints)}")
        names = tuple(str(i) for i in range(max(ints) + 1))
        return names, {v: int(v) for v in values}
    names = _class_order(values)
    return names, {c: i for i, c in enumerate(names)}


def _encode_column(df, col: str, mapping: dict, class_names, csv_name: str, *, required: bool):
    """Column of label strings -> int64 array (-1 where empty and not required); DataError names the line."""
    out = np.full(len(df), -1, np.int64)
    for i, v in enumerate(df[col]):
        if v == "":
            if required:
                raise DataError(f"{csv_name} line {i + 2}: empty {col!r} label; give every image a label "
                                "or remove the row")
            continue
        if v not in mapping:
            raise DataError(f"{csv_name} line {i + 2}: {col}={v!r} is not a known class "
                            f"(classes: {', '.join(class_names)})")
        out[i] = mapping[v]
    return out


def _csv_split(df, y, class_names, csv_name, test_fraction, seed) -> np.ndarray:
    """Test mask from a 'split' column, else train/ test/ path prefixes, else a stratified holdout."""
    if "split" in df.columns:
        s = df["split"].str.lower()
        bad = np.flatnonzero(~s.isin(["train", "test"]).to_numpy())
        if len(bad):
            raise DataError(f"{csv_name} line {bad[0] + 2}: split={df['split'].iloc[bad[0]]!r}; "
                            "use 'train' or 'test'")
        return (s == "test").to_numpy()
    paths = df["path"]
    is_train, is_test = paths.str.startswith("train/"), paths.str.startswith("test/")
    if bool((is_train | is_test).all()) and bool(is_train.any()):
        return is_test.to_numpy()
    return _holdout(y, class_names, test_fraction, seed)


def _manifest_files(df, csv_path: Path) -> list:
    """(absolute path, id) per row; DataError listing missing files or paths that resolve outside."""
    base = csv_path.parent.resolve()
    files, missing = [], []
    for i, rel in enumerate(df["path"]):
        p = base / rel
        if not p.is_file():
            missing.append(f"line {i + 2}: {rel}")
        elif not p.resolve().is_relative_to(base):
            raise DataError(f"{csv_path.name} line {i + 2}: {rel} links outside the CSV's folder")
        files.append((p, rel))
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise DataError(f"{csv_path.name}: {len(missing)} listed image file(s) not found: "
                        f"{'; '.join(missing[:5])}{more}. Paths are relative to {base}; fix the paths "
                        "or remove the rows.")
    return files


def load_csv_manifest(csv_path, *, label_column=None, image_size=None, test_fraction=0.2, seed=0,
                      class_names=None, skip_unreadable=False) -> Dataset:
    """Load the images a CSV manifest lists (``path,label[,true_label|clean][,split][,...]``).

    Paths are relative to the CSV's folder. y_train is the true_label/clean column when present
    (truth_known=True), else the given labels. Every column whose values are all class names is kept
    in label_sets (train rows, -1 = empty). Class names: sorted union of the labels (CIFAR-10 order
    for CIFAR-10's set), or "0".."K-1" for integer labels, or ``class_names`` if passed.
    """
    path = Path(csv_path).expanduser()
    df = read_label_manifest(path)
    given = _given_column(df, label_column)
    truth = next((c for c in ("true_label", "clean") if c in df.columns), None)
    main = [given] + ([truth] if truth and truth != given else [])
    values = set().union(*(set(df[c]) for c in main)) - {""}
    names, mapping = _label_mapping(values, class_names)
    cols = {c: _encode_column(df, c, mapping, names, path.name, required=True) for c in main}
    for c in df.columns:
        vals = set(df[c]) - {""}
        if c not in cols and c not in ("path", "split") and vals and vals <= set(mapping):
            cols[c] = _encode_column(df, c, mapping, names, path.name, required=False)
    if len(names) < 2:
        raise DataError(f"{path.name} has only one class ({names[0]!r}); need at least 2 classes")
    y = cols[truth] if truth else cols[given]
    files = _manifest_files(df, path)
    test = _csv_split(df, y, names, path.name, test_fraction, seed)
    bad = [] if skip_unreadable else None
    x = _decode_all(files, _choose_size(files, image_size, bad), bad)
    ids = np.array(df["path"].tolist(), dtype=str)
    return _assemble(path.stem, str(path), names, x, y, ids, test, truth_known=truth is not None,
                     label_sets=cols, bad=bad or (), keep=_readable(ids, bad or []))


# ============================================================================ zip archives

def _zip_members(zf: zipfile.ZipFile, name: str, max_bytes: int, max_files: int) -> list:
    """(info, path parts) of the members to extract; DataError for unsafe or oversized archives."""
    members, nested, total = [], [], 0
    for info in zf.infolist():
        fn = info.filename.replace("\\", "/")
        if fn.startswith("/") or re.match(r"^[A-Za-z]:", fn) or "\x00" in fn:
            raise DataError(f"{name}: member {info.filename!r} has an absolute path; refusing to extract")
        parts = [p for p in fn.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise DataError(f"{name}: member {info.filename!r} would be written outside the target "
                            "folder ('..'); refusing to extract")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DataError(f"{name}: member {info.filename!r} is a symbolic link; refusing to extract")
        if info.is_dir() or not parts or any(_is_hidden(p) for p in parts):
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type bits (many zip tools)
            raise DataError(f"{name}: member {info.filename!r} is not a regular file; refusing to extract")
        if parts[-1].lower().endswith(".zip"):
            nested.append(fn)
            continue
        members.append((info, parts))
        total += info.file_size
    if nested and not members:
        raise DataError(f"{name} contains only another zip archive ({', '.join(nested[:3])}); "
                        "unzip it first and import the inner archive or folder")
    if nested:
        warnings.warn(f"{name}: skipped {len(nested)} zip file(s) inside the archive "
                      f"({', '.join(nested[:3])}); unzip them separately", stacklevel=3)
    if len(members) > max_files:
        raise DataError(f"{name} holds {len(members)} files, over the limit of {max_files}")
    if total > max_bytes:
        raise DataError(f"{name} would expand to {total / 2**20:.0f} MB, over the limit of "
                        f"{max_bytes / 2**20:.0f} MB (possible zip bomb)")
    return members


def _extract_members(zf, members, tmp: Path, max_bytes: int, name: str) -> None:
    """Stream members into tmp, counting real bytes against the declared sizes and max_bytes."""
    import zlib
    total = 0
    for info, parts in members:
        target = tmp.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with zf.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    total += len(chunk)
                    if written > info.file_size or total > max_bytes:
                        raise DataError(f"{name}: member {info.filename!r} expands beyond its declared "
                                        "size or the size limit (possible zip bomb); refusing to extract")
                    dst.write(chunk)
        except RuntimeError:
            raise DataError(f"{name}: member {info.filename!r} is password-protected; "
                            "zip it again without a password") from None
        except (zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error) as e:
            raise DataError(f"{name}: member {info.filename!r} is corrupt or uses an unsupported "
                            f"compression ({e}); re-create the zip") from None


def safe_extract_zip(zip_path, dest_dir, *, max_bytes=ZIP_MAX_BYTES, max_files=ZIP_MAX_FILES) -> Path:
    """Extract a zip into dest_dir safely, all or nothing; returns dest_dir.

    Refuses members with '..', absolute paths or drive letters, symlinks and special files, more than
    max_files files or max_bytes uncompressed (declared sizes and real bytes counted while extracting).
    Hidden entries (__MACOSX, .DS_Store) and inner .zip files are skipped (a zip holding only a zip is
    refused). Extraction goes to a temporary sibling folder that is renamed only on success.
    """
    zp, dest = Path(zip_path).expanduser(), Path(dest_dir).expanduser()
    if not zp.is_file():
        raise DataError(f"zip file {zp} does not exist")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(f"{dest} already exists and is not an empty folder; choose a new folder")
    try:
        zf = zipfile.ZipFile(zp)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{zp.name} is not a valid zip archive ({e}); re-create it") from None
    with zf:
        members = _zip_members(zf, zp.name, int(max_bytes), int(max_files))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            _extract_members(zf, members, tmp, int(max_bytes), zp.name)
            if dest.exists():
                dest.rmdir()
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _import_zip(zip_path: Path) -> Path:
    """Extract a zip once into default_data_dir()/imports/<content hash>/ and return that folder."""
    dest = default_data_dir() / "imports" / _file_digest(zip_path)[:16]
    meta = dest / ".noisylab.json"
    if meta.is_file():
        return dest
    if dest.exists():
        shutil.rmtree(dest)  # an extraction that never got its metadata: redo it
    safe_extract_zip(zip_path, dest)
    meta.write_text(json.dumps({"name": zip_path.stem, "source": str(zip_path),
                                "imported": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return dest


# ============================================================================ CIFAR-10

def _project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _keras_datasets_dir() -> Path:
    """keras' download cache: $KERAS_HOME/datasets or ~/.keras/datasets."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def _keras_cifar_archive() -> Path:
    """Where keras 3 keeps the downloaded archive (get_file(fname='cifar-10-batches-py-target'))."""
    return _keras_datasets_dir() / "cifar-10-batches-py-target_archive"


_CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                  "test_batch")


def _keras_cifar_batches() -> Optional[Path]:
    """The extracted python batches in keras' cache (keras 3 or the older layout), if complete."""
    d = _keras_datasets_dir()
    for folder in (d / "cifar-10-batches-py-target" / "cifar-10-batches-py", d / "cifar-10-batches-py"):
        if all((folder / b).is_file() for b in _CIFAR_BATCHES):
            return folder
    return None


def _cifar_tarball() -> Optional[Path]:
    """NOISYLAB_CIFAR10 (a .tar.xz or an extracted folder), else ../shared/datasets/cifar10's tarball."""
    env = os.environ.get("NOISYLAB_CIFAR10")
    if env:
        p = Path(env).expanduser()
        if not p.exists():
            raise DataError(f"NOISYLAB_CIFAR10={env} does not exist; point it at cifar10-images.tar.xz "
                            "or its extracted folder, or unset it")
        return p
    shared = _project_root().parent / "shared" / "datasets" / "cifar10" / "cifar10-images.tar.xz"
    return shared if shared.is_file() else None


def cifar10_available() -> bool:
    """True when load_cifar10 works without a download (keras' cache or a local tarball / folder)."""
    try:
        local = _cifar_tarball()
    except DataError:
        local = None
    return bool(_keras_cifar_batches() or _keras_cifar_archive().is_file() or local)


class _BatchUnpickler(pickle.Unpickler):
    """Builds only numpy arrays and dtypes (what a CIFAR-10 python batch holds); refuses anything else."""

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise DataError(f"refusing to unpickle {module}.{name} from a CIFAR-10 batch file")


def _read_cifar_batch(path: Path) -> tuple:
    """(x uint8 (n, 32, 32, 3), y int64 (n,)) from one CIFAR-10 python batch file."""
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
        data = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(data), np.asarray(d[b"labels"], np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as e:
        raise DataError(f"CIFAR-10 batch {path} is unreadable ({e}); delete "
                        f"{_keras_datasets_dir()} and download again") from None


def _cifar_ids(split: str, y: np.ndarray) -> np.ndarray:
    """Image-folder ids split/<class>/NNNN.jpg, NNNN = running index within the class in original order."""
    counts = np.zeros(10, int)
    ids = []
    for label in y:
        ids.append(f"{split}/{CIFAR10_CLASSES[label]}/{counts[label]:04d}.jpg")
        counts[label] += 1
    return np.array(ids, dtype=str)


def _cifar10_from_arrays(x_train, y_train, x_test, y_test, source: str) -> Dataset:
    y_train, y_test = np.asarray(y_train, np.int64).ravel(), np.asarray(y_test, np.int64).ravel()
    return Dataset(name="cifar10", class_names=CIFAR10_CLASSES,
                   x_train=np.asarray(x_train, np.uint8), y_train=y_train,
                   ids_train=_cifar_ids("train", y_train), x_test=np.asarray(x_test, np.uint8),
                   y_test=y_test, ids_test=_cifar_ids("test", y_test), source=source)


def _cifar10_from_batches(folder: Path) -> Dataset:
    """CIFAR-10 from the python batches in keras' cache (read with a numpy-only unpickler)."""
    parts = [_read_cifar_batch(folder / b) for b in _CIFAR_BATCHES]
    x_tr = np.concatenate([p[0] for p in parts[:5]])
    y_tr = np.concatenate([p[1] for p in parts[:5]])
    return _cifar10_from_arrays(x_tr, y_tr, parts[5][0], parts[5][1], "cifar10")


def _cifar10_from_keras() -> Dataset:
    """keras.datasets.cifar10.load_data() when only keras' archive is cached (keras extracts it)."""
    import keras
    (x_tr, y_tr), (x_te, y_te) = keras.datasets.cifar10.load_data()
    return _cifar10_from_arrays(x_tr, y_tr, x_te, y_te, "cifar10")


def _extract_tarball(tarball: Path, dest: Path) -> Path:
    """Extract the CIFAR-10 image tarball once into dest (tarfile 'data' filter; temp folder + rename)."""
    if (dest / ".complete").is_file():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        with tarfile.open(tarball, "r:*") as tf:
            tf.extractall(tmp, filter="data")
        (tmp / ".complete").write_text(str(tarball))
        os.replace(tmp, dest)
    except (tarfile.TarError, OSError, EOFError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"could not extract {tarball} ({e}); check the file or download it again") from None
    return dest


_CIFAR_HELP = ("CIFAR-10 is not available offline. Either download it (the page's download button or "
               "noisycore.datasets.download_cifar10(), about 170 MB), point the environment variable "
               "NOISYLAB_CIFAR10 at a local cifar10-images.tar.xz or its extracted folder, load your own "
               "image folder, or use the built-in dataset.")
_CIFAR_MEMBER = re.compile(r"^(?:\./)?(train|test)/([a-z]+)/([^/]+\.(?:jpg|jpeg|png))$", re.IGNORECASE)


def _format_hint(name: str):
    """Pillow formats to try first (skipping format sniffing saves time over 60,000 small files)."""
    return ("JPEG", "PNG") if name.lower().endswith((".jpg", ".jpeg")) else None


def _cifar10_from_tar(tarball: Path) -> Dataset:
    """Decode CIFAR-10 straight from the image-folder tarball, streaming (nothing is written to disk).

    Members train/<class>/NNNN.jpg and test/<class>/NNNN.jpg; anything else is ignored.
    """
    from PIL import Image
    index = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
    rows, images, bad = [], [], []
    try:
        with tarfile.open(tarball, "r|*") as tf:
            for m in tf:
                hit = _CIFAR_MEMBER.match(m.name)
                if not (m.isfile() and hit):
                    continue
                split, cls, _ = hit.groups()
                if cls not in index:
                    raise DataError(f"{tarball.name}: {m.name} is in class folder {cls!r}, which is not a "
                                    f"CIFAR-10 class ({', '.join(CIFAR10_CLASSES)})")
                data = tf.extractfile(m).read()
                try:
                    with Image.open(io.BytesIO(data), formats=_format_hint(m.name)) as im:
                        images.append(np.asarray(_to_rgb(im).resize((32, 32)) if im.size != (32, 32)
                                                 else _to_rgb(im), dtype=np.uint8))
                except Exception as e:  # noqa: BLE001
                    bad.append((m.name, f"corrupt image ({type(e).__name__})"))
                    continue
                rows.append((split == "test", index[cls], m.name.removeprefix("./")))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"could not read {tarball} ({e}); check the file or download it again") from None
    _raise_bad(bad, len(rows) + len(bad))
    if not rows:
        raise DataError(f"{tarball} holds no train/<class>/*.jpg images; is it cifar10-images.tar.xz?")
    order = sorted(range(len(rows)), key=lambda i: rows[i])
    test = np.array([rows[i][0] for i in order])
    y = np.array([rows[i][1] for i in order], np.int64)
    ids = np.array([rows[i][2] for i in order], dtype=str)
    x = np.stack([images[i] for i in order])
    del images
    return _assemble("cifar10", "cifar10", CIFAR10_CLASSES, x, y, ids, test)


def _cifar10_origin() -> tuple:
    """(fingerprint, build) for the first CIFAR-10 source found; DataError saying how to get one."""
    batches = _keras_cifar_batches()
    if batches is not None:
        return _stat_list([(batches / b, b) for b in _CIFAR_BATCHES]), lambda: _cifar10_from_batches(batches)
    archive = _keras_cifar_archive()
    if archive.is_file():
        return _stat_list([(archive, archive.name)]), _cifar10_from_keras
    local = _cifar_tarball()
    if local is not None and local.is_dir():
        scan = _scan_folder(local)
        return [str(local.resolve()), _stat_list(scan.files)], lambda: _load_scan(
            scan, name="cifar10", source="cifar10", image_size=32, test_fraction=0.2, seed=0,
            class_order=CIFAR10_CLASSES)
    if local is not None:
        return [str(local.resolve()), _stat_list([(local, local.name)])], lambda: _cifar10_from_tar(local)
    raise DataError(_CIFAR_HELP)


def load_cifar10(*, cache_dir=None) -> Dataset:
    """CIFAR-10 (Krizhevsky, 2009): 50,000 train / 10,000 test 32x32 RGB images, 10 classes, no download.

    Tries keras' cache (~/.keras/datasets or $KERAS_HOME), then the image-folder tarball
    (NOISYLAB_CIFAR10: a .tar.xz or an extracted folder; else ../shared/datasets/cifar10/
    cifar10-images.tar.xz), else raises DataError saying how to get it. The decoded arrays are cached
    as one .npz in cache_dir (default default_data_dir()/cache). Ids are train/<class>/NNNN.jpg
    either way (NNNN = index within the class in the original order), so CIFAR-10N rows match.
    """
    fingerprint, build = _cifar10_origin()
    return _cached({"kind": "cifar10", "origin": fingerprint, "version": CACHE_VERSION}, build,
                   cache_dir=cache_dir)


def _download(url: str, target: Path, timeout: float, progress) -> None:
    """Stream url into target (temp file + rename), calling progress(done_bytes, total_bytes)."""
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            total, done = int(resp.headers.get("Content-Length") or 0), 0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise DataError(f"could not download {url} ({reason}). Check the internet connection, or point "
                        "NOISYLAB_CIFAR10 at a local copy of cifar10-images.tar.xz") from None


def download_cifar10(*, url=CIFAR10_URL, timeout=10, progress: Optional[Callable] = None) -> Path:
    """Download keras' CIFAR-10 archive into keras' cache and extract it; returns the batches folder.

    timeout (seconds) bounds the connect and each read; progress(done_bytes, total_bytes) is called
    per MiB (total 0 if unknown). Network failures raise DataError quickly.
    """
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise DataError(f"url={url!r} must start with http:// or https://")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise DataError(f"timeout={timeout!r} must be a positive number of seconds")
    archive = _keras_cifar_archive()
    archive.parent.mkdir(parents=True, exist_ok=True)
    _download(url, archive, float(timeout), progress)
    if url == CIFAR10_URL and _file_digest(archive) != CIFAR10_SHA256:
        archive.unlink(missing_ok=True)
        raise DataError(f"the file downloaded from {url} is incomplete or corrupt (checksum differs); "
                        "try again")
    dest = archive.parent / "cifar-10-batches-py-target"
    if dest.exists():
        shutil.rmtree(dest)
    _extract_tarball(archive, dest)
    return dest / "cifar-10-batches-py"


# ============================================================================ built-in shapes

def _polygon(u, v, n: int, apothem: float, phase: float = 0.0):
    """Signed distance to a regular n-gon: max_i(u cos a_i + v sin a_i) - apothem, a_i = phase + 2 pi i / n."""
    a = phase + 2 * np.pi * np.arange(n) / n
    return np.max(u[..., None] * np.cos(a) + v[..., None] * np.sin(a), axis=-1) - apothem


def _box(u, v, hu, hv):
    return np.maximum(np.abs(u) - hu, np.abs(v) - hv)


def _star(u, v):
    period = 2 * np.pi / 5
    t = np.abs(np.mod(np.arctan2(v, u) + np.pi / 2, period) / period - 0.5) * 2  # 1 at the tips
    return (np.hypot(u, v) - (0.45 + 0.55 * t)) * 0.6


def _arrow(u, v):
    head = np.maximum(0.05 - u, np.abs(v) - 0.8 * (0.95 - u))
    return np.minimum(_box(u + 0.45, v, 0.5, 0.22), head)


# Signed distance per class in shape units (radius 1, v pointing down); negative inside.
_SHAPES = (
    lambda u, v: np.hypot(u, v) - 0.95,                                          # circle
    lambda u, v: np.abs(np.hypot(u, v) - 0.72) - 0.24,                           # ring
    lambda u, v: _box(u, v, 0.75, 0.75),                                         # square
    lambda u, v: np.abs(_box(u, v, 0.62, 0.62)) - 0.2,                           # frame
    lambda u, v: _polygon(u, v, 3, 0.5, np.pi / 2),                              # triangle (up)
    lambda u, v: (np.abs(u) + np.abs(v) - 1.0) / np.sqrt(2),                     # diamond
    _star,                                                                       # star
    lambda u, v: np.minimum(_box(u, v, 0.28, 0.92), _box(u, v, 0.92, 0.28)),     # plus
    lambda u, v: _polygon(u, v, 6, 0.85),                                        # hexagon
    _arrow,                                                                      # arrow (right)
)
# Rotation: +-15 degrees around a base angle; these classes may also turn by multiples of 90 (or 360/n).
_BASE_TURNS = {4: np.pi, 6: 2 * np.pi / 5, 8: np.pi / 3, 9: np.pi / 2, 0: 0.0, 1: 0.0}


def _background(rng, n: int, s: int) -> np.ndarray:
    """Textured backgrounds (n, s, s, 3) float32: base colour + two random gratings + pixel noise."""
    t = np.arange(s, dtype=np.float32) / s
    img = np.empty((n, s, s, 3), np.float32)
    img[:] = rng.uniform(0, 255, (n, 1, 1, 3)).astype(np.float32)
    for _ in range(2):
        ang, freq, ph = (rng.uniform(0, hi, (n, 1)).astype(np.float32) for hi in (np.pi, 5, 2 * np.pi))
        kx, ky = 2 * np.pi * (freq + 1) * np.cos(ang), 2 * np.pi * (freq + 1) * np.sin(ang)
        # sin(kx x + ky y + ph) = sin(kx x + ph) cos(ky y) + cos(kx x + ph) sin(ky y), separable in x, y
        ax, ay = kx * t + ph, ky * t
        wave = (np.cos(ay)[:, :, None] * np.sin(ax)[:, None, :] + np.sin(ay)[:, :, None] * np.cos(ax)[:, None, :])
        img += wave[..., None] * rng.uniform(3, 12, (n, 1, 1, 3)).astype(np.float32)
    return img


def _shape_colours(rng, bg_mean: np.ndarray) -> np.ndarray:
    """Random RGB colours at least 120 (Euclidean, 0..255) away from each background's mean colour."""
    col = rng.uniform(0, 255, bg_mean.shape)
    for _ in range(20):
        close = np.linalg.norm(col - bg_mean, axis=1) < 120
        if not close.any():
            break
        col[close] = rng.uniform(0, 255, (int(close.sum()), 3))
    return col.astype(np.float32)


def _render(rng, y: np.ndarray, s: int) -> np.ndarray:
    """uint8 (n, s, s, 3) images of the classes y: a shape with random size, place, angle and colours."""
    n = len(y)
    img = _background(rng, n, s)
    r = rng.uniform(0.28, 0.45, n) * s                               # radius in pixels
    cx, cy = (rng.uniform(r * 0.95, s - r * 0.95) for _ in range(2))
    turns = np.array([_BASE_TURNS.get(int(c), 0.0) for c in y]) * rng.integers(0, 12, n)
    theta = turns + np.deg2rad(rng.uniform(-15, 15, n))
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    f32 = (lambda a: a.astype(np.float32)[:, None, None])
    dx, dy = xx[None] - f32(cx), yy[None] - f32(cy)
    c, sn, rr = f32(np.cos(theta)), f32(np.sin(theta)), f32(r)
    u, v = (c * dx + sn * dy) / rr, (-sn * dx + c * dy) / rr
    dist = np.empty_like(u)
    for k, shape in enumerate(_SHAPES):
        m = y == k
        if m.any():
            dist[m] = shape(u[m], v[m])
    alpha = np.clip(0.5 - dist * rr, 0, 1)[..., None]                   # 1-pixel antialiased edge
    fg = _shape_colours(rng, img.mean(axis=(1, 2)))[:, None, None, :]
    shade = 1 + 0.25 * (u * rng.uniform(-1, 1, (n, 1, 1)).astype(np.float32))[..., None]
    img += alpha * (fg * shade - img)
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= 6
    img += noise
    np.clip(img, 0, 255, out=img)
    img += 0.5  # round to nearest on the cast below
    return img.astype(np.uint8)


def _builtin_split(n: int, seed: int, part: int, s: int, split: str) -> tuple:
    """(x, y, ids) for one split: balanced classes, rendered in chunks from the seed stream [seed, part]."""
    rng = np.random.default_rng([seed, part])
    y = rng.permutation(np.arange(n) % len(BUILTIN_CLASSES)).astype(np.int64)
    x = np.empty((n, s, s, 3), np.uint8)
    chunk = 256  # small chunks keep the float32 work arrays in cache
    for start in range(0, n, chunk):
        x[start:start + chunk] = _render(rng, y[start:start + chunk], s)
    # Neutral ids: a class name in the id would give the true label away on the Review page.
    ids = np.array([f"{split}/{i:05d}.png" for i in range(n)], dtype=str)
    return x, y, ids


def load_builtin(*, n_train=8000, n_test=2000, seed=0, image_size=32) -> Dataset:
    """The built-in offline dataset: 10 classes of coloured shapes on textured, noisy backgrounds.

    Deterministic in seed (train and test come from separate streams, so n_test does not change the
    training images); classes balanced (n % 10 spread over the first classes); x uint8
    (n, image_size, image_size, 3). Shapes vary in size (radius 0.28-0.45 of the side), place, angle (+-15 deg,
    plus class-preserving turns) and colour; a small CNN reaches ~90-97% test accuracy in a few epochs.
    """
    for nm, val, lo in (("n_train", n_train, 10), ("n_test", n_test, 10)):
        if not isinstance(val, (int, np.integer)) or val < lo:
            raise DataError(f"{nm}={val!r} must be a whole number >= {lo}")
    if not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed={seed!r} must be a whole number")
    s = _check_size(image_size)
    x_tr, y_tr, id_tr = _builtin_split(int(n_train), int(seed), 0, s, "train")
    x_te, y_te, id_te = _builtin_split(int(n_test), int(seed), 1, s, "test")
    return Dataset(name="builtin", class_names=BUILTIN_CLASSES, x_train=x_tr, y_train=y_tr,
                   ids_train=id_tr, x_test=x_te, y_test=y_te, ids_test=id_te, source="builtin")


# ============================================================================ cache, dispatch, listing

DATASETS = {"builtin": load_builtin, "cifar10": load_cifar10}


def _cache_file(key: dict, cache_dir=None) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return Path(cache_dir or default_data_dir() / "cache") / f"{key['kind']}-{digest}.npz"


def _write_npz(ds: Dataset, path: Path) -> None:
    """Save a Dataset as one uncompressed .npz (no pickles: ids and names as unicode arrays), atomically."""
    names = list(ds.label_sets)
    meta = {"name": ds.name, "source": ds.source, "truth_known": ds.truth_known, "label_sets": names,
            "version": CACHE_VERSION, "skipped": [list(b) for b in ds.skipped], "total_files": ds.total_files}
    arrays = {a: getattr(ds, a) for a in ("x_train", "y_train", "ids_train", "x_test", "y_test", "ids_test")}
    arrays.update({f"label_set_{i}": ds.label_sets[n] for i, n in enumerate(names)})
    arrays.update(class_names=np.array(ds.class_names, dtype=str), meta=np.array(json.dumps(meta)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_npz(path: Path) -> Dataset:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("version") != CACHE_VERSION:
            raise ValueError("old cache format")
        sets = {n: z[f"label_set_{i}"] for i, n in enumerate(meta["label_sets"])}
        return Dataset(name=meta["name"], class_names=tuple(z["class_names"].tolist()),
                       x_train=z["x_train"], y_train=z["y_train"], ids_train=z["ids_train"],
                       x_test=z["x_test"], y_test=z["y_test"], ids_test=z["ids_test"],
                       truth_known=bool(meta["truth_known"]), label_sets=sets, source=meta["source"],
                       skipped=tuple(tuple(b) for b in meta.get("skipped", ())),
                       total_files=int(meta.get("total_files", 0)))


def _cached(key: dict, build: Callable[[], Dataset], *, cache_dir=None) -> Dataset:
    """The Dataset cached under key in cache_dir (default_data_dir()/cache), else build() and cache it."""
    path = _cache_file(key, cache_dir)
    if path.is_file():
        try:
            return _read_npz(path)
        except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt, never shown to the user
            path.unlink(missing_ok=True)
    ds = build()
    try:
        _write_npz(ds, path)
    except OSError as e:
        warnings.warn(f"could not write the dataset cache {path} ({e}); the next load will decode again",
                      stacklevel=2)
    return ds


def _stat_list(files) -> list:
    """[id, size, mtime_ns] per file: the part of a cache key that changes when any image changes."""
    out = []
    for p, rel in files:
        st = p.stat()
        out.append([rel, st.st_size, st.st_mtime_ns])
    return out


def _settings(config: DataConfig) -> dict:
    return {"image_size": config.image_size, "test_fraction": config.test_fraction, "seed": config.seed,
            "version": CACHE_VERSION}


def skip_unreadable(config: DataConfig) -> bool:
    """config.skip_unreadable, where None means: on for folders and zips, off for CSV manifests."""
    if config.skip_unreadable is not None:
        return bool(config.skip_unreadable)
    return not config.source.strip().lower().endswith(".csv")


def _load_folder_cached(root: Path, config: DataConfig, *, name: str, source: str) -> Dataset:
    scan = _scan_folder(root)
    skip = skip_unreadable(config)
    key = {"kind": "folder", "root": str(scan.root.resolve()), "files": _stat_list(scan.files),
           **_settings(config), "skip": skip}
    ds = _cached(key, lambda: _load_scan(scan, name=name, source=source, image_size=config.image_size,
                                         test_fraction=config.test_fraction, seed=config.seed,
                                         truth_known=False, skip_unreadable=skip))
    # The folder names are the user's labels (truth unknown), also for caches written before this rule.
    return dataclasses.replace(ds, name=name, source=source, truth_known=False)


def _load_csv_cached(path: Path, config: DataConfig) -> Dataset:
    df = read_label_manifest(path)
    base = path.parent.resolve()
    files = [(base / rel, rel) for rel in df["path"] if (base / rel).is_file()]
    skip = skip_unreadable(config)
    key = {"kind": "csv", "csv": _file_digest(path), "path": str(path.resolve()), "files": _stat_list(files),
           "label_column": config.label_column, **_settings(config), **({"skip": True} if skip else {})}
    return _cached(key, lambda: load_csv_manifest(path, label_column=config.label_column,
                                                  image_size=config.image_size,
                                                  test_fraction=config.test_fraction, seed=config.seed,
                                                  skip_unreadable=skip))


def _resize_all(x: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, size, size, 3), one image at a time (no float copy of the set)."""
    from PIL import Image
    out = np.empty((len(x), size, size, 3), np.uint8)
    for i, img in enumerate(x):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))
    return out


def _load_cifar10_sized(config: DataConfig) -> Dataset:
    """CIFAR-10, resized (and cached) when config.image_size is not 32."""
    size = _check_size(config.image_size) if config.image_size is not None else 32
    if size == 32:
        return load_cifar10()
    fingerprint, _ = _cifar10_origin()

    def build():
        ds = load_cifar10()
        return dataclasses.replace(ds, x_train=_resize_all(ds.x_train, size), x_test=_resize_all(ds.x_test, size))
    return _cached({"kind": "cifar10", "origin": fingerprint, "size": size, "version": CACHE_VERSION}, build)


def load_dataset(config: DataConfig) -> Dataset:
    """Load what config.source names ("builtin", "cifar10", a folder, a .zip or a .csv), cached.

    Decoded images are cached as one .npz per source + settings in default_data_dir()/cache; a zip is
    extracted once into default_data_dir()/imports/<hash>/. max_train / max_test then keep a seeded,
    stratified subset.
    """
    if not isinstance(config, DataConfig):
        raise UserError(f"load_dataset expects a DataConfig, got {type(config).__name__}")
    src = config.source.strip()
    if src == "builtin":
        ds = load_builtin(seed=config.seed, image_size=config.image_size or 32)
    elif src == "cifar10":
        ds = _load_cifar10_sized(config)
    else:
        path = Path(src).expanduser()
        if not path.exists():
            raise DataError(f"{src} does not exist; give 'builtin', 'cifar10', or the path of an image "
                            "folder, a .zip or a .csv manifest")
        if path.is_dir():
            ds = _load_folder_cached(path, config, name=path.name, source=str(path))
        elif path.suffix.lower() == ".zip":
            imported = _import_zip(path)
            try:
                ds = _load_folder_cached(imported, config, name=path.stem, source=str(path))
            except DataError as e:   # name the user's zip, never the internal import folder
                raise DataError(str(e).replace(str(imported), path.name)) from None
        elif path.suffix.lower() == ".csv":
            ds = _load_csv_cached(path, config)
        else:
            raise DataError(f"{path.name} is neither a folder, a .zip nor a .csv; "
                            "give an image folder, a zip of one, or a CSV manifest")
    return _limit(ds, config.max_train, config.max_test, config.seed)


def original_files(config: DataConfig, ids) -> list:
    """The user's original image file (a Path, any size and format) per id, or None where there is none
    (built-in and CIFAR-10 images, a moved folder, a deleted zip)."""
    ids = [str(i) for i in ids]
    src = config.source.strip()
    path = Path(src).expanduser()
    if src in DATASETS or not path.exists():
        return [None] * len(ids)
    if path.is_dir():
        base = _effective_root(path)
    elif path.suffix.lower() == ".zip":
        base = _effective_root(_import_zip(path))
    else:
        base = path.parent
    base = base.resolve()
    out = []
    for i in ids:
        p = (base / i)
        out.append(p if p.is_file() and p.resolve().is_relative_to(base) else None)
    return out


def list_sources() -> list:
    """What can be loaded: builtin, cifar10 (and whether it works offline), earlier imported zips."""
    cifar = cifar10_available()
    out = [{"name": "builtin", "source": "builtin", "kind": "builtin", "available": True,
            "description": "10 classes of coloured shapes, generated offline (8,000 train / 2,000 test)"},
           {"name": "cifar10", "source": "cifar10", "kind": "cifar10", "available": cifar,
            "description": "CIFAR-10: 50,000 train / 10,000 test 32x32 photos, 10 classes"
                           + ("" if cifar else " (download needed)")}]
    imports = default_data_dir() / "imports"
    for meta_file in sorted(imports.glob("*/.noisylab.json")) if imports.is_dir() else []:
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        out.append({"name": str(meta.get("name", meta_file.parent.name)), "source": str(meta_file.parent),
                    "kind": "import", "available": True,
                    "description": f"imported from {meta.get('source', '?')} on {meta.get('imported', '?')}"})
    return out
