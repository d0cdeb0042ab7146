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


from noisycore.catalog import (AUGMENTATIONS, LOSS_DEFAULTS, LOSS_HELP, LR_SCHEDULES, METHOD_NAMES, MODEL_HELP,
                               NOISE_MODEL_NAMES, OPTIMIZERS, PRECISIONS, TTA_HELP, KEEP_HELP, EMBEDDING_REFUSED_METHODS,
                               check_forward, method_params, takes_embeddings)
from noisycore.errors import ConfigError


def default_data_dir() -> Path:
    """Folder for caches, imported datasets and label sets (``NOISYLAB_HOME`` overrides it)."""
    return Path(os.environ.get("NOISYLAB_HOME", Path.home() / ".cache" / "noisylabellab"))


def default_runs_dir() -> Path:
    """Folder that holds one sub-folder per training run (``NOISYLAB_RUNS`` overrides it)."""
    return Path(os.environ.get("NOISYLAB_RUNS", "runs"))


def check_choice(name: str, value: Any, choices) -> None:
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
    skip_unreadable: Optional[bool] = None  # leave unreadable image files out (counted and listed) instead of
                                            # refusing the import; None = on for folders and zips, off for CSV

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


def is_own_source(source) -> bool:
    """A folder or zip of the user's images (not builtin, cifar10 or a CSV manifest)."""
    src = str(source or "").strip()
    return bool(src) and src not in ("builtin", "cifar10") and not src.lower().endswith(".csv")


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
        check_choice("noise model", self.model, NOISE_MODEL_NAMES)
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


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------



def _precision_setting(value) -> str:
    """Old configs stored mixed_precision as a bool: True -> "bfloat16", False -> "float32"."""
    if isinstance(value, bool):
        return "bfloat16" if value else "float32"
    return value


def _freeze_params(name: str, value) -> tuple:
    """A dict, a frozen mapping or (key, value) pairs -> a sorted tuple of (str, value) pairs.

    Lists inside values (e.g. a K x K matrix) become tuples so the config stays hashable.
    """
    if value is None:
        return ()
    if isinstance(value, dict):
        items = list(value.items())
    else:
        try:
            items = [tuple(pair) for pair in value]
        except TypeError:
            raise ConfigError(f"{name}={value!r} must be a dict or a list of (key, value) pairs") from None
        if any(len(pair) != 2 for pair in items):
            raise ConfigError(f"{name}={value!r} must be a dict or a list of (key, value) pairs")
    keys = [k for k, _ in items]
    if not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"{name} keys must be non-empty strings, got {keys!r}")
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{name} has a repeated key: {keys!r}")
    return tuple(sorted((k, _tupleize(v)) for k, v in items))


