"""Benchmark: finding planted mislabels in a user's own image folder (truth unknown to the app).

A new user's scenario, through the app's real path: CIFAR-10 photos of a few classes are put in
class folders, some are moved into a wrong folder ("planted"), the folder is zipped, imported like
an upload (DataConfig(source=<zip>)), a model is trained on the folder labels (noise "none"), and
K-fold cross-validation over every image (training + held-out) feeds confident learning. Recorded:
N = confident learning's estimate of the number of wrong labels (detectors.estimate_noise), the share
of planted mislabels among the first N ranked images (recall@N), and precision / recall of the
detector's flags. Only the benchmark knows which images were planted.

    python benchmarks/own_data.py                    # 900 images, 3 classes, 30 planted, 4 folds (pretrained)
    python benchmarks/own_data.py --preset small     # the same trained from scratch (the small preset)
    python benchmarks/own_data.py --smoke            # tiny generated images, seconds (the test suite)
    python benchmarks/own_data.py --recipe model=fast_cnn,tta=flip --work runs/own-fast   # another recipe

``--preset``: ``pretrained`` (the default for own photos: a head on the cached EfficientNet-Lite2 embeddings;
the wall time includes embedding the images unless they are cached: delete the cache to time it) or
``small`` (from scratch, the from-scratch recipe below 10,000 images).
``--recipe`` changes fields of that recipe for
the run and every fold (crossval.cross_validate's ``recipe``): a way to measure a candidate before it
becomes the preset.

Resumable: the folder, the run and every finished fold are kept in --work and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from noisycore import crossval, detect, detectors, triage  # noqa: E402
from noisycore.cliargs import parse_pairs  # noqa: E402
from noisycore.config import DataConfig, NoiseConfig, TrainConfig  # noqa: E402
from noisycore.errors import UserError  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
import common  # noqa: E402

CIFAR_TAR = Path(os.environ.get("NOISYLAB_CIFAR_IMAGES",
                                ROOT.parent / "shared" / "datasets" / "cifar10" / "cifar10-images.tar.xz"))
RESULTS = ROOT / "benchmarks" / "results"


def _cifar_photos(root: Path, classes, per_class: int) -> None:
    """The first ``per_class`` training photos of each class from the shared CIFAR-10 image tarball."""
    if not CIFAR_TAR.is_file():
        raise UserError(f"{CIFAR_TAR} not found; use --smoke or put the shared CIFAR-10 images there")
    wanted = {f"train/{c}/{i:04d}.jpg": c for c in classes for i in range(per_class)}
    with tarfile.open(CIFAR_TAR) as tf:
        for member in tf:
            cls = wanted.get(member.name.lstrip("./"))
            if cls is not None:
                (root / cls).mkdir(parents=True, exist_ok=True)
                (root / cls / Path(member.name).name).write_bytes(tf.extractfile(member).read())


def _generated_photos(root: Path, classes, per_class: int, seed: int = 0) -> None:
    """Tiny generated images (16 px): class c has its quadrant c bright (for the smoke test)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        r, col = divmod(c % 4, 2)
        for i in range(per_class):
            img = rng.integers(0, 70, (16, 16, 3)).astype(np.uint8)
            img[r * 8:(r + 1) * 8, col * 8:(col + 1) * 8] += np.uint8(150)
            Image.fromarray(img).save(root / name / f"{i:04d}.png")


def plant(root: Path, classes, planted: int, seed: int) -> dict:
    """Move ``planted`` images (spread over the classes) into another class folder; id -> true class."""
    rng = np.random.default_rng(seed)
    out = {}
    for j in range(planted):
        src_cls = classes[j % len(classes)]
        files = sorted(p for p in (root / src_cls).iterdir() if not p.name.startswith("moved-"))
        src = files[int(rng.integers(len(files)))]
        dst_cls = classes[(j % len(classes) + 1 + int(rng.integers(len(classes) - 1))) % len(classes)]
        dst = root / dst_cls / f"moved-{src.name}"
        src.rename(dst)
        out[f"{dst_cls}/{dst.name}"] = src_cls
    return out


def build(work: Path, *, classes, per_class: int, planted: int, smoke: bool, seed: int) -> tuple:
    """WORK/<name>.zip (the "upload") and WORK/planted.json; reused when present."""
    name = "own-photos"
    zip_path, key = work / f"{name}.zip", work / "planted.json"
    if zip_path.is_file() and key.is_file():
        return zip_path, json.loads(key.read_text())
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    (_generated_photos if smoke else _cifar_photos)(folder, classes, per_class)
    truth = plant(folder, list(classes), planted, seed)
    shutil.make_archive(str(work / name), "zip", folder)
    key.write_text(json.dumps(truth, indent=1))
    return zip_path, truth


