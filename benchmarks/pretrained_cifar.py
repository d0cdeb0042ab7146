"""Benchmark (issue 29): the pretrained recipe on the full CIFAR-10 training set, beside the fast preset.

    python benchmarks/pretrained_cifar.py --work /work/bench/pretrained-cifar --fast benchmarks/results/time_to_accuracy-cifar10-full-20261207b

Per noise setting (40% symmetric, CIFAR-10N worst; seed 0): one run of the ``pretrained`` preset (an MLP head on the
cached EfficientNet-Lite0 features at 160 px; the first cell pays for embedding the 60,000 images, the second
reuses the cache) with its test accuracy (flip TTA does not apply to features), its wall time with and without the
embedding, and confident learning's precision / recall on the run's own (in-sample) predictions against the known
wrong labels, as `time_to_accuracy.py` scores the fast preset. The fast preset's numbers are read from that
script's results (``--fast`` prefix: ``.csv`` and ``_detection.csv``), not trained again.

Writes benchmarks/results/pretrained_cifar.jsonl (one record per setting) and .md. Resumable (finished cells are kept).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import detection  # noqa: E402

from noisycore.config import DataConfig, TrainConfig  # noqa: E402

OUT = common.ROOT / "benchmarks" / "results" / "pretrained_cifar"


def config_for(setting: str, seed: int = 0) -> TrainConfig:
    noise = common.settings("cifar10")[setting].replace(seed=seed)
    return TrainConfig.from_preset("pretrained", data=DataConfig(source="cifar10"), noise=noise, seed=seed)


def fast_numbers(prefix: Path, setting: str) -> dict:
    rows = pd.read_csv(prefix.with_suffix(".csv"))
    row = rows[(rows.setting == setting) & (rows.seed == 0)].iloc[-1]
    det = pd.read_csv(prefix.with_name(prefix.name + "_detection.csv"))
    cl = det[(det.setting == setting) & (det.detector == "confident_learning")].iloc[-1]
    return {"fast_test_accuracy": float(row.final_test_accuracy), "fast_wall_seconds": float(row.wall_seconds),
            "fast_cl_precision": float(cl.precision), "fast_cl_recall": float(cl.recall), "fast_cl_flagged": int(cl.flagged)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, help="folder of the runs (resumable)")
    p.add_argument("--fast", required=True, help="results prefix of a time_to_accuracy.py invocation (seed 0 rows)")
    p.add_argument("--settings", default="sym40,worst")
    p.add_argument("--out", default=None, help="results prefix (default benchmarks/results/pretrained_cifar: "
                                                 ".jsonl and .md)")
    a = p.parse_args(argv)
    fast = Path(a.fast)
    if not fast.with_suffix(".csv").is_file():
        print(f"error: no {fast.with_suffix('.csv')}; give the --out prefix of a time_to_accuracy.py run", file=sys.stderr)
        return 2
    from noisycore import runs
    from noisycore.console import import_quietly

    import_quietly("noisycore.train")
    records, machine = [], common.machine()
    for setting in a.settings.split(","):
        path = Path(a.work) / setting / "pretrained-s0"
        t0 = time.time()
        summary = common.train_cell(path, config_for(setting))
        status = runs.read_status(path)
        cl = next(r for r in detection.score(path, setting=setting, source="in_sample", folds=0)
                  if r["detector"] == "confident_learning")
        records.append({"setting": setting, "seed": 0, "test_accuracy": summary.get("test_accuracy"),
                        "run_seconds": summary.get("seconds"), "invocation_seconds": round(time.time() - t0, 1),
                        "epochs": summary.get("epochs_done"), "features": status.get("features"),
                        "cl_precision": cl["precision"], "cl_recall": cl["recall"], "cl_flagged": cl["flagged"],
                        "n_noisy": cl["n_noisy"], **fast_numbers(fast, setting), "fast_results": str(fast.name),
                        "machine": machine, "date": time.strftime("%Y-%m-%d", time.gmtime()),
                        "revision": common.revision()})
        print(json.dumps(records[-1]), flush=True)
    out = Path(a.out) if a.out else OUT
    common.atomic_write(out.with_suffix(".jsonl"), "".join(json.dumps(r) + "\n" for r in records))
    lines = ["| setting | pretrained: test accuracy | run (min; the first includes embedding 60,000 images) | "
             "CL precision / recall (flagged) | fast: test accuracy | fast: wall min | fast: CL precision / recall |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['setting']} | {r['test_accuracy']:.1%} | {r['run_seconds'] / 60:.1f} | "
                     f"{r['cl_precision']:.2f} / {r['cl_recall']:.2f} ({r['cl_flagged']}) | {r['fast_test_accuracy']:.1%} | "
                     f"{r['fast_wall_seconds'] / 60:.1f} | {r['fast_cl_precision']:.2f} / {r['fast_cl_recall']:.2f} |")
    common.atomic_write(out.with_suffix(".md"), "\n".join(lines) + f"\n\nMachine: {machine}.\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
