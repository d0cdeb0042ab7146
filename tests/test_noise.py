"""Tests for noisycore.noise: exact realized rates, hand-computed matrices, seeds, safe file reading."""
import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from noisycore import noise
from noisycore.config import ConfigError, NoiseConfig
from noisycore.errors import DataError, UserError
from noisycore.datasets import CIFAR10_CLASSES as CIFAR10_CLASS_NAMES
from noisycore.human_labels import cifar10n_ids, read_cifar10n_pt
from noisycore.labelsets import load_label_set, save_label_set
from noisycore.noise import (NOISE_MODELS, NoisyLabels, apply_noise, class_counts, describe, flipped_examples,
                             realized_matrix, validate_matrix)

CIFAR_CSV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10" / "cifar10n-train-labels.csv"


def make_ds(y, class_names=CIFAR10_CLASS_NAMES, *, ids=None, x=None, truth_known=True, label_sets=None,
            name="test"):
    """A Dataset-like namespace (noise.py only reads attributes)."""
    y = np.asarray(y, dtype=np.int64)
    if ids is None:
        ids = np.array([f"train/{i:05d}.jpg" for i in range(len(y))])
    if x is None:
        x = np.zeros((len(y), 2, 2, 3), dtype=np.uint8)
    return SimpleNamespace(name=name, source=name, class_names=tuple(class_names), x_train=x, y_train=y,
                           ids_train=np.asarray(ids), truth_known=truth_known, label_sets=label_sets or {})


def balanced(k=10, per_class=100):
    return np.repeat(np.arange(k), per_class)


def binomial_tol(p, n, sigmas=5):
    return sigmas * np.sqrt(p * (1 - p) / n)


# ----------------------------------------------------------------------------- symmetric / uniform

@pytest.mark.parametrize("rate,n", [(0.0, 100), (0.2, 1000), (0.4, 999), (0.35, 7), (0.9, 50)])
def test_symmetric_flips_exactly_round_rate_n_and_never_to_the_same_class(rate, n):
    y = np.arange(n) % 10
    labels = noise.symmetric_noise(y, rate=rate, num_classes=10, seed=3)
    assert (labels != y).sum() == round(rate * n)   # every chosen example really changes class
    assert labels.min() >= 0 and labels.max() <= 9


def test_symmetric_spreads_flips_over_all_other_classes():
    y = np.zeros(9000, dtype=np.int64)
    labels = noise.symmetric_noise(y, rate=0.9, num_classes=4, seed=0)
    counts = np.bincount(labels, minlength=4)
    assert counts[0] == 900
    assert np.all(np.abs(counts[1:] / 8100 - 1 / 3) < binomial_tol(1 / 3, 8100))


