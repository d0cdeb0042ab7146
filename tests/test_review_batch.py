"""ReviewStore batches (the grid view): one transaction, all or none, undo of a whole batch, old databases."""
import sqlite3

import pytest

from noisycore.errors import UserError
from noisycore.review import ReviewStore


def _item(i, decision="accept", **kw):
    return {"item_id": f"img{i}", "index": i, "decision": decision, "previous_label": 0,
            "new_label": None, "proposed_label": 1, "score": 0.1 * i, **kw}


def test_record_batch_then_undo_latest_cancels_the_whole_batch(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    store.record(item_id="img9", index=9, decision="keep", previous_label=0, new_label=None, reviewer="ann")
    ids = store.record_batch([_item(0), _item(1), _item(2, "keep")], reviewer="ann")
    assert len(ids) == 3
    assert store.tally() == {"accepted": 2, "kept": 2, "relabelled": 0, "excluded": 0, "reviewed": 4}
    assert store.decision_of("img1")["new_label"] == 1                    # accept took the proposal

    bob = store.record(item_id="img5", index=5, decision="exclude", previous_label=0, new_label=None,
                       reviewer="bob")
    undone = store.undo_latest(reviewer="ann")                           # ann's batch, not bob's exclude
    assert [u["item_id"] for u in undone] == ["img0", "img1", "img2"]
    assert [u["id"] for u in undone] == ids
    assert store.decision_of("img0") is None and store.decision_of("img5")["id"] == bob
    assert store.tally()["reviewed"] == 2                                  # img9 and img5 stay

    assert [u["item_id"] for u in store.undo_latest(reviewer="ann")] == ["img9"]   # a single decision
    assert store.undo_latest(reviewer="ann") == []
    history = store.history()
    assert (history["decision"] == "undo").sum() == 4                      # nothing deleted


def test_record_batch_is_all_or_none(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    with pytest.raises(UserError, match="decision='maybe'"):
        store.record_batch([_item(0), _item(1, "maybe")], reviewer="ann")
    assert store.history().empty
    assert store.record_batch([], reviewer="ann") == []


def test_undo_of_one_item_of_a_batch_leaves_the_others(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    store.record_batch([_item(0), _item(1)], reviewer="ann")
    store.undo(reviewer="ann", item_id="img1")
    assert store.decision_of("img0")["decision"] == "accept" and store.decision_of("img1") is None
    assert [u["item_id"] for u in store.undo_latest(reviewer="ann")] == ["img0"]


def test_a_database_of_an_earlier_version_gains_the_batch_column(tmp_path):
    path = tmp_path / "review.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL,
        item_id TEXT NOT NULL, idx INTEGER NOT NULL, decision TEXT NOT NULL, previous_label INTEGER,
        new_label INTEGER, proposed_label INTEGER, score REAL, reviewer TEXT NOT NULL, undoes INTEGER);
        INSERT INTO decisions (time, item_id, idx, decision, previous_label, new_label, reviewer)
        VALUES ('2026-01-01T00:00:00+00:00', 'old', 0, 'keep', 0, 0, 'ann');""")
    con.close()
    store = ReviewStore(path)
    assert store.decision_of("old")["decision"] == "keep"
    store.record_batch([_item(0)], reviewer="ann")
    assert [u["item_id"] for u in store.undo_latest(reviewer="ann")] == ["img0"]
    assert [u["item_id"] for u in store.undo_latest(reviewer="ann")] == ["old"]
