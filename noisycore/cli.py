"""The ``noisycore`` command: the same operations as the app, from a terminal.

Every user error prints one line on stderr and exits with code 2; nothing is written on error.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from noisycore.config import ConfigError, DataConfig, NoiseConfig, NOISE_MODEL_NAMES
from noisycore.console import StatusLine, StopSignals, quiet_tensorflow
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
    p.add_argument("--skip-unreadable", action=argparse.BooleanOptionalAction, default=None,
                   help="leave unreadable image files out (counted and listed) instead of refusing the import "
                        "(default: on for folders and zips, off for CSV manifests)")


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
    if ncfg.human_labels and not ncfg.human_labels.lower().endswith(".csv"):
        from noisycore.noise import read_cifar10n_pt

        read_cifar10n_pt(ncfg.human_labels)   # a bad or malicious label file is refused before any image is read
    dcfg = data_config(args)
    dataset = load_dataset(dcfg)
    noisy = apply_noise(dataset, ncfg)
    out = save_label_set(args.out, dataset, noisy, data_config=dcfg)
    from noisycore.datasets import skipped_text

    if skipped_text(dataset):
        print(skipped_text(dataset))
    print(describe(ncfg, dataset.num_classes))
    n = len(noisy.labels)
    if noisy.realized_rate is None:
        print(f"{n} labels written to {out / 'labels.csv'} (true labels unknown, so no noise rate)")
    else:
        wrong = int(noisy.is_noisy.sum())
        print(f"realized noise rate: {noisy.realized_rate:.2%} ({wrong} of {n} labels differ from the truth)")
        print(f"written: {out / 'labels.csv'} and {out / 'noise.json'}")
    return 0


def _pairs(text: str) -> dict:
    """'q=0.7,beta=1' -> {'q': 0.7, 'beta': 1.0} (numbers where they parse, else strings)."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{item!r} is not NAME=VALUE (e.g. q=0.7)")
        try:
            out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            out[key] = value
    return out


# TrainConfig fields the train and sweep commands expose; None = keep the preset's value.
TRAIN_OPTIONS = {
    "--model": dict(help="compact_cnn, blog_cnn, resnet or fast_cnn"),
    "--loss": dict(help="ce, label_smoothing, sce, gce, bootstrap_soft, bootstrap_hard, nce_rce, forward"),
    "--loss-params": dict(type=_pairs, help="loss hyper-parameters, e.g. q=0.7 or alpha=0.1,beta=1; forward: "
                          "matrix=known (the declared noise) or matrix=estimated (confident learning, after "
                          "warmup_epochs=5 of CE, or matrix_from=RUN a finished run)"),
    "--method": dict(help="standard, confidence_weighting, coteaching, label_correction"),
    "--method-params": dict(type=_pairs, help="method hyper-parameters, e.g. forget_rate=0.4,t_k=10; co-teaching's "
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
    "--seed": dict(type=int, help="seed of weights, shuffling and the validation split"),
    "--precision": dict(help="auto (bfloat16 where the CPU / GPU computes it natively), float32 or bfloat16"),
}
TRAIN_FLAGS = {"--trusted-val": "validate against the true labels (a trusted subset)",
               "--mixed-precision": "mixed_bfloat16 compute (the same as --precision bfloat16)",
               "--cutout": "cutout augmentation",
               "--no-batchnorm": "build the model without batch normalization",
               "--aum-threshold-samples": "AUM's threshold run (Pleiss et al.): needs one extra training run; "
                                          "N/(K+1) images get a fake class, for the aum detector"}


def add_train_options(p: argparse.ArgumentParser) -> None:
    """The dataset, labels and every TrainConfig option (used by `train` and `sweep`)."""
    _add_data_args(p)
    p.add_argument("--labels", default=None, help="a labels.csv (or its folder) made by `inject` or the app")
    p.add_argument("--noise", choices=NOISE_MODEL_NAMES, default=None, help="noise model (instead of --labels)")
    p.add_argument("--rate", type=_rate, default=None, help="noise rate, e.g. 0.4 or 40%%")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--preset", default=None, help="quick, fast, blog or full (default: quick for the built-in "
                   "shapes, fast for real images); options override it")
    for flag, kw in TRAIN_OPTIONS.items():
        p.add_argument(flag, default=None, **kw)
    for flag, text in TRAIN_FLAGS.items():
        p.add_argument(flag, action="store_true", help=text)


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
                aum_threshold_samples=args.aum_threshold_samples or None)
    over = {k: v for k, v in over.items() if v is not None}
    if args.noise:
        over["noise"] = dict(model=args.noise, rate=args.rate or 0.0, seed=args.noise_seed)
    over["data"] = {**data_config(args).to_dict(), "max_train": None}
    if args.max_train is not None:   # the training subset is the TrainConfig's (the labels stay whole)
        over["max_train"] = args.max_train
    over["labels_path"] = args.labels
    over.update(changes)
    return TrainConfig.from_preset(args.preset or _default_preset(args, default_preset), **over)


