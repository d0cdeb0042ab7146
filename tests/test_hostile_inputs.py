"""Hostile and broken inputs, end to end: every case of tests/hostile.py through the CLI and the pages.

An error case must give exit code 2 with exactly one line on stderr naming the problem (no traceback),
write nothing (no --out, no temp or half-extracted files in NOISYLAB_HOME, no change next to the input)
and show the same message on the page. A "loads" case (convertible image modes, BOM, CRLF, commas in
paths, a metrics.csv cut short by a crash) must work.
"""
from __future__ import annotations

import signal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import hostile
from helpers import run_main
from noisycore import runs
from noisycore.config import ConfigError, NoiseConfig
from noisycore.noise import validate_matrix

ROOT = Path(__file__).resolve().parents[1]
CASES = {c.name: c for c in hostile.CASES}
LEFTOVER_PATTERNS = ("*.tmp", "*.part", "*partial*")


def test_the_corpus_is_big_enough():
    assert len(CASES) == len(hostile.CASES) >= 25
    assert {c.expect for c in hostile.CASES} == {"error", "loads"}


def test_the_corpus_is_really_hostile(tmp_path):
    """The payloads do what they claim, so a refusal below is a real refusal."""
    import pickle
    import stat
    import zipfile

    from PIL import Image

    marker = tmp_path / "ran"
    pickle.loads(hostile.evil_pickle(marker))            # a plain unpickler runs the planted command
    assert marker.exists()
    bomb = hostile.zip_declaring(tmp_path / "b.zip", {"a/x.png": b"\0" * 1000}, "a/x.png", 3 * 2**30)
    with zipfile.ZipFile(bomb) as zf:
        assert zf.getinfo("a/x.png").file_size == 3 * 2**30
    z = hostile.make_zip(tmp_path / "z.zip", {"../../../evil.png": b"x"}, symlink="a/link.png")
    with zipfile.ZipFile(z) as zf:
        assert zf.namelist()[0] == "../../../evil.png"
        assert stat.S_ISLNK(zf.getinfo("a/link.png").external_attr >> 16)
    with pytest.raises(Image.DecompressionBombError, match="400000000 pixels"):   # 20000 x 20000
        Image.open(hostile.write(tmp_path / "h.png", hostile.huge_png_header()))
    for mode in ("L", "RGBA", "P", "I;16", "CMYK"):
        name, data = hostile.mode_image(mode)
        with Image.open(hostile.write(tmp_path / name, data)) as im:
            assert im.mode == mode, (mode, im.mode)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated NOISYLAB_HOME / RUNS and working directory; inputs go to tmp_path/in."""
    home = tmp_path / "home"
    monkeypatch.setenv("NOISYLAB_HOME", str(home))
    monkeypatch.setenv("NOISYLAB_RUNS", str(home / "runs"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path


def build(case, env: Path):
    if case.needs_keras:
        pytest.importorskip("keras")
    return case.build(env / "in")


def snapshot(folder: Path, *, skip: str = "home") -> dict:
    """Relative path -> (size, mtime_ns) of every file under folder, except under folder/skip."""
    out = {}
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if rel.parts[0] != skip and (p.is_file() or p.is_symlink()):
            out[rel.as_posix()] = (p.lstat().st_size, p.lstat().st_mtime_ns)
    return out


def assert_no_partial_state(home: Path) -> None:
    """Only complete caches and imports in NOISYLAB_HOME: no temp files, no half-extracted folders."""
    for pattern in LEFTOVER_PATTERNS:
        assert not list(home.rglob(pattern)), list(home.rglob(pattern))
    imports = home / "imports"
    for folder in imports.iterdir() if imports.is_dir() else []:
        assert (folder / ".noisylab.json").is_file(), f"incomplete import {folder}"
    allowed = {"cache", "imports"}
    assert {p.name for p in home.iterdir()} <= allowed if home.is_dir() else True


# ----------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("name", list(CASES))
def test_cli(name, env, capsys):
    case = CASES[name]
    argv, page = build(case, env)
    before = snapshot(env)            # the inputs, the working directory and whatever lies around them
    out = env / ("out" + case.out_suffix)
    r = run_main([*argv, "--out", str(out)], capsys)
    if case.expect == "loads":
        assert r.returncode == 0, r.stderr
        assert out.exists()
        for word in case.words:
            assert word in r.stdout, (word, r.stdout)
        assert_no_partial_state(env / "home")
        return
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"noisycore {argv[0]}: error: ") and "Traceback" not in r.stderr
    for word in case.words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()
    assert snapshot(env) == before, "a file was written or changed outside NOISYLAB_HOME"
    assert_no_partial_state(env / "home")
    if "marker" in page:
        assert not Path(page["marker"]).exists(), "the pickle ran code"


def test_zip_that_loads_is_imported_once_and_completely(env, capsys):
    """The counterpart of the zip cases: a good zip is extracted into imports/<hash>/ with its metadata."""
    z = hostile.make_zip(env / "in" / "good.zip", hostile.good_members("set/"))
    r = run_main(hostile._inject(z) + ["--out", str(env / "out")], capsys)
    assert r.returncode == 0, r.stderr
    imports = list((env / "home" / "imports").iterdir())
    assert len(imports) == 1 and (imports[0] / ".noisylab.json").is_file()
    assert sorted(p.name for p in (imports[0] / "set").iterdir()) == ["cat", "dog"]
    assert_no_partial_state(env / "home")


# ----------------------------------------------------------------------------- core checks the page relies on
@pytest.mark.parametrize("rate, shown", [(-0.1, "rate=-0.1"), (1, "rate=1"), (1.5, "rate=1.5")])
def test_noise_rate_outside_range_is_a_config_error_naming_the_value(rate, shown):
    """The page's slider stops at 0.95, so these come only from the CLI or a config file."""
    with pytest.raises(ConfigError, match=r"outside \[0, 1\)") as e:
        NoiseConfig(model="symmetric", rate=rate)
    assert shown in str(e.value)


