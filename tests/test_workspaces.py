"""Workspaces for a classroom (issue 33): owners of runs, label sets and uploads, who sees what, and a queued
run's place and estimated wait."""
import json
import os
from datetime import datetime, timedelta

import pytest

from noisycore import jobs, runs, workspaces
from noisycore.config import DataConfig, TrainConfig
from noisycore.errors import UserError


@pytest.mark.parametrize("name", ["alice", "  Bob  ", "Table 3", "émile.d", "a@school"])
def test_usable_names_are_kept_stripped(name):
    assert workspaces.check_name(name) == name.strip()


@pytest.mark.parametrize("name", ["", "   ", None, 7, "x" * 41, "../bob", "<script>", "-alice", "a/b"])
def test_unusable_names_are_refused_with_the_value_named(name):
    with pytest.raises(UserError, match="workspace name"):
        workspaces.check_name(name)


def test_default_owner_is_the_environment_then_the_os_user(monkeypatch):
    monkeypatch.setenv(workspaces.OWNER_ENV, "teacher")
    assert workspaces.default_owner() == "teacher"
    monkeypatch.delenv(workspaces.OWNER_ENV)
    monkeypatch.setattr(workspaces.getpass, "getuser", lambda: "carol")
    assert workspaces.default_owner() == "carol"
    monkeypatch.setenv(workspaces.OWNER_ENV, "no/slashes")
    with pytest.raises(UserError, match="no/slashes"):
        workspaces.default_owner()


def test_a_run_carries_its_owner_in_status_owner_file_and_the_run_list(tmp_path):
    run = runs.create_run(TrainConfig(), root=tmp_path, name="a", owner=" Alice ")
    assert runs.read_status(run)["owner"] == "Alice"
    assert json.loads((run / workspaces.OWNER_FILE).read_text()) == {"owner": "Alice", "shared": False}
    nobody = runs.create_run(TrainConfig(), root=tmp_path, name="b")
    table = runs.list_runs(tmp_path).set_index("id")
    assert table.loc[run.name, "owner"] == "Alice" and table.isna().loc[nobody.name, "owner"]
    with pytest.raises(UserError, match="workspace name"):
        runs.create_run(TrainConfig(), root=tmp_path, name="c", owner="a/b")
    assert len(runs.run_dirs(tmp_path)) == 2          # the refused run left no folder


def _items(tmp_path):
    """alice's, bob's, the teacher's shared one, the teacher's private one, one nobody owns (oldest last)."""
    out = {}
    for name, owner, shared in [("alice1", "alice", False), ("bob1", "bob", False), ("teach", "teacher", True),
                                ("private", "teacher", False), ("old", None, False), ("alice2", "Alice", False)]:
        folder = tmp_path / name
        folder.mkdir()
        if owner:
            workspaces.write_owner(folder, owner, shared=shared)
        out[name] = folder
    return out


def test_each_person_sees_their_own_first_then_shared_and_ownerless(tmp_path):
    items = _items(tmp_path)
    order = list(items.values())
    names = lambda found: [p.name for p in found]  # noqa: E731
    assert names(workspaces.visible(order, "alice")) == ["alice1", "alice2", "teach", "old"]
    assert names(workspaces.visible(order, "BOB")) == ["bob1", "teach", "old"]
    assert names(workspaces.visible(order, "teacher")) == ["teach", "private", "old"]
    assert names(workspaces.visible(order, None)) == [p.name for p in order]     # no name: everything
    as_dicts = [{"path": str(p)} for p in order]
    assert len(workspaces.visible(as_dicts, "bob", folder=lambda d: d["path"])) == 3


def test_only_the_owner_shares_and_a_refusal_changes_nothing(tmp_path):
    items = _items(tmp_path)
    before = (items["bob1"] / workspaces.OWNER_FILE).read_text()
    with pytest.raises(UserError, match="belongs to bob; only bob"):
        workspaces.set_shared(items["bob1"], True, by="alice")
    assert (items["bob1"] / workspaces.OWNER_FILE).read_text() == before
    workspaces.set_shared(items["bob1"], True, by="Bob")
    assert [p.name for p in workspaces.visible(items.values(), "alice")] == ["alice1", "alice2", "bob1", "teach", "old"]
    workspaces.set_shared(items["bob1"], False, by="bob")
    assert not workspaces.is_shared(items["bob1"])


