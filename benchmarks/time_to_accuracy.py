"""Time to accuracy: the `fast` recipe against the blog post's recipe on the same CPU (issue 11).

    python benchmarks/time_to_accuracy.py                      # full CIFAR-10: clean, sym40, worst; seed 0
    python benchmarks/time_to_accuracy.py --seeds 0,1          # a second seed (finished cells are kept)
    python benchmarks/time_to_accuracy.py --recipe fast_ls     # the same with label smoothing (results ...-fast_ls.*)
    python benchmarks/time_to_accuracy.py --epochs 36 --settings clean   # a longer schedule (own cells)
    python benchmarks/time_to_accuracy.py --dataset builtin --budget smoke --blog-steps 3   # seconds (a test)

The fast recipe is trained per noise setting (one resumable run folder per cell in --work, default
runs/tta-<dataset>-<budget>/; rerun the same command to resume). Its curve is the clean test
accuracy after every epoch against the cumulative training wall time (fit_seconds: the epoch's steps
and its validation pass, not the extra per-epoch evaluation the run folder records).

The blog recipe is not re-run for hours: its seconds per full-data epoch are measured in the same
invocation (``--blog-steps`` steps after a warm-up, extrapolated to the fit split's batches, plus
one timed validation pass; the extrapolation is stated in the results; a cached timing is reused only from
the same CPU, TensorFlow, code revision and timing method) and multiplied by the epoch at
which it peaks in the reference run (a GPU, Keras 3; benchmarks/reference/blog_reference.json): clean 86.90% at epoch 98, symmetric 40% 79.91%
at epoch 54, CIFAR-10N worst 77.05% at epoch 34. Goal: the fast recipe reaches those accuracies in at
most 1/6 of the blog recipe's time to them, and beats them by >= 5 points within 1/3 of it.

Writes <out>.csv (one row per cell), <out>_epochs.csv (the curves), <out>.md (the tables, CPU model,
flags, precision, load averages) and <out>.png (the chart; <out>.html is the same chart in Altair).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import detection  # noqa: E402
from common import SETTING_HELP, Budget  # noqa: E402

from noisycore.config import PRESETS  # noqa: E402

# The blog recipe's best test accuracy and the epoch it is reached at: the reference run (one GPU, Keras 3,
# flip-only augmentation, validation on the test set as the post does), copied from
# ../shared/anchors/blog-reference/ into benchmarks/reference/blog_reference.json ("runs"); a test checks
# that these equal the file.
BLOG_BEST = {"clean": (0.8690, 98), "sym40": (0.7991, 54), "worst": (0.7705, 34)}
SPEEDUP_GOAL, MARGIN_GOAL = 6.0, 0.05     # reach the blog's best in <= 1/6 of its time; +5 points in <= 1/3
BUDGETS = {
    "smoke": common.BUDGETS["smoke"],
    "subset": Budget(10000, 2000, PRESETS["fast"]["epochs"],
                     "10,000 CIFAR-10 training images (10% noisy validation), 2,000 test images, the preset's epochs"),
    "full": Budget(None, None, PRESETS["fast"]["epochs"],
                   "all 50,000 training images (45,000 fit + 5,000 noisy validation), all 10,000 test images, "
                   f"the fast preset's {PRESETS['fast']['epochs']} epochs"),
}
DEFAULT_OUT = common.ROOT / "benchmarks" / "results" / "time_to_accuracy"


FAST_RECIPES = ("fast", "fast_ls")   # common.RECIPES entries this script can train


def recipe_tag(recipe: str, epochs=None) -> str:
    """The recipe's name in cell folders and result files: ``fast_ls``, or ``fast_ls-e24`` when --epochs
    changes the preset's schedule length (the schedule stretches with it)."""
    return recipe if epochs is None else f"{recipe}-e{int(epochs)}"


