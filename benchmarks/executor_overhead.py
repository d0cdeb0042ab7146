"""Benchmark: the Ray executor against the local queue (issue 30).

1. Overhead per run: submit -> first epoch recorded (metrics.csv's first row), one run alone, local
   queue vs Ray task (a simulated node of one CPU).
2. Makespan of N Quick-demo runs: the local queue with max_parallel=2 vs a simulated cluster of two
   nodes of one CPU each (ray.cluster_utils.Cluster on 127.0.0.1).
3. On paper, from the measured per-run wall times: a class of 30 Quick demos on 4 machines of 16 cores,
   and a 36-cell sweep (Ray packs one run per reserved CPU; the local queue trains one at a time).

    python benchmarks/executor_overhead.py                      # the full size: 8 Quick demos (the preset as is)
    python benchmarks/executor_overhead.py --runs 4 --max-train 600 --epochs 3    # a small setting (shared machine)

Results: benchmarks/results/executor_overhead.json and .md (with lscpu's model name and the load average
before and after, since a shared machine changes the numbers).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def quick_config(args):
    from noisycore.config import DataConfig, TrainConfig

    changes = {"data": DataConfig(source="builtin").to_dict()}
    if args.max_train:
        changes["max_train"] = args.max_train
    if args.epochs:
        changes["epochs"] = args.epochs
    return TrainConfig.from_preset("quick", **changes)


def first_epoch_seconds(run_dir: Path, t0: float) -> float:
    from noisycore import jobs, runs

    while not len(runs.read_metrics(run_dir)):
        if jobs.poll(run_dir).get("state") not in runs.ACTIVE_STATES:
            raise SystemExit(f"{run_dir} ended before its first epoch: {runs.read_status(run_dir)}")
        time.sleep(0.1)
    return time.monotonic() - t0


def wait_all(run_dirs) -> None:
    from noisycore import jobs, runs

    while any(jobs.poll(r).get("state") in runs.ACTIVE_STATES for r in run_dirs):
        time.sleep(0.25)
    bad = [r.name for r in run_dirs if runs.read_status(r).get("state") != "finished"]
    if bad:
        raise SystemExit(f"runs not finished: {bad}")


def run_seconds(run_dir: Path) -> float:
    from datetime import datetime

    from noisycore import runs

    s = runs.read_status(run_dir)
    return (datetime.fromisoformat(s["finished"]) - datetime.fromisoformat(s["started"])).total_seconds()


def measure(start, config, root: Path, n: int) -> dict:
    """One run alone (overhead), then n at once (makespan)."""
    t0 = time.monotonic()
    alone = start(config, root=root / "alone", name="alone")
    overhead = first_epoch_seconds(alone, t0)
    wait_all([alone])
    t0 = time.monotonic()
    batch = [start(config, root=root / "batch", name=f"r{i}") for i in range(n)]
    wait_all(batch)
    makespan = time.monotonic() - t0
    walls = [run_seconds(r) for r in batch]
    return {"submit_to_first_epoch_s": round(overhead, 2), "alone_wall_s": round(run_seconds(alone), 2),
            "makespan_s": round(makespan, 2), "mean_run_wall_s": round(sum(walls) / n, 2)}


def on_paper(local: dict, ray_: dict, *, jobs_: int, machines: int = 4, cores: int = 16, cpus_per_run: int = 1) -> dict:
    """Makespan estimates: Ray packs floor(cores / cpus_per_run) runs per machine, each as long as a measured
    one-CPU run; the local queue trains one at a time, each as long as a measured local run alone."""
    slots = machines * (cores // cpus_per_run)
    waves = math.ceil(jobs_ / slots)
    return {"jobs": jobs_, "cluster": f"{machines} x {cores} cores, {cpus_per_run} CPU per run",
            "ray_makespan_s": round(waves * ray_["mean_run_wall_s"] + ray_["submit_to_first_epoch_s"], 1),
            "local_one_at_a_time_s": round(jobs_ * local["alone_wall_s"], 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=8, help="runs in the makespan batch (default 8)")
    p.add_argument("--max-train", type=int, default=None, help="training images per run (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the preset's)")
    args = p.parse_args(argv)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    from noisycore import cluster, jobs

    model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if ln.startswith("Model name")), "unknown")
    load_before = os.getloadavg()
    config = quick_config(args)
    with tempfile.TemporaryDirectory(prefix="executor-bench-") as tmp:
        os.environ["NOISYLAB_HOME"] = tmp
        local = measure(lambda c, **kw: jobs.start(c, max_parallel=2, **kw), config, Path(tmp) / "local", args.runs)
        sim = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                           "node_ip_address": "127.0.0.1"})
        for _ in range(2):
            sim.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        sim.wait_for_nodes()
        ray.init(address=sim.address, log_to_driver=False, logging_level="error")
        try:
            ex = cluster.connect(sim.address)
            ray_ = measure(ex.start, config, Path(tmp) / "ray", args.runs)
        finally:
            ray.shutdown()
            sim.shutdown()
    result = {"cpu": model, "cores": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()],
              "setting": {"runs": args.runs, "max_train": config.max_train, "epochs": config.epochs,
                          "preset": "quick", "model": config.model},
              "local_max_parallel_2": local, "ray_two_nodes_of_1_cpu": ray_,
              "on_paper": [on_paper(local, ray_, jobs_=30), on_paper(local, ray_, jobs_=36)]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "executor_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [f"| {k} | {local[k]} | {ray_[k]} |" for k in local]
    paper = [f"| {e['jobs']} jobs on {e['cluster']} | {e['ray_makespan_s']} s | {e['local_one_at_a_time_s']} s |"
             for e in result["on_paper"]]
    (RESULTS / "executor_overhead.md").write_text(
        f"CPU: {model} ({os.cpu_count()} cores); load average before {result['load_before']}, after "
        f"{result['load_after']}; setting {result['setting']}\n\n| measure | local queue (max_parallel 2) | "
        "Ray, 2 nodes x 1 CPU |\n|---|---|---|\n" + "\n".join(rows) + "\n\n| on paper | Ray | local, one at a time |\n"
        "|---|---|---|\n" + "\n".join(paper) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