def test_a_classmates_label_set_name_is_not_overwritten(tmp_path):
    items = _items(tmp_path)
    with pytest.raises(UserError, match="already belongs to bob; choose another name.*alice-bob1"):
        workspaces.check_may_write(items["bob1"], "alice")
    workspaces.check_may_write(items["bob1"], "bob")
    workspaces.check_may_write(items["old"], "alice")          # nobody's: as before workspaces
    workspaces.check_may_write(tmp_path / "new", "alice")


def test_the_same_upload_by_two_people_is_two_uploads_and_never_someone_elses(tmp_path):
    root = tmp_path / "uploads"
    a = workspaces.save_upload(b"zip bytes", "My photos!.zip", root=root, owner="alice")
    b = workspaces.save_upload(b"zip bytes", "My photos!.zip", root=root, owner="bob")
    assert a != b and a.name == b.name == "My photos-.zip" and a.read_bytes() == b"zip bytes"
    assert workspaces.save_upload(b"zip bytes", "My photos!.zip", root=root, owner="ALICE") == a
    assert workspaces.uploads(root, "bob") == [b]
    assert workspaces.uploads(root, "carol") == []
    assert set(workspaces.uploads(root, None)) == {a, b}


def _status(run, **status):
    runs.update_status(run, pid=os.getpid(), **status)   # a live worker: this process


def test_a_queued_run_knows_its_place_and_the_estimated_wait(tmp_path):
    """A finished run of the same images and model took 4, 6 and 5 s per epoch (median 5). Ahead of C: A
    trains (epoch 2 of 4, batch 5 of 10 after 30 s: done 37.5%, so 30 / 0.375 - 30 = 50 s left) and B waits
    with 3 epochs (3 x 5 = 15 s). C is second in the queue, about 65 s to wait."""
    data = DataConfig(source="builtin")
    finished = runs.create_run(TrainConfig(data=data, epochs=3), root=tmp_path, name="done")
    runs.update_status(finished, state="finished")
    (finished / "metrics.csv").write_text("epoch,seconds\n1,4\n2,6\n3,5\n")
    a = runs.create_run(TrainConfig(data=data, epochs=4), root=tmp_path, name="a")
    start = datetime(2026, 1, 1, 10, 0, 0).astimezone()
    _status(a, state="running", epoch=2, epochs=4, batch=5, batches=10, started=start.isoformat())
    status = json.loads((a / "status.json").read_text())
    status["updated"] = (start + timedelta(seconds=30)).isoformat()
    (a / "status.json").write_text(json.dumps(status))
    assert jobs.progress(status) == (0.375, pytest.approx(50.0))
    b = runs.create_run(TrainConfig(data=data, epochs=3), root=tmp_path, name="b")
    _status(b, state="queued")
    c = runs.create_run(TrainConfig(data=data, epochs=3), root=tmp_path, name="c")
    _status(c, state="queued")
    place = jobs.queue_place(c)
    assert (place["place"], place["ahead"], place["unknown"]) == (2, [a, b], 0)
    assert place["wait_seconds"] == pytest.approx(65.0)
    assert jobs.queue_place(b)["place"] == 1 and jobs.queue_place(b)["wait_seconds"] == pytest.approx(50.0)
    other = runs.create_run(TrainConfig(data=data, model="fast_cnn", epochs=3), root=tmp_path, name="d")
    _status(other, state="queued")
    later = runs.create_run(TrainConfig(data=data, epochs=3), root=tmp_path, name="e")
    place = jobs.queue_place(later)      # no finished fast_cnn run: that one has no estimate
    assert place["place"] == 4 and place["unknown"] == 1 and place["wait_seconds"] == pytest.approx(80.0)


@pytest.mark.slow
def test_cli_train_records_the_owner_from_option_or_environment(tmp_path, capsys, monkeypatch):
    from helpers import run_main

    out = tmp_path / "runs"
    bad = run_main(["train", "--owner", "../bob", "--out", str(out)], capsys)
    assert bad.returncode == 2 and "../bob" in bad.stderr and not out.exists()
    monkeypatch.setenv(workspaces.OWNER_ENV, "teacher")
    ok = run_main(["train", "--epochs", "1", "--max-train", "120", "--out", str(out)], capsys)
    assert ok.returncode == 0, ok.stderr
    [run] = runs.run_dirs(out)
    assert workspaces.owner_of(run) == "teacher" == runs.read_status(run)["owner"]
