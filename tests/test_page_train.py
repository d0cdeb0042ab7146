"""AppTest of the Train page: start a real (tiny) background run, see it finish and its curves drawn."""
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from noisycore import jobs, runs

ROOT = Path(__file__).resolve().parents[1]


def _train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    return at


def _start_and_wait(at, home, *, epochs):
    """Set epochs and 300 training images, press Start training, wait for the background run to finish."""
    at.number_input(key="opt.quick.epochs").set_value(epochs)
    at.number_input(key="opt.quick.max_train").set_value(300)
    at.button[0].click().run()
    assert not at.exception, at.exception
    [run_dir] = runs.run_dirs(home / "runs")
    deadline = time.monotonic() + 300
    while jobs.poll(run_dir)["state"] in runs.ACTIVE_STATES and time.monotonic() < deadline:
        time.sleep(1)
    assert jobs.poll(run_dir)["state"] == "finished", (run_dir / "log.txt").read_text()[-2000:]
    return run_dir


def test_train_page_renders_presets_and_explains_validation():
    at = _train_page()
    assert [b.label for b in at.button] == ["Start training"]
    assert any("test** set" in i.value for i in at.info)       # why the test set is never used for selection
    assert "Quick demo" in " ".join(c.value for c in at.caption)
    # the quick demo stays in float32; the caption says what auto would pick here
    assert any(c.value.startswith("Computing in float32") and "auto would pick" in c.value for c in at.caption)
    at.segmented_control(key="preset").set_value("fast").run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("Precision auto → ") for c in at.caption)
    assert any("No runs yet" in i.value for i in at.info)


@pytest.mark.slow
def test_start_a_run_from_the_page_and_watch_it_finish(_isolated_home):
    at = _train_page()
    run_dir = _start_and_wait(at, _isolated_home, epochs=2)
    at.run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    best = runs.read_summary(run_dir)["best_epoch"]
    assert f"Test accuracy (best epoch {best})" in labels and f"Train accuracy on given labels (best epoch {best})" in labels
    last = runs.read_metrics(run_dir).iloc[-1]
    if best != 2:    # the last epoch's value is shown too (the curves end there)
        assert f"Last epoch (2): {last['train_acc_given']:.1%}" in [c.value for c in at.caption]
    assert len(at.get("vega_lite_chart")) >= 2                  # accuracy and (in an expander) loss curves
    config = runs.read_config(run_dir)
    assert config.epochs == 2 and config.max_train == 300 and config.preset == "quick"


@pytest.mark.slow
def test_forward_loss_on_a_saved_pair_noise_set_from_the_page(_isolated_home):
    """Use a saved pair-noise label set, pick the forward loss (matrix known): the run trains and the
    Curves page shows the matrix it used (the label set's declared one) next to the realized one."""
    from noisycore import forward
    from noisycore.config import DataConfig, NoiseConfig
    from noisycore.datasets import load_dataset
    from noisycore.labelsets import save_label_set
    from noisycore.noise import apply_noise

    data = DataConfig()
    noisy = apply_noise(load_dataset(data), NoiseConfig(model="pair", rate=0.3, seed=0))
    save_label_set(_isolated_home / "labels" / "pair30", load_dataset(data), noisy, data_config=data)
    at = _train_page()
    at.selectbox[0].set_value("pair30").run()    # a fresh session opens the demo; pick the saved set
    at.selectbox(key="opt.quick.loss").set_value("forward").run()
    assert at.radio(key="opt.quick.loss.forward.matrix").value == "known"
    at.radio(key="opt.quick.loss.forward.matrix").set_value("estimated").run()
    assert at.selectbox(key="opt.quick.loss.forward.from").value.startswith("a warm-up")
    at.radio(key="opt.quick.loss.forward.matrix").set_value("known").run()
    run_dir = _start_and_wait(at, _isolated_home, epochs=1)
    record = forward.read_record(run_dir)
    assert record["matrix"] == "known" and "noise.json" in record["source"]
    assert record["noise_matrix"][0][:2] == [0.7, 0.3]
    at.switch_page("app_pages/curves.py").run()
    assert not at.exception, at.exception
    assert any("used by the forward loss: the requested matrix of the label set's noise.json" in c.value
               for c in at.caption)


