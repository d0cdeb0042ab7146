"""Training speed of fast_cnn here: float32 against bfloat16, and TensorFlow's thread pools.

    python benchmarks/precision_probe.py                 # width 0.5 and 1.0, both precisions, 2 rounds
    python benchmarks/precision_probe.py --widths 0.5 --threads 0,2:1 --rounds 3
    python benchmarks/precision_probe.py --widths 0.5 --precisions bfloat16 --jit off,on   # XLA
    python benchmarks/precision_probe.py --widths 0.5 --precisions bfloat16 --batches 256,512,1024
    python benchmarks/precision_probe.py --widths 0.5,1.0 --precisions bfloat16 --blocks keras-gelu,fused-gelu,fused-relu --images 12800

``--blocks``: the BatchNorm and activation of fast_cnn's groups: ``keras-gelu`` (Keras'
BatchNormalization and GELU, the recipe until 2026-12-01), ``fused-gelu`` (``models.FusedBatchNorm``),
``fused-relu`` (the fused kernel with ReLU, which TensorFlow fuses into it). ``--images``: images
timed per variant (default 3,072).

``--jit``: Keras compiles the training step with XLA (``jit_compile=True``) or not; its "auto"
leaves XLA off on a CPU-only machine.

Each variant runs in its own process (thread pools can only be set before TensorFlow starts), on
random images, batch 256 (``--batches``: others): one warm-up fit of 2 steps, then 3,072 timed images
(12 steps of 256). Variants are interleaved
round by round so that a shared machine's load hits them alike. Reported per variant: images per
second of wall time, CPU time / wall time (2.0 = both cores busy on a 2-core machine), images per
CPU-second (less sensitive to other processes' load) and the 1-minute load average.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

IMAGES = 3072


def child(precision: str, width: float, intra: int, inter: int, jit: str = "off", batch: int = 256,
          blocks: str = "", images: int = IMAGES) -> dict:
    import tensorflow as tf

    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    import keras
    import numpy as np

    from noisycore.models import build_model

    options = {}
    if blocks:
        import common   # benchmarks/common.py: this script's folder is on sys.path

        norm, options["activation"] = blocks.split("-")
        common.use_fast_norm(keras_bn=norm == "keras")
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    model = build_model("fast_cnn", input_shape=(32, 32, 3), num_classes=10, width=width, seed=0, **options)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), loss="categorical_crossentropy",
                  jit_compile=jit == "on")
    rng = np.random.default_rng(0)
    x = rng.random((max(images, 2 * batch), 32, 32, 3), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, len(x)), 10)
    model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"precision": precision, "width": width, "blocks": blocks or "default", "intra": intra, "inter": inter, "jit": jit, "batch": batch,
            "images_per_s": round(len(x) / wall, 1), "cpu_per_wall": round(cpu / wall, 2),
            "images_per_cpu_s": round(len(x) / cpu, 1), "load": round(os.getloadavg()[0], 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="0.5,1.0")
    p.add_argument("--precisions", default="float32,bfloat16")
    p.add_argument("--threads", default="0", help="intra:inter pairs, comma-separated; 0 = TensorFlow's default")
    p.add_argument("--jit", default="off", help="off, on or off,on: XLA compilation of the training step")
    p.add_argument("--batches", default="256", help="batch sizes, comma-separated")
    p.add_argument("--blocks", default="", help="keras-gelu, fused-gelu, fused-relu (comma-separated); default: the builder's")
    p.add_argument("--images", type=int, default=IMAGES, help="images timed per variant")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return 0
    known = [f"{n}-{a}" for n in ("keras", "fused") for a in ("gelu", "relu")]
    wrong = [b for b in args.blocks.split(",") if b and b not in known]
    if wrong:
        print(f"error: --blocks {','.join(wrong)} unknown; choose from {', '.join(known)}", file=sys.stderr)
        return 2
    threads = [tuple(int(v) for v in (t.split(":") + ["0"])[:2]) for t in args.threads.split(",")]
    variants = [(pr, float(w), a, b, j, int(bs), bl, args.images) for w in args.widths.split(",")
                for pr in args.precisions.split(",") for a, b in threads for j in args.jit.split(",")
                for bs in args.batches.split(",") for bl in args.blocks.split(",")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                          os.environ.get("PYTHONPATH", "")])}
    print("| precision | width | blocks | intra:inter | XLA | batch | images/s | CPU/wall | images per CPU-s | load |")
    print("|---|---:|---|---|---|---:|---:|---:|---:|---:|")
    for _ in range(args.rounds):
        for v in variants:
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(v)], capture_output=True,
                                 text=True, env=env)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {r['precision']} | {r['width']} | {r['blocks']} | {r['intra']}:{r['inter']} | {r['jit']} | {r['batch']} | {r['images_per_s']} | "
                  f"{r['cpu_per_wall']} | {r['images_per_cpu_s']} | {r['load']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
