"""Review: find the likely wrong labels of a run, triage them, decide with the keyboard, export, retrain."""
from pathlib import Path

import streamlit as st

from noisycore import charts, corrections, crossval, detect, review, runs, triage
from noisycore.catalog import DETECTOR_HELP, detector_name
from noisycore.review import ReviewStore
from ui.common import current_user, guard, show_chart, show_table
from ui.review import (CLASS_KEYS, UNDONE_KEY, decide, detection_panel, focus_page, get_position, last_reviewed_run,
                       noise_estimate, position_key, review_image, reviewable_runs, run_data, run_images, set_last_reviewed_run,
                       set_position, show_note, team_panel, truth_known, unavailable_note, undo, url_notice)
from ui.review_grid import grid_view
from ui.review_quality import quality_panel
from ui.runs import baseline_notice, current_run, runs_root, set_current_run

st.title("Review")
st.caption("The model points at labels it believes are wrong; you decide, one by one or a page at a time, with "
           "the keyboard. Every decision is saved the moment you make it: refresh, close the tab or come back "
           "tomorrow.")
focus_page()   # the first key press in a fresh tab reaches the shortcuts

# ---- Inputs: the run (the address, else this session's last, else the newest with detections) -------
candidates, others = guard(reviewable_runs, runs_root())
if not candidates:
    st.info("No finished runs yet. Train one on the **Train** page (the Quick demo takes a few minutes), "
            "then come back here to find its wrong labels.")
    st.stop()
chosen, notice = triage.choose_run(candidates, requested=st.query_params.get("run"), last=last_reviewed_run(),
                                   selected=Path(current_run() or "").name or None, others=others)
names = [c["name"] for c in candidates]
pick = st.selectbox("Run", names, index=names.index(chosen["name"]),
                    help="A finished training run: its model judges the labels it was trained on.")
url_notice(notice, pick)
run_dir = candidates[names.index(pick)]["path"]
set_last_reviewed_run(pick)
set_current_run(run_dir)
st.query_params["run"] = pick   # a refresh or a bookmark resumes on this run
baseline_notice(run_dir, summary=guard(runs.read_summary, run_dir))   # a model that learned nothing is named first

metas = guard(detect.detection_meta, run_dir)
if metas:   # done once: folded away, so the review is nearer the top of the screen
    with st.expander("1. Find likely wrong labels: done (open to run it again, e.g. with cross-validation)"):
        detection_panel(run_dir)
else:
    with st.container(border=True):
        st.subheader("1. Find likely wrong labels", anchor=False)
        detection_panel(run_dir)
QUALITY_TITLE = "Beyond wrong labels: near-duplicates, outliers, poor images"
if not metas:
    st.info("Press **Find label issues** to score every label. Cross-validation takes K trainings; "
            "in-sample is instant.")
    quality_panel(run_dir, classes=list(guard(detect.read_run_labels, run_dir).class_names),
                  store=guard(ReviewStore.for_run, run_dir), title=QUALITY_TITLE,
                  reviewer=(st.session_state.get("reviewer") or current_user() or "reviewer").strip() or "reviewer")
    st.stop()

# ---- What the detectors found (scored only when the truth is known) ----------------------------------
source = next(iter(metas.values()))["source"]
info, probs, features, feature_kind = run_data(run_dir, source)
classes = list(info.class_names)
truth = truth_known(run_dir, info)
estimate = noise_estimate(run_dir, source)
weakness = detect.estimate_note(estimate.num_issues, len(info.labels),
                                next(iter(metas.values())).get("source_accuracy"), truth_known=truth)   # what N rests on
