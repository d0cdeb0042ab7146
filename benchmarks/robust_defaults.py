"""Benchmark (issue 28): the default path on image sets it was not tuned on, against a ten-line peer.

For every set: class folders with 5% of the images planted in a wrong folder, zipped, trained with the
options `noisycore train --dataset SET.zip` chooses (none given), cross-validated over every image (4 folds,
the Review page's default) and ranked as the Review page ranks (confident learning on the predictions that
agree best with the given labels out of sample: `detect.best_source`). Recorded per set:

- out-of-sample accuracy on the given labels: the network's folds, the linear baseline's (logistic
  regression on the pixels, `noisycore.baseline`), the pretrained features' (logistic regression on
  EfficientNet-Lite2 embeddings), and which one the queue used (`detect.best_source`);
- planted images among the first k of the app's queue (k = the number planted), against the peer:
  cleanlab's `find_label_issues` on the baseline's 4-fold probabilities, ranked by self-confidence
  (cleanlab is AGPL: benchmarks and tests only);
- confident learning's N against the number planted; wall time of the whole path.

    python benchmarks/robust_defaults.py                       # every set (about an hour on 2 cores)
    python benchmarks/robust_defaults.py --sets digits8,cifar3-900
    python benchmarks/robust_defaults.py --smoke                # two generated sets, 2 folds (the tests' guard)

Sets come from the shared CIFAR-10 images (../shared/datasets/cifar10) in shapes users bring, and from
scikit-learn's bundled `load_digits` (1,797 real 8x8 grayscale scans of handwritten digits, shipped inside
the scikit-learn wheel: the only real labelled image set found inside a package here). Work folders are
kept in --work; a finished set is reused.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from noisycore.errors import UserError  # noqa: E402

from own_data import CIFAR_TAR, RESULTS  # noqa: E402  (the shared CIFAR-10 tarball, the results folder)
CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PLANTED = 0.05
# name -> source, classes, images per class (a tuple: imbalanced), grayscale, side in pixels (None: as is)
SETS = {
    "digits8": dict(source="digits"),
    "cifar3-900": dict(source="cifar", classes=CIFAR[3:6], per_class=300, gray=False, side=None),
    "cifar3-300-gray16": dict(source="cifar", classes=CIFAR[3:6], per_class=100, gray=True, side=16),
    "cifar4-600": dict(source="cifar", classes=("cat", "dog", "horse", "truck"), per_class=150, gray=False, side=None),
    "cifar10-2000-gray": dict(source="cifar", classes=CIFAR, per_class=200, gray=True, side=None),
    "cifar10-5000": dict(source="cifar", classes=CIFAR, per_class=500, gray=False, side=None),
    "cifar3-600-up96": dict(source="cifar", classes=CIFAR[:3], per_class=200, gray=False, side=96),
    "cifar5-imbalanced": dict(source="cifar", classes=CIFAR[5:], per_class=(500, 400, 300, 200, 100), gray=False,
                              side=None),
}
SMOKE_SETS = {   # the tests' guard: small, and the two shapes the tuned-on set is not (8-px grayscale scans, jittered shapes)
    "digits8-400": dict(source="digits", limit=400),
    "shapes16-colour": dict(source="shapes", classes=4, per_class=75, gray=False, side=16),
}


# ----------------------------------------------------------------------------- building the sets
def _counts(spec) -> list:
    per = spec["per_class"]
    return list(per) if isinstance(per, (tuple, list)) else [per] * len(spec["classes"])


def _cifar_images(spec) -> tuple:
    from PIL import Image

    if not CIFAR_TAR.is_file():
        raise UserError(f"{CIFAR_TAR} not found; use --smoke or put the shared CIFAR-10 images there")
    wanted = {f"train/{c}/{i:04d}.jpg": k for k, (c, n) in enumerate(zip(spec["classes"], _counts(spec)))
              for i in range(n)}
    images, labels = [], []
    with tarfile.open(CIFAR_TAR) as tf:
        for member in tf:
            k = wanted.get(member.name.lstrip("./"))
            if k is not None:
                images.append(Image.open(io.BytesIO(tf.extractfile(member).read())).convert("RGB"))
                labels.append(k)
    return images, np.array(labels), [str(c) for c in spec["classes"]]


def _digits_images() -> tuple:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * 255 / 16).astype(np.uint8)
    return [Image.fromarray(a, "L") for a in x], d.target.astype(np.int64), [str(i) for i in range(10)]


SHAPES = ("square", "frame", "plus", "bar")   # 5x5 stamps, mirror-symmetric


def _stamp(shape: str) -> np.ndarray:
    s = np.zeros((5, 5), bool)
    if shape == "square":
        s[1:4, 1:4] = True
    elif shape == "frame":
        s[[0, 4], :] = s[:, [0, 4]] = True
    elif shape == "plus":
        s[2, :] = s[:, 2] = True
    else:
        s[1:4, :] = True
    return s


def _shape_images(spec, seed: int) -> tuple:
    """Generated: a coloured 5x5 shape (class) at a random place on a noisy background: a linear model on the
    pixels cannot find a shape that moves, a convolutional network can."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    side, images, labels = spec["side"], [], []
    for c in range(spec["classes"]):
        for _ in range(spec["per_class"]):
            img = rng.integers(0, 60, (side, side, 3)).astype(np.uint8)
            r, q = rng.integers(0, side - 5, 2)
            img[r:r + 5, q:q + 5][_stamp(SHAPES[c])] = rng.integers(150, 256, 3).astype(np.uint8)
            images.append(Image.fromarray(img))
            labels.append(c)
    return images, np.array(labels), list(SHAPES[:spec["classes"]])


