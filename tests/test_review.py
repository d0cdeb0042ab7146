"""Tests for noisycore.review: decision log semantics, undo, resume, durability under SIGKILL, exports."""
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from noisycore.errors import DataError, UserError
from noisycore.corrections import export_csv, export_folder, export_manifest, final_labels
from noisycore.review import REVIEW_DB_NAME, ReviewStore

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["cat", "dog", "owl"]
IDS = ["cat/a.png", "cat/b.png", "dog/c.png", "owl/d.png", "owl/e.png"]
GIVEN = np.array([0, 0, 1, 2, 2])


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISYLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NOISYLAB_RUNS", str(tmp_path / "runs"))


@pytest.fixture
def store(tmp_path):
    return ReviewStore.for_run(tmp_path / "runs" / "run1")


def _decide(store, i, decision, *, reviewer="ann", new=None, proposed=None, score=None):
    return store.record(item_id=IDS[i], index=i, decision=decision, previous_label=int(GIVEN[i]),
                        new_label=new, reviewer=reviewer, proposed_label=proposed, score=score)


def _reviewed(store):
    """A hand-made review: a accepted -> dog, b kept, c relabelled -> owl, d excluded, e untouched."""
    _decide(store, 0, "accept", proposed=1, score=0.1)
    _decide(store, 1, "keep", score=0.4)
    _decide(store, 2, "relabel", new=2, score=0.2)
    _decide(store, 3, "exclude", score=0.05)


# ----------------------------------------------------------------------------- log semantics

def test_store_uses_wal_and_lives_in_the_run_folder(store, tmp_path):
    assert store.path == tmp_path / "runs" / "run1" / REVIEW_DB_NAME and store.path.exists()
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_record_latest_and_tally_by_hand(store):
    ids = [_decide(store, 0, "accept", proposed=1, score=0.1), _decide(store, 1, "keep"),
           _decide(store, 2, "relabel", new=2), _decide(store, 3, "exclude"),
           _decide(store, 0, "relabel", new=2)]  # a second decision on item 0 supersedes the first
    assert ids == [1, 2, 3, 4, 5]
    latest = store.latest()
    assert latest["item_id"].tolist() == [IDS[1], IDS[2], IDS[3], IDS[0]]
    assert latest["decision"].tolist() == ["keep", "relabel", "exclude", "relabel"]
    assert latest["new_label"].tolist() == [0, 2, pd.NA, 2]
    assert latest["index"].tolist() == [1, 2, 3, 0]
    assert store.tally() == {"accepted": 0, "kept": 1, "relabelled": 2, "excluded": 1, "reviewed": 4}
    assert len(store.history()) == 5
    first = store.history().iloc[0]
    assert (first["new_label"], first["proposed_label"], first["score"]) == (1, 1, 0.1)


def test_undo_appends_a_row_and_restores_the_previous_decision(store):
    _decide(store, 0, "keep")
    _decide(store, 0, "accept", proposed=1)
    undone = store.undo(reviewer="ann")
    assert (undone["id"], undone["decision"], undone["item_id"]) == (2, "accept", IDS[0])
    assert undone["undo_id"] == 3
    assert store.decision_of(IDS[0])["decision"] == "keep"  # the earlier decision is effective again
    assert store.undo(reviewer="ann")["id"] == 1
    assert store.decision_of(IDS[0]) is None and store.tally()["reviewed"] == 0
    assert store.undo(reviewer="ann") is None  # nothing left to undo
    history = store.history()
    assert history["decision"].tolist() == ["keep", "accept", "undo", "undo"]  # nothing deleted
    assert history["undoes"].tolist() == [pd.NA, pd.NA, 2, 1]


def test_two_reviewers_do_not_overwrite_each_other(store):
    _decide(store, 0, "keep", reviewer="ann")
    _decide(store, 1, "exclude", reviewer="bob")
    _decide(store, 2, "relabel", new=0, reviewer="ann")
    _decide(store, 0, "accept", proposed=1, reviewer="bob")  # bob's later decision on item 0 wins
    latest = store.latest().set_index("item_id")
    assert latest.loc[IDS[0], "reviewer"] == "bob" and latest.loc[IDS[0], "decision"] == "accept"
    # ann's undo cancels ann's latest decision (item 2), never bob's
    assert store.undo(reviewer="ann")["item_id"] == IDS[2]
    assert store.decision_of(IDS[1])["reviewer"] == "bob"
    assert store.undo(reviewer="ann")["id"] == 1  # ann's keep on item 0, already superseded by bob
    assert store.decision_of(IDS[0])["decision"] == "accept"
    undone = store.undo(reviewer="ann", item_id=IDS[0])  # undo of an item: its effective decision
    assert undone["reviewer"] == "bob" and store.history()["reviewer"].iloc[-1] == "ann"
    assert store.decision_of(IDS[0]) is None
    assert store.tally() == {"accepted": 0, "kept": 0, "relabelled": 0, "excluded": 1, "reviewed": 1}