def test_seeds_reproduce_and_differ():
    y = np.arange(1000) % 10
    a = noise.symmetric_noise(y, rate=0.3, num_classes=10, seed=1)
    b = noise.symmetric_noise(y, rate=0.3, num_classes=10, seed=1)
    c = noise.symmetric_noise(y, rate=0.3, num_classes=10, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_symmetric_per_example_rate_within_binomial_tolerance():
    y = np.arange(20000) % 10
    labels = noise.symmetric_noise(y, rate=0.3, num_classes=10, seed=5, per_example=True)
    rate = (labels != y).mean()
    assert abs(rate - 0.3) < binomial_tol(0.3, 20000)
    other = noise.symmetric_noise(y, rate=0.3, num_classes=10, seed=6, per_example=True)
    assert (other != y).sum() != (labels != y).sum()  # counts vary with the seed, unlike the exact mode


def test_uniform_realized_rate_is_about_nine_tenths_of_rate():
    y = np.arange(20000) % 10
    labels = noise.uniform_noise(y, rate=0.4, num_classes=10, seed=0)
    redrawn = round(0.4 * 20000)   # 8000 redraws, each wrong with probability 0.9
    wrong = (labels != y).sum()
    assert abs(wrong / redrawn - 0.9) < binomial_tol(0.9, redrawn)
    assert wrong < redrawn         # some redraws landed on the true class


def test_uniform_and_symmetric_requested_matrices():
    s = noise.symmetric_matrix(0.4, 5)
    assert np.allclose(np.diag(s), 0.6) and np.isclose(s[0, 1], 0.1)
    u = noise.uniform_matrix(0.4, 5)
    assert np.allclose(np.diag(u), 0.6 + 0.08) and np.isclose(u[0, 1], 0.08)
    assert np.allclose(s.sum(1), 1) and np.allclose(u.sum(1), 1)


# ----------------------------------------------------------------------------- pair / asymmetric

def test_pair_tiny_example_matrix_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    labels = noise.pair_noise(y, rate=0.5, num_classes=3, seed=0)
    # class 0: round(0.5*4)=2 -> 1; class 1: round(0.5*2)=1 -> 2; class 2: 2 -> 0
    assert np.bincount(labels[y == 0], minlength=3).tolist() == [2, 2, 0]
    assert np.bincount(labels[y == 1], minlength=3).tolist() == [0, 1, 1]
    assert np.bincount(labels[y == 2], minlength=3).tolist() == [2, 0, 2]
    expected = np.array([[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]])
    assert np.allclose(realized_matrix(y, labels, 3), expected)


def test_pair_flips_exact_count_per_class():
    y = np.repeat(np.arange(5), [10, 33, 7, 50, 1])
    noisy = apply_noise(make_ds(y, tuple("abcde")), NoiseConfig(model="pair", rate=0.3, seed=4))
    for c, n_c in enumerate([10, 33, 7, 50, 1]):
        rows = y == c
        assert (noisy.labels[rows] == (c + 1) % 5).sum() == round(0.3 * n_c)
        assert set(noisy.labels[rows]) <= {c, (c + 1) % 5}
    assert np.isclose(noisy.requested_matrix[1, 2], 0.3) and np.isclose(noisy.requested_matrix[4, 0], 0.3)


def test_asymmetric_cifar_per_source_class_and_twenty_percent_overall():
    y = balanced()
    noisy = apply_noise(make_ds(y), NoiseConfig(model="asymmetric", rate=0.4, seed=0))
    pairs = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}   # truck->automobile, bird->airplane, deer->horse, cat<->dog
    for c in range(10):
        given = noisy.labels[y == c]
        if c in pairs:
            assert (given == pairs[c]).sum() == 40 and (given == c).sum() == 60
        else:
            assert (given == c).all()
    assert noisy.realized_rate == pytest.approx(0.2)
    assert noise.overall_rate(noisy.requested_matrix) == pytest.approx(0.2)
    assert np.allclose(noisy.realized_matrix, noisy.requested_matrix)   # exact counts on balanced classes


def test_asymmetric_builtin_classes_use_builtin_pairs():
    datasets = pytest.importorskip("noisycore.datasets")
    names = datasets.BUILTIN_CLASSES
    y = balanced(len(names), 10)
    noisy = apply_noise(make_ds(y, names, name="builtin"), NoiseConfig(model="asymmetric", rate=0.5))
    for src, dst in datasets.ASYMMETRIC_PAIRS["builtin"].items():
        assert (noisy.labels[y == src] == dst).sum() == 5


def test_asymmetric_unknown_classes_suggest_pair_or_matrix():
    with pytest.raises(ConfigError, match="pair.*matrix"):
        apply_noise(make_ds([0, 1, 2], ("cat", "dog", "fish")), NoiseConfig(model="asymmetric", rate=0.4))


# ----------------------------------------------------------------------------- matrices

def test_realized_matrix_by_hand_and_identity_row_for_absent_class():
    true = np.array([0, 0, 0, 0, 1, 1])
    given = np.array([0, 0, 0, 2, 1, 0])
    m = realized_matrix(true, given, 3)
    assert np.allclose(m, [[0.75, 0, 0.25], [0.5, 0.5, 0], [0, 0, 1]])
    assert np.allclose(m.sum(1), 1)


