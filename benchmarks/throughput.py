"""Training throughput (images/s) of one epoch, for the input pipelines and models of noisycore.

Variants, all on the same random 32x32 uint8 images, batch 128, Adam, cross-entropy:
  (a) blog_cnn fed by the blog post's ImageDataGenerator(rotation 15, shifts 0.1, flip).flow(...)
  (b) blog_cnn fed by our tf.data pipeline with the "blog" augmentation preset
  (c) blog_cnn fed by our tf.data pipeline without augmentation (the compute ceiling)
  (d) compact_cnn fed by our tf.data pipeline with the "blog" augmentation preset
  (e) blog_cnn under the mixed_bfloat16 policy, tf.data without augmentation (compare with (c))
Every model is built and warmed up (traced) first; then each repetition runs every variant for one
epoch, in an order rotated by one each repetition, and the table reports medians. Keras 3 keeps
ImageDataGenerator only as a legacy class whose transforms need SciPy; when it cannot transform,
(a) is a faithful NumPy emulation (same per-image Python loop, float32 copy of the data set,
bilinear affine warp with nearest fill) and the output says so.

    python benchmarks/throughput.py                  # full run (several minutes on 2 cores)
    python benchmarks/throughput.py --quick          # smoke run, a few seconds after TF loads
    python benchmarks/throughput.py --out results/throughput.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from noisycore.models import build_model  # noqa: E402
from noisycore.pipeline import make_dataset  # noqa: E402

BLOG_AUGMENT = {"rotation_range": 15, "width_shift_range": 0.1, "height_shift_range": 0.1,
                "horizontal_flip": True}


def _bilinear_affine(img, matrix, offset):
    """scipy.ndimage.affine_transform(order=1, mode="nearest") of an (H, W, C) image, in NumPy."""
    h, w = img.shape[:2]
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    src_r = np.clip(matrix[0, 0] * rows + matrix[0, 1] * cols + offset[0], 0, h - 1)
    src_c = np.clip(matrix[1, 0] * rows + matrix[1, 1] * cols + offset[1], 0, w - 1)
    r0, c0 = np.floor(src_r).astype(np.int32), np.floor(src_c).astype(np.int32)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    fr, fc = (src_r - r0)[..., None], (src_c - c0)[..., None]
    top = img[r0, c0] * (1 - fc) + img[r0, c1] * fc
    bottom = img[r1, c0] * (1 - fc) + img[r1, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def blog_affine(img, theta, tx, ty, flip):
    """ImageDataGenerator.apply_transform for rotation ``theta`` (degrees), shifts ``tx``, ``ty``
    (pixels) and a horizontal ``flip``: the same matrix algebra as Keras' apply_affine_transform."""
    h, w = img.shape[:2]
    t = np.deg2rad(theta)
    m = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    m = m @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    ox, oy = h / 2 - 0.5, w / 2 - 0.5  # transform_matrix_offset_center: rotate about the centre
    m = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]]) @ m @ np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    m[:, [0, 1]] = m[:, [1, 0]]  # apply_affine_transform swaps axes for channels-last images
    m[[0, 1]] = m[[1, 0]]
    out = _bilinear_affine(img, m[:2, :2], m[:2, 2])
    return out[:, ::-1] if flip else out


def _random_transform(img, rng):
    """ImageDataGenerator.random_transform for the blog's settings (the same random draws)."""
    h, w = img.shape[:2]
    theta = rng.uniform(-BLOG_AUGMENT["rotation_range"], BLOG_AUGMENT["rotation_range"])
    tx = rng.uniform(-0.1, 0.1) * h
    ty = rng.uniform(-0.1, 0.1) * w
    return blog_affine(img, theta, tx, ty, rng.random() < 0.5)


class EmulatedFlow(keras.utils.PyDataset):
    """ImageDataGenerator(**BLOG_AUGMENT).flow(x, y, batch_size): a float32 copy of x, shuffled
    every epoch, every image transformed one by one in Python (Keras' NumpyArrayIterator)."""

    def __init__(self, x, y, batch_size, seed=0):
        super().__init__()  # workers=1, no multiprocessing: the legacy defaults
        self.x = np.asarray(x, dtype=np.float32) / 255.0  # NumpyArrayIterator: np.asarray(x, floatx)
        self.y, self.batch_size = y, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, i):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        batch = np.stack([_random_transform(self.x[j], self.rng) for j in idx])
        return batch, self.y[idx]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))


def image_data_generator_flow(x, y, batch_size):
    """The real legacy ImageDataGenerator when it can transform here, else the NumPy emulation."""
    try:
        from tensorflow.keras.preprocessing.image import ImageDataGenerator
        datagen = ImageDataGenerator(**BLOG_AUGMENT)
        datagen.random_transform(np.zeros((8, 8, 3), np.float32))  # needs SciPy
        return datagen.flow(x.astype(np.float32) / 255.0, y, batch_size=batch_size, seed=0), "ImageDataGenerator"
    except (ImportError, AttributeError) as e:
        return EmulatedFlow(x, y, batch_size), f"NumPy emulation of ImageDataGenerator ({type(e).__name__}: {e})"