def cell_path(work: Path, setting: str, seed: int, recipe: str = "fast", epochs=None) -> Path:
    return work / setting / f"{recipe_tag(recipe, epochs)}-s{seed}"


def fast_config(dataset: str, budget: Budget, setting: str, seed: int, recipe: str = "fast", epochs=None):
    config = common.cell_config(dataset=dataset, budget=budget, setting=setting, recipe=recipe, seed=seed)
    return config if epochs is None else config.replace(epochs=int(epochs))


# ------------------------------------------------------------------------------ the blog recipe's epoch
def step_clock(warmup: int):
    """A Keras callback timing the training steps after the first ``warmup`` ones (tracing, first
    allocations): from the end of step ``warmup`` to the end of the last step. Only the steps: not
    the building and teardown of the data iterator around them, which can leave the cores idle for
    seconds (benchmarks/README.md, "Idle stalls between epochs"). Until 2026-12-01 the blog timing
    measured around a ``fit`` call and caught such a wait in two recorded timings and in 1 of 3 repeats
    (0.342 s per step instead of 0.187-0.193); the steps alone measured 0.187-0.192 in 3 of 3."""
    import keras

    if warmup < 1:
        raise ValueError(f"warmup={warmup!r}: at least one untimed step is needed to start the clock")

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.t0, self.seconds = None, 0.0

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if batch == warmup - 1:
                self.t0 = now
            elif self.t0 is not None:
                self.seconds = now - self.t0

    return StepClock()


def blog_epoch_seconds(dataset: str, budget: Budget, *, steps: int, precision: str) -> dict:
    """Seconds per epoch of the blog recipe on this machine: ``steps`` timed training steps (after 3
    warm-up steps) scaled to the fit split's batches, plus one timed validation pass."""
    import keras

    from noisycore import train
    from noisycore.methods import METHODS

    config = common.cell_config(dataset=dataset, budget=budget, setting="sym40", recipe="blog", seed=0)
    config = config.replace(mixed_precision=precision)
    policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        ctx, fit_idx, _ = train.make_context(config, train.prepare(config), None)
        method = METHODS["standard"](ctx)
        model = method.build()
        data = method.train_data().repeat()
        batches = math.ceil(len(fit_idx) / config.batch_size)
        load_before = os.getloadavg()[0]
        clock = step_clock(3)
        model.fit(data, steps_per_epoch=3 + int(steps), epochs=1, verbose=0, callbacks=[clock])
        step = clock.seconds / steps
        t0 = time.perf_counter()
        model.evaluate(method.val_data(), verbose=0)
        val = time.perf_counter() - t0
    finally:
        keras.mixed_precision.set_global_policy(policy)
        keras.backend.clear_session()
    return {"seconds_per_step": step, "batches": batches, "validation_seconds": val, "steps_timed": int(steps),
            "epoch_seconds": step * batches + val, "precision": precision, "num_fit": int(len(fit_idx)),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


TIMING_METHOD = "step_clock: steps after 3 warm-up steps, extrapolated, + one validation pass"


def timing_key(*, steps: int, precision: str) -> dict:
    """What a cached blog timing must match to be reused: the CPU, the TensorFlow version, the code revision
    (with a hash of uncommitted changes) and the timing method. Anything else is a different measurement."""
    import tensorflow as tf

    from noisycore.hardware import cpu_model

    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
            "revision": common.revision(), "timing_method": TIMING_METHOD, "steps_timed": int(steps),
            "precision": precision}


def cached_timing(saved: dict, key: dict):
    """``saved`` when it was measured under ``key``, else the reason it is refused (a string)."""
    differ = [k for k, v in key.items() if saved.get(k) != v]
    return saved if not differ else "its " + ", ".join(f"{k} {saved.get(k)!r} is not {key[k]!r}" for k in differ)


