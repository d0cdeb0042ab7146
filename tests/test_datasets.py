"""Tests for noisycore.datasets: loaders, conversions, splits, zips, CSV manifests, cache, built-in set."""
from __future__ import annotations

import io
import os
import pickle
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hostile import make_zip
from noisycore import datasets as D
from noisycore.config import DataConfig
from noisycore.errors import DataError

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Caches, imports and keras' cache all live in tmp folders; no local CIFAR override."""
    monkeypatch.setenv("NOISYLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NOISYLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("NOISYLAB_CIFAR10", raising=False)
    return tmp_path / "home"


def save(path: Path, *, size=(10, 10), color=(200, 30, 30), mode="RGB", fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, fmt)
    return path


def make_folder(root: Path, counts: dict, *, size=(10, 10), ext="png") -> Path:
    for k, (cls, n) in enumerate(counts.items()):
        for i in range(n):
            save(root / cls / f"{i:02d}.{ext}", size=size, color=(20 * k, 10 * i, 100))
    return root


# ----------------------------------------------------------------------------- image folders

def test_image_folder_holds_out_a_stratified_test_split(tmp_path):
    root = make_folder(tmp_path / "pets", {"dog": 5, "cat": 5, "bird": 10})
    ds = D.load_image_folder(root)
    assert ds.class_names == ("bird", "cat", "dog")  # sorted
    assert ds.x_train.dtype == np.uint8 and ds.image_shape == (10, 10, 3)
    assert ds.y_train.dtype == np.int64
    # round(0.2 * n) per class: bird 2, cat 1, dog 1
    assert np.bincount(ds.y_test, minlength=3).tolist() == [2, 1, 1]
    assert np.bincount(ds.y_train, minlength=3).tolist() == [8, 4, 4]
    assert set(ds.ids_train) | set(ds.ids_test) == {f"{c}/{i:02d}.png" for c, n in
                                                    (("dog", 5), ("cat", 5), ("bird", 10)) for i in range(n)}
    assert ds.name == "pets" and not ds.truth_known and ds.label_sets == {}
    # labels match the folder each image came from
    for x, y, i in zip(ds.x_train, ds.y_train, ds.ids_train):
        assert i.startswith(ds.class_names[y] + "/")


def test_split_is_seeded_and_reproducible(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 20, "b": 20})
    first = D.load_image_folder(root, seed=3).ids_test
    assert np.array_equal(first, D.load_image_folder(root, seed=3).ids_test)
    others = [D.load_image_folder(root, seed=s).ids_test for s in (4, 5, 6)]
    assert any(not np.array_equal(first, o) for o in others)
    assert len(D.load_image_folder(root, test_fraction=0.5).ids_test) == 20


def test_train_and_test_folders_are_used_as_given(tmp_path):
    make_folder(tmp_path / "d" / "train", {"a": 3, "b": 2})
    make_folder(tmp_path / "d" / "test", {"a": 1, "b": 1})
    ds = D.load_image_folder(tmp_path / "d")
    assert len(ds.y_train) == 5 and len(ds.y_test) == 2
    assert all(i.startswith("train/") for i in ds.ids_train)
    assert sorted(ds.ids_test) == ["test/a/00.png", "test/b/00.png"]
    make_folder(tmp_path / "t" / "train", {"a": 5, "b": 5})  # train/ without test/: hold out
    ds = D.load_image_folder(tmp_path / "t")
    assert len(ds.y_test) == 2 and all(i.startswith("train/") for i in ds.ids_test)


def test_cifar_class_set_gets_cifar_order(tmp_path):
    root = make_folder(tmp_path / "c", {c: 2 for c in sorted(D.CIFAR10_CLASSES, reverse=True)})
    assert D.load_image_folder(root).class_names == D.CIFAR10_CLASSES


def test_hidden_files_and_wrapper_folder(tmp_path):
    root = tmp_path / "outer"
    make_folder(root / "wrapper", {"a": 2, "b": 2}, ext="JPG")  # upper-case extension
    (root / ".DS_Store").write_bytes(b"\0junk")
    (root / "wrapper" / "a" / ".DS_Store").write_bytes(b"\0junk")
    (root / "wrapper" / "a" / "._00.JPG").write_bytes(b"not an image")
    (root / "__MACOSX" / "a").mkdir(parents=True)
    (root / "__MACOSX" / "a" / "x.jpg").write_bytes(b"junk")
    ds = D.load_image_folder(root)
    assert sorted(list(ds.ids_train) + list(ds.ids_test)) == ["a/00.JPG", "a/01.JPG", "b/00.JPG", "b/01.JPG"]