def build(work: Path, name: str, spec: dict, *, seed: int = 0) -> tuple:
    """(zip path, {id: true class name}) of the set: PNG files in class folders, 5% planted elsewhere."""
    from PIL import Image

    zip_path, truth_path = work / f"{name}.zip", work / f"{name}-planted.json"
    if zip_path.is_file() and truth_path.is_file():
        return zip_path, json.loads(truth_path.read_text())
    if spec["source"] == "digits":
        images, labels, names = _digits_images()
        if spec.get("limit"):
            images, labels = images[:spec["limit"]], labels[:spec["limit"]]
    elif spec["source"] == "cifar":
        images, labels, names = _cifar_images(spec)
    else:
        images, labels, names = _shape_images(spec, seed)
    rng = np.random.default_rng(seed)
    planted = set(rng.choice(len(labels), int(round(PLANTED * len(labels))), replace=False).tolist())
    truth, tmp = {}, zip_path.with_suffix(".partial")
    with zipfile.ZipFile(tmp, "w") as z:
        for i, (img, k) in enumerate(zip(images, labels)):
            if spec.get("gray") and spec["source"] == "cifar":
                img = img.convert("L")
            if spec.get("side") and spec["source"] == "cifar":
                img = img.resize((spec["side"], spec["side"]), Image.Resampling.BICUBIC)
            given = int(k)
            if i in planted:
                given = int(rng.choice([c for c in range(len(names)) if c != k]))
            folder = names[given]
            item = f"{folder}/{i:05d}.png"
            if i in planted:
                truth[item] = names[int(k)]
            buf = io.BytesIO()
            img.save(buf, "PNG")
            z.writestr(f"{name}/{item}", buf.getvalue())
    tmp.rename(zip_path)
    truth_path.write_text(json.dumps(truth))
    return zip_path, truth


# ----------------------------------------------------------------------------- the default path
def default_config(zip_path: Path):
    """What `noisycore train --dataset ZIP` trains with no other option."""
    from noisycore.cli import build_parser
    from noisycore.cliargs import train_config

    args = build_parser().parse_args(["train", "--dataset", str(zip_path)])
    return train_config(args)


def run_default_path(work: Path, name: str, zip_path: Path, *, folds: int) -> Path:
    """Train with the defaults, cross-validate every image, detect on the best out-of-sample source."""
    from noisycore import crossval, detect, train

    run = work / f"{name}-run"
    if not (run / "summary.json").is_file():
        shutil.rmtree(run, ignore_errors=True)
        train.run(default_config(zip_path), run)
    if not (run / detect.CV_PROBS).is_file():
        crossval.cross_validate(run, folds=folds)
    detect.detect_all(run, source=detect.best_source(run)[0], detectors=["confident_learning"])
    return run


def peer_first_k(labels, probs, k: int) -> np.ndarray:
    """The ten-line peer: cleanlab's find_label_issues on (labels, probs), ranked by self-confidence; its first k."""
    from cleanlab.filter import find_label_issues

    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)   # no fork under TensorFlow
    return np.asarray(ranked[:k])