@pytest.mark.parametrize("name", ["matrix_negative", "matrix_row_sum"])
def test_bad_noise_matrix_is_a_config_error_naming_the_row(name, env):
    """What the page's matrix editor runs (through guard) on every edit."""
    _, page = CASES[name].build(env / "in")
    with pytest.raises(ConfigError) as e:
        validate_matrix(page["matrix"], 2, class_names=hostile.CLASSES)
    for word in CASES[name].words:
        assert word in str(e.value)


# ----------------------------------------------------------------------------- the Data page
def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def _messages(at) -> list:
    return [e.value for e in at.error]


DATA_CASES = [n for n, c in CASES.items() if c.page == "data"]


def _data_page(page: dict) -> AppTest:
    """The Data page with the page's own widgets preset (by key) to the case's path and noise settings.

    Presetting session state is what a user's choice leaves there; it skips a first render of the
    built-in dataset per case (test_data_page_typed_path clicks through the widgets instead)."""
    at = _app()
    at.session_state["dataset"] = "path"
    at.session_state["path"] = page["path"]
    at.session_state["noise_own"] = page.get("noise", "symmetric")   # own data: the noise widget's key
    for key in ("human_labels", "label_set", "label_set_text", "skip"):
        if key in page:
            at.session_state[key] = page[key]
    at.switch_page("app_pages/data.py").run()
    assert at.segmented_control(key="dataset").value == "path"
    assert at.text_input(key="path").value == page["path"]
    return at


@pytest.mark.parametrize("name", DATA_CASES)
def test_data_page(name, env):
    case = CASES[name]
    _, page = build(case, env)
    at = _data_page(page)
    assert not at.exception, at.exception
    shown = _messages(at)
    if case.expect == "loads":
        assert shown == []
        assert any(m.label == "Realized rate" for m in at.metric)
        return
    assert len(shown) == 1, shown
    for word in case.words:
        assert word in shown[0], (word, shown[0])
    assert not any(m.label == "Realized rate" for m in at.metric)
    assert_no_partial_state(env / "home")
    if "marker" in page:
        assert not Path(page["marker"]).exists(), "the pickle ran code"


