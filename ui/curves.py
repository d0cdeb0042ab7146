"""Streamlit helpers of the Curves & compare page: run choices, one run's live charts and evaluation,
the prediction grid, the comparison and the sweep panel."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from noisycore import executors, charts, evaluation, fanout, jobs, naming, runs, sweeps, teaching
from noisycore.util import pct
from ui.common import cached_dataset, guard, show_chart, show_table, upscale
from ui.runs import STATE_ICONS, baseline_notice, cluster_jobs, owner_words, progress_text, runs_root, state_text, visible_runs

COMPARE_METRICS = {
    "test_accuracy": "Test accuracy", "val_accuracy": "Validation accuracy",
    "train_acc_true": "Train accuracy on true labels", "train_acc_given": "Train accuracy on given labels",
    "accuracy": "Accuracy during training (Keras' running average)",
    "memorized": "Noisy labels memorized", "loss": "Train loss", "val_loss": "Validation loss",
}
SWEEP_METRICS = {
    "test_accuracy": "Test accuracy of the best model", "last_test_accuracy": "Test accuracy after the last epoch",
    "train_acc_true": "Train accuracy on true labels", "memorized": "Noisy labels memorized",
}
GRID_COLUMNS = 8
SWEEP_POLL = 2.0      # seconds between refreshes of a running sweep
RUN_POLL = 1.0        # ... of a training run


def run_choices(root=None) -> dict:
    """Run folder path -> label, newest first: the workspace's ordinary runs (its own, then shared ones),
    then the cells of every sweep."""
    root = Path(root) if root is not None else runs_root()
    out = {}
    table = visible_runs(guard(runs.list_runs, root))
    for row in table.itertuples():
        out[row.path] = f"{evaluation.display_name(row.path)} ({row.state})" + owner_words(row.path)
    for sweep in guard(sweeps.list_sweeps, root).itertuples():
        for cell in sweeps.cells(guard(sweeps.load_spec, sweep.path)):
            path = Path(sweep.path) / cell.name
            if (path / "config.json").exists():
                out[str(path)] = f"{sweep.name} / {cell.name} ({runs.read_status(path).get('state')})"
    return out


def short_id(path) -> str:
    """A run's name on charts: its folder, with the sweep folder in front for a sweep cell."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if (path.parent / sweeps.SWEEP_FILE).exists() else path.name


def _status_line(run_dir: str, status: dict, key: str) -> None:
    state = status.get("state")
    st.markdown(f"{STATE_ICONS.get(state, '')} **{short_id(run_dir)}**: {state}")
    if state == "failed":
        st.error(f"The run failed: {status.get('error') or 'unknown error'}. Its log: `{Path(run_dir) / 'log.txt'}`.")
    if state in runs.ACTIVE_STATES:
        st.progress(progress_text(status)[0], text=state_text(run_dir, status))
        if st.button("Stop", key=f"{key}.stop", icon=":material/stop:",
                     help="Ends the run within one batch; its curves and best model so far are kept."):
            guard(executors.stop, run_dir)
            st.toast("Stop requested; the run ends after the current batch.")


def live_curves(run_dir: str, *, key: str) -> None:
    """Learning curves and the memorization gap of one run; they grow while it trains."""
    live = jobs.poll(run_dir).get("state") in runs.ACTIVE_STATES

    @st.fragment(run_every=RUN_POLL if live else None)
    def _curves():
        status = jobs.poll(run_dir)
        run = guard(runs.load_run, run_dir)
        _status_line(run_dir, status, key)
        if live and status.get("state") not in runs.ACTIVE_STATES:
            st.rerun()       # it just ended: draw the evaluation too
        if not len(run.metrics):
            st.info("The curves appear when the first epoch ends.")
            return
        best = evaluation.best_epoch(run)
        # Full width: the legends of four series do not fit half a page (Vega does not wrap them).
        marker = evaluation.kept_marker(run)
        show_chart(charts.learning_curves(run.metrics, best_epoch=best, kind="accuracy", marker=marker,
                                          truth_known=evaluation.truth_known(run)), width="stretch")
        if evaluation.curves_note(status, tta=run.config.tta):
            st.caption(evaluation.curves_note(status, tta=run.config.tta))
        with st.expander("Loss per epoch"):
            show_chart(charts.learning_curves(run.metrics, best_epoch=best, kind="loss", marker=marker),
                       width="stretch")
        st.markdown("#### The memorization gap")
        if evaluation.truth_known(run):
            show_chart(charts.memorization_chart(run.metrics, best_epoch=best, marker=marker), width="stretch")
            st.caption("Early on the network learns the patterns shared by the correct labels, so it agrees with "
                       "the truth even where the given label is wrong. Later it starts to memorize the wrong labels "
                       "one by one: accuracy on the given labels keeps rising while accuracy against the truth "
                       "falls. Early stopping keeps the model from before the gap opened; robust losses and "
                       "methods keep it closed.")
        else:
            st.info("The true labels of this run's training images are unknown, so there is no memorization gap "
                    "to draw: it compares accuracy on the given labels with accuracy against the truth. Inject "
                    "noise on the Data & noise page (or use a label set with true labels) to see it.",
                    icon=":material/info:")

    _curves()


