"""Review: find the likely wrong labels of a run, decide on each with the keyboard, export, retrain."""
from pathlib import Path

import streamlit as st

from noisycore import charts, detect
from noisycore.issues import DETECTOR_HELP
from noisycore.review import ReviewStore
from ui.common import guard, upscale
from ui.review import (CLASS_KEYS, decide, detection_panel, get_position, position_key, reviewable_runs, run_data,
                       run_images, set_position, show_note, undo)
from ui.runs import current_run, runs_root, set_current_run

st.title("Review")
st.caption("The model points at labels it believes are wrong; you decide, image by image, with the keyboard. "
           "Every decision is saved the moment you make it: refresh, close the tab or come back tomorrow.")

# ---- Inputs: the run --------------------------------------------------------------------------------
choices = guard(reviewable_runs, runs_root())
if not choices:
    st.info("No finished runs yet. Train one on the **Train** page (the Quick demo takes a few minutes), "
            "then come back here to find its wrong labels.")
    st.stop()
names = [Path(p).name for p in choices]
mine = Path(current_run() or st.query_params.get("run", "")).name   # a reload starts a new session: the URL
pick = st.selectbox("Run", names, index=names.index(mine) if mine in names else 0,
                    help="A finished training run: its model judges the labels it was trained on.")
run_dir = choices[names.index(pick)]
if run_dir != current_run():
    set_current_run(run_dir)
st.query_params["run"] = pick   # a refresh or a bookmark resumes on this run, not on the newest one

with st.container(border=True):
    st.subheader("1. Find likely wrong labels", anchor=False)
    detection_panel(run_dir)

metas = guard(detect.detection_meta, run_dir)
if not metas:
    st.info("Press **Find label issues** to score every label. Cross-validation takes K trainings; "
            "in-sample is instant.")
    st.stop()

# ---- How good is each detector (truth known) --------------------------------------------------------
table = guard(detect.evaluation_table, run_dir)
truth_known = table["precision"].notna().any()
with st.container(border=True):
    st.subheader("2. Which detector finds which errors?", anchor=False)
    source = next(iter(metas.values()))["source"]
    st.caption(f"Predictions: {detect.SOURCES[source]}." + (
        " The true labels are known here (injected noise), so each detector can be scored." if truth_known else
        " The true labels are unknown, so the detectors cannot be scored; the table shows how many labels each flags."))
    shown = table.rename(columns={"flagged": "Flagged", "precision": "Precision", "recall": "Recall", "f1": "F1",
                                  "average_precision": "Avg. precision", "detector": "Detector"})
    cols = ["Detector", "Flagged"] + (["Precision", "Recall", "F1", "Avg. precision"] if truth_known else [])
    c1, c2 = st.columns([6, 5]) if truth_known else (st.container(), None)
    c1.dataframe(shown[cols], hide_index=True, width="stretch", column_config={
        k: st.column_config.NumberColumn(k, format="percent") for k in ("Precision", "Recall", "F1", "Avg. precision")})
    c1.caption("Precision: share of flagged labels that are really wrong. Recall: share of the wrong labels "
               "that are flagged. F1 balances both.")
    if truth_known:
        c2.altair_chart(charts.precision_recall_chart(guard(detect.pr_curves, run_dir)), width="stretch")

# ---- Review: queue inputs ------------------------------------------------------------------------------
st.subheader("3. Review the flagged labels", anchor=False)
detectors = list(metas)
c = st.columns([2, 2, 2, 2, 2])
detector = c[0].selectbox("Detector", detectors, index=0, key="review.detector",
                          help=" ".join(f"{k}: {v}" for k, v in DETECTOR_HELP.items()))
info, probs, features = run_data(run_dir, metas[detector]["source"])
classes = list(info.class_names)
given_f = c[1].selectbox("Given class", ["all"] + classes, key="review.given")
proposed_f = c[2].selectbox("Proposed class", ["all"] + classes, key="review.proposed")
state_f = c[3].selectbox("Decision", detect.DECISION_STATES, key="review.state",
                         help="Show every flagged image, only those still to review, or one kind of decision.")
