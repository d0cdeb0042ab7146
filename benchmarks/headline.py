"""The headline table of benchmarks/README.md, generated from the committed results files.

    python benchmarks/headline.py            # print the generated blocks (the headline, the robust-defaults table)
    python benchmarks/headline.py --write    # splice them into benchmarks/README.md between their marker comments
    python benchmarks/headline.py --check    # exit 1 when benchmarks/README.md differs from what the files give

Every row names what was measured, the number, the machine, the date and the results file, and is read
from that file: a row whose file is missing, whose record is not found or which lacks a field is refused
(exit 2, one line). A record marked ``superseded`` in its file (a non-empty field of that name: a timing
artifact, a blog timing reused from another invocation) is never quoted: the row is skipped and named on
stderr. README.md quotes only numbers of this table (tests/test_headline.py).

A results file is CSV (a record = a row), JSON Lines (a record = a line) or JSON (the file is one record);
``where`` picks the records (the last match wins, so a file that grows keeps its newest measurement) and a
field may be a dotted path into nested JSON (``found_in_first_k.30``). A new row is one ``Row(...)`` below.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "benchmarks" / "README.md"
COLUMNS = ("what", "number", "machine", "date", "results file")


class Refused(Exception):
    """A row cannot be generated: its file, record or field is missing."""


@dataclass(frozen=True)
class Row:
    what: str
    file: str                      # relative to the repository root
    fields: tuple                  # the record's fields (dotted paths) passed to ``number`` in this order
    number: Callable               # the fields' values -> the text in the table
    where: dict = field(default_factory=dict)   # {field: value} the record must match (as text)


def pct(x) -> str:
    return f"{100 * float(x):.1f}%"


def minutes(s) -> str:
    return f"{float(s) / 60:.1f} min"


TTA = "benchmarks/results/time_to_accuracy-cifar10-full"
TODAY = "fast preset of 2026-12-07 (after the whitening-sample and averaged-BatchNorm fixes)"    # the legend under the table says more
COST = "benchmarks/results/evaluation_cost-20261207"
WAIT = ("a user's wait to the blog recipe's best (start-up, per-epoch evaluation and fit); share of the blog's time, "
        "float32 / bfloat16 blog (the second: both sides in the same precision)")
EVAL_SHARE = "per-epoch evaluation, seconds (share of the epoch's fit time), median over epochs"
TO_BLOG = "time to the blog recipe's best: fit (wall) minutes; share of the blog's time"
OWN = "Own photos (own_data.py: 900 photos, 30 planted)"
ROBUST = "Robust defaults (robust_defaults.py)"
QUICK = "Quick demo (quick_demo_seeds.py: built-in shapes, 40% symmetric noise, 3 training seeds)"


def _to_blog(fit, wall, ratio, blog):
    return f"{float(fit) / 60:.1f} min ({float(wall) / 60:.1f} wall); {float(ratio):.3f} of {minutes(blog)}"


ROWS = (
    Row("Blog recipe's reference, clean labels: best test accuracy (epoch)", "benchmarks/reference/blog_reference.json", ("runs.clean.best_test_accuracy",
        "runs.clean.best_epoch"), lambda a, e: f"{100 * a:.2f}% (epoch {e})"),
    Row("Blog recipe's reference, 40% symmetric noise: best test accuracy (epoch)",
        "benchmarks/reference/blog_reference.json", ("runs.sym40.best_test_accuracy", "runs.sym40.best_epoch"),
        lambda a, e: f"{100 * a:.2f}% (epoch {e})"),
    Row("Blog recipe's reference, CIFAR-10N worst labels: best test accuracy (epoch)",
        "benchmarks/reference/blog_reference.json", ("runs.worst.best_test_accuracy", "runs.worst.best_epoch"),
        lambda a, e: f"{100 * a:.2f}% (epoch {e})"),
    *(row for setting, label in (("clean", "clean labels"), ("sym40", "40% symmetric noise"),
                                 ("worst", "CIFAR-10N worst labels")) for seed in ("0", "1") for row in (
        Row(f"Full CIFAR-10, {TODAY}, {label}, seed {seed}: test accuracy; {TO_BLOG}", f"{TTA}-20261207b.csv",
            ("final_test_accuracy", "fast_seconds", "fast_seconds_with_evaluation", "ratio", "blog_seconds"),
            lambda a, *t: f"{pct(a)}; {_to_blog(*t)}", {"setting": setting, "seed": seed}),
        Row(f"Full CIFAR-10, {TODAY}, {label}, seed {seed}: {WAIT}", f"{COST}.jsonl",
            ("wait_seconds", "wait_ratio_float32", "wait_ratio_bfloat16"),
            lambda w, f, b: f"{minutes(w)}; {f:.3f} / {b:.3f}", {"label": "after", "setting": setting, "seed": seed}))),
    Row(f"Full CIFAR-10, {TODAY}, 40% symmetric noise, seed 0: {EVAL_SHARE}, the app's default (AUM margins off "
        "over 10,000 images, test curve on 5,000)", f"{COST}.jsonl",
        ("evaluation_seconds_per_epoch", "evaluation_share", "fit_seconds_per_epoch"),
        lambda e, r, f: f"{e:.1f} s ({r:.1%} of {f:.1f} s)", {"label": "default", "setting": "sym40", "seed": "0"}),
    Row(f"Full CIFAR-10, {TODAY}, 40% symmetric noise, seed 0: {EVAL_SHARE}, in time_to_accuracy.py (every test image "
        "each epoch)", f"{COST}.jsonl", ("evaluation_seconds_per_epoch", "evaluation_share", "fit_seconds_per_epoch"),
        lambda e, r, f: f"{e:.1f} s ({r:.1%} of {f:.1f} s)", {"label": "after", "setting": "sym40", "seed": "0"}),
    Row(f"Full CIFAR-10, fast preset before issue 32's last evaluation change (AUM margins on every fit image), 40% "
        f"symmetric noise, seed 0: {EVAL_SHARE}", f"{COST}.jsonl",
        ("evaluation_seconds_per_epoch", "evaluation_share", "fit_seconds_per_epoch"),
        lambda e, r, f: f"{e:.1f} s ({r:.1%} of {f:.1f} s)", {"label": "before", "setting": "sym40", "seed": "0"}),
    *(Row(f"Full CIFAR-10, pretrained preset (an MLP head on EfficientNet-Lite2 features at 160 px), {label}, seed 0: "
          "test accuracy; run minutes (the first includes embedding the 60,000 images); confident learning's precision / "
          "recall (in-sample), the fast preset's beside", "benchmarks/results/pretrained_cifar-lite2.jsonl",
          ("test_accuracy", "run_seconds", "cl_precision", "cl_recall", "fast_test_accuracy", "fast_cl_precision",
           "fast_cl_recall"),
          lambda a, t, p, r, fa, fp, fr: f"{pct(a)}; {minutes(t)}; {p:.2f} / {r:.2f} (fast: {pct(fa)}; {fp:.2f} / {fr:.2f})",
          {"setting": setting}) for setting, label in (("sym40", "40% symmetric noise"), ("worst", "CIFAR-10N worst labels"))),
    Row("Own-photos queue on four planted sets (backbone_probe.py: 3,900 CIFAR-10 photos, 130 planted): planted among "
        "the first M of each set, summed; pretrained features of EfficientNet-Lite2 (the app's) vs Lite0, 160 px",
        "benchmarks/results/backbone_probe-20261208.json",
        ("by_config.EfficientNet-Lite2 160 px.first_m", "by_config.EfficientNet-Lite0 160 px.first_m",
         "by_config.EfficientNet-Lite2 160 px.planted"), lambda a, b, k: f"{a} vs {b} of {k}"),
    Row(f"{OWN}: planted among the queue's first 30", "benchmarks/results/own_data-cpu.json",
        ("found_in_first_k.30", "planted"), lambda n, k: f"{n} of {k}"),
    Row(f"{OWN}: flagged by confident learning",
        "benchmarks/results/own_data-cpu.json", ("flagged", "flag_recall", "planted"),
        lambda f, r, k: f"{f} flagged, {round(r * k)} of {k} planted"),
    Row(f"{OWN}: the queue's source: agreement with the given labels",
        "benchmarks/results/own_data-cpu.json", ("source", "source_accuracy_given"),
        lambda s, acc: f"{s}: {pct(acc[s])}"),
    Row(f"{OWN}: training time, run and 4 folds", "benchmarks/results/own_data-cpu.json",
        ("training_minutes",), lambda m: f"{float(m):.1f} min"),
    Row(f"{OWN}: the whole path (import, pretrained features, run, 4 folds, queue), wall time; preset (load before, after)",
        "benchmarks/results/own_data-cpu.json", ("wall_seconds", "preset", "load_before", "load_after"),
        lambda w, p, a, b: f"{float(w):.1f} s; {p} (load {float(a):.1f} -> {float(b):.1f})"),
    Row(f"{ROBUST}, 8-px digit scans: planted in the queue's first k vs "
        "the peer's", "benchmarks/results/robust_defaults.jsonl",
        ("queue_first_k", "peer_first_k", "planted"), lambda q, p, k: f"{q} vs {p} of {k}", {"set": "digits8"}),
    Row(f"{ROBUST}, 600 CIFAR-10 photos: planted in the queue's first k vs the peer's",
        "benchmarks/results/robust_defaults.jsonl", ("queue_first_k", "peer_first_k", "planted"),
        lambda q, p, k: f"{q} vs {p} of {k}", {"set": "cifar4-600"}),
    Row(f"{QUICK}: test accuracy at each seed's peak, mean (min-max); mean peak epoch",
        "benchmarks/results/quick_demo_seeds.json", ("mean_peak_test", "min_peak_test", "max_peak_test",
                                                     "mean_peak_epoch", "last_epoch"),
        lambda m, lo, hi, e, n: f"{pct(m)} ({pct(lo)}-{pct(hi)}); epoch {float(e):.0f} of {n}"),
    Row(f"{QUICK}: test accuracy at the last epoch, mean (min-max)", "benchmarks/results/quick_demo_seeds.json",
        ("mean_last_test", "min_last_test", "max_last_test"), lambda m, lo, hi: f"{pct(m)} ({pct(lo)}-{pct(hi)})"),
    Row(f"{QUICK}: wrong labels the network reproduces, mean over seeds: at the mean curve's peak, at the end",
        "benchmarks/results/quick_demo_seeds.json", ("memorized_at_mean_peak", "memorized_at_end"),
        lambda a, b: f"{pct(a)} -> {pct(b)}"),
    Row("Quick demo (quick_demo_time.py): Start training to finished, median of the repeats (load before, after)",
        "benchmarks/results/quick_demo_time.jsonl", ("median_seconds.finished", "repeats", "load_before", "load_after"),
        lambda t, n, a, b: f"{float(t):.1f} s, median of {n} (load {float(a):.1f} -> {float(b):.1f})", {"summary": True}),
)


# ------------------------------------------------------------------------------ reading results files
def records(path: Path) -> list:
    """The records of a results file: CSV rows, JSON lines, or the one JSON object."""
    if not path.is_file():
        raise Refused(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: no such results file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [json.loads(text)]


def lookup(record: dict, dotted: str, *, where: str):
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value or value[part] in (None, ""):
            raise Refused(f"{where}: no field {dotted!r}")
        value = value[part]
    return value


def row_cells(row: Row, root: Path = ROOT):
    """(what, number, machine, date, file) of one row, or None when its record is superseded."""
    found = [r for r in records(root / row.file) if all(str(r.get(k)) == str(v) for k, v in row.where.items())]
    where = row.file + "".join(f" {k}={v}" for k, v in row.where.items())
    if not found:
        raise Refused(f"{where}: no such record")
    record = found[-1]
    if record.get("superseded"):
        return None
    values = [lookup(record, f, where=where) for f in row.fields]
    values = [_number(v) for v in values]
    machine, date = (lookup(record, f, where=where) for f in ("machine", "date"))
    return (row.what, row.number(*values), short_machine(machine), str(date), f"`{row.file}`")


def _number(value):
    """CSV cells are text: numbers become numbers, everything else stays as it is."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def short_machine(text: str) -> str:
    """``2 CPUs (Intel(R) Xeon(R) Processor), Linux ..., Python ...`` -> ``Intel(R) Xeon(R) Processor, 2 CPUs``."""
    head, sep, rest = text.partition(" CPUs (")
    if sep and head.strip().isdigit() and "), " in rest:
        return f"{rest.split('), ', 1)[0]}, {head.strip()} CPUs"
    return text