def train_config(zip_path: Path, *, smoke: bool, epochs: int, num_images: int, changes: dict,
                 scratch: bool = False) -> TrainConfig:
    """The recipe the app recommends for own photos of this many (``scratch``: the from-scratch one), with
    --recipe's ``changes``, on the folder labels as given (no noise)."""
    recipe = crossval.recommended_recipe(num_images, scratch=scratch, **changes)
    recipe["epochs"] = epochs
    if smoke and scratch:
        recipe.update(batch_size=32, batchnorm=False)
    return TrainConfig(**recipe, data=DataConfig(source=str(zip_path), image_size=16 if smoke else None),
                       noise=NoiseConfig(model="none", rate=0.0), val_fraction=0.1)


def trained_run(work: Path, config: TrainConfig) -> Path:
    from noisycore import train

    from noisycore import runs

    run = work / "run"
    summary = run / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("state") == "finished":
        if runs.as_requested(runs.read_config(run), config) == config:
            return run
        print(f"{run} was trained with another recipe (e.g. before --preset or the default changed): training again",
              file=sys.stderr)
    shutil.rmtree(run, ignore_errors=True)
    train.run(config, run)
    return run


def score(run: Path, truth: dict, *, source: str = "best") -> dict:
    """N (estimated wrong labels), recall of planted ones in the first N, precision / recall of the flags.
    ``source``: the predictions the queue is built on; "best" = what the Review page preselects
    (detect.best_source: the network's folds, the linear baseline or the pretrained features)."""
    found = detect.best_source(run)[1]
    source = detect.best_source(run)[0] if source == "best" else source
    frame = detect.detect(run, detector="confident_learning", source=source)
    info = detect.read_run_labels(run)
    probs = detect.pred_probs(run, source=source, ids=info.ids)
    n_est = detectors.estimate_noise(info.labels, probs).num_issues
    planted = frame["id"].isin(list(truth)).to_numpy()
    flagged = frame["is_label_issue"].to_numpy()

    def in_queue(k: int) -> int:   # planted images among the Review page's "N most suspicious", N = k
        return int(triage.select_queue(frame, top_n=int(k))["id"].isin(list(truth)).sum())

    hits_n = in_queue(n_est)
    # the cross-validated models' accuracy against the truth (folder class; the planted images' origin)
    truth_names = [truth.get(i, str(i).split("/")[0]) for i in info.ids]
    true_idx = np.array([info.class_names.index(c) for c in truth_names])
    tp = int((planted & flagged).sum())
    return {"images": int(len(frame)), "planted": int(len(truth)), "estimated_issues": int(n_est),
            "found_in_first_n": hits_n, "recall_at_n": hits_n / max(len(truth), 1),
            "precision_at_n": hits_n / max(n_est, 1), "flagged": int(flagged.sum()),
            "flag_precision": tp / max(int(flagged.sum()), 1), "flag_recall": tp / max(len(truth), 1),
            "cv_accuracy_truth": float((probs.argmax(1) == true_idx).mean()), "source": source,
            "source_accuracy_given": {s: round(a["accuracy"], 4) for s, a in found.items()},
            # a reviewer's budget: planted images among the first k of the queue, k = 1x and 2x the planted
            "found_in_first_k": {int(k): in_queue(k) for k in (len(truth), 2 * len(truth))}}


def report(result: dict, args, seconds: float) -> str:
    r = result
    return "\n".join([
        f"# Own-data detection ({'smoke' if args.smoke else 'cpu'})", "",
        f"{r['images']} images of {len(args.classes)} classes ({', '.join(args.classes)}), {r['planted']} moved into a "
        f"wrong class folder; zip import, preset {args.preset} ({args.epochs} epochs"
        f"{'; ' + args.recipe_text if args.recipe_text else ''}), {args.folds}-fold "
        f"cross-validation over every image, confident learning. {seconds / 60:.1f} min of training (the run and its folds) on this machine.", "",
        "| N (estimated wrong labels) | planted in first N | recall@N | precision@N | flagged | "
        "flag precision | flag recall | " + " | ".join(f"in first {k}" for k in r["found_in_first_k"])
        + " | CV accuracy (truth) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['estimated_issues']} | {r['found_in_first_n']} of {r['planted']} | {r['recall_at_n']:.0%} | "
        f"{r['precision_at_n']:.0%} | {r['flagged']} | {r['flag_precision']:.0%} | {r['flag_recall']:.0%} | "
        + " | ".join(str(v) for v in r["found_in_first_k"].values()) + f" | {r['cv_accuracy_truth']:.1%} |", "",
        f"Queue built on: {r['source']} (out-of-sample agreement with the given labels: "
        + ", ".join(f"{s} {a:.1%}" for s, a in r["source_accuracy_given"].items()) + ").", "",
        f"Wall time of this invocation: {r.get('wall_seconds', 0) / 60:.1f} min (load average {r.get('load_before')} "
        f"before, {r.get('load_after')} after); machine: {common.machine()}.", ""])


