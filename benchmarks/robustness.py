"""Robustness on real data: the blog post's recipe against the app's recipes, same budget.

    python benchmarks/robustness.py                          # the recorded CPU table (CIFAR-10, seeds 0,1)
    python benchmarks/robustness.py --seeds 0 --settings sym40,worst --recipes blog,gce
    python benchmarks/robustness.py --dataset builtin --budget smoke --settings clean,sym40   # seconds

Every (noise setting, recipe, seed) cell is an ordinary run folder in --work (default
runs/bench-<dataset>-<budget>/, shared with detection.py); run the same command again to resume: finished cells
are kept, a cell cut short is trained again. After every cell the results are rewritten:

    <out>.csv          one row per cell: best / last / max test accuracy, best epoch, times
    <out>_epochs.csv   every epoch of every cell (test accuracy, memorized share, seconds)
    <out>.md           the Markdown tables that benchmarks/README.md quotes

"best" is the clean test accuracy at the epoch with the best accuracy on the noisy validation split
(what early stopping with restore_best_weights returns; the test set is never used to choose);
"last" is the last epoch's. Time to accuracy: the training seconds (fit_seconds, the epochs' steps
and validation, without our per-epoch evaluation) a recipe needs until its test accuracy first
reaches the blog recipe's best, against the blog recipe's own time to its best. It reads the
per-epoch TEST curve, so it is a report of how fast each recipe gets there, never a selection: no
epoch, model or setting is chosen by it (model selection uses the noisy validation split only).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import BUDGETS, RECIPES, SETTING_HELP  # noqa: E402

DEFAULT_OUT = common.ROOT / "benchmarks" / "results" / "robustness"
CELL_COLUMNS = ("setting", "recipe", "seed", "noise_rate", "epochs", "best_epoch", "test_best", "test_last",
                "test_max", "drop", "memorized_last", "fit_seconds", "seconds", "load_before", "load_after", "run")


def cell_path(work: Path, setting: str, recipe: str, seed: int) -> Path:
    return work / setting / f"{recipe}-s{seed}"


def cell_row(path: Path, m: pd.DataFrame, setting: str, recipe: str, seed: int) -> dict:
    """The results row of one finished cell from its summary and its metrics ``m``."""
    from noisycore import runs

    summary = runs.read_summary(path) or {}
    best = summary.get("best_epoch")
    at_best = m.loc[m["epoch"] == best, "test_accuracy"] if best is not None else pd.Series(dtype=float)
    test_best = float(at_best.iloc[0]) if len(at_best) else summary.get("test_accuracy")
    test_last = float(m["test_accuracy"].iloc[-1])
    fit = m["fit_seconds"] if "fit_seconds" in m else m["seconds"]
    return {"setting": setting, "recipe": recipe, "seed": seed, "noise_rate": summary.get("noise_rate"),
            "epochs": int(len(m)), "best_epoch": best, "test_best": test_best, "test_last": test_last,
            "test_max": float(m["test_accuracy"].max()), "drop": test_best - test_last,
            "memorized_last": summary.get("last_memorized"), "fit_seconds": round(float(fit.sum()), 1),
            "seconds": summary.get("seconds"), "load_before": summary.get("load_before"),
            "load_after": summary.get("load_after"), "run": common.shown_path(path)}


def time_to(metrics: pd.DataFrame, target: float):
    """Cumulative fit seconds until test accuracy first reaches ``target`` (None if never), and that epoch."""
    fit = (metrics["fit_seconds"] if "fit_seconds" in metrics else metrics["seconds"]).astype(float).cumsum()
    hit = np.flatnonzero(metrics["test_accuracy"].to_numpy(dtype=float) >= target - 1e-12)
    if not len(hit):
        return None, None
    return float(fit.iloc[hit[0]]), int(metrics["epoch"].iloc[hit[0]])


def time_table(cells: pd.DataFrame, metrics: dict, baseline: str = "blog") -> pd.DataFrame:
    """Per setting, seed and non-baseline recipe: the baseline's best, the seconds each needs to reach it.
    ``metrics`` maps (setting, recipe, seed) to that cell's metrics."""
    rows = []
    for (setting, seed), group in cells.groupby(["setting", "seed"], sort=False):
        base = group[group["recipe"] == baseline]
        if base.empty:
            continue
        target = float(base["test_best"].iloc[0])
        base_s, base_e = time_to(metrics[(setting, baseline, seed)], target)
        for _, r in group[group["recipe"] != baseline].iterrows():
            s, e = time_to(metrics[(setting, r["recipe"], seed)], target)
            rows.append({"setting": setting, "seed": seed, "recipe": r["recipe"], "target": target,
                         "baseline_seconds": base_s, "baseline_epoch": base_e, "seconds": s, "epoch": e,
                         "ratio": None if s is None or not base_s else s / base_s})
    return pd.DataFrame(rows, columns=["setting", "seed", "recipe", "target", "baseline_seconds", "baseline_epoch",
                                       "seconds", "epoch", "ratio"])


