"""Fan-out on a cluster: a sweep's cells and the K cross-validation folds as separate jobs.

    table = sweep(sweep_dir, executor, report=...)        # every unfinished cell submitted at once
    probs = cross_validate(run_dir, executor, folds=4)    # K fold runs at once, then the combine step
    start_sweep(spec, root=, cluster=) / resume_sweep(dir, cluster=) / start_cross_validation(run, folds=, cluster=)

Locally the cells and folds still queue by ``max_parallel`` (noisycore.sweeps, noisycore.crossval);
here each one is an ordinary queued run folder handed to the executor (noisycore.cluster), which trains
them side by side on the cluster's free CPUs. The combine step of cross-validation (the out-of-sample
probabilities of all folds, RUN/cv_probs.npy) runs when every fold has ended; it reads each fold run's
predictions.npz (its test set is the held-out fold, predicted by its best model with the run's TTA),
so no TensorFlow runs in this process. A fold that failed is named (rerun to retry it: finished folds
are kept); Ray itself retries a fold whose node died.

The app starts a sweep or a cross-validation through the ``start_*`` functions: with no cluster they are
noisycore.sweeps' and noisycore.crossval's detached workers; with one, the same detached process runs
``python -m noisycore.fanout sweep|cv ...`` (this module's follower: it submits the jobs, follows them and
combines), so a page reload or a server restart loses nothing, and the jobs themselves belong to the
cluster's JobOwner actor (they go on even if the follower dies; a new follower picks them up).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from noisycore import crossval, detect, jobs, runs, sweeps
from noisycore.config import default_runs_dir
from noisycore.errors import UserError
from noisycore.human_labels import norm_ids
from noisycore.util import save_npy

POLL_SECONDS = 0.5


def _follow(paths: list, executor, on_end: Callable, on_poll: Optional[Callable] = None,
            stopped: Optional[Callable] = None) -> None:
    """Poll the run folders until each ended, calling ``on_end(path, status)`` once per run. Ctrl-C stops
    them and re-raises; ``stopped()`` turning true stops them and follows them to their end."""
    pending, stopping = list(paths), False
    try:
        while pending:
            if not stopping and stopped is not None and stopped():
                stopping = True
                for path in pending:
                    executor.stop(path)
            for path in list(pending):
                status = jobs.poll(path)
                if status.get("state") not in runs.ACTIVE_STATES:
                    pending.remove(path)
                    on_end(path, status)
            if on_poll is not None:
                on_poll()
            if pending:
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        for path in pending:
            executor.stop(path)
        raise


def sweep(sweep_dir, executor, *, report: Optional[Callable] = None, cpus: Optional[int] = None) -> "object":
    """Submit every unfinished cell of the sweep as its own job (``cpus`` each), wait for all; returns the
    summary table. ``report(cell, state, summary row)`` as each cell ends (as sweeps.work). A stop request
    (sweeps.stop_sweep, SIGTERM) stops the cells still queued or training."""
    sweep_dir = executor.check_store(Path(sweep_dir))
    spec = sweeps.load_spec(sweep_dir)
    pass_id = f"{time.time():.6f}-{os.getpid()}"
    todo = {}
    for cell in sweeps.cells(spec):
        status = sweeps.cell_status(sweep_dir, cell)
        if status.get("state") in runs.ACTIVE_STATES and status.get("executor") == "ray" \
                and jobs.poll(sweep_dir / cell.name).get("state") in runs.ACTIVE_STATES:
            todo[sweep_dir / cell.name] = cell     # still a job on the cluster (an earlier follower's): follow it
        elif status.get("state") != "finished":
            path = sweeps.prepare_cell(sweep_dir, cell, sweeps.cell_config(spec, cell), pass_id)
            todo[executor.submit(path, cpus=cpus)] = cell
    sweeps._write_status(sweep_dir, state="running", pid=os.getpid(), started=runs.now_iso(), cell=None, error=None,
                         executor=executor.name)

    def ended(path, status):
        table = sweeps.write_summary(sweep_dir)
        if report is not None:
            report(todo[path], status.get("state"), table[table["run"] == todo[path].name].iloc[0].to_dict())

    def training():
        names = [c.name for p, c in todo.items() if runs.read_status(p).get("state") == "running"]
        if names != sweeps._read_status(sweep_dir).get("training"):
            sweeps._write_status(sweep_dir, training=names, cell=", ".join(names) or None)
    try:
        _follow(list(todo), executor, ended, training, stopped=lambda: sweeps.stop_requested(sweep_dir))
    finally:
        sweeps._write_status(sweep_dir, state="stopped" if sweeps.stop_requested(sweep_dir) else "ended", pid=None,
                             cell=None, training=[], finished=runs.now_iso())
    return sweeps.write_summary(sweep_dir)


def heldout_probs(fold_run: Path, ids) -> np.ndarray:
    """The fold run's test-set probabilities (predictions.npz) in the order of ``ids`` (the held-out fold)."""
    with np.load(fold_run / "predictions.npz", allow_pickle=False) as z:
        probs, test_ids = np.asarray(z["test_probs"], dtype=np.float64), norm_ids(z["test_ids"])
    where = {i: k for k, i in enumerate(test_ids)}
    missing = [i for i in norm_ids(ids) if i not in where]
    if missing:
        raise UserError(f"fold run {fold_run} did not predict {len(missing)} held-out image(s), e.g. {missing[0]}; "
                        "rerun the cross-validation")
    p = probs[[where[i] for i in norm_ids(ids)]]
    return p / p.sum(axis=1, keepdims=True)


