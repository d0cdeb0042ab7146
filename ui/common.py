"""Cached core calls, the error guard and small rendering helpers for the pages."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import streamlit as st
from PIL import Image

from noisycore.config import DataConfig, NoiseConfig, default_data_dir
from noisycore.errors import UserError
from noisycore.workspaces import check_name

T = TypeVar("T")

# Session keys, in one place so no page invents its own (GUIDE: no junk-drawer session_state).
LABELS_KEY = "lab.labels_path"      # str: folder of the label set the user chose with "Use these labels"
# Every page: button, toggle and metric labels wrap onto a second line instead of ending in "…" (a narrow
# column at 1280-1400 px: "Retrain with corrected labels", "Train accuracy on given labels (best epoch 9)").
# Less empty space above each page's title (Streamlit's default is 6rem): the Review page's item must be on
# the first screen at 1280x800.
APP_CSS = ("<style>.stMarkdownEllipsis, .stMarkdownEllipsis p, [data-testid=stMetricLabel] *"
           "{ white-space: normal !important; overflow: visible !important; text-overflow: clip !important; }"
           "[data-testid=stMainBlockContainer] { padding-top: 2.5rem; }"
           "</style>")
AUTO_KEY = "lab.auto_defaults"      # dict: widget key -> the default the page proposed last (follow_default)
PRESENTER_KEY = "presenter"         # bool: presenter mode (larger type for a projector), the sidebar toggle;
                                    # also the address parameter (?presenter=true), so a reload keeps it
# Streamlit sizes its text in rem: a larger root font scales text, widgets, metrics and st.table together.
# Tables drawn by st.dataframe / st.data_editor (a canvas) read the root font size once, when they are first
# drawn; so show_table draws them in a container keyed by TABLES_KEY, which redraw_tables_if_presenter_changed
# bumps (one more rerun) after the mode changed: the tables are drawn again, under the new root font size.
PRESENTER_CSS = "<style>html { font-size: 21px; } [data-testid='stSidebar'] { min-width: 320px; }</style>"
PLAIN_CSS = "<style>/* presenter mode off */</style>"
TABLES_KEY = "lab.tables_drawn"     # int: how often presenter mode has redrawn the tables (part of their key)
REDRAW_KEY = "lab.tables_redraw"    # bool: presenter mode changed in this run; redraw the tables after it


def guard(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run a core call; show a user error as a clear message and stop the page (never a traceback)."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        st.error(str(e), icon=":material/error:")
        st.stop()


@st.cache_resource(max_entries=4, show_spinner="Loading images…")
def cached_dataset(data_json: str):
    """Datasets are shared by every session (read-only); at most four are kept in memory."""
    from noisycore.datasets import load_dataset

    return load_dataset(DataConfig.from_json(data_json))


@st.cache_resource(max_entries=32, show_spinner="Making noisy labels…")
def cached_noise(data_json: str, noise_json: str):
    from noisycore.noise import apply_noise

    return apply_noise(cached_dataset(data_json), NoiseConfig.from_json(noise_json))


def upscale(image, size: int = 96) -> Image.Image:
    """A crisp, pixelated enlargement of a small uint8 image (nearest neighbour)."""
    return Image.fromarray(image).resize((size, size), Image.NEAREST)


def labels_root() -> Path:
    return default_data_dir() / "labels"


def current_labels_path() -> str | None:
    return st.session_state.get(LABELS_KEY)


def set_current_labels_path(path: str) -> None:
    st.session_state[LABELS_KEY] = str(path)


# ---- Page-address parameters ----------------------------------------------------------------------
# Streamlit silently drops an invalid value of a widget bound to the address (bind="query-params") when
# it creates the widget, and ignores parameters no widget reads. So a page takes a snapshot of the
# address first (address_params), builds its widgets, then calls param_notices with what it used: every
# parameter that was ignored or replaced gets a warning naming the value and the valid choices.
USER_KEY = "user"                   # str: the workspace name (sidebar; address parameter ?user=, so a link keeps it)
IGNORED_PARAMS = ("embed", "embed_options", PRESENTER_KEY, USER_KEY)   # Streamlit's own, and the app-wide settings


def address_params() -> dict:
    """The page address's parameters as given (last value of each). Call it before any bound widget."""
    return {k: st.query_params.get(k) for k in st.query_params if k not in IGNORED_PARAMS}


def param_notice(name: str, value, *, valid: str, used=None) -> None:
    """One warning: the address parameter ``name=value`` is invalid or unknown; ``valid`` lists the valid
    choices (or the page's parameters); ``used`` is what the page uses instead (None: nothing)."""
    text = f"The page address asks for **{name}={value}**, which this page cannot use: {valid}."
    if used is not None:
        text += f" Using **{name}={used}** instead."
    st.warning(text, icon=":material/link_off:")


