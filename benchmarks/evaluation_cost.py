"""Benchmark (derived, no training): what the per-epoch evaluation costs and how long a user waits, from the run
folders of a `time_to_accuracy.py` invocation (issue 32, items 3-4).

    python benchmarks/evaluation_cost.py --work /work/bench/tta-i32 --label after \
        --work /tmp/tta-work --label before --out benchmarks/results/evaluation_cost-20261207

For every cell folder of each --work (``<setting>/fast-s<seed>``, as time_to_accuracy.py writes them):

- evaluation seconds per epoch = metrics.csv ``seconds - fit_seconds`` (what the app does after an epoch's steps:
  the training-set curves, validation, the test curve, margins, checkpoints); its share of the epoch's fit time
  (median over epochs: the first epoch also pays for tracing);
- the run's start-up = from status.json ``started`` (the run began) to the end of the last epoch (metrics.csv's
  modification time: a row is appended as each epoch ends) minus the epochs' seconds: loading the data, the linear
  baseline, the calibration, building the model; and its end = summary.json ``seconds`` minus start-up and epochs
  (restoring the kept model, the final predictions of every image with TTA, writing them);
- a user's wait to the blog recipe's best = the start-up + the epochs' seconds until the test curve first reaches
  the blog's best (time_to_accuracy.BLOG_BEST), as a share of the blog
  recipe's time to it (its epoch, timed in the same invocation and saved in the work folder as
  ``blog_epoch-<precision>.json``, times the reference's epoch), for each precision the blog was timed in.

The numbers come from the folders as they are; nothing is trained or timed here, so it can run beside other work.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from time_to_accuracy import BLOG_BEST, SPEEDUP_GOAL  # noqa: E402


def blog_timings(work: Path) -> dict:
    """{precision: blog epoch seconds} saved in a time_to_accuracy work folder."""
    out = {}
    for path in sorted(work.glob("blog_epoch-*.json")):
        saved = json.loads(path.read_text())
        out[saved["precision"]] = float(saved["epoch_seconds"])
    return out


def cell(path: Path, setting: str, blog: dict) -> dict:
    """One run folder's evaluation cost and wait (see the module docstring)."""
    m = pd.read_csv(path / "metrics.csv")
    summary = json.loads((path / "summary.json").read_text())
    status = json.loads((path / "status.json").read_text())
    evaluation = m["seconds"] - m["fit_seconds"]
    share = evaluation / m["fit_seconds"]
    started = datetime.fromisoformat(status["started"]).timestamp()
    startup = (path / "metrics.csv").stat().st_mtime - started - float(m["seconds"].sum())
    overhead = float(summary["seconds"]) - float(m["seconds"].sum())
    row = {"setting": setting, "seed": int(path.name.rsplit("-s", 1)[1]), "epochs": int(len(m)),
           "fit_seconds_per_epoch": float(m["fit_seconds"].median()),
           "evaluation_seconds_per_epoch": float(evaluation.median()),
           "evaluation_share": float(share.median()), "evaluation_share_max_after_first": float(share.iloc[1:].max()),
           "run_seconds": float(summary["seconds"]), "startup_seconds": startup, "end_seconds": overhead - startup,
           "train_sample": status.get("train_sample"), "test_sample": status.get("test_sample"),
           "val_tta": status.get("val_tta"), "margins_recorded": status.get("margins_recorded"),
           "precision": summary.get("precision"), "final_test_accuracy": summary.get("test_accuracy")}
    target, blog_epochs = BLOG_BEST[setting]
    hit = np.flatnonzero(m["test_accuracy"].to_numpy() >= target - 1e-12)
    if len(hit):
        wait = startup + float(m["seconds"].iloc[:hit[0] + 1].sum())
        row.update(crossing_epoch=int(hit[0]) + 1, wait_seconds=wait,
                   fit_seconds_to_best=float(m["fit_seconds"].iloc[:hit[0] + 1].sum()))
        for precision, seconds in blog.items():
            row[f"blog_seconds_{precision}"] = seconds * blog_epochs
            row[f"wait_ratio_{precision}"] = wait / (seconds * blog_epochs)
            row[f"wait_goal_met_{precision}"] = bool(wait <= seconds * blog_epochs / SPEEDUP_GOAL)
    return row


def collect(work: Path, label: str) -> list:
    blog = blog_timings(work)
    rows = []
    for setting in BLOG_BEST:
        for path in sorted((work / setting).glob("fast-s*")):
            if (path / "summary.json").is_file():
                rows.append({"label": label, "work": str(work), **cell(path, setting, blog),
                             **{f"blog_epoch_seconds_{p}": s for p, s in blog.items()}})
    return rows


def markdown(rows: list, command: str) -> str:
    lines = ["# Per-epoch evaluation and the user's wait (time_to_accuracy run folders)", "",
             f"    {command}", "",
             "| runs | setting | seed | fit s / epoch | evaluation s / epoch (share) | start-up / end s | wait to the blog's "
             "best, min | share of the blog's time: float32 / bfloat16 blog |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratios = " / ".join(f"{r[k]:.3f}" if k in r else "-" for k in ("wait_ratio_float32", "wait_ratio_bfloat16"))
        wait = f"{r['wait_seconds'] / 60:.1f}" if "wait_seconds" in r else "not reached"
        lines.append(f"| {r['label']} | {r['setting']} | {r['seed']} | {r['fit_seconds_per_epoch']:.1f} | "
                     f"{r['evaluation_seconds_per_epoch']:.1f} ({r['evaluation_share']:.1%}) | "
                     f"{r['startup_seconds']:.0f} / {r['end_seconds']:.0f} | {wait} | {ratios} |")
    return "\n".join(lines) + f"\n\nMachine: {common.machine()}.\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", action="append", required=True, help="a time_to_accuracy.py --work folder (repeatable)")
    p.add_argument("--label", action="append", default=None, help="a name for each --work (default: its folder name)")
    p.add_argument("--out", required=True, help="results prefix: writes PREFIX.jsonl (one record per cell) and PREFIX.md")
    a = p.parse_args(argv)
    labels = a.label or [Path(w).name for w in a.work]
    if len(labels) != len(a.work):
        print(f"error: {len(a.work)} --work folders but {len(labels)} --label names; give one label per folder",
              file=sys.stderr)
        return 2
    missing = [w for w in a.work if not Path(w).is_dir()]
    if missing:
        print(f"error: no such folder: {missing[0]}; give a time_to_accuracy.py --work folder", file=sys.stderr)
        return 2
    rows = [r for w, label in zip(a.work, labels) for r in collect(Path(w), label)]
    if not rows:
        print("error: no finished cells (<setting>/fast-s<seed>/summary.json) in the --work folders", file=sys.stderr)
        return 2
    command = "python benchmarks/evaluation_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])
    stamp = {"machine": common.machine(), "date": pd.Timestamp.now("UTC").strftime("%Y-%m-%d"), "command": command}
    out = Path(a.out)
    common.atomic_write(out.with_suffix(".jsonl"), "".join(json.dumps({**r, **stamp}) + "\n" for r in rows))
    common.atomic_write(out.with_suffix(".md"), markdown(rows, command))
    print(markdown(rows, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