reviewer = c[4].text_input("Reviewer", value="reviewer", key="reviewer", bind="query-params",
                           help="Saved with each decision (and kept in the link, so a bookmark resumes as you).")
reviewer = reviewer.strip() or "reviewer"
reveal = st.toggle("Teaching mode: reveal whether each flagged label was really wrong", key="review.reveal",
                   disabled=info.true_labels is None,
                   help="Needs the true labels (injected noise). Also shows your own accuracy.")

store = guard(ReviewStore.for_run, run_dir)
decisions = guard(store.latest)
who = dict(zip(decisions["item_id"], decisions["reviewer"]))   # the latest decision per image, and its author
issues = guard(detect.load_issues, run_dir, detector)
flagged = guard(detect.review_queue, issues, decisions, class_names=classes)
queue = guard(detect.review_queue, issues, decisions, class_names=classes, given=None if given_f == "all" else given_f,
              proposed=None if proposed_f == "all" else proposed_f, state=state_f)

# ---- Progress and tally --------------------------------------------------------------------------------
done = int((flagged["decision"] != "unreviewed").sum())
st.progress(done / max(len(flagged), 1), text=f"{done} of {len(flagged)} flagged labels reviewed ({detector})")
tally = store.tally()
m = st.columns(5 if reveal else 4)
for col, name in zip(m, ("accepted", "kept", "relabelled", "excluded")):
    col.metric(name.capitalize(), tally[name])
if reveal:
    acc = detect.reviewer_accuracy(flagged)
    m[4].metric("Your accuracy", "—" if not acc or acc["accuracy"] is None else f"{acc['accuracy']:.0%}",
                help="Decisions that left the right label (exclusions count as right when the label was wrong).")
show_note()

# ---- The current item ----------------------------------------------------------------------------------
pos_key = position_key(run_dir, detector)
ids = queue["id"].tolist()
current = get_position(pos_key)
pos = ids.index(current) if current in ids else store.first_unreviewed(ids)
store_path = str(store.path)
nav = st.columns([1.7, 1.4, 1.4, 4.5])   # wide enough for "Previous ←" at 1280 px
nav[0].button("Previous", key="review.prev", shortcut="Left", icon=":material/arrow_back:", disabled=pos == 0,
              on_click=set_position, args=(pos_key, ids[pos - 1] if 0 < pos <= len(ids) else None))
nav[1].button("Next", key="review.next", shortcut="Right", icon=":material/arrow_forward:",
              disabled=pos >= len(ids) - 1, on_click=set_position,
              args=(pos_key, ids[pos + 1] if pos + 1 < len(ids) else None))
nav[2].button("Undo", key="review.undo", shortcut="U", icon=":material/undo:", on_click=undo,
              args=(store_path, reviewer, pos_key), help="Cancels your latest decision (kept in the history).")
if pos >= len(ids):
    nav[3].success("Every item in this queue is reviewed. Change the filters, export or retrain below." if ids else
                   "No flagged labels match these filters.")
