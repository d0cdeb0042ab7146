"""Detection quality on real data: how well each detector finds the wrong labels.

    python benchmarks/detection.py                        # the recorded CPU table (CIFAR-10)
    python benchmarks/detection.py --settings sym40 --folds 4
    python benchmarks/detection.py --dataset builtin --budget smoke --settings sym40 --folds 2   # seconds

For each noise setting one run of --recipe is trained (the same cell as benchmarks/robustness.py,
in the same --work folder, so a cell trained by either script is reused by the other). Every
detector then judges the training labels twice: with the run's own (in-sample) probabilities, and
with out-of-sample probabilities from K-fold cross-validation (noisycore.crossval: K runs of the
same recipe, each predicting the fold it did not see). Precision, recall and F1 are computed
against the known truth. Resumable: finished runs and finished folds are kept.

    <out>.csv   one row per setting x source x detector (precision, recall, F1, AP, seconds)
    <out>.md    the Markdown table that benchmarks/README.md quotes
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import BUDGETS, RECIPES, SETTING_HELP, UserError  # noqa: E402

DEFAULT_OUT = common.ROOT / "benchmarks" / "results" / "detection"
DEFAULT_SETTINGS = ("sym20", "sym40", "worst")
COLUMNS = ("setting", "noise_rate", "n", "n_noisy", "source", "detector", "flagged", "precision", "recall", "f1",
           "average_precision", "detector_seconds", "probs_seconds", "run")


def score(run_dir: Path, *, setting: str, source: str, folds: int) -> list:
    """Every detector on one source of probabilities; one row each."""
    from noisycore import detect
    from noisycore import detectors

    info = detect.read_run_labels(run_dir)
    if info.is_noisy is None:
        raise UserError(f"{run_dir} has no true labels, so detection cannot be scored")
    probs = detect.pred_probs(run_dir, source=source, ids=info.ids)
    probs_seconds = common.run_seconds(run_dir) if source == "in_sample" else common.cv_seconds(run_dir, folds)
    margins = detect.read_margins(run_dir)
    from noisycore import runs

    rate = (runs.read_summary(run_dir) or {}).get("noise_rate")
    rows = []
    for name in detectors.DETECTORS:
        if name in detectors.MARGIN_DETECTORS and (source != "in_sample" or margins is None or name == "aum"):
            continue            # AUM reads the margins recorded while the run trained: in-sample only
        t0 = time.perf_counter()
        found = detectors.find_label_issues(info.labels, probs, detector=name,
                                             margins=margins if name in detectors.MARGIN_DETECTORS else None)
        seconds = time.perf_counter() - t0
        ev = detectors.evaluate(found, info.is_noisy)
        rows.append({"setting": setting, "noise_rate": rate, "n": len(info.labels), "n_noisy": int(info.is_noisy.sum()),
                     "source": "in-sample" if source == "in_sample" else f"{folds}-fold CV", "detector": name,
                     "flagged": found.num_issues, **{k: ev.get(k) for k in ("precision", "recall", "f1",
                                                                           "average_precision")},
                     "detector_seconds": round(seconds, 3), "probs_seconds": round(probs_seconds, 1),
                     "run": common.shown_path(run_dir)})
    return rows


def markdown(frame: pd.DataFrame) -> str:
    rows = []
    sources = list(dict.fromkeys(frame["source"]))
    for (setting, detector), g in frame.groupby(["setting", "detector"], sort=False):
        rate = g["noise_rate"].dropna()
        row = {"noise": SETTING_HELP.get(setting, setting)
               + (f" ({100 * float(rate.iloc[0]):.1f}% wrong)" if len(rate) else ""), "detector": detector}
        for source in sources:
            r = g[g["source"] == source]
            row[f"{source}: P / R / F1"] = "—" if r.empty else " / ".join(
                f"{float(r[k].iloc[0]):.2f}" for k in ("precision", "recall", "f1"))
            row[f"{source}: flagged"] = "—" if r.empty else int(r["flagged"].iloc[0])
        rows.append(row)
    return common.markdown_table(pd.DataFrame(rows))


def times_markdown(frame: pd.DataFrame) -> str:
    rows = []
    for (setting, source), g in frame.groupby(["setting", "source"], sort=False):
        rows.append({"noise": setting, "probabilities from": source,
                     "seconds to get them (training)": f"{float(g['probs_seconds'].iloc[0]):.0f}",
                     "all detectors (seconds)": f"{float(g['detector_seconds'].sum()):.2f}"})
    return common.markdown_table(pd.DataFrame(rows))


def write_results(frame: pd.DataFrame, out: Path, *, dataset: str, budget_name: str, recipe: str, folds: int,
                  command: str, done: int, total: int) -> None:
    common.atomic_write(out.with_suffix(".csv"), frame.to_csv(index=False))
    budget = BUDGETS[budget_name]
    text = [f"# Detection on {dataset}: budget `{budget_name}` ({budget.note})", "",
            f"Machine: {common.machine()}. Command: `{command}`. Settings finished: {done} of {total}.", "",
            f"Probabilities from `{recipe}` ({RECIPES[recipe][1]}); in-sample = the run's own best model, "
            f"{folds}-fold CV = out-of-sample. Precision / recall / F1 against the known wrong labels.", "",
            markdown(frame) if len(frame) else "(no setting finished yet)", "",
            "Time:", "", times_markdown(frame) if len(frame) else "", ""]
    common.atomic_write(out.with_suffix(".md"), "\n".join(text))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Rerun the same command to resume; finished runs and folds are kept.")
    common.add_common_options(p)
    p.add_argument("--settings", default=None, help="noise settings (default sym20,sym40,worst; builtin: sym20,sym40)")
    p.add_argument("--recipe", default="gce", help=f"the recipe whose probabilities are judged: {', '.join(RECIPES)}")
    p.add_argument("--folds", type=int, default=4, help="folds of the cross-validation (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and the training (default 0)")
    p.add_argument("--out", default=None, help="results prefix (default benchmarks/results/detection-<dataset>-<budget>)")
    return common.cli("detection", p, run, argv)


def run(args, argv) -> int:
    noisy = tuple(s for s in common.SETTING_HELP if s != "clean")
    budget_name, budget, setting_names, work = common.resolve(args, noisy, DEFAULT_SETTINGS)
    common.check_names("recipe", (args.recipe,), tuple(RECIPES))
    if not 2 <= args.folds <= 20:
        raise UserError(f"--folds {args.folds} must be in 2..20")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed} must be a non-negative integer")
    out = Path(args.out or DEFAULT_OUT.with_name(f"detection-{args.dataset}-{budget_name}"))
    command = "python benchmarks/detection.py " + " ".join(argv if argv is not None else sys.argv[1:])
    configs = {s: common.cell_config(dataset=args.dataset, budget=budget, setting=s, recipe=args.recipe,
                                     seed=args.seed) for s in setting_names}
    import logging

    from noisycore import crossval
    from noisycore.console import import_quietly

    import_quietly("noisycore.train")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    rows = []
    for i, setting in enumerate(setting_names, 1):
        path = work / setting / f"{args.recipe}-s{args.seed}"
        t0 = time.monotonic()
        if not common.cell_finished(path, configs[setting]):
            print(f"[{i}/{len(setting_names)}] {setting}: training {args.recipe} ...", flush=True)
            if common.train_cell(path, configs[setting]) is None:
                raise UserError(f"another process is training {path} right now; rerun when it has finished")
        print(f"[{i}/{len(setting_names)}] {setting}: {args.folds}-fold cross-validation "
              "(finished folds are reused) ...", flush=True)
        crossval.cross_validate(path, folds=args.folds)
        for source in ("in_sample", "cross_validation"):
            rows += score(path, setting=setting, source=source, folds=args.folds)
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        best = frame[frame["setting"] == setting].sort_values("f1", ascending=False).iloc[0]
        print(f"[{i}/{len(setting_names)}] {setting}: best F1 {best['f1']:.2f} ({best['detector']}, {best['source']}), "
              f"{time.monotonic() - t0:.0f} s", flush=True)
        write_results(frame, out, dataset=args.dataset, budget_name=budget_name, recipe=args.recipe, folds=args.folds,
                      command=command, done=i, total=len(setting_names))
    print(f"tables: {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
