"""AppTest of the Train page: start a real (tiny) background run, see it finish and its curves drawn."""
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
    assert at.selectbox[0].value == "pair30"
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