def test_two_tabs_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "review.sqlite"
    tabs = [ReviewStore(path), ReviewStore(path)]  # two objects, like two browser sessions

    def work(n):
        for i in range(15):
            tabs[n].record(item_id=f"t{n}-{i}", index=i, decision="keep", previous_label=0,
                           new_label=None, reviewer=f"r{n}")

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ReviewStore(path).tally()["reviewed"] == 30


def test_resume_after_reopening(tmp_path):
    path = tmp_path / "review.sqlite"
    first = ReviewStore(path)
    queue = [IDS[3], IDS[0], IDS[4], IDS[1]]
    assert first.first_unreviewed(queue) == 0
    _decide(first, 3, "exclude")
    _decide(first, 0, "keep")
    _decide(first, 1, "keep")  # out of queue order: position 2 is still the first gap
    again = ReviewStore(path)
    assert again.first_unreviewed(queue) == 2
    assert again.tally()["reviewed"] == 3
    _decide(again, 4, "keep")
    assert again.first_unreviewed(queue) == 4 == len(queue)
    again.undo(reviewer="ann", item_id=IDS[0])
    assert ReviewStore(path).first_unreviewed(queue) == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"decision": "maybe"}, "decision='maybe' is not valid; choose one of: accept, keep"),
    ({"decision": "undo"}, "use undo"),
    ({"decision": "relabel", "new_label": None}, "new_label=None must be a class index"),
    ({"decision": "relabel", "new_label": -1}, "new_label=-1"),
    ({"decision": "accept", "new_label": None}, "accept needs proposed_label"),
    ({"decision": "keep", "new_label": 2}, "keep means new_label = previous_label"),
    ({"decision": "exclude", "new_label": 1}, "exclude takes no new_label"),
    ({"decision": "keep", "reviewer": " "}, "reviewer=' ' must be a non-empty string"),
    ({"decision": "keep", "item_id": ""}, "item_id='' must be"),
])
def test_bad_decisions_are_refused_and_change_nothing(store, kwargs, match):
    args = dict(item_id="x", index=0, previous_label=0, new_label=None, reviewer="ann")
    with pytest.raises(UserError, match=match):
        store.record(**{**args, **kwargs})
    assert len(store.history()) == 0


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    bad = tmp_path / "review.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="not a usable review database"):
        ReviewStore(bad)


# ----------------------------------------------------------------------------- durability

WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from noisycore.review import ReviewStore
store = ReviewStore(sys.argv[1])
for i in range(100000):  # bounded; the test kills it long before
    row = store.record(item_id=f"item{i}", index=i, decision="relabel", previous_label=0,
                       new_label=i % 7 + 1, reviewer="writer", score=i / 10)
    print(row, flush=True)
