"""AppTest of the teaching comparison on the Curves & compare page (issue 29, item 6), over hand-written run
folders: the button starts a run's twin through the job queue (the test holds the training slot, so nothing
trains), opens Compare on the pair with the memorized curve, and a second click reuses the twin; a finished
pair states its lesson; a run that cannot have a twin says why in one line."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from noisycore import jobs, runs, teaching
from noisycore.config import NoiseConfig, TrainConfig

from helpers import fake_run, metrics_frame, wait_for

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = "20261207-173153-ce-symmetric40"


def quick(**changes) -> TrainConfig:
    return TrainConfig.from_preset("quick", max_train=120, seed=7, val_fraction=0.2,
                                   noise=NoiseConfig(model="symmetric", rate=0.4), **changes)


def curves_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/curves.py").run()
    assert not at.exception, at.exception
    return at


def infos(at) -> str:
    return " ".join(i.value for i in at.info)


def test_the_button_starts_the_twin_once_and_opens_the_pair_on_the_memorized_curve():
    root = Path(os.environ["NOISYLAB_RUNS"])
    scratch = fake_run(root / SCRATCH, quick(), metrics=metrics_frame(memorized=[0.1, 0.3], test_accuracy=[0.6, 0.5]))
    held = jobs.try_lock(root / jobs.LOCK_NAME)   # the twin waits in the queue: nothing trains in this test
    twin = None
    try:
        at = curves_page()
        at.segmented_control(key="view").set_value("Compare").run()
        assert at.multiselect(key="compare.runs").value == [str(scratch)]
        assert at.button(key="compare.twin").label == teaching.BUTTON
        at.button(key="compare.twin").click().run()
        assert not at.exception, at.exception
        made = [p for p in runs.run_dirs(root) if p != scratch]
        assert len(made) == 1, made
        twin = made[0]
        assert twin.name.endswith("-pretrained-173153-ce-symmetric40")
        assert runs.read_config(twin) == teaching.twin_config(quick(), scratch, num_images=120)
        assert runs.read_status(twin)["state"] == "queued"
        # Compare opens on the pair and the memorized curve; the lesson waits for the twin's first epoch
        assert at.segmented_control(key="view").value == "Compare"
        assert at.multiselect(key="compare.runs").value == [str(scratch), str(twin)]
        assert at.selectbox(key="compare.metric").value == "memorized"
        assert "the run on pretrained features has no finished epoch yet" in infos(at)
        # the same button under Curves > Run for the finished run: the twin is reused, not trained again
        at.segmented_control(key="view").set_value("Run").run()
        at.selectbox(key="run.pick").set_value(str(scratch)).run()
        assert any(twin.name in c.value and "nothing is trained again" in c.value for c in at.caption)
        at.button(key="run.twin").click().run()
        assert not at.exception, at.exception
        assert [p for p in runs.run_dirs(root) if p != scratch] == [twin]
        assert at.segmented_control(key="view").value == "Compare"
        assert at.multiselect(key="compare.runs").value == [str(scratch), str(twin)]
    finally:
        if twin is not None:
            jobs.stop(twin)
            wait_for(twin, lambda s: s.get("state") not in runs.ACTIVE_STATES, "stopped", timeout=60)
        held.release()


def test_a_finished_pair_states_its_lesson_and_its_legend_names_the_features():
    root = Path(os.environ["NOISYLAB_RUNS"])
    scratch = fake_run(root / SCRATCH, quick(),
                       metrics=metrics_frame(memorized=[0.10, 0.20, 0.34], test_accuracy=[0.50, 0.62, 0.55]))
    twin = fake_run(root / "20261207-180102-pretrained-173153-ce-symmetric40",
                    teaching.twin_config(quick(), scratch, num_images=120), labels=0,
                    metrics=metrics_frame(memorized=[0.02, 0.04, 0.06], test_accuracy=[0.80, 0.82, 0.81]))
    at = curves_page()
    at.segmented_control(key="view").set_value("Compare").run()
    at.multiselect(key="compare.runs").set_value([str(scratch), str(twin)]).run()
    assert not at.exception, at.exception
    assert ("Wrong labels memorized at the end: 34.0% from scratch (epoch 3), 6.0% on pretrained features (epoch 3); "
            "test accuracy then 55.0% and 81.0% (from scratch it peaked at 62.0% in epoch 2). The losses differ "
            "too: cross-entropy from scratch, GCE (q 0.7) on the features.") in infos(at)
    import json

    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["encoding"]["color"]["scale"]["domain"] == ["from scratch: compact cnn",
                                                            "pretrained features: pretrained head"]
    assert not any(b.key == "compare.twin" for b in at.button)   # the pair is on screen: no button


@pytest.mark.parametrize("case", ["cifar10 missing", "no labels"])
def test_a_run_that_cannot_have_a_twin_says_why_in_one_line(case, monkeypatch):
    import noisycore.datasets

    root = Path(os.environ["NOISYLAB_RUNS"])
    if case == "cifar10 missing":
        monkeypatch.setattr(noisycore.datasets, "cifar10_available", lambda: False)
        run = fake_run(root / SCRATCH, quick(data={"source": "cifar10"}),
                       metrics=metrics_frame(memorized=[0.1], test_accuracy=[0.5]))
        words = "CIFAR-10 is not on this computer: download it on the Data & noise page first."
    else:
        run = fake_run(root / SCRATCH, quick(), labels=0, metrics=metrics_frame(memorized=[0.1], test_accuracy=[0.5]))
        words = f"{SCRATCH} has no labels.csv"
    at = curves_page()
    at.selectbox(key="run.pick").set_value(str(run)).run()
    assert not at.exception, at.exception
    assert words in infos(at) and not any(b.key == "run.twin" for b in at.button)
    at.segmented_control(key="view").set_value("Compare").run()
    assert words in infos(at) and not any(b.key == "compare.twin" for b in at.button)