def accuracy_markdown(cells: pd.DataFrame, recipes, baseline: str = "blog") -> str:
    rows = []
    for setting, group in cells.groupby("setting", sort=False):
        rate = group["noise_rate"].dropna()
        row = {"noise": f"{SETTING_HELP.get(setting, setting)}"
                        + (f", {100 * float(rate.iloc[0]):.1f}% wrong" if len(rate) and setting != "clean" else "")}
        for recipe in recipes:
            g = group[group["recipe"] == recipe]
            row[f"{recipe} best"] = common.mean_spread(g["test_best"]) if len(g) else "—"
            row[f"{recipe} last"] = common.mean_spread(g["test_last"]) if len(g) else "—"
        others = [r for r in recipes if r != baseline] if baseline in recipes else []
        b = group[group["recipe"] == baseline]
        for recipe in others:
            g = group[group["recipe"] == recipe]
            row[f"{recipe} − {baseline} (best)"] = f"{100 * (g['test_best'].mean() - b['test_best'].mean()):+.1f}" \
                if len(b) and len(g) else "—"
        row["seeds"] = ",".join(str(s) for s in sorted(group["seed"].unique()))
        rows.append(row)
    return common.markdown_table(pd.DataFrame(rows).fillna("—"))


def time_markdown(times: pd.DataFrame) -> str:
    if times.empty:
        return "(needs the blog recipe and another recipe on the same setting and seed)"
    out = times.copy()
    out["target"] = out["target"].map(common.pct)
    for col in ("baseline_seconds", "seconds"):
        out[col] = out[col].map(lambda s: "not reached" if s is None or s != s else f"{s:.0f} s")
    out["ratio"] = out["ratio"].map(lambda r: "—" if r is None or r != r else f"{r:.2f}")
    out = out.rename(columns={"target": "blog best (target)", "baseline_seconds": "blog: seconds to it",
                              "baseline_epoch": "blog epoch", "seconds": "recipe: seconds to it",
                              "epoch": "recipe epoch", "ratio": "time ratio"})
    return common.markdown_table(out.fillna("—"))


def finished_cells(work: Path) -> list:
    """(setting, recipe, seed) of every finished cell in ``work``, also those of earlier commands (e.g. a
    second seed of some settings), in the order of SETTING_HELP and RECIPES."""
    import re

    found = []
    for summary in sorted(work.glob("*/*-s*/summary.json")):
        m = re.fullmatch(r"(.+)-s(\d+)", summary.parent.name)
        setting = summary.parent.parent.name
        if m and setting in SETTING_HELP and m.group(1) in RECIPES:
            found.append((setting, m.group(1), int(m.group(2))))
    order = {s: i for i, s in enumerate(SETTING_HELP)}
    return sorted(found, key=lambda c: (order[c[0]], list(RECIPES).index(c[1]), c[2]))


