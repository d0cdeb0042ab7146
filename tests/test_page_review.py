"""AppTest runs of the Review page on a tiny real run: accept / keep / relabel / undo, resume after a refresh."""
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

pytest.importorskip("keras")

from noisycore import detect  # noqa: E402
from noisycore.config import DataConfig, NoiseConfig, TrainConfig  # noqa: E402
from noisycore.review import ReviewStore  # noqa: E402
from helpers import quadrant_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-epoch run on 192 small images of 4 classes with 25% symmetric noise; in-sample detection; features."""
    from noisycore import train

    home = tmp_path_factory.mktemp("review-home")
    folder = quadrant_folder(home / "quadrants", n_per_class=60)
    old = {k: os.environ.get(k) for k in ("NOISYLAB_HOME", "NOISYLAB_RUNS")}
    os.environ.update(NOISYLAB_HOME=str(home), NOISYLAB_RUNS=str(home / "runs"))
    try:
        config = TrainConfig(data=DataConfig(source=str(folder), image_size=16, test_fraction=0.2),
                             noise=NoiseConfig(model="symmetric", rate=0.25, seed=1), batchnorm=False,
                             dropout=0.0, epochs=3, batch_size=32, learning_rate=3e-3, lr_schedule="constant",
                             early_stopping_patience=0, val_fraction=0.15)
        run = home / "runs" / "20260101-000000-tiny"
        train.run(config, run)
        detect.detect_all(run, source="in_sample")
        detect.compute_features(run)
        yield run
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture
def app(run_dir, monkeypatch):
    monkeypatch.setenv("NOISYLAB_HOME", str(run_dir.parents[1]))
    monkeypatch.setenv("NOISYLAB_RUNS", str(run_dir.parent))

    def make():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.switch_page("app_pages/review.py").run()
        assert not at.exception, at.exception
        return at
    return make


def _caption_item(at) -> str:
    """The id of the item on screen (from 'Item i of n · `id` · ...')."""
    text = next(c.value for c in at.caption if c.value.startswith("Item "))
    return text.split("`")[1]


def _click(at, key):
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


@pytest.mark.slow
def test_review_page_accept_keep_relabel_undo_and_resume(app, run_dir):
    at = app()
    store = ReviewStore.for_run(run_dir)
    store_before = len(store.history())
    issues = detect.load_issues(run_dir, "confident_learning")
    queue = issues[issues["is_label_issue"]]["id"].tolist()
    assert len(queue) >= 5, "the tiny run must flag a handful of labels"
    assert _caption_item(at) == queue[0]                         # most suspicious first
    assert at.text_input(key="reviewer").value == "reviewer"
    classes = list(detect.read_run_labels(run_dir).class_names)

    _click(at, "review.accept")                                  # A: accept the proposal, then the next item
    row0 = issues.set_index("id").loc[queue[0]]
    first = store.decision_of(queue[0])
    assert first["decision"] == "accept" and first["new_label"] == classes.index(row0["proposed_label"])
    assert _caption_item(at) == queue[1]

    _click(at, "review.keep")                                    # K: keep the given label
    assert store.decision_of(queue[1])["decision"] == "keep"
    assert _caption_item(at) == queue[2]

    given2 = classes.index(issues.set_index("id").loc[queue[2], "given_label"])
    target = 3 if given2 != 3 else 2                             # a class other than the given one
    _click(at, f"review.class{target}")                          # digit: relabel directly
    third = store.decision_of(queue[2])
    assert third["decision"] == "relabel" and third["new_label"] == target
    assert _caption_item(at) == queue[3]

    _click(at, "review.undo")                                    # U: cancel the relabel (a new row)
    assert store.decision_of(queue[2]) is None
    assert _caption_item(at) == queue[2]
    history = store.history()
    assert len(history) == store_before + 4 and history["decision"].iloc[-1] == "undo"
    assert store.tally() == {"accepted": 1, "kept": 1, "relabelled": 0, "excluded": 0, "reviewed": 2}

    # a refresh (a new session): resumes at the first unreviewed item, every decision intact
    again = app()
    assert _caption_item(again) == queue[2]
    assert [m.value for m in again.metric][:4] == ["1", "1", "0", "0"]
    _click(again, "review.exclude")                              # X
    assert store.decision_of(queue[2])["decision"] == "exclude"
    _click(again, "review.prev")                                 # Left goes back to the excluded item
    assert _caption_item(again) == queue[2]


@pytest.mark.slow
def test_review_page_teaching_mode_and_filters(app, run_dir):
    at = app()
    at.toggle(key="review.reveal").set_value(True).run()
    assert not at.exception, at.exception
    assert any("Your accuracy" == m.label for m in at.metric)
    assert any("given label was" in x.value for x in list(at.error) + list(at.success))
    at.selectbox(key="review.state").set_value("unreviewed").run()
    assert not at.exception, at.exception
    at.selectbox(key="review.detector").set_value("normalized_margin").run()
    assert not at.exception, at.exception
    assert at.get("vega_lite_chart"), "the precision-recall chart and the top-5 chart are drawn"


def test_review_page_without_runs_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISYLAB_RUNS", str(tmp_path / "empty"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/review.py").run()
    assert not at.exception
    assert any("No finished runs yet" in i.value for i in at.info)