"""


def test_confirmed_decisions_survive_sigkill(tmp_path):
    path = tmp_path / "review.sqlite"
    ReviewStore(path)  # schema first, so the killed writer starts writing at once
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(ROOT)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    confirmed = []
    try:
        for line in proc.stdout:
            confirmed.append(int(line))
            if len(confirmed) == 25:
                os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it is writing the next one now
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert len(confirmed) == 25, proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    history = ReviewStore(path).history().set_index("id")
    assert set(confirmed) <= set(history.index)
    for row_id in confirmed:  # each confirmed row is there with exactly what was written
        i = row_id - 1
        row = history.loc[row_id]
        assert (row["item_id"], row["new_label"], row["score"]) == (f"item{i}", i % 7 + 1, i / 10)


# ----------------------------------------------------------------------------- applying and exporting

def test_final_labels_apply_effective_decisions(store):
    _reviewed(store)
    final, excluded, decision = final_labels(GIVEN, IDS, store)
    assert final.tolist() == [1, 0, 2, 2, 2]  # excluded item 3 keeps its given label in the array
    assert excluded.tolist() == [False, False, False, True, False]
    assert decision.tolist() == ["accept", "keep", "relabel", "exclude", "unreviewed"]


def test_final_labels_refuse_decisions_about_unknown_items(store):
    store.record(item_id="elsewhere.png", index=0, decision="keep", previous_label=0,
                 new_label=None, reviewer="ann")
    with pytest.raises(DataError, match="'elsewhere.png'"):
        final_labels(GIVEN, IDS, store)


def test_export_csv_round_trip(store, tmp_path):
    _reviewed(store)
    path = export_csv(tmp_path / "out" / "reviewed.csv", ids=IDS, given_labels=GIVEN,
                      class_names=CLASSES, store=store)
    back = pd.read_csv(path, keep_default_na=False)
    assert list(back.columns) == ["id", "given_label", "final_label", "decision", "score", "reviewer"]
    assert back["id"].tolist() == IDS
    assert back["given_label"].tolist() == ["cat", "cat", "dog", "owl", "owl"]
    assert back["final_label"].tolist() == ["dog", "cat", "owl", "", "owl"]
    assert back["decision"].tolist() == ["accept", "keep", "relabel", "exclude", "unreviewed"]
    assert back["score"].tolist() == ["0.1", "0.4", "0.2", "0.05", ""]  # stored scores; none for e
    dropped = export_csv(tmp_path / "dropped.csv", ids=IDS, given_labels=GIVEN, class_names=CLASSES,
                         store=store, scores=[0.9, 0.8, 0.7, 0.6, 0.5], drop_excluded=True)
    back = pd.read_csv(dropped)
    assert back["id"].tolist() == [IDS[0], IDS[1], IDS[2], IDS[4]]
    assert back["score"].tolist() == [0.9, 0.8, 0.7, 0.5]  # scores passed in win over stored ones
    assert not list(tmp_path.glob("**/*.tmp"))


def test_export_manifest_is_path_label(store, tmp_path):
    _reviewed(store)
    path = export_manifest(tmp_path / "labels.csv", ids=IDS, given_labels=GIVEN,
                           class_names=CLASSES, store=store)
    back = pd.read_csv(path)
    assert list(back.columns) == ["path", "label"]
    assert back.values.tolist() == [[IDS[0], "dog"], [IDS[1], "cat"], [IDS[2], "owl"], [IDS[4], "owl"]]


def test_export_manifest_round_trips_through_the_csv_loader(store, tmp_path):
    datasets = pytest.importorskip("noisycore.datasets")
    rng = np.random.default_rng(0)
    ids = [f"{CLASSES[i % 3]}/img{i:02d}.png" for i in range(30)]
    given = np.array([i % 3 for i in range(30)])
    root = tmp_path / "images"
    for name in ids:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name)
    for i in range(6):  # relabel six images to the next class, exclude two
        store.record(item_id=ids[i], index=i, decision="relabel", previous_label=int(given[i]),
                     new_label=int((given[i] + 1) % 3), reviewer="ann")
    for i in (6, 7):
        store.record(item_id=ids[i], index=i, decision="exclude", previous_label=int(given[i]),
                     new_label=None, reviewer="ann")
    manifest = export_manifest(root / "reviewed.csv", ids=ids, given_labels=given,
                               class_names=CLASSES, store=store)
    ds = datasets.load_csv_manifest(manifest, class_names=CLASSES)
    loaded = dict(zip(np.r_[ds.ids_train, ds.ids_test], np.r_[ds.y_train, ds.y_test]))
    final, excluded, _ = final_labels(given, ids, store)
    assert loaded == {ids[i]: final[i] for i in range(30) if not excluded[i]}


def test_export_folder_zip_layout(store, tmp_path):
    _reviewed(store)
    images = np.stack([np.full((4, 4, 3), 40 * i, dtype=np.uint8) for i in range(5)])
    ids = IDS[:4] + ["owl/a.png"]  # same file name as item 0 ("cat/a.png", accepted as dog)
    store.record(item_id="owl/a.png", index=4, decision="relabel", previous_label=2, new_label=1,
                 reviewer="ann")  # relabelled dog too: two "a" in dog/, the second becomes a-2.png
    path = export_folder(tmp_path / "reviewed.zip", images=images, ids=ids, given_labels=GIVEN,
                         class_names=CLASSES, store=store)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert sorted(names) == ["cat/b.png", "dog/a-2.png", "dog/a.png", "owl/c.png"]  # d excluded
        pixels = np.asarray(Image.open(io.BytesIO(zf.read("owl/c.png"))))
    assert pixels.shape == (4, 4, 3) and (pixels == 80).all()


def test_export_folder_checks_images(store, tmp_path):
    with pytest.raises(DataError, match="images must be uint8"):
        export_folder(tmp_path / "x.zip", images=np.zeros((5, 4, 4, 3), dtype=np.float32), ids=IDS,
                      given_labels=GIVEN, class_names=CLASSES, store=store)
    assert not (tmp_path / "x.zip").exists()
