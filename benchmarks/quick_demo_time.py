"""Benchmark: the Quick demo's time from *Start training* to "finished" (issue 33, finding 13).

Starts the Train page's default run (preset ``quick`` on the built-in shapes, 40% symmetric noise; the config
of ``quick_demo_seeds.demo_config``) through the executor the page calls (``executors.executor().start``: a
detached worker process, as a click does), polls the run folder as the page does, and records when each step
became visible in it (timestamps from status.json and the files' mtimes, relative to the click):

    worker      the worker process wrote its pid (process start)
    running     status "running" (TensorFlow imported, the run begins)
    labels      labels.csv (data loaded, noise applied, label set saved)
    baseline    baseline.json (the linear baseline and the mirror check)
    epoch k     status.json's epoch became k: epoch k began (epoch 1: the model built, fit started)
    predictions predictions.npz (the final predictions on every image)
    finished    status "finished" (what the page shows)

    python benchmarks/quick_demo_time.py --repeats 3        # median of 3 runs (~1.5 min each on 2 cores)

Runs go to a temporary folder (deleted afterwards unless --keep). Prints one line per run and the median
per step, with the load average before each run (`os.getloadavg`): compare numbers only at the same load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
FILES = {"labels": "labels.csv", "baseline": "baseline.json", "predictions": "predictions.npz"}


def _mtime(path: Path):
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def time_one(root: Path, *, seed: int = 0, poll: float = 0.1, timeout: float = 900.0) -> dict:
    """Seconds from the click to each step of one Quick demo run started as the Train page starts it."""
    from noisycore import executors, runs
    from quick_demo_seeds import demo_config

    click = time.time()
    run = executors.executor().start(demo_config(seed), root=root)
    marks: dict = {}
    while time.time() - click < timeout:
        now = time.time()
        status = runs.read_status(run)
        if "worker" not in marks and (run / "worker.pid").exists():
            marks["worker"] = now
        if status.get("state") == "running" and "running" not in marks:
            marks["running"] = now
        epoch = int(status.get("epoch") or 0)
        if epoch and f"epoch {epoch}" not in marks:
            marks[f"epoch {epoch}"] = now
        if status.get("state") in ("finished", "stopped", "failed"):
            marks[status["state"]] = now
            break
        time.sleep(poll)
    for name, file in FILES.items():   # written once: the file's own time is exact
        stamp = _mtime(run / file)
        if stamp is not None:
            marks[name] = stamp
    result = {name: round(stamp - click, 2) for name, stamp in sorted(marks.items(), key=lambda kv: kv[1])}
    result["test_accuracy"] = (runs.read_summary(run) or {}).get("test_accuracy")
    result["run"] = str(run)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs to time (the median is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="append one JSON line per run and a summary line (the medians, machine, date, revision, "
                             "load before and after) to this file (.jsonl)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="quick-demo-time-") as tmp:
        root = args.keep or Path(tmp)
        rows = []
        for i in range(args.repeats):
            load = os.getloadavg()[0]
            row = {"repeat": i, "load_1min": round(load, 2), **time_one(root, seed=args.seed)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    steps = [k for k in rows[0] if k not in ("repeat", "load_1min", "run", "test_accuracy")]
    medians = {k: round(statistics.median(r[k] for r in rows), 1) for k in steps if all(k in r for r in rows)}
    print("median seconds after the click: " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    if args.out:
        import common

        summary = {"summary": True, "repeats": len(rows), "median_seconds": medians,
                   "load_before": rows[0]["load_1min"], "load_after": round(os.getloadavg()[0], 2),
                   "machine": common.machine(), "date": time.strftime("%Y-%m-%d"), "revision": common.revision()}
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
