"""Frozen configuration dataclasses, one per concern, validated on construction.

The app, the CLI and the tests build the same objects; every result folder stores the config
that made it (``to_json``), and ``from_json`` rebuilds it exactly.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional


from noisycore.errors import UserError


class ConfigError(UserError):
    """A configuration value is invalid; the message names the value and the valid choices."""


def default_data_dir() -> Path:
    """Folder for caches, imported datasets and label sets (``NOISYLAB_HOME`` overrides it)."""
    return Path(os.environ.get("NOISYLAB_HOME", Path.home() / ".cache" / "noisylabellab"))


def default_runs_dir() -> Path:
    """Folder that holds one sub-folder per training run (``NOISYLAB_RUNS`` overrides it)."""
    return Path(os.environ.get("NOISYLAB_RUNS", "runs"))


def _choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")


def _tupleize(value):
    """Lists from JSON become tuples so configs stay hashable and frozen."""
    if isinstance(value, list):
        return tuple(_tupleize(v) for v in value)
    return value


class JsonConfig:
    """Mixin: ``to_dict`` / ``to_json`` / ``from_dict`` / ``from_json`` for frozen dataclasses."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), indent=kw.pop("indent", 2), **kw)

    @classmethod
    def from_dict(cls, data: dict):
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}; "
                              f"valid fields: {', '.join(sorted(names))}")
        return cls(**{k: _tupleize(v) for k, v in data.items()})

    @classmethod
    def from_json(cls, text: str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{cls.__name__}: not valid JSON ({e})") from None
        return cls.from_dict(data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DataConfig(JsonConfig):
    """Which images to load and how to prepare them."""

    source: str = "builtin"            # "builtin", "cifar10", or a path to a folder, .zip or .csv
    image_size: Optional[int] = None   # pixels per side after resizing; None = most common size, capped at 64
    test_fraction: float = 0.2         # held-out test share when the source has no test split
    seed: int = 0                      # seeds the test split and the built-in generator
    label_column: Optional[str] = None  # CSV manifests: column with the given labels (default "label")
    max_train: Optional[int] = None    # keep a stratified subset of this many training images (None = all)
    max_test: Optional[int] = None     # likewise for the test set

    def __post_init__(self):
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError("source must be 'builtin', 'cifar10' or a path to a folder, .zip or .csv")
        if self.image_size is not None and not (8 <= int(self.image_size) <= 256):
            raise ConfigError(f"image_size={self.image_size} is outside 8..256 pixels")
        if not (0.0 < float(self.test_fraction) < 0.9):
            raise ConfigError(f"test_fraction={self.test_fraction} must be in (0, 0.9)")
        for name in ("max_train", "max_test"):
            v = getattr(self, name)
            if v is not None and int(v) < 10:
                raise ConfigError(f"{name}={v} must be at least 10 (or None for all)")


NOISE_MODEL_NAMES = ("none", "symmetric", "uniform", "pair", "asymmetric", "matrix", "instance", "human")


@dataclass(frozen=True)
class NoiseConfig(JsonConfig):
    """How the given labels are made from the true labels (see noisycore.noise)."""

    model: str = "symmetric"           # one of NOISE_MODEL_NAMES
    rate: float = 0.4                  # requested noise rate in [0, 1); unused by none/matrix/human
    seed: int = 0                      # the same seed gives the same labels
    per_example: bool = False          # symmetric: sample each example (rate on average) instead of flipping exactly round(rate*N)
    matrix: Optional[tuple] = None     # matrix model: K x K row-stochastic T[i][j] = P(given=j | true=i)
    instance_std: float = 0.1          # instance model: std of the per-example flip rate around `rate`
    human_labels: Optional[str] = None  # human model: CSV manifest or CIFAR-10_human.pt; None = a column of the dataset's own CSV
    label_set: Optional[str] = None    # human model: column / label set name (aggre, worst, random1, ...)

    MODELS: ClassVar[tuple] = NOISE_MODEL_NAMES

    def __post_init__(self):
        _choice("noise model", self.model, NOISE_MODEL_NAMES)
        try:
            rate = float(self.rate)
        except (TypeError, ValueError):
            raise ConfigError(f"noise rate={self.rate!r} is not a number") from None
        if not (0.0 <= rate < 1.0):
            raise ConfigError(f"noise rate={self.rate} is outside [0, 1); use e.g. 0.4 for 40%")
        if self.model == "matrix" and self.matrix is None:
            raise ConfigError("the matrix noise model needs a K x K matrix (rows sum to 1)")
        if self.model == "human" and not self.label_set:
            raise ConfigError("the human noise model needs label_set (e.g. aggre, worst, random1)")
        if not (0.0 <= float(self.instance_std) <= 0.5):
            raise ConfigError(f"instance_std={self.instance_std} must be in [0, 0.5]")
        if self.matrix is not None:
            object.__setattr__(self, "matrix", _tupleize([list(r) for r in self.matrix]))