def headline(rows=None, root: Path = ROOT, skipped=None) -> str:
    """The headline table (markdown) of ``rows`` (default ROWS); superseded rows go to ``skipped``."""
    rows = ROWS if rows is None else rows
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---:|---|---|---|"]
    for row in rows:
        cells = row_cells(row, root)
        if cells is None:
            if skipped is not None:
                skipped.append(row.what)
            continue
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the generated blocks
def blocks(root: Path = ROOT, skipped=None) -> dict:
    """Every generated block of benchmarks/README.md, by marker name."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import robust_defaults

    return {"headline": headline(root=root, skipped=skipped),
            "robust_defaults": robust_defaults.table(root / "benchmarks" / "results" / "robust_defaults.jsonl")}


def markers(name: str) -> tuple:
    return f"<!-- generated:{name} (python benchmarks/headline.py --write; do not edit by hand) -->", \
        f"<!-- /generated:{name} -->"


def extract(text: str, name: str) -> str:
    """The block between ``name``'s markers in ``text``."""
    begin, end = markers(name)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise Refused(f"benchmarks/README.md: the markers of {name!r} are missing or not one pair: {begin}")
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def splice(text: str, generated: dict) -> str:
    for name, block in generated.items():
        extract(text, name)
        begin, end = markers(name)
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="splice the blocks into benchmarks/README.md")
    p.add_argument("--check", action="store_true", help="exit 1 when benchmarks/README.md's blocks differ")
    args = p.parse_args(argv)
    skipped = []
    try:
        generated = blocks(skipped=skipped)
        text = README.read_text(encoding="utf-8")
        if args.write:
            README.write_text(splice(text, generated), encoding="utf-8")
        elif args.check:
            stale = [name for name, block in generated.items() if extract(text, name) != block]
            if stale:
                print(f"benchmarks/README.md: {', '.join(stale)} differ from the results files; run "
                      "python benchmarks/headline.py --write", file=sys.stderr)
                return 1
        else:
            print("\n\n".join(generated.values()))
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for what in skipped:
        print(f"skipped (superseded in its results file): {what}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
