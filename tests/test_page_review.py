"""AppTest runs of the Review page on a tiny real run: accept / keep / relabel / undo, resume after a refresh."""
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

pytest.importorskip("keras")

from noisycore import detect, triage  # noqa: E402
from noisycore.detectors import estimate_noise  # noqa: E402
from noisycore.config import DataConfig, NoiseConfig, TrainConfig  # noqa: E402
from noisycore.review import ReviewStore  # noqa: E402
from helpers import quadrant_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Two 3-epoch runs on 192 small images of 4 classes, in-sample detection: the newest one with 25%
    injected symmetric noise (truth known, with features), an older one on a CSV manifest of the same
    images with 24 labels planted in the wrong class and no true-label column (truth unknown)."""
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
        manifest = folder / "own.csv"   # the user's own labels: 6 per class given as the next class
        rows = [f"q{c}/{i:03d}.png,q{(c + 1) % 4 if i < 6 else c}" for c in range(4) for i in range(60)]
        manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
        own = home / "runs" / "20251231-000000-own"
        train.run(config.replace(data=DataConfig(source=str(manifest), image_size=16, test_fraction=0.2),
                                 noise=NoiseConfig(model="none")), own)
        detect.detect_all(own, source="in_sample")
        yield run
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def own_dir(run_dir):
    return run_dir.parent / "20251231-000000-own"


@pytest.fixture
def app(run_dir, monkeypatch):
    monkeypatch.setenv("NOISYLAB_HOME", str(run_dir.parents[1]))
    monkeypatch.setenv("NOISYLAB_RUNS", str(run_dir.parent))

    def make(**query):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.query_params.update(query)
        at.switch_page("app_pages/review.py").run()
        assert not at.exception, at.exception
        return at
    return make


def _texts(at) -> str:
    """Every piece of text the page shows (markdown, captions, notices, labels, metrics, table headers)."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "success", "error", "subheader")
             for e in getattr(at, kind)]
    parts += [e.label for kind in ("toggle", "metric", "selectbox", "radio", "button") for e in getattr(at, kind)]
    parts += [str(m.value) for m in at.metric]
    parts += [" ".join(map(str, d.value.columns)) for d in at.dataframe]
    return "\n".join(parts)


def _queue(run_dir):
    """The default queue: the N labels of lowest label quality, N = confident learning's estimate."""
    info = detect.read_run_labels(run_dir)
    n = estimate_noise(info.labels, detect.pred_probs(run_dir, source="in_sample")).num_issues
    return triage.select_queue(detect.load_issues(run_dir, "confident_learning"), top_n=n), n


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
    issues, _ = _queue(run_dir)
    queue = issues["id"].tolist()
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
    tally = {m.label: m.value for m in again.metric}
    assert [tally[k] for k in ("Accepted", "Kept", "Relabelled", "Excluded")] == ["1", "1", "0", "0"]
    _click(again, "review.exclude")                              # X
    assert store.decision_of(queue[2])["decision"] == "exclude"
    _click(again, "review.prev")                                 # Left goes back to the excluded item
    assert _caption_item(again) == queue[2]
    assert any(i.value.startswith("Decided: excluded by reviewer, ") for i in again.info)   # a revisit says so
    _click(again, "review.prev")
    assert any(i.value.startswith(f"Decided: kept: {issues['given_label'][1]} by reviewer") for i in again.info)


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


@pytest.mark.slow
def test_review_page_truth_known_scores_the_top_n(app, run_dir):
    at = app()
    queue, n = _queue(run_dir)
    assert at.number_input(key="review.top_n.20260101-000000-tiny.in_sample").value == n   # N: the estimate
    expect = triage.precision_at(detect.load_issues(run_dir, "confident_learning"), top_n=n)
    line = next(m.value for m in at.markdown if m.value.startswith("Confident learning estimates"))
    assert f"**{expect['wrong']}** of these {n} are really wrong" in line
    assert f"precision {expect['precision']:.0%}" in line
    assert "Precision" in " ".join(at.dataframe[0].value.columns) or "precision" in _texts(at)
    assert at.toggle(key="review.reveal") is not None                                  # teaching mode exists
    at.radio(key="review.mode").set_value("threshold").run()
    assert not at.exception, at.exception
    at.number_input(key="review.threshold.20260101-000000-tiny.in_sample.confident_learning").set_value(0.0)
    at.run()
    assert any("Reviewing **0** labels" in m.value for m in at.markdown)
    assert any(x.value.startswith("Nothing selected: raise N or the threshold") for x in at.success)


