"""triage: ordering, top-N / threshold selection, precision at N, pairs, grid pages, decision text, run choice."""
from datetime import datetime, timezone

import pandas as pd
import pytest

from noisycore import triage
from noisycore.errors import UserError


def _issues():
    """Six images; flagged first as detect writes them (so NOT in label-quality order)."""
    return pd.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f"],
        "index": [0, 1, 2, 3, 4, 5],
        "given_label": ["cat", "cat", "dog", "cat", "dog", "dog"],
        "proposed_label": ["dog", "dog", "cat", "dog", "dog", "cat"],
        "label_quality": [0.30, 0.10, 0.20, 0.90, 0.80, 0.20],
        "is_label_issue": [True, True, True, False, False, False],
        "is_noisy": [True, False, True, False, False, True],
        "decision": ["unreviewed", "accept", "unreviewed", "unreviewed", "unreviewed", "unreviewed"],
    })


def test_ranked_puts_flagged_first_then_label_quality_ties_by_index():
    """The app's queue is the detector's order (issue 31.5): f (quality 0.20, not flagged) comes after the
    flagged a (0.30), as detectors.rank and the benchmarks order them."""
    assert triage.ranked(_issues())["id"].tolist() == ["b", "c", "a", "f", "e", "d"]
    assert triage.ranked(_issues().drop(columns="is_label_issue"))["id"].tolist() == ["b", "c", "f", "a", "e", "d"]


def test_the_app_queue_is_the_order_detect_writes_and_the_benchmark_scores():
    """detectors.rank (detect's table, benchmarks/own_data.py) and triage.select_queue (the Review page's
    N most suspicious) give one order; confident learning's order differs from self-confidence's
    (it flags by its noise estimate, not by p[given]), normalized margin orders by the margin."""
    import numpy as np
    from noisycore import detectors

    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet(np.ones(3) * 0.6, 300)
    p[np.arange(240), y[:240]] += 2.0   # most labels agree with the model
    p /= p.sum(1, keepdims=True)
    names, ids = ["a", "b", "c"], [f"i{i}" for i in range(300)]
    orders = {}
    for name in ("confident_learning", "self_confidence", "normalized_margin", "blog_threshold"):
        frame = detectors.to_frame(detectors.find_label_issues(y, p, detector=name), ids=ids, labels=y, class_names=names)
        app = triage.select_queue(frame.sample(frac=1, random_state=0), top_n=60)   # any row order in
        assert app["id"].tolist() == frame["id"].head(60).tolist(), name
        orders[name] = app["id"].tolist()
    assert orders["confident_learning"] != orders["self_confidence"]
    assert orders["normalized_margin"] != orders["self_confidence"]


def test_select_queue_top_n_threshold_and_all():
    q = _issues()
    assert triage.select_queue(q, top_n=2)["id"].tolist() == ["b", "c"]
    assert triage.select_queue(q, top_n=0).empty
    assert triage.select_queue(q, top_n=99)["id"].tolist() == ["b", "c", "a", "f", "e", "d"]
    assert triage.select_queue(q, threshold=0.2)["id"].tolist() == ["b", "c", "f"]   # <= is inclusive
    assert len(triage.select_queue(q)) == 6


@pytest.mark.parametrize("kw", [dict(top_n=-1), dict(top_n=1.5), dict(top_n=True), dict(threshold=1.5),
                                dict(threshold="x"), dict(top_n=2, threshold=0.5)])
def test_select_queue_rejects_bad_choices(kw):
    with pytest.raises(UserError):
        triage.select_queue(_issues(), **kw)


def test_threshold_for_selects_the_first_n():
    q = _issues()
    assert triage.threshold_for(q, 2) == 0.20
    assert triage.threshold_for(q, 0) == 0.0
    assert triage.threshold_for(q, 50) == 0.90
    assert triage.threshold_for(q.assign(label_quality=q["label_quality"] + 0.0004), 1, decimals=3) == 0.101
    assert triage.threshold_for(q.assign(label_quality=q["label_quality"] * 0 + 1.7), 1) == 1.0   # clipped
    # the tie at 0.20 selects three rows for n = 2: a threshold never splits a tie
    assert len(triage.select_queue(q, threshold=triage.threshold_for(q, 2))) == 3


def test_precision_at_hand_computed():
    q = _issues()   # wrong labels: a, c, f (3)
    top2 = triage.precision_at(q, top_n=2)             # b (right), c (wrong)
    assert top2 == {"selected": 2, "wrong": 1, "n_wrong": 3, "precision": 0.5, "recall": pytest.approx(1 / 3)}
    top4 = triage.precision_at(q, top_n=4)             # b c f a -> 3 wrong
    assert top4["precision"] == 0.75 and top4["recall"] == 1.0
    thr = triage.precision_at(q, threshold=0.2)        # b c f -> 2 wrong
    assert (thr["selected"], thr["wrong"]) == (3, 2)
    assert triage.precision_at(q, top_n=0)["precision"] is None
    assert triage.precision_at(q.drop(columns="is_noisy"), top_n=2) is None   # truth unknown: no claim