table = guard(detect.evaluation_table, run_dir)
n_images = len(info.labels)
# Folded, like section 1: at 1280x800 the open sections put the image to review ~2,000 px down (issue 33)
with st.expander(("2. Which detector finds which errors?" if truth else "2. How many labels look wrong?")
                 + f" Confident learning's estimate: {estimate.num_issues} of {n_images}", icon=":material/insights:"):
    used = guard(crossval.cv_used_text, run_dir) if source == "cross_validation" else None
    st.caption(f"Predictions: {detect.SOURCES[source]}" + (f" ({used})." if used else ".") + (
        " The true labels are known here (injected noise), so each detector can be scored." if truth else
        " Nobody knows the true labels of these images, so no detector can be scored. What can be known: "
        "how many labels each detector flags, and confident learning's estimate of how many are wrong and "
        "between which classes."))
    shown = table.rename(columns={"flagged": "Flagged", "precision": "Precision", "recall": "Recall", "f1": "F1",
                                  "average_precision": "Avg. precision", "detector": "Detector"})
    shown["Detector"] = shown["Detector"].map(detector_name)
    cols = ["Detector", "Flagged"] + (["Precision", "Recall", "F1", "Avg. precision"] if truth else [])
    table_at = st.container() if truth else None   # six columns: the whole width, so none is cut
    c1, c2 = st.columns([6, 5])
    show_table(shown[cols], name="detectors", where=table_at or c1, hide_index=True, width="stretch", column_config={
        k: st.column_config.NumberColumn(k, format="percent") for k in ("Precision", "Recall", "F1", "Avg. precision")})
    missing = unavailable_note(run_dir)
    if missing:
        (table_at or c1).caption(missing)
    c1.metric("Estimated wrong labels (confident learning)", f"{estimate.num_issues} of {n_images}",
              help="Counted from the model's predictions and the given labels alone (Northcutt et al. 2021): "
                   "the images the model confidently puts in another class.")
    c1.caption(f"That is {estimate.noise_rate:.1%} of the labels"
               + (f"; the truth: {int(info.is_noisy.sum())} labels ({info.is_noisy.mean():.1%}) are really wrong."
                  if truth else ". An estimate, not a count of known errors."))
    (c1.warning if weakness["weak"] else c1.caption)(weakness["text"])
    if truth:
        c1.caption("Precision: share of flagged labels that are really wrong. Recall: share of the wrong labels "
                   "that are flagged. F1 balances both.")
        show_chart(charts.precision_recall_chart(guard(detect.pr_curves, run_dir)), where=c2, width="stretch")
    else:
        show_chart(guard(charts.noise_matrix_heatmap, estimate.noise_matrix, classes,
                              title="Estimated noise matrix", y_title="Likely true class",
                              subtitle="Estimated by confident learning: row = the class an image most likely "
                                       "shows, column = its given label. Off the diagonal: labels the model "
                                       "believes were given to images of another class."), where=c2, width="content")

# ---- Triage: which labels, how many -------------------------------------------------------------------
MODES = {"top": "The N most suspicious", "threshold": "Label quality below a threshold",
         "flagged": "Every label the detector flags"}
settings = st.expander("3. Review the likely wrong labels: which ones (detector, how many, filters), and the "
                       "reviewer's name", icon=":material/tune:")
c = settings.columns([2, 3, 1.4, 1.6])
detector = c[0].selectbox("Detector", list(metas), index=0, key="review.detector", format_func=detector_name,
                          help="Orders the labels: the ones it flags first, then by label quality, lowest first (confident learning and the 0.9 rule flag by their own rule, so their order differs from self-confidence's). " +
                               " ".join(f"{detector_name(k)}: {v}" for k, v in DETECTOR_HELP.items()))
mode = c[1].radio("Review", list(MODES), format_func=MODES.get, key="review.mode",
                  help="Most suspicious first. Confident learning's estimate of the number of wrong labels is a "
                       "good first N.")
issues = guard(detect.load_issues, run_dir, detector)
top_n = c[2].number_input("N", 0, n_images, min(weakness["suggested"], n_images), disabled=mode != "top",
                          key=f"review.top_n.{pick}.{source}", help="Default: confident learning's estimate, or "
                          "what a reviewer can afford when the estimate rests on a weak model.")
threshold = c[2].number_input("Threshold", 0.0, 1.0, triage.threshold_for(issues, estimate.num_issues, decimals=3),
                              step=0.01, format="%.3f", key=f"review.threshold.{pick}.{source}.{detector}",
                              disabled=mode != "threshold", help="Review every label whose quality is at most this.")
reviewer = c[3].text_input("Reviewer", value=current_user() or "reviewer", key="reviewer", bind="query-params",
                           help="Saved with each decision (and kept in the link, so a bookmark resumes as you). "
                                "Your workspace name, unless you type another.")
reviewer = reviewer.strip() or "reviewer"
choice = {"top": {"top_n": int(top_n)}, "threshold": {"threshold": float(threshold)}, "flagged": {}}[mode]
pool = guard(triage.select_queue, issues[issues["is_label_issue"]] if mode == "flagged" else issues, **choice)
line = (f"Confident learning estimates **{estimate.num_issues}** of {n_images} labels ({estimate.noise_rate:.0%}) "
        f"are wrong. Reviewing **{len(pool)}** labels, most suspicious first.")
expect = guard(triage.precision_at, issues, **choice) if truth and mode != "flagged" else None
if expect and expect["precision"] is not None:
    line += (f" Against the true labels: **{expect['wrong']}** of these {expect['selected']} are really wrong "
             f"(precision {expect['precision']:.0%}, recall {expect['recall'] or 0:.0%} of the "
             f"{expect['n_wrong']} wrong labels).")

