"""Streamlit helpers of the Review page: cached run data, the detection panel, decision callbacks."""
from __future__ import annotations

from pathlib import Path

import streamlit as st
from PIL import Image, ImageOps

from noisycore import baseline, crossval, dataquality, detect, evaluation, fanout, runs, teamreview
from noisycore.detectors import estimate_noise
from noisycore.errors import UserError
from noisycore.review import ReviewStore
from ui.common import cached_dataset, guard, show_table, upscale
from ui.runs import cluster_jobs, visible_runs

CLASS_KEYS = "1234567890"          # key i picks class i (1 = the first class, 0 = the tenth)
POS_KEY = "review.item"            # dict run/detector -> the item id on screen (Left/Right navigation)
NOTE_KEY = "review.note"           # a message from the last decision callback (error or undo note)
RUN_KEY = "review.run"             # str: the run this session reviewed last (not the Train page's run)
URL_NOTE_KEY = "review.url_notice"  # (notice, run shown instead) about a bad ?run= value
FOCUS_KEY = "review.focus_runs"    # int: runs of the page, so the focus script runs after each
UNDONE_KEY = "review.undone"       # ids the last undo restored (the grid shows their page)
SOURCE_TEXT = {"cross_validation": "Cross-validation (out-of-sample; K trainings in the background)",
               "in_sample": "This run's own predictions (in-sample; instant, but the model has seen these labels)",
               "baseline": "The linear baseline (logistic regression on the pixels, 4-fold out-of-sample; instant)",
               "embeddings": "Pretrained features (logistic regression on ImageNet EfficientNet-Lite2 embeddings, "
                             "4-fold out-of-sample; instant)",
               "ensemble": "The network's cross-validation and the pretrained features together (the mean of "
                           "both; instant once cross-validation has run)"}


def reviewable_runs(root) -> tuple[list[dict], dict]:
    """(reviewable runs as dicts name, path, has_detections: the workspace's own first, then shared ones,
    each newest first; name -> state of the other runs). Reviewable: training ended and left predictions
    and labels."""
    table = visible_runs(runs.list_runs(root))   # the workspace's runs first, then shared ones
    ok, others = [], {}
    for name, path, state in zip(table["id"], table["path"], table["state"]):
        p = Path(path)
        if state not in runs.ACTIVE_STATES and (p / "predictions.npz").is_file() and (p / "labels.csv").is_file():
            ok.append({"name": name, "path": str(p), "has_detections": any((p / detect.ISSUES_DIR).glob("*.json"))})
        else:
            others[name] = state
    return ok, others


def last_reviewed_run() -> str | None:
    return st.session_state.get(RUN_KEY)


def set_last_reviewed_run(name: str) -> None:
    st.session_state[RUN_KEY] = name


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_resource(max_entries=8, show_spinner=False)
def _run_data(run_dir: str, source: str, stamp: tuple):
    info = detect.read_run_labels(run_dir)
    probs = detect.pred_probs(run_dir, source=source, ids=info.ids)
    return (info, probs, *dataquality.neighbour_features(run_dir))


def _stamp(run: Path) -> tuple:
    return (_mtime(run / "predictions.npz"), _mtime(run / detect.CV_PROBS), _mtime(run / detect.FEATURES),
            _mtime(run / dataquality.QUALITY_DIR / dataquality.META))


def run_data(run_dir: str, source: str):
    """(RunLabels, pred_probs (N, K), neighbour features (N, D) or None, their kind: "pretrained" | "model" |
    None), cached until the files change."""
    return guard(_run_data, run_dir, source, _stamp(Path(run_dir)))


@st.cache_data(max_entries=8, show_spinner=False)
def _best_source(run_dir: str, stamp: tuple):
    return detect.best_source(run_dir)


def best_source(run_dir: str):
    """detect.best_source, cached until a source's probabilities (or the run's summary) change: it loads
    every source's (N, K) probabilities, too much for every rerun of the Review page."""
    run = Path(run_dir)
    stamp = _stamp(run) + tuple(_mtime(run / f) for f in (baseline.BASELINE_PROBS, baseline.EMBEDDING_PROBS,
                                                           "summary.json"))
    return guard(_best_source, run_dir, stamp)


@st.cache_data(max_entries=8, show_spinner=False)
def _unavailable_note(run_dir: str, stamp: tuple) -> str:
    return detect.unavailable_note(run_dir)


