"""Benchmark: the Quick demo's rise-then-fall, over training seeds (issue 33, finding 9).

One run jumps from epoch to epoch (73.0 -> 46.7 -> 58.7% test accuracy), so a teacher cannot state the
memorization lesson from one run. This trains the demo exactly as the Train page starts it (preset
``quick``, the built-in shapes with 40% symmetric noise, noise seed 0) with training seeds 0, 1, 2, ...
and summarizes per epoch over the seeds (mean, min, max): test accuracy, accuracy on the given labels
and the share of wrong labels memorized; then the peak (epoch and value) and the last epoch of each seed.

    python benchmarks/quick_demo_seeds.py                 # seeds 0 1 2 (~1-2 min each on 2 CPU cores)
    python benchmarks/quick_demo_seeds.py --seeds 0 1 2 3 4

Runs are kept in runs/bench-quick-demo/s<seed>/ and reused when run again (a finished seed is not trained
again). Writes benchmarks/results/quick_demo_seeds.csv (every epoch of every seed), .md (the summary) and .json
(the lesson in numbers, with the machine, date and code revision: the headline table's record).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("test_accuracy", "train_acc_given", "memorized")


def demo_config(seed: int):
    """The Train page's default run: the quick preset on the built-in shapes, 40% symmetric noise."""
    from noisycore.config import NoiseConfig, TrainConfig

    return TrainConfig.from_preset("quick", noise=NoiseConfig(model="symmetric", rate=0.4).to_dict(), seed=seed)


def train_seed(work: Path, seed: int):
    """metrics.csv of the demo with training seed ``seed`` (trained unless a finished run is there)."""
    from noisycore import runs

    run = work / f"s{seed}"
    if runs.read_status(run).get("state") != "finished":
        from noisycore import train   # TensorFlow loads only when a seed is trained
        if run.exists():
            import shutil

            shutil.rmtree(run)
        run.mkdir(parents=True)
        runs.atomic_write_text(run / "config.json", demo_config(seed).to_json())
        runs.write_status(run, {"state": "queued"})
        train.run(demo_config(seed), run, verbose=0)
    return runs.read_metrics(run)


def summarize(frame):
    """Per epoch over the seeds: mean, min and max of each column of COLUMNS."""
    return frame.groupby("epoch")[list(COLUMNS)].agg(["mean", "min", "max"])


def peaks(frame):
    """Per seed: the epoch of its best test accuracy, that accuracy and the last epoch's."""
    import pandas as pd

    rows = []
    for seed, one in frame.groupby("seed"):
        best = one.loc[one["test_accuracy"].idxmax()]
        rows.append({"seed": seed, "peak_epoch": int(best["epoch"]), "peak_test": best["test_accuracy"],
                     "last_epoch": int(one["epoch"].max()), "last_test": one["test_accuracy"].iloc[-1],
                     "last_given": one["train_acc_given"].iloc[-1], "last_memorized": one["memorized"].iloc[-1]})
    return pd.DataFrame(rows)


def markdown(summary, per_seed) -> str:
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = ["# The Quick demo over training seeds", "",
             f"Preset quick, built-in shapes, 40% symmetric noise (noise seed 0), training seeds "
             f"{', '.join(map(str, per_seed['seed']))}. Percent; mean (min-max) over the seeds.", "",
             "| epoch | test accuracy | accuracy on the given labels | wrong labels memorized |", "|---|---|---|---|"]
    for epoch, row in summary.iterrows():
        cells = [f"{pct(row[(c, 'mean')])} ({pct(row[(c, 'min')])}-{pct(row[(c, 'max')])})" for c in COLUMNS]
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    lines += ["", "| seed | peak epoch | peak test | last epoch | last test | last given | last memorized |",
              "|---|---|---|---|---|---|---|"]
    for r in per_seed.to_dict("records"):
        lines.append(f"| {r['seed']} | {r['peak_epoch']} | {pct(r['peak_test'])} | {r['last_epoch']} | "
                     f"{pct(r['last_test'])} | {pct(r['last_given'])} | {pct(r['last_memorized'])} |")
    return "\n".join(lines) + "\n"


def lesson(per_seed, summary) -> dict:
    """The lesson in numbers: per seed and on average, the peak test accuracy and its epoch, the last epoch's
    test accuracy, and the share of wrong labels memorized at the peak and at the end."""
    mean = lambda col: float(per_seed[col].mean())  # noqa: E731
    memorized = summary[("memorized", "mean")]
    peak_epoch = int(summary[("test_accuracy", "mean")].idxmax())
    return {"seeds": [int(s) for s in per_seed["seed"]],
            "mean_peak_test": mean("peak_test"), "mean_peak_epoch": mean("peak_epoch"),
            "min_peak_test": float(per_seed["peak_test"].min()), "max_peak_test": float(per_seed["peak_test"].max()),
            "mean_last_test": mean("last_test"), "min_last_test": float(per_seed["last_test"].min()),
            "max_last_test": float(per_seed["last_test"].max()), "last_epoch": int(per_seed["last_epoch"].max()),
            "mean_curve_peak_epoch": peak_epoch, "memorized_at_mean_peak": float(memorized.loc[peak_epoch]),
            "memorized_at_end": float(memorized.iloc[-1]),
            "per_seed": per_seed.to_dict("records")}


def main(argv=None) -> int:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-quick-demo")
    args = parser.parse_args(argv)
    frames = []
    for seed in args.seeds:
        metrics = train_seed(args.work, seed)
        frames.append(metrics[["epoch", *COLUMNS]].assign(seed=seed))
        print(f"seed {seed}: test accuracy per epoch " + " ".join(f"{v:.3f}" for v in metrics["test_accuracy"]),
              flush=True)
    frame = pd.concat(frames, ignore_index=True)
    RESULTS.mkdir(exist_ok=True)
    frame[["seed", "epoch", *COLUMNS]].to_csv(RESULTS / "quick_demo_seeds.csv", index=False)
    text = markdown(summarize(frame), peaks(frame))
    (RESULTS / "quick_demo_seeds.md").write_text(text, encoding="utf-8")
    import json
    import time

    import common

    record = {**lesson(peaks(frame), summarize(frame)), "machine": common.machine(), "date": time.strftime("%Y-%m-%d"),
              "revision": common.revision()}
    (RESULTS / "quick_demo_seeds.json").write_text(json.dumps(record, indent=1, default=float) + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
