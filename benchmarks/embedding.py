"""Embedding size and precision for 32-px photos (issue 29): EfficientNet-Lite2 embeddings of N CIFAR-10
training images at each input size and precision; images per second, cache size on disk, and a plain
linear model's (scikit-learn LogisticRegression on standardised features) K-fold accuracy on the true labels.

    python benchmarks/embedding.py [--n 1000] [--sizes 96 128 160 224] [--precisions float32 bfloat16]
    python benchmarks/embedding.py --dataset builtin --n 40 --sizes 32 --folds 2 --batch 16 --out /tmp/x  # smoke

Writes benchmarks/results/embedding-<dataset>-<n>.json and .md. Embeddings go to a temporary cache (every
cell is computed, none reused). The machine is shared: the load average before and after is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noisycore import embeddings, hardware  # noqa: E402
from noisycore.config import DataConfig  # noqa: E402
from noisycore.datasets import load_dataset  # noqa: E402
from noisycore.util import stratified_folds  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def linear_cv_accuracy(x: np.ndarray, y: np.ndarray, *, folds: int = 4, seed: int = 0) -> float:
    """Mean held-out accuracy of StandardScaler + LogisticRegression over stratified folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fold = stratified_folds(y, folds, seed)
    correct = 0
    for f in range(folds):
        fit, held = fold != f, fold == f
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
        clf.fit(x[fit], y[fit])
        correct += int((clf.predict(x[held]) == y[held]).sum())
    return correct / len(y)


def cell(dataset, size: int, precision: str, n: int, folds: int, batch: int) -> tuple:
    marks = []       # (time, images done) after each batch: throughput excludes the model build and first batch
    with tempfile.TemporaryDirectory() as cache:
        start = time.time()
        emb = embeddings.embed(dataset, size=size, precision=precision, cache_dir=cache, batch=batch,
                               progress=lambda done, total: marks.append((time.time(), done, time.process_time())))
        seconds = time.time() - start
        path = embeddings.embedding_file(dataset, size=size, precision=precision, cache_dir=cache)
        mb = path.stat().st_size / 2**20
    (t0, d0, c0), (t1, d1, c1) = marks[0], marks[-1]
    if d1 == d0:
        raise SystemExit(f"{len(emb)} images in one batch of {batch}: give more images or a smaller --batch")
    x = emb[:n]
    row = {"size": size, "precision": precision, "images": len(emb), "seconds": round(seconds, 1),
           "images_per_s": round((d1 - d0) / (t1 - t0), 1),
           "cpu_ms_per_image": round(1000 * (c1 - c0) / (d1 - d0), 1), "first_batch_s": round(t0 - start, 1),
           "cache_mb": round(mb, 2), "cache_mb_per_10k": round(mb / len(emb) * 10_000, 1),
           "linear_cv_accuracy": round(linear_cv_accuracy(x, dataset.y_train[:n], folds=folds), 4)}
    return row, emb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cifar10", help="cifar10 (the measurement) or builtin (smoke test)")
    ap.add_argument("--n", type=int, default=1000, help="training images (stratified subset)")
    ap.add_argument("--batch", type=int, default=64, help="images per forward pass")
    ap.add_argument("--folds", type=int, default=4, help="folds of the linear model's cross-validation")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the .json and .md results")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(embeddings.SIZES))
    ap.add_argument("--precisions", nargs="+", default=list(embeddings.PRECISIONS))
    args = ap.parse_args(argv)
    before = hardware.describe()
    dataset = load_dataset(DataConfig(source=args.dataset, max_train=args.n, max_test=10))
    rows, f32 = [], {}
    for size in args.sizes:
        for precision in args.precisions:
            row, emb = cell(dataset, size, precision, args.n, args.folds, args.batch)
            if precision == "float32":
                f32[size] = emb
            elif size in f32:
                a, b = f32[size], emb
                na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
                both = (na > 0) & (nb > 0)     # a flat image can give all-zero features (Lite2 at 32 px): no angle
                cos = (a * b).sum(1)[both] / na[both] / nb[both]
                row["cosine_to_float32_mean"] = round(float(cos.mean()), 5)
                row["cosine_to_float32_min"] = round(float(cos.min()), 5)
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {"command": "python benchmarks/embedding.py " + " ".join(argv or sys.argv[1:]),
              "dataset": f"{args.dataset}, {args.n} stratified training images (+10 test images embedded too)",
              "machine_before": before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "note": "machine shared with other engineers' jobs during the measurement", "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"embedding-{args.dataset}-{args.n}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# Embedding size and precision, {args.dataset} ({args.n} training images, "
             f"{args.folds}-fold linear model)", "",
             f"CPU {before['cpu_model']}, {before['cpu_count']} cores, load average before "
             f"{before['load_average']}, after {record['load_average_after']} (shared machine).", "",
             "| size | precision | images/s | CPU ms per image | linear 4-fold accuracy | cache MB per 10k images "
             "| cosine to float32 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['precision']} | {r['images_per_s']} | {r['cpu_ms_per_image']} | "
                     f"{r['linear_cv_accuracy']:.3f} | "
                     f"{r['cache_mb_per_10k']} | {r.get('cosine_to_float32_mean', '')} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
