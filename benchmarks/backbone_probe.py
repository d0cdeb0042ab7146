"""Benchmark: which pretrained backbone and input size give the own-photos queue its wrong labels first (issue 29).

On the planted sets of ``choose_c.py`` (CIFAR-10 photos in class folders, some moved into a wrong folder, built
exactly as ``own_data.py`` builds its set; set "a" is own_data's), for each backbone variant and input size: the
photos' pooled ImageNet features (the Keras port of ``noisycore.backbones.efficientnet``, the embeddings' resize),
then the app's review path on them: the features' logistic regression with C chosen by ``baseline.choose_c`` over
the app's 4 folds, confident learning and the queue order, scored like choose_c.py (planted among the first M and
2M, flags, agreement with the given labels and with the truth). ``embed_s``: seconds to embed the set's photos
(image/s beside it), measured in the same invocation for every variant.

    python benchmarks/backbone_probe.py                                  # lite0 and lite2, 160 / 224 px, sets a-d
    python benchmarks/backbone_probe.py --configs lite2:128,lite2:160 --sets a
    python benchmarks/backbone_probe.py --smoke                          # tiny generated images (the test suite)
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
from noisycore.backbones import efficientnet  # noqa: E402
from noisycore.errors import UserError  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = "lite0:160,lite2:160,lite0:224,lite2:224"


def parse_configs(text: str) -> list:
    """[(variant, size)] from 'lite0:160,lite2:224'; UserError naming the bad part."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        variant, _, size = part.partition(":")
        if variant not in efficientnet.VARIANTS or not size.isdigit() or not 32 <= int(size) <= 512:
            raise UserError(f"--configs: {part!r} is not VARIANT:SIZE with a variant of "
                            f"{', '.join(efficientnet.VARIANTS)} and a size of 32..512 px, e.g. lite2:160")
        out.append((variant, int(size)))
    if not out:
        raise UserError("--configs is empty: give e.g. lite0:160,lite2:160")
    return out


def features(images: np.ndarray, variant: str, size: int) -> np.ndarray:
    """Pooled features (N, 1280) of uint8 photos, resized as noisycore.embeddings does (bilinear, antialiased)."""
    import keras

    backbone = efficientnet.build_efficientnet_lite(size, variant=variant, top=False, dtype="float32")
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True)(inputs)
    return keras.Model(inputs, backbone(x)).predict(images.astype("float32"), batch_size=64, verbose=0)


def by_config(totals: list) -> dict:
    """The totals keyed "EfficientNet-Lite2 160 px" (what headline.py's dotted fields read)."""
    return {f"{t['backbone']} {t['size']} px": t for t in totals}


def run(args, argv) -> int:
    sets = choose_c.SMOKE if args.smoke else choose_c.SETS
    chosen_sets = args.sets.split(",") if args.sets else list(sets)
    unknown = [s for s in chosen_sets if s not in sets]
    if unknown:
        raise UserError(f"--sets: unknown set {unknown[0]!r}; choose from {', '.join(sets)}")
    configs = parse_configs(args.configs or ("lite0:32,lite2:32" if args.smoke else CONFIGS))
    work = Path(args.work or ROOT / "runs" / ("bench-choose-c-smoke" if args.smoke else "bench-choose-c"))
    rows, t0 = [], time.monotonic()
    for name in chosen_sets:
        dataset, given, true = choose_c.planted_set(work, name, sets[name], smoke=args.smoke)
        images = np.concatenate([dataset.x_train, dataset.x_test])
        k = int(given.max()) + 1
        for variant, size in configs:
            t = time.monotonic()
            feats = features(images, variant, size)
            seconds = time.monotonic() - t
            c, _, probs = baseline.choose_c(feats, given, num_classes=k)
            probs = probs if probs is not None else baseline.out_of_sample_probs(feats, given, num_classes=k, c=c)
            rows.append({"set": name, "classes": ",".join(sets[name][0]), "images": int(len(given)),
                         "planted": int((given != true).sum()), "backbone": efficientnet.display_name(variant),
                         "size": size, "embed_s": round(seconds, 1), "images_per_s": round(len(images) / seconds, 1),
                         "C": c, **choose_c.score(given, true, probs)})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    totals = (table.groupby(["backbone", "size"], sort=False)
              .agg(planted=("planted", "sum"), first_m=("first_m", "sum"), first_2m=("first_2m", "sum"),
                   flagged=("flagged", "sum"), flagged_planted=("flagged_planted", "sum"),
                   mean_agree_truth=("agree_truth", "mean"), embed_s=("embed_s", "sum")).reset_index())
    totals["mean_agree_truth"] = totals["mean_agree_truth"].round(4)
    totals["embed_s"] = totals["embed_s"].round(1)
    out = Path(args.out or RESULTS / f"backbone_probe-{'smoke' if args.smoke else date.today().strftime('%Y%m%d')}.json")
    record = {"rows": rows, "totals": totals.to_dict("records"), "by_config": by_config(totals.to_dict("records")),
              "seconds": round(time.monotonic() - t0, 1),
              "machine": common.machine(), "revision": common.revision(), "date": date.today().isoformat(),
              "command": " ".join(["python benchmarks/backbone_probe.py", *argv])}
    common.atomic_write(out, json.dumps(record, indent=1) + "\n")
    common.atomic_write(out.with_suffix(".md"), "\n".join([
        "# Which pretrained backbone for the own-photos queue", "",
        f"`{record['command']}`; {record['machine']}; code {record['revision']}; {record['date']}; "
        f"{record['seconds']} s in all, float32 throughout.", "",
        "Per backbone and input size, summed over the sets: planted images among the first M / 2M of the app's "
        "queue (M = planted), confident learning's flags (and the planted among them), the mean agreement of the "
        "4-fold logistic regression with the truth, and the seconds spent embedding.", "",
        common.markdown_table(totals), "", "Per set (columns as in choose_c.py; C chosen by baseline.choose_c):", "",
        common.markdown_table(table), ""]))
    print(f"written: {common.shown_path(out)} and .md")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny generated images (a test, not a result)")
    p.add_argument("--sets", default=None, help="comma-separated set names of choose_c.py (default: all)")
    p.add_argument("--configs", default=None, help=f"VARIANT:SIZE, comma-separated (default {CONFIGS})")
    p.add_argument("--work", default=None, help="folder for the photo sets (reused, shared with choose_c.py)")
    p.add_argument("--out", default=None, help="results .json (default benchmarks/results/backbone_probe-<date>.json)")
    argv = sys.argv[1:] if argv is None else list(argv)
    return common.cli("backbone_probe.py", p, run, argv, resumable=False)


if __name__ == "__main__":
    sys.exit(main())
