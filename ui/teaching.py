"""The teaching comparison on the Curves & compare page (noisycore.teaching): the button that trains a run's
exact labels again on pretrained features, and the lesson line of a pair."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from noisycore import evaluation, runs, teaching
from noisycore.catalog import takes_embeddings
from noisycore.errors import UserError
from ui.common import current_user, guard
from ui.runs import cluster_jobs, runs_root

OPEN_KEY = "teach.open"   # {"runs": [scratch, twin], "metric": str}: what Compare opens with after the button
VIEW_KEY, RUNS_KEY, METRIC_KEY = "view", "compare.runs", "compare.metric"   # the page's widget keys
PAIR_METRIC = {True: "memorized", False: "test_accuracy"}   # truth known: the memorized curve; else held-out


def open_requested_view() -> None:
    """Before the page's view control: after the button, the page opens on Compare."""
    if OPEN_KEY in st.session_state:
        st.session_state[VIEW_KEY] = "Compare"


def preselect_pair(paths: list) -> None:
    """Before Compare's run picker: pick the pair the button asked for (as listed in ``paths``) and its curve."""
    wanted = st.session_state.pop(OPEN_KEY, None)
    if not wanted:
        return
    listed = {teaching.norm(p): p for p in paths}
    st.session_state[RUNS_KEY] = [listed[n] for n in map(teaching.norm, wanted["runs"]) if n in listed]
    st.session_state[METRIC_KEY] = wanted["metric"]


def twin_button(run_dir: str, *, paths: list, key: str, run_view: bool = False) -> None:
    """The "Same labels, pretrained features" button for ``run_dir`` (``paths``: the runs this workspace sees, where
    an existing twin is looked for), or the one line saying why the run cannot have one. ``run_view``: only for a
    finished or stopped run trained from scratch (nothing at all for a run on pretrained features or in training)."""
    try:
        ended = runs.read_status(run_dir).get("state") in ("finished", "stopped")
        if run_view and (_on_features(run_dir) or not ended):
            return
        reason = teaching.refusal(run_dir)
    except UserError as e:
        reason = str(e)
    if reason:
        st.info(reason, icon=":material/info:")
        return
    twin = teaching.find_twin(run_dir, candidates=paths)
    name = Path(run_dir).name
    if st.button(teaching.BUTTON, key=key, icon=":material/compare_arrows:",
                 help=f"Trains the exact labels of {name} (the same wrong labels, images, seed and validation "
                      "split) with the pretrained preset: a small head on pretrained ImageNet features, seconds per "
                      "epoch after the images are embedded once. Then both runs open here with the memorized curve."):
        twin, started = guard(teaching.start_twin, run_dir, root=runs_root(), owner=current_user(), candidates=paths,
                              **cluster_jobs())
        known = evaluation.truth_known(guard(runs.load_run, run_dir))
        st.session_state[OPEN_KEY] = {"runs": [str(run_dir), str(twin)], "metric": PAIR_METRIC[known]}
        if started:
            st.toast(f"Started {twin.name}")
        st.rerun()
    if twin is not None:
        st.caption(f"Its twin on pretrained features is {twin.name}: the button opens the two side by side "
                   "(nothing is trained again).")
    else:
        st.caption(f"Does a head on good features memorize wrong labels too? The button trains the labels of {name} "
                   "again on pretrained features and opens both runs here.")


def compare_lesson(picked: list, *, paths: list) -> None:
    """Compare's teaching part: the lesson of every pair among the picked runs; without a pair, the button for
    the first picked run trained from scratch (or why the first picked run cannot have one)."""
    lines = guard(teaching.lesson_lines, picked)
    for line in lines:
        st.info(line, icon=":material/school:")
    if lines or not picked:
        return
    scratch = [p for p in picked if not _on_features(p)]
    twin_button(scratch[0] if scratch else picked[0], paths=paths, key="compare.twin")


def _on_features(run_dir) -> bool:
    try:
        return takes_embeddings(runs.read_config(run_dir).model)
    except UserError:
        return False
