"""Benchmark: the per-epoch cost of a run on a small set of the user's own images.

On a few hundred images an epoch is a handful of optimizer steps; what a run spends around them (its
per-epoch predictions for the curves and model selection, Keras' validation pass, the weight-average
swaps) decides how long training and each cross-validation fold take. This trains the recommended
recipe (``crossval.recommended_recipe``: the ``small`` preset below 10,000 images) on a generated
folder of quadrant images (tests/helpers.own_folder) and reports, from the run's metrics.csv, the
seconds per epoch: in fit (steps + Keras' validation) and in the app's per-epoch evaluation.

    python benchmarks/small_run.py                       # 100 images, 100 epochs (one CV fold's size)
    python benchmarks/small_run.py --images 400 --epochs 30 --repeats 2
    python benchmarks/small_run.py --images 400 --epochs 10 --size 64    # what a photo's size costs

Compare two versions by running this script from each checkout in turn (interleaved, same machine).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
import common  # noqa: E402
from common import UserError  # noqa: E402


def one_run(work: Path, *, images: int, epochs: int, size: int = 16) -> dict:
    import pandas as pd

    from helpers import own_folder
    from noisycore import crossval, train
    from noisycore.config import DataConfig, NoiseConfig, TrainConfig

    root, _ = own_folder(work / "src" / "photos", n_per_class=images // 4, planted=0, size=size)
    recipe = {**crossval.recommended_recipe(images, scratch=True), "epochs": epochs}   # a network from scratch
    config = TrainConfig(**recipe, data=DataConfig(source=str(root), image_size=size), noise=NoiseConfig(model="none", rate=0.0))
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    train.run(config, run)
    total = time.perf_counter() - t0
    m = pd.read_csv(run / "metrics.csv")
    return {"total_s": round(total, 2), "epochs": int(len(m)), "epoch_s": round(float(m["seconds"].median()), 4),
            "fit_s": round(float(m["fit_seconds"].median()), 4),
            "evaluation_s": round(float((m["seconds"] - m["fit_seconds"]).median()), 4)}


def run(args, argv=None) -> int:
    if args.images < 40 or args.epochs < 1 or args.repeats < 1:
        raise UserError("--images must be at least 40, --epochs and --repeats at least 1")
    if not 16 <= args.size <= 256 or args.size % 2:
        raise UserError(f"--size {args.size}: use an even number of pixels from 16 to 256")
    os.environ.setdefault("NOISYLAB_HOME", tempfile.mkdtemp(prefix="noisylab-small-run-"))
    print(f"# {common.machine()}; load {os.getloadavg()[0]:.2f}", flush=True)
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            row = one_run(Path(tmp), images=args.images, epochs=args.epochs, size=args.size)
        print(json.dumps({"repeat": r + 1, "images": args.images, "size": args.size, **row, "load": round(os.getloadavg()[0], 2)}),
              flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=100, help="images in the generated folder (4 classes)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--size", type=int, default=16, help="pixels per side of the generated images (and the model's input)")
    return common.cli("small_run", p, run, argv, resumable=False)


if __name__ == "__main__":
    sys.exit(main())