else:
    row = queue.iloc[pos]
    idx = int(row["index"])
    given, proposed = classes.index(row["given_label"]), classes.index(row["proposed_label"])
    item = {"id": row["id"], "index": idx, "given": given, "proposed": proposed, "score": float(row["label_quality"])}
    next_id = ids[pos + 1] if pos + 1 < len(ids) else None
    nav[3].caption(f"Item {pos + 1} of {len(ids)} · `{row['id']}` · label quality {row['label_quality']:.3f}"
                   + ("" if row["decision"] == "unreviewed" else f" · decided: **{row['decision']}** → "
                      f"{row['final_label'] or 'excluded'} by **{who.get(row['id'], '?')}**"))
    images = run_images(run_dir)
    left, right = st.columns([2, 3])
    left.image(upscale(images[idx], 320))
    with right:
        st.markdown(f"Given label: **{row['given_label']}**  \nProposed label: **{row['proposed_label']}** "
                    f"({probs[idx][proposed]:.0%})")
        highlight = {"given": given, "proposed": proposed}
        if reveal and "true_label" in row:
            highlight["true"] = row["true_label"]
            wrong = row["true_label"] != row["given_label"]
            (st.error if wrong else st.success)(
                f"The given label was {'really wrong' if wrong else 'right'}: the true class is **{row['true_label']}**.")
        st.altair_chart(charts.top_k_chart(probs[idx], classes, k=5, highlight=highlight), width="stretch")
    b = st.columns(3)
    b[0].button(f"Accept: {row['proposed_label']}", key="review.accept", shortcut="A", type="primary",
                icon=":material/check:", on_click=decide, width="stretch",
                args=(store_path, item, "accept", proposed, reviewer, pos_key, next_id))
    b[1].button(f"Keep: {row['given_label']}", key="review.keep", shortcut="K", icon=":material/undo:",
                on_click=decide, width="stretch", args=(store_path, item, "keep", None, reviewer, pos_key, next_id))
    b[2].button("Exclude the image", key="review.exclude", shortcut="X", icon=":material/block:",
                on_click=decide, width="stretch", args=(store_path, item, "exclude", None, reviewer, pos_key, next_id))
    st.caption("Or pick the right class:")
    per_row = 5 if len(classes) > 5 else len(classes)
    rows = [st.columns(per_row) for _ in range(-(-min(len(classes), 10) // per_row))]
    for k, name in enumerate(classes[:10]):
        rows[k // per_row][k % per_row].button(name, key=f"review.class{k}", shortcut=CLASS_KEYS[k], width="stretch",
                      on_click=decide, args=(store_path, item, "keep" if k == given else "relabel",
                                             None if k == given else k, reviewer, pos_key, next_id))
    if len(classes) > 10:
        extra = st.selectbox("Other class", classes[10:], key="review.other")
        st.button("Relabel", key="review.relabel_other", on_click=decide,
                  args=(store_path, item, "relabel", classes.index(extra), reviewer, pos_key, next_id))
    st.markdown("**Nearest neighbours** (most similar images in the model's feature space, with their given labels)")
    if features is None:
        st.caption("The neighbour strip appears when the image features are computed (after **Find label issues**).")
    else:
        near = detect.nearest_neighbours(features, idx, k=8)
        labels = [classes[info.labels[j]] for j in near]
        st.image([upscale(images[j], 96) for j in near], caption=labels, width=96)

# ---- Export and retrain ------------------------------------------------------------------------------
with st.container(border=True):
    st.subheader("4. Export and retrain", anchor=False)
    st.caption("Exports use every decision so far (unreviewed labels stay as given).")
    e = st.columns(4)
    for col, fmt, label, name in ((e[0], "csv", "Corrected labels (CSV)", "labels_reviewed.csv"),
                                  (e[1], "csv_kept", "Without excluded images (CSV)", "labels_reviewed_kept.csv"),
                                  (e[2], "folder", "Image folders (zip)", "images_reviewed.zip")):
        def _data(fmt=fmt, name=name):
            out = Path(run_dir) / "exports" / name
            guard(detect.export, run_dir, fmt=fmt, out=out, detector=detector, dataset=None)
            return out.read_bytes()
        col.download_button(label, data=_data, file_name=name, on_click="ignore", icon=":material/download:",
                            key=f"review.export.{fmt}", help=detect.EXPORT_FORMATS[fmt], width="stretch")
    if e[3].button("Retrain with corrected labels", key="review.retrain", icon=":material/replay:", width="stretch",
                   help="Starts a training run with the same recipe on the reviewed labels (excluded images "
                        "left out); compare it with this run on the Curves page."):
        new = guard(detect.retrain, run_dir, store=store)
        st.success(f"Started **{new.name}** in the background. Compare it with {Path(run_dir).name} on the "
                   "Curves & compare page once it finishes.")
