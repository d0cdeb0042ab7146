"""Benchmark: the L2 strength of the pretrained features' logistic regression, per image set (issue 29).

The Review queue of own photos can be built on a logistic regression on the cached EfficientNet-Lite2
features (detect's "embeddings" source); ``baseline.choose_c`` picks its C from ``baseline.EMBEDDING_GRID`` by
4-fold out-of-sample agreement with the given labels. This script shows what each C of the grid gives on planted
sets built exactly as ``own_data.py`` builds its set (CIFAR-10 photos in class folders, some moved into a wrong
folder; other classes and seeds than own_data's), with the app's own folds, confident learning and queue order:
the agreement with the given labels (what the choice sees), the agreement with the truth, the planted images
among the queue's first M and 2M (M = number planted), and the flags. Only the benchmark knows the truth.

    python benchmarks/choose_c.py                         # four sets, 900-1,200 photos each (about 2 min)
    python benchmarks/choose_c.py --sets a --grid 0.001,0.1
    python benchmarks/choose_c.py --smoke                 # tiny generated images (the test suite)

Features are computed once per set (the app's cache, under NOISYLAB_HOME) and reused by a second invocation.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402
import own_data  # noqa: E402
from noisycore import baseline, detectors, embeddings, triage  # noqa: E402
from noisycore.config import DataConfig  # noqa: E402
from noisycore.datasets import load_dataset  # noqa: E402
from noisycore.errors import UserError  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# name: (classes, photos per class, planted, seed); "a" is own_data.py's set
SETS = {"a": (("cat", "ship", "frog"), 300, 30, 0),
        "b": (("cat", "dog", "deer", "horse"), 300, 40, 1),
        "c": (("airplane", "automobile", "bird", "truck"), 250, 30, 2),
        "d": (("cat", "ship", "frog"), 300, 30, 3)}
SMOKE = {"s": (("q0", "q1", "q2"), 24, 6, 0)}


def planted_set(work: Path, name: str, spec: tuple, *, smoke: bool) -> tuple:
    """(dataset, given labels, true labels) of one planted set, the labels in the app's review order (training
    images, then held-out ones: cross-validation over every image of own photos)."""
    classes, per_class, planted, seed = spec
    zip_path, truth = own_data.build(work / name, classes=classes, per_class=per_class, planted=planted,
                                     smoke=smoke, seed=seed)
    dataset = load_dataset(DataConfig(source=str(zip_path), image_size=16 if smoke else None))
    ids = np.concatenate([dataset.ids_train, dataset.ids_test]).astype(str)
    given = np.concatenate([dataset.y_train, dataset.y_test]).astype(np.int64)
    names = list(dataset.class_names)
    true = np.array([names.index(truth.get(i, i.split("/")[0])) for i in ids])
    return dataset, given, true


def set_probs(work: Path, name: str, spec: tuple, *, smoke: bool) -> tuple:
    """(given labels, true labels, embeddings) of every image of one planted set, in the app's review order."""
    dataset, given, true = planted_set(work, name, spec, smoke=smoke)
    return given, true, embeddings.embed(dataset, size=32 if smoke else embeddings.DEFAULT_SIZE)


def score(given: np.ndarray, true: np.ndarray, probs: np.ndarray) -> dict:
    """What a reviewer gets from one model's out-of-sample probabilities (confident learning, the app's order)."""
    found = detectors.find_label_issues(given, probs, detector="confident_learning")
    planted = given != true
    frame = pd.DataFrame({"index": np.arange(len(given)), "label_quality": found.label_quality,
                          "is_label_issue": found.is_label_issue, "planted": planted})
    order = triage.ranked(frame)["planted"].to_numpy()
    m = int(planted.sum())
    return {"agree_given": round(float((probs.argmax(1) == given).mean()), 4),
            "agree_truth": round(float((probs.argmax(1) == true).mean()), 4),
            "first_m": int(order[:m].sum()), "first_2m": int(order[:2 * m].sum()),
            "flagged": int(found.is_label_issue.sum()), "flagged_planted": int((found.is_label_issue & planted).sum())}