def _submit_folds(run: Path, info, config, cv_dir: Path, assign, folds: int, executor, cpus) -> dict:
    """{fold run folder: (fold, its heldout_probs.npy)} of the folds to follow: a fold run an earlier
    follower left finished is combined at once, one still active on the cluster is followed, the rest
    are prepared afresh and submitted."""
    follow = {}
    for f in range(folds):
        fold_dir, done = crossval.fold_folder(cv_dir, f, folds)
        fold_run = fold_dir / "run"
        if done.is_file():
            continue
        state = jobs.poll(fold_run).get("state") if fold_run.is_dir() else None
        if state == "finished" and (fold_run / "predictions.npz").is_file():
            save_npy(done, heldout_probs(fold_run, info.ids[assign == f]))
        elif state in runs.ACTIVE_STATES and runs.read_status(fold_run).get("executor") == "ray":
            follow[fold_run.absolute()] = (f, done)
        else:
            cfg = crossval.prepare_fold(run, info, config, assign == f, fold_dir)
            follow[executor.submit(runs.init_run(fold_run, cfg), cpus=cpus)] = (f, done)
    return follow


def cross_validate(run_dir, executor, *, folds: int = 4, progress: Optional[Callable] = None,
                   cpus: Optional[int] = None) -> np.ndarray:
    """K-fold out-of-sample probabilities with every fold a job (``cpus`` each; see the module); saves and
    returns RUN/cv_probs.npy (N, K). ``progress(text)`` while the folds train; RUN/cv/status.json holds the
    same text (``text``, ``share``) for the Review page. A stop request (RUN/cv/stop.request, SIGTERM)
    stops the folds still queued or training and raises crossval.Stopped (finished folds are kept)."""
    run = detect.run_path(run_dir)
    info = detect.read_run_labels(run)
    folds = crossval._check_folds(folds, len(info.ids))
    config = runs.read_config(run)
    cv_dir = executor.check_store(run) / crossval.CV_DIR
    cv_dir.mkdir(exist_ok=True)
    own = crossval.poll(run).get("state") not in runs.ACTIVE_STATES   # the CLI; else the app's worker wrote it
    if own:
        runs.write_status(cv_dir, {"state": "running", "task": "cross_validation", "folds": folds,
                                   "pid": os.getpid(), "started": runs.now_iso(), "error": None})
    assign = crossval.fold_assignments(info.labels, folds=folds, seed=config.seed)
    jobs_ = _submit_folds(run, info, config, cv_dir, assign, folds, executor, cpus)
    runs.update_status(cv_dir, executor=executor.name, cpus=cpus)
    failed = []

    def ended(path, status):
        f, done = jobs_[path]
        if status.get("state") == "finished":
            save_npy(done, heldout_probs(path, info.ids[assign == f]))
        else:
            failed.append(f"fold {f + 1} of {folds} {status.get('state')} ({status.get('error') or 'no error given'})")

    shown = [None]

    def show():
        states = [jobs.poll(p).get("state") for p in jobs_]
        n_done = folds - len(jobs_) + states.count("finished")
        text = (f"{n_done} of {folds} folds done, {states.count('running')} training, "
                f"{states.count('queued')} queued on the cluster")
        if text != shown[0]:
            shown[0] = text
            runs.update_status(cv_dir, text=text, share=n_done / folds)
            if progress is not None:
                progress(text)
    stop_asked = lambda: runs.stop_requested(cv_dir) or jobs.TERM.is_set()   # noqa: E731
    _follow(list(jobs_), executor, ended, show, stopped=stop_asked)
    if stop_asked():
        raise crossval.Stopped(f"stopped with {folds - len(failed)} of {folds} folds done (they are kept: start "
                               "again to go on)")
    if failed:
        if own:
            runs.update_status(cv_dir, state="failed", error="; ".join(failed), finished=runs.now_iso())
        raise UserError("; ".join(failed) + "; rerun the same command to train it again (finished folds are kept)")
    probs = np.full((len(info.ids), len(info.class_names)), np.nan)
    for f in range(folds):
        probs[assign == f] = np.load(crossval.fold_folder(cv_dir, f, folds)[1], allow_pickle=False)
    save_npy(run / detect.CV_PROBS, probs.astype(np.float32))
    if own:
        runs.update_status(cv_dir, state="finished", finished=runs.now_iso(), error=None)
    return probs