store = guard(ReviewStore.for_run, run_dir)
decisions = guard(store.latest)
everything = guard(review.review_queue, pool, decisions, class_names=classes, flagged_only=False)
done = int((everything["decision"] != "unreviewed").sum())
st.progress(done / max(len(everything), 1), text=f"{done} of {len(everything)} reviewed ({detector_name(detector)})")
tally = store.tally()
v = st.columns([3, 4], vertical_alignment="bottom")
view = v[0].segmented_control("View", ["One by one", "Grid: one pair at a time"], default="One by one",
                              required=True, key="review.view", label_visibility="collapsed",
                              help="The grid shows a page of thumbnails with the same given and proposed label: "
                                   "decide many at once.")
reveal = False
if truth and view == "One by one":
    reveal = v[1].toggle("Teaching mode: reveal whether each label was really wrong", key="review.reveal",
                         help="Uses the true labels (injected noise). Also shows your own accuracy.")
show_note()
store_path = str(store.path)
pos_key = position_key(run_dir, detector)

if view != "One by one":
    grid_view(run_dir, everything, classes=classes, store_path=store_path, reviewer=reviewer, pos_key=pos_key,
              detector=detector)
else:
    st.session_state.pop(UNDONE_KEY, None)   # an undo here shows its image now: the grid must not open its page later
    c = settings.columns(3)
    given_f = c[0].selectbox("Given class", ["all"] + classes, key="review.given")
    proposed_f = c[1].selectbox("Proposed class", ["all"] + classes, key="review.proposed")
    state_f = c[2].selectbox("Decision", review.DECISION_STATES, key="review.state",
                             help="Every label of the selection, only those still to review, or one kind of decision.")
    queue = guard(review.review_queue, pool, decisions, class_names=classes, flagged_only=False,
                  given=None if given_f == "all" else given_f, proposed=None if proposed_f == "all" else proposed_f,
                  state=state_f)
    ids = queue["id"].tolist()
    current = get_position(pos_key)
    pos = ids.index(current) if current in ids else store.first_unreviewed(ids)
    nav = st.columns([1.7, 1.4, 1.4, 4.5])   # wide enough for "Previous ←" at 1280 px
    nav[0].button("Previous", key="review.prev", shortcut="Left", icon=":material/arrow_back:", disabled=pos == 0,
                  on_click=set_position, args=(pos_key, ids[pos - 1] if 0 < pos <= len(ids) else None))
    nav[1].button("Next", key="review.next", shortcut="Right", icon=":material/arrow_forward:",
                  disabled=pos >= len(ids) - 1, on_click=set_position,
                  args=(pos_key, ids[pos + 1] if pos + 1 < len(ids) else None))
    nav[2].button("Undo", key="review.undo", shortcut="U", icon=":material/undo:", on_click=undo,
                  args=(store_path, reviewer, pos_key),
                  help="Cancels your latest action, a whole grid batch at once (kept in the history).")
    if pos >= len(ids):
        nav[3].success("Every label in this selection is reviewed. Change the filters or N, export or retrain "
                       "below." if ids else "No labels match these filters." if len(pool) else
                       "Nothing selected: raise N or the threshold, or review every flagged label.")
    else:
        row = queue.iloc[pos]
        idx = int(row["index"])
        given, proposed = classes.index(row["given_label"]), classes.index(row["proposed_label"])
        item = {"id": row["id"], "index": idx, "given": given, "proposed": proposed,
                "score": float(row["label_quality"])}
        next_id = ids[pos + 1] if pos + 1 < len(ids) else None
        nav[3].caption(f"Item {pos + 1} of {len(ids)} · `{row['id']}` · label quality {row['label_quality']:.3f}")
        left, right = st.columns([2, 3])
        picture, from_file = review_image(run_dir, idx, 320)
        left.image(picture)
        side = run_images(run_dir).shape[1]
        left.caption(f"Your file, as you took it; the model sees it at {side}×{side} pixels." if from_file else
                     f"As the model sees it ({side}×{side} pixels), enlarged.")
        with right:
            made = store.decision_of(row["id"])
            if made:
                st.info(triage.decision_text(made, classes), icon=":material/history:")
            st.markdown(f"Given label: **{row['given_label']}**  \nProposed label: **{row['proposed_label']}** "
                        f"({probs[idx][proposed]:.0%})")
            why = triage.proposal_note(probs[idx], proposed, classes)
            if why:
                st.caption(why)
            highlight = {"given": given, "proposed": proposed}
            if reveal and "true_label" in row:
                highlight["true"] = row["true_label"]
                wrong = row["true_label"] != row["given_label"]
                (st.error if wrong else st.success)(
                    f"The given label was {'really wrong' if wrong else 'right'}: "
                    f"the true class is **{row['true_label']}**.")
            b = st.columns(3)   # beside the image, above the chart: on the first screen at 1280x800
        b[0].button(f"Accept: {row['proposed_label']}", key="review.accept", shortcut="A", type="primary",
                    icon=":material/check:", on_click=decide, width="stretch",
                    args=(store_path, item, "accept", proposed, reviewer, pos_key, next_id))
        b[1].button(f"Keep: {row['given_label']}", key="review.keep", shortcut="K", icon=":material/undo:",
                    on_click=decide, width="stretch", args=(store_path, item, "keep", None, reviewer, pos_key, next_id))
        b[2].button("Exclude the image", key="review.exclude", shortcut="X", icon=":material/block:",
                    on_click=decide, width="stretch",
                    args=(store_path, item, "exclude", None, reviewer, pos_key, next_id))
        right.caption("Or pick the right class:")
        per_row = 4 if len(classes) > 4 else len(classes)   # 5 in a row cut names ("triangl e") at 1280
        rows = [right.columns(per_row) for _ in range(-(-min(len(classes), 10) // per_row))]
        for k, name in enumerate(classes[:10]):
            rows[k // per_row][k % per_row].button(
                name, key=f"review.class{k}", shortcut=CLASS_KEYS[k], width="stretch", on_click=decide,
                args=(store_path, item, "keep" if k == given else "relabel", None if k == given else k, reviewer,
                      pos_key, next_id))
        if len(classes) > 10:
            extra = right.selectbox("Other class", classes[10:], key="review.other")
            right.button("Relabel", key="review.relabel_other", on_click=decide,
                         args=(store_path, item, "relabel", classes.index(extra), reviewer, pos_key, next_id))
        with right:
            show_chart(charts.top_k_chart(probs[idx], classes, k=5, highlight=highlight), width="stretch")
        st.markdown("**Nearest neighbours** (most similar images " + (
            "by the features of a network pretrained on ImageNet" if feature_kind == "pretrained" else
            "in the model's feature space") + ", with their given labels)")
        if features is None:
            st.caption("The neighbour strip appears when the image features are computed "
                       "(after **Find label issues**, or with the near-duplicates below).")
        else:
            near = detect.nearest_neighbours(features, idx, k=8)
            labels = [classes[info.labels[j]] for j in near]
            st.image([review_image(run_dir, int(j), 96, square=True)[0] for j in near], caption=labels, width=96)

st.markdown(line)   # the selection and the decision counts: below the item, which comes first on the screen
m = st.columns(5 if reveal else 4)
for col, name in zip(m, ("accepted", "kept", "relabelled", "excluded")):
    col.metric(name.capitalize(), tally[name])
if reveal:
    acc = review.reviewer_accuracy(everything)
    m[4].metric("Your accuracy", "—" if not acc or acc["accuracy"] is None else f"{acc['accuracy']:.0%}",
                help="Decisions that left the right label (exclusions count as right when the label was wrong).")

team_panel(store, info.labels, classes)   # two reviewers: disagreements; the changes for the data owner
quality_panel(run_dir, classes=classes, store=store, reviewer=reviewer, title=f"4. {QUALITY_TITLE}")

# ---- Export and retrain ------------------------------------------------------------------------------
with st.container(border=True):
    st.subheader("5. Export and retrain", anchor=False)
    st.caption("Exports use every decision so far (unreviewed labels stay as given).")
    e = st.columns([1.2, 1.2, 1, 1.2])
    for col, fmt, label, name in ((e[0], "csv", "Corrected labels (CSV)", "labels_reviewed.csv"),
                                  (e[1], "csv_kept", "Labels, excluded left out", "labels_reviewed_kept.csv"),
                                  (e[2], "folder", "Image folders (zip)", "images_reviewed.zip")):
        def _data(fmt=fmt, name=name):
            out = Path(run_dir) / "exports" / name
            guard(corrections.export, run_dir, fmt=fmt, out=out, detector=detector, dataset=None)
            return out.read_bytes()
        col.download_button(label, data=_data, file_name=name, on_click="ignore", icon=":material/download:",
                            key=f"review.export.{fmt}", help=corrections.EXPORT_FORMATS[fmt], width="stretch")
    if e[3].button("Retrain on these labels", key="review.retrain", icon=":material/replay:", width="stretch",
                   help="Starts a training run with the same recipe on the reviewed labels (excluded images "
                        "left out); compare it with this run on the Curves page."):
        new = guard(corrections.retrain, run_dir, store=store, owner=current_user())
        st.success(f"Started **{new.name}** in the background. Compare it with {Path(run_dir).name} on the "
                   "Curves & compare page once it finishes.")