def evaluation_panel(run_dir: str) -> None:
    """The headline numbers, the confusion matrix, per-class accuracy and (forward loss) the noise matrices."""
    run = guard(runs.load_run, run_dir)
    h = evaluation.headline(run)
    known = h["truth_known"]
    best = evaluation.kept_epoch_text(run, h["best_epoch"])
    why = evaluation.kept_reason(run)
    last = f"last epoch {h['epochs_done']}"
    if known:
        items = [(f"Clean test accuracy ({best})", h["best_test_accuracy"],
                  f"The model of epoch {h['best_epoch']} ({why}) on the test set."),
                 (f"Clean test accuracy ({last})", h["final_test_accuracy"],
                  "The model after the last epoch: lower than the best one when it memorized wrong labels.")]
    else:   # the user's own labels: the held-out labels may be wrong too
        items = [(f"Held-out accuracy, given labels ({best})", h["best_test_accuracy"],
                  f"The model of epoch {h['best_epoch']} ({why}) against the given labels of held-out images it "
                  "never trained on. Some of those labels may be wrong, so this is not accuracy against the "
                  "truth, which is unknown."),
                 (f"Held-out accuracy, given labels ({last})", h["final_test_accuracy"],
                  "The model after the last epoch, against the given labels of the held-out images.")]
    if evaluation.keeps_last(run):
        items.pop(1)   # the kept model is the last epoch's: its accuracy is shown once
    items.append((f"Train accuracy on given labels ({best})", h["train_acc_noisy"],
                  "Agreement of the kept model with the labels it was trained on (some may be wrong)."))
    if known:
        items.append((f"Train accuracy on true labels ({best})", h["train_acc_true"],
                      "Agreement of the kept model with the true labels."))
    for column, (label, value, help_text) in zip(st.columns(len(items)), items):
        column.metric(label, pct(value), help=help_text)
    baseline_notice(run_dir, summary=run.summary)
    preds = guard(evaluation.load_predictions, run_dir)
    # Heatmaps keep square cells at their natural size, so each gets a row of its own (half a page is too narrow).
    show_chart(charts.confusion_matrix_chart(preds.test_true, preds.test_pred, preds.class_names,
                                             title="Confusion matrix (test set)" if known else
                                             "Confusion matrix (held-out images, given labels)",
                                             rows_are="true class" if known else "given label"), width="content")
    show_chart(charts.per_class_accuracy_chart(preds.test_true, preds.test_pred, preds.class_names,
                                               split="Test" if known else "Held-out (given labels)",
                                               rows_are="true class" if known else "given label"),
                    width="stretch")
    matrices = guard(evaluation.noise_matrices, run_dir)
    if matrices and matrices["used"] is not None:
        st.markdown("#### Noise matrix: what the forward loss assumed, and the truth")
        st.caption(f"T[true, given] used by the forward loss: {matrices['source']}.")
        show_chart(charts.noise_matrix_heatmap(matrices["used"], matrices["class_names"],
                                                    title=matrices["used_title"]), width="content")
        if matrices["truth"] is not None:
            show_chart(charts.noise_matrix_heatmap(matrices["truth"], matrices["class_names"],
                                                        title="Realized noise matrix (the truth)",
                                                        counts=matrices["counts"]), width="content")


