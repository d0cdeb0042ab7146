"""Probe: does translation test-time augmentation pay on top of the mirror? (issue 11: "flip, and
translations if they pay")

For each saved model (a run's best.keras trained on CIFAR-10), the test accuracy on the 10,000 test
images with no TTA, with flip TTA (the app's), and with airbench's tta_level 2: the flip pair averaged
with the four views shifted by one pixel up-left / down-right (reflect padding) and their mirrors,
weights 0.5 / 0.5, and all six views weighted equally.

    python benchmarks/tta_probe.py RUN/best.keras [RUN2/best.keras ...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402,F401  (puts the checkout on sys.path)
from common import UserError  # noqa: E402


def views(x_uint8: np.ndarray) -> dict:
    """The six views of a batch: id, flip, shifted up-left / down-right by one pixel, and their mirrors."""
    import tensorflow as tf

    x = tf.cast(x_uint8, tf.float32) / 255.0
    h, w = int(x.shape[1]), int(x.shape[2])
    pad = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    ul, dr = pad[:, 0:h, 0:w, :], pad[:, 2:h + 2, 2:w + 2, :]
    flip = lambda t: tf.reverse(t, axis=[2])  # noqa: E731
    return {"id": x, "flip": flip(x), "ul": ul, "dr": dr, "ul_f": flip(ul), "dr_f": flip(dr)}


def run(args, argv=None) -> int:
    missing = [m for m in args.models if not Path(m).is_file()]
    if missing:
        raise UserError(f"no saved model at {missing[0]}; give the best.keras of a CIFAR-10 run")
    import keras

    from noisycore import models  # noqa: F401  (registers the app's layers and initializers)
    from noisycore.config import DataConfig
    from noisycore.datasets import load_dataset

    ds = load_dataset(DataConfig(source="cifar10"))
    x, y = ds.x_test, ds.y_test
    print(f"# {common.machine()}", flush=True)
    for path in args.models:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
        t0 = time.perf_counter()
        probs: dict = {}
        for start in range(0, len(x), 250):
            for name, v in views(x[start:start + 250]).items():
                probs.setdefault(name, []).append(np.asarray(model.predict_on_batch(v), np.float32))
        p_ = {k: np.concatenate(v) for k, v in probs.items()}
        acc = lambda q: 100 * float((q.argmax(1) == y).mean())  # noqa: E731
        flip = (p_["id"] + p_["flip"]) / 2
        shifted = (p_["ul"] + p_["dr"] + p_["ul_f"] + p_["dr_f"]) / 4
        print(f"{path}: none {acc(p_['id']):.2f}  flip {acc(flip):.2f}  flip+translate {acc(0.5 * flip + 0.5 * shifted):.2f}"
              f"  six equal {acc((2 * flip + 4 * shifted) / 6):.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="saved models (best.keras) trained on CIFAR-10 at 32x32")
    return common.cli("tta_probe", p, run, argv, resumable=False)


if __name__ == "__main__":
    sys.exit(main())
