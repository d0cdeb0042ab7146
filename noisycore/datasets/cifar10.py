"""CIFAR-10 (Krizhevsky, 2009): from the Keras cache, a local image-folder tarball or a download;
its python batches are read with a restricted unpickler."""
from __future__ import annotations

import dataclasses
import io
import os
import pickle
import re
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from noisycore.config import DataConfig
from noisycore.datasets.base import (CACHE_VERSION, CIFAR10_CLASSES, Dataset, _assemble, _check_size, _raise_bad,
                                     _to_rgb)
from noisycore.datasets.cache import _cached, _resize_all, _stat_list
from noisycore.datasets.folders import _load_scan, _scan_folder
from noisycore.datasets.safezip import _file_digest
from noisycore.errors import DataError
from noisycore.util import atomic_directory, atomic_write


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def _project_root() -> Path:
    return Path(__file__).resolve().parents[2]   # noisycore/datasets/cifar10.py -> the project folder


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
    def fill(tmp: Path) -> None:
        with tarfile.open(tarball, "r:*") as tf:
            tf.extractall(tmp, filter="data")
        (tmp / ".complete").write_text(str(tarball))

    try:
        atomic_directory(dest, fill, exist_ok=True)   # two processes extracting at once: one folder
    except (tarfile.TarError, OSError, EOFError) as e:
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
    def write(tmp) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            total, done = int(resp.headers.get("Content-Length") or 0), 0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)

    try:
        atomic_write(target, write)
    except (urllib.error.URLError, OSError, ValueError) as e:
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