@pytest.mark.slow
def test_review_page_without_truth_makes_no_claims(app, own_dir):
    at = app(run=own_dir.name)
    assert at.selectbox[0].value == own_dir.name
    text = _texts(at)
    for claim in ("Precision", "precision", "Recall", "recall", "Teaching mode", "Your accuracy", "clean",
                  "really wrong", "true labels are known"):
        assert claim not in text, f"the page claims {claim!r} without known truth"
    assert not [t for t in at.toggle if t.key == "review.reveal"]
    info = detect.read_run_labels(own_dir)
    n = estimate_noise(info.labels, detect.pred_probs(own_dir, source="in_sample")).num_issues
    assert any(m.label.startswith("Estimated wrong labels") and m.value == f"{n} of {len(info.labels)}"
               for m in at.metric)
    assert any("How many labels look wrong?" in e.label for e in at.expander)   # section 2, folded
    assert "Nobody knows the true labels" in text
    assert at.get("vega_lite_chart"), "the estimated noise matrix is drawn"
    assert any(m.value.startswith(f"Confident learning estimates **{n}**") for m in at.markdown)
    assert "Your file, as you took it; the model sees it at 16×16 pixels." in text   # the user's own photo


def test_review_image_is_the_users_file_and_falls_back_to_the_model_input(own_dir):
    """ui.review.review_image: the user's original file (here a 16 px PNG of the CSV manifest's folder),
    enlarged crisply to the frame; when the file is gone, the model's input enlarged the same way."""
    import numpy as np
    from PIL import Image

    from ui.common import upscale
    from ui.review import review_image, run_images

    info = detect.read_run_labels(own_dir)
    idx = 7
    file = own_dir.parents[1] / "quadrants" / info.ids[idx]
    model_input = run_images(str(own_dir))[idx]   # loaded (and cached) while every file is there
    with Image.open(file) as im:
        original = np.asarray(im.convert("RGB").resize((64, 64), Image.NEAREST))
    img, from_file = review_image(str(own_dir), idx, 64)
    assert from_file and img.size == (64, 64) and np.array_equal(np.asarray(img), original)
    saved = file.read_bytes()
    try:
        wide = np.zeros((20, 40, 3), np.uint8)   # a photo of another shape than the model's 16 x 16
        wide[:, :, 1] = 200
        Image.fromarray(wide).save(file, format="PNG")
        img, from_file = review_image(str(own_dir), idx, 64)
        assert from_file and img.size == (64, 32) and (np.asarray(img)[..., 1] == 200).all()   # its aspect kept
        tile, from_file = review_image(str(own_dir), idx, 96, square=True)
        assert from_file and tile.size == (96, 96)   # a grid tile: padded to a square
        file.unlink()
        img, from_file = review_image(str(own_dir), idx, 64)
        assert not from_file and np.array_equal(np.asarray(img), np.asarray(upscale(model_input, 64)))
    finally:
        file.write_bytes(saved)


@pytest.mark.slow
def test_grid_decides_a_batch_with_keys_and_undo_cancels_it_whole(app, own_dir):
    at = app(run=own_dir.name)
    at.segmented_control(key="review.view").set_value("Grid: one pair at a time").run()
    assert not at.exception, at.exception
    store = ReviewStore.for_run(own_dir)
    before = len(store.history())
    pair = at.selectbox(key=f"review.pair.{own_dir.name}").value
    given, proposed = pair.split(" → ")
    queue, _ = _queue(own_dir)
    items = triage.pair_items(queue, given, proposed)["id"].tolist()
    assert items, "the largest pair has thumbnails"
    tiles = [b for b in at.button if (b.key or "").startswith("review.tile")]
    assert len(tiles) == min(len(items), triage.PAGE_SIZE)
    _click(at, "review.tile0")                                              # key 1
    if len(items) > 2:
        _click(at, "review.tile2")                                          # key 3
    assert at.button(key="review.grid.accept").label.endswith(" selected")
    _click(at, "review.grid.accept")                                        # A: accept the selected
    picked = [items[0]] + ([items[2]] if len(items) > 2 else [])
    classes = list(detect.read_run_labels(own_dir).class_names)
    for item in picked:
        d = store.decision_of(item)
        assert d["decision"] == "accept" and d["new_label"] == classes.index(proposed)
    page = items[:triage.PAGE_SIZE]
    rest = [i for i in page if i not in picked]
    _click(at, "review.grid.keep")                                          # K: keep every open one left
    assert all(store.decision_of(i)["decision"] == "keep" for i in rest)
    history = store.history()
    assert len(history) == before + len(page)
    assert history["decision"].tail(len(rest)).eq("keep").all()
    _click(at, "review.undo")                                               # U: the whole keep batch
    assert all(store.decision_of(i) is None for i in rest)
    assert all(store.decision_of(i)["decision"] == "accept" for i in picked)
    again = app(run=own_dir.name)                                           # a reload keeps every decision
    assert [m.value for m in again.metric if m.label == "Accepted"] == [str(len(picked))]