def test_matrix_model_matches_requested_on_20k_samples():
    t = [[0.7, 0.3, 0.0], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]]
    y = np.arange(20001) % 3
    noisy = apply_noise(make_ds(y, ("a", "b", "c")), NoiseConfig(model="matrix", matrix=t, seed=2))
    assert np.abs(noisy.realized_matrix - np.array(t)).max() < binomial_tol(0.5, 6667)
    assert noisy.realized_matrix[0, 2] == 0 and (noisy.labels[y == 2] == 2).all()   # zero entries never drawn
    again = apply_noise(make_ds(y, ("a", "b", "c")), NoiseConfig(model="matrix", matrix=t, seed=2))
    assert np.array_equal(noisy.labels, again.labels)


@pytest.mark.parametrize("matrix,pattern", [
    ([[1.0, 0.0], [0.5, 0.5]], r"3 x 3"),                                  # wrong shape, names K
    ([[1.2, -0.2, 0], [0, 1, 0], [0, 0, 1]], r"row 0 \(a\), column 1 is -0.2"),
    ([[1, 0, 0], [0.5, 0.4, 0], [0, 0, 1]], r"row 1 \(b\) sums to 0\.9"),
    ([[1, 0, 0], [0, 1, 0], [0, float("nan"), 1]], r"row 2 \(c\), column 1"),
    ([[1, 0], [0, 1, 0], [0, 0, 1]], r"3 x 3"),                            # ragged
])
def test_validate_matrix_errors_name_the_row(matrix, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate_matrix(matrix, 3, class_names=("a", "b", "c"))


def test_validate_matrix_accepts_small_rounding():
    m = validate_matrix([[1 / 3, 1 / 3, 1 / 3 + 5e-7], [0, 1, 0], [0, 0, 1]], 3)
    assert m.dtype == np.float64 and m.shape == (3, 3)


# ----------------------------------------------------------------------------- instance

def test_instance_noise_mean_rate_and_dependence_on_image():
    rng = np.random.default_rng(0)
    y = np.arange(3000) % 10
    x = rng.integers(0, 256, (3000, 8, 8, 3), dtype=np.uint8)
    noisy = apply_noise(make_ds(y, x=x), NoiseConfig(model="instance", rate=0.3, seed=1))
    assert abs(noisy.realized_rate - 0.3) < 0.03
    assert noisy.requested_matrix is None and np.allclose(noisy.realized_matrix.sum(1), 1)
    # the same image repeated: its flips go to the class its pixels point to (softmax of large scores)
    # (32x32x3 images: scores x W have a std of ~16, so the softmax nearly picks one class per image)
    big = rng.integers(0, 256, (3000, 32, 32, 3), dtype=np.uint8)
    same = np.repeat(big[:1], 3000, axis=0)
    y0 = np.zeros(3000, dtype=np.int64)
    dup = apply_noise(make_ds(y0, x=same), NoiseConfig(model="instance", rate=0.3, seed=1))
    spread = apply_noise(make_ds(y0, x=big), NoiseConfig(model="instance", rate=0.3, seed=1))
    top_share = lambda n: np.bincount(n.labels[n.is_noisy], minlength=10).max() / n.is_noisy.sum()  # noqa: E731
    # pixels are centred, so different images send their flips to different classes
    assert top_share(dup) > 0.9 and top_share(spread) < 0.3
    assert not np.array_equal(dup.labels, spread.labels)


def test_instance_noise_chunking_does_not_change_labels():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 500)
    x = rng.integers(0, 256, (500, 4, 4, 3), dtype=np.uint8)
    a = noise.instance_noise(y, x, rate=0.4, num_classes=4, seed=9, chunk_rows=7)
    b = noise.instance_noise(y, x, rate=0.4, num_classes=4, seed=9)
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- every model, one contract

