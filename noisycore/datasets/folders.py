"""Image folders (one sub-folder per class) and CSV manifests (``path,label,...``).

Every bad input raises ``DataError`` naming the file or row and what to do."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

from noisycore.datasets.base import (Dataset, _assemble, _choose_size, _class_order, _decode_all, _holdout,
                                     _is_hidden, _is_image_name, _readable)
from noisycore.errors import DataError


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
    if all_int:   # the integers present, in numeric order (1..K gives K classes "1".."K", no empty "0")
        ints = sorted({int(v) for v in values})
        if ints[0] < 0:
            raise DataError(f"integer labels must be 0 or more, found {ints[0]}")
        index = {v: i for i, v in enumerate(ints)}
        return tuple(str(v) for v in ints), {v: index[int(v)] for v in values}
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
    for CIFAR-10's set), or the integers present in numeric order for integer labels (1..K: "1".."K"), or ``class_names`` if passed.
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
