"""AppTest runs of the Home and Data & noise pages on the built-in dataset."""
import csv
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def test_home_renders_without_errors():
    at = _app().run()
    assert not at.exception
    assert any("Noisy Label Lab" in t.value for t in at.title)


def _data_page() -> AppTest:
    at = _app().run()
    at.switch_page("app_pages/data.py").run()
    assert not at.exception, at.exception
    return at


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_data_page_pair_noise_shows_realized_rate_and_saves_labels(tmp_path, _isolated_home):
    at = _data_page()
    at.selectbox(key="noise").set_value("pair").run()
    at.slider(key="rate").set_value(0.4).run()
    assert not at.exception, at.exception
    assert _metric(at, "Realized rate") == "40.00%"
    # the heatmap and the class counts are drawn, plus the grid of flipped examples
    assert len(at.get("vega_lite_chart")) >= 2
    assert len(at.get("image")) >= 1
    at.button[-1].click().run()          # "Use these labels"
    assert not at.exception, at.exception
    saved = list((_isolated_home / "labels").glob("*/labels.csv"))
    assert len(saved) == 1
    rows = list(csv.DictReader(saved[0].open()))
    wrong = sum(r["is_noisy"] in ("True", "true", "1") for r in rows)
    assert wrong / len(rows) == pytest.approx(0.4, abs=1e-3)
    meta = json.loads((saved[0].parent / "noise.json").read_text())
    assert meta["config"]["model"] == "pair" and meta["config"]["rate"] == 0.4
    assert meta["data_config"]["source"] == "builtin"


def test_bad_noise_matrix_gives_a_message_not_a_traceback():
    at = _data_page()
    at.selectbox(key="noise").set_value("matrix").run()
    assert not at.exception, at.exception
    # the identity matrix is valid; the page shows no noise
    assert _metric(at, "Realized rate") == "0.00%"


def test_a_demo_noise_link_on_own_images_says_what_it_does(tmp_path, _isolated_home):
    """A shared link's noise=pair is the demo's setting: own images keep their labels as given, and the
    notice says so and names the parameter that would inject noise (not a list that includes pair)."""
    from helpers import quadrant_folder

    folder = quadrant_folder(tmp_path / "photos", n_per_class=6)
    at = _app().run()
    at.query_params.update({"dataset": "Folder or CSV on this computer", "path": str(folder), "noise": "pair"})
    at.switch_page("app_pages/data.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="noise_own").value == "none"
    notices = [w.value for w in at.warning if "noise=pair" in w.value]
    assert len(notices) == 1, [w.value for w in at.warning]
    assert "labels as given" in notices[0] and "noise_own (now none)" in notices[0]
    assert "valid values are" not in notices[0]


def test_a_shared_link_with_an_image_size_is_applied_without_a_warning():
    """?size=24 is a setting of the page: applied, and no "not a setting of this page" notice (issue 33, 3)."""
    at = _app().run()
    at.query_params.update({"size": "24"})
    at.switch_page("app_pages/data.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="size").value == 24
    assert not [w.value for w in at.warning if "size" in w.value], [w.value for w in at.warning]
    assert any("24×24 pixels" in c.value for c in at.caption)


@pytest.mark.parametrize("short, shown", [("cifar10", "CIFAR-10"), ("builtin", "Built-in shapes (offline)")])
def test_a_link_may_name_the_dataset_by_its_short_name(short, shown):
    """?dataset=cifar10 picks CIFAR-10 (its short name, as the CLI spells it) instead of being rejected."""
    at = _app().run()
    at.query_params.update({"dataset": short})
    at.switch_page("app_pages/data.py").run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="dataset").value == short
    assert not [w.value for w in at.warning if "dataset" in w.value], [w.value for w in at.warning]


def test_presenter_mode_survives_a_reload():
    """Issue 33, finding 11: presenter mode lives in the address (?presenter=true), so a reload keeps it.
    No page warns that presenter is not one of its settings."""
    reload = _app()   # the address a reload sends once the toggle is on (the browser writes it there)
    reload.query_params["presenter"] = "true"
    reload.run()
    assert reload.toggle(key="presenter").value is True
    css = " ".join(h.proto.body for h in reload.get("html"))
    assert "font-size: 21px" in css
    reload.switch_page("app_pages/data.py").run()
    assert not reload.exception and not reload.warning, [w.value for w in reload.warning]
    assert reload.toggle(key="presenter").value is True


def test_presenter_mode_redraws_tables_under_the_new_type_size():
    """Issue 33, finding 11: a table (st.dataframe / st.data_editor paints a canvas) reads the root font size
    once, when it is drawn, so switching presenter mode left tables at the old size. After a switch the app
    reruns once with new table keys (the browser draws them again), and the size's style element stays in
    one place, its content changed (a removed element lingered in the browser until the run ended)."""
    at = _app()
    at.query_params["noise"] = "matrix"   # the Data page's noise-matrix editor: a table without any run
    at.run()
    at.switch_page("app_pages/data.py").run()

    def table_keys():
        found = []

        def walk(node):
            children = getattr(node, "children", {})
            for child in (children.values() if isinstance(children, dict) else children):
                walk(child)
            if "table-matrix-" in str(getattr(getattr(node, "proto", None), "id", "")):
                found.append(str(node.proto.id).rsplit("table-", 1)[1])
        walk(at.main)
        return found

    def styles():
        return [h.proto.body for h in at.get("html")]   # the app CSS, then presenter mode's

    assert table_keys() == ["matrix-0"] and len(styles()) == 2 and "21px" not in styles()[1]
    at.toggle(key="presenter").set_value(True).run()
    assert not at.exception, at.exception
    assert table_keys() == ["matrix-1"] and "html { font-size: 21px; }" in styles()[1]
    at.selectbox(key="noise").set_value("matrix").run()   # an ordinary rerun: the table is not drawn again
    assert table_keys() == ["matrix-1"]
    at.toggle(key="presenter").set_value(False).run()
    assert table_keys() == ["matrix-2"] and len(styles()) == 2 and "21px" not in styles()[1]