def _param_matches(given: str, used, shown=None) -> bool:
    """Whether the address value ``given`` (text) is the value the widget ended up with."""
    if isinstance(used, bool):
        return given.strip().lower() == str(used).lower()
    if isinstance(used, (int, float)):
        try:
            number = float(given)
        except ValueError:
            return False
        return number == number and abs(number) != float("inf") and abs(number - float(used)) <= 1e-9 * max(1, abs(number))
    return given == str(used) or (shown is not None and given == str(shown(used)))


def param_notices(given: dict, used: dict) -> None:
    """Warn about every address parameter the page did not use as given.

    ``given``: address_params() taken before the widgets; ``used``: parameter -> (value used, valid choices
    as text[, shown: value -> the text the widget writes to the address]). Parameters not in ``used`` are
    unknown to the page."""
    for name, value in given.items():
        if name not in used:
            param_notice(name, value, valid=f"it is not a setting of this page (settings: {', '.join(used) or 'none'})")
            continue
        spec = used[name]
        if not _param_matches(str(value), spec[0], spec[2] if len(spec) > 2 else None):
            param_notice(name, value, valid=f"valid values are {spec[1]}", used=spec[0])


def follow_default(key: str, proposed) -> None:
    """Call before the keyed widget ``key`` whose default depends on an earlier choice (the Train page's
    preset follows the label set): while the person has not changed the widget (it still holds the
    default proposed last time) it moves to the new default; a value they chose stays."""
    auto = st.session_state.setdefault(AUTO_KEY, {})
    if key in st.session_state and key in auto and st.session_state[key] == auto[key] != proposed:
        st.session_state[key] = proposed
    auto[key] = proposed


# ---- Workspaces -----------------------------------------------------------------------------------
def current_user() -> str | None:
    """The workspace name of this session (the sidebar's, else the address's ?user=), None when there is
    none or it is not a usable name (everything is visible then: one person on their own computer)."""
    name = st.session_state.get(USER_KEY) if USER_KEY in st.session_state else st.query_params.get(USER_KEY)
    try:
        return check_name(name) if name and name.strip() else None
    except UserError:
        return None


def workspace_picker() -> None:
    """The sidebar's name field: a classroom's people each see their own uploads, label sets and runs first,
    plus what the teacher shares. Kept in the address (a bookmark reopens the workspace). Not a password."""
    name = st.text_input("Your name (your workspace)", key=USER_KEY, bind="query-params", placeholder="e.g. alice",
                         help="In a classroom each person picks a name: your uploads, label sets, runs and reviews "
                              "come first, others' stay out of your way unless shared. Anyone can type any name: "
                              "it sorts, it does not protect.")
    if not (name or "").strip():
        st.caption("Sharing this computer with a class? Pick a name first: you see your own work and what is "
                   "shared. Without a name you see everything.")
        return
    try:
        check_name(name)
    except UserError as e:
        st.error(str(e), icon=":material/error:")


# ---- Presenter mode -------------------------------------------------------------------------------
def presenter_toggle() -> None:
    """The sidebar switch for larger type (a classroom projector), and the app's CSS (with the larger
    type when the switch is on)."""
    st.html(APP_CSS)
    st.toggle("Presenter mode (larger type)", key=PRESENTER_KEY, bind="query-params",
              on_change=lambda: st.session_state.update({REDRAW_KEY: True}),
              help="Larger text, controls, tables, charts and heatmaps, readable from the back of a classroom. "
                   "Kept in the page address, so a reload or a shared link stays in presenter mode.")
    # Always one element here, its content changed in place: the root font size changes during this run
    # (a removed element would stay in the browser until the run ends, after the tables' redraw).
    st.html(PRESENTER_CSS if presenter_on() else PLAIN_CSS)


def presenter_on() -> bool:
    """Whether this session is in presenter mode (a page may lay out for the larger type)."""
    return bool(st.session_state.get(PRESENTER_KEY))


def redraw_tables_if_presenter_changed() -> None:
    """After the page ran (app.py): when presenter mode changed in this run, rerun once with new table keys,
    so every show_table is drawn again under the root font size this run set."""
    if st.session_state.pop(REDRAW_KEY, False):
        st.session_state[TABLES_KEY] = st.session_state.get(TABLES_KEY, 0) + 1
        st.rerun()


def show_table(data, *, name: str, where=None, editor: bool = False, **kwargs):
    """st.dataframe (``editor``: st.data_editor, its result returned) that follows presenter mode's type size.
    ``name``: unique on the page (the table's container key); ``where``: a column or container."""
    with (where or st).container(key=f"table-{name}-{st.session_state.get(TABLES_KEY, 0)}"):
        return (st.data_editor if editor else st.dataframe)(data, **kwargs)


def show_chart(chart, *, where=None, **kwargs) -> None:
    """st.altair_chart, with larger chart fonts in presenter mode (``where``: a column or container)."""
    from noisycore.charts import larger_type

    if presenter_on():
        chart = larger_type(chart)
    (where or st).altair_chart(chart, **kwargs)