def unavailable_note(run_dir: str) -> str:
    """detect.unavailable_note, cached until margins.npy or the run's config change (the page reruns on every
    key press; the note reads labels.csv and the margins' header)."""
    run = Path(run_dir)
    return guard(_unavailable_note, run_dir, _stamp(run) + (_mtime(run / "margins.npy"), _mtime(run / "config.json")))


@st.cache_resource(max_entries=8, show_spinner=False)
def _noise_estimate(run_dir: str, source: str, stamp: tuple):
    info, probs, *_ = _run_data(run_dir, source, stamp)
    return estimate_noise(info.labels, probs)


def noise_estimate(run_dir: str, source: str):
    """Confident learning's NoiseEstimate (number of wrong labels, noise matrix) of the run's labels."""
    return guard(_noise_estimate, run_dir, source, _stamp(Path(run_dir)))


def truth_known(run_dir: str, info) -> bool:
    """True labels known (injected noise): both the run's record and its labels.csv say so."""
    return info.true_labels is not None and bool(guard(lambda: evaluation.truth_known(runs.load_run(run_dir))))


@st.cache_resource(max_entries=4, show_spinner="Loading images…")
def _run_images(run_dir: str, data_json: str):
    return detect.run_images(run_dir, cached_dataset(data_json))


def run_images(run_dir: str):
    """The run's training images (N, H, W, 3) in labels.csv order (the dataset is cached)."""
    data = guard(runs.run_data_config, run_dir, training_subset=False)
    return guard(_run_images, run_dir, data.to_json())


@st.cache_data(max_entries=8, show_spinner=False)
def _original_paths(run_dir: str, stamp: float) -> list:
    from noisycore.datasets import original_files

    ids = detect.read_run_labels(run_dir).ids
    data = runs.run_data_config(run_dir, training_subset=False)
    return [None if f is None else str(f) for f in original_files(data, ids)]


@st.cache_data(max_entries=256, show_spinner=False)
def _preview(path: str, stamp: tuple, max_side: int):
    from noisycore.datasets import preview

    return preview(path, max_side)


def review_image(run_dir: str, idx: int, px: int, *, square: bool = False):
    """(image, from_file) of the run's image ``idx`` (labels.csv order) for a person to judge: the user's
    original file (own folders and zips: a photo is judged as taken, not at the model's 32 pixels) shrunk
    to ``px`` on its longer side, else the model's input enlarged; ``square`` pads to px x px (a grid).
    A file that is gone or no longer readable falls back to the model's input. The paths are looked up
    once per run (cached until its config.json changes), so a page of thumbnails reads no run file again."""
    paths = guard(_original_paths, run_dir, _mtime(Path(run_dir) / "config.json"))
    arr = None
    if 0 <= idx < len(paths) and paths[idx]:
        try:
            info = Path(paths[idx]).stat()
            arr = _preview(paths[idx], (info.st_mtime, info.st_size), px)
        except (OSError, UserError):
            arr = None
    if arr is None:
        return upscale(run_images(run_dir)[idx], px), False
    img = Image.fromarray(arr)
    if max(img.size) < px:   # a file smaller than the frame (e.g. 32 px photos): enlarge it crisply
        f = px / max(img.size)
        img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.NEAREST)
    return (ImageOps.pad(img, (px, px), color=(238, 238, 238)) if square else img), True


def detection_panel(run_dir: str) -> None:
    """Source choice, the Find button and the live cross-validation progress."""
    best, found = best_source(run_dir)
    choices = [s for s in SOURCE_TEXT if s not in ("baseline", "embeddings", "ensemble") or s in found]
    if best in ("baseline", "embeddings", "ensemble"):
        name = {"baseline": "linear baseline's", "embeddings": "pretrained features'",
                "ensemble": "network's and pretrained features' joint"}[best]
        text = (f"The {name} predictions agree with the given labels more often ({found[best]['accuracy']:.1%}, "
                f"4-fold out-of-sample) than the network's ({detect.network_agreement(best, found)}): they are "
                "preselected below.")
        (st.warning if best == "baseline" else st.info)(text, icon=":material/warning:" if best == "baseline"
                                                         else ":material/info:")
    c = st.columns([3, 1, 1])
    source = c[0].radio("Predicted probabilities from", choices, format_func=SOURCE_TEXT.get,
                        index=choices.index(best) if best in choices and best != "in_sample" else 0,
                        key=f"review.source.{best}", help="Out-of-sample predictions judge each image with a model "
                        "that never saw its label, which finds more wrong labels; in-sample is a quick preview. "
                        "Preselected: the predictions that agree best with the given labels out of sample.")
    plan = guard(crossval.fold_plan, run_dir)
    folds = c[1].number_input("Folds (K)", 2, 10, plan["folds"], key=f"review.folds.{Path(run_dir).name}",
                              disabled=source != "cross_validation",
                              help="K-fold cross-validation trains K models, each on (K-1)/K of the images.")
    if source == "cross_validation":
        c[0].caption(f"Each fold model trains with {plan['recipe']}.")
    c[2].write("")
    if c[2].button("Find label issues", type="primary", icon=":material/search:", key="review.find"):
        if source in ("in_sample", "baseline", "embeddings", "ensemble"):
            with st.spinner("Scoring every label with every detector…"):
                guard(detect.detect_all, run_dir, source=source)
            if dataquality.neighbour_features(run_dir)[0] is None \
                    and crossval.poll(run_dir).get("state") not in runs.ACTIVE_STATES:
                guard(crossval.start, run_dir, folds=0)   # neighbours: the features load the model
        else:
            guard(fanout.start_cross_validation, run_dir, folds=int(folds), **cluster_jobs())
    cv_progress(run_dir)