def prediction_grid(run_dir: str, *, key: str) -> None:
    """A filterable grid of training or test images with their true / given / predicted label."""
    run = guard(runs.load_run, run_dir)
    preds = guard(evaluation.load_predictions, run_dir)
    names = list(preds.class_names)
    known = preds.train_true is not None
    test_truth = known or evaluation.truth_known(run)   # own data: held-out labels are given labels too
    c = st.columns([3, 3, 2, 2, 1.4])   # "Training set | Test set" needs ~220 px at 1280
    split = c[0].segmented_control("Images", ["train", "test"], default="train", required=True, key=f"{key}.split",
                                   format_func={"train": "Training set",
                                                "test": "Test set" if test_truth else "Held-out images"}.get)
    shows = [s for s in evaluation.GRID_FILTERS
             if split == "train" and (known or s not in evaluation.NEEDS_TRUTH) or s in ("all", "mistakes", "right")]
    show = c[1].selectbox("Show", shows, format_func=evaluation.GRID_FILTERS.get, key=f"{key}.show.{split}",
                          index=shows.index("noisy_right") if "noisy_right" in shows else 0,
                          help="“Model right anyway”: the label was wrong, yet the model predicts the true class: "
                               "it learned the class instead of the wrong label.")
    true_pick = c[2].selectbox("True class" if (split == "test" and test_truth) or known else "Given class",
                               ["any"] + names,
                               key=f"{key}.true")
    pred_pick = c[3].selectbox("Predicted class", ["any"] + names, key=f"{key}.pred")
    limit = c[4].number_input("How many", 8, 200, 32, 8, key=f"{key}.limit")
    rows, total = guard(evaluation.grid_rows, preds, split=split, show=show,
                        true_class=None if true_pick == "any" else names.index(true_pick),
                        predicted_class=None if pred_pick == "any" else names.index(pred_pick), limit=int(limit))
    reference = ("the true label" if (split == "test" and test_truth) or known
                 else "the given label; the truth is unknown")
    st.caption(f"{total:,} image(s) match; showing {len(rows):,}. Green: the prediction is right "
               f"({reference}); "
               "red: wrong.")
    if not len(rows):
        return
    dataset = guard(cached_dataset, runs.run_data_config(run.config).to_json())
    images = guard(evaluation.images_for, dataset, rows["id"], split=split)
    cols = st.columns(GRID_COLUMNS)
    for n, row in enumerate(rows.itertuples()):
        with cols[n % GRID_COLUMNS]:
            st.image(upscale(images[n]), width=96)
            colour = "green" if row.correct else "red"
            lines = [f":{colour}-background[predicted **{names[row.predicted]}** ({row.confidence:.0%})]"]
            if split == "train":
                lines.append(f"given {names[row.given]}" + (" (wrong)" if row.noisy else ""))
            if row.true >= 0:
                lines.append(f"true {names[row.true]}" if test_truth or split == "train" else f"given {names[row.true]}")
            st.markdown("  \n".join(lines))


TRUTH_COLUMNS = ("train_acc_true", "memorized")   # compare-table columns computed from true labels


def compare_column_title(column: str, *, truth_known: bool) -> str:
    """The compare table's header for a metric column, named for what it is: the test accuracy of the
    kept model (not the curve's peak) or of the last epoch; 'held-out accuracy (given labels)' when no
    compared run knows its true labels."""
    if column in ("best_test_accuracy", "final_test_accuracy"):
        what = "test accuracy" if truth_known else "held-out accuracy (given labels)"
        return what + (" at the kept epoch" if column.startswith("best") else " at the last epoch")
    return {"train_acc_noisy": "train accuracy on given labels (kept epoch)",
            "train_acc_true": "train accuracy on true labels (kept epoch)"}.get(column, column.replace("_", " "))


def default_compare(paths: list, *, current=None, limit: int = 3) -> list:
    """The runs Compare opens with: this session's run (else the newest) and the newest other runs of
    the same dataset, at most ``limit`` (runs of different datasets are picked by hand)."""
    if not paths:
        return []
    first = current if current in paths else paths[0]
    def source(path):
        return runs.run_data_config(path, training_subset=False).source

    try:
        mine = source(first)
        same = [p for p in paths if p != first and source(p) == mine]
    except (OSError, ValueError):
        same = []
    return [first] + same[: limit - 1]


def compare_metrics(paths: list) -> dict:
    """The curves the Compare view offers for these runs: without a run that knows its true labels,
    no true-label curve and test accuracy named for what it is (held-out images, given labels)."""
    if any(evaluation.truth_known(guard(runs.load_run, p)) for p in paths) or not paths:
        return COMPARE_METRICS
    return {k: ("Held-out accuracy (given labels)" if k == "test_accuracy" else v)
            for k, v in COMPARE_METRICS.items() if k not in TRUTH_COLUMNS}


