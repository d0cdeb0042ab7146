"""noisycore.util: the helpers every module shares (atomic writes, splits, margins, checks, formatting)."""
import json

import numpy as np
import pandas as pd
import pytest

from noisycore import util
from noisycore.errors import DataError, UserError


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_write_text_replaces_whole_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    util.write_json(path, {"x": np.int64(3), "arr": np.arange(2), "f": np.float32(0.5)})
    assert json.loads(path.read_text()) == {"x": 3, "arr": [0, 1], "f": 0.5}
    util.atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("old")

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        util.atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]


def test_csv_npy_npz_round_trip(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "label": [1, 2]})
    util.write_csv(tmp_path / "t.csv", frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
    util.save_npy(tmp_path / "m.npy", np.eye(2, dtype=np.float16))
    assert np.load(tmp_path / "m.npy").tolist() == [[1, 0], [0, 1]]
    assert not (tmp_path / "m.npy.npy").exists()
    util.save_npz(tmp_path / "p.npz", ids=np.array(["x", "y"]), probs=np.ones((2, 3)))
    with np.load(tmp_path / "p.npz", allow_pickle=False) as z:
        assert z["ids"].tolist() == ["x", "y"] and z["probs"].shape == (2, 3)


def test_atomic_directory_is_whole_or_absent(tmp_path):
    dest = tmp_path / "imports" / "abc"

    def fill(tmp):
        (tmp / "cat").mkdir()
        (tmp / "cat" / "1.png").write_bytes(b"x")

    assert util.atomic_directory(dest, fill) == dest
    assert (dest / "cat" / "1.png").read_bytes() == b"x"

    def fails(tmp):
        (tmp / "half").write_text("x")
        raise ValueError("bad member")

    other = tmp_path / "imports" / "def"
    with pytest.raises(ValueError, match="bad member"):
        util.atomic_directory(other, fails)
    assert sorted(p.name for p in (tmp_path / "imports").iterdir()) == ["abc"]


def test_atomic_directory_shared_keeps_what_another_process_finished_first(tmp_path):
    """Two processes importing the same zip: the second rename finds the folder complete. Without
    exist_ok that is an error (as before), with it the first copy is kept and the second discarded."""
    dest = tmp_path / "imports" / "abc"

    def fill_racing(tmp):
        (tmp / "mine.txt").write_text("second")
        if not dest.exists():    # the other process renames its complete copy while this one fills
            dest.mkdir()
            (dest / "theirs.txt").write_text("first")

    with pytest.raises(OSError):
        util.atomic_directory(dest, fill_racing)
    assert [p.name for p in dest.iterdir()] == ["theirs.txt"]
    assert util.atomic_directory(dest, fill_racing, exist_ok=True) == dest
    assert [p.name for p in dest.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in (tmp_path / "imports").iterdir()) == ["abc"]   # no partial folder left


# ----------------------------------------------------------------------------- margins and labels
def test_margins_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.5, 0.0]])
    m = util.margins(p, np.array([0, 2, 2]))
    np.testing.assert_allclose(m, [np.log(0.7 / 0.2), np.log(0.6 / 0.3), np.log(1e-12 / 0.5)], rtol=1e-6)
    assert m.dtype == np.float32
    logits = np.array([[[2.0, 0.0, 1.0]], [[0.0, 3.0, 1.0]]])       # two epochs of one example, label 0
    np.testing.assert_allclose(util.score_margins(logits, np.array([0])), [[1.0], [-3.0]])


def test_check_labels_accepts_columns_and_whole_floats_and_names_the_bad_value():
    assert util.check_labels(np.array([[1], [0]]), 2).tolist() == [1, 0]
    assert util.check_labels([0.0, 2.0], 3).dtype == np.int64
    with pytest.raises(DataError, match=r"labels\[1\] = 3 is outside 0..1"):
        util.check_labels([0, 3], 2)
    with pytest.raises(UserError, match="true_labels must be integers"):
        util.check_labels([0.5], 2, "true_labels", error=UserError)
    with pytest.raises(DataError, match="non-empty 1-D"):
        util.check_labels([], 2)


# ----------------------------------------------------------------------------- formatting
@pytest.mark.parametrize("value, kwargs, text", [
    (0.4, {}, "40.0%"), (0.4, {"trim": True}, "40%"), (0.405, {"trim": True}, "40.5%"),
    (0.12345, {"digits": 2}, "12.35%"), (None, {}, "—"), (float("nan"), {"missing": "n/a"}, "n/a"),
    (1.0, {"trim": True}, "100%"),
])
def test_pct(value, kwargs, text):
    assert util.pct(value, **kwargs) == text


def test_flatten_and_int_or_none():
    nested = {"noise": {"rate": 0.4, "matrix": [[1]]}, "loss": "gce", "params": {}}
    assert util.flatten(nested) == {"noise.rate": 0.4, "noise.matrix": [[1]], "loss": "gce", "params": {}}
    assert util.flatten(nested, encode=True)["noise.matrix"] == "[[1]]"
    assert util.flatten(nested, encode=True)["params"] == "{}"
    assert [util.int_or_none(v) for v in ("5", 3.0, None, "x")] == [5, 3, None, None]
