"""Benchmark: the teaching comparison (issue 29, item 6): the same noisy labels learned from scratch and by a head
on pretrained features. Does a head on good features memorize the wrong labels?

Trains the Quick demo as the Train page starts it (preset ``quick``, built-in shapes, 40% symmetric noise, noise
seed 0, training seed ``--seed``), then its twin exactly as the Compare page's "Same labels, pretrained features"
button builds it (``noisycore.teaching.twin_config``: the pretrained preset on the run's labels.csv, images, seed,
validation share and max_train), and records per epoch the test accuracy and the share of the wrong labels each
run memorized, the lesson line the Compare page shows, and how long embedding the images took.

    python benchmarks/teaching_pretrained.py            # ~2 min from scratch + the embedding + seconds for the head

Runs are kept in runs/bench-teaching-pretrained/ and reused when finished. Writes
benchmarks/results/teaching_pretrained.json and .md (machine, date, code revision).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("test_accuracy", "memorized")


def train_once(run: Path, config, *, progress=None) -> None:
    """Train ``config`` into ``run`` unless a finished run is there."""
    from noisycore import runs

    if runs.read_status(run).get("state") == "finished":
        return
    import shutil

    from noisycore import train   # TensorFlow loads only when something is trained

    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    runs.atomic_write_text(run / "config.json", config.to_json())
    runs.write_status(run, {"state": "queued"})
    train.run(config, run, progress=progress, verbose=0)


def embedding_record(config, measured: dict) -> dict:
    """The embeddings file the twin read: its images, the seconds it took when it was computed (its meta) and
    whether that happened in this invocation (``measured``: wall seconds of the run's embedding phase)."""
    from noisycore import embeddings, runs
    from noisycore.datasets import load_dataset

    path = embeddings.embedding_file(load_dataset(runs.run_data_config(config)))
    meta = embeddings.cache_meta(path) if path.is_file() else {}
    return {"file": path.name, "images": (meta.get("n_train") or 0) + (meta.get("n_test") or 0),
            "size": meta.get("size"), "precision": meta.get("precision"), "seconds": meta.get("seconds"),
            "computed_now": bool(measured), "phase_seconds": measured.get("seconds")}


def curve(run: Path) -> list:
    from noisycore import runs

    m = runs.read_metrics(run)
    return [{"epoch": int(r["epoch"]), **{c: float(r[c]) for c in COLUMNS}} for _, r in m.iterrows()]


def markdown(record: dict) -> str:
    pct = lambda v: "" if v is None else f"{100 * v:.1f}"  # noqa: E731
    s, p = record["scratch"]["curve"], record["pretrained"]["curve"]
    lines = ["# The teaching comparison: from scratch against pretrained features", "",
             f"Built-in shapes, 40% symmetric noise (noise seed 0), training seed {record['seed']}; "
             f"{record['machine']}, {record['date']}, revision {record['revision']}.", "",
             f"From scratch: preset quick ({record['scratch']['run']}). Pretrained features: the Compare button's "
             f"twin ({record['pretrained']['run']}).", "",
             f"Lesson line (Compare): {record['lesson']}", "",
             f"Embedding: {record['embedding']['images']:,} images ({record['embedding']['size']} px, "
             f"{record['embedding']['precision']}) in {record['embedding']['seconds']} s"
             + (" (this invocation)" if record["embedding"]["computed_now"] else " (an earlier invocation, cached)"),
             "", "| epoch | test accuracy, scratch | memorized, scratch | test accuracy, pretrained | "
             "memorized, pretrained |", "|---:|---:|---:|---:|---:|"]
    for i in range(max(len(s), len(p))):
        a = s[i] if i < len(s) else {}
        b = p[i] if i < len(p) else {}
        lines.append(f"| {i + 1} | {pct(a.get('test_accuracy'))} | {pct(a.get('memorized'))} | "
                     f"{pct(b.get('test_accuracy'))} | {pct(b.get('memorized'))} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed of the from-scratch run (the twin's too)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-teaching-pretrained")
    args = parser.parse_args(argv)
    import common
    from quick_demo_seeds import demo_config

    from noisycore import runs, teaching

    scratch = args.work / f"scratch-s{args.seed}"
    train_once(scratch, demo_config(args.seed))
    twin = args.work / f"pretrained-s{args.seed}"
    config = teaching.twin_config(runs.read_config(scratch), scratch, num_images=teaching.label_count(scratch))
    phase = {}

    def progress(info):   # the embedding phase's wall time, when this invocation computes it
        if info.get("phase"):
            phase.setdefault("start", time.monotonic())
            if info.get("done") == info.get("total"):
                phase["seconds"] = round(time.monotonic() - phase["start"], 1)

    train_once(twin, config, progress=progress)
    a, b = runs.load_run(scratch), runs.load_run(twin)
    record = {"seed": args.seed, "machine": common.machine(), "date": time.strftime("%Y-%m-%d"),
              "revision": common.revision(),
              "scratch": {"run": common.shown_path(scratch), "preset": a.config.preset, "summary": a.summary,
                          "curve": curve(scratch)},
              "pretrained": {"run": common.shown_path(twin), "preset": b.config.preset, "summary": b.summary,
                             "curve": curve(twin)},
              "lesson": teaching.lesson_lines([scratch, twin])[0],
              "embedding": embedding_record(config, phase)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "teaching_pretrained.json").write_text(json.dumps(record, indent=1, default=float) + "\n",
                                                      encoding="utf-8")
    text = markdown(record)
    (RESULTS / "teaching_pretrained.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
