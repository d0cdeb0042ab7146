"""Probe: does more of the backbone pay for the own-photos queue? (issue 29, item 3's "optionally fine-tunes the
last blocks (measure whether it pays on 2 cores)").

On one planted set of ``choose_c.py`` (default "a", own_data.py's 900 photos with 30 planted) and the app's
4 folds, against the app's logistic regression on the pooled features (C chosen by ``baseline.choose_c``):
Everything on EfficientNet-Lite0 (``VARIANT``), the embeddings' backbone when this was measured; the app has used
Lite2 since (backbone_probe.py).
- **stages**: the same logistic regression on features pooled from four stages of the backbone (the outputs
  of blocks 10, 14, 15 and the head: 112 + 192 + 320 + 1,280), averaged with the mirrored photo's;
- **fine-tune from block B**: blocks B..15 and the head conv fine-tuned (ImageNet weights, BatchNorm frozen, a
  dropout + softmax layer on top, Adam, mirrored feature maps as augmentation) on feature maps cached at the
  input of block B, one model per fold, predictions averaged over the map and its mirror.
Scored like choose_c.py (agreement with the given labels and with the truth, planted among the queue's first M
and 2M, confident learning's flags), with the training seconds of the 4 folds.

    python benchmarks/finetune_probe.py                      # set a, fine-tune from blocks 15 and 11 (~9 min here)
    python benchmarks/finetune_probe.py --from-blocks 15 --epochs 4
    python benchmarks/finetune_probe.py --smoke              # tiny generated images (the test suite)
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

import choose_c  # noqa: E402
import common  # noqa: E402
from noisycore import baseline  # noqa: E402
from noisycore.errors import UserError  # noqa: E402
from noisycore.util import stratified_folds  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
STAGE_OUTPUTS = ("block10_add", "block14_add", "block15_project_bn", "head_relu")
START = {11: "block10_add", 15: "block14_add"}     # fine-tune from block B: the maps at its input
VARIANT = "lite0"      # measured on Lite0 (results/finetune_probe-20261208), before the embeddings moved to Lite2


def _photos(work: Path, name: str, smoke: bool) -> tuple:
    """(images in the review order, given labels, true labels) of a planted set of choose_c.py."""
    dataset, given, true = choose_c.planted_set(work, name, (choose_c.SMOKE if smoke else choose_c.SETS)[name],
                                                smoke=smoke)
    return np.concatenate([dataset.x_train, dataset.x_test]), given, true


def _maps(images: np.ndarray, size: int) -> dict:
    """{layer: (N, H, W, C)} of the backbone at ``size`` px for the photos and (key + "_flip") their mirrors."""
    import keras

    from noisycore.backbones.efficientnet import build_efficientnet_lite

    backbone = build_efficientnet_lite(size, variant=VARIANT, top=False)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True)(inputs)
    model = keras.Model(inputs, keras.Model(backbone.input, [backbone.get_layer(n).output for n in STAGE_OUTPUTS])(x))
    out = {}
    for suffix, pixels in (("", images), ("_flip", images[:, :, ::-1])):
        for name, m in zip(STAGE_OUTPUTS, model.predict(pixels.astype("float32"), batch_size=64, verbose=0)):
            out[name + suffix] = m
    return out


def _tail(start: int, input_shape, num_classes: int, size: int):
    """Blocks ``start``..15 and the head of an ImageNet EfficientNet-Lite0 (shared layers, BatchNorm frozen)
    on maps of ``input_shape``, then dropout and a softmax layer."""
    import keras

    from noisycore.backbones.efficientnet import blocks, build_efficientnet_lite

    backbone = build_efficientnet_lite(size, variant=VARIANT, top=False)
    names = {layer.name for layer in backbone.layers}

    def apply(prefix, x):
        for part in ("pad", "conv", "bn", "relu"):
            if f"{prefix}_{part}" in names:
                layer = backbone.get_layer(f"{prefix}_{part}")
                layer.trainable = part != "bn"
                x = layer(x)
        return x

    inputs = keras.Input(input_shape)
    x = inputs
    for i, _ in enumerate(blocks(VARIANT)):
        if i >= start:
            y = x
            for part in ("expand", "dw", "project"):
                y = apply(f"block{i}_{part}", y)
            x = backbone.get_layer(f"block{i}_add")([x, y]) if f"block{i}_add" in names else y
    x = keras.layers.GlobalAveragePooling2D()(apply("head", x))
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def fine_tune(maps: dict, given: np.ndarray, *, start: int, epochs: int, lr: float, size: int, seed: int = 0) -> np.ndarray:
    import keras

    m, mf = maps[START[start]], maps[START[start] + "_flip"]
    k = int(given.max()) + 1
    assign = stratified_folds(given, baseline.FOLDS, seed)
    probs = np.zeros((len(given), k))
    for f in range(baseline.FOLDS):
        held = assign == f
        keras.utils.set_random_seed(seed + f)
        model = _tail(start, m.shape[1:], k, size)
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
        model.fit(np.concatenate([m[~held], mf[~held]]), np.concatenate([given[~held], given[~held]]),
                  batch_size=32, epochs=epochs, verbose=0, shuffle=True)
        probs[held] = (model.predict(m[held], verbose=0) + model.predict(mf[held], verbose=0)) / 2
    return probs


def run(args, argv) -> int:
    sets = choose_c.SMOKE if args.smoke else choose_c.SETS
    args.set = args.set or next(iter(sets))     # "a" (own_data.py's set); smoke: "s"
    if args.set not in sets:
        raise UserError(f"--set {args.set!r} is unknown; choose from {', '.join(sets)}")
    try:
        starts = tuple(int(b) for b in args.from_blocks.split(",")) if args.from_blocks else ()
    except ValueError:
        raise UserError(f"--from-blocks {args.from_blocks!r}: give block numbers such as 15,11") from None
    if any(b not in START for b in starts):
        raise UserError(f"--from-blocks {args.from_blocks!r}: fine-tuning starts at block {' or '.join(map(str, START))}")
    size = 32 if args.smoke else 160
    work = Path(args.work or ROOT / "runs" / ("bench-choose-c-smoke" if args.smoke else "bench-choose-c"))
    images, given, true = _photos(work, args.set, args.smoke)
    t0 = time.monotonic()
    maps = _maps(images, size)
    rows = [{"variant": "features extracted (photos and mirrors)", "seconds": round(time.monotonic() - t0, 1)}]
    k = int(given.max()) + 1
    pooled = {n: maps[n].mean(axis=(1, 2)) for n in maps}
    for variant, feats in (("pooled head features (the app)", pooled["head_relu"]),
                           ("four stages, averaged with the mirror",
                            np.concatenate([(pooled[n] + pooled[n + "_flip"]) / 2 for n in STAGE_OUTPUTS], 1))):
        t = time.monotonic()
        c, _, probs = baseline.choose_c(feats, given, num_classes=k)
        probs = probs if probs is not None else baseline.out_of_sample_probs(feats, given, num_classes=k, c=c)
        rows.append({"variant": f"{variant}, logistic regression C {c:g}", "seconds": round(time.monotonic() - t, 1),
                     **choose_c.score(given, true, probs)})
        print(json.dumps(rows[-1]), flush=True)
    for start in starts:
        t = time.monotonic()
        probs = fine_tune(maps, given, start=start, epochs=args.epochs, lr=args.lr, size=size)
        rows.append({"variant": f"fine-tune blocks {start}-15 + head, {args.epochs} epochs, Adam {args.lr:g}",
                     "seconds": round(time.monotonic() - t, 1), **choose_c.score(given, true, probs)})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out or RESULTS / f"finetune_probe-{'smoke' if args.smoke else date.today().strftime('%Y%m%d')}.json")
    record = {"set": args.set, "classes": ",".join(sets[args.set][0]), "rows": rows, "machine": common.machine(),
              "revision": common.revision(), "date": date.today().isoformat(),
              "command": " ".join(["python benchmarks/finetune_probe.py", *argv])}
    common.atomic_write(out, json.dumps(record, indent=1) + "\n")
    common.atomic_write(out.with_suffix(".md"), "\n".join([
        "# More of the backbone for the own-photos queue", "",
        f"`{record['command']}`; set {args.set} ({record['classes']}); {record['machine']}; code {record['revision']}; "
        f"{record['date']}. seconds: training and predicting the 4 folds (the first row: the feature maps). "
        "Columns as in choose_c.py.", "",
        common.markdown_table(pd.DataFrame([{c: r.get(c, "") for c in rows[-1]} for r in rows])), ""]))
    print(f"written: {common.shown_path(out)} and .md")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny generated images, one epoch (a test, not a result)")
    p.add_argument("--set", default=None, help="a set of choose_c.py (default a; smoke: s)")
    p.add_argument("--from-blocks", default="15,11", help="fine-tune from these blocks (15, 11; empty: none)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--work", default=None, help="folder for the photo sets (reused, shared with choose_c.py)")
    p.add_argument("--out", default=None, help="results .json (default benchmarks/results/finetune_probe-<date>.json)")
    argv = sys.argv[1:] if argv is None else list(argv)
    return common.cli("finetune_probe.py", p, run, argv, resumable=False)


if __name__ == "__main__":
    sys.exit(main())
