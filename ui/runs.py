"""Run panels shared by the Train and Curves pages: progress, live curves, stop."""
from __future__ import annotations

import json
import os
from pathlib import Path

import streamlit as st

from noisycore import baseline, charts, evaluation, executors, jobs, runs, workspaces
from noisycore.cluster import CPUS_ENV
from noisycore.config import default_runs_dir
from noisycore.errors import UserError
from noisycore.util import pct
from ui.common import current_user, guard, labels_root, show_chart, show_table

RUN_KEY = "lab.run_dir"       # str: the run the user last started or selected
CPUS_KEY = "cluster.cpus_per_run"   # int: the sidebar's CPUs per run (cluster only)
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/play_circle:",
               "finished": ":material/check_circle:", "stopped": ":material/stop_circle:",
               "failed": ":material/error:"}


def runs_root() -> Path:
    return default_runs_dir()


def current_run() -> str | None:
    return st.session_state.get(RUN_KEY)


def set_current_run(path) -> None:
    st.session_state[RUN_KEY] = str(path)


def default_run(ids: list, states: dict, *, mine=None, requested=None):
    """The run a run picker opens on (``ids`` newest first): this session's run, else the address's
    ``?run=`` (a reload keeps the run on screen), else the run training now (then the next queued),
    else the newest."""
    for choice in (mine, requested):
        if choice in ids:
            return choice
    for state in ("running", "queued"):
        active = [i for i in ids if states.get(i) == state]
        if active:
            return active[-1]   # the oldest: the one training now, or the next to start
    return ids[0] if ids else None


