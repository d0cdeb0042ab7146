"""A corpus of hostile and broken inputs, generated into a folder (nothing binary is committed).

Each Case builds its input under a root folder and says how the CLI uses it and what must happen:
``expect="error"`` (a one-line message containing ``words``) or ``expect="loads"`` (exit 0). ``page``
says which page test applies: "data" (the Data page with a path), "runs" (Curves and Review over a
broken run folder) or None (no page can produce it; the core check is tested instead).
Used by tests/test_hostile_inputs.py.
"""
from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog")
N_PER_CLASS = 4
OTHER_K = 3                     # classes of the "model from another dataset"


# ----------------------------------------------------------------------------- small builders
def _pixels(seed: int, size=(12, 12)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def png_bytes(seed: int = 0, size=(12, 12)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pixels(seed, size)).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(seed: int = 0, size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pixels(seed, size)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def good_folder(root: Path, classes=CLASSES, n: int = N_PER_CLASS) -> Path:
    """root/<class>/<i>.png: n random 12x12 RGB images per class."""
    for k, cls in enumerate(classes):
        for i in range(n):
            write(root / cls / f"{i}.png", png_bytes(10 * k + i))
    return root


def huge_png_header(w: int = 20000, h: int = 20000) -> bytes:
    """A 60-byte PNG whose header claims w x h pixels (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
            + chunk(b"IEND", b""))


def mode_image(mode: str) -> tuple:
    """(file name, bytes) of a 12x12 image in a Pillow mode the loader must convert to RGB."""
    buf = io.BytesIO()
    if mode == "I;16":
        Image.fromarray(np.full((12, 12), 40000, np.uint16)).save(buf, "PNG")
        return "deep.png", buf.getvalue()
    if mode == "CMYK":
        Image.new("CMYK", (12, 12), (0, 120, 200, 10)).save(buf, "JPEG")
        return "print.jpg", buf.getvalue()
    color = {"L": 128, "RGBA": (10, 200, 30, 120), "P": 3}[mode]
    Image.new(mode, (12, 12), color).save(buf, "PNG")
    return f"{mode.lower()}.png", buf.getvalue()


def make_zip(path: Path, members: dict, *, symlink: Optional[str] = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def good_members(prefix: str = "") -> dict:
    return {f"{prefix}{c}/{i}.png": png_bytes(10 * k + i) for k, c in enumerate(CLASSES) for i in range(N_PER_CLASS)}


def zip_declaring(path: Path, members: dict, name: str, declared: int) -> Path:
    """A zip whose member ``name`` declares ``declared`` uncompressed bytes (a zip bomb's header):
    the size fields of its local header and central-directory entry are rewritten."""
    make_zip(path, members)
    data = bytearray(path.read_bytes())
    raw = name.encode()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    local = info.header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, local + 22, declared)            # local header: uncompressed size
    central = 0
    while True:                                                   # find this member's central entry
        central = data.index(b"PK\x01\x02", central)
        n = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46:central + 46 + n]) == raw:
            break
        central += 4
    struct.pack_into("<I", data, central + 24, declared)          # central directory: uncompressed size
    path.write_bytes(bytes(data))
    return path


def csv_manifest(root: Path, rows: list, *, header="path,label", bom=False, crlf=False,
                 files=None) -> Path:
    """root/labels.csv with ``rows`` (already CSV-formatted lines) and the image files they name."""
    for i, name in enumerate(files if files is not None else []):
        write(root / name, png_bytes(100 + i))
    nl = "\r\n" if crlf else "\n"
    text = nl.join([header, *rows]) + nl
    return write(root / "labels.csv", (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


def plain_rows(files) -> list:
    return [f"{name},{CLASSES[i % 2]}" for i, name in enumerate(files)]


IMG = [f"img/{i}.png" for i in range(8)]


# ----------------------------------------------------------------------------- malicious pickles
def evil_pickle(marker: Path) -> bytes:
    """Protocol-0 pickle that, if unpickled by pickle.load, runs ``touch <marker>`` via os.system."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


def evil_torch_zip(path: Path, marker: Path) -> Path:
    """A torch.save-style zip (CIFAR-10_human/data.pkl) whose pickle calls os.system."""
    return make_zip(path, {"CIFAR-10_human/data.pkl": evil_pickle(marker), "CIFAR-10_human/version": b"3\n"})


# ----------------------------------------------------------------------------- run folders
def tiny_run(root: Path, data_root: Path, *, k_model: Optional[int] = None) -> Path:
    """A hand-written finished run folder over the image folder ``data_root`` (no training).

    config.json, status.json, labels.csv + noise.json, metrics.csv (2 epochs), summary.json and
    predictions.npz with K = len(CLASSES) columns, or ``k_model`` columns and a best.keras with that
    many outputs (a model from another dataset)."""
    from noisycore import runs
    from noisycore.config import DataConfig, NoiseConfig, TrainConfig
    from noisycore.datasets import load_dataset
    from noisycore.labelsets import save_label_set
    from noisycore.noise import apply_noise

    data = DataConfig(source=str(data_root))
    noise = NoiseConfig(model="symmetric", rate=0.25, seed=1)
    config = TrainConfig(data=data, noise=noise, epochs=2, batch_size=8)
    run = root / "20260101-000000-hostile"
    run.mkdir(parents=True)
    ds = load_dataset(data)
    noisy = apply_noise(ds, noise)
    save_label_set(run, ds, noisy, data_config=data)
    runs.atomic_write_text(run / "config.json", config.to_json())
    runs.write_status(run, {"state": "finished", "error": None, "epoch": 2, "epochs": 2, "batch": 1,
                            "batches": 1, "created": runs.now_iso(), "started": runs.now_iso(), "pid": None})
    (run / "metrics.csv").write_text(
        "epoch,loss,accuracy,train_acc_true,train_acc_given,memorized,val_loss,val_accuracy,test_accuracy,lr,seconds\n"
        "1,0.9,0.5,0.5,0.5,0.1,0.8,0.5,0.5,0.001,1.5\n"
        "2,0.7,0.75,0.75,0.75,0.2,0.7,0.75,0.5,0.001,1.4\n")
    k = k_model or ds.num_classes
    rng = np.random.default_rng(0)
    probs = lambda n: rng.dirichlet(np.ones(k), n).astype(np.float32)  # noqa: E731
    np.savez(run / "predictions.npz", train_probs=probs(len(ds.y_train)), test_probs=probs(len(ds.y_test)),
             train_ids=ds.ids_train.astype(str), test_ids=ds.ids_test.astype(str),
             train_labels=noisy.labels, test_labels=ds.y_test, is_val=np.zeros(len(ds.y_train), bool))
    runs.write_json(run / "summary.json", {"state": "finished", "epochs_done": 2, "best_epoch": 2,
                                           "test_accuracy": 0.5, "last_test_accuracy": 0.5,
                                           "train_acc_noisy": 0.75, "train_acc_true": 0.75,
                                           "truth_known": True, "num_classes": ds.num_classes})
    if k_model is not None:
        (run / "best.keras").write_bytes(_model_bytes(ds.image_shape, k_model))
    return run


_MODELS: dict = {}


def _model_bytes(image_shape: tuple, k: int) -> bytes:
    """A saved compact_cnn with k outputs (built once per process; saving a model takes seconds)."""
    if (image_shape, k) not in _MODELS:
        import tempfile

        from noisycore.models import build_model
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "best.keras"
            build_model("compact_cnn", input_shape=image_shape, num_classes=k, seed=0).save(path)
            _MODELS[(image_shape, k)] = path.read_bytes()
    return _MODELS[(image_shape, k)]


# ----------------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class Case:
    """One hostile input: build(root) -> (CLI argv without --out, page input); the expected outcome."""

    name: str
    build: Callable[[Path], tuple]
    expect: str                                # "error" or "loads"
    words: tuple = ()                          # must all appear in the one-line error / page message
                                               # (for "loads": in the CLI's stdout)
    page: Optional[str] = None                 # "data", "runs" or None
    out_suffix: str = ""                       # the --out name's suffix (.csv for detect, .zip for export)
    needs_keras: bool = False


def _inject(path) -> list:
    return ["inject", "--dataset", str(path), "--noise", "symmetric", "--rate", "0.2"]


def folder_with(name: str, data: bytes) -> Callable:
    """A good two-class folder plus one extra file ``name`` (relative to the folder), imported with
    skip_unreadable off (the refusal path; on, the default for folders, it is left out and listed)."""
    def build(root: Path):
        ds = good_folder(root / "photos")
        write(ds / name, data)
        return _inject(ds) + ["--no-skip-unreadable"], {"path": str(ds), "skip": False}
    return build


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _modes(mode: str) -> Callable:
    def build(root: Path):
        ds = good_folder(root / "photos")
        fname, data = mode_image(mode)
        write(ds / "cat" / fname, data)
        return _inject(ds), {"path": str(ds)}
    return build


def _folder(counts: dict) -> Callable:
    def build(root: Path):
        ds = root / "photos"
        ds.mkdir(parents=True)
        for k, (cls, n) in enumerate(counts.items()):
            for i in range(n):
                write(ds / cls / f"{i}.png", png_bytes(10 * k + i))
        return _inject(ds), {"path": str(ds)}
    return build


def _zip(extra: dict = None, *, symlink=None, only: dict = None) -> Callable:
    def build(root: Path):
        members = only if only is not None else {**good_members("set/"), **(extra or {})}
        z = make_zip(root / "upload.zip", members, symlink=symlink)
        return _inject(z), {"path": str(z)}
    return build


def _zip_absolute(root: Path):
    target = root / "abs-evil.png"                      # absolute: inside this test's folder, checked after
    z = make_zip(root / "upload.zip", {**good_members("set/"), str(target): png_bytes()})
    return _inject(z), {"path": str(z)}


def _zip_bomb(root: Path):
    z = zip_declaring(root / "upload.zip", {**good_members("set/"), "set/cat/zeros.png": b"\0" * 100_000},
                      "set/cat/zeros.png", 3 * 2**30)
    return _inject(z), {"path": str(z)}


def _zip_corrupt_member(root: Path):
    """The last member's compressed bytes are damaged: extraction fails after the others were written."""
    name = "set/dog/zz.png"
    z = make_zip(root / "upload.zip", {**good_members("set/"), name: png_bytes(7, (64, 64))})
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo(name)
    start = info.header_offset + 30 + len(name) + struct.unpack_from("<H", data, info.header_offset + 28)[0]
    middle = start + info.compress_size // 2
    data[middle:middle + 64] = bytes(64)
    z.write_bytes(bytes(data))
    return _inject(z), {"path": str(z)}


def _zip_nested(root: Path):
    inner = make_zip(root / "tmp-inner" / "inner.zip", good_members()).read_bytes()
    (root / "tmp-inner" / "inner.zip").unlink()
    (root / "tmp-inner").rmdir()
    z = make_zip(root / "upload.zip", {"inner.zip": inner})
    return _inject(z), {"path": str(z)}


def _not_a_zip(root: Path):
    z = write(root / "upload.zip", b"PK\x03\x04 this is not really a zip archive")
    return _inject(z), {"path": str(z)}


def _csv(rows_for, *, bom=False, crlf=False, files=IMG, header="path,label") -> Callable:
    def build(root: Path):
        csv = csv_manifest(root / "set", rows_for(files), header=header, bom=bom, crlf=crlf, files=files)
        return _inject(csv), {"path": str(csv)}
    return build


def _csv_unknown_class(root: Path):
    """Human labels from a CSV that names a class the dataset does not have."""
    ds = good_folder(root / "photos")
    ids = [f"{c}/{i}.png" for c in CLASSES for i in range(N_PER_CLASS)]
    rows = [f"{p},{p.split('/')[0]}" for p in ids]
    rows[1] = f"{ids[1]},zebra"
    csv = write(root / "annotators.csv", ("path,annot\n" + "\n".join(rows) + "\n").encode())
    argv = ["inject", "--dataset", str(ds), "--noise", "human", "--human-labels", str(csv), "--label-set", "annot"]
    return argv, {"path": str(ds), "noise": "human", "human_labels": str(csv), "label_set_text": "annot"}


def _rate(value: str) -> Callable:
    def build(root: Path):
        ds = good_folder(root / "photos")
        return ["inject", "--dataset", str(ds), "--noise", "symmetric", "--rate", value], {"rate": float(value)}
    return build


def _matrix(rows) -> Callable:
    def build(root: Path):
        ds = good_folder(root / "photos")
        m = write(root / "matrix.csv", "\n".join(",".join(map(str, r)) for r in rows).encode())
        return ["inject", "--dataset", str(ds), "--noise", "matrix", "--matrix", str(m)], {"matrix": rows}
    return build


def _pickle(kind: str) -> Callable:
    def build(root: Path):
        ds = good_folder(root / "photos")
        marker = root / "PWNED"
        pt = root / "CIFAR-10_human.pt"
        if kind == "raw":
            write(pt, evil_pickle(marker))
        else:
            evil_torch_zip(pt, marker)
        argv = ["inject", "--dataset", str(ds), "--noise", "human", "--human-labels", str(pt), "--label-set", "worst"]
        return argv, {"path": str(ds), "noise": "human", "human_labels": str(pt), "label_set": "worst",
                      "marker": str(marker)}
    return build


def _run(breakage: str) -> Callable:
    def build(root: Path):
        data_root = good_folder(root / "photos", n=6)
        run = tiny_run(root / "runs", data_root, k_model=OTHER_K if breakage == "model" else None)
        metrics = run / "metrics.csv"
        if breakage == "metrics_mid_row":
            text = metrics.read_text()
            metrics.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 12])   # the 2nd row cut after 11 chars
        elif breakage == "metrics_mid_header":
            metrics.write_text(metrics.read_text()[:25])                          # cut inside the header
        elif breakage == "config":
            text = (run / "config.json").read_text()
            (run / "config.json").write_text(text[: len(text) // 2])               # cut in half: invalid JSON
        if breakage == "config":
            argv = ["export", "--run", str(run), "--format", "folder"]
        else:
            argv = ["detect", "--run", str(run)]
        return argv, {"run": str(run)}
    return build


CASES = [
    # images: unreadable files are listed by name with the reason
    Case("corrupt_png", folder_with("cat/bad.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2), "error",
         ("cat/bad.png", "could not be read"), "data"),
    Case("truncated_jpeg", folder_with("dog/cut.jpg", _truncated(jpeg_bytes(1))), "error",
         ("dog/cut.jpg", "truncated"), "data"),
    Case("truncated_png", folder_with("dog/cut.png", _truncated(png_bytes(2, (64, 64)))), "error",
         ("dog/cut.png", "could not be read"), "data"),
    Case("text_named_jpg", folder_with("cat/notes.jpg", b"Dear diary, this is not a JPEG.\n" * 4), "error",
         ("cat/notes.jpg", "not an image"), "data"),
    Case("zero_byte_file", folder_with("cat/empty.png", b""), "error", ("cat/empty.png", "empty file"), "data"),
    Case("decompression_bomb", folder_with("dog/bomb.png", huge_png_header()), "error",
         ("dog/bomb.png", "too many pixels", "MP limit"), "data"),
    # image modes: converted to RGB, the dataset loads
    *[Case(f"mode_{m.replace(';', '')}", _modes(m), "loads", ("of 7 labels differ",), page="data")
      for m in ("L", "RGBA", "P", "I;16", "CMYK")],
    # folders
    Case("empty_folder", _folder({}), "error", ("no images found",), "data"),
    Case("one_class", _folder({"cat": 5}), "error", ("only one class", "cat"), "data"),
    Case("one_image_per_class", _folder({"cat": 1, "dog": 1}), "error", ("at least 2 images", "cat (1)"), "data"),
    # zips
    Case("zip_dotdot", _zip({"../../../evil.png": png_bytes()}), "error", ("upload.zip", "outside"), "data"),
    Case("zip_absolute", _zip_absolute, "error", ("upload.zip", "absolute path"), "data"),
    Case("zip_symlink", _zip(symlink="set/cat/link.png"), "error", ("set/cat/link.png", "symbolic link"), "data"),
    Case("zip_bomb", _zip_bomb, "error", ("upload.zip", "zip bomb"), "data"),
    Case("zip_corrupt_member", _zip_corrupt_member, "error", ("set/dog/zz.png", "corrupt"), "data"),
    Case("zip_nested", _zip_nested, "error", ("inner.zip", "unzip it first"), "data"),
    Case("zip_not_a_zip", _not_a_zip, "error", ("upload.zip", "not a valid zip"), "data"),
    # CSV manifests
    Case("csv_unknown_class", _csv_unknown_class, "error", ("zebra", "unknown class"), "data"),
    Case("csv_missing_file", _csv(lambda f: plain_rows(f) + ["img/missing.png,cat"]), "error",
         ("img/missing.png", "not found"), "data"),
    Case("csv_duplicate_ids", _csv(lambda f: plain_rows(f) + [f"{f[0]},dog"]), "error",
         ("img/0.png", "listed twice"), "data"),
    Case("csv_escaping_path", _csv(lambda f: plain_rows(f) + ["../outside.png,cat"]), "error",
         ("../outside.png", "outside the CSV"), "data"),
    Case("csv_bom", _csv(plain_rows, bom=True), "loads", ("of 6 labels differ",), page="data"),
    Case("csv_crlf", _csv(plain_rows, crlf=True), "loads", ("of 6 labels differ",), page="data"),
    Case("csv_commas_in_paths", _csv(lambda f: [f'"{p}",{CLASSES[i % 2]}' for i, p in enumerate(f)],
                                     files=[f"img/shot {i}, take {i}.png" for i in range(8)], bom=True, crlf=True),
         "loads", ("of 6 labels differ",), page="data"),
    # noise settings (no page widget can produce them)
    Case("rate_negative", _rate("-0.1"), "error", ("rate=-0.1", "[0, 1)")),
    Case("rate_one", _rate("1"), "error", ("rate=1", "[0, 1)")),
    Case("rate_above_one", _rate("1.5"), "error", ("rate=1.5", "[0, 1)")),
    Case("matrix_negative", _matrix([[1.2, -0.2], [0.0, 1.0]]), "error", ("row 0", "-0.2", ">= 0")),
    Case("matrix_row_sum", _matrix([[1.0, 0.0], [0.3, 0.3]]), "error", ("row 1", "sums to 0.6")),
    # CIFAR-10N label files that try to run code. The folder's classes are not CIFAR-10's: had the file
    # been read after the class check, the message would name the classes instead of refusing the pickle.
    Case("pickle_raw", _pickle("raw"), "error", ("refusing", "os.system"), "data"),
    Case("pickle_torch_zip", _pickle("zip"), "error", ("refusing", "os.system"), "data"),
    # run folders
    Case("run_metrics_cut_mid_row", _run("metrics_mid_row"), "loads", ("labels flagged",), page="runs",
         out_suffix=".csv"),
    Case("run_metrics_cut_mid_header", _run("metrics_mid_header"), "loads", ("labels flagged",), page="runs",
         out_suffix=".csv"),
    Case("run_config_invalid_json", _run("config"), "error", ("config.json", "not valid JSON"), "runs",
         out_suffix=".zip"),
    Case("run_model_other_dataset", _run("model"), "error", (f"{OTHER_K} classes", f"{len(CLASSES)} classes"),
         "runs", out_suffix=".csv", needs_keras=True),
]
