"""The command line's options, shared by ``noisycore train`` / ``inject`` and ``noisycore sweep``: the
dataset, the noise, every TrainConfig option (``--model``, ``--loss-params q=0.7``, ...) and how they
become DataConfig / NoiseConfig / TrainConfig objects. argparse only: no TensorFlow.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from noisycore.config import NOISE_MODEL_NAMES, PRESETS, DataConfig, NoiseConfig, is_own_source
from noisycore.errors import UserError


def parse_rate(text: str) -> float:
    """'0.4' or '40%' -> 0.4 (an argparse type)."""
    try:
        return float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"noise rate {text!r} is not a number; use e.g. 0.4 or 40%") from None


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="builtin",
                   help="builtin, cifar10, or a path to an image folder, a .zip of one, or a CSV manifest (path,label)")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this many pixels per side")
    p.add_argument("--label-column", default=None, help="CSV manifests: the column with the given labels")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="test share held out when the source has no test split (default 0.2)")
    p.add_argument("--max-train", type=int, default=None, help="use a stratified subset of this many training images")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the test split / built-in generator")
    p.add_argument("--skip-unreadable", action=argparse.BooleanOptionalAction, default=None,
                   help="leave unreadable image files out (counted and listed) instead of refusing the import "
                        "(default: on for folders and zips, off for CSV manifests)")


def add_noise_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--noise", choices=NOISE_MODEL_NAMES, required=required,
                   default=None if required else "none", help="noise model")
    p.add_argument("--rate", type=parse_rate, default=0.0, help="noise rate in [0, 1), e.g. 0.4 or 40%%")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (same seed, same labels)")
    p.add_argument("--per-example", action="store_true",
                   help="symmetric: flip each label with probability RATE instead of exactly round(RATE*N)")
    p.add_argument("--matrix", default=None, help="matrix noise: a CSV or JSON file with a K x K row-stochastic matrix")
    p.add_argument("--human-labels", default=None, help="human noise: CSV manifest or CIFAR-10_human.pt")
    p.add_argument("--label-set", default=None, help="human noise: aggre, worst, random1, random2, random3, or a CSV column")


def data_config(args) -> DataConfig:
    return DataConfig(source=args.dataset, image_size=args.image_size, test_fraction=args.test_fraction,
                      seed=args.data_seed, label_column=args.label_column, max_train=args.max_train,
                      skip_unreadable=args.skip_unreadable)


def read_matrix_file(path: str):
    """A K x K matrix from a JSON list of lists or a CSV without header."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"matrix file {path} does not exist; give a CSV or JSON file with a K x K matrix")
    text = p.read_text(encoding="utf-8-sig")
    try:
        if p.suffix.lower() == ".json":
            rows = json.loads(text)
        else:
            rows = [[float(v) for v in line.replace(";", ",").split(",")] for line in text.splitlines() if line.strip()]
    except (ValueError, json.JSONDecodeError) as e:
        raise UserError(f"matrix file {path} is not a numeric matrix ({e}); write one row per line, comma-separated") from None
    return tuple(tuple(float(v) for v in r) for r in rows)


def noise_config(args) -> NoiseConfig:
    model = args.noise or "none"
    return NoiseConfig(model=model, rate=args.rate, seed=args.seed, per_example=args.per_example,
                       matrix=read_matrix_file(args.matrix) if args.matrix else None,
                       human_labels=args.human_labels, label_set=args.label_set)