def png_bytes(arr: np.ndarray, mode: str) -> Image.Image:
    return Image.fromarray(arr, mode) if mode else Image.fromarray(arr)


@pytest.mark.parametrize("mode,make,expected", [
    ("L", lambda p: save(p, mode="L", color=128), (128, 128, 128)),
    ("1", lambda p: save(p, mode="1", color=1), (255, 255, 255)),
    ("LA", lambda p: save(p, mode="LA", color=(50, 255)), (50, 50, 50)),
    ("RGBA-transparent", lambda p: save(p, mode="RGBA", color=(0, 0, 0, 0)), (255, 255, 255)),
    ("RGBA-opaque", lambda p: save(p, mode="RGBA", color=(10, 20, 30, 255)), (10, 20, 30)),
    ("P", lambda p: save(p, mode="P", color=0), (0, 0, 0)),
    ("I;16", lambda p: Image.fromarray(np.full((10, 10), 32896, np.uint16)).save(p), (128, 128, 128)),
    ("I;16-max", lambda p: Image.fromarray(np.full((10, 10), 65535, np.uint16)).save(p), (255, 255, 255)),
    ("CMYK", lambda p: save(p.with_suffix(".jpg"), mode="CMYK", color=(0, 0, 0, 0)), (255, 255, 255)),
])
def test_every_image_mode_converts_to_rgb(tmp_path, mode, make, expected):
    root = tmp_path / "m"
    target = root / "a" / "img.png"
    target.parent.mkdir(parents=True)
    make(target)
    make_folder(root, {"b": 2})
    (root / "a" / "other.png").write_bytes((root / "b" / "00.png").read_bytes())
    ds = D.load_image_folder(root, image_size=10, seed=0)
    ids = list(ds.ids_train) + list(ds.ids_test)
    xs = np.concatenate([ds.x_train, ds.x_test])
    img = xs[[i for i, s in enumerate(ids) if "/img." in s][0]]
    assert img.shape == (10, 10, 3) and img.dtype == np.uint8
    assert np.abs(img[5, 5].astype(int) - expected).max() <= 3, img[5, 5]


def test_image_size_choice(tmp_path):
    root = tmp_path / "s"
    for i in range(3):
        save(root / "a" / f"{i}.png", size=(20, 20))
    save(root / "b" / "0.png", size=(30, 30))
    save(root / "b" / "1.png", size=(40, 20))
    assert D.load_image_folder(root).image_shape == (20, 20, 3)  # most common
    assert D.load_image_folder(root, image_size=16).image_shape == (16, 16, 3)  # explicit
    big = tmp_path / "big"
    for c in ("a", "b"):
        for i in range(2):
            save(big / c / f"{i}.png", size=(100, 100))
    assert D.load_image_folder(big).image_shape == (64, 64, 3)  # capped
    wide = tmp_path / "wide"
    for c in ("a", "b"):
        for i in range(2):
            save(wide / c / f"{i}.png", size=(40, 24))
    assert D.load_image_folder(wide).image_shape == (24, 24, 3)  # shorter side, square
    with pytest.raises(DataError, match="image_size"):
        D.load_image_folder(root, image_size=3)


