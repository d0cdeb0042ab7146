"""Real human labels: a column of the dataset's own CSV manifest, a CSV of labels by image id, or the
CIFAR-10N file ``CIFAR-10_human.pt`` (Wei et al., ICLR 2022) read with a restricted unpickler that
builds only plain arrays and dicts. Ids are matched to the dataset's, every image must get a label.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from noisycore.config import ConfigError
from noisycore.errors import DataError
from noisycore.datasets import read_label_manifest
from noisycore.datasets.base import CIFAR10_CLASSES


# CIFAR-10N label set names -> keys in CIFAR-10_human.pt (Wei et al., ICLR 2022).
PT_LABEL_SETS = {"aggre": "aggre_label", "worst": "worse_label", "random1": "random_label1",
                 "random2": "random_label2", "random3": "random_label3", "clean": "clean_label"}


MAX_PT_BYTES = 50 * 2**20      # a CIFAR-10N file is about 2.4 MB; refuse anything far larger


def _multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: only the latin-1 codec is allowed."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise DataError(f"refusing to load: the pickle calls _codecs.encode with codec {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict:
    ma = _multiarray()
    import collections
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("collections", "OrderedDict"): collections.OrderedDict,
               ("_codecs", "encode"): _latin1_encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = ma._reconstruct
        allowed[(mod, "scalar")] = ma.scalar
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays, dtypes, scalars and dicts; everything else is refused."""

    def __init__(self, file, *, source: str):
        super().__init__(file)
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"refusing to load {self._source}: the file contains {module}.{name}, "
                            "which a CIFAR-10N label file never needs") from None

    def persistent_load(self, pid):
        raise DataError(f"refusing to load {self._source}: it holds torch tensor storage, but a CIFAR-10N "
                        "label file is a dict of numpy arrays")


def _pickle_bytes(path: Path) -> bytes:
    """The pickle inside a torch.save zip (``<archive>/data.pkl``), or the file itself if it is a raw pickle."""
    if path.stat().st_size > MAX_PT_BYTES:
        raise DataError(f"{path} is {path.stat().st_size / 2**20:.0f} MB; a CIFAR-10N label file is about "
                        f"2.4 MB (limit {MAX_PT_BYTES // 2**20} MB)")
    if not zipfile.is_zipfile(path):
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if i.filename.endswith("data.pkl")
                       and i.filename.count("/") <= 1]
            if len(members) != 1:
                raise DataError(f"{path} is a zip but not a torch.save file: expected one <archive>/data.pkl, "
                                f"found {len(members)}")
            if members[0].file_size > MAX_PT_BYTES:
                raise DataError(f"{path}: data.pkl unpacks to {members[0].file_size} bytes, over the "
                                f"{MAX_PT_BYTES // 2**20} MB limit")
            return zf.read(members[0])
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is a damaged zip archive ({e})") from None