def compare_panel(paths: list, *, metric: str) -> None:
    """Overlaid curves of several runs (legend: what differs) and their table, sortable and downloadable."""
    live = any(jobs.poll(p).get("state") in runs.ACTIVE_STATES for p in paths)

    @st.fragment(run_every=RUN_POLL * 2 if live else None)
    def _compare():
        loaded = [guard(runs.load_run, p) for p in paths]
        ids = [short_id(p) for p in paths]
        labels = naming.legend_labels({i: r.config for i, r in zip(ids, loaded)},
                                      summaries={i: r.summary for i, r in zip(ids, loaded)})
        pair = teaching.pairs({i: r.config for i, r in zip(paths, loaded)})
        if len(paths) == 2 and pair:   # the teaching pair: what differs is where the features come from
            by_path = dict(zip(paths, zip(ids, loaded)))
            (a, ra), (b, rb) = by_path[pair[0][0]], by_path[pair[0][1]]
            labels.update(zip((a, b), teaching.pair_legend(ra.config, rb.config)))
        known = any(evaluation.truth_known(r) for r in loaded)
        show_chart(charts.compare_curves({i: r.metrics for i, r in zip(ids, loaded)}, metric=metric,
                                              labels=labels, truth_known=known),
                   width="stretch")
        table = guard(evaluation.compare_table, paths, labels={p: labels[i] for p, i in zip(paths, ids)})
        table["run"] = ids
        table["noise.model"] = [naming.labels_words(r.config) for r in loaded]   # words, not a bare model name
        if not known:   # the user's own labels: no truth, so no true-label columns and no injected noise rate
            table = table.drop(columns=[c for c in TRUTH_COLUMNS + ("noise.rate",) if c in table])
        for line in guard(evaluation.review_gain_lines, paths):
            st.caption(line)
        if len(paths) > 1:
            st.caption("Test accuracy here is the kept model's (the epoch the run keeps), not the curve's peak. "
                       "A point or two between single runs is often run-to-run noise: another seed moves it "
                       "about that much.")
        pct = {c: st.column_config.NumberColumn(compare_column_title(c, truth_known=known), format="percent")
               for c in evaluation.METRIC_FIELDS if c in table and ("acc" in c or c == "memorized")}
        # What a reader compares first (what differs, the numbers), then the recipe fields, the run id last.
        first = ["label", "state", *[c for c in evaluation.METRIC_FIELDS if c in table]]
        order = first + [c for c in table.columns if c not in first and c != "run"] + ["run"]
        show_table(table, name="compare", hide_index=True, width="stretch", column_order=order, column_config={
            "run": st.column_config.TextColumn("run", width="medium"),
            "label": st.column_config.TextColumn("what differs", width="large"),
            "noise.model": st.column_config.TextColumn("labels", width="medium"),
            "noise.rate": st.column_config.NumberColumn("noise rate", format="percent"), **pct})
        st.download_button("Download as CSV", table.to_csv(index=False).encode(), "runs-compared.csv", "text/csv",
                           icon=":material/download:", key="compare.csv")

    _compare()


def sweep_panel(sweep_dir: str) -> None:
    """Progress, stop / resume, the accuracy-vs-noise-rate chart and the summary of one sweep."""
    live = guard(sweeps.sweep_status, sweep_dir)["active"]
    c = st.columns(2)
    y = c[0].selectbox("Metric", list(SWEEP_METRICS), format_func=SWEEP_METRICS.get, key="sweep.metric")
    band = c[1].segmented_control("Band over seeds", ["minmax", "std"], default="minmax", required=True,
                                  key="sweep.band", format_func={"minmax": "min to max", "std": "± 1 std"}.get)

    @st.fragment(run_every=SWEEP_POLL if live else None)
    def _sweep():
        status = guard(sweeps.sweep_status, sweep_dir)
        state = status["state"]
        st.markdown(f"**{Path(sweep_dir).name}**: {state}, {status['done']} of {status['total']} cells finished"
                    + (f", {status['failed']} failed" if status["failed"] else ""))
        if status["active"]:
            st.progress(status["done"] / max(status["total"], 1),
                        text=f"training {status.get('cell') or 'the next cell'}" if state == "running" else "stopping…")
            if st.button("Stop the sweep", key="sweep.stop", icon=":material/stop:",
                         help="The cell in training ends within one batch; Resume trains the unfinished cells."):
                guard(sweeps.stop_sweep, sweep_dir)
                st.toast("Stop requested.")
        else:
            if live:
                st.rerun()
            if status["done"] < status["total"] and st.button(
                    "Resume", key="sweep.resume", icon=":material/play_arrow:",
                    help="Trains the cells that are not finished; finished cells are kept."):
                guard(fanout.resume_sweep, sweep_dir, **cluster_jobs())
                st.rerun()
        table = guard(sweeps.summary_table, sweep_dir)
        show_chart(charts.sweep_chart(sweeps.finished_only(table), y=y, band=band), width="stretch")
        show_table(table, name="sweep", hide_index=True, width="stretch", column_config={
            c: st.column_config.NumberColumn(c.replace("_", " "), format="percent")
            for c in ("rate", "test_accuracy", "last_test_accuracy", "train_acc_true", "memorized")})
        st.download_button("Download summary.csv", table.to_csv(index=False).encode(),
                           f"{Path(sweep_dir).name}-summary.csv", "text/csv", icon=":material/download:",
                           key="sweep.csv")

    _sweep()