def write_results(work: Path, out: Path, grid, *, budget_name: str, dataset: str, command: str,
                  report: bool = False) -> pd.DataFrame:
    from noisycore import runs

    metrics = {cell: runs.read_metrics(cell_path(work, *cell)) for cell in finished_cells(work)}   # read once
    cells = pd.DataFrame([cell_row(cell_path(work, *cell), m, *cell) for cell, m in metrics.items()],
                         columns=list(CELL_COLUMNS))
    epochs = [m.assign(setting=cell[0], recipe=cell[1], seed=cell[2]) for cell, m in metrics.items()]
    common.atomic_write(out.with_suffix(".csv"), cells.to_csv(index=False))
    if epochs:
        common.atomic_write(out.with_name(out.name + "_epochs.csv"), pd.concat(epochs).to_csv(index=False))
    recipes = [r for r in RECIPES if r in set(cells["recipe"]) | {r for _, r, _ in grid}]
    in_grid = sum(c in metrics for c in grid)
    times = time_table(cells, metrics) if len(cells) else pd.DataFrame()
    budget = BUDGETS[budget_name]
    text = [f"# Robustness on {dataset}: budget `{budget_name}` ({budget.note})", "",
            f"Machine: {common.machine()}. The tables hold every finished cell of {work.name}/ ({len(cells)}); "
            f"last written by `{command}`" + ("." if report else f" ({in_grid} of its {len(grid)} cells finished)."),
            "",
            "Clean test accuracy (%), mean ± half the range over seeds; best = at the epoch with the best "
            "noisy-validation accuracy, last = last epoch.", "", accuracy_markdown(cells, recipes) if len(cells) else "",
            "", "Recipes:", ""] + [f"- `{r}`: {RECIPES[r][1]}" for r in recipes] + [
            "", "Time to the blog recipe's best test accuracy (training seconds, same machine, same labels; read "
            "from the per-epoch test curve, so a report, not a selection: nothing is chosen by it):", "",
            time_markdown(times), ""]
    common.atomic_write(out.with_suffix(".md"), "\n".join(text))
    return cells


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Rerun the same command to resume; finished cells are kept.")
    common.add_common_options(p)
    p.add_argument("--settings", default=None, help="noise settings, e.g. clean,sym20,sym40,asym40,worst,aggre")
    p.add_argument("--recipes", default="blog,gce", help=f"recipes from: {', '.join(RECIPES)} (default blog,gce)")
    p.add_argument("--seeds", default="0,1", help="seeds of the noise and the training (default 0,1)")
    p.add_argument("--out", default=None, help="results prefix (default benchmarks/results/robustness-<dataset>-<budget>)")
    p.add_argument("--report", action="store_true", help="only rewrite the tables from finished cells")
    return common.cli("robustness", p, run, argv)


def run(args, argv) -> int:
    every = tuple(common.SETTING_HELP)
    budget_name, budget, setting_names, work = common.resolve(args, every, every)
    recipe_names = common.check_names("recipe", common.parse_list(args.recipes), tuple(RECIPES))
    seeds = common.parse_seeds(args.seeds)
    out = Path(args.out or DEFAULT_OUT.with_name(f"robustness-{args.dataset}-{budget_name}"))
    # seed-major order: a first complete table (one seed) comes early
    grid = [(s, r, seed) for seed in seeds for s in setting_names for r in recipe_names]
    command = "python benchmarks/robustness.py " + " ".join(argv if argv is not None else sys.argv[1:])
    configs = {cell: common.cell_config(dataset=args.dataset, budget=budget, setting=cell[0], recipe=cell[1],
                                        seed=cell[2]) for cell in grid}   # every config valid before training
    cells = None
    if not args.report:
        import logging

        from noisycore.console import import_quietly

        import_quietly("noisycore.train")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        for i, cell in enumerate(grid, 1):
            path = cell_path(work, *cell)
            t0 = time.monotonic()
            done = common.cell_finished(path, configs[cell])
            if not done:
                print(f"[{i}/{len(grid)}] training {path.relative_to(work)} ...", flush=True)
                if common.train_cell(path, configs[cell]) is None:
                    print(f"[{i}/{len(grid)}] {path.relative_to(work)}: another process is training it; "
                          "skipped (rerun later to include it)", flush=True)
                    continue
            cells = write_results(work, out, grid, budget_name=budget_name, dataset=args.dataset, command=command)
            row = cells.set_index(["setting", "recipe", "seed"]).loc[cell]
            print(f"[{i}/{len(grid)}] {path.relative_to(work)}: best {common.pct(row['test_best'])}% "
                  f"(epoch {row['best_epoch']}), last {common.pct(row['test_last'])}%"
                  + ("" if done else f", {time.monotonic() - t0:.0f} s"), flush=True)
    if cells is None:       # --report, or every cell was being trained by another process
        cells = write_results(work, out, grid, budget_name=budget_name, dataset=args.dataset, command=command,
                              report=args.report)
    finished = set(zip(cells["setting"], cells["recipe"], cells["seed"]))
    done = sum(c in finished for c in grid)
    print(f"{done} of {len(grid)} cells finished; tables: {out.with_suffix('.md')}")
    return 0 if args.report or done == len(grid) else 1


if __name__ == "__main__":
    sys.exit(main())