def saved_label_sets() -> list[dict]:
    """Label sets saved by the Data page that this session's workspace sees (its own first, then shared
    ones, each newest first): name, path, noise.json contents."""
    out = []
    root = labels_root()
    for meta_path in sorted(root.glob("*/noise.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out.append({"name": meta_path.parent.name, "path": str(meta_path.parent), "meta": meta})
    return workspaces.visible(out, current_user(), folder=lambda s: s["path"])


def visible_runs(table):
    """The rows of runs.list_runs this session's workspace sees: its own runs first, then shared ones
    (every run without a name). Each group keeps the table's order (newest first)."""
    keep = workspaces.visible(table["path"].tolist(), current_user())
    return table.set_index("path", drop=False).loc[keep].reset_index(drop=True) if len(table) else table


def owner_words(folder) -> str:
    """' (bob's, shared)' after an item of somebody else's workspace; '' for one's own or nobody's."""
    owner = workspaces.owner_of(folder)
    if owner is None or workspaces.same(owner, current_user()) or current_user() is None:
        return ""
    return f" ({owner}'s, shared)"


def share_toggle(folder, *, what: str, key: str) -> None:
    """'Share this <what> with the class' for the owner of ``folder`` (a run or a label set); nothing for
    anybody else (they see whose it is)."""
    user, owner = current_user(), workspaces.owner_of(folder)
    if user is None or not workspaces.same(owner, user):
        return
    shared = workspaces.is_shared(folder)
    if st.toggle(f"Share this {what} with the class", value=shared, key=key,
                 help="Everybody then sees it, under your name. Sharing is for the teacher's examples; "
                      "names are not passwords.") != shared:
        guard(workspaces.set_shared, folder, not shared, by=user)
        st.rerun()


def progress_text(status: dict) -> tuple[float, str]:
    """Fraction done and a line like 'epoch 3 of 15, batch 12 of 16, about 40 s left'."""
    done, left = jobs.progress(status)
    if not status.get("epochs") or not status.get("epoch"):
        if status.get("phase"):   # e.g. embedding the images once for a pretrained head (cached afterwards)
            return 0.0, f"starting: {status['phase']}"
        return 0.0, "starting: loading the images and building the model"
    text = f"epoch {status['epoch']} of {status['epochs']}"
    if status.get("batches"):
        text += f", batch {status.get('batch') or 0} of {status['batches']}"
    if left is not None:
        text += f", about {left:.0f} s left"
    return done, text


def duration_text(seconds: float) -> str:
    """'about 40 s' / 'about 3 min' / 'about 1.5 h'."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def state_text(run_dir, status: dict) -> str:
    """The progress bar's text for an active run: what it is doing or what it waits for (honest:
    a queued run with no older run ahead of it is loading TensorFlow, not waiting). After Stop the
    training ends within one batch, then the kept model predicts every image before the run is marked
    stopped: that takes seconds, and the bar says so."""
    if status.get("state") == "running" and runs.stop_requested(run_dir):
        return ("stopping: training has ended; saving the kept model's predictions of every image "
                "(a few seconds, longer on a large dataset)")
    if status.get("state") == "running":
        return progress_text(status)[1] + where_text(status)
    if status.get("executor") == "ray":
        place = guard(executors.executor().place_in_queue, run_dir) if executors.cluster_setting() else None
        return (f"queued on the cluster: place {place} in the queue (it starts when a node has a free CPU)"
                if place else "queued on the cluster: waiting for a free CPU")
    place = jobs.queue_place(run_dir)
    ahead = place["ahead"]
    if ahead:
        owner = workspaces.owner_of(ahead[0])
        text = (f"queued: place {place['place']} in the queue, waiting for {ahead[0].name}"
                + (f" ({owner}'s)" if owner else "") + (f" and {len(ahead) - 1} more" if len(ahead) > 1 else ""))
        wait = place["wait_seconds"]
        if wait is None:
            return text + "; the wait is unknown until a run ahead has trained an epoch"
        return text + f"; estimated wait {'at least ' if place['unknown'] else ''}{duration_text(wait)}"
    return "starting: loading TensorFlow, the images and the model"


def where_text(status: dict) -> str:
    """" on node vm/32e56c8b (moved from vm/c42fbdde at epoch 3, 10:42)" for a run placed by an executor."""
    if status.get("executor") != "ray" or not status.get("node"):
        return ""
    moves = status.get("moves") or []
    moved = "".join(f" (moved from {m['from']} at epoch {m['epoch']}, {str(m['at'])[11:16]})" for m in moves[-1:])
    return f" on node {status['node']}{moved}"


def cluster_jobs() -> dict:
    """Where the app's runs, sweep cells and folds go: ``cluster`` (the address, None = this machine) and
    ``cpus`` (the sidebar's CPUs per run; None on this machine)."""
    address = executors.cluster_setting()
    return {"cluster": address, "cpus": st.session_state.get(CPUS_KEY) if address else None}


def cluster_sidebar() -> None:
    """The sidebar's line about where runs train: this machine, or the cluster's nodes and free CPUs / GPUs
    and the CPUs each run reserves."""
    if not executors.cluster_setting():
        st.caption("Runs train on this machine, one at a time (set NOISYLAB_CLUSTER to use a Ray cluster).")
        return
    try:
        nodes = executors.executor().nodes()
    except UserError as e:   # the rest of the page still works; starting a run shows the same message
        st.error(str(e), icon=":material/error:")
        return
    free = sum(n["free_cpus"] or 0 for n in nodes)
    st.caption(f"Cluster {executors.cluster_setting()}: {len(nodes)} node(s), {free:g} of "
               f"{sum(n['cpus'] for n in nodes):g} CPUs free" + (f", {sum(n['gpus'] for n in nodes):g} GPUs"
                                                               if any(n["gpus"] for n in nodes) else ""))
    largest = max(1, int(max(n["cpus"] for n in nodes) if nodes else 1))
    default = os.environ.get(CPUS_ENV, "1")
    st.session_state.setdefault(CPUS_KEY, int(default) if default.isdigit() and int(default) else 1)
    st.session_state[CPUS_KEY] = min(st.session_state[CPUS_KEY], largest)   # the cluster may have lost a node
    st.number_input("CPUs per run", 1, largest,
                    key=CPUS_KEY, help="Each run, sweep cell or cross-validation fold reserves this many CPUs on its "
                    "node (TensorFlow uses as many threads); more CPUs per run train a run faster, fewer let more "
                    "runs train side by side. Recorded in the run's status (cpus).")
    with st.expander("Nodes"):
        show_table([{"node": n["node"], "address": n["address"], "CPUs": n["cpus"], "free CPUs": n["free_cpus"],
                     "GPUs": n["gpus"]} for n in nodes], name="nodes", hide_index=True)


def run_panel(run_dir: str, *, key: str) -> None:
    """Status, progress, stop button and learning curves of one run; live while it trains.

    When the run's state changes (queued -> running -> finished) the whole page reruns, so pickers
    that show the state (the Train page's run list) stay true."""
    state = jobs.poll(run_dir).get("state")
    live = state in runs.ACTIVE_STATES

    @st.fragment(run_every=1.0 if live else None)
    def _panel():
        status = jobs.poll(run_dir)
        run = guard(runs.load_run, run_dir)
        st.markdown(f"{STATE_ICONS.get(status.get('state'), '')} **{run.id}**: {status.get('state')}"
                    + (f" · computing in {status['precision']}" if status.get("precision") else ""))
        if status.get("state") == "failed":
            st.error(f"The run failed: {status.get('error', 'unknown error')}. The log is in `{Path(run_dir) / 'log.txt'}`.")
        if live and status.get("state") != state:  # queued -> running, or it just ended: redraw the page
            st.rerun()
        if status.get("state") in runs.ACTIVE_STATES:
            st.progress(progress_text(status)[0], text=state_text(run_dir, status))
            if st.button("Stop", key=f"{key}.stop", icon=":material/stop:",
                         help="Ends the run within one batch; its curves and best model so far are kept."):
                guard(executors.stop, run_dir)
                st.toast("Stop requested; the run ends after the current batch.")
        metrics = run.metrics
        known = evaluation.truth_known(run)
        if len(metrics):
            best, marker = evaluation.best_epoch(run), evaluation.kept_marker(run)
            show_chart(charts.learning_curves(metrics, best_epoch=best, kind="accuracy", truth_known=known,
                                              marker=marker), width="stretch")
            if evaluation.curves_note(status, tta=run.config.tta):
                st.caption(evaluation.curves_note(status, tta=run.config.tta))
            with st.expander("Loss curves"):
                show_chart(charts.learning_curves(metrics, best_epoch=best, kind="loss", marker=marker),
                           width="stretch")
        else:
            st.caption("The curves appear when the first epoch ends.")
        if run.summary:
            _headline_metrics(run, best, known=known)
            if run.summary.get("skipped_images"):
                st.caption(run.summary["skipped_images"])
        baseline_notice(run_dir, status=status, summary=run.summary)

    _panel()


HEADLINE = (("Test accuracy", "test_accuracy", "test_accuracy"),
            ("Train accuracy on given labels", "train_acc_noisy", "train_acc_given"),
            ("Train accuracy on true labels", "train_acc_true", "train_acc_true"))
HEADLINE_UNKNOWN_TRUTH = (("Held-out accuracy, given labels", "test_accuracy", "test_accuracy"),
                          ("Train accuracy on given labels", "train_acc_noisy", "train_acc_given"))


def _headline_metrics(run, best, *, known: bool = True) -> None:
    """The best model's numbers, each saying its epoch, with the last epoch's value underneath
    (the curves end at the last epoch; the kept model is the best one). Without the truth: no
    true-label metric, and held-out accuracy is named for what it is (against given labels)."""
    s, m = run.summary, run.metrics
    last = m.iloc[-1] if len(m) else None
    last_epoch = int(last["epoch"]) if last is not None and "epoch" in m else None
    where = evaluation.kept_epoch_text(run, best)
    headline = HEADLINE if known else HEADLINE_UNKNOWN_TRUTH
    cols = st.columns(len(headline))
    for col, (name, summary_key, metric_key) in zip(cols, headline):
        col.metric(f"{name} ({where})", pct(s.get(summary_key)),
                   help=None if known or summary_key != "test_accuracy" else
                   "Against the given labels of held-out images the model never trained on; the true labels are unknown.")
        if last is not None and metric_key in m and last_epoch != best:
            value = last[metric_key]
            col.caption(f"Last epoch ({last_epoch}): {pct(None if value != value else value)}")


def baseline_notice(run_dir: str, *, status: dict | None = None, summary: dict | None = None) -> None:
    """The scale-up note, which pixels the pretrained features saw, the linear baseline's held-out accuracy (the
    line the network must beat), and once the run has finished, the verdict: a warning when the network learned
    nothing or is not clearly better."""
    status = jobs.poll(run_dir) if status is None else status
    if status.get("note"):
        st.info(status["note"], icon=":material/photo_size_select_large:")
    if status.get("features"):   # which pixels the pretrained features saw (embeddings.pixels_source)
        st.caption(f"Pretrained features of the {status['features']}.")
    record = baseline.read(run_dir)
    if record is None:
        return
    if not summary:
        if record.get("held_out_accuracy") is not None:
            st.caption(f"Linear baseline ({baseline.NAME}): held-out accuracy {pct(record['held_out_accuracy'])}, "
                       f"fitted in {record.get('seconds', 0):.0f} s. The network should end clearly above it.")
        return
    features = baseline.features_text(record)
    if features:
        st.caption(features)
    verdict = baseline.run_verdict(summary, record)
    if verdict.warn:
        st.warning(verdict.text, icon=":material/warning:")
    elif verdict.text:
        st.caption(verdict.text)