def cv_progress(run_dir: str, *, tasks=("cross_validation", "features"), key: str = "review.cv") -> None:
    """The background cross-validation / feature / data-quality job (one of ``tasks``): progress bar and
    Stop while it runs, its error after."""
    status = crossval.poll(run_dir)
    live = status.get("state") in runs.ACTIVE_STATES and status.get("task", "cross_validation") in tasks

    @st.fragment(run_every=1.0 if live else None)
    def _panel():
        s = crossval.poll(run_dir)
        state, task = s.get("state"), s.get("task", "cross_validation")
        if task not in tasks:
            if live:
                st.rerun()
            return
        if state in runs.ACTIVE_STATES:
            if task == "quality" and state == "running":
                done, text = crossval.progress(s)
                st.progress(done, text=text)
            elif task == "features" or s.get("step") == "features":
                st.progress(1.0 if task != "features" else 0.5, text="Computing image features for the neighbour strip…")
            elif state == "queued":
                st.progress(0.0, text="Starting…" if task == "quality" else
                            "Cross-validation is waiting for the training run before it")
            else:
                done, text = crossval.progress(s)
                st.progress(done, text=text)
            if st.button("Stop", key=f"{key}_stop", icon=":material/stop:", help="Finished folds and embedded "
                         "images are kept."):
                crossval.stop(run_dir)
        elif live:
            st.rerun()   # it just ended: redraw the whole page with the new results
        elif state == "failed":
            st.error(f"{task.replace('_', '-')} failed: {s.get('error')}. The log is in "
                     f"`{Path(run_dir) / crossval.CV_DIR / 'log.txt'}`.")
        elif state == "stopped" and task in ("cross_validation", "quality"):
            st.warning(f"{task.replace('_', '-').capitalize()} stopped ({s.get('error')}); start it again to "
                       "go on where it stopped.")

    _panel()


# ----------------------------------------------------------------------------- decisions
def position_key(run_dir: str, detector: str) -> str:
    return f"{Path(run_dir).name}/{detector}"


def get_position(key: str):
    return st.session_state.get(POS_KEY, {}).get(key)


def set_position(key: str, item_id) -> None:
    st.session_state.setdefault(POS_KEY, {})[key] = item_id


def decide(store_path: str, item: dict, decision: str, new_label, reviewer: str, pos_key: str, next_id) -> None:
    """Button callback: write the decision (committed) THEN move to ``next_id``."""
    try:
        ReviewStore(store_path).record(item_id=item["id"], index=item["index"], decision=decision,
                                       previous_label=item["given"], new_label=new_label, reviewer=reviewer,
                                       proposed_label=item["proposed"], score=item["score"])
    except UserError as e:
        st.session_state[NOTE_KEY] = ("error", str(e))
        return
    set_position(pos_key, next_id)


def undo(store_path: str, reviewer: str, pos_key: str) -> None:
    """Button callback (U in both views): cancel this reviewer's latest action, a whole grid batch at
    once (undo rows, kept in the history), and show the first item it touched."""
    try:
        undone = ReviewStore(store_path).undo_latest(reviewer=reviewer)
    except UserError as e:
        st.session_state[NOTE_KEY] = ("error", str(e))
        return
    if not undone:
        st.session_state[NOTE_KEY] = ("info", f"Nothing to undo: {reviewer} has no decisions left.")
        return
    set_position(pos_key, undone[0]["item_id"])
    st.session_state[UNDONE_KEY] = [u["item_id"] for u in undone]
    what = f"“{undone[0]['decision']}” on {undone[0]['item_id']}" if len(undone) == 1 else \
        f"the batch of {len(undone)} decisions"
    st.session_state[NOTE_KEY] = ("info", f"Undid {what}.")