def _default_preset(args, default_preset) -> str:
    """config.default_preset for what will be trained: the label set's dataset and size, or --max-train."""
    source, n = args.dataset, args.max_train
    if args.labels:
        folder = Path(args.labels).parent if str(args.labels).lower().endswith(".csv") else Path(args.labels)
        try:
            meta = json.loads((folder / "noise.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        source = (meta.get("data_config") or {}).get("source") or (meta.get("dataset") or {}).get("source") or source
        n = n or (meta.get("counts") or {}).get("labels")
    return default_preset(source, n)


def check_labels_path(labels_path) -> None:
    """Refuse a --labels that names no label set before anything is created (no TensorFlow, no run folder)."""
    if labels_path:
        p = Path(labels_path)
        if not ((p / "labels.csv").is_file() if p.is_dir() else p.is_file()):
            raise UserError(f"no label set at {labels_path}: expected labels.csv (or a folder holding it); "
                            "make one with `noisycore inject` or the app's Data & noise page")


def cmd_train(args) -> int:
    import shutil

    from noisycore import runs

    config = train_config(args)
    check_labels_path(config.labels_path)
    train = import_quietly("noisycore.train")  # TensorFlow loads only after the options are known to be valid
    train.check_config(config)
    run_dir = runs.create_run(config, root=args.out)
    line = StatusLine()
    line.show("loading the images and building the model", key="start")
    bar = _ProgressBar(line, run_dir)
    SIGNALS.training.set()
    try:
        summary = train.run(config, run_dir, progress=bar)
    except KeyboardInterrupt:
        line.close()
        print(f"stopped; the partial run is in {run_dir}", file=sys.stderr)
        return SIGNALS.exit_code or 130
    except UserError:
        line.close()
        if runs.read_metrics(run_dir).empty:   # refused before training: keep no failed run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        SIGNALS.training.clear()
    line.close()
    if not bar.announced:
        print(f"run folder: {run_dir}")
    print(_summary_line(summary))
    if SIGNALS.signum is not None:
        print(f"stopped by a signal; the run is in {run_dir}", file=sys.stderr)
        return SIGNALS.exit_code
    if config.loss == "forward":
        from noisycore import forward

        print(forward.describe(forward.read_record(run_dir)))
    return 0 if summary.get("state") in ("finished", "stopped") else 1


class _ProgressBar:
    """The training progress on a StatusLine: epoch, batch and a bar (one line per epoch when piped).
    The run folder is printed (stdout) when training begins, after every input was accepted."""

    def __init__(self, line: StatusLine, run_dir, width: int = 30):
        self.line, self.run_dir, self.width, self.announced = line, run_dir, width, False

    def __call__(self, info: dict) -> None:
        epoch, epochs = info.get("epoch", 0), info.get("epochs", 0)
        batch, batches = info.get("batch", 0), info.get("batches", 0)
        if not epochs or not batches:
            return
        if not self.announced:
            self.line.close()
            print(f"run folder: {self.run_dir}", flush=True)
            self.announced = True
        if not self.line.tty and batch != batches:
            return                                # piped: one line per epoch, when it ends
        done = (epoch - 1 + batch / batches) / epochs
        fill = int(done * self.width)
        self.line.show(f"[{'#' * fill}{'.' * (self.width - fill)}] epoch {epoch}/{epochs} batch {batch}/{batches}",
                       key=epoch)


def _summary_line(s: dict) -> str:
    def pct(key):
        v = s.get(key)
        return "n/a" if v is None else f"{v:.2%}"

    head = (s.get("skipped_images") + "\n") if s.get("skipped_images") else ""
    if s.get("truth_known") is False:   # the user's own labels: no claim about true labels
        return (f"{head}{s.get('state')}: {s.get('epochs_done')} epochs, best epoch {s.get('best_epoch')}; "
                f"held-out accuracy (given labels) {pct('test_accuracy')} (last epoch {pct('last_test_accuracy')}); "
                f"train accuracy on the given labels {pct('train_acc_noisy')}")
    return (f"{head}{s.get('state')}: {s.get('epochs_done')} epochs, best epoch {s.get('best_epoch')}; "
            f"test accuracy {pct('test_accuracy')} (last epoch {pct('last_test_accuracy')}); "
            f"train accuracy on given labels {pct('train_acc_noisy')}, on true labels {pct('train_acc_true')}")


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

    p = sub.add_parser("train", help="train one model in this terminal and write its run folder")
    add_train_options(p)
    p.add_argument("--out", default=None, help="folder that holds the run folders (default: runs/)")
    p.set_defaults(func=cmd_train)

    for module in _EXTRA_COMMANDS:
        importlib.import_module(module).add_cli(sub)
    for command in sub.choices.values():
        command.add_argument("--verbose", action="store_true",
                             help="show TensorFlow's start-up messages (hidden by default)")
    return parser


# Modules that add their own sub-commands with add_cli(subparsers); one line each.
_EXTRA_COMMANDS: list = [
    "noisycore.detect",
    "noisycore.sweeps",
]


SIGNALS = StopSignals()       # SIGINT / SIGTERM of this command (installed by main)
VERBOSE = False               # --verbose: keep TensorFlow's start-up messages


def main(argv=None) -> int:
    """Run one command. Exit codes: 0 done, 1 a run failed, 2 bad input (nothing created),
    130 / 143 ended by SIGINT (Ctrl-C) / SIGTERM (a run keeps its epochs and is marked stopped)."""
    global VERBOSE
    parser = build_parser()
    args = parser.parse_args(argv)
    VERBOSE = bool(getattr(args, "verbose", False))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if VERBOSE else "3")
    SIGNALS.install()
    try:
        code = int(args.func(args) or 0)
    except (UserError, ConfigError) as e:
        print(f"noisycore {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\nnoisycore {args.command}: interrupted", file=sys.stderr)
        return SIGNALS.exit_code or 130
    finally:
        SIGNALS.restore()
    return SIGNALS.exit_code or code


def import_quietly(module: str):
    """Import a module that loads TensorFlow, hiding its start-up noise (C++ and absl logging, the
    CUDA probe on CPU-only machines) unless --verbose; see noisycore.console."""
    return quiet_tensorflow(module, verbose=VERBOSE)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
