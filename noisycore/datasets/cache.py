"""Decoded datasets cached as one .npz per source and settings (default_data_dir()/cache), and
the cached loaders of folders, manifests and resized CIFAR-10."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from noisycore.config import DataConfig, default_data_dir
from noisycore.datasets.base import CACHE_VERSION, Dataset
from noisycore.datasets.folders import _load_scan, _scan_folder, load_csv_manifest, read_label_manifest
from noisycore.datasets.safezip import _file_digest
from noisycore.util import save_npz


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
    save_npz(path, **arrays)


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