def score(run: Path, truth: dict) -> dict:
    """Accuracies, the queue's and the peer's planted-in-first-k, N, and which predictions the queue used."""
    from noisycore import baseline, detect, runs, triage

    info = detect.read_run_labels(run)
    source, found = detect.best_source(run)
    queue = triage.ranked(detect.load_issues(run, "confident_learning"))
    k = len(truth)
    planted = np.isin(info.ids, list(truth))
    base_probs = baseline.cv_probs(run, info.ids)
    peer = peer_first_k(info.labels, base_probs, k)
    meta = detect.detection_meta(run)["confident_learning"]
    summary = runs.read_summary(run) or {}
    return {"images": int(len(info.ids)), "classes": len(info.class_names), "planted": k,
            "side": int(runs.read_config(run).data.image_size or 0) or None,
            "precision": summary.get("precision"), "model": runs.read_config(run).model,
            "network_cv_accuracy": found.get("cross_validation", {}).get("accuracy"),
            "baseline_cv_accuracy": found.get("baseline", {}).get("accuracy"),
            "embeddings_cv_accuracy": found.get("embeddings", {}).get("accuracy"),
            "chosen_cv_accuracy": found.get(source, {}).get("accuracy"),
            "network_held_out": summary.get("test_accuracy"),
            "baseline_held_out": (baseline.read(run) or {}).get("held_out_accuracy"),
            "queue_source": source,
            "queue_first_k": int(queue["id"].head(k).isin(list(truth)).sum()),
            "peer_first_k": int(planted[peer].sum()),
            "estimated_issues": int(meta["estimated_issues"]), "flagged": int(meta["flagged"])}


def table(path: Path) -> str:
    """The markdown table of a results file (the last row of each set), as benchmarks/README.md shows it."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["set"]] = row

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    out = ["| set | images | network | pixels (linear) | pretrained (linear) | queue built on | planted in first k: "
           "queue / peer | N / planted | wall min (load) |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows.values():
        out.append(f"| {r['set']} | {r['images']} | {pct(r['network_cv_accuracy'])} | {pct(r['baseline_cv_accuracy'])} | "
                   f"{pct(r.get('embeddings_cv_accuracy'))} | {r['queue_source']} | {r['queue_first_k']} / "
                   f"{r['peer_first_k']} of {r['planted']} | {r['estimated_issues']} / {r['planted']} | "
                   f"{r['wall_seconds'] / 60:.1f} ({r['load_before']}) |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default=None, help=f"comma-separated subset of: {', '.join(SETS)}")
    p.add_argument("--smoke", action="store_true", help="two small generated sets (8-px grayscale, 16-px colour), 2 folds: the test suite's guard")
    p.add_argument("--work", default=None, help="work folder (default runs/robust-defaults[-smoke])")
    p.add_argument("--out", default=None, help="results file (.jsonl; default benchmarks/results/robust_defaults.jsonl; "
                                               "--smoke writes none unless given)")
    p.add_argument("--table", action="store_true", help="print the markdown table of the results file and stop")
    args = p.parse_args(argv)
    if args.table:
        print(table(Path(args.out) if args.out else RESULTS / "robust_defaults.jsonl"))
        return 0
    sets = SMOKE_SETS if args.smoke else SETS
    names = list(sets) if not args.sets else [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [n for n in names if n not in sets]
    if unknown:
        print(f"robust_defaults: unknown set(s) {', '.join(unknown)}; choose from {', '.join(sets)}", file=sys.stderr)
        return 2
    work = Path(args.work or ROOT / "runs" / ("robust-defaults-smoke" if args.smoke else "robust-defaults"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else (None if args.smoke else RESULTS / "robust_defaults.jsonl")
    import common

    for name in names:
        load_before, t0 = os.getloadavg()[0], time.monotonic()
        try:
            zip_path, truth = build(work, name, sets[name])
            run = run_default_path(work, name, zip_path, folds=2 if args.smoke else 4)
        except UserError as e:
            print(f"robust_defaults: {name}: {e}", file=sys.stderr)
            return 2
        row = {"set": name, **score(run, truth), "wall_seconds": round(time.monotonic() - t0, 1),
               "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
               "machine": common.machine(), "date": time.strftime("%Y-%m-%d"), "smoke": bool(args.smoke),
               "revision": common.revision()}
        print(json.dumps(row), flush=True)
        if out is not None:
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
