"""Fan-out on a cluster: a sweep's cells and the K cross-validation folds as separate jobs.

    table = sweep(sweep_dir, executor, report=...)        # every unfinished cell submitted at once
    probs = cross_validate(run_dir, executor, folds=4)    # K fold runs at once, then the combine step

Locally the cells and folds still queue by ``max_parallel`` (noisycore.sweeps, noisycore.crossval);
here each one is an ordinary queued run folder handed to the executor (noisycore.cluster), which trains
them side by side on the cluster's free CPUs. The combine step of cross-validation (the out-of-sample
probabilities of all folds, RUN/cv_probs.npy) runs when every fold has ended; it reads each fold run's
predictions.npz (its test set is the held-out fold, predicted by its best model with the run's TTA),
so no TensorFlow runs in this process. A fold that failed is named (rerun to retry it: finished folds
are kept); Ray itself retries a fold whose node died.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from noisycore import crossval, detect, jobs, runs, sweeps
from noisycore.errors import UserError
from noisycore.human_labels import norm_ids
from noisycore.util import save_npy

POLL_SECONDS = 0.5


def _follow(paths: list, executor, on_end: Callable, on_poll: Optional[Callable] = None) -> None:
    """Poll the run folders until each ended, calling ``on_end(path, status)`` once per run; Ctrl-C stops them."""
    pending = list(paths)
    try:
        while pending:
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


def sweep(sweep_dir, executor, *, report: Optional[Callable] = None) -> "object":
    """Submit every unfinished cell of the sweep as its own job, wait for all; returns the summary table.
    ``report(cell, state, summary row)`` as each cell ends (as sweeps.work)."""
    sweep_dir = executor.check_store(Path(sweep_dir))
    spec = sweeps.load_spec(sweep_dir)
    pass_id = f"{time.time():.6f}-{os.getpid()}"
    todo = {}
    for cell in sweeps.cells(spec):
        if sweeps.cell_status(sweep_dir, cell).get("state") != "finished":
            path = sweeps.prepare_cell(sweep_dir, cell, sweeps.cell_config(spec, cell), pass_id)
            todo[executor.submit(path)] = cell
    sweeps._write_status(sweep_dir, state="running", pid=os.getpid(), started=runs.now_iso(), cell=None, error=None)

    def ended(path, status):
        table = sweeps.write_summary(sweep_dir)
        if report is not None:
            report(todo[path], status.get("state"), table[table["run"] == todo[path].name].iloc[0].to_dict())
    try:
        _follow(list(todo), executor, ended)
    finally:
        sweeps._write_status(sweep_dir, state="ended", pid=None, cell=None, finished=runs.now_iso())
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


def cross_validate(run_dir, executor, *, folds: int = 4, progress: Optional[Callable] = None) -> np.ndarray:
    """K-fold out-of-sample probabilities with every fold a job (see the module); saves and returns
    RUN/cv_probs.npy (N, K). ``progress(text)`` while the folds train."""
    run = detect.run_path(run_dir)
    info = detect.read_run_labels(run)
    folds = crossval._check_folds(folds, len(info.ids))
    config = runs.read_config(run)
    cv_dir = executor.check_store(run) / crossval.CV_DIR
    cv_dir.mkdir(exist_ok=True)
    assign = crossval.fold_assignments(info.labels, folds=folds, seed=config.seed)
    jobs_ = {}
    for f in range(folds):
        fold_dir, done = crossval.fold_folder(cv_dir, f, folds)
        if not done.is_file():
            cfg = crossval.prepare_fold(run, info, config, assign == f, fold_dir)
            jobs_[executor.submit(runs.init_run(fold_dir / "run", cfg))] = (f, done)
    runs.write_status(cv_dir, {"state": "running", "task": "cross_validation", "folds": folds, "pid": os.getpid(),
                               "executor": executor.name, "started": runs.now_iso(), "error": None})
    failed = []

    def ended(path, status):
        f, done = jobs_[path]
        if status.get("state") == "finished":
            save_npy(done, heldout_probs(path, info.ids[assign == f]))
        else:
            failed.append(f"fold {f + 1} of {folds} {status.get('state')} ({status.get('error') or 'no error given'})")

    def shown():
        if progress is not None:
            states = [jobs.poll(p).get("state") for p in jobs_]
            progress(f"{folds - len(jobs_) + states.count('finished')} of {folds} folds done, "
                     f"{states.count('running')} training, {states.count('queued')} queued")
    _follow(list(jobs_), executor, ended, shown)
    if failed:
        runs.update_status(cv_dir, state="failed", error="; ".join(failed), finished=runs.now_iso())
        raise UserError("; ".join(failed) + "; rerun the same command to train it again (finished folds are kept)")
    probs = np.full((len(info.ids), len(info.class_names)), np.nan)
    for f in range(folds):
        probs[assign == f] = np.load(crossval.fold_folder(cv_dir, f, folds)[1], allow_pickle=False)
    save_npy(run / detect.CV_PROBS, probs.astype(np.float32))
    runs.update_status(cv_dir, state="finished", finished=runs.now_iso(), error=None)
    return probs