def run(args, argv) -> int:
    sets = SMOKE if args.smoke else SETS
    chosen_sets = [s for s in args.sets.split(",")] if args.sets else list(sets)
    unknown = [s for s in chosen_sets if s not in sets]
    if unknown:
        raise UserError(f"--sets: unknown set {unknown[0]!r}; choose from {', '.join(sets)}")
    try:
        grid = tuple(float(c) for c in args.grid.split(",")) if args.grid else baseline.EMBEDDING_GRID
    except ValueError:
        raise UserError(f"--grid {args.grid!r}: give comma-separated numbers such as 0.001,0.01,0.1") from None
    if not grid or min(grid) <= 0:
        raise UserError(f"--grid {args.grid!r}: every C must be a positive number")
    work = Path(args.work or ROOT / "runs" / ("bench-choose-c-smoke" if args.smoke else "bench-choose-c"))
    rows, t0 = [], time.monotonic()
    for name in chosen_sets:
        given, true, emb = set_probs(work, name, sets[name], smoke=args.smoke)
        c, _, _ = baseline.choose_c(emb, given, grid=grid, num_classes=int(given.max()) + 1)
        k = int(given.max()) + 1
        for g in grid:
            probs = baseline.out_of_sample_probs(emb, given, num_classes=k, c=g)
            rows.append({"set": name, "classes": ",".join(sets[name][0]), "images": int(len(given)),
                         "planted": int((given != true).sum()), "C": g, "chosen": g == c, **score(given, true, probs)})
            print(json.dumps(rows[-1]), flush=True)
        # the ceiling of these features: the chosen C trained on the true labels, scored against the truth
        ceiling = baseline.out_of_sample_probs(emb, true, num_classes=k, c=c)
        rows[-1 - grid[::-1].index(c)]["truth_trained_agree_truth"] = round(float((ceiling.argmax(1) == true).mean()), 4)
    out = Path(args.out or RESULTS / f"choose_c-{'smoke' if args.smoke else date.today().strftime('%Y%m%d')}.json")
    record = {"rows": rows, "grid": list(grid), "seconds": round(time.monotonic() - t0, 1), "machine": common.machine(),
              "revision": common.revision(), "date": date.today().isoformat(), "command": " ".join(["python benchmarks/choose_c.py", *argv])}
    common.atomic_write(out, json.dumps(record, indent=1) + "\n")
    table = pd.DataFrame(rows)
    table["chosen"] = table["chosen"].map({True: "chosen", False: ""})
    common.atomic_write(out.with_suffix(".md"), "\n".join([
        "# The pretrained features' L2 strength per image set", "",
        f"`{record['command']}`; {record['machine']}; code {record['revision']}; {record['date']}; "
        f"{record['seconds']} s in all.", "",
        "agree_given: 4-fold out-of-sample agreement with the given labels (the only thing the choice sees); "
        "agree_truth: with the truth; first_m / first_2m: planted images among the first M / 2M of the queue "
        "(M = planted); flagged (flagged_planted): confident learning's flags; truth_trained_agree_truth (chosen row): the "
        "same model trained on the true labels, against the truth (what these features allow at best).", "",
        common.markdown_table(table), ""]))
    print(f"written: {common.shown_path(out)} and .md")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny generated images (a test, not a result)")
    p.add_argument("--sets", default=None, help=f"comma-separated set names (default: all of {', '.join(SETS)})")
    p.add_argument("--grid", default=None, help="comma-separated values of C (default: baseline.EMBEDDING_GRID)")
    p.add_argument("--work", default=None, help="folder for the photo sets (reused)")
    p.add_argument("--out", default=None, help="results .json (default benchmarks/results/choose_c-<date>.json)")
    argv = sys.argv[1:] if argv is None else list(argv)
    return common.cli("choose_c.py", p, run, argv, resumable=False)


if __name__ == "__main__":
    sys.exit(main())