def _config_for(model):
    extra = {}
    if model == "matrix":
        extra["matrix"] = (0.8 * np.eye(10) + 0.2 * np.roll(np.eye(10), 1, axis=1)).tolist()
    if model == "human":
        extra["label_set"] = "crowd"
    return NoiseConfig(model=model, rate=0.3, seed=7, **extra)


@pytest.mark.parametrize("model", sorted(NOISE_MODELS))
def test_every_model_returns_a_consistent_noisy_labels(model):
    rng = np.random.default_rng(0)
    y = balanced(10, 30)
    crowd = np.where(rng.random(300) < 0.2, (y + 3) % 10, y)
    ds = make_ds(y, x=rng.integers(0, 256, (300, 4, 4, 3), dtype=np.uint8), label_sets={"crowd": crowd})
    a, b = apply_noise(ds, _config_for(model)), apply_noise(ds, _config_for(model))
    assert isinstance(a, NoisyLabels) and a.labels.dtype == np.int64 and a.labels.shape == (300,)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.is_noisy, a.labels != y)
    assert a.realized_rate == pytest.approx(a.is_noisy.mean())
    assert np.allclose(a.realized_matrix.sum(1), 1)
    assert np.allclose(a.realized_matrix, realized_matrix(y, a.labels, 10))
    if a.requested_matrix is not None:
        assert np.allclose(a.requested_matrix.sum(1), 1)


def test_none_model_and_unknown_truth():
    y = np.array([0, 1, 2, 1])
    a = apply_noise(make_ds(y), NoiseConfig(model="none", rate=0.0))
    assert a.realized_rate == 0.0 and np.array_equal(a.labels, y) and not a.is_noisy.any()
    b = apply_noise(make_ds(y, truth_known=False), NoiseConfig(model="none", rate=0.0))
    assert b.true_labels is None and b.is_noisy is None and b.realized_rate is None


def test_bad_parameters_name_the_value():
    with pytest.raises(UserError, match="class index 12.*0..9"):
        noise.symmetric_noise([1, 12, 3], rate=0.2, num_classes=10, seed=0)
    with pytest.raises(ConfigError, match="1.5"):
        noise.pair_noise([0, 1], rate=1.5, num_classes=2, seed=0)
    with pytest.raises(ConfigError, match="1.5"):
        NoiseConfig(model="symmetric", rate=1.5)
    with pytest.raises(ConfigError, match="seed=-1"):
        noise.uniform_noise([0, 1], rate=0.2, num_classes=2, seed=-1)
    with pytest.raises(UserError, match="class index 10"):
        apply_noise(make_ds([0, 10]), NoiseConfig(model="symmetric"))


def test_describe_states_the_wrong_share():
    assert "about 36%" in describe(NoiseConfig(model="uniform", rate=0.4), 10)
    text = describe(NoiseConfig(model="asymmetric", rate=0.4), 10)
    assert "about 20%" in text and "truck->automobile" in text
    assert "about 15%" in describe(NoiseConfig(model="matrix", matrix=[[0.7, 0.3], [0, 1]]), 2)
    for model in NOISE_MODELS:
        assert describe(_config_for(model), 10)


# ----------------------------------------------------------------------------- human labels

def _write_manifest(path, rows):
    pd.DataFrame(rows, columns=["path", "clean", "crowd"]).to_csv(path, index=False)
    return path


