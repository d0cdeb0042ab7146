"""What the real-data benchmarks (robustness.py, detection.py) share: noise settings, budgets,
recipes, resumable cells and table formatting.

A *cell* is one training run in ``WORK/<setting>/<recipe>-s<seed>/`` (an ordinary run folder, so
the app's Curves page can open it too). A cell whose summary says "finished" is kept when the
script is run again; a cell cut short (killed, interrupted) is deleted and trained again. A cell
made with another config (another budget or recipe) is an error, so a table never mixes budgets.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:       # `python benchmarks/x.py` from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from noisycore.config import PRESETS, DataConfig, NoiseConfig, TrainConfig  # noqa: E402
from noisycore.errors import UserError  # noqa: E402

SHARED_CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10"
CIFAR10N_LABELS = Path(os.environ.get("NOISYLAB_CIFAR10N", SHARED_CIFAR / "cifar10n-train-labels.csv"))


@dataclass(frozen=True)
class Budget:
    """The same budget for every recipe: training images, test images and epochs."""

    max_train: Optional[int]    # stratified subset of the training images (None = all 50,000)
    max_test: Optional[int]     # stratified subset of the test images (None = all 10,000)
    epochs: int
    note: str


BUDGETS = {
    # What the test suite runs (seconds, on the built-in shapes).
    "smoke": Budget(200, 100, 2, "200 training images, 100 test images, 2 epochs (a test, not a result)"),
    # What fits a 2-core CPU in about an hour per table (see benchmarks/README.md).
    "cpu": Budget(5000, 2000, 12, "5,000 CIFAR-10 training images (stratified; 10% held out as the noisy "
                                  "validation split), 2,000 test images, 12 epochs"),
    # The blog post's full scale, for a GPU.
    "full": Budget(None, None, 60, "all 50,000 training and 10,000 test images, 60 epochs"),
}


def settings(dataset: str) -> dict:
    """Noise setting name -> NoiseConfig. The CIFAR-10N ones need the CIFAR-10N label file."""
    out = {
        "clean": NoiseConfig(model="none", rate=0.0),
        "sym20": NoiseConfig(model="symmetric", rate=0.2),
        "sym40": NoiseConfig(model="symmetric", rate=0.4),
        "asym40": NoiseConfig(model="asymmetric", rate=0.4),
    }
    if dataset == "cifar10":
        for name in ("worst", "aggre"):
            out[name] = NoiseConfig(model="human", rate=0.0, human_labels=str(CIFAR10N_LABELS), label_set=name)
    return out


SETTING_HELP = {
    "clean": "clean labels (the ceiling)",
    "sym20": "symmetric 20%",
    "sym40": "symmetric 40%",
    "asym40": "asymmetric 40% (similar classes swap)",
    "worst": "CIFAR-10N worst (real annotators)",
    "aggre": "CIFAR-10N aggre (majority of 3 annotators)",
}

# Recipe name -> (TrainConfig fields, one-line description). Every recipe runs with the same budget
# and without early stopping: "best" is the test accuracy at the epoch with the best accuracy on the
# noisy validation split, which is what EarlyStopping(restore_best_weights=True) would return.
_FAST = {"preset": "fast", **{k: v for k, v in PRESETS["fast"].items() if k not in ("epochs", "early_stopping_patience")}}
RECIPES = {
    "blog": ({"preset": "blog", "model": "blog_cnn", "loss": "label_smoothing", "loss_params": {"epsilon": 0.1},
              "augment": "blog", "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 128,
              "lr_schedule": "plateau", "plateau_patience": 5, "mixed_precision": "float32"},
             "the blog post's recipe: blog_cnn, label smoothing 0.1, rotate/shift/flip, Adam 1e-3, "
             "batch 128, ReduceLROnPlateau"),
    "gce": ({"model": "compact_cnn", "loss": "gce", "loss_params": {"q": 0.7}, "augment": "strong",
             "optimizer": "adam", "learning_rate": 3e-3, "batch_size": 128, "lr_schedule": "onecycle",
             "mixed_precision": "float32"},
            "compact_cnn, GCE (q 0.7), crop + flip, Adam one-cycle to 3e-3"),
    "ce": ({"model": "compact_cnn", "loss": "ce", "augment": "strong", "optimizer": "adam", "learning_rate": 3e-3,
            "batch_size": 128, "lr_schedule": "onecycle", "mixed_precision": "float32"},
           "the gce recipe with plain cross-entropy (how much the robust loss adds)"),
    "sce": ({"model": "compact_cnn", "loss": "sce", "loss_params": {"alpha": 0.1, "beta": 1.0}, "augment": "strong",
             "optimizer": "adam", "learning_rate": 3e-3, "batch_size": 128, "lr_schedule": "onecycle",
             "mixed_precision": "float32"},
            "compact_cnn, SCE (alpha 0.1, beta 1), crop + flip, Adam one-cycle to 3e-3"),
    "fast": (_FAST,
             "the fast preset: fast_cnn (whitened first layer, identity-initialized convolutions, fused BatchNorm + ReLU), GCE (q 0.7), "
             "Nesterov SGD warm-up + linear decay, L2 5e-4, EMA of the weights, flip + 2 px translation, flip TTA"),
    "fast_ls": ({**_FAST, "loss": "label_smoothing", "loss_params": {"epsilon": 0.2}},
                "the fast recipe with airbench's label smoothing 0.2 instead of GCE (the loss choice at full scale)"),
}


def cell_config(*, dataset: str, budget: Budget, setting: str, recipe: str, seed: int) -> TrainConfig:
    fields, _ = RECIPES[recipe]
    noise = settings(dataset)[setting].replace(seed=seed)
    data = DataConfig(source=dataset, max_train=budget.max_train, max_test=budget.max_test)
    return TrainConfig(**fields, data=data, noise=noise, epochs=budget.epochs, early_stopping_patience=0,
                       seed=seed)


def default_work(dataset: str, budget_name: str) -> Path:
    """Where both benchmark scripts keep their runs (the same cell is trained once for both)."""
    return ROOT / "runs" / f"bench-{dataset}-{budget_name}"


def check_names(kind: str, names, valid) -> tuple:
    names = tuple(names)
    bad = [n for n in names if n not in valid]
    if bad:
        raise UserError(f"unknown {kind} {bad[0]!r}; choose from: {', '.join(valid)}")
    if not names:
        raise UserError(f"no {kind} given; choose from: {', '.join(valid)}")
    return names


def parse_list(text: str) -> tuple:
    return tuple(s.strip() for s in str(text).split(",") if s.strip())


def parse_seeds(text: str) -> tuple:
    try:
        seeds = tuple(int(s) for s in parse_list(text))
    except ValueError:
        raise UserError(f"--seeds {text!r} must be comma-separated non-negative integers, e.g. 0,1") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds {text!r} must be comma-separated non-negative integers, e.g. 0,1")
    return seeds


# ------------------------------------------------------------------------------ the command line
def add_common_options(p) -> None:
    p.add_argument("--dataset", default="cifar10", help="cifar10 (default) or builtin")
    p.add_argument("--budget", default=None, help=f"one of {', '.join(BUDGETS)} (default: cpu; smoke on builtin)")
    p.add_argument("--work", default=None, help="folder of the runs (default runs/bench-<dataset>-<budget>, "
                                                 "shared by both benchmark scripts)")


def resolve(args, setting_names, default_settings) -> tuple:
    """(budget name, Budget, setting names, work folder) from the common options; UserError if invalid."""
    if args.dataset not in ("cifar10", "builtin"):
        raise UserError(f"--dataset {args.dataset!r} must be cifar10 or builtin")
    budget_name = args.budget or ("smoke" if args.dataset == "builtin" else "cpu")
    check_names("budget", (budget_name,), tuple(BUDGETS))
    valid = tuple(s for s in settings(args.dataset) if s in setting_names)
    chosen = check_names("setting", parse_list(args.settings) if args.settings else
                         tuple(s for s in default_settings if s in valid), valid)
    if args.dataset == "cifar10" and {"worst", "aggre"} & set(chosen) and not CIFAR10N_LABELS.is_file():
        raise UserError(f"the CIFAR-10N label file {CIFAR10N_LABELS} is missing; set NOISYLAB_CIFAR10N "
                        "to cifar10n-train-labels.csv or leave out the worst and aggre settings")
    return budget_name, BUDGETS[budget_name], chosen, Path(args.work or default_work(args.dataset, budget_name))


def cli(name: str, parser, run, argv, *, resumable: bool = True) -> int:
    """Parse, run, and turn a UserError into one line on stderr with exit code 2."""
    args = parser.parse_args(argv)
    try:
        return run(args, argv)
    except UserError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume (finished runs are kept)" if resumable
              else "\ninterrupted", file=sys.stderr)
        return 130


# ------------------------------------------------------------------------------ resumable cells
def cell_finished(path: Path, config: TrainConfig) -> bool:
    """True if ``path`` holds a finished run of exactly ``config``; False if it holds nothing usable
    (it is then deleted). A finished run of another config raises UserError."""
    from noisycore import runs

    if not path.exists():
        return False
    summary = runs.read_summary(path) or {}
    try:
        same = runs.as_requested(runs.read_config(path), config).to_dict() == config.to_dict()
    except UserError:
        same = None
    if summary.get("state") == "finished":
        if same is False:
            raise UserError(f"{path} was trained with another budget or recipe; give another --work folder "
                            "or delete it")
        if same:
            return True
    shutil.rmtree(path)        # cut short or unreadable: train it again from scratch
    return False


def train_cell(path: Path, config: TrainConfig) -> Optional[dict]:
    """Train one cell (resuming = skipping a finished one); returns its summary, or None when
    another process is training this cell right now (it holds the cell's lock file)."""
    from noisycore import jobs, runs, train

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = jobs.try_lock(path.parent / f".{path.name}.lock")
    if lock is None:
        return None
    try:
        if cell_finished(path, config):
            return runs.read_summary(path)
        tmp = path.with_name(f".{path.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        load_before = os.getloadavg()[0]
        summary = train.run(config, tmp)
        summary = {**summary, "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
        runs.write_json(tmp / "summary.json", summary)
        if summary.get("state") != "finished":
            raise KeyboardInterrupt
        tmp.rename(path)           # a cell folder is complete or absent
    finally:
        lock.release()
    import keras

    keras.backend.clear_session()
    return summary


# ------------------------------------------------------------------------------ formatting
def pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * float(x):.1f}"


def mean_spread(values) -> str:
    """'72.4' for one value, '72.4 ± 0.8' (half the range) for several; percentages."""
    v = [float(x) for x in values if x is not None and not (isinstance(x, float) and np.isnan(x))]
    if not v:
        return "n/a"
    if len(v) == 1:
        return pct(v[0])
    return f"{100 * np.mean(v):.1f} ± {100 * (max(v) - min(v)) / 2:.1f}"


def markdown_table(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(str(v) for v in row.tolist()) + " |")
    return "\n".join(lines)


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def run_seconds(run_dir: Path) -> float:
    """The seconds a finished run recorded in its summary.json (0 when it has none)."""
    from noisycore import runs

    return float((runs.read_summary(run_dir) or {}).get("seconds") or 0.0)


def cv_seconds(run_dir: Path, folds: int) -> float:
    """The recorded seconds of a run's ``folds`` cross-validation folds (the folders crossval writes)."""
    return sum(run_seconds(Path(run_dir) / "cv" / f"k{folds}-fold{f + 1}" / "run") for f in range(folds))


def print_and_append(out, result: dict) -> None:
    """Print ``result`` as one JSON line and append it to the JSON-lines file ``out`` (folders made)."""
    import json

    line = json.dumps(result)
    print(line)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(line + "\n")


def shown_path(path: Path) -> str:
    """``path`` relative to the project when it is inside it (results files hold no home folders)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def revision() -> str:
    """The code's git revision (short), ``+changes-<hash>`` when noisycore/ or benchmarks/ differ from it: which
    code measured a result (results files record it; time_to_accuracy keys its blog timing cache on it).
    Uncommitted changes add a hash of their diff, so two different edits never share a key."""
    import hashlib
    import subprocess

    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        diff = subprocess.run(["git", "-C", str(ROOT), "diff", "HEAD", "--", "noisycore", "benchmarks/*.py"],
                              capture_output=True, text=True, timeout=10).stdout
        return (rev or "unknown") + (f"+changes-{hashlib.sha1(diff.encode()).hexdigest()[:8]}" if diff else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    import platform

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}"


def use_fast_norm(*, keras_bn: bool = False, momentum: Optional[float] = None, epsilon: Optional[float] = None) -> None:
    """For this process only: fast_cnn's BatchNorm as Keras' layer (``keras_bn``, the recipe before
    2026-12-01) or the fused one, with another momentum / epsilon than the preset's."""
    import keras

    import noisycore.models as models

    kw = {"momentum": models.FAST_BN_MOMENTUM if momentum is None else momentum,
          "epsilon": models.FAST_BN_EPSILON if epsilon is None else epsilon}
    if keras_bn:
        models._fast_norm = lambda x: keras.layers.BatchNormalization(scale=False, **kw)(x)
    else:
        models._fast_norm = lambda x: models.FusedBatchNorm(**kw)(x)