def test_coteaching_forget_rate_choices_label_the_oracle():
    at = _train_page()
    at.selectbox(key="opt.quick.method").set_value("coteaching").run()
    box = at.selectbox(key="opt.quick.m.coteaching.forget_rate")
    assert box.value == "auto" and "oracle (uses true labels)" in box.options
    box.set_value("oracle_uses_true_labels").run()
    assert not at.exception and not at.error
    box.set_value("a rate I give").run()
    assert at.number_input(key="opt.quick.m.coteaching.forget_rate.value").value == 0.2


def test_aum_threshold_option_shows_its_extra_training_cost():
    at = _train_page()
    toggle = at.toggle(key="opt.quick.aum")
    assert "one extra training run" in toggle.label and toggle.value is False


@pytest.mark.slow
def test_label_correction_options_from_the_page_reach_the_run(_isolated_home):
    """Text and on/off method options get a select box and a toggle; the run trains with what was chosen."""
    at = _train_page()
    at.selectbox(key="opt.quick.method").set_value("label_correction").run()
    detector = at.selectbox(key="opt.quick.m.label_correction.detector")
    assert detector.value == "threshold" and detector.options == ["threshold", "confident_learning"]
    detector.set_value("confident_learning").run()
    at.selectbox(key="opt.quick.m.label_correction.action").set_value("drop").run()
    at.toggle(key="opt.quick.m.label_correction.restart").set_value(True).run()
    at.number_input(key="opt.quick.m.label_correction.rounds").set_value(1).run()
    run_dir = _start_and_wait(at, _isolated_home, epochs=2)
    config = runs.read_config(run_dir)
    assert config.method == "label_correction"
    assert config.method_kwargs == {"threshold": 0.9, "rounds": 1, "detector": "confident_learning",
                                    "action": "drop", "restart": True}
    assert (run_dir / "corrections.csv").read_text().splitlines()[1].startswith("1,1,")   # round 1 after epoch 1


def _own_label_set(home, tmp_path, name="photos-none-s0", n_per_class=6):
    """A saved label set of someone's own photos (truth unknown): what another person uploaded."""
    from helpers import quadrant_folder
    from noisycore.config import DataConfig, NoiseConfig
    from noisycore.datasets import load_dataset
    from noisycore.labelsets import save_label_set
    from noisycore.noise import apply_noise

    data = DataConfig(source=str(quadrant_folder(tmp_path / "photos", n_per_class=n_per_class)), image_size=16)
    dataset = load_dataset(data)
    save_label_set(home / "labels" / name, dataset, apply_noise(dataset, NoiseConfig(model="none")), data_config=data)
    return len(dataset.y_train)


def test_the_preset_follows_the_label_set_and_a_fresh_session_opens_the_demo(_isolated_home, tmp_path):
    """Issue 33, finding 1: a fresh session opened the newest label set (another person's upload, preset
    small with its epochs); switching to the built-in shapes kept small and 42 epochs. Now a fresh session
    opens the demo, and the preset (and the small preset's epochs) follow the label set until the person
    picks a preset themselves."""
    from noisycore.config import TrainConfig

    n = _own_label_set(_isolated_home, tmp_path)
    at = _train_page()
    assert at.selectbox[0].value == "Built-in shapes, 40% symmetric noise"
    assert at.segmented_control(key="preset").value == "quick"
    at.selectbox[0].set_value("photos-none-s0").run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="preset").value == "pretrained"     # own photos: a head on pretrained features
    assert any("Proposed for your own photos: pretrained" in c.value and "choose small" in c.value for c in at.caption)
    head_epochs = TrainConfig.from_preset("pretrained", num_images=n).epochs
    assert at.number_input(key=f"opt.pretrained.n{n}.epochs").value == head_epochs
    at.selectbox[0].set_value("Built-in shapes, 40% symmetric noise").run()
    assert at.segmented_control(key="preset").value == "quick"
    assert at.number_input(key="opt.quick.epochs").value == TrainConfig.from_preset("quick").epochs
    at.segmented_control(key="preset").set_value("fast").run()         # the person's own choice stays
    at.selectbox[0].set_value("photos-none-s0").run()
    assert at.segmented_control(key="preset").value == "fast"
    assert not at.exception and not at.warning, [w.value for w in at.warning]