def read_cifar10n_pt(path) -> dict:
    """Read CIFAR-10_human.pt (Wei et al., ICLR 2022) without torch: {key: int64 array (N,)}.

    The file is a torch.save zip whose data.pkl is a pickled dict of numpy int arrays (a raw pickle
    is accepted too). A restricted unpickler builds only numpy arrays and dicts, so a planted
    pickle cannot run code: anything else raises DataError.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"CIFAR-10N label file {path} does not exist; give the path to CIFAR-10_human.pt")
    data = _pickle_bytes(p)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), source=str(p)).load()
    except DataError:
        raise
    except Exception as e:  # truncated / not a pickle: any unpickling failure means an unusable file
        raise DataError(f"{path} is not a readable CIFAR-10N label file ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{path} holds a {type(obj).__name__}, not a dict of label arrays")
    out = {}
    for key, value in obj.items():
        arr = np.asarray(value)
        if not isinstance(key, str) or arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{path}: entry {key!r} is not a 1-D integer label array (shape {arr.shape}, "
                            f"dtype {arr.dtype})")
        out[key] = arr.astype(np.int64)
    return out


def norm_ids(ids) -> np.ndarray:
    """Ids compared as relative paths: str, '/' separators, no leading './'."""
    s = pd.Series(np.asarray(ids, dtype=object)).astype(str).str.strip().str.replace("\\", "/", regex=False)
    return s.str.replace(r"^(\./)+", "", regex=True).to_numpy(dtype=object)


def examples_text(values, n: int = 3) -> str:
    values = list(values)
    return ", ".join(map(str, values[:n])) + (", ..." if len(values) > n else "")


def match_ids(source_ids, dataset_ids, *, what: str) -> np.ndarray:
    """Row of ``source_ids`` for every dataset id (N,); DataError if ids repeat or some are missing."""
    index = pd.Index(norm_ids(source_ids))
    if not index.is_unique:
        dup = index[index.duplicated()].unique()
        raise DataError(f"{what} lists {len(dup)} id(s) more than once (e.g. {examples_text(dup)}); "
                        "each image may have one row")
    wanted = norm_ids(dataset_ids)
    rows = index.get_indexer(wanted)
    missing = wanted[rows < 0]
    if missing.size:
        raise DataError(f"{what} has no row for {missing.size} of the {wanted.size} training images "
                        f"(e.g. {examples_text(missing)}); every training id must be covered")
    return rows


def labels_from_values(values, class_names, *, what: str) -> np.ndarray:
    """Class names (or integer strings) -> int64 indices; empty cells -> -1."""
    s = pd.Series(np.asarray(values, dtype=object))
    missing = s.isna() | (s.astype(str).str.strip() == "")
    text = s.astype(str).str.strip()
    lookup = {name: i for i, name in enumerate(class_names)}
    lookup.update({str(i): i for i in range(len(class_names)) if str(i) not in lookup})
    out = text.map(lookup)
    unknown = ~missing & out.isna()
    if unknown.any():
        bad = text[unknown].unique()
        raise DataError(f"{what} contains {len(bad)} unknown class name(s) (e.g. {examples_text(bad)}); "
                        f"valid names: {', '.join(class_names)}")
    return out.where(~missing, -1).astype(np.int64).to_numpy()


def require_complete(labels: np.ndarray, ids, *, what: str) -> np.ndarray:
    gaps = np.flatnonzero(labels < 0)
    if gaps.size:
        raise DataError(f"{what} has no label for {gaps.size} training image(s) "
                        f"(e.g. {examples_text(np.asarray(ids)[gaps])}); fill them in or pick another label set")
    return labels


def _human_from_dataset(dataset, label_set: str) -> np.ndarray:
    sets = dict(getattr(dataset, "label_sets", None) or {})
    if label_set not in sets:
        choices = ", ".join(sorted(sets)) or "none (load a CSV manifest with extra label columns)"
        raise ConfigError(f"label set {label_set!r} is not a column of this dataset; available: {choices}")
    labels = np.asarray(sets[label_set]).astype(np.int64)
    return require_complete(labels, dataset.ids_train, what=f"label set {label_set!r}")


def _human_from_csv(dataset, path: Path, label_set: str) -> np.ndarray:
    df = read_label_manifest(path)
    if label_set not in df.columns or label_set == "path":
        cols = [c for c in df.columns if c != "path"]
        raise ConfigError(f"label set {label_set!r} is not a column of {path.name}; available: {', '.join(cols)}")
    rows = match_ids(df["path"].to_numpy(), dataset.ids_train, what=f"{path.name}")
    labels = labels_from_values(df[label_set].to_numpy()[rows], dataset.class_names,
                                 what=f"{path.name} column {label_set!r}")
    return require_complete(labels, dataset.ids_train, what=f"{path.name} column {label_set!r}")


def cifar10n_ids(clean_labels, class_names=CIFAR10_CLASSES) -> np.ndarray:
    """Id of each row of a CIFAR-10N array (keras.datasets order): the k-th image of class c is
    ``train/<class_names[c]>/<k:04d>.jpg``. Shapes: (N,) -> (N,) str."""
    clean = np.asarray(clean_labels)
    ids = np.empty(clean.size, dtype=object)
    for c, name in enumerate(class_names):
        rows = np.flatnonzero(clean == c)
        ids[rows] = [f"train/{name}/{k:04d}.jpg" for k in range(rows.size)]
    return ids


def _human_from_pt(dataset, path: Path, label_set: str) -> np.ndarray:
    key = PT_LABEL_SETS.get(label_set, label_set)
    arrays = read_cifar10n_pt(path)
    if key not in arrays or "clean_label" not in arrays:
        raise ConfigError(f"label set {label_set!r} is not in {path.name}; choose one of: "
                          f"{', '.join(n for n, k in PT_LABEL_SETS.items() if k in arrays)}")
    if tuple(dataset.class_names) != CIFAR10_CLASSES:
        raise DataError(f"{path.name} holds CIFAR-10 labels, but this dataset's classes are "
                        f"{', '.join(dataset.class_names)}")
    clean, chosen = arrays["clean_label"], arrays[key]
    if chosen.shape != clean.shape or clean.min() < 0 or clean.max() > 9 or chosen.min() < 0 or chosen.max() > 9:
        raise DataError(f"{path.name}: {key} and clean_label must be equal-length arrays of classes 0..9")
    try:
        rows = match_ids(cifar10n_ids(clean), dataset.ids_train, what=path.name)
    except DataError as e:
        raise DataError(f"these labels are not for this CIFAR-10 copy: {e}") from None
    wrong = np.flatnonzero(clean[rows] != np.asarray(dataset.y_train))
    if wrong.size:
        examples = examples_text(np.asarray(dataset.ids_train)[wrong])
        raise DataError(f"these labels are not for this CIFAR-10 copy: the file's clean label differs from "
                        f"the dataset's for {wrong.size} image(s) (e.g. {examples})")
    return chosen[rows].astype(np.int64)


def human_labels(dataset, *, label_set: str, source=None) -> np.ndarray:
    """Real human labels (N,) for the dataset's training ids, from one of three places:
    ``source`` None -> ``dataset.label_sets[label_set]``; a ``.csv`` manifest (path column + label
    columns, matched by id); a CIFAR-10N ``CIFAR-10_human.pt`` (Wei et al., ICLR 2022)."""
    if not label_set:
        raise ConfigError("human labels need a label set name (e.g. aggre, worst, random1)")
    if source is None:
        return _human_from_dataset(dataset, label_set)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"human label file {source} does not exist; give a CSV manifest or CIFAR-10_human.pt")
    if path.suffix.lower() in (".csv", ".txt"):
        return _human_from_csv(dataset, path, label_set)
    return _human_from_pt(dataset, path, label_set)
