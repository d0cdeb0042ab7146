"""Benchmark: which BatchNorm statistics go with the averaged weights (issue 31, point 2).

Trains the ``small`` recipe (fast_cnn, weight average 0.95, BatchNorm momentum 0.4) on the built-in
shapes with symmetric noise, and scores the final averaged weights (last.keras) on the test images with
three kinds of BatchNorm statistics:

- ``raw``: the statistics of the raw weights (what the app did before: Keras averages trainable variables only);
- ``averaged``: the same moving average of the statistics, updated after each batch (what the app does now,
  ``noisycore.averaging``; airbench's lookahead averages the BatchNorm buffers too);
- ``re-estimated``: statistics recomputed for the averaged weights on ``--batches`` training batches
  (forward passes in training mode, no weight update; running average at the layers' momentum).

    python benchmarks/ema_batchnorm.py --seeds 0             # 2,000 images, 12 epochs, 40% noise
    python benchmarks/ema_batchnorm.py --seeds 0 1 2 --rate 0.3

Writes benchmarks/results/ema_batchnorm.json (one row per seed and kind) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _accuracy(model, x, y) -> float:
    from noisycore.pipeline import predict_probs

    return float((predict_probs(model, x, tta="flip", batch_size=512).argmax(1) == y).mean())


def one_seed(work: Path, *, seed: int, images: int, epochs: int, rate: float, batches: int) -> list:
    import keras
    import numpy as np

    import noisycore.models  # noqa: F401 (registers fast_cnn's layers for load_model)
    from noisycore import averaging, train
    from noisycore.averaging import batchnorm_statistics
    from noisycore.config import TrainConfig

    config = TrainConfig.from_preset("small", max_train=images, epochs=epochs, seed=seed, mixed_precision="float32",
                                     data={"source": "builtin", "seed": seed},
                                     noise={"model": "symmetric", "rate": rate, "seed": seed})
    rows = []
    original = averaging.batchnorm_statistics
    for kind in ("raw", "averaged"):
        run_dir = work / f"s{seed}-{kind}"
        done = run_dir / "summary.json"
        if kind == "raw":   # the old behaviour: no BatchNorm average (the weights are still averaged)
            averaging.batchnorm_statistics = lambda model: []
        try:
            if not (done.is_file() and json.loads(done.read_text()).get("state") == "finished"):   # resumes
                train.run(config, run_dir)
        finally:
            averaging.batchnorm_statistics = original
        prepared = train.prepare(config)
        ds = prepared.dataset
        model = keras.saving.load_model(run_dir / "last.keras", compile=False)
        rows.append({"seed": seed, "kind": kind, "test_accuracy": _accuracy(model, ds.x_test, ds.y_test)})
        if kind == "averaged":   # re-estimate the statistics for the same averaged weights
            rng = np.random.default_rng(seed)
            for v in batchnorm_statistics(model):
                v.assign(np.zeros_like(v.numpy()) if v.name == "moving_mean" else np.ones_like(v.numpy()))
            for _ in range(batches):
                idx = rng.choice(len(ds.x_train), config.batch_size, replace=False)
                model(ds.x_train[idx].astype("float32") / 255.0, training=True)
            rows.append({"seed": seed, "kind": f"re-estimated ({batches} batches)",
                         "test_accuracy": _accuracy(model, ds.x_test, ds.y_test)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rate", type=float, default=0.4)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--work", type=Path, default=None, help="run folders (kept; a second invocation resumes)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ema_batchnorm.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("NOISYLAB_HOME", tempfile.mkdtemp(prefix="noisylab-ema-bn-"))
    work = args.work or Path(tempfile.mkdtemp(prefix="ema-bn-"))
    rows = []
    for seed in args.seeds:
        rows += one_seed(work, seed=seed, images=args.images, epochs=args.epochs, rate=args.rate, batches=args.batches)
    result = {"command": "python benchmarks/ema_batchnorm.py " + " ".join(argv or sys.argv[1:]),
              "machine": {"cpu": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                       if line.startswith("model name")), "?"), "load_average": os.getloadavg()},
              "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work")}, "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for r in rows:
        print(f"seed {r['seed']}  {r['kind']:<26} test accuracy {100 * r['test_accuracy']:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