def test_a_reload_during_training_shows_the_running_run(_isolated_home):
    """Issue 33, finding 4: after a reload (a new session) section 3 showed a newer stopped run instead of
    the one training. Now it opens on the running run, and the address keeps the run on screen."""
    from noisycore.config import TrainConfig

    root = _isolated_home / "runs"
    training = runs.create_run(TrainConfig(epochs=3), root=root, name="training")
    runs.update_status(training, state="running", pid=os.getpid(), epoch=1)   # a live worker: this process
    time.sleep(1.1)                                                            # run ids carry the second
    stopped = runs.create_run(TrainConfig(epochs=3), root=root, name="stopped")
    runs.update_status(stopped, state="stopped")
    at = _train_page()
    picker = at.selectbox[-1]
    assert picker.label == "Run" and picker.value == training.name
    assert at.query_params["run"] in (training.name, [training.name])
    reload = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()   # a reload: a new session
    reload.query_params["run"] = stopped.name
    reload.switch_page("app_pages/train.py").run()
    assert not reload.exception, reload.exception
    assert reload.selectbox[-1].value == stopped.name and not reload.warning


def test_after_stop_the_bar_says_stopping_until_the_run_is_saved(_isolated_home):
    """Issue 33, finding 12: Stop took ~20 s to show "stopped" with no word on the page: training ends
    within one batch, then the kept model predicts every image. The bar now says so meanwhile."""
    from noisycore.config import TrainConfig

    run = runs.create_run(TrainConfig(epochs=3), root=_isolated_home / "runs", name="stopping")
    runs.update_status(run, state="running", pid=os.getpid(), epoch=2, epochs=3, batch=4, batches=10,
                       started=runs.now_iso())
    at = _train_page()
    assert not at.get("progress")[0].proto.text.startswith("stopping")
    at.button(key="train.stop").click().run()
    assert (run / runs.STOP_FILE).exists()
    at.run()
    assert at.get("progress")[0].proto.text.startswith("stopping: training has ended")


def test_fast_preset_shows_the_calibration_and_a_time_budget(_isolated_home):
    import json

    from noisycore import calibration

    at = _train_page()
    at.segmented_control(key="preset").set_value("fast").run()
    captions = " ".join(c.value for c in at.caption)
    assert "not calibrated yet" in captions and "No budget: the preset's epochs." in captions
    path = calibration.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = {calibration.variant_key(*v): 1e-3 for v in calibration.variants()}
    path.write_text(json.dumps({"machine": calibration.machine_key(), "seconds_per_image": seconds, "seconds": 5.0}))
    at.number_input(key="opt.fast.max_train").set_value(10_000).run()   # 9,000 fit x 1 ms = 9 s per epoch
    at.number_input(key="opt.fast.budget").set_value(0.5).run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Calibrated (" in captions and "1,000 images/s" in captions
    # 30 s < 60 s start-up + 9.9 s (9 s + a tenth for the evaluation): (60 + 9.9) / 60 = 1.165 min
    assert "budget_minutes=0.5 is too short for one epoch on this machine (10 s each" in captions
    assert "give at least 1.2" in captions
    at.number_input(key="opt.fast.budget").set_value(3.0).run()    # (180 - 60) / 9.9 = 12.1
    assert any(c.value.startswith("Budget 3 min: about 12 epochs of ~9 s") for c in at.caption)