def build_variants(x, y, batch_size, *, eager=False):
    """(key, description, model, data) for the five variants; models compiled, not yet traced.

    ``eager`` (smoke runs only) skips tracing the train step, which dominates a tiny run."""
    def model(name, policy="float32"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            m = build_model(name, input_shape=x.shape[1:], num_classes=y.shape[1], seed=0)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        m.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", run_eagerly=eager)
        return m

    labels = np.argmax(y, axis=1)
    ours = lambda aug: make_dataset(x, labels, num_classes=y.shape[1], batch_size=batch_size,  # noqa: E731
                                    augment=aug, shuffle=True, seed=0)
    flow, flow_kind = image_data_generator_flow(x, y, batch_size)
    return flow_kind, [
        ("a", "blog_cnn, blog post's ImageDataGenerator", model("blog_cnn"), flow),
        ("b", "blog_cnn, tf.data + blog augmentation", model("blog_cnn"), ours("blog")),
        ("c", "blog_cnn, tf.data, no augmentation", model("blog_cnn"), ours("none")),
        ("d", "compact_cnn, tf.data + blog augmentation", model("compact_cnn"), ours("blog")),
        ("e", "blog_cnn mixed_bfloat16, tf.data, no augmentation", model("blog_cnn", "mixed_bfloat16"),
         ours("none")),
    ]


def run(n, reps, batch_size, *, warmup_steps=3, eager=False, image_size=32, keys="abcde"):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    flow_kind, variants = build_variants(x, y, batch_size, eager=eager)
    variants = [v for v in variants if v[0] in keys]
    for _, _, m, data in variants:  # trace the train step outside the timed epochs
        if warmup_steps:
            m.fit(data, epochs=1, steps_per_epoch=warmup_steps, shuffle=False, verbose=0)
    rows = []
    for rep in range(reps):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for key, desc, m, data in order:
            start, cpu = time.perf_counter(), time.process_time()
            m.fit(data, epochs=1, shuffle=False, verbose=0)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            rows.append({"variant": key, "description": desc, "rep": rep, "seconds": round(seconds, 3),
                         "images_per_s": round(n / seconds, 1), "cpu_ms_per_image": round(1000 * cpu / n, 3)})
            print(f"  rep {rep + 1}/{reps} ({key}) {desc}: {n / seconds:.1f} images/s", file=sys.stderr)
    return flow_kind, variants, rows


def machine():
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return f"{os.cpu_count()} CPUs, {model}; TensorFlow {tf.__version__}, Keras {keras.__version__}"


def report(variants, rows, flow_kind, args, load_before):
    med = {key: statistics.median(r["images_per_s"] for r in rows if r["variant"] == key) for key, *_ in variants}
    cpu = {key: statistics.median(r["cpu_ms_per_image"] for r in rows if r["variant"] == key) for key, *_ in variants}
    lines = [f"Command: `python benchmarks/throughput.py {' '.join(sys.argv[1:])}`".replace("  ", " "),
             f"Machine: {machine()}; load average before/after: {load_before} / {_load()}",
             f"Data: {args.n} random {16 if args.quick else 32}x{16 if args.quick else 32}x3 uint8 images, K=10, batch {args.batch_size}, "
             f"{args.reps} interleaved repetitions (medians). (a) uses: {flow_kind}."
             + (" QUICK SMOKE RUN (eager, tiny): the numbers mean nothing." if args.quick else ""), "",
             "| variant | images/s (median) | min | max | vs (c) | CPU ms/image (median) |",
             "|---|---:|---:|---:|---:|---:|"]
    base = med.get("c")
    for key, desc, *_ in variants:
        values = [r["images_per_s"] for r in rows if r["variant"] == key]
        ratio = f"{med[key] / base:.2f}x" if base else "n/a"
        lines.append(f"| ({key}) {desc} | {med[key]:.1f} | {min(values):.1f} | {max(values):.1f} | {ratio} | "
                     f"{cpu[key]:.2f} |")
    goals = [("(b) >= 90% of (c)", "bc", lambda: med["b"] >= 0.9 * med["c"]),
             ("(b) >= (a)", "ab", lambda: med["b"] >= med["a"]),
             ("(d) >= 3x (c)", "cd", lambda: med["d"] >= 3 * med["c"])]
    checked = [f"{name}: {'met' if ok() else 'NOT met'}" for name, keys, ok in goals if set(keys) <= set(med)]
    lines += ["", "Goals (images/s medians): " + ("; ".join(checked) or "none measured"),
              "CPU ms/image is the process's CPU time (all threads) per image: less sensitive than "
              "images/s to other programs sharing the machine."]
    return "\n".join(lines)


def _load():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5120, help="images per epoch (default 5120 = 40 batches)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 16 images of 16x16, one batch, 2 repetitions, eager (numbers meaningless)")
    parser.add_argument("--variants", default="abcde", help="which variants to run, e.g. abc (default abcde)")
    parser.add_argument("--out", type=Path, help="also write one CSV row per variant and repetition here")
    args = parser.parse_args(argv)
    if not args.variants or set(args.variants) - set("abcde"):
        parser.error(f"--variants {args.variants!r}: use letters from abcde, e.g. --variants abc")
    if args.quick:
        args.n, args.reps, args.batch_size = 16, 2, 16
    load_before = _load()
    flow_kind, variants, rows = run(args.n, args.reps, args.batch_size, warmup_steps=0 if args.quick else 3,
                                    eager=args.quick, image_size=16 if args.quick else 32,
                                    keys=args.variants)
    print(report(variants, rows, flow_kind, args, load_before))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
