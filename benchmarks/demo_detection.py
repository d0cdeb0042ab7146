"""Benchmark: the teaching demo's Review page, i.e. confident learning on K-fold cross-validation of the
Quick run (built-in shapes, 5,000 images, symmetric noise), scored against the injected truth (issue 31).

For each noise rate it trains the Quick run once (``--work`` keeps it, a second invocation resumes), then
for each variant copies the run (without its cross-validation) and cross-validates it with that variant's
folds and fold recipe (``crossval.cross_validate(run, folds=K, recipe=...)``, exactly what the page starts),
and scores confident learning's flags (precision, recall) and the page's default queue (the N most suspicious,
N = confident learning's estimate) against the truth.

    python benchmarks/demo_detection.py                                   # 30% and 40%, the variants below
    python benchmarks/demo_detection.py --rates 0.3 --variants run_recipe_k2 demo_k2

Writes benchmarks/results/demo_detection.json and .md (one row per rate and variant).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noisycore import crossval, detect, detectors, triage  # noqa: E402
from noisycore.config import TrainConfig  # noqa: E402

# name -> (folds, fold recipe changes; "run": every recipe field of the run's own config, as the folds of a
# truth-known run trained before this change; None: what the page does now, crossval.fold_config's demo recipe)
VARIANTS = {
    "run_recipe_k2": (2, "run"),                 # the issue's measurement: the run's own recipe, 2 folds
    "run_recipe_k4": (4, "run"),                 # the run's own recipe, the page's 4 folds (before this change)
    "demo_k2_e4": (2, {"epochs": 4}),            # the same, half the epochs (half the time)
    "demo_k2": (2, None),                        # what the page does now (crossval.DEMO_FOLDS, its fold recipe)
}


def quick_run(work: Path, rate: float, seed: int) -> Path:
    from noisycore import train

    run = work / f"quick-sym{round(100 * rate)}-s{seed}"
    summary = run / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("state") == "finished":
        return run
    shutil.rmtree(run, ignore_errors=True)
    config = TrainConfig.from_preset("quick", seed=seed, data={"source": "builtin", "seed": seed},
                                     noise={"model": "symmetric", "rate": rate, "seed": seed})
    train.run(config, run)
    return run


def score(run: Path) -> dict:
    info = detect.read_run_labels(run)
    probs = detect.pred_probs(run, source="cross_validation", ids=info.ids)
    issues = detectors.find_label_issues(info.labels, probs, detector="confident_learning")
    ev = detectors.evaluate(issues, info.is_noisy)
    frame = detect.detect(run, detector="confident_learning", source="cross_validation")
    n_est = detectors.estimate_noise(info.labels, probs).num_issues
    queue = triage.precision_at(frame, top_n=n_est)
    return {"n": int(len(info.labels)), "n_noisy": ev["n_noisy"], "flagged": ev["n_flagged"],
            "precision": round(ev["precision"], 4), "recall": round(ev["recall"], 4),
            "estimated_issues": int(n_est), "queue_precision": round(queue["precision"] or 0.0, 4),
            "queue_recall": round(queue["recall"] or 0.0, 4),
            "cv_accuracy_truth": round(float((probs.argmax(1) == info.true_labels).mean()), 4)}


def variant(run: Path, name: str, work: Path) -> dict:
    folds, recipe = VARIANTS[name]
    if recipe == "run":
        own = json.loads((run / "config.json").read_text())
        recipe = {k: own[k] for k in crossval.recipe_fields() if k in own}
    copy = work / f"{run.name}-{name}"
    if not (copy / detect.CV_PROBS).is_file():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns(crossval.CV_DIR, detect.CV_PROBS, "issues"))
        t0 = time.monotonic()
        crossval.cross_validate(copy, folds=folds, recipe=recipe)
        (copy / "cv_seconds.txt").write_text(f"{time.monotonic() - t0:.1f}")
    fold_cfg = json.loads(next((copy / crossval.CV_DIR).glob("k*-fold1/run/config.json")).read_text())
    used = {k: fold_cfg[k] for k in ("model", "loss", "loss_params", "epochs", "keep", "lr_schedule")}
    return {"variant": name, "folds": folds, "fold_recipe": used,
            "cv_seconds": float((copy / "cv_seconds.txt").read_text()), **score(copy)}


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.3, 0.4])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "noisylab-demo-detection")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo_detection")
    args = parser.parse_args(argv)
    os.environ.setdefault("NOISYLAB_HOME", str(args.work / "home"))
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for rate in args.rates:
        run = quick_run(args.work, rate, args.seed)
        summary = json.loads((run / "summary.json").read_text())
        for name in args.variants:
            row = {"rate": rate, "run_test_accuracy": summary["test_accuracy"], **variant(run, name, args.work)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"command": "python benchmarks/demo_detection.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lines = ["| noise | variant | folds | fold loss | epoch kept | CL flagged | CL precision | CL recall | "
             "queue of N: precision / recall | fold models' accuracy (truth) | CV minutes |", "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['rate']:.0%} | {r['variant']} | {r['folds']} | {r['fold_recipe']['loss']} | "
                     f"{r['fold_recipe']['keep']} | {r['flagged']} / {r['n_noisy']} wrong | {r['precision']:.2f} | "
                     f"{r['recall']:.2f} | {r['queue_precision']:.2f} / {r['queue_recall']:.2f} | "
                     f"{r['cv_accuracy_truth']:.1%} | {r['cv_seconds'] / 60:.1f} |")
    m = result["machine"]
    lines += ["", f"{m['cpu']}, {m['cores']} cores (shared; load average {m['load_average']}), {result['date']}."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