def show_note() -> None:
    note = st.session_state.pop(NOTE_KEY, None)
    if note:
        (st.error if note[0] == "error" else st.toast)(note[1])


def url_notice(notice, run_name: str) -> None:
    """The notice about an unusable ?run= value, kept on screen until the reviewer picks another run."""
    if notice:
        st.session_state[URL_NOTE_KEY] = (notice, run_name)
    kept = st.session_state.get(URL_NOTE_KEY)
    if kept and kept[1] == run_name:
        st.warning(kept[0], icon=":material/link_off:")
    elif kept:
        del st.session_state[URL_NOTE_KEY]


# After each run of the page: give the document the keyboard focus, so the next key press reaches the
# shortcuts (a fresh tab; a selectbox, radio or toggle just used keeps the focus and swallows keys:
# after choosing a pair, "1" would be typed into the selectbox). Never while the reviewer types in a
# text or number field (e.g. the Reviewer name).
_FOCUS_JS = """<script>
(function () {
  function release() {
    const el = document.activeElement;
    const field = el && ((el.tagName === "INPUT" && el.getAttribute("role") !== "combobox"
                          && ["text", "number", "search", "password"].includes(el.type))
                         || el.tagName === "TEXTAREA" || el.isContentEditable);
    if (!field) {
      if (el && el !== document.body && el.blur) { el.blur(); }
      window.focus();
    }
  }
  release();
  // a selectbox that just closed can take the focus back a moment after the page's run: release it again
  setTimeout(release, 200);
  setTimeout(release, 800);
  window.noisylabFocusRuns = (window.noisylabFocusRuns || 0) + 1;
})();
  /* run %d */
</script>"""


def focus_page() -> None:
    """Run the focus script once per run of the page (its text changes, so the browser runs it again)."""
    n = st.session_state[FOCUS_KEY] = st.session_state.get(FOCUS_KEY, 0) + 1
    st.html(_FOCUS_JS % n, unsafe_allow_javascript=True, width="content")


def team_panel(store: ReviewStore, given_labels, classes: list) -> None:
    """Team review: who reviewed, where two reviewers disagree, and the summary of the changes (per class
    and per pair of classes, as CSV too) to hand to whoever owns the data."""
    people = guard(teamreview.reviewers, store)
    split = guard(teamreview.disagreements, store, class_names=classes)
    title = (f"Team review: {len(people)} reviewers, {len(split)} disagreements" if len(people) > 1 else
             "Team review and the summary of the changes")
    with st.expander(title, expanded=len(split) > 0, icon=":material/groups:"):
        if len(people) < 2:
            st.caption("Two people can review one run at once: each types their own name as the reviewer. "
                       "Where their decisions differ, the items are listed here.")
        elif len(split):
            st.markdown("**Where the reviewers disagree.** The latest decision is the one in force (exports and "
                        "the retrain use it); open the item and decide again to settle it.")
            show_table(split, name="disagreements", hide_index=True, width="stretch")
        else:
            st.success(f"{' and '.join(people)} agree on every item they both decided.", icon=":material/handshake:")
        st.markdown("**Summary of the changes** (the decisions in force), for whoever owns the data")
        per_class = guard(teamreview.class_summary, given_labels, store, class_names=classes)
        pairs = guard(teamreview.change_summary, store, class_names=classes)
        c = st.columns([3, 2])
        show_table(per_class.rename(columns={"class": "Class", "before": "Labels before", "after": "After",
                                             "moved_out": "Moved out", "moved_in": "Moved in", "excluded": "Excluded"}),
                   name="class-summary", where=c[0], hide_index=True, width="stretch")
        if pairs.empty:
            c[1].caption("No label changed yet.")
        else:
            show_table(pairs.rename(columns={"before": "Before", "after": "After", "count": "Count",
                                             "reviewers": "Decided by"}),
                       name="changes", where=c[1], hide_index=True, width="stretch")
        d = st.columns(2)
        d[0].download_button("Summary per class (CSV)", per_class.to_csv(index=False), "review_summary_classes.csv",
                             mime="text/csv", icon=":material/download:", key="review.team.classes", on_click="ignore")
        d[1].download_button("Changes before -> after (CSV)", pairs.to_csv(index=False), "review_changes.csv",
                             mime="text/csv", icon=":material/download:", key="review.team.pairs", on_click="ignore")