def parse_pairs(text: str) -> dict:
    """'q=0.7,beta=1,restart=true' -> {'q': 0.7, 'beta': 1.0, 'restart': True} (numbers where they parse,
    true / false as booleans, else strings)."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{item!r} is not NAME=VALUE (e.g. q=0.7)")
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
            continue
        try:
            out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            out[key] = value
    return out


# TrainConfig fields the train and sweep commands expose; None = keep the preset's value.
TRAIN_OPTIONS = {
    "--model": dict(help="compact_cnn, blog_cnn, resnet or fast_cnn"),
    "--loss": dict(help="ce, label_smoothing, sce, gce, bootstrap_soft, bootstrap_hard, nce_rce, forward"),
    "--loss-params": dict(type=parse_pairs, help="loss hyper-parameters, e.g. q=0.7 or alpha=0.1,beta=1; forward: "
                          "matrix=known (the declared noise) or matrix=estimated (confident learning, after "
                          "warmup_epochs=5 of CE, or matrix_from=RUN a finished run)"),
    "--method": dict(help="standard, confidence_weighting, coteaching, label_correction"),
    "--method-params": dict(type=parse_pairs, help="method hyper-parameters, e.g. forget_rate=0.4,t_k=10; co-teaching's "
                            "forget_rate may also be auto (default), declared, estimated, or "
                            "oracle_uses_true_labels (oracle: uses true labels)"),
    "--epochs": dict(type=int, help="passes over the training images"),
    "--batch-size": dict(type=int),
    "--optimizer": dict(help="adam, sgd or nesterov"),
    "--learning-rate": dict(type=float),
    "--lr-schedule": dict(help="plateau, constant, cosine, onecycle or warmup_linear"),
    "--weight-decay": dict(type=float),
    "--dropout": dict(type=float, help="scale of the model's dropout rates (0 = off)"),
    "--augment": dict(help="none, blog, strong or flip_translate"),
    "--tta": dict(help="test-time augmentation of every prediction: none or flip"),
    "--mixup-alpha": dict(type=float),
    "--val-fraction": dict(type=float, help="share of the training images held out for validation"),
    "--early-stopping-patience": dict(type=int, help="0 = off"),
    "--keep": dict(help="the model the run keeps: best (best validation accuracy) or last (the final epoch)"),
    "--seed": dict(type=int, help="seed of weights, shuffling and the validation split"),
    "--precision": dict(help="auto (bfloat16 where the CPU / GPU computes it natively), float32 or bfloat16; "
                        "the fast preset on 10,000+ images times float32 / bfloat16 x two network widths for a few "
                        "seconds on the first run of a machine (cached) and keeps the one that reaches its accuracy soonest"),
    "--budget-minutes": dict(type=float, help="fast preset: the best model in about this many minutes on this "
                             "machine; the epochs (and the learning-rate schedule) follow from the calibrated "
                             "seconds per epoch"),
}
TRAIN_FLAGS = {"--trusted-val": "validate against the true labels (a trusted subset)",
               "--mixed-precision": "mixed_bfloat16 compute (the same as --precision bfloat16)",
               "--cutout": "cutout augmentation",
               "--no-batchnorm": "build the model without batch normalization",
               "--aum-threshold-samples": "AUM's threshold run (Pleiss et al.): needs one extra training run; "
                                          "N/(K+1) images get a fake class, for the aum detector"}


def add_train_options(p: argparse.ArgumentParser) -> None:
    """The dataset, labels and every TrainConfig option (used by `train` and `sweep`)."""
    add_data_args(p)
    p.add_argument("--labels", default=None, help="a labels.csv (or its folder) made by `inject` or the app")
    p.add_argument("--noise", choices=NOISE_MODEL_NAMES, default=None, help="noise model (instead of --labels)")
    p.add_argument("--rate", type=parse_rate, default=None, help="noise rate, e.g. 0.4 or 40%%")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--preset", default=None, help=f"{', '.join(PRESETS)} (default: quick for the built-in shapes, fast "
                   "for CIFAR-10 and sets of 10,000+ images, small for fewer); options override it")
    for flag, kw in TRAIN_OPTIONS.items():
        p.add_argument(flag, default=None, **kw)
    for flag, text in TRAIN_FLAGS.items():
        p.add_argument(flag, action="store_true", help=text)
    p.add_argument("--record-margins", action=argparse.BooleanOptionalAction, default=None,
                   help="keep every training image's margin each epoch (the AUM detectors; default: on up to 10,000 "
                        "images and for --aum-threshold-samples; on larger sets it predicts every image each epoch, "
                        "about a third of an epoch more)")


def train_config(args, **changes):
    """The TrainConfig the options describe (preset first, then every option given)."""
    from noisycore.config import TrainConfig, default_preset

    if args.labels and args.noise:
        raise UserError("give either --labels or --noise, not both")
    over = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_")) for flag in TRAIN_OPTIONS}
    over = {k: v for k, v in over.items() if v is not None}
    over["mixed_precision"] = over.pop("precision", None) or ("bfloat16" if args.mixed_precision else None)
    over.update(trusted_val=args.trusted_val or None,
                cutout=args.cutout or None, batchnorm=False if args.no_batchnorm else None,
                aum_threshold_samples=args.aum_threshold_samples or None,
                record_margins=getattr(args, "record_margins", None))
    over = {k: v for k, v in over.items() if v is not None}
    if args.noise:
        over["noise"] = dict(model=args.noise, rate=args.rate or 0.0, seed=args.noise_seed)
    elif not args.labels and is_own_source(args.dataset):
        # the user's own folder or zip: its folder names are the given labels, whose truth nobody
        # knows; injecting the teaching default (40% symmetric) would treat them as the truth
        over["noise"] = dict(model="none", rate=0.0, seed=args.noise_seed)
    over["data"] = {**data_config(args).to_dict(), "max_train": None}
    if args.max_train is not None:   # the training subset is the TrainConfig's (the labels stay whole)
        over["max_train"] = args.max_train
    over["labels_path"] = args.labels
    over.update(changes)
    return TrainConfig.from_preset(args.preset or default_preset_for(args, default_preset),
                                   num_images=_source_and_size(args)[1], **over)


def default_preset_for(args, default_preset) -> str:
    """config.default_preset for what will be trained: the label set's dataset and size, or --max-train."""
    return default_preset(*_source_and_size(args))


def _source_and_size(args) -> tuple:
    """(source, number of training images or None) of what will be trained: the label set's, or --max-train."""
    source, n = args.dataset, args.max_train
    if args.labels:
        folder = Path(args.labels).parent if str(args.labels).lower().endswith(".csv") else Path(args.labels)
        try:
            meta = json.loads((folder / "noise.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        source = (meta.get("data_config") or {}).get("source") or (meta.get("dataset") or {}).get("source") or source
        n = n or (meta.get("counts") or {}).get("labels")
    return source, n


def check_labels_path(labels_path) -> None:
    """Refuse a --labels that names no label set before anything is created (no TensorFlow, no run folder)."""
    if labels_path:
        p = Path(labels_path)
        if not ((p / "labels.csv").is_file() if p.is_dir() else p.is_file()):
            raise UserError(f"no label set at {labels_path}: expected labels.csv (or a folder holding it); "
                            "make one with `noisycore inject` or the app's Data & noise page")
