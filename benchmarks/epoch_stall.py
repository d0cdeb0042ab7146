"""Idle stalls between epochs: per-epoch wall time and CPU time of the fast recipe's network with a
new tf.data iterator every epoch (Keras' default for a finite dataset) or one endless iterator
(``pipeline.endless`` + ``steps_per_epoch``, what ``noisycore.train`` does since 2026-12-01).

    python benchmarks/epoch_stall.py --mode per-epoch --epochs 10
    python benchmarks/epoch_stall.py --mode endless --epochs 10
    python benchmarks/epoch_stall.py --mode per-epoch --epochs 1 --images 600      # smoke

Random uint8 images (the arithmetic does not depend on the pixels), fast_cnn width 0.75, bfloat16
where the CPU computes it natively, GCE, Nesterov SGD with the weight average, flip + translate
augmentation, batch 256: the fast preset's training step without its evaluation. An epoch counts as
stalled when its wall time exceeds the fastest epoch's by more than STALL_FACTOR (every epoch does the same
work); its CPU time / wall time then falls too (near 1 on 2 cores: part of the epoch had every core idle).
Prints one line per epoch and a JSON summary; appends the summary to --out.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

STALL_FACTOR = 1.3   # the 2-core Xeon's epochs: 21.7-24.6 s without a stall, 40.5-41.7 s with one


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", required=True, choices=("per-epoch", "endless"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--images", type=int, default=45000)
    p.add_argument("--out", default=str(common.ROOT / "benchmarks" / "results" / "epoch_stall.jsonl"))
    return p.parse_args(argv)


def run(a) -> dict:
    import keras

    from noisycore.hardware import describe, resolve_precision
    from noisycore.losses import get_loss
    from noisycore.models import build_model, init_from_data
    from noisycore.pipeline import endless, make_dataset

    machine = describe()
    precision = resolve_precision("auto")
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (a.images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, a.images)
    net = build_model("fast_cnn", input_shape=(32, 32, 3), num_classes=10, weight_decay=5e-4, seed=0, width=0.75)
    init_from_data(net, x[:5000])
    net.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True, use_ema=True, ema_momentum=0.95),
                loss=get_loss("gce", num_classes=10, q=0.7), metrics=["accuracy"])
    epochs = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.c0 = time.perf_counter(), os.times()

        def on_epoch_end(self, epoch, logs=None):
            c1 = os.times()
            wall = time.perf_counter() - self.t0
            cpu = (c1.user + c1.system) - (self.c0.user + self.c0.system)
            epochs.append({"wall": round(wall, 2), "cpu": round(cpu, 2), "cpu_per_wall": round(cpu / wall, 2)})
            print(f"epoch {epoch + 1}: {wall:.1f} s, CPU {cpu:.1f} s, CPU/wall {cpu / wall:.2f}", flush=True)

    data = make_dataset(x, y, num_classes=10, batch_size=256, augment="flip_translate", shuffle=True, seed=0)
    steps = None
    if a.mode == "endless":
        data, steps = endless(data)
    net.fit(data, epochs=a.epochs, steps_per_epoch=steps, callbacks=[Clock()], verbose=0, shuffle=False)
    walls = sorted(e["wall"] for e in epochs)
    return {"mode": a.mode, "images": a.images, "epochs": epochs, "precision": precision,
            "median_wall": walls[len(walls) // 2], "total_wall": round(sum(walls), 1),
            "stalled_epochs": sum(w > STALL_FACTOR * walls[0] for w in walls),
            "cpu_model": machine["cpu_model"], "cpu_flags": machine["bf16_flags"],
            "load_before": machine["load_average"], "load_after": [round(v, 2) for v in os.getloadavg()]}


def main(argv=None) -> int:
    a = parse(argv)
    if a.epochs < 1 or a.images < 256:
        print("error: --epochs must be >= 1 and --images >= 256 (one batch)", file=sys.stderr)
        return 2
    result = run(a)
    common.print_and_append(a.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