def test_pair_groups_counts_largest_first_and_skips_agreeing_proposals():
    g = triage.pair_groups(_issues())
    assert g.to_dict("records") == [
        {"given_label": "cat", "proposed_label": "dog", "count": 3, "open": 2},   # a, b (accepted), d
        {"given_label": "dog", "proposed_label": "cat", "count": 2, "open": 2},   # c, f
    ]   # e (dog -> dog) is not a pair to triage


def test_grid_pages_and_first_open_page():
    items = pd.DataFrame({"id": list("abcdefg"), "decision": ["accept"] * 3 + ["unreviewed"] * 4})
    assert triage.page_count(7, size=3) == 3 and triage.page_count(0, size=3) == 1
    assert triage.grid_page(items, 1, size=3)["id"].tolist() == ["d", "e", "f"]
    assert triage.grid_page(items, 9, size=3)["id"].tolist() == ["g"]            # clipped to the last page
    assert triage.first_open_page(items, size=3) == 1
    assert triage.first_open_page(items, size=3, start=2) == 2
    done = items.assign(decision="keep")
    assert triage.first_open_page(done, size=3, start=1) == 1                     # nothing open: stay
    wrap = items.assign(decision=["unreviewed"] + ["keep"] * 6)
    assert triage.first_open_page(wrap, size=3, start=1) == 0                     # wraps round


def test_batch_targets_selected_else_every_undecided_tile():
    page = pd.DataFrame({"id": list("abcd"), "decision": ["unreviewed", "keep", "unreviewed", "unreviewed"]})
    assert triage.batch_targets(page, {1, 3})["id"].tolist() == ["b", "d"]       # a decided tile can be re-decided
    assert triage.batch_targets(page, set())["id"].tolist() == ["a", "c", "d"]
    assert triage.batch_targets(page, {7})["id"].tolist() == ["a", "c", "d"]     # off the page: ignored


def test_decision_text():
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    row = {"decision": "relabel", "new_label": 1, "reviewer": "alice", "time": "2026-03-02T10:42:07.123+00:00"}
    names = ["dog", "cat", "bird"]
    assert triage.decision_text(row, names, tz=timezone.utc, now=now) == "Decided: relabelled to cat by alice, 10:42"
    assert triage.decision_text({**row, "decision": "accept"}, names, tz=timezone.utc, now=now) == \
        "Decided: accepted: cat by alice, 10:42"
    assert triage.decision_text({**row, "decision": "exclude", "new_label": pd.NA}, names, tz=timezone.utc,
                                now=datetime(2026, 3, 5, tzinfo=timezone.utc)) == \
        "Decided: excluded by alice, 2026-03-02 10:42"
    with pytest.raises(UserError):
        triage.decision_text({**row, "decision": "undo"}, names)


def test_choose_run_order_and_notices():
    runs = [{"name": "r3-retrain", "has_detections": False}, {"name": "r2", "has_detections": True},
            {"name": "r1", "has_detections": True}]
    assert triage.choose_run(runs, requested="r1", last="r2") == (runs[2], None)      # the address wins
    assert triage.choose_run(runs, last="r1", selected="r2")[0]["name"] == "r1"        # then the session's
    assert triage.choose_run(runs, selected="r1")[0]["name"] == "r1"       # then the run chosen on Train/Curves
    assert triage.choose_run(runs, selected="r4-running")[0]["name"] == "r2"          # ... if reviewable
    assert triage.choose_run(runs)[0]["name"] == "r2"                # then the newest run with detections
    assert triage.choose_run(runs[:1])[0]["name"] == "r3-retrain"                      # then the newest
    assert triage.choose_run([]) == (None, None)
    run, note = triage.choose_run(runs, requested="../../etc")
    assert run["name"] == "r2" and "“../../etc”" in note and "not a run name" in note and "showing r2" in note
    _, note = triage.choose_run(runs, requested="nothere", last="r1")
    assert "no run of that name" in note and "showing r1" in note
    _, note = triage.choose_run(runs, requested="r4", others={"r4": "running"})
    assert "it is running" in note
    assert "no run can be reviewed yet" in triage.choose_run([], requested="x")[1]


def test_proposal_note_says_why_a_proposal_is_not_the_top_class():
    """Issue 33, finding 2: an item whose proposal (from an older detection) is not the top class says so."""
    names = ["cat", "dog", "truck"]
    assert triage.proposal_note([0.1, 0.3, 0.6], 2, names) is None
    note = triage.proposal_note([0.0, 0.41, 0.59], 1, names)
    assert "**truck** (59%)" in note and "Find label issues" in note