def recipe_changes(pairs: dict) -> dict:
    """--recipe pairs as preset fields: ``loss_params.q=0.5`` -> {"loss_params": {"q": 0.5}}; a new loss
    without its own loss_params starts from the loss's defaults (the preset's GCE q would not fit it)."""
    known = crossval.recipe_fields()
    out: dict = {}
    for key, value in pairs.items():
        name, _, sub = key.partition(".")
        if name not in known:
            raise UserError(f"--recipe: {name!r} is not a training setting; use one of: {', '.join(sorted(known))}")
        if sub:
            out.setdefault(name, {})[sub] = value
        else:
            out[name] = value
    if "loss" in out:
        out.setdefault("loss_params", {})
    if "method" in out:
        out.setdefault("method_params", {})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny generated images, 2 epochs (a test, not a result)")
    p.add_argument("--work", default=None, help="folder for the images, the run and its folds (resumable)")
    p.add_argument("--classes", default=None, help="comma-separated CIFAR-10 classes (default cat,ship,frog)")
    p.add_argument("--per-class", type=int, default=None, help="images per class before planting (default 300)")
    p.add_argument("--planted", type=int, default=None, help="images moved to a wrong folder (default 30)")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--preset", default="pretrained", choices=("pretrained", "small"),
                   help="pretrained: the default for own photos (a head on cached pretrained embeddings); "
                        "small: trained from scratch (default pretrained)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the run and of each fold (default: the recommended recipe's for this many images)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", type=parse_pairs, default={},
                   help="fields of the recommended recipe to change for the run and the folds, e.g. "
                        "model=fast_cnn,optimizer=nesterov,learning_rate=0.1 (this process only)")
    p.add_argument("--out", default=None, help="results .md (default benchmarks/results/own_data-<budget>.md)")
    p.add_argument("--source", default="best", choices=("best", "cross_validation", "baseline", "embeddings", "ensemble"),
                   help="predictions the queue is built on (default: what the Review page preselects)")
    args = p.parse_args(argv)
    args.recipe_text = ",".join(f"{k}={v}" for k, v in args.recipe.items())
    args.recipe = recipe_changes(args.recipe)
    budget = "smoke" if args.smoke else "cpu"
    args.classes = tuple((args.classes or ("q0,q1,q2,q3" if args.smoke else "cat,ship,frog")).split(","))
    args.per_class = args.per_class or (30 if args.smoke else 300)
    args.planted = args.planted if args.planted is not None else (8 if args.smoke else 30)
    args.folds = 2 if args.smoke and args.folds == 4 else args.folds
    # default: the recommended recipe's epochs for a fold's training images (config.preset_epochs), the
    # same for the run and every fold
    fold_train = len(args.classes) * args.per_class * (args.folds - 1) // args.folds
    scratch = args.preset != "pretrained"
    args.epochs = args.epochs or (2 if args.smoke else crossval.recommended_recipe(fold_train, scratch=scratch)["epochs"])
    suffix = "" if args.preset == "pretrained" else f"-{args.preset}"
    work = Path(args.work or ROOT / "runs" / f"bench-own-data-{budget}{suffix}")
    work.mkdir(parents=True, exist_ok=True)
    t0, load_before = time.monotonic(), round(os.getloadavg()[0], 2)
    zip_path, truth = build(work, classes=args.classes, per_class=args.per_class, planted=args.planted,
                            smoke=args.smoke, seed=args.seed)
    n_images = len(args.classes) * args.per_class   # every image of the "upload" (the app counts them too)
    # the run and the folds: the recommended recipe with this benchmark's epochs and --recipe's changes
    config = train_config(zip_path, smoke=args.smoke, epochs=args.epochs, num_images=n_images, changes=args.recipe,
                          scratch=scratch)
    run = trained_run(work, config)
    crossval.cross_validate(run, folds=args.folds, recipe={**args.recipe, "epochs": args.epochs,
                                                           **({"batch_size": 32} if args.smoke and scratch else {})})
    result = score(run, truth, source=args.source)
    result.update(wall_seconds=round(time.monotonic() - t0, 1), load_before=load_before,
                  load_after=round(os.getloadavg()[0], 2))
    # the training time of the run and its folds from their summaries: a resumed invocation trains
    # nothing, and its own wall time would say "0.0 min"
    recorded = common.run_seconds(Path(run)) + common.cv_seconds(Path(run), args.folds)
    text = report(result, args, recorded or time.monotonic() - t0)
    out = Path(args.out) if args.out else RESULTS / f"own_data-{budget}{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({**result, "preset": args.preset, "folds": args.folds,
                                                    "epochs": args.epochs, "classes": list(args.classes),
                                                    "recipe": args.recipe, "training_minutes": round(recorded / 60, 1),
                                                    "machine": common.machine(), "date": time.strftime("%Y-%m-%d"),
                                                    "revision": common.revision()},
                                                   indent=1))
    print(text)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
