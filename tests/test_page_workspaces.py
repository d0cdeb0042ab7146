"""AppTest of workspaces (issue 33): with ?user= each person sees their own label sets and runs first plus
what the teacher shares, never a classmate's; a queued student sees their place and the estimated wait."""
import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from streamlit.testing.v1 import AppTest

from noisycore import detect, runs, workspaces
from noisycore.config import DataConfig, NoiseConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO = "Built-in shapes, 40% symmetric noise"


def _page(page: str, user: str | None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if user:
        at.query_params["user"] = user
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _label_set(home: Path, name: str, owner: str | None, *, shared: bool = False) -> Path:
    from noisycore.datasets import load_dataset
    from noisycore.labelsets import save_label_set
    from noisycore.noise import apply_noise

    data = DataConfig(source="builtin", max_train=40)
    dataset = load_dataset(data)
    out = save_label_set(home / "labels" / name, dataset, apply_noise(dataset, NoiseConfig(model="pair", rate=0.2)),
                         data_config=data)
    if owner:
        workspaces.write_owner(out, owner, shared=shared)
    return out


def _classroom(home: Path) -> dict:
    """alice's label set and running run (epoch 2 of 4 after 30 s: 50 s left), the teacher's shared label
    set and finished run, the teacher's private run, and bob's queued run behind alice's."""
    _label_set(home, "alice-pets", "alice")
    _label_set(home, "teacher-demo", "teacher", shared=True)
    root = home / "runs"
    made = {}
    for name, owner, state in [("teacher-shared", "teacher", "finished"), ("teacher-private", "teacher", "finished"),
                               ("alice-run", "alice", "running"), ("bob-run", "bob", "queued")]:
        run = runs.create_run(TrainConfig(epochs=4), root=root, name=name, owner=owner)
        runs.update_status(run, state=state, pid=os.getpid())          # a live worker: this process
        made[name] = run
    workspaces.set_shared(made["teacher-shared"], True, by="teacher")
    start = datetime.now().astimezone() - timedelta(seconds=30)
    status = dict(runs.read_status(made["alice-run"]), epoch=2, epochs=4, batch=5, batches=10,
                  started=start.isoformat(), updated=(start + timedelta(seconds=30)).isoformat())
    (made["alice-run"] / "status.json").write_text(json.dumps(status))
    return made


def test_each_student_sees_own_and_shared_items_and_the_queue_place(_isolated_home):
    made = _classroom(_isolated_home)
    bob = _page("train", "bob")
    labels = bob.selectbox[0]
    assert labels.value == DEMO                                       # nobody's upload opens by default
    assert labels.options == [DEMO, "teacher-demo (teacher's, shared)"]
    runs_picker = bob.selectbox[-1]
    assert [o.split(" (")[0] for o in runs_picker.options] == [made["bob-run"].name, made["teacher-shared"].name]
    assert runs_picker.value.startswith(made["bob-run"].name)     # bob's own (queued) run is on screen
    bar = bob.get("progress")[0].proto.text
    assert bar.startswith(f"queued: place 1 in the queue, waiting for {made['alice-run'].name} (alice's)"), bar
    assert "estimated wait about 50 s" in bar, bar
    assert not any(made["alice-run"].name in o or made["teacher-private"].name in o for o in runs_picker.options)

    alice = _page("train", "Alice")
    assert alice.selectbox[0].options == [DEMO, "alice-pets", "teacher-demo (teacher's, shared)"]
    assert [o.split(" (")[0] for o in alice.selectbox[-1].options] == [made["alice-run"].name,
                                                                       made["teacher-shared"].name]
    nobody = _page("train", None)                                     # no name: one person, everything
    assert len(nobody.selectbox[-1].options) == 4


def test_the_owner_shares_a_run_with_the_class_from_the_page(_isolated_home):
    made = _classroom(_isolated_home)
    at = _page("train", "teacher")
    at.selectbox[-1].set_value(made["teacher-private"].name).run()
    toggle = at.toggle(key=f"share.run.{made['teacher-private'].name}")
    assert toggle.label == "Share this run with the class" and toggle.value is False
    toggle.set_value(True).run()
    assert not at.exception, at.exception
    assert workspaces.is_shared(made["teacher-private"])
    bob = _page("train", "bob")
    options = bob.selectbox[-1].options
    bob.selectbox[-1].select_index(next(i for i, o in enumerate(options)
                                        if o.startswith(made["teacher-private"].name))).run()
    assert made["teacher-private"].name in str(bob.query_params["run"])
    assert not [t for t in bob.toggle if t.key and t.key.startswith("share.")]   # not bob's to share


def test_a_label_set_saved_in_a_workspace_is_its_own_and_a_classmates_name_is_refused(_isolated_home):
    taken = _label_set(_isolated_home, "pair-set", "alice")
    before = (taken / "labels.csv").read_bytes()
    at = _page("data", "bob")
    name = next(t for t in at.text_input if t.label == "Name of the label set")
    assert name.value.startswith("bob-builtin-")
    at.button[-1].click().run()                                   # "Use these labels"
    assert not at.exception, at.exception
    saved = _isolated_home / "labels" / name.value
    assert workspaces.owner_of(saved) == "bob"
    name = next(t for t in at.text_input if t.label == "Name of the label set")
    name.set_value("pair-set").run()
    at.button[-1].click().run()
    assert any("pair-set already belongs to alice" in e.value for e in at.error)
    assert (taken / "labels.csv").read_bytes() == before and workspaces.owner_of(taken) == "alice"


def test_review_lists_only_own_and_shared_runs_and_reviews_under_the_workspace_name(_isolated_home, tmp_path):
    from hostile import good_folder, tiny_run

    folder = good_folder(tmp_path / "photos")
    root = _isolated_home / "runs"
    root.mkdir(parents=True, exist_ok=True)
    for name, owner in [("20260101-000000-alice", "alice"), ("20260101-000001-bob", "bob")]:
        made = tiny_run(tmp_path / name, folder)
        workspaces.write_owner(made, owner)
        shutil.move(str(made), str(root / name))
    detect.detect_all(root / "20260101-000001-bob", source="in_sample")
    at = _page("review", "bob")
    assert at.selectbox[0].options == ["20260101-000001-bob"]
    assert at.text_input(key="reviewer").value == "bob"


def test_an_earlier_upload_is_offered_only_to_its_owner_and_never_opened_by_default(_isolated_home, tmp_path):
    import io
    import zipfile

    from helpers import quadrant_folder

    folder = quadrant_folder(tmp_path / "pets", n_per_class=6)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for f in sorted(folder.rglob("*.png")):
            z.write(f, f.relative_to(folder))
    uploads = _isolated_home / "uploads"
    alices = workspaces.save_upload(buffer.getvalue(), "alice-pets.zip", root=uploads, owner="alice")
    bobs = workspaces.save_upload(buffer.getvalue(), "bob-pets.zip", root=uploads, owner="bob")
    at = _page("data", "bob")
    at.segmented_control(key="dataset").set_value("upload").run()
    assert not at.exception, at.exception
    earlier = at.selectbox(key="upload.earlier")
    assert earlier.options == ["(none)", "bob-pets.zip"] and earlier.value is None     # alice's is not offered
    assert any("Upload a .zip" in i.value for i in at.info)
    earlier.select_index(1).run()
    assert not at.exception, at.exception
    assert any("**bob-pets**" in c.value for c in at.caption), [c.value for c in at.caption]
    assert alices.exists() and bobs != alices
