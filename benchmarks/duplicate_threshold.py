"""Benchmark: where the near-duplicate threshold (``quality.DUPLICATE_SIMILARITY``) sits for the embeddings' backbone.

Embeds N CIFAR-10 training photos as the app does (``noisycore.embeddings.embed``: the current backbone, 160 px,
cached), then reports the nearest-neighbour cosine similarity's quantiles and the closest pairs, and draws those
pairs side by side (a PNG beside the results file, git-ignored: the dataset's photos are not committed) so a
person can say which are the same photo and which are
look-alikes: the threshold goes between the two. How many images each threshold would flag is in the table.

    python benchmarks/duplicate_threshold.py                 # 3,000 CIFAR-10 photos, the 24 closest pairs
    python benchmarks/duplicate_threshold.py --n 1000 --pairs 12
    python benchmarks/duplicate_threshold.py --smoke         # the built-in shapes (the test suite)
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
from noisycore import embeddings, quality  # noqa: E402
from noisycore.config import DataConfig  # noqa: E402
from noisycore.datasets import load_dataset  # noqa: E402
from noisycore.errors import UserError  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
THRESHOLDS = (0.84, 0.86, 0.88, 0.90, 0.92, 0.94)


def closest_pairs(emb: np.ndarray, count: int) -> pd.DataFrame:
    """The ``count`` most similar distinct pairs (i < j) by cosine similarity, most similar first."""
    idx, sim = quality.nearest_neighbours(emb, 1)
    pairs = {}
    for i, (j, s) in enumerate(zip(idx[:, 0], sim[:, 0])):
        pairs[(min(i, int(j)), max(i, int(j)))] = float(s)
    top = sorted(pairs.items(), key=lambda kv: -kv[1])[:count]
    return pd.DataFrame([{"i": a, "j": b, "similarity": round(s, 4)} for (a, b), s in top])


def montage(images: np.ndarray, pairs: pd.DataFrame, path: Path, scale: int = 3) -> None:
    """Pairs side by side, one row each, similarity written beside (Pillow)."""
    from PIL import Image, ImageDraw

    h, w = images.shape[1] * scale, images.shape[2] * scale
    sheet = Image.new("RGB", (2 * w + 90, max(1, len(pairs)) * (h + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(pairs.itertuples()):
        for c, k in enumerate((row.i, row.j)):
            sheet.paste(Image.fromarray(images[k]).resize((w, h), Image.Resampling.NEAREST), (c * w, r * (h + 4)))
        draw.text((2 * w + 6, r * (h + 4) + h // 2 - 6), f"{row.similarity:.3f}", fill="black")
    sheet.save(path)


def run(args, argv) -> int:
    if args.n < 10:
        raise UserError(f"--n {args.n}: give at least 10 photos")
    source = "builtin" if args.smoke else "cifar10"
    dataset = load_dataset(DataConfig(source=source, max_train=args.n, max_test=10))
    t0 = time.monotonic()
    emb = embeddings.embed(dataset, size=32 if args.smoke else embeddings.DEFAULT_SIZE)[:len(dataset.x_train)]
    seconds = time.monotonic() - t0
    _idx, sim = quality.nearest_neighbours(emb, 1)
    nn = sim[:, 0]
    pairs = closest_pairs(emb, args.pairs)
    out = Path(args.out or RESULTS / f"duplicate_threshold-{'smoke' if args.smoke else date.today().strftime('%Y%m%d')}.json")
    montage(np.asarray(dataset.x_train), pairs, out.with_suffix(".png"))
    record = {"dataset": source, "n": int(len(emb)), "backbone": embeddings.BACKBONE, "size": embeddings.DEFAULT_SIZE,
              "embed_seconds": round(seconds, 1),
              "nn_similarity_quantiles": {q: round(float(np.quantile(nn, float(q))), 4)
                                          for q in ("0.5", "0.9", "0.99", "0.999", "1.0")},
              "flagged_at": {str(t): int((nn >= t).sum()) for t in THRESHOLDS},
              "current_threshold": quality.DUPLICATE_SIMILARITY,
              "pairs": [{**p, "id_i": str(dataset.ids_train[p["i"]]), "id_j": str(dataset.ids_train[p["j"]]),
                         "labels": [int(dataset.y_train[p["i"]]), int(dataset.y_train[p["j"]])]}
                        for p in pairs.to_dict("records")],
              "machine": common.machine(), "revision": common.revision(), "date": date.today().isoformat(),
              "command": " ".join(["python benchmarks/duplicate_threshold.py", *argv])}
    common.atomic_write(out, json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("n", "backbone", "nn_similarity_quantiles", "flagged_at")}))
    print(f"written: {common.shown_path(out)} and .png")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="the built-in shapes (a test, not a result)")
    p.add_argument("--n", type=int, default=3000, help="training photos to embed (default 3000)")
    p.add_argument("--pairs", type=int, default=24, help="closest pairs to list and draw (default 24)")
    p.add_argument("--out", default=None, help="results .json (default benchmarks/results/duplicate_threshold-<date>.json)")
    argv = sys.argv[1:] if argv is None else list(argv)
    return common.cli("duplicate_threshold.py", p, run, argv, resumable=False)


if __name__ == "__main__":
    sys.exit(main())
