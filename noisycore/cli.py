"""The ``noisycore`` command: the same operations as the app, from a terminal.

Every user error prints one line on stderr and exits with code 2; nothing is written on error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from noisycore.config import ConfigError, DataConfig, NoiseConfig, NOISE_MODEL_NAMES
from noisycore.errors import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) instead of usage + error."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def _rate(text: str) -> float:
    try:
        return float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"noise rate {text!r} is not a number; use e.g. 0.4 or 40%") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="builtin",
                   help="builtin, cifar10, or a path to an image folder, a .zip of one, or a CSV manifest (path,label)")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this many pixels per side")
    p.add_argument("--label-column", default=None, help="CSV manifests: the column with the given labels")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="test share held out when the source has no test split (default 0.2)")
    p.add_argument("--max-train", type=int, default=None, help="use a stratified subset of this many training images")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the test split / built-in generator")


def _add_noise_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--noise", choices=NOISE_MODEL_NAMES, required=required,
                   default=None if required else "none", help="noise model")
    p.add_argument("--rate", type=_rate, default=0.0, help="noise rate in [0, 1), e.g. 0.4 or 40%%")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (same seed, same labels)")
    p.add_argument("--per-example", action="store_true",
                   help="symmetric: flip each label with probability RATE instead of exactly round(RATE*N)")
    p.add_argument("--matrix", default=None, help="matrix noise: a CSV or JSON file with a K x K row-stochastic matrix")
    p.add_argument("--human-labels", default=None, help="human noise: CSV manifest or CIFAR-10_human.pt")
    p.add_argument("--label-set", default=None, help="human noise: aggre, worst, random1, random2, random3, or a CSV column")


def data_config(args) -> DataConfig:
    return DataConfig(source=args.dataset, image_size=args.image_size, test_fraction=args.test_fraction,
                      seed=args.data_seed, label_column=args.label_column, max_train=args.max_train)


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


def cmd_datasets(args) -> int:
    from noisycore.datasets import list_sources

    for src in list_sources():
        status = "ready" if src.get("available", True) else "not available offline"
        print(f"{src['name']:<12} {status:<22} {src.get('description', '')}")
    return 0


def cmd_inject(args) -> int:
    from noisycore.datasets import load_dataset
    from noisycore.noise import apply_noise, describe, save_label_set

    ncfg = noise_config(args)  # validate before the (slow) load
    dcfg = data_config(args)
    dataset = load_dataset(dcfg)
    noisy = apply_noise(dataset, ncfg)
    out = save_label_set(args.out, dataset, noisy, data_config=dcfg)
    print(describe(ncfg, dataset.num_classes))
    n = len(noisy.labels)
    if noisy.realized_rate is None:
        print(f"{n} labels written to {out / 'labels.csv'} (true labels unknown, so no noise rate)")
    else:
        wrong = int(noisy.is_noisy.sum())
        print(f"realized noise rate: {noisy.realized_rate:.2%} ({wrong} of {n} labels differ from the truth)")
        print(f"written: {out / 'labels.csv'} and {out / 'noise.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="noisycore", description="Noisy Label Lab from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("datasets", help="list the datasets that can be loaded")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("inject", help="make a noisy label set (labels.csv + noise.json)")
    _add_data_args(p)
    _add_noise_args(p, required=True)
    p.add_argument("--out", required=True, help="folder to write labels.csv and noise.json into")
    p.set_defaults(func=cmd_inject)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


# Later commands (train, sweep, detect, export) register themselves here.
_EXTRA_COMMANDS: list = []


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError) as e:
        print(f"noisycore {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"noisycore {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
