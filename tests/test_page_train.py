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
    at.number_input(key="opt.quick.epochs").set_value(2)
    at.number_input(key="opt.quick.max_train").set_value(300)
    at.button[0].click().run()
    assert not at.exception, at.exception
    [run_dir] = runs.run_dirs(_isolated_home / "runs")
    deadline = time.monotonic() + 300
    while jobs.poll(run_dir)["state"] in runs.ACTIVE_STATES and time.monotonic() < deadline:
        time.sleep(1)
    assert jobs.poll(run_dir)["state"] == "finished", (run_dir / "log.txt").read_text()[-2000:]
    at.run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "Test accuracy (best model)" in labels
    assert len(at.get("vega_lite_chart")) >= 2                  # accuracy and (in an expander) loss curves
    config = runs.read_config(run_dir)
    assert config.epochs == 2 and config.max_train == 300 and config.preset == "quick"
