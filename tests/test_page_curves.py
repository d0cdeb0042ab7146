"""AppTest runs of the Curves & compare page over real runs and a real sweep on the built-in dataset."""
import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from noisycore import jobs, runs, sweeps
from noisycore.config import NoiseConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FORWARD_RUN = "20260101-000000-forward-pair30"
LIVE_RUN = "20260102-000000-live-no-truth"
KEEP_LAST_RUN = "20260103-000000-keep-last"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A forward-loss run, a 2-cell sweep (both trained in-process) and a hand-written live run without truth."""
    home = tmp_path_factory.mktemp("curves-home")
    root = home / "runs"
    mp = pytest.MonkeyPatch()
    mp.setenv("NOISYLAB_HOME", str(home))
    mp.setenv("NOISYLAB_RUNS", str(root))
    train = pytest.importorskip("noisycore.train")
    base = TrainConfig.from_preset("quick", max_train=120, epochs=2, batch_size=64,
                                   data={"max_test": 100, "image_size": 16})
    train.run(base.replace(loss="forward", noise=NoiseConfig(model="pair", rate=0.3)), root / FORWARD_RUN)
    train.run(base.replace(keep="last", noise=NoiseConfig(model="symmetric", rate=0.2)), root / KEEP_LAST_RUN)
    spec = sweeps.SweepSpec(base=base, noise="symmetric", rates=(0.2, 0.5), losses=("ce",))
    sweeps.work(sweeps.create_sweep(spec, root / "sweep-demo"))
    live = root / LIVE_RUN
    live.mkdir()
    runs.atomic_write_text(live / "config.json", TrainConfig(labels_path="elsewhere/labels.csv").to_json())
    runs.write_status(live, {"state": "running", "pid": os.getpid(), "epoch": 3, "epochs": 20, "batch": 5,
                             "batches": 10, "started": runs.now_iso()})
    (live / "metrics.csv").write_text("epoch,loss,accuracy,train_acc_true,memorized,val_loss,val_accuracy,test_accuracy\n"
                                      "1,2.0,0.30,,,2.1,0.28,0.27\n2,1.5,0.50,,,1.8,0.41,0.40\n")
    yield root
    mp.undo()


@pytest.fixture
def page(lab, monkeypatch):
    monkeypatch.setenv("NOISYLAB_HOME", str(lab.parent))
    monkeypatch.setenv("NOISYLAB_RUNS", str(lab))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("app_pages/curves.py").run()
    assert not at.exception, at.exception
    return at


def chart_titles(at) -> list:
    out = []
    for chart in at.get("vega_lite_chart"):
        title = json.loads(chart.proto.spec).get("title", {})
        out.append(title.get("text") if isinstance(title, dict) else title)
    return out


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


@pytest.mark.slow
def test_one_run_shows_curves_memorization_evaluation_matrices_and_grid(page):
    at = page
    at.selectbox(key="run.pick").set_value(str(Path(os.environ["NOISYLAB_RUNS"]) / FORWARD_RUN)).run()
    assert not at.exception, at.exception
    titles = chart_titles(at)
    for title in ("Accuracy per epoch", "Loss per epoch", "Memorization gap", "Confusion matrix (test set)",
                  "Test accuracy per class", "Matrix the forward loss used (the requested noise)",
                  "Realized noise matrix (the truth)"):
        assert title in titles, titles
    summary = runs.read_summary(Path(os.environ["NOISYLAB_RUNS"]) / FORWARD_RUN)
    shown = metrics(at)
    best, last = summary["best_epoch"], summary["epochs_done"]
    assert shown[f"Clean test accuracy (best epoch {best})"] == f"{summary['test_accuracy']:.1%}"
    assert shown[f"Clean test accuracy (last epoch {last})"] == f"{summary['last_test_accuracy']:.1%}"
    assert shown[f"Train accuracy on true labels (best epoch {best})"] == f"{summary['train_acc_true']:.1%}"
    at.segmented_control(key="grid.split").set_value("test").run()
    at.selectbox(key="grid.show.test").set_value("all").run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 32                      # the default "how many"
    assert any("100 image(s) match; showing 32" in c.value for c in at.caption)


@pytest.mark.slow
def test_a_run_that_keeps_its_last_epoch_shows_that_accuracy_once(page):
    at = page
    at.selectbox(key="run.pick").set_value(str(Path(os.environ["NOISYLAB_RUNS"]) / KEEP_LAST_RUN)).run()
    assert not at.exception, at.exception
    summary = runs.read_summary(Path(os.environ["NOISYLAB_RUNS"]) / KEEP_LAST_RUN)
    assert summary["best_epoch"] == summary["epochs_done"] == 2
    shown = metrics(at)
    clean = [label for label in shown if label.startswith("Clean test accuracy")]
    assert clean == ["Clean test accuracy (last epoch 2)"], shown
    assert shown[clean[0]] == f"{summary['test_accuracy']:.1%}"
    assert "Train accuracy on true labels (last epoch 2)" in shown
    help_text = next(m.help for m in at.metric if m.label == clean[0])
    assert "the last epoch, kept" in help_text


@pytest.mark.slow
def test_live_run_without_truth_explains_the_missing_gap(page):
    at = page
    at.selectbox(key="run.pick").set_value(str(Path(os.environ["NOISYLAB_RUNS"]) / LIVE_RUN)).run()
    assert not at.exception, at.exception
    assert "Accuracy per epoch" in chart_titles(at) and "Memorization gap" not in chart_titles(at)
    infos = " ".join(i.value for i in at.info)
    assert "true labels of this run's training images are unknown" in infos
    assert "appear when the run ends" in infos
    assert any(b.label == "Stop" for b in at.button)
    assert at.get("progress")


@pytest.mark.slow
def test_compare_overlays_runs_with_a_legend_of_differences_and_a_table(page):
    at = page
    root = Path(os.environ["NOISYLAB_RUNS"])
    picked = [str(root / FORWARD_RUN), str(root / "sweep-demo" / "ce-standard-r0.20-s0"),
              str(root / "sweep-demo" / "ce-standard-r0.50-s0")]
    at.segmented_control(key="view").set_value("Compare").run()
    at.multiselect(key="compare.runs").set_value(picked).run()
    assert not at.exception, at.exception
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    legend = spec["encoding"]["color"]["scale"]["domain"]         # what differs, in words
    assert legend == ["30% pair-flip noise, forward correction", "20% symmetric noise, cross-entropy",
                      "50% symmetric noise, cross-entropy"]
    table = at.dataframe[0].value
    assert len(table) == 3 and {"loss", "noise.rate", "best_test_accuracy", "label"} <= set(table.columns)
    assert table["run"].tolist()[1] == "sweep-demo/ce-standard-r0.20-s0"
    assert any(d.label == "Download as CSV" for d in at.get("download_button"))


@pytest.mark.slow
def test_compare_without_truth_has_no_true_label_or_noise_rate_columns(page):
    """Runs on the user's own labels: the table claims no truth (no true-label accuracy, no memorized,
    no injected noise rate) and names test accuracy for what it is."""
    from ui.curves import compare_column_title

    at = page
    root = Path(os.environ["NOISYLAB_RUNS"])
    at.segmented_control(key="view").set_value("Compare").run()
    at.multiselect(key="compare.runs").set_value([str(root / LIVE_RUN)]).run()
    assert not at.exception, at.exception
    columns = set(at.dataframe[0].value.columns)
    assert "best_test_accuracy" in columns and not {"train_acc_true", "memorized", "noise.rate"} & columns
    assert compare_column_title("best_test_accuracy", truth_known=False) == \
        "held-out accuracy (given labels) at the kept epoch"
    assert compare_column_title("best_test_accuracy", truth_known=True) == "test accuracy at the kept epoch"
    at.multiselect(key="compare.runs").set_value([str(root / LIVE_RUN), str(root / FORWARD_RUN)]).run()
    assert {"train_acc_true", "memorized", "noise.rate"} <= set(at.dataframe[0].value.columns)


@pytest.mark.slow
def test_sweep_view_draws_accuracy_against_noise_rate(page):
    at = page
    at.segmented_control(key="view").set_value("Sweeps").run()
    assert not at.exception, at.exception
    assert any("2 of 2 cells finished" in m.value for m in at.markdown)
    assert "Test accuracy vs noise rate" in chart_titles(at)
    assert at.dataframe[0].value["state"].tolist() == ["finished", "finished"]


def test_start_a_sweep_from_the_page_waits_for_the_slot_and_stops(_isolated_home):
    """No training: the test holds the training slot, so the background worker waits until stopped."""
    root = Path(os.environ["NOISYLAB_RUNS"])
    root.mkdir(parents=True, exist_ok=True)
    held = jobs.try_lock(root / jobs.LOCK_NAME)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.switch_page("app_pages/curves.py").run()
        at.segmented_control(key="view").set_value("Sweeps").run()
        assert any("No sweeps yet" in i.value for i in at.info)
        at.multiselect(key="new.rates").set_value([0.4]).run()
        at.multiselect(key="new.losses").set_value(["gce"]).run()
        at.button(key="new.start").click().run()
        assert not at.exception, at.exception
        table = sweeps.list_sweeps(root)
        assert len(table) == 1 and table["total"].tolist() == [1]
        sweep_dir = Path(table["path"][0])
        assert sweeps.load_spec(sweep_dir).losses == ("gce",)
        assert any(b.label == "Stop the sweep" for b in at.button)
        at.button(key="sweep.stop").click().run()
        deadline = time.monotonic() + 60
        while sweeps.sweep_status(sweep_dir)["active"] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        held.release()
    assert sweeps.sweep_status(sweep_dir)["state"] == "stopped"
    at.run()
    assert not at.exception, at.exception
    assert any(b.label == "Resume" for b in at.button)