def test_preview_shows_the_original_photo_upright_with_its_aspect(tmp_path):
    """datasets.preview: the user's file for a person to look at: EXIF rotation applied (a phone photo
    stored sideways), aspect kept, the longer side shrunk to max_side (never enlarged); an unreadable
    file is a DataError naming it."""
    a = np.zeros((30, 60, 3), np.uint8)   # stored 60 wide x 30 high: left half red, right half blue
    a[:, :30, 0] = 255
    a[:, 30:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6                      # "rotate 90 degrees clockwise to display"
    Image.fromarray(a).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    shown = D.preview(tmp_path / "phone.jpg", 20)
    assert shown.shape == (20, 10, 3) and shown.dtype == np.uint8   # upright: 30 wide x 60 high, shrunk to 20
    top, bottom = shown[:8].reshape(-1, 3).mean(0), shown[-8:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60   # clockwise: the left half on top
    Image.fromarray(a).save(tmp_path / "small.png")
    assert D.preview(tmp_path / "small.png", 320).shape == (30, 60, 3)           # smaller than max_side: as it is
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.jpg.*not an image Pillow can read"):
        D.preview(tmp_path / "broken.jpg", 64)


# ----------------------------------------------------------------------------- bad inputs

def test_bad_image_files_are_listed(tmp_path):
    root = make_folder(tmp_path / "b", {"a": 3, "b": 3}, ext="jpg")
    (root / "a" / "text.jpg").write_text("hello, I am not a JPEG")
    (root / "a" / "empty.png").write_bytes(b"")
    good = (root / "b" / "00.jpg").read_bytes()
    (root / "b" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (root / "b" / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    with pytest.raises(DataError) as e:
        D.load_image_folder(root, image_size=10)
    msg = str(e.value)
    for name in ("a/text.jpg", "a/empty.png", "b/cut.jpg", "b/noise.png"):
        assert name in msg
    assert "4 of 10" in msg and "empty file" in msg and "Remove or fix" in msg


def test_more_than_five_bad_files_are_counted(tmp_path):
    root = make_folder(tmp_path / "b", {"a": 2, "b": 2})
    for i in range(7):
        (root / "a" / f"bad{i}.png").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"7 of 11 .*and 2 more"):
        D.load_image_folder(root)


def huge_png(path: Path, w=20000, h=20000) -> Path:
    """A tiny file whose PNG header claims w x h pixels (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("image_size", [None, 16])
def test_decompression_bomb_is_refused(tmp_path, image_size):
    root = make_folder(tmp_path / "b", {"a": 2, "b": 2})
    huge_png(root / "a" / "bomb.png")
    huge_png(root / "b" / "bomb2.png", 8000, 6000)  # 48 MP: under Pillow's limit, over ours
    with pytest.raises(DataError) as e:
        D.load_image_folder(root, image_size=image_size)
    assert "a/bomb.png" in str(e.value) and "b/bomb2.png" in str(e.value) and "MP" in str(e.value)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        D.load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        D.load_image_folder(tmp_path / "empty")
    loose = tmp_path / "loose"
    save(loose / "x.png")
    with pytest.raises(DataError, match=r"1 image\(s\) lie directly"):
        D.load_image_folder(loose)
    with pytest.raises(DataError, match="need at least 2 classes"):
        D.load_image_folder(make_folder(tmp_path / "one", {"cats": 4}))
    with pytest.raises(DataError, match=r"too few in: tiny \(1\)"):
        D.load_image_folder(make_folder(tmp_path / "small", {"big": 4, "tiny": 1}))
    with pytest.raises(DataError, match="not a folder"):
        D.load_image_folder(save(tmp_path / "file.png"))


# ----------------------------------------------------------------------------- zip archives

def png(color=(1, 2, 3), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def good_members(prefix=""):
    return {f"{prefix}{c}/{i}.png": png((40 * k, i, 0)) for k, c in enumerate(("a", "b")) for i in range(3)}


def test_zip_with_wrapper_folder_loads_and_is_imported_once(tmp_path, isolated_home):
    z = make_zip(tmp_path / "shapes.zip", {**good_members("shapes/"), "__MACOSX/shapes/._x.png": b"junk"})
    ds = D.load_dataset(DataConfig(source=str(z)))
    assert ds.name == "shapes" and ds.class_names == ("a", "b") and ds.image_shape == (8, 8, 3)
    assert "a/0.png" in set(ds.ids_train) | set(ds.ids_test)
    D.load_dataset(DataConfig(source=str(z)))
    imports = list((isolated_home / "imports").iterdir())
    assert len(imports) == 1
    srcs = D.list_sources()
    assert [s["name"] for s in srcs][:2] == ["builtin", "cifar10"]
    assert {"name": "shapes", "kind": "import", "source": str(imports[0])}.items() <= srcs[2].items()


def test_same_zip_imported_by_processes_at_once_ends_in_one_complete_folder(tmp_path, isolated_home):
    """The app and a CLI run (or two sweep cells) loading the same upload at the same moment: every
    process gets the images, one folder remains, with its metadata, and no partial folder is left.
    (Before: the later rename failed with "Directory not empty", a traceback.)"""
    import subprocess
    import sys

    members = {f"{c}/{i}.png": png((40 * k, i % 200, i // 200)) for k, c in enumerate(("a", "b", "c"))
               for i in range(400)}
    z = make_zip(tmp_path / "big.zip", members)
    code = ("import sys; from noisycore.config import DataConfig; from noisycore.datasets import load_dataset; "
            "ds = load_dataset(DataConfig(source=sys.argv[1])); print(len(ds.ids_train) + len(ds.ids_test))")
    env = {**os.environ, "NOISYLAB_HOME": str(isolated_home), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(2):   # twice: the second round also races the "already imported" path
        procs = [subprocess.Popen([sys.executable, "-c", code, str(z)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-800:] for o in outs]
        assert [o[0].strip() for o in outs] == ["1200"] * 3
    imports = sorted(p.name for p in (isolated_home / "imports").iterdir())
    assert len(imports) == 1 and not imports[0].startswith(".")
    assert (isolated_home / "imports" / imports[0] / ".noisylab.json").is_file()


@pytest.mark.parametrize("bad,expect", [
    ({"../evil.png": png()}, "outside"),
    ({"a/../../evil.png": png()}, "outside"),
    ({"/abs/evil.png": png()}, "absolute"),
    ({"C:/evil.png": png()}, "absolute"),
    ({"C:\\evil.png": png()}, "absolute"),
])
def test_zip_unsafe_paths_are_refused_and_nothing_is_left(tmp_path, bad, expect):
    z = make_zip(tmp_path / "x.zip", {**good_members(), **bad})
    dest_parent = tmp_path / "out"
    with pytest.raises(DataError, match=expect) as e:
        D.safe_extract_zip(z, dest_parent / "dest")
    assert "x.zip" in str(e.value)
    assert not dest_parent.exists() or list(dest_parent.iterdir()) == []
    assert not (tmp_path / "evil.png").exists()


def test_zip_symlink_member_is_refused(tmp_path):
    z = make_zip(tmp_path / "s.zip", good_members(), symlink="a/link.png")
    with pytest.raises(DataError, match="symbolic link") as e:
        D.safe_extract_zip(z, tmp_path / "out" / "d")
    assert "a/link.png" in str(e.value)
    assert list((tmp_path / "out").iterdir()) == [] if (tmp_path / "out").exists() else True


def test_zip_bomb_limits(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", {"a/zeros.png": b"\0" * 2_000_000, "b/1.png": png()})
    assert z.stat().st_size < 100_000
    with pytest.raises(DataError, match="zip bomb"):
        D.safe_extract_zip(z, tmp_path / "out" / "d", max_bytes=1_000_000)
    with pytest.raises(DataError, match="over the limit of 1"):
        D.safe_extract_zip(z, tmp_path / "out" / "d", max_files=1)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert D.safe_extract_zip(z, tmp_path / "out" / "d") == tmp_path / "out" / "d"
    assert (tmp_path / "out" / "d" / "a" / "zeros.png").stat().st_size == 2_000_000


def test_nested_zips(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", good_members()).read_bytes()
    only = make_zip(tmp_path / "only.zip", {"inner.zip": inner})
    with pytest.raises(DataError, match="unzip it first"):
        D.safe_extract_zip(only, tmp_path / "o1")
    assert not (tmp_path / "o1").exists()
    mixed = make_zip(tmp_path / "mixed.zip", {**good_members(), "a/more.zip": inner})
    with pytest.warns(UserWarning, match="skipped 1 zip"):
        out = D.safe_extract_zip(mixed, tmp_path / "o2")
    assert not (out / "a" / "more.zip").exists() and (out / "a" / "0.png").exists()


def test_zip_not_a_zip_and_nonempty_dest(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        D.safe_extract_zip(fake, tmp_path / "d")
    z = make_zip(tmp_path / "ok.zip", good_members())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not an empty folder"):
        D.safe_extract_zip(z, tmp_path / "full")


# ----------------------------------------------------------------------------- CSV manifests

def csv_folder(tmp_path, text: str, files=("a 1.png", "b,2.png", "c.png", "d.png"), *, bom=True, crlf=True):
    root = tmp_path / "csvset"
    for i, f in enumerate(files):
        save(root / "img" / f, color=(i * 50, 0, 0))
    body = text.replace("\n", "\r\n") if crlf else text
    (root / "labels.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + body.encode())
    return root / "labels.csv"


def test_csv_manifest_bom_crlf_quoted_commas(tmp_path):
    csv = csv_folder(tmp_path, 'path,label,note\nimg/a 1.png,cat,x\n"img/b,2.png",dog,y\n'
                               "img/c.png,cat,z\nimg/d.png,dog,w\n")
    ds = D.load_csv_manifest(csv, test_fraction=0.5, seed=1)
    assert ds.class_names == ("cat", "dog") and not ds.truth_known and ds.name == "labels"
    ids = list(ds.ids_train) + list(ds.ids_test)
    assert sorted(ids) == ["img/a 1.png", "img/b,2.png", "img/c.png", "img/d.png"]
    assert list(ds.label_sets) == ["label"]  # 'note' holds no class names
    assert np.array_equal(ds.label_sets["label"], ds.y_train)
    labels = dict(zip(ids, np.concatenate([ds.y_train, ds.y_test]).tolist()))
    assert labels == {"img/a 1.png": 0, "img/b,2.png": 1, "img/c.png": 0, "img/d.png": 1}
    assert np.bincount(ds.y_test).tolist() == [1, 1]  # stratified: one of each class


def test_csv_truth_column_and_label_sets(tmp_path):
    csv = csv_folder(tmp_path, "path,clean,aggre,worst,split\nimg/a 1.png,cat,cat,dog,train\n"
                               '"img/b,2.png",dog,cat,cat,train\nimg/c.png,cat,,cat,train\n'
                               "img/d.png,dog,dog,dog,test\n")
    ds = D.load_csv_manifest(csv)
    assert ds.truth_known
    assert list(ds.ids_train) == ["img/a 1.png", "img/b,2.png", "img/c.png"]  # CSV order kept
    assert ds.y_train.tolist() == [0, 1, 0] and ds.y_test.tolist() == [1]
    assert ds.label_sets["clean"].tolist() == [0, 1, 0]
    assert ds.label_sets["aggre"].tolist() == [0, 0, -1]  # empty -> -1
    assert ds.label_sets["worst"].tolist() == [1, 0, 0]
    assert "split" not in ds.label_sets


def test_csv_true_label_column_and_given_label_column(tmp_path):
    csv = csv_folder(tmp_path, "path,label,true_label,mine\nimg/c.png,cat,cat,dog\nimg/d.png,cat,dog,dog\n"
                               "train/x.png,dog,dog,cat\nimg/e.png,dog,cat,cat\n", files=("c.png", "d.png", "e.png"))
    save(csv.parent / "train" / "x.png")
    ds = D.load_csv_manifest(csv, label_column="mine", test_fraction=0.4)
    assert ds.truth_known and set(ds.label_sets) == {"mine", "true_label", "label"}
    all_ids = np.concatenate([ds.ids_train, ds.ids_test])
    all_y = np.concatenate([ds.y_train, ds.y_test])
    assert dict(zip(all_ids, all_y.tolist())) == {"img/c.png": 0, "img/d.png": 1, "train/x.png": 1,
                                                   "img/e.png": 0}


def test_csv_integer_labels_and_path_prefix_split(tmp_path):
    root = tmp_path / "ints"
    for split in ("train", "test"):
        for i in range(3):
            save(root / split / f"{i}.png")
    (root / "m.csv").write_text("path,label\n" + "".join(f"{s}/{i}.png,{i}\n" for s in ("train", "test")
                                                          for i in range(3)))
    ds = D.load_csv_manifest(root / "m.csv")
    assert ds.class_names == ("0", "1", "2") and ds.y_train.tolist() == [0, 1, 2]
    assert list(ds.ids_test) == ["test/0.png", "test/1.png", "test/2.png"]
    named = D.load_csv_manifest(root / "m.csv", class_names=["x", "y", "z", "w"])
    assert named.class_names == ("x", "y", "z", "w") and named.y_test.tolist() == [0, 1, 2]


def test_csv_integer_labels_one_to_k_make_k_classes_without_an_empty_zero(tmp_path):
    """Issue 31.6: labels 1..3 are three classes "1", "2", "3" (no empty class "0", no 4-output model)."""
    root = tmp_path / "ones"
    for i in range(6):
        save(root / "img" / f"{i}.png")
    (root / "m.csv").write_text("path,label\n" + "".join(f"img/{i}.png,{i % 3 + 1}\n" for i in range(6)))
    ds = D.load_csv_manifest(root / "m.csv", test_fraction=0.34)
    assert ds.class_names == ("1", "2", "3") and ds.num_classes == 3
    given = {i: ds.class_names[y] for i, y in zip(ds.ids_train, ds.y_train)}
    given.update({i: ds.class_names[y] for i, y in zip(ds.ids_test, ds.y_test)})
    assert given == {f"img/{i}.png": str(i % 3 + 1) for i in range(6)}
    (root / "gap.csv").write_text("path,label\n" + "".join(f"img/{i}.png,{(2, 10, 7)[i % 3]}\n" for i in range(6)))
    assert D.load_csv_manifest(root / "gap.csv", test_fraction=0.34).class_names == ("2", "7", "10")


def _zip_with_raw_names(path, members: dict) -> Path:
    """A zip whose member names are the given raw bytes with the UTF-8 flag (bit 11) cleared, as macOS'
    Archive Utility and Linux zip write UTF-8 names. zipfile sets the flag for non-ASCII names, so the
    zip is written with ASCII placeholders of the same length, which are then replaced byte for byte."""
    import zipfile

    placeholders = {}
    with zipfile.ZipFile(path, "w") as zf:
        for k, (raw, data) in enumerate(members.items()):
            stand_in = (f"{k:0{len(raw)}d}".encode() if len(raw) >= len(str(k)) else None)
            placeholders[stand_in] = raw
            zf.writestr(stand_in.decode(), data)
    blob = path.read_bytes()
    for stand_in, raw in placeholders.items():
        assert blob.count(stand_in) == 2   # the local header and the central directory
        blob = blob.replace(stand_in, raw)
    path.write_bytes(blob)
    with zipfile.ZipFile(path) as zf:
        assert not any(i.flag_bits & 0x800 for i in zf.infolist())
    return path


def test_zip_names_without_the_utf8_flag_are_read_as_utf8_else_cp437(tmp_path, isolated_home):
    """Issue 31.6: UTF-8 names without the flag become 猫/犬 (not cp437 mojibake 'τî½'); genuine cp437 names
    (old Windows zips: 0x8e = Ä, invalid as UTF-8) stay cp437."""
    members = {f"{c}/{i}.png".encode("utf-8"): png((90 * k, i, 0)) for k, c in enumerate(("猫", "犬")) for i in range(3)}
    members.update({f"\x8eb/{i}.png".encode("latin-1"): png((200, i, 9)) for i in range(3)})   # cp437 0x8e: Ä
    z = _zip_with_raw_names(tmp_path / "pets.zip", members)
    ds = D.load_dataset(DataConfig(source=str(z)))
    assert set(ds.class_names) == {"猫", "犬", "Äb"}
    assert {"猫/0.png", "犬/2.png", "Äb/1.png"} <= set(ds.ids_train) | set(ds.ids_test)


@pytest.mark.parametrize("text,match", [
    ("path,label\nimg/c.png,cat\nimg/c.png,dog\n", r"line 3: path 'img/c.png' is listed twice \(first on line 2\)"),
    ("path,label\nimg/c.png,cat\nimg/missing.png,dog\n", r"not found: line 3: img/missing.png"),
    ("path,label\nimg/c.png,cat\nimg/d.png,\n", r"line 3: empty 'label'"),
    ("path,label\nimg/c.png,cat\n../x.png,dog\n", r"line 3: path '../x.png' points outside"),
    ("path,label\nimg/c.png,cat\n/etc/passwd,dog\n", r"line 3: path '/etc/passwd' is absolute"),
    ("path,label\n", "no rows"),
    ("file,label\nimg/c.png,cat\n", "no 'path' column"),
    ("path,klass\nimg/c.png,cat\n", "no 'label' column"),
    ("path,label,split\nimg/c.png,cat,train\nimg/d.png,dog,valid\n", r"line 3: split='valid'"),
    ("", "is empty"),
])
def test_csv_errors_name_the_line_and_value(tmp_path, text, match):
    csv = csv_folder(tmp_path, text, files=("c.png", "d.png"))
    with pytest.raises(DataError, match=match):
        D.load_csv_manifest(csv)


def test_csv_unknown_class_with_explicit_class_names(tmp_path):
    csv = csv_folder(tmp_path, "path,label\nimg/c.png,cat\nimg/d.png,cow\n", files=("c.png", "d.png"))
    with pytest.raises(DataError, match=r"line 3: label='cow' is not a known class \(classes: cat, dog\)"):
        D.load_csv_manifest(csv, class_names=("cat", "dog"))


def test_read_label_manifest_needs_no_images(tmp_path):
    (tmp_path / "n.csv").write_text("path,clean,aggre\r\ntrain\\frog\\0000.jpg,frog,deer\r\n"
                                    "./train/cat/0000.jpg,cat,cat\r\n")
    df = D.read_label_manifest(tmp_path / "n.csv")
    assert df["path"].tolist() == ["train/frog/0000.jpg", "train/cat/0000.jpg"]
    assert df["aggre"].tolist() == ["deer", "cat"]


# ----------------------------------------------------------------------------- cache and load_dataset

def test_load_dataset_caches_decoded_arrays(tmp_path, isolated_home):
    root = make_folder(tmp_path / "f", {"a": 4, "b": 4})
    cfg = DataConfig(source=str(root), seed=2)
    first = D.load_dataset(cfg)
    caches = list((isolated_home / "cache").glob("*.npz"))
    assert len(caches) == 1
    with np.load(caches[0], allow_pickle=False) as z:  # no pickles inside
        assert z["ids_train"].dtype.kind == "U"
    second = D.load_dataset(cfg)
    for a in ("x_train", "y_train", "ids_train", "x_test", "y_test", "ids_test"):
        assert np.array_equal(getattr(first, a), getattr(second, a))
        assert getattr(first, a).dtype == getattr(second, a).dtype
    assert second.class_names == first.class_names and second.name == "f"
    # a changed image is a different source: a new cache entry, the new pixels
    save(root / "a" / "00.png", color=(255, 255, 255))
    os.utime(root / "a" / "00.png", ns=(1, 1))
    third = D.load_dataset(cfg)
    assert len(list((isolated_home / "cache").glob("*.npz"))) == 2
    all_x = np.concatenate([third.x_train, third.x_test])
    assert (all_x == 255).all(axis=(1, 2, 3)).sum() == 1


def test_load_dataset_csv_is_cached_with_label_sets(tmp_path, isolated_home):
    csv = csv_folder(tmp_path, "path,label,clean\nimg/c.png,cat,dog\nimg/d.png,dog,dog\nimg/e.png,cat,cat\n"
                               "img/f.png,cat,cat\n", files=("c.png", "d.png", "e.png", "f.png"))
    cfg = DataConfig(source=str(csv), test_fraction=0.5)
    a, b = D.load_dataset(cfg), D.load_dataset(cfg)
    assert len(list((isolated_home / "cache").glob("csv-*.npz"))) == 1
    assert a.truth_known and b.truth_known
    assert set(b.label_sets) == {"label", "clean"}
    assert np.array_equal(a.label_sets["label"], b.label_sets["label"])


def test_load_dataset_max_train_is_stratified(tmp_path):
    root = make_folder(tmp_path / "f", {"a": 10, "b": 20, "c": 30}, size=(8, 8))
    cfg = DataConfig(source=str(root), max_train=12, max_test=10, seed=1)
    ds = D.load_dataset(cfg)
    # after the holdout: train 8/16/24, test 2/4/6; quotas 12 * share, largest remainder for the rest
    assert np.bincount(ds.y_train, minlength=3).tolist() == [2, 4, 6]
    assert np.bincount(ds.y_test, minlength=3).tolist() == [2, 3, 5]
    assert np.array_equal(ds.ids_train, D.load_dataset(cfg).ids_train)
    other = D.load_dataset(cfg.replace(seed=2))
    assert not np.array_equal(ds.ids_train, other.ids_train)


def test_load_dataset_bad_sources(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        D.load_dataset(DataConfig(source=str(tmp_path / "missing")))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="neither a folder"):
        D.load_dataset(DataConfig(source=str(tmp_path / "notes.txt")))
    with pytest.raises(ValueError, match="DataConfig"):
        D.load_dataset("builtin")


# ----------------------------------------------------------------------------- built-in dataset

def test_builtin_is_deterministic_and_balanced():
    a = D.load_builtin(n_train=200, n_test=50, seed=7)
    b = D.load_builtin(n_train=200, n_test=50, seed=7)
    c = D.load_builtin(n_train=200, n_test=50, seed=8)
    assert a.x_train.tobytes() == b.x_train.tobytes() and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.tobytes() != c.x_train.tobytes()
    assert a.x_train.shape == (200, 32, 32, 3) and a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    assert a.class_names == D.BUILTIN_CLASSES and len(D.BUILTIN_CLASSES) == 10
    assert np.bincount(a.y_train, minlength=10).tolist() == [20] * 10
    assert np.bincount(a.y_test, minlength=10).tolist() == [5] * 10
    assert a.ids_train[0] == "train/00000.png" and a.ids_test[4] == "test/00004.png"   # ids never name the class
    assert len(set(a.ids_train)) == 200
    # the test split comes from its own stream: a bigger test set leaves the training images alone
    d = D.load_builtin(n_train=200, n_test=80, seed=7)
    assert d.x_train.tobytes() == a.x_train.tobytes()
    assert D.load_builtin(n_train=20, n_test=20, image_size=48).image_shape == (48, 48, 3)
    assert a.x_train.std() > 30  # not blank images


def test_builtin_pairs_and_validation():
    for name in ("cifar10", "builtin"):
        pairs = D.ASYMMETRIC_PAIRS[name]
        assert len(pairs) == 5 and all(0 <= s < 10 and 0 <= t < 10 and s != t for s, t in pairs.items())
    assert D.ASYMMETRIC_PAIRS["cifar10"] == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    with pytest.raises(DataError, match="n_train"):
        D.load_builtin(n_train=5)
    with pytest.raises(DataError, match="image_size"):
        D.load_builtin(image_size=1000)


def test_dataset_validates_arrays():
    x = np.zeros((2, 4, 4, 3), np.uint8)
    ids = np.array(["a", "b"])
    with pytest.raises(DataError, match="uint8"):
        D.Dataset("d", ("a", "b"), x.astype(np.float32), np.zeros(2, np.int64), ids, x, np.zeros(2, np.int64), ids)
    with pytest.raises(DataError, match="outside 0..1"):
        D.Dataset("d", ("a", "b"), x, np.array([0, 2]), ids, x, np.zeros(2, np.int64), ids)
    ok = D.Dataset("d", ("a", "b"), x, np.array([0, 1]), ids, x, np.zeros(2, np.int64), ids)
    assert ok.num_classes == 2 and ok.image_shape == (4, 4, 3) and ok.label_sets == {}


# ----------------------------------------------------------------------------- CIFAR-10

def write_keras_batches(keras_home: Path, labels_per_batch: list) -> Path:
    folder = keras_home / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, labels in zip(names, labels_per_batch):
        data = np.arange(len(labels) * 3072, dtype=np.int64).reshape(len(labels), 3072).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(labels), b"batch_label": b"x"}, f, protocol=4)
    return folder


def test_cifar10_from_keras_cache_uses_image_folder_ids(tmp_path):
    write_keras_batches(tmp_path / "keras", [[6, 9], [6], [0], [6], [1], [3, 3]])
    assert D.cifar10_available()
    ds = D.load_cifar10()
    assert ds.class_names == D.CIFAR10_CLASSES and ds.x_train.shape == (6, 32, 32, 3)
    assert list(ds.ids_train) == ["train/frog/0000.jpg", "train/truck/0000.jpg", "train/frog/0001.jpg",
                                  "train/airplane/0000.jpg", "train/frog/0002.jpg", "train/automobile/0000.jpg"]
    assert list(ds.ids_test) == ["test/cat/0000.jpg", "test/cat/0001.jpg"]
    # channels: CIFAR stores all red values, then green, then blue
    assert ds.x_train[0, 0, 0].tolist() == [0, 1024 % 256, 2048 % 256]


def test_cifar10_batch_with_foreign_pickle_is_refused(tmp_path):
    folder = write_keras_batches(tmp_path / "keras", [[0], [1], [2], [3], [4], [5]])
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": os.system}))
    with pytest.raises(DataError, match="refusing to unpickle"):
        D.load_cifar10()


def test_cifar10_bad_env_path_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISYLAB_CIFAR10", str(tmp_path / "nowhere.tar.xz"))
    with pytest.raises(DataError, match="NOISYLAB_CIFAR10=.*does not exist"):
        D.load_cifar10()


def test_download_fails_fast_on_loopback(tmp_path):
    calls = []
    t = time.monotonic()
    with pytest.raises(DataError, match=r"could not download http://127\.0\.0\.1:9/cifar\.tar\.gz"):
        D.download_cifar10(url="http://127.0.0.1:9/cifar.tar.gz", timeout=2,
                           progress=lambda d, n: calls.append(d))
    assert time.monotonic() - t < 5
    assert calls == [] and not any((tmp_path / "keras").rglob("*.part"))
    with pytest.raises(DataError, match="http"):
        D.download_cifar10(url="file:///etc/passwd")


@pytest.mark.shared
@pytest.mark.slow
def test_shared_cifar10_tarball_and_cifar10n_ids(monkeypatch):
    tarball = SHARED_CIFAR / "cifar10-images.tar.xz"
    if not tarball.is_file():
        pytest.skip(f"shared CIFAR-10 tarball not found at {tarball}")
    monkeypatch.setenv("NOISYLAB_CIFAR10", str(tarball))
    ds = D.load_cifar10()
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert ds.class_names == D.CIFAR10_CLASSES
    assert np.bincount(ds.y_train).tolist() == [5000] * 10
    assert "train/frog/0000.jpg" in set(ds.ids_train) and ds.ids_test[0] == "test/airplane/0000.jpg"
    frog = list(ds.ids_train).index("train/frog/0000.jpg")
    assert ds.y_train[frog] == 6
    human = D.read_label_manifest(SHARED_CIFAR / "cifar10n-train-labels.csv")
    assert set(human["path"]) == set(ds.ids_train)