def test_review_page_names_a_bad_run_in_the_address(app, run_dir):
    at = app(run="../../etc")
    warning = " ".join(w.value for w in at.warning)
    assert "“../../etc”" in warning and "not a run name" in warning and run_dir.name in warning
    assert at.selectbox[0].value == run_dir.name                            # the newest run with detections
    at = app(run="20990101-nothere")
    assert "no run of that name" in " ".join(w.value for w in at.warning)
    # no address: no notice about it (a verdict on the network may still warn: 3 epochs on linearly separable quadrants)
    assert not [w for w in app().warning if "“" in w.value]              # (notices quote the address's value)


@pytest.mark.slow
def test_every_proposal_on_screen_is_the_models_top_class(app, run_dir):
    """Issue 33, finding 2: the proposed label is the top class of the probabilities the queue was built
    on (the chart's first bar), for the first items of the queue."""
    import numpy as np

    probs = detect.pred_probs(run_dir, source="in_sample")
    classes = list(detect.read_run_labels(run_dir).class_names)
    at = app()
    for _ in range(4):
        item = _caption_item(at)
        row = detect.load_issues(run_dir, "confident_learning").set_index("id").loc[item]
        top = classes[int(np.argmax(probs[int(row["index"])]))]
        assert f"Proposed label: **{top}**" in _texts(at)
        assert not [c.value for c in at.caption if "not the proposal" in c.value]
        _click(at, "review.next")


@pytest.mark.slow
def test_two_reviewers_disagreements_and_the_summary_of_the_changes(run_dir, tmp_path, monkeypatch):
    """Issue 33, team review: alice accepts the first proposal, bob (in his own session) goes back to it and
    keeps the given label; both sessions list the disagreement, and the summary counts the change in force."""
    import shutil

    root = tmp_path / "runs"
    copy = Path(shutil.copytree(run_dir, root / run_dir.name))   # a run of its own: the module's run stays as it is
    for old in copy.glob("review.sqlite*"):                         # without the other tests' decisions
        old.unlink()
    monkeypatch.setenv("NOISYLAB_HOME", str(tmp_path))
    monkeypatch.setenv("NOISYLAB_RUNS", str(root))

    def session(name):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.query_params.update(user=name)
        at.run()
        at.switch_page("app_pages/review.py").run()
        assert not at.exception, at.exception
        return at

    issues, _ = _queue(copy)
    first = issues.iloc[0]
    alice = session("alice")
    assert alice.text_input(key="reviewer").value == "alice"          # the workspace name reviews
    assert alice.expander[-1].label == "Team review and the summary of the changes"
    _click(alice, "review.accept")
    bob = session("bob")
    assert _caption_item(bob) == issues["id"].iloc[1]                   # his first unreviewed item
    _click(bob, "review.prev")
    _click(bob, "review.keep")
    alice.run()
    for at in (alice, bob):
        team = next(e for e in at.expander if e.label.startswith("Team review"))
        assert team.label == "Team review: 2 reviewers, 1 disagreements"
        split = next(d.value for d in at.dataframe if "decided_now" in d.value.columns)
        assert split[["id", "given_label", "alice", "bob", "decided_now"]].values.tolist() == [
            [first["id"], first["given_label"], f"accepted {first['proposed_label']}", f"kept {first['given_label']}",
             f"kept {first['given_label']} (bob)"]]
    per_class = next(d.value for d in bob.dataframe if "Labels before" in d.value.columns)
    assert (per_class["Labels before"] == per_class["After"]).all()     # bob's keep is in force: nothing moved
    classes = list(detect.read_run_labels(copy).class_names)
    second = issues.iloc[1]
    ReviewStore.for_run(copy).record(item_id=str(second["id"]), index=int(second["index"]), decision="exclude",
                                     previous_label=classes.index(second["given_label"]), new_label=None,
                                     reviewer="alice")
    bob.run()
    per_class = next(d.value for d in bob.dataframe if "Labels before" in d.value.columns).set_index("Class")
    assert per_class["Excluded"].to_dict() == {c: int(c == second["given_label"]) for c in classes}
    assert per_class["After"].sum() == per_class["Labels before"].sum() - 1
    changes = next(d.value for d in bob.dataframe if "Decided by" in d.value.columns)
    assert changes.values.tolist() == [[second["given_label"], "(excluded)", 1, "alice"]]