def test_human_labels_from_csv_matched_by_id(tmp_path):
    names = ("cat", "dog", "fish")
    ds = make_ds([0, 1, 2, 1], names, ids=["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    csv = _write_manifest(tmp_path / "m.csv", [("d.jpg", "dog", "dog"), ("./a.jpg", "cat", "dog"),
                                                ("c.jpg", "fish", "fish"), ("b.jpg", "dog", "cat"),
                                                ("extra.jpg", "cat", "cat")])
    noisy = apply_noise(ds, NoiseConfig(model="human", human_labels=str(csv), label_set="crowd"))
    assert noisy.labels.tolist() == [1, 0, 2, 1]
    assert noisy.is_noisy.tolist() == [True, True, False, False] and noisy.realized_rate == 0.5
    unknown_truth = apply_noise(make_ds([0, 1, 2, 1], names, ids=["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
                                        truth_known=False),
                                NoiseConfig(model="human", human_labels=str(csv), label_set="crowd"))
    assert unknown_truth.true_labels is None and unknown_truth.realized_rate is None


def test_human_labels_csv_errors(tmp_path):
    names = ("cat", "dog", "fish")
    ds = make_ds([0, 1, 2], names, ids=["a.jpg", "b.jpg", "zz.jpg"])
    csv = _write_manifest(tmp_path / "m.csv", [("a.jpg", "cat", "dog"), ("b.jpg", "dog", "cat")])
    with pytest.raises(DataError, match="no row for 1 of the 3.*zz.jpg"):
        apply_noise(ds, NoiseConfig(model="human", human_labels=str(csv), label_set="crowd"))
    with pytest.raises(ConfigError, match="'nope'.*available: clean, crowd"):
        apply_noise(ds, NoiseConfig(model="human", human_labels=str(csv), label_set="nope"))
    bad = _write_manifest(tmp_path / "b.csv", [("a.jpg", "cat", "horse"), ("b.jpg", "dog", "cat"),
                                               ("zz.jpg", "fish", "fish")])
    with pytest.raises(DataError, match="unknown class name.*horse.*valid names: cat, dog, fish"):
        apply_noise(ds, NoiseConfig(model="human", human_labels=str(bad), label_set="crowd"))


def test_human_labels_from_dataset_label_set():
    ds = make_ds([0, 1, 2], label_sets={"r1": np.array([0, 2, 2]), "gap": np.array([0, -1, 2])})
    noisy = apply_noise(ds, NoiseConfig(model="human", label_set="r1"))
    assert noisy.labels.tolist() == [0, 2, 2] and noisy.num_noisy == 1
    with pytest.raises(DataError, match="no label for 1"):
        apply_noise(ds, NoiseConfig(model="human", label_set="gap"))
    with pytest.raises(ConfigError, match="'worst'.*available: gap, r1"):
        apply_noise(ds, NoiseConfig(model="human", label_set="worst"))


# ----------------------------------------------------------------------------- CIFAR-10N .pt, safely

def _fake_pt(path, payload: bytes, *, raw=False):
    if raw:
        path.write_bytes(payload)
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("CIFAR-10_human/data.pkl", payload)
            zf.writestr("CIFAR-10_human/version", "3\n")
    return path


def _cifar10n_arrays(n_per_class=3, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.permutation(np.repeat(np.arange(10), n_per_class))
    worse = np.where(rng.random(clean.size) < 0.5, (clean + 1) % 10, clean)
    return {"clean_label": clean, "worse_label": worse, "aggre_label": clean.copy(),
            "random_label1": worse.copy(), "random_label2": clean.copy(), "random_label3": worse.copy()}


def test_read_fake_cifar10n_pt_zip_and_raw(tmp_path):
    arrays = _cifar10n_arrays()
    payload = pickle.dumps(arrays, protocol=2)
    for raw in (False, True):
        out = read_cifar10n_pt(_fake_pt(tmp_path / f"h{raw}.pt", payload, raw=raw))
        assert sorted(out) == sorted(arrays)
        assert all(np.array_equal(out[k], arrays[k]) for k in arrays)


def test_human_labels_from_pt_map_ids_by_class_order(tmp_path):
    arrays = _cifar10n_arrays()
    pt = _fake_pt(tmp_path / "CIFAR-10_human.pt", pickle.dumps(arrays, protocol=2))
    ids = cifar10n_ids(arrays["clean_label"])
    first_cat = np.flatnonzero(arrays["clean_label"] == 3)[0]
    assert ids[first_cat] == "train/cat/0000.jpg"
    order = np.random.default_rng(1).permutation(30)          # the dataset lists images in another order
    ds = make_ds(arrays["clean_label"][order], ids=ids[order])
    noisy = apply_noise(ds, NoiseConfig(model="human", human_labels=str(pt), label_set="worst"))
    assert np.array_equal(noisy.labels, arrays["worse_label"][order])
    assert noisy.realized_rate == pytest.approx((arrays["worse_label"] != arrays["clean_label"]).mean())
    wrong = make_ds((arrays["clean_label"][order] + 1) % 10, ids=ids[order])
    with pytest.raises(DataError, match="not for this CIFAR-10 copy"):
        apply_noise(wrong, NoiseConfig(model="human", human_labels=str(pt), label_set="aggre"))
    with pytest.raises(ConfigError, match="aggre, worst, random1"):
        apply_noise(ds, NoiseConfig(model="human", human_labels=str(pt), label_set="best"))


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("raw", [False, True])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, raw):
    target = tmp_path / "pwned"
    payload = pickle.dumps({"clean_label": np.arange(3), "evil": _Evil(target)}, protocol=2)
    pt = _fake_pt(tmp_path / "evil.pt", payload, raw=raw)
    with pytest.raises(DataError, match=r"refusing to load .*(posix|nt|os)\.system.*never needs"):
        read_cifar10n_pt(pt)
    assert not target.exists()


def test_torch_storage_and_garbage_are_refused(tmp_path):
    class StoragePickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", "0") if isinstance(obj, np.ndarray) else None

    buf = io.BytesIO()
    StoragePickler(buf, protocol=2).dump({"clean_label": np.arange(3)})
    with pytest.raises(DataError, match="torch tensor storage"):
        read_cifar10n_pt(_fake_pt(tmp_path / "s.pt", buf.getvalue()))
    with pytest.raises(DataError, match="not a readable"):
        read_cifar10n_pt(_fake_pt(tmp_path / "g.pt", b"not a pickle at all", raw=True))
    with pytest.raises(DataError, match="does not exist"):
        read_cifar10n_pt(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- label sets on disk

def test_save_and_load_label_set_round_trip(tmp_path):
    y = balanced(10, 5)
    ds = make_ds(y)
    cfg = NoiseConfig(model="symmetric", rate=0.4, seed=3)
    noisy = apply_noise(ds, cfg)
    out = save_label_set(tmp_path / "set", ds, noisy)
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv", "noise.json"]   # no temp files left
    table = pd.read_csv(out / "labels.csv")
    assert list(table.columns) == ["id", "label", "true_label", "is_noisy"]
    assert set(table["label"]) <= set(CIFAR10_CLASS_NAMES) and table["is_noisy"].sum() == 20
    meta = json.loads((out / "noise.json").read_text())
    assert meta["realized_rate"] == pytest.approx(0.4) and meta["counts"]["noisy"] == 20
    assert meta["dataset"]["class_names"] == list(CIFAR10_CLASS_NAMES)
    shuffled = make_ds(y[::-1], ids=ds.ids_train[::-1])           # same images, other order
    for path in (out, out / "labels.csv"):
        back = load_label_set(path, shuffled)
        assert np.array_equal(back.labels, noisy.labels[::-1])
        assert np.array_equal(back.true_labels, y[::-1]) and back.config == cfg
        assert back.realized_rate == noisy.realized_rate
        assert np.allclose(back.requested_matrix, noisy.requested_matrix)


def test_label_set_with_unknown_truth_round_trips(tmp_path):
    ds = make_ds([0, 1, 2], truth_known=False)
    out = save_label_set(tmp_path, ds, apply_noise(ds, NoiseConfig(model="none", rate=0.0)))
    assert pd.read_csv(out / "labels.csv", keep_default_na=False)["true_label"].tolist() == ["", "", ""]
    back = load_label_set(out, ds)
    assert back.true_labels is None and back.labels.tolist() == [0, 1, 2] and back.config.model == "none"


def test_load_label_set_errors(tmp_path):
    ds = make_ds([0, 1], ids=["a", "b"])
    (tmp_path / "labels.csv").write_text("id,label\na,airplane\nb,automobile\nc,cat\n")
    with pytest.raises(DataError, match="1 id.*not in the dataset.*c"):
        load_label_set(tmp_path, ds)
    (tmp_path / "labels.csv").write_text("id,label\na,airplane\n")
    with pytest.raises(DataError, match="no row for 1.*b"):
        load_label_set(tmp_path, ds)
    (tmp_path / "labels.csv").write_text("id,label\na,airplane\nb,spaceship\n")
    with pytest.raises(DataError, match="spaceship"):
        load_label_set(tmp_path, ds)
    with pytest.raises(DataError, match="no label set"):
        load_label_set(tmp_path / "nothing", ds)


# ----------------------------------------------------------------------------- page helpers

def test_flipped_examples_and_class_counts():
    true = np.array([0, 0, 1, 1, 2, 2])
    labels = np.array([1, 0, 0, 1, 0, 1])
    noisy = NoisyLabels(labels, true, labels != true, None, realized_matrix(true, labels, 3), 0.5,
                        NoiseConfig(model="none", rate=0.0))
    assert flipped_examples(noisy).tolist() == [0, 2, 4, 5]
    assert flipped_examples(noisy, true_class=2).tolist() == [4, 5]
    assert flipped_examples(noisy, given_class=0).tolist() == [2, 4]
    assert flipped_examples(noisy, true_class=2, given_class=1, limit=5).tolist() == [5]
    assert flipped_examples(noisy, limit=2).tolist() == [0, 2]
    with pytest.raises(UserError, match="true_class=3"):
        flipped_examples(noisy, true_class=3)
    table = class_counts(noisy, ("a", "b", "c"))
    assert table["true"].tolist() == [2, 2, 2] and table["given"].tolist() == [3, 3, 0]
    unknown = NoisyLabels(labels, None, None, None, None, None, NoiseConfig(model="none", rate=0.0))
    assert class_counts(unknown, ("a", "b", "c"))["true"].isna().all()
    with pytest.raises(UserError, match="unknown"):
        flipped_examples(unknown)


# ----------------------------------------------------------------------------- real CIFAR-10N labels

@pytest.mark.shared
@pytest.mark.skipif(not CIFAR_CSV.is_file(),
                    reason=f"CIFAR-10N labels not found at {CIFAR_CSV} (shared data absent)")
def test_cifar10n_worst_label_set_has_40_21_percent_noise():
    table = pd.read_csv(CIFAR_CSV, dtype=str)
    lookup = {n: i for i, n in enumerate(CIFAR10_CLASS_NAMES)}
    ds = make_ds(table["clean"].map(lookup).to_numpy(), ids=table["path"].to_numpy())
    worst = apply_noise(ds, NoiseConfig(model="human", human_labels=str(CIFAR_CSV), label_set="worst"))
    assert round(worst.realized_rate, 4) == 0.4021
    aggre = apply_noise(ds, NoiseConfig(model="human", human_labels=str(CIFAR_CSV), label_set="aggre"))
    assert round(aggre.realized_rate, 4) == 0.0901


def test_works_with_the_real_dataset_class(tmp_path):
    datasets = pytest.importorskip("noisycore.datasets")
    y = balanced(10, 4)
    x = np.random.default_rng(0).integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    ids = np.array([f"train/{CIFAR10_CLASS_NAMES[c]}/{i:04d}.jpg" for i, c in enumerate(y)])
    ds = datasets.Dataset(name="cifar10", class_names=CIFAR10_CLASS_NAMES, x_train=x, y_train=y, ids_train=ids,
                          x_test=x[:2], y_test=y[:2], ids_test=ids[:2], source="cifar10")
    for model in ("asymmetric", "instance"):
        noisy = apply_noise(ds, NoiseConfig(model=model, rate=0.5, seed=1))
        back = load_label_set(save_label_set(tmp_path / model, ds, noisy), ds)
        assert np.array_equal(back.labels, noisy.labels) and back.config.model == model