def _thaw(value):
    """Tuples back to lists (for JSON and for the functions that receive the parameters)."""
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Everything needed to rerun one training experiment (saved as config.json in the run folder).

    Model and loss names are checked against the registries when training starts
    (``noisycore.train.check_config``), so that building a config stays free of TensorFlow.
    """

    data: DataConfig = field(default_factory=DataConfig)     # which images
    noise: NoiseConfig = field(default_factory=NoiseConfig)  # how the given labels are made (ignored with labels_path)
    labels_path: Optional[str] = None   # a labels.csv (or its folder) to train on instead of applying `noise`
    model: str = "compact_cnn"          # a name in noisycore.models.MODELS
    loss: str = "ce"                    # a name in noisycore.losses.LOSSES
    loss_params: tuple = ()             # loss hyper-parameters, e.g. {"q": 0.7}; see LOSS_DEFAULTS
    method: str = "standard"            # one of METHOD_NAMES (see noisycore.catalog.METHOD_HELP)
    method_params: tuple = ()           # method hyper-parameters; see noisycore.catalog.METHOD_DEFAULTS
    epochs: int = 20                    # passes over the training split (the maximum with early stopping)
    batch_size: int = 128               # images per gradient step
    optimizer: str = "adam"             # adam | sgd (momentum 0.9) | nesterov (Nesterov momentum 0.9)
    learning_rate: float = 1e-3         # initial / peak learning rate
    lr_schedule: str = "plateau"        # plateau (ReduceLROnPlateau on val_loss) | constant | cosine | onecycle | warmup_linear
    weight_decay: float = 0.0           # L2 penalty on the kernels (0 = off)
    dropout: float = 1.0                # scale of the model's dropout rates (1 = as designed, 0 = no dropout)
    batchnorm: bool = True              # batch normalization after convolutions
    augment: str = "none"               # none | blog (rotate 15 deg, shift 10%, flip) | strong (crop + flip) | flip_translate (flip + 2 px)
    cutout: bool = False                # cut a random square out of each training image
    mixup_alpha: float = 0.0            # mixup Beta(alpha, alpha) (0 = off; standard method only)
    val_fraction: float = 0.1           # share of the training images held out (stratified) for validation
    trusted_val: bool = False           # score validation against the true labels (a trusted subset; needs the truth)
    early_stopping_patience: int = 15   # epochs without a better val_accuracy before stopping (0 = off); restores the best
    keep: str = "best"                  # the model a run keeps: best (the epoch of the best val_accuracy) | last (the final epoch)
    plateau_patience: int = 5           # epochs without a lower val_loss before the lr is cut (lr_schedule=plateau)
    plateau_factor: float = 0.5         # the lr is multiplied by this on a plateau
    min_lr: float = 1e-7                # lower bound of the learning rate (plateau and cosine)
    mixed_precision: str = "auto"       # auto | float32 | bfloat16 (mixed_bfloat16 compute); auto: see choose_precision
    tta: str = "none"                   # test-time augmentation of every prediction: none | flip (mean of image and mirror)
    ema_momentum: float = 0.0           # exponential moving average of the weights (0 = off), evaluated and saved
    tensorboard: bool = False           # write TensorBoard logs into the run folder
    seed: int = 0                       # weights, shuffling, augmentation and the validation split
    max_train: Optional[int] = None     # train on a stratified subset of this many images (None = all)
    record_margins: Optional[bool] = None  # margins.npy each epoch (AUM); None = on when N <= 10,000
    aum_threshold_samples: bool = False  # AUM's threshold run (noisycore.aum): N/(K+1) images get a fake class K
    baseline: bool = True               # also fit the linear baseline (noisycore.baseline; seconds; off for fold runs)
    choose_features: bool = False       # pretrained_head: train the small preset from scratch instead unless a linear
                                        # model on the pretrained features clearly beats one on the pixels out of
                                        # sample (baseline.features_not_better); the pretrained preset turns it on
    preset: Optional[str] = None        # the preset this config started from (for the record only)
    model_width: Optional[float] = None      # fast_cnn: x airbench94's 64/256/256 widths; None = the model's 0.75;
                                             # pretrained_head: a hidden layer of width x 512 units (0: linear); None = 0.5
    model_activation: Optional[str] = None   # fast_cnn: relu | gelu; None = the model's relu
    budget_minutes: Optional[float] = None   # fast preset: wall minutes; epochs follow from the calibration (noisycore.calibration)

    def __post_init__(self):
        self._coerce_nested()
        check_choice("method", self.method, METHOD_NAMES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("augment", self.augment, AUGMENTATIONS)
        object.__setattr__(self, "mixed_precision", _precision_setting(self.mixed_precision))
        check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        check_choice("tta", self.tta, tuple(TTA_HELP))
        check_choice("keep", self.keep, tuple(KEEP_HELP))

        check_choice("model", self.model, tuple(MODEL_HELP))
        check_choice("loss", self.loss, tuple(LOSS_HELP))
        unknown = sorted(set(self.loss_kwargs) - set(LOSS_DEFAULTS[self.loss]))
        if unknown:
            raise ConfigError(f"loss {self.loss!r} has no parameter {', '.join(unknown)}; "
                              f"valid: {', '.join(LOSS_DEFAULTS[self.loss]) or 'none'}")
        self._check_numbers()
        if self.mixup_alpha > 0 and self.method != "standard":
            raise ConfigError(f"mixup_alpha={self.mixup_alpha} works only with method 'standard' "
                              f"(method={self.method!r} needs the given label of each image); set mixup_alpha=0")
        method_params(self.method, self.method_kwargs)
        if self.loss == "forward":   # how T is chosen (see noisycore.forward)
            check_forward(self)
        if self.preset is not None:
            check_choice("preset", self.preset, tuple(PRESETS))
        if self.budget_minutes is not None and (self.preset != "fast" or self.model != "fast_cnn"):
            raise ConfigError(f"budget_minutes={self.budget_minutes:g} works with the fast preset (fast_cnn) only, "
                              f"not preset={self.preset!r} / model={self.model!r}; choose the fast preset or drop the budget")
        if self.labels_path is not None and not str(self.labels_path).strip():
            raise ConfigError("labels_path is empty; give a labels.csv path or None")
        if takes_embeddings(self.model):
            self._check_embedding_model()

    def _check_embedding_model(self):
        """A model on pretrained embeddings: augment / tta ``auto`` resolve to ``none`` (an embedding is no image to
        mirror or shift); any other augmentation, cutout, mirror TTA or a method that needs two networks is refused."""
        for name in ("augment", "tta"):
            if getattr(self, name) == "auto":
                object.__setattr__(self, name, "none")
        what = {"augment": self.augment != "none", "cutout": self.cutout, "tta": self.tta != "none"}
        bad = [f"{k}={getattr(self, k)!r}" for k, v in what.items() if v]
        if bad:
            raise ConfigError(f"{', '.join(bad)} does not apply to model {self.model!r}: it trains on pretrained "
                              "embeddings, not on images; set augment='none', cutout=False, tta='none'")
        if self.method in EMBEDDING_REFUSED_METHODS:
            raise ConfigError(f"method={self.method!r} does not work with model {self.model!r}: "
                              f"{EMBEDDING_REFUSED_METHODS[self.method]}; choose standard, confidence_weighting or "
                              "label_correction, or a model trained from scratch")

    def _coerce_nested(self):
        """Accept dicts for data / noise and dicts or pairs for the parameter mappings."""
        for name, cls in (("data", DataConfig), ("noise", NoiseConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
        object.__setattr__(self, "loss_params", _freeze_params("loss_params", self.loss_params))
        object.__setattr__(self, "method_params", _freeze_params("method_params", self.method_params))

    def _check_numbers(self):
        def between(name, lo, hi, kind=float):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
                raise ConfigError(f"{name}={value!r} must be {'an integer' if kind is int else 'a number'}")
            if not (lo <= value <= hi):
                raise ConfigError(f"{name}={value} is outside [{lo}, {hi}]")
            object.__setattr__(self, name, kind(value))

        between("epochs", 1, 10_000, int)
        between("batch_size", 1, 8192, int)
        between("learning_rate", 1e-8, 10.0)
        between("weight_decay", 0.0, 0.1)
        between("dropout", 0.0, 2.0)
        between("mixup_alpha", 0.0, 10.0)
        between("val_fraction", 0.01, 0.5)
        between("early_stopping_patience", 0, 10_000, int)
        between("plateau_patience", 1, 10_000, int)
        between("plateau_factor", 0.01, 0.99)
        between("min_lr", 0.0, 1.0)
        between("ema_momentum", 0.0, 0.9999)
        between("seed", 0, 2**31 - 1, int)
        if self.max_train is not None:
            between("max_train", 20, 10**8, int)
        if self.model_width is not None:
            between("model_width", 0.0, 4.0)   # fast_cnn refuses below 0.05; pretrained_head: 0 = linear
        if self.budget_minutes is not None:
            between("budget_minutes", 0.1, 10_000.0)
        if self.model_activation is not None:
            check_choice("model_activation", self.model_activation, ("relu", "gelu"))

    @property
    def loss_kwargs(self) -> dict:
        """The loss hyper-parameters as a dict (lists for nested values such as a matrix)."""
        return {k: _thaw(v) for k, v in self.loss_params}

    @property
    def method_kwargs(self) -> dict:
        """The method hyper-parameters as a dict."""
        return {k: _thaw(v) for k, v in self.method_params}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["loss_params"] = self.loss_kwargs
        d["method_params"] = self.method_kwargs
        return d

    @classmethod
    def from_preset(cls, name: str, num_images: Optional[int] = None, **overrides) -> "TrainConfig":
        """A preset (see PRESETS) with some fields overridden; data / noise may be partial dicts.
        ``num_images``: the size of the label set when known (the small preset's epochs follow it)."""
        values = preset_values(name, num_images)
        for key in ("data", "noise"):
            if isinstance(overrides.get(key), dict):
                overrides[key] = {**values.get(key, {}), **overrides[key]}
        # another loss or method than the preset's: the preset's hyper-parameters belonged to its choice
        for name, params in (("loss", "loss_params"), ("method", "method_params")):
            if overrides.get(name) not in (None, values.get(name)) and params not in overrides:
                values.pop(params, None)
        values.update(overrides)
        return cls(**values)


# Presets list only what differs from the TrainConfig defaults (nanoGPT style).
PRESETS: dict = {
    # CPU demo on the built-in dataset (5,000 of its images, 15 epochs): compact CNN, constant lr,
    # no dropout and no early stopping, so with 40% symmetric noise CE's test accuracy rises and then
    # falls while the network memorizes the wrong labels (the memorized column climbs); GCE keeps it.
    "quick": {
        "max_train": 5000,       # 4,500 to fit + 500 to validate: enough to learn the shapes before memorizing
        "epochs": 15,
        "batch_size": 64,        # more steps per epoch: the shapes are learned a few epochs sooner
        "learning_rate": 2e-3,
        "lr_schedule": "constant",
        "early_stopping_patience": 0,
        "dropout": 0.0,
        "mixed_precision": "float32",  # as the demo's memorization curve and wall time were recorded (bf16 not measured for it)
    },
    # Real photos, small sets (the user's own folder of a few hundred to a few thousand images): the fast
    # recipe's network and pieces with batch 64 (the fast preset's 256 leaves only a few optimizer steps
    # per epoch there) and the learning rate scaled with it (0.4 at 256 -> 0.1 at 64), 30 epochs. Measured
    # on 900 photos of three classes with 30 planted mislabels by benchmarks/own_data.py: the numbers are in
    # benchmarks/results/own_data-cpu.json (quoted by the headline table of benchmarks/README.md); 60 epochs,
    # label smoothing and crop-after-padding-4 were each no better (benchmarks/README.md "Own data").
    "small": {
        "model": "fast_cnn",
        "loss": "gce",
        "loss_params": {"q": 0.7},
        "optimizer": "nesterov",
        "learning_rate": 0.1,
        "lr_schedule": "warmup_linear",
        "weight_decay": 5e-4,
        "augment": "auto",        # flip + 2 px, without the flip when mirroring changes the labels (digits, text)
        "tta": "auto",
        "ema_momentum": 0.95,
        "batch_size": 64,
        "epochs": 30,
        "early_stopping_patience": 0,
    },
    # Real photos on a CPU (CIFAR-10, the user's own images): airbench94's ideas (Jordan 2024) sized
    # for 2 cores. fast_cnn (whitened first layer, identity-initialized convolutions, fused BatchNorm +
    # ReLU, width 0.75 = 48/192/192), Nesterov SGD with a warm-up then linear decay, an EMA of the weights, flip + 2 px
    # translation, flip TTA in every prediction; GCE (robust to wrong labels, and on CIFAR-10 at 40%
    # noise better than airbench's label smoothing once the schedule is 10+ epochs long). A fixed
    # schedule: no early stopping (the best epoch on the noisy validation split is still the one
    # kept). See benchmarks/README.md "Fast recipe".
    "fast": {
        "model": "fast_cnn",
        "loss": "gce",
        "loss_params": {"q": 0.7},
        "optimizer": "nesterov",
        "learning_rate": 0.4,     # peak, batch 256 (airbench: ~0.375 per mean loss at 256); logits scaled 1/9
        "lr_schedule": "warmup_linear",
        "weight_decay": 5e-4,     # L2 on the kernels, about airbench's decay per step (5e-5 was 1.1 points worse)
        "augment": "auto",        # flip + 2 px translation; no flip when mirroring changes the labels
        "tta": "auto",
        "ema_momentum": 0.95,     # per step: averages over the last ~20 steps (short runs: little lag)
        "batch_size": 256,
        "epochs": 24,             # 9-11 min on full CIFAR-10 (AMX Xeon, 2 cores); 12 ended at 87% on clean labels
        "early_stopping_patience": 0,
    },
    # The user's own photos (the default for a folder, zip or CSV of them; issue 29): a classifier head on the
    # ImageNet EfficientNet-Lite2 embeddings of the images (noisycore.embeddings: computed once per dataset,
    # cached, reused by the run, every cross-validation fold and the Review page): seconds per run after the
    # embedding. On 900 photos with 30 planted mislabels (benchmarks/own_data.py) the 4-fold heads agreed with
    # the given labels on 86.8% of the images out of sample (90.0% with the truth) on Lite0's features, 88.0% on
    # Lite2's (the backbone since 2026-12-08); chosen by that agreement on Lite0: an MLP head beat a linear one by
    # 2.2 points, GCE beat CE by 0.7, and a wider head, L2 1e-2, 60 epochs or a learning rate of 1e-2 were no
    # better (issue 29; the numbers in the branch's final report).
    "pretrained": {
        "model": "pretrained_head",   # 256 hidden units (models.HEAD_WIDTH), Adam at 1e-3 (the defaults)
        "loss": "gce",
        "loss_params": {"q": 0.7},
        "lr_schedule": "constant",
        "weight_decay": 1e-3,
        "batch_size": 64,
        "epochs": 30,
        "early_stopping_patience": 0,
        "mixed_precision": "float32",   # a head of a few hundred thousand weights: bfloat16 would only lose digits
        # ImageNet features do not suit every set (8-px digit scans, linear models: 88.5% on Lite2's features, 88.1% on
        # Lite0's, 89.8% on the pixels, where a network from scratch reaches 93.9%; benchmarks/README.md
        # "Robust defaults"): the run compares the two before training, keeps the head only when the features clearly
        # win, and says what it chose
        "choose_features": True,
    },
    # The blog post's recipe, with validation on a noisy split of the training data instead of the test set.
    "blog": {
        "model": "blog_cnn",
        "loss": "label_smoothing",
        "loss_params": {"epsilon": 0.1},
        "augment": "blog",
        "epochs": 100,
    },
    # A GPU-sized recipe: ResNet, SGD with momentum 0.9, cosine lr from 0.1, weight decay 5e-4.
    "full": {
        "model": "resnet",
        "optimizer": "sgd",
        "learning_rate": 0.1,
        "lr_schedule": "cosine",
        "weight_decay": 5e-4,
        "augment": "strong",
        "epochs": 200,
        "early_stopping_patience": 0,
    },
}

PRESET_HELP: dict = {
    "pretrained": "Your own photos (the default for them): each image embedded once by a pretrained ImageNet "
                  "network (EfficientNet-Lite2, shipped offline, cached), then a small classifier head trained on "
                  "those features (GCE); seconds per run and per cross-validation fold. Images are not augmented. Unless a "
                  "linear model on the features predicts your labels clearly better than one on the pixels (it does not "
                  "on tiny scans or text), the run trains the small preset from scratch instead and says so.",
    "small": "Your own photos, a small set (under 10,000 images): the fast recipe's network, GCE, weight averaging "
             "and flip TTA with batch 64 (more optimizer steps per image than fast); 30 epochs, more for sets "
             "under 700 training images (about 20,000 training images seen, at most 100 epochs).",
    "quick": "Quick demo: CPU, a few minutes on the built-in dataset; with 40% noise CE peaks, then memorizes the wrong labels.",
    "fast": "Real photos on a CPU: airbench-style CNN, GCE (robust to wrong labels), SGD warm-up + decay, weight averaging, flip TTA; 24 epochs.",
    "blog": "The blog post's recipe: blog CNN, label smoothing 0.1, augmentation, Adam, early stopping, 100 epochs.",
    "full": "GPU-sized: ResNet, SGD 0.1 cosine, weight decay 5e-4, strong augmentation, 200 epochs.",
}


MARGINS_AUTO_MAX_N = 10_000   # record margins (AUM) by default up to this many training images: they need every
                              # fit image predicted each epoch, about a third of an epoch's fit time
REAL_IMAGES_PRESET = "fast"   # the default preset for CIFAR-10 (real photos trained from scratch)
DEMO_PRESET = "quick"         # the default for the built-in shapes
PRETRAINED_PRESET = "pretrained"   # the default for the user's own photos (folder, zip or CSV)


SMALL_DATA_PRESET = "small"     # real photos, fewer than FAST_MIN_IMAGES images
FAST_MIN_IMAGES = 10_000        # below this, batch 256 x 24 epochs is too few optimizer steps to learn


SMALL_IMAGES_SEEN = 20_000   # the small preset's epochs: about this many training images per run (30 epochs
                             # of 675: a fold's training share of 900 photos in 4-fold cross-validation)
SMALL_MAX_EPOCHS = 100
EPOCHS_FOLLOW_SIZE = (SMALL_DATA_PRESET, PRETRAINED_PRESET)   # presets whose epochs follow the number of images


def preset_epochs(name: str, num_images: Optional[int] = None) -> int:
    """The preset's epochs; for ``small`` and ``pretrained`` (EPOCHS_FOLLOW_SIZE) with a known number of
    training images (a label set's count: its training split, fit and validation; a cross-validation fold's
    training rows), enough epochs that a run sees about SMALL_IMAGES_SEEN of them (at least the preset's 30,
    at most SMALL_MAX_EPOCHS): 675 -> 30 epochs, 337 -> 59, 200 -> 100. Fewer images give fewer optimizer steps
    per epoch; on 450 planted photos (4 folds of 337 training images) 60 epochs found more of them than 30, on
    900 photos (folds of 675) 60 were no better (benchmarks/README.md, "Own data")."""
    epochs = int(PRESETS[name].get("epochs", TrainConfig.epochs))
    if name in EPOCHS_FOLLOW_SIZE and num_images:
        epochs = min(SMALL_MAX_EPOCHS, max(epochs, round(SMALL_IMAGES_SEEN / int(num_images))))
    return epochs


def preset_values(name: str, num_images: Optional[int] = None) -> dict:
    """The preset's TrainConfig fields (with ``preset``), its epochs for a label set of ``num_images``
    (see preset_epochs). The one place a preset becomes values: TrainConfig.from_preset and the
    cross-validation folds' recommended recipe both start here."""
    check_choice("preset", name, tuple(PRESETS))
    return {**PRESETS[name], "preset": name, "epochs": preset_epochs(name, num_images)}


def default_preset(source: str, num_images: Optional[int] = None) -> str:
    """The preset a new run starts from: ``quick`` for the built-in shapes, ``pretrained`` for the user's own
    photos (a folder, zip or CSV manifest), and for CIFAR-10 the from-scratch rule of :func:`scratch_preset`."""
    src = str(source).strip()
    if src not in ("builtin", "cifar10"):
        return PRETRAINED_PRESET
    return scratch_preset(src, num_images)


def scratch_preset(source: str, num_images: Optional[int] = None) -> str:
    """The preset that trains a network from scratch: ``quick`` for the built-in shapes; for real images
    ``fast`` (CIFAR-10 of unknown size, or num_images >= FAST_MIN_IMAGES), else ``small``."""
    src = str(source).strip()
    if src == "builtin":
        return DEMO_PRESET
    if src == "cifar10" and num_images is None:
        return REAL_IMAGES_PRESET
    return REAL_IMAGES_PRESET if (num_images or 0) >= FAST_MIN_IMAGES else SMALL_DATA_PRESET


def choose_precision(setting: str, *, cpu_flags, has_gpu: bool) -> str:
    """Resolve ``mixed_precision`` to "float32" or "bfloat16".

    auto: bfloat16 when the hardware computes it natively (a GPU, or CPU flags amx_bf16 /
    avx512_bf16); elsewhere bfloat16 is emulated and several times slower, so float32.
    ``cpu_flags``: the words of /proc/cpuinfo's "flags" line (any iterable of str).
    """
    setting = _precision_setting(setting)
    check_choice("mixed_precision", setting, PRECISIONS)
    if setting != "auto":
        return setting
    native = bool(has_gpu) or bool({"amx_bf16", "avx512_bf16"} & {str(f).lower() for f in cpu_flags})
    return "bfloat16" if native else "float32"