def test_data_page_typed_path_and_human_labels_through_the_widgets(env):
    """The same as above by clicking: choose "path", type the folder, pick human labels and the pickle."""
    _, page = build(CASES["pickle_torch_zip"], env)
    at = _app().run()
    at.switch_page("app_pages/data.py").run()
    at.segmented_control(key="dataset").set_value("path").run()
    at.text_input(key="path").set_value(page["path"]).run()
    assert not at.exception and not _messages(at)
    assert any("no injected noise" in m.value for m in at.markdown)   # own images start with their labels as given
    at.selectbox(key="noise_own").set_value("symmetric").run()
    assert any(m.label == "Realized rate" for m in at.metric)      # the folder itself is fine
    at.selectbox(key="noise_own").set_value("human").run()
    at.text_input(key="human_labels").set_value(page["human_labels"]).run()
    at.selectbox(key="label_set").set_value("worst").run()
    assert not at.exception, at.exception
    shown = _messages(at)
    assert len(shown) == 1 and "refusing" in shown[0] and "os.system" in shown[0], shown
    assert not Path(page["marker"]).exists()


# ----------------------------------------------------------------------------- Curves and Review over broken runs
RUN_CASES = [n for n, c in CASES.items() if c.page == "runs"]


def _page(path: str, run: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("NOISYLAB_RUNS", str(run.parent))
    at = _app()
    at.switch_page(path).run()
    return at


def _expect_page(at, case) -> None:
    assert not at.exception, at.exception
    shown = _messages(at)
    if case.expect == "loads":
        assert shown == []
    else:
        assert shown, "no message on the page"
        for word in case.words:
            assert any(word in m for m in shown), (word, shown)


@pytest.mark.parametrize("name", RUN_CASES)
def test_curves_page(name, env, monkeypatch):
    case = CASES[name]
    _, page = build(case, env)
    run = Path(page["run"])
    at = _page("app_pages/curves.py", run, monkeypatch)
    _expect_page(at, case)
    if case.expect == "loads":
        charts = at.get("vega_lite_chart")
        epochs = len(runs.read_metrics(run))
        if epochs:
            assert len(charts) >= 2            # accuracy per epoch + memorization gap (+ the evaluation)
        else:
            assert any("first epoch" in i.value for i in at.info)


@pytest.mark.parametrize("name", RUN_CASES)
def test_review_page(name, env, monkeypatch):
    from noisycore import detect

    case = CASES[name]
    _, page = build(case, env)
    run = Path(page["run"])
    if name != "run_model_other_dataset":
        detect.detect_all(run, source="in_sample")    # the scores exist; the page goes on to the images
    at = _page("app_pages/review.py", run, monkeypatch)
    assert not at.exception, at.exception
    if name == "run_model_other_dataset":
        # the source radio's key names its preselection (review.source.<best>), so a new best preselects anew
        next(r for r in at.radio if (r.key or "").startswith("review.source")).set_value("in_sample").run()
        at.button(key="review.find").click().run()
        assert not (run / "cv").exists(), "a background job started despite the error"
    _expect_page(at, case)
    if case.expect == "loads":
        assert any(c.value.startswith("Item 1 of") for c in at.caption)


def test_model_from_another_dataset_is_refused_when_its_features_are_computed(env, monkeypatch):
    """The neighbour strip loads best.keras (detect.compute_features, in the background worker the Review
    page starts): a model with another number of classes is refused with both numbers, and the page says so."""
    from noisycore import crossval, detect
    from noisycore.errors import UserError

    case = CASES["run_model_other_dataset"]
    _, page = build(case, env)
    run = Path(page["run"])
    with pytest.raises(UserError) as e:
        detect.compute_features(run)
    assert f"{hostile.OTHER_K} classes" in str(e.value) and f"{len(hostile.CLASSES)} classes" in str(e.value)
    assert not (run / detect.FEATURES).exists()
    # what crossval.start(run, folds=0) writes before it launches this worker in a background process
    (run / crossval.CV_DIR).mkdir()
    runs.write_status(run / crossval.CV_DIR, {"state": "queued", "task": "features", "folds": 0, "fold": 0,
                                              "error": None, "created": runs.now_iso()})
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert crossval.worker(run, folds=0) == 1
    finally:
        signal.signal(signal.SIGTERM, handler)
    at = _page("app_pages/review.py", run, monkeypatch)
    assert not at.exception, at.exception
    shown = _messages(at)
    assert any("features failed" in m and f"{hostile.OTHER_K} classes" in m for m in shown), shown
