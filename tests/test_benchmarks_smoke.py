"""Smoke test of benchmarks/throughput.py (--quick) and of its ImageDataGenerator emulation."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def test_quick_throughput_run_prints_a_table_and_writes_csv(tmp_path):
    out = tmp_path / "throughput.csv"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| (")]
    assert [line[3] for line in table] == list("abcde")
    assert "Goals (images/s medians):" in done.stdout and "QUICK SMOKE RUN" in done.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 10 and {r["variant"] for r in rows} == set("abcde")
    assert [r["variant"] for r in rows[5:]] == list("bcdea")  # the second repetition starts one later
    assert all(float(r["images_per_s"]) > 0 for r in rows)


def test_emulated_image_data_generator_matches_keras_affine_transform():
    """The NumPy fallback warps exactly like Keras' legacy apply_affine_transform (SciPy)."""
    pytest.importorskip("scipy")
    sys.path.insert(0, str(SCRIPT.parent))
    from throughput import blog_affine
    from keras.src.legacy.preprocessing.image import apply_affine_transform

    img = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    for theta, tx, ty in [(0.0, 0.0, 0.0), (12.5, 0.0, 0.0), (0.0, 3.2, -1.7), (-14.0, -2.5, 3.1)]:
        expected = apply_affine_transform(img, theta, tx, ty, row_axis=0, col_axis=1, channel_axis=2,
                                          fill_mode="nearest", order=1)
        np.testing.assert_allclose(blog_affine(img, theta, tx, ty, False), expected, atol=1e-4)
    np.testing.assert_allclose(blog_affine(img, 5.0, 1.0, 1.0, True), blog_affine(img, 5.0, 1.0, 1.0, False)[:, ::-1])
