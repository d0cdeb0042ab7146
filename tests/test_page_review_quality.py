"""AppTest of the Review page's data-quality lists (issue 29) on a tiny real run of a user's own folder
whose pretrained embeddings and lists are computed in the fixture: the planted copy under another label
and the black image are listed, a keep / exclude lands in review.sqlite (and the export honours it), and
while the background job runs the section shows its progress."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

pytest.importorskip("keras")

from noisycore import corrections, crossval, dataquality, detect, runs  # noqa: E402
from noisycore.review import ReviewStore  # noqa: E402
from helpers import noisylab_home, quality_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("review-quality-home")
    with noisylab_home(home):
        run, planted = quality_run(home)
        detect.detect_all(run, source="in_sample")
        dataquality.compute(run, size=64)          # the embeddings, computed here (the page never loads TF)
        yield run, planted


@pytest.fixture
def app(world, monkeypatch):
    run, _ = world
    monkeypatch.setenv("NOISYLAB_HOME", str(run.parents[1]))
    monkeypatch.setenv("NOISYLAB_RUNS", str(run.parent))

    def make():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.query_params.update(run=run.name)
        at.switch_page("app_pages/review.py").run()
        assert not at.exception, at.exception
        return at
    return make


def _captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def _click(at, key):
    at.button(key=key).click().run()
    assert not at.exception, at.exception


def test_lists_show_the_planted_images_and_decisions_land_in_the_store(app, world):
    run, planted = world
    at = app()
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Near-duplicates"]) >= 2 and int(metrics["Poor images"]) >= 1
    assert "4. Beyond wrong labels: near-duplicates, outliers, poor images" in [s.value for s in at.subheader]
    assert at.segmented_control(key="review.quality.list").value == "near_duplicates"
    assert "group 1 · **" in _captions(at) and "labels differ" in _captions(at)
    # the neighbour strip of the label review now says it uses the pretrained features
    assert any("pretrained on ImageNet" in m.value for m in at.markdown)

    store = ReviewStore.for_run(run)
    first = dataquality.flagged(dataquality.quality_lists(run), "near_duplicates")["id"].tolist()[:2]
    assert set(first) == set(planted["copy"])          # the copy under another label leads the list
    assert store.decision_of(first[0]) is None and store.decision_of(first[1]) is None
    _click(at, "review.quality.tile1")                 # select the second copy, then exclude it
    _click(at, "review.quality.exclude")
    assert store.decision_of(first[1])["decision"] == "exclude"
    assert store.decision_of(first[0]) is None, "only the selected tile is decided"
    assert "excluded" in _captions(at)

    at.segmented_control(key="review.quality.list").set_value("image_quality").run()
    assert not at.exception, at.exception
    assert "too dark" in _captions(at)
    _click(at, "review.quality.keep")                  # nothing selected: every open tile of the page
    black = store.decision_of(planted["black"])
    assert black["decision"] == "keep" and black["new_label"] == black["previous_label"] and black["reviewer"] == "reviewer"

    out = corrections.export(run, fmt="csv_kept", out=run / "exports" / "kept.csv")
    kept = pd.read_csv(out, dtype=str)
    assert first[1] not in set(kept["id"]) and first[0] in set(kept["id"]) and planted["black"] in set(kept["id"])


def test_while_the_lists_are_computed_the_section_shows_progress(app, world):
    run, _ = world
    folder = run / dataquality.QUALITY_DIR
    shutil.move(folder, run / "quality.bak")
    cv_dir = run / crossval.CV_DIR
    cv_dir.mkdir(exist_ok=True)
    try:
        runs.write_status(cv_dir, {"state": "running", "task": "quality", "folds": 0, "pid": os.getpid(),
                                   "step": "embeddings", "done": 64, "total": 256})
        at = app()
        assert at.button(key="review.quality.find") is not None
        texts = [p.proto.text for p in at.get("progress")]
        assert any("64 of 256" in t for t in texts), texts
        assert at.button(key="review.quality_stop") is not None
        runs.write_status(cv_dir, {"state": "failed", "task": "quality", "folds": 0, "error": "disk full"})
        at = app()
        assert any("quality failed: disk full" in e.value for e in at.error)
    finally:
        shutil.rmtree(cv_dir, ignore_errors=True)
        shutil.move(run / "quality.bak", folder)
