"""Datasets: uint8 images, int64 labels, class names and stable ids, from every source the app offers.

Sources: the built-in offline shapes set, CIFAR-10 (Krizhevsky, 2009; keras cache, a local image-folder
tarball, or a download), an image folder, a .zip of one, and a CSV manifest (``path,label,...``).
Images stay uint8 (N, H, W, 3) in memory; float conversion happens per batch in the input pipeline.
Every bad input raises ``DataError`` naming the file / row and what to do.

    base      the Dataset, safe image decoding, the test holdout and training subsets
    builtin   the built-in shapes          cifar10   CIFAR-10 (cache, tarball, download)
    folders   image folders, CSV manifests safezip   zip archives, extracted safely once
    cache     decoded datasets cached as .npz, and the cached loaders
This module dispatches a DataConfig to them (``load_dataset``) and re-exports their public names.
"""
from __future__ import annotations

import json
from pathlib import Path

from noisycore.config import DataConfig, default_data_dir
from noisycore.datasets.base import (ASYMMETRIC_PAIRS, CIFAR10_CLASSES, Dataset, _limit, decode_file, file_dims,
                                     preview, skipped_text)
from noisycore.datasets.builtin import BUILTIN_CLASSES, load_builtin
from noisycore.datasets.cache import _load_csv_cached, _load_folder_cached, skip_unreadable
from noisycore.datasets.cifar10 import (CIFAR10_URL, _load_cifar10_sized, cifar10_available,
                                        download_cifar10, load_cifar10)
from noisycore.datasets.folders import (_effective_root, load_csv_manifest, load_image_folder,
                                        read_label_manifest)
from noisycore.datasets.safezip import _import_zip, safe_extract_zip
from noisycore.errors import DataError, UserError

__all__ = ["ASYMMETRIC_PAIRS", "BUILTIN_CLASSES", "CIFAR10_CLASSES", "CIFAR10_URL", "DATASETS", "Dataset",
           "cifar10_available", "decode_file", "download_cifar10", "file_dims", "list_sources", "load_builtin", "load_cifar10",
           "load_csv_manifest", "load_dataset", "load_image_folder", "original_files", "preview", "read_label_manifest",
           "safe_extract_zip", "scale_up", "skip_unreadable", "skipped_text", "source_files"]


DATASETS = {"builtin": load_builtin, "cifar10": load_cifar10}


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


def scale_up(config: DataConfig, dataset: Dataset, *, min_side: int) -> tuple:
    """(config, dataset) with images of at least ``min_side`` pixels per side: when the images were
    decoded at their own size (``image_size`` not set) and are smaller, they are decoded again at
    ``min_side`` and ``config.image_size`` says so (a model's needs: catalog.MODEL_MIN_SIDE).
    A size the user chose is kept (the model then says what it needs)."""
    side = min(dataset.image_shape[:2])
    if config.image_size is not None or side >= min_side:
        return config, dataset
    config = config.replace(image_size=int(min_side))
    return config, load_dataset(config)


def original_files(config: DataConfig, ids) -> list:
    """The user's original image file (a Path, any size and format) per id, or None where there is none
    (built-in and CIFAR-10 images, a moved folder, a deleted zip)."""
    files = source_files(config.source, ids)
    return [None] * len(list(ids)) if files is None else files


def source_files(source: str, ids):
    """Where a dataset's images came from: None when not from files (``source`` "builtin", "cifar10", or
    empty), else the original file (a Path) per id, None for an id whose file is gone (the folder moved,
    the zip or the file deleted; a zip that cannot be imported any more counts as gone)."""
    ids = [str(i) for i in ids]
    src = str(source or "").strip()
    if not src or src in DATASETS:
        return None
    path = Path(src).expanduser()
    try:
        if not path.exists():
            return [None] * len(ids)
        if path.is_dir():
            base = _effective_root(path)
        elif path.suffix.lower() == ".zip":
            base = _effective_root(_import_zip(path))
        else:
            base = path.parent
        base = base.resolve()
    except (OSError, UserError):
        return [None] * len(ids)
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