# ------------------------------------------------------------------------------ the app's starters
def _follower(command: str, cluster: str, cpus: Optional[int]) -> list:
    return ["noisycore.fanout", command, "--cluster", cluster] + (["--cpus-per-run", str(cpus)] if cpus else [])


def _check_cluster(cluster: str, cpus: Optional[int], folder) -> None:
    """Refuse here, before a follower starts, what it would refuse: no cluster, a bad CPUs per run, a runs
    folder the nodes cannot see (UserError, nothing created)."""
    from noisycore import executors

    ex = executors.executor(cluster)
    ex.cpus_per_run(cpus)
    ex.check_store(folder)


def start_sweep(spec, *, root=None, name: Optional[str] = None, cluster: Optional[str] = None,
                cpus: Optional[int] = None) -> Path:
    """sweeps.start_sweep; with ``cluster`` (an address, None = this machine) every cell a job of ``cpus``."""
    if cluster is not None:
        _check_cluster(cluster, cpus, root if root is not None else default_runs_dir())
    return sweeps.start_sweep(spec, root=root, name=name, worker=_follower("sweep", cluster, cpus) if cluster else None)


def resume_sweep(sweep_dir, *, cluster: Optional[str] = None, cpus: Optional[int] = None) -> dict:
    """sweeps.resume_sweep; with ``cluster`` the unfinished cells become jobs (see start_sweep)."""
    if cluster is not None:
        _check_cluster(cluster, cpus, sweep_dir)
    return sweeps.resume_sweep(sweep_dir, worker=_follower("sweep", cluster, cpus) if cluster else None)


def start_cross_validation(run_dir, *, folds: int = 4, cluster: Optional[str] = None,
                           cpus: Optional[int] = None) -> dict:
    """crossval.start; with ``cluster`` the folds become jobs and the combine step follows them."""
    if cluster is not None and folds:
        _check_cluster(cluster, cpus, detect.run_path(run_dir))
    return crossval.start(run_dir, folds=folds, worker=_follower("cv", cluster, cpus) if cluster and folds else None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noisycore.fanout",
                                     description="follow a sweep's cells or a cross-validation's folds as cluster "
                                                 "jobs (started by the app)")
    parser.add_argument("command", choices=["sweep", "cv"])
    parser.add_argument("folder", help="the sweep folder, or the run to cross-validate")
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--cpus-per-run", type=int, default=None)
    parser.add_argument("--folds", type=int, default=4)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, jobs.on_sigterm)
    from noisycore import executors

    if args.command == "cv":   # crossval's worker: its status, stop, features and detection; the folds are jobs
        return crossval.worker(args.folder, folds=args.folds, train_folds=lambda run, folds: cross_validate(
            run, executors.executor(args.cluster), folds=folds, cpus=args.cpus_per_run))
    try:
        sweep(args.folder, executors.executor(args.cluster), cpus=args.cpus_per_run,
              report=lambda cell, state, row: print(f"{cell.name}: {state}", flush=True))
    except UserError as e:
        print(f"fanout: error: {e}", file=sys.stderr)
        sweeps._write_status(Path(args.folder), error=str(e))
        return 2
    return 0

if __name__ == "__main__":
    sys.exit(main())