def blog_timing(work: Path, dataset: str, budget: Budget, *, steps: int, precision: str) -> dict:
    """The blog recipe's epoch time in ``precision``: measured in this invocation, or reused from the work
    folder's blog_epoch-<precision>.json only when it was measured on this CPU with this TensorFlow, this
    code revision and this timing method (``timing_key``)."""
    path = work / f"blog_epoch-{precision}.json"
    key = timing_key(steps=steps, precision=precision)
    if path.is_file():
        saved = cached_timing(json.loads(path.read_text()), key)
        if isinstance(saved, dict):
            return {**saved, "cached": True}
        print(f"{path.name} refused: {saved}", flush=True)
    print(f"timing the blog recipe: {steps} steps ({precision}) ...", flush=True)
    result = {**blog_epoch_seconds(dataset, budget, steps=steps, precision=precision), **key,
              "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    common.atomic_write(path, json.dumps(result, indent=2))
    return {**result, "cached": False}


def blog_precisions(headline: str) -> tuple:
    """The blog side's precisions to time: the one the ratios use (float32 by default: the post's code as
    written) and, where the app's ``blog`` preset resolves to bfloat16 (a CPU with native bf16), that one too."""
    from noisycore.hardware import resolve_precision

    return tuple(dict.fromkeys((headline, resolve_precision("auto"))))


# ------------------------------------------------------------------------------ the tables
def curve(metrics: pd.DataFrame) -> pd.DataFrame:
    """Epoch, cumulative training seconds and test accuracy of one cell."""
    fit = metrics["fit_seconds"] if "fit_seconds" in metrics else metrics["seconds"]
    return pd.DataFrame({"epoch": metrics["epoch"].astype(int), "train_seconds": fit.astype(float).cumsum(),
                         "wall_seconds": metrics["seconds"].astype(float).cumsum(),
                         "test_accuracy": metrics["test_accuracy"].astype(float)})


def cell_row(setting: str, seed: int, m: pd.DataFrame, summary: dict, blog_epoch: float) -> dict:
    """Per cell: the blog recipe's best and time to it, the fast recipe's time to it, ratios, the
    fast recipe's best accuracy within 1/3 of the blog's time and its final (selected-model) accuracy."""
    c = curve(m)
    target, blog_epochs = BLOG_BEST.get(setting, (None, None))
    blog_seconds = None if target is None else blog_epoch * blog_epochs
    hit = c[c["test_accuracy"] >= target - 1e-12] if target is not None else c.iloc[:0]
    seconds = float(hit["train_seconds"].iloc[0]) if len(hit) else None
    within = c[c["train_seconds"] <= blog_seconds / 3] if blog_seconds else c.iloc[:0]
    best_third = float(within["test_accuracy"].max()) if len(within) else None
    return {"setting": setting, "seed": seed, "blog_best": target, "blog_epoch": blog_epochs,
            "blog_seconds": blog_seconds, "fast_seconds": seconds,
            "fast_epoch": int(hit["epoch"].iloc[0]) if len(hit) else None,
            "fast_seconds_with_evaluation": float(hit["wall_seconds"].iloc[0]) if len(hit) else None,
            "ratio": None if seconds is None or not blog_seconds else seconds / blog_seconds,
            "speed_goal_met": None if blog_seconds is None else bool(seconds is not None
                                                                     and seconds <= blog_seconds / SPEEDUP_GOAL),
            "best_within_third": best_third,
            "margin_goal_met": None if target is None else bool(best_third is not None
                                                                and best_third >= target + MARGIN_GOAL),
            "final_test_accuracy": summary.get("test_accuracy"), "best_epoch": summary.get("best_epoch"),
            "epochs": int(len(m)), "train_seconds": float(c["train_seconds"].iloc[-1]) if len(c) else None,
            "noise_rate": summary.get("noise_rate"), "precision": summary.get("precision"),
            "load_before": summary.get("load_before"), "load_after": summary.get("load_after")}


def _fmt_s(s) -> str:
    return "not reached" if s is None or s != s else f"{s / 60:.1f} min"


def markdown(rows: pd.DataFrame, blog: dict, *, dataset, budget_name, command, machine: dict, epochs=None,
             others=None) -> str:
    b = BUDGETS[budget_name]
    note = b.note if epochs is None else f"{b.note.rsplit(', ', 1)[0]}, {int(epochs)} epochs"
    out = rows.copy()
    table = pd.DataFrame({
        "setting": out["setting"].map(lambda s: SETTING_HELP.get(s, s)), "seed": out["seed"],
        "blog best (epoch)": [f"{common.pct(t)} ({e})" if t is not None and t == t else "—"
                              for t, e in zip(out["blog_best"], out["blog_epoch"])],
        "blog: time to it": out["blog_seconds"].map(_fmt_s),
        "fast: time to it": out["fast_seconds"].map(_fmt_s),
        "(incl. per-epoch evaluation)": out["fast_seconds_with_evaluation"].map(_fmt_s),
        "ratio (goal <= 0.17)": out["ratio"].map(lambda r: "—" if r is None or r != r else f"{r:.3f}"),
        "fast best within 1/3 of blog time": out["best_within_third"].map(common.pct),
        "fast final (selected on noisy val)": out["final_test_accuracy"].map(common.pct),
        "fast epochs / minutes": [f"{e} / {s / 60:.1f}" for e, s in zip(out["epochs"], out["train_seconds"])],
        "precision": out["precision"],
        "load before → after": [f"{a} → {z}" for a, z in zip(out["load_before"], out["load_after"])],
    })
    extrap = (f"{blog['epoch_seconds']:.1f} s per epoch = {blog['seconds_per_step']:.3f} s/step x {blog['batches']} "
              f"batches (extrapolated from {blog['steps_timed']} timed steps) + {blog['validation_seconds']:.1f} s "
              f"validation; {blog['precision']}; load {blog['load_before']} → {blog['load_after']}; "
              + ("reused from this work folder's cache (same CPU, TensorFlow, code revision and timing method)"
                 if blog.get("cached") else "measured in this invocation"))
    for precision, other in (others or {}).items():
        extrap += (f". In {precision} (the app's blog preset on this CPU): {other['epoch_seconds']:.1f} s per epoch; "
                   f"the CSV's ratio_{precision} uses it")
    return "\n".join([
        f"# Time to accuracy on {dataset}: budget `{budget_name}` ({note})", "",
        f"Machine: {common.machine()}; bfloat16-related CPU flags: {', '.join(machine['bf16_flags']) or 'none'}; "
        f"load average at the start {machine['load_start']}, at the end {machine['load_end']}.",
        f"Last written by `{command}`.", "",
        f"Blog recipe on this machine: {extrap}. Its time to its best = that x the epoch of its best in the "
        "reference run.", "",
        "Fast recipe: clean test accuracy after each epoch against cumulative training time (steps + validation; "
        "in brackets also with the app's per-epoch evaluation: predictions of the whole training set, and TTA "
        "predictions of the validation and test sets, for the curves, which the blog's epoch time does not "
        "include either). "
        f"Goals: ratio <= 1/{SPEEDUP_GOAL:.0f} and >= blog best + {100 * MARGIN_GOAL:.0f} points within 1/3 of "
        "the blog's time.", "", common.markdown_table(table) if len(table) else "(no finished cell yet)", ""])


def chart_frame(curves: pd.DataFrame) -> pd.DataFrame:
    return curves.assign(minutes=curves["train_seconds"] / 60,
                         run=curves["setting"] + " seed " + curves["seed"].astype(str))


def write_png(curves: pd.DataFrame, rows: pd.DataFrame, path: Path) -> None:
    """A plain line chart (Pillow only: no browser or vl-convert needed): test accuracy over minutes
    per cell, the blog's best as a dashed level ending at the blog's time to it."""
    from PIL import Image, ImageDraw

    w, h, left, bottom, top, right = 900, 520, 70, 60, 40, 200
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    frame = chart_frame(curves)
    xmax = max([1.0] + list(frame["minutes"]) + [s / 60 for s in rows["blog_seconds"].dropna()]) * 1.05
    ymin, ymax = 0.0, 1.0
    px = lambda m: left + (w - left - right) * m / xmax  # noqa: E731
    py = lambda a: h - bottom - (h - top - bottom) * (a - ymin) / (ymax - ymin)  # noqa: E731
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    for a in np.arange(0, 1.01, 0.1):
        d.line([left - 4, py(a), left, py(a)], fill="black")
        d.text((left - 40, py(a) - 6), f"{100 * a:.0f}%", fill="black")
    for m in np.linspace(0, xmax, 6):
        d.line([px(m), h - bottom, px(m), h - bottom + 4], fill="black")
        d.text((px(m) - 10, h - bottom + 8), f"{m:.0f}", fill="black")
    d.text((left + 200, h - 25), "training wall time (minutes)", fill="black")
    d.text((left, 12), "fast recipe: test accuracy over training time; dashed: blog best until its time to it",
           fill="black")
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, (run, g) in enumerate(frame.groupby("run", sort=False)):
        color = palette[i % len(palette)]
        pts = [(px(0), py(0.1))] + [(px(m), py(a)) for m, a in zip(g["minutes"], g["test_accuracy"])]
        d.line(pts, fill=color, width=2)
        d.text((w - right + 10, top + 20 * i), run, fill=color)
        r = rows[(rows["setting"] == g["setting"].iloc[0]) & (rows["seed"] == g["seed"].iloc[0])]
        if len(r) and r["blog_seconds"].iloc[0] == r["blog_seconds"].iloc[0] and r["blog_best"].iloc[0] is not None:
            y, x_end = py(float(r["blog_best"].iloc[0])), px(float(r["blog_seconds"].iloc[0]) / 60)
            for x0 in np.arange(left, x_end, 12):
                d.line([x0, y, min(x0 + 6, x_end), y], fill=color, width=1)
    img.save(path)


def write_html(curves: pd.DataFrame, path: Path) -> None:
    import altair as alt

    chart = alt.Chart(chart_frame(curves)).mark_line(point=True).encode(
        x=alt.X("minutes:Q", title="training wall time (minutes)"),
        y=alt.Y("test_accuracy:Q", title="test accuracy", axis=alt.Axis(format="%")),
        color=alt.Color("run:N", title=None), tooltip=["run", "epoch", "minutes", "test_accuracy"])
    chart.properties(title="fast recipe: test accuracy over training time", width=600).save(str(path))


def blog_fields(row: dict, blog: dict, others: dict) -> dict:
    """The blog timing behind a row (precision, method, epoch seconds, measured in this invocation or
    cached) and the ratio against each other precision timed (``ratio_bfloat16``: the app's blog preset)."""
    out = {"blog_precision": blog["precision"], "blog_timing": blog.get("timing_method", TIMING_METHOD),
           "blog_epoch_seconds": blog["epoch_seconds"], "blog_timing_cached": bool(blog.get("cached"))}
    for precision, other in others.items():
        seconds = None if row["blog_epoch"] is None else other["epoch_seconds"] * row["blog_epoch"]
        out[f"blog_epoch_seconds_{precision}"] = other["epoch_seconds"]
        out[f"ratio_{precision}"] = None if row["fast_seconds"] is None or not seconds else row["fast_seconds"] / seconds
    return out


def write_results(work: Path, out: Path, cells, blog: dict, *, dataset, budget_name, command, machine,
                  recipe: str = "fast", epochs=None, others=None) -> pd.DataFrame:
    from noisycore import runs

    rows, curves = [], []
    for setting, seed in cells:
        path = cell_path(work, setting, seed, recipe, epochs)
        if not (path / "summary.json").is_file():
            continue
        m = runs.read_metrics(path)
        row = cell_row(setting, seed, m, runs.read_summary(path) or {}, blog["epoch_seconds"])
        rows.append({"recipe": recipe_tag(recipe, epochs), **row, **blog_fields(row, blog, others or {}),
                     "wall_seconds": float(curve(m)["wall_seconds"].iloc[-1]), "machine": common.machine(),
                     "date": time.strftime("%Y-%m-%d", time.gmtime()), "revision": common.revision(), "superseded": ""})
        curves.append(curve(m).assign(setting=setting, seed=seed))
    rows = pd.DataFrame(rows)
    common.atomic_write(out.with_suffix(".csv"), rows.to_csv(index=False))
    text = markdown(rows, blog, dataset=dataset, budget_name=budget_name, command=command, machine=machine,
                    epochs=epochs, others=others)
    text += f"\nRecipe `{recipe_tag(recipe, epochs)}`: {common.RECIPES[recipe][1]}" + (
        "" if epochs is None else f", {int(epochs)} epochs instead of the preset's {PRESETS['fast']['epochs']}") + ".\n"
    found = detection_rows(work, cells, recipe, epochs)
    if len(found):
        common.atomic_write(out.with_name(out.name + "_detection.csv"), found.to_csv(index=False))
        text += ("\n## Detection with these models (in-sample)\n\nEvery detector on each noisy cell's own "
                 "predictions (predictions.npz of its best model, flip TTA), against the known wrong labels:\n\n"
                 + detection.markdown(found) + "\n")
    common.atomic_write(out.with_suffix(".md"), text)
    if curves:
        curves = pd.concat(curves, ignore_index=True)
        common.atomic_write(out.with_name(out.name + "_epochs.csv"), curves.to_csv(index=False))
        write_png(curves, rows, out.with_suffix(".png"))
        write_html(curves, out.with_suffix(".html"))
    return rows


def detection_rows(work: Path, cells, recipe: str, epochs) -> pd.DataFrame:
    """Detection precision / recall / F1 of every finished cell whose labels are noisy (the truth is
    known in every setting here), from the cell's own predictions: what the fast model buys a reviewer."""
    rows = []
    for setting, seed in cells:
        path = cell_path(work, setting, seed, recipe, epochs)
        if setting != "clean" and (path / "predictions.npz").is_file():
            rows += detection.score(path, setting=setting if seed == 0 else f"{setting} (seed {seed})",
                                    source="in_sample", folds=0)
    return pd.DataFrame(rows, columns=list(detection.COLUMNS))


# ------------------------------------------------------------------------------ the command line
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Rerun the same command to resume; finished cells are kept.")
    p.add_argument("--dataset", default="cifar10", help="cifar10 (default) or builtin")
    p.add_argument("--budget", default=None, help=f"one of {', '.join(BUDGETS)} (default full; smoke on builtin)")
    p.add_argument("--settings", default=None, help="noise settings (default clean,sym40,worst; builtin: clean,sym40)")
    p.add_argument("--seeds", default="0", help="seeds (default 0)")
    p.add_argument("--recipe", default="fast", help=f"one of {', '.join(FAST_RECIPES)} (default fast)")
    p.add_argument("--epochs", type=int, default=None,
                   help="train this many epochs instead of the preset's (the schedule stretches; own cells and results)")
    p.add_argument("--blog-steps", type=int, default=60, help="timed steps of the blog recipe (default 60)")
    p.add_argument("--blog-precision", default="float32", choices=("float32", "bfloat16"),
                   help="the blog recipe's precision the ratios use (default float32: the blog post's code as "
                        "written); where the app's blog preset resolves to bfloat16 that is timed too")
    p.add_argument("--work", default=None, help="folder of the runs (default runs/tta-<dataset>-<budget>; "
                                                 "both recipes' cells and the blog timing live there)")
    p.add_argument("--out", default=None, help="results prefix (default benchmarks/results/time_to_accuracy-<dataset>-<budget>)")
    return common.cli("time_to_accuracy", p, run, argv)


def run(args, argv) -> int:
    from noisycore.errors import UserError
    from noisycore.hardware import describe

    if args.dataset not in ("cifar10", "builtin"):
        raise UserError(f"--dataset {args.dataset!r} must be cifar10 or builtin")
    budget_name = args.budget or ("smoke" if args.dataset == "builtin" else "full")
    common.check_names("budget", (budget_name,), tuple(BUDGETS))
    valid = tuple(common.settings(args.dataset))
    default = tuple(s for s in ("clean", "sym40", "worst") if s in valid)
    setting_names = common.check_names("setting", common.parse_list(args.settings) if args.settings else default, valid)
    if args.blog_steps < 1:
        raise UserError(f"--blog-steps {args.blog_steps} must be at least 1")
    seeds = common.parse_seeds(args.seeds)
    recipe = common.check_names("recipe", (args.recipe,), FAST_RECIPES)[0]
    if args.epochs is not None and not 1 <= args.epochs <= 200:
        raise UserError(f"--epochs {args.epochs} must be between 1 and 200")
    epochs = args.epochs
    budget = BUDGETS[budget_name]
    tag = f"{args.dataset}-{budget_name}" + ("" if recipe == "fast" and epochs is None else f"-{recipe_tag(recipe, epochs)}")
    work = Path(args.work or common.ROOT / "runs" / f"tta-{args.dataset}-{budget_name}")
    out = Path(args.out or DEFAULT_OUT.with_name(f"time_to_accuracy-{tag}"))
    command = "python benchmarks/time_to_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cells = [(s, seed) for seed in seeds for s in setting_names]
    configs = {c: fast_config(args.dataset, budget, *c, recipe, epochs) for c in cells}   # every config valid before training
    machine = describe()
    machine["load_start"] = machine["load_average"][0]

    import logging

    from noisycore.console import import_quietly

    import_quietly("noisycore.train")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from noisycore import epoch_eval

    # the crossing of the blog's best is read off the per-epoch test curve: every test image, not the app's
    # 5,000-image sample (so the fast side's wall time here includes 5,000 more predictions per epoch than a user's)
    epoch_eval.TEST_SAMPLE_MAX = None
    timings = {p: blog_timing(work, args.dataset, budget, steps=args.blog_steps, precision=p)
               for p in blog_precisions(args.blog_precision)}
    blog = timings.pop(args.blog_precision)
    for t in (blog, *timings.values()):
        print(f"blog recipe: {t['epoch_seconds']:.1f} s per epoch ({t['precision']})", flush=True)
    done = 0
    for i, cell in enumerate(cells, 1):
        path = cell_path(work, *cell, recipe, epochs)
        if not common.cell_finished(path, configs[cell]):
            print(f"[{i}/{len(cells)}] training {path.relative_to(work)} ...", flush=True)
            if common.train_cell(path, configs[cell]) is None:
                print(f"[{i}/{len(cells)}] {path.relative_to(work)}: another process is training it; skipped", flush=True)
                continue
        done += 1
        machine["load_end"] = round(os.getloadavg()[0], 2)
        rows = write_results(work, out, cells, blog, dataset=args.dataset, budget_name=budget_name,
                             command=command, machine=machine, recipe=recipe, epochs=epochs, others=timings)
        r = rows.set_index(["setting", "seed"]).loc[cell]
        print(f"[{i}/{len(cells)}] {path.relative_to(work)}: final {common.pct(r['final_test_accuracy'])}%, "
              f"time to the blog's best {_fmt_s(r['fast_seconds'])} vs {_fmt_s(r['blog_seconds'])}", flush=True)
    print(f"{done} of {len(cells)} cells finished; tables: {out.with_suffix('.md')}")
    return 0 if done == len(cells) else 1


if __name__ == "__main__":
    sys.exit(main())
