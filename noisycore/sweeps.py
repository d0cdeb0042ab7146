"""Sweeps: train a grid of noise rates x losses x methods x seeds, one run folder per cell; resumable.

    runs/sweep-NAME/sweep.json            the grid and the base TrainConfig (SweepSpec)
                    sweep_status.json     state of the sweep's worker: running | finished | stopped | incomplete
                    summary.csv           one row per cell (SUMMARY_COLUMNS), rewritten after every cell
                    gce-standard-r0.40-s0/   an ordinary run folder (runs.py) per cell, named by the cell

    spec = SweepSpec(base=TrainConfig(...), noise="symmetric", rates=(0, .2, .4), losses=("ce", "gce"))
    sweep_dir = create_sweep(spec, "runs/sweep-demo")      # or start_sweep(...) for a background worker
    work(sweep_dir)                                         # trains every cell not yet finished, in order

Resume = run again: cells whose folder says "finished" are skipped; failed, stopped and missing
ones are trained (again) from scratch. Each cell takes the training slot lock of ``jobs``
(``<parent of the sweep>/.train.lock``), so a sweep and single runs from the app never train at the
same time. Several workers (``--jobs N``) share a sweep by claiming cells with per-cell OS locks.
The file names avoid config.json / status.json, so ``runs.list_runs`` does not list a sweep folder.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from noisycore import jobs, runs
from noisycore.config import (METHOD_NAMES, ConfigError, JsonConfig, NoiseConfig, TrainConfig, check_choice,
                              default_runs_dir)
from noisycore.errors import UserError
from noisycore.util import pct

SWEEP_FILE, STATUS_FILE, SUMMARY_FILE = "sweep.json", "sweep_status.json", "summary.csv"
STOP_FILE = runs.STOP_FILE
SWEEPABLE_NOISE = ("symmetric", "uniform", "pair", "asymmetric", "instance")   # models with a rate
SUMMARY_COLUMNS = ("recipe", "loss", "method", "rate", "seed", "state", "test_accuracy", "last_test_accuracy",
                   "best_epoch", "train_acc_true", "memorized", "epochs_done", "run")
MAX_CELLS = 1000
STATES = ("running", "stopping", "finished", "stopped", "incomplete")


# ------------------------------------------------------------------------------ the grid
def _tuple(name: str, values, convert) -> tuple:
    if isinstance(values, (str, int, float)):
        values = (values,)
    try:
        out = tuple(convert(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={values!r} must be a list of {convert.__name__} values") from None
    if not out:
        raise ConfigError(f"{name} is empty; give at least one value")
    if len(set(out)) != len(out):
        raise ConfigError(f"{name}={list(out)} repeats a value; list each value once")
    return out


@dataclass(frozen=True)
class SweepSpec(JsonConfig):
    """A sweep: every combination of rate x loss x method x seed, trained with the ``base`` recipe.

    A cell's config is ``base`` with ``loss``, ``method``, ``noise = (model, rate, seed)`` and
    ``seed`` replaced; the seed seeds the noise and the training, so the band of a sweep chart shows
    both sources of spread. Loss / method parameters of ``base`` are kept for its own loss / method.
    """

    base: TrainConfig = field(default_factory=TrainConfig)   # the recipe every cell starts from
    noise: str = "symmetric"        # a noise model with a rate (SWEEPABLE_NOISE)
    rates: tuple = (0.0, 0.2, 0.4, 0.6)   # requested noise rates in [0, 1)
    losses: tuple = ("ce",)         # loss names (noisycore.catalog.LOSS_HELP)
    methods: tuple = ("standard",)  # method names (config.METHOD_NAMES)
    seeds: tuple = (0,)             # seeds of the noise and of the training

    def __post_init__(self):
        from noisycore.catalog import LOSS_HELP

        if isinstance(self.base, dict):
            object.__setattr__(self, "base", TrainConfig.from_dict(self.base))
        if not isinstance(self.base, TrainConfig):
            raise ConfigError(f"base must be a TrainConfig, got {type(self.base).__name__}")
        if self.base.labels_path:
            raise ConfigError("a sweep injects noise at each rate, so its base config cannot train on a labels "
                              f"file (labels_path={self.base.labels_path!r}); leave labels_path unset")
        check_choice("sweep noise model", self.noise, SWEEPABLE_NOISE)
        object.__setattr__(self, "rates", _tuple("rates", self.rates, float))
        bad = [r for r in self.rates if not 0.0 <= r < 1.0]
        if bad:
            raise ConfigError(f"rates hold {bad[0]:g}, outside [0, 1); use e.g. 0,0.2,0.4")
        object.__setattr__(self, "losses", _tuple("losses", self.losses, str))
        object.__setattr__(self, "methods", _tuple("methods", self.methods, str))
        object.__setattr__(self, "seeds", _tuple("seeds", self.seeds, int))
        for loss in self.losses:
            check_choice("loss", loss, tuple(LOSS_HELP))
        for method in self.methods:
            check_choice("method", method, METHOD_NAMES)
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds={list(self.seeds)} must be non-negative integers")
        n = len(self.rates) * len(self.losses) * len(self.methods) * len(self.seeds)
        if n > MAX_CELLS:
            raise ConfigError(f"the sweep has {n} cells (more than {MAX_CELLS}); use fewer rates, losses or seeds")

    def to_dict(self) -> dict:
        return {"base": self.base.to_dict(), "noise": self.noise, "rates": list(self.rates),
                "losses": list(self.losses), "methods": list(self.methods), "seeds": list(self.seeds)}


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    loss: str
    method: str
    rate: float
    seed: int

    @property
    def name(self) -> str:
        """The run folder name, e.g. ``gce-standard-r0.40-s0``."""
        return f"{self.loss}-{self.method}-r{self.rate:.2f}-s{self.seed}"

    @property
    def recipe(self) -> str:
        """The line a cell belongs to in the sweep chart: the loss, with the method unless standard."""
        return self.loss if self.method == "standard" else f"{self.method} + {self.loss}"


def cells(spec: SweepSpec) -> list:
    """All cells, seed by seed (a first complete chart comes early), then rate, loss, method."""
    return [Cell(loss, method, rate, seed) for seed in spec.seeds for rate in spec.rates
            for loss in spec.losses for method in spec.methods]


def cell_config(spec: SweepSpec, cell: Cell) -> TrainConfig:
    """The TrainConfig of one cell (see SweepSpec)."""
    base = spec.base
    noise = NoiseConfig(**{**base.noise.to_dict(), "model": spec.noise, "rate": cell.rate, "seed": cell.seed})
    return base.replace(loss=cell.loss, loss_params=base.loss_params if cell.loss == base.loss else (),
                        method=cell.method, method_params=base.method_params if cell.method == base.method else (),
                        noise=noise, seed=cell.seed)


# ------------------------------------------------------------------------------ the sweep folder
def load_spec(sweep_dir) -> SweepSpec:
    """sweep.json of a sweep folder; a missing or corrupt file raises UserError naming it."""
    path = Path(sweep_dir) / SWEEP_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise UserError(f"{sweep_dir} is not a sweep folder (no {SWEEP_FILE}); start one with `noisycore sweep`") from None
    try:
        return SweepSpec.from_json(text)
    except ConfigError as e:
        raise UserError(f"{path} is corrupt or from another version: {e}") from None


def create_sweep(spec: SweepSpec, out_dir) -> Path:
    """Write sweep.json into ``out_dir`` (made if needed) and return it; an existing sweep with the
    same grid is returned as is (resume), one with another grid is an error."""
    if not isinstance(spec, SweepSpec):
        raise UserError(f"create_sweep needs a SweepSpec, got {type(spec).__name__}")
    for cell in cells(spec):           # every cell's config must be valid before anything is written
        try:
            cell_config(spec, cell)
        except ConfigError as e:
            raise ConfigError(f"cell {cell.name}: {e}") from None
    out = Path(out_dir)
    if (out / SWEEP_FILE).exists():
        if load_spec(out).to_dict() != spec.to_dict():
            raise UserError(f"{out} holds a different sweep; rerun it with the same options to resume it, "
                            "or choose another --out folder")
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not a sweep folder; choose a new or empty --out folder")
    out.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_text(out / SWEEP_FILE, spec.to_json())
    write_summary(out)
    return out


def cell_status(sweep_dir, cell: Cell) -> dict:
    """The cell's run status (jobs.poll: a dead worker's run is failed); state "missing" if never started."""
    path = Path(sweep_dir) / cell.name
    if not (path / "status.json").exists():
        return {"state": "missing"}
    return jobs.poll(path)


def summary_table(sweep_dir) -> pd.DataFrame:
    """One row per cell of the grid (SUMMARY_COLUMNS), read from the cell folders now."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for cell in cells(load_spec(sweep_dir)):
        summary = runs.read_summary(sweep_dir / cell.name) or {}
        metrics_rows = len(runs.read_metrics(sweep_dir / cell.name)) if (sweep_dir / cell.name).is_dir() else 0
        rows.append({"recipe": cell.recipe, "loss": cell.loss, "method": cell.method, "rate": cell.rate,
                     "seed": cell.seed, "state": cell_status(sweep_dir, cell).get("state"),
                     **{k: summary.get(k) for k in SUMMARY_COLUMNS[6:11]},
                     "epochs_done": summary.get("epochs_done", metrics_rows), "run": cell.name})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def write_summary(sweep_dir) -> pd.DataFrame:
    """Rewrite summary.csv (atomically) from the cell folders; returns the table."""
    table = summary_table(sweep_dir)
    runs.atomic_write_text(Path(sweep_dir) / SUMMARY_FILE, table.to_csv(index=False))
    return table


def finished_only(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a summary table whose run finished (what the sweep chart draws)."""
    return table[table["state"] == "finished"].reset_index(drop=True)


# ------------------------------------------------------------------------------ status
def _write_status(sweep_dir: Path, **changes) -> dict:
    status = {**_read_status(sweep_dir), **changes, "updated": runs.now_iso()}
    runs.write_json(sweep_dir / STATUS_FILE, status)
    return status


def _read_status(sweep_dir: Path) -> dict:
    import json

    try:
        data = json.loads((Path(sweep_dir) / STATUS_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def sweep_status(sweep_dir) -> dict:
    """State and progress: ``state`` (STATES), ``done`` / ``failed`` / ``total`` cells, ``cell`` in training."""
    sweep_dir = Path(sweep_dir)
    status = _read_status(sweep_dir)
    states = [cell_status(sweep_dir, c).get("state") for c in cells(load_spec(sweep_dir))]
    done, total = states.count("finished"), len(states)
    alive = jobs.pid_alive(status.get("pid"))
    if alive:
        state = "stopping" if stop_requested(sweep_dir) else "running"
    elif done == total:
        state = "finished"
    else:
        state = "stopped" if status.get("state") in ("stopped", "stopping") or stop_requested(sweep_dir) \
            else "incomplete"
    return {**status, "state": state, "done": done, "failed": states.count("failed"), "total": total,
            "active": alive}


def stop_requested(sweep_dir) -> bool:
    return jobs.TERM.is_set() or (Path(sweep_dir) / STOP_FILE).exists()


def list_sweeps(root=None) -> pd.DataFrame:
    """One row per sweep folder under ``root`` (newest first): name, state, done, total, path."""
    root = Path(root) if root is not None else default_runs_dir()
    rows = []
    dirs = sorted((p for p in root.glob(f"*/{SWEEP_FILE}")), key=lambda p: p.stat().st_mtime, reverse=True) \
        if root.is_dir() else []
    for path in dirs:
        try:
            s = sweep_status(path.parent)
        except UserError:
            continue
        rows.append({"name": path.parent.name, "state": s["state"], "done": s["done"], "total": s["total"],
                     "path": str(path.parent)})
    return pd.DataFrame(rows, columns=["name", "state", "done", "total", "path"])


# ------------------------------------------------------------------------------ training the cells
def prepare_cell(sweep_dir: Path, cell: Cell, config: TrainConfig, pass_id: str) -> Path:
    """A fresh run folder for the cell (an unfinished earlier attempt is deleted first)."""
    return runs.init_run(Path(sweep_dir) / cell.name, config, pid=os.getpid(), sweep_pass=pass_id)


def _wait_for_slot(sweep_dir: Path, max_parallel: int) -> Optional[jobs.SlotLock]:
    """Block until a training slot of the sweep's parent folder is free (None if stopped meanwhile)."""
    root = sweep_dir.parent
    while not stop_requested(sweep_dir):
        for i in range(max_parallel):
            lock = jobs.try_lock(root / (jobs.LOCK_NAME if i == 0 else f"{jobs.LOCK_NAME}.{i}"))
            if lock is not None:
                return lock
        time.sleep(jobs.WAIT_SECONDS)
    return None


def _should_run(sweep_dir: Path, cell: Cell, pass_id: str) -> bool:
    status = runs.read_status(sweep_dir / cell.name) if (sweep_dir / cell.name).is_dir() else {}
    if status.get("state") == "finished":
        return False
    return status.get("sweep_pass") != pass_id      # not yet tried in this pass (by any worker)


def run_cell(sweep_dir, cell: Cell, *, pass_id: str, max_parallel: int = 1, verbose: int = 0) -> Optional[str]:
    """Train one cell unless it is finished or another worker has it; returns its final state or None."""
    sweep_dir = Path(sweep_dir).resolve()
    claim = jobs.try_lock(sweep_dir / f".{cell.name}.lock")
    if claim is None:
        return None
    try:
        if not _should_run(sweep_dir, cell, pass_id):
            return None
        config = cell_config(load_spec(sweep_dir), cell)
        path = prepare_cell(sweep_dir, cell, config, pass_id)
        slot = _wait_for_slot(sweep_dir, max_parallel)
        if slot is None:
            runs.update_status(path, state="stopped", error="stopped before it started", finished=runs.now_iso())
            return "stopped"
        try:
            from noisycore import train  # TensorFlow loads only when a cell trains
            import keras

            try:
                train.run(config, path, verbose=verbose)
            except Exception as e:   # noqa: BLE001 - the cell is marked failed; the sweep goes on
                print(f"{cell.name} failed: {train.one_line(e)}", file=sys.stderr, flush=True)
            keras.backend.clear_session()   # free the cell's graphs before the next one
        finally:
            slot.release()
        return runs.read_status(path).get("state")
    finally:
        claim.release()


def work(sweep_dir, *, max_parallel: int = 1, verbose: int = 0, pass_id: Optional[str] = None,
         report: Optional[Callable] = None, owner: bool = True) -> pd.DataFrame:
    """Train the sweep's unfinished cells one after another in this process; returns the summary.

    ``report(cell, state, summary_row)`` is called after each trained cell. ``owner`` writes
    sweep_status.json (a child worker of ``--jobs N`` leaves that to its parent).
    """
    sweep_dir = Path(sweep_dir).resolve()
    spec = load_spec(sweep_dir)
    pass_id = pass_id or f"{time.time():.6f}-{os.getpid()}"
    if owner:
        _write_status(sweep_dir, state="running", pid=os.getpid(), started=runs.now_iso(), cell=None, error=None)
    try:
        for cell in cells(spec):
            if stop_requested(sweep_dir):
                break
            if owner:
                _write_status(sweep_dir, cell=cell.name)
            state = run_cell(sweep_dir, cell, pass_id=pass_id, max_parallel=max_parallel, verbose=verbose)
            table = write_summary(sweep_dir)
            if state is not None and report is not None:
                report(cell, state, table[table["run"] == cell.name].iloc[0].to_dict())
    finally:
        if owner:
            _write_status(sweep_dir, state="stopped" if stop_requested(sweep_dir) else "ended", cell=None,
                          pid=None, finished=runs.now_iso())
    return write_summary(sweep_dir)


def _spawn(sweep_dir: Path, log_name: str, *extra, detach: bool, worker: Optional[list] = None) -> subprocess.Popen:
    return jobs.spawn([*(worker or ["noisycore.sweeps", "worker"]), sweep_dir, *extra], sweep_dir / log_name,
                      detach=detach)


def resume_sweep(sweep_dir, *, worker: Optional[list] = None) -> dict:
    """Start a detached background worker that trains the sweep's unfinished cells; returns the status.
    ``worker``: the module and arguments run instead of this module's worker, before the sweep folder
    (noisycore.fanout's follower: the cells as cluster jobs)."""
    sweep_dir = Path(sweep_dir).resolve()
    load_spec(sweep_dir)
    status = sweep_status(sweep_dir)
    if status["active"]:
        raise UserError(f"sweep {sweep_dir.name} is already running (pid {status.get('pid')}); stop it first")
    (sweep_dir / STOP_FILE).unlink(missing_ok=True)
    proc = _spawn(sweep_dir, "log.txt", detach=True, worker=worker)
    _write_status(sweep_dir, state="running", pid=proc.pid, started=runs.now_iso(), error=None)
    return sweep_status(sweep_dir)


def start_sweep(spec: SweepSpec, *, root=None, name: Optional[str] = None, worker: Optional[list] = None) -> Path:
    """Create ``<root>/sweep-NAME`` and train it in a detached background worker (``worker``: see
    resume_sweep); returns the folder."""
    root = Path(root) if root is not None else default_runs_dir()
    slug = runs.slug(name or f"{spec.noise}-{'-'.join(spec.losses)}")
    if not slug:
        raise UserError(f"sweep name {name!r} has no letters or digits; use e.g. 'gce-vs-ce'")
    out = root.resolve() / f"sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{slug}"
    create_sweep(spec, out)
    resume_sweep(out, worker=worker)
    return out


def stop_sweep(sweep_dir) -> dict:
    """Ask a sweep to stop: no new cell starts and the cell in training ends within one batch
    (it is trained again on resume). Returns the status."""
    sweep_dir = Path(sweep_dir)
    load_spec(sweep_dir)
    runs.atomic_write_text(sweep_dir / STOP_FILE, runs.now_iso())
    for cell in cells(load_spec(sweep_dir)):
        if cell_status(sweep_dir, cell).get("state") in runs.ACTIVE_STATES:
            jobs.stop(sweep_dir / cell.name)
    return sweep_status(sweep_dir)


def run_parallel(sweep_dir, *, n_jobs: int, report: Optional[Callable] = None, poll: float = 2.0) -> pd.DataFrame:
    """Train the unfinished cells with ``n_jobs`` worker processes (each takes one training slot)."""
    sweep_dir = Path(sweep_dir).resolve()
    pass_id = f"{time.time():.6f}-{os.getpid()}"
    _write_status(sweep_dir, state="running", pid=os.getpid(), started=runs.now_iso(), error=None)
    procs = [_spawn(sweep_dir, f"worker-{i}.log", "--child", "--pass-id", pass_id, "--max-parallel", str(n_jobs),
                    detach=False) for i in range(n_jobs)]
    seen = set()
    try:
        while True:
            running = any(p.poll() is None for p in procs)
            table = write_summary(sweep_dir)
            for row in table.to_dict("records"):
                if row["run"] not in seen and row["state"] in ("finished", "failed", "stopped") and \
                        runs.read_status(sweep_dir / row["run"]).get("sweep_pass") == pass_id:
                    seen.add(row["run"])
                    if report is not None:
                        report(next(c for c in cells(load_spec(sweep_dir)) if c.name == row["run"]), row["state"], row)
            if not running:
                return table
            time.sleep(poll)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    finally:
        _write_status(sweep_dir, state="stopped" if stop_requested(sweep_dir) else "ended", pid=None,
                      finished=runs.now_iso())


# ------------------------------------------------------------------------------ command line
def _list_of(convert, what: str):
    def parse(text: str) -> tuple:
        items = [t.strip() for t in str(text).split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{what} is empty; give a comma-separated list")
        try:
            return tuple(convert(t) for t in items)
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {what}") from None
    return parse


def add_cli(subparsers) -> None:
    """The ``noisycore sweep`` sub-command (registered through cli._EXTRA_COMMANDS)."""
    from noisycore.cliargs import add_train_options, parse_rate

    p = subparsers.add_parser("sweep", help="train a grid of noise rates x losses x methods x seeds (resumable)",
                              description="Train one run per cell of the grid into --out, then write summary.csv. "
                                          "Run the same command again to resume: finished cells are not rerun.")
    add_train_options(p)
    p.add_argument("--rates", type=_list_of(parse_rate, "noise rates"), default=(0.0, 0.2, 0.4, 0.6),
                   help="noise rates, e.g. 0,0.2,0.4,0.6 (default)")
    p.add_argument("--losses", type=_list_of(str, "losses"), default=None, help="losses, e.g. ce,sce,gce")
    p.add_argument("--methods", type=_list_of(str, "methods"), default=None, help="methods, e.g. standard,coteaching")
    p.add_argument("--seeds", type=_list_of(int, "seeds"), default=None, help="seeds of noise and training, e.g. 0,1,2")
    p.add_argument("--jobs", type=int, default=1, help="train this many cells at once in separate processes")
    p.add_argument("--out", required=True, help="the sweep folder, e.g. runs/sweep-gce")
    p.set_defaults(func=cmd_sweep)


def spec_from_args(args) -> SweepSpec:
    """The SweepSpec the `sweep` options describe (the train options make the base recipe)."""
    from noisycore.cliargs import train_config

    if args.labels:
        raise UserError("a sweep injects noise at each rate; --labels cannot be used (give --noise and --rates)")
    if args.rate is not None:
        raise UserError("a sweep takes --rates (a list, e.g. 0,0.2,0.4), not --rate")
    if not isinstance(args.jobs, int) or not 1 <= args.jobs <= jobs.MAX_PARALLEL:
        raise UserError(f"--jobs {args.jobs} must be in 1..{jobs.MAX_PARALLEL}")
    base = train_config(args)
    return SweepSpec(base=base, noise=args.noise or base.noise.model, rates=args.rates,
                     losses=args.losses or (base.loss,), methods=args.methods or (base.method,),
                     seeds=args.seeds or (base.seed,))


def cmd_sweep(args, *, cluster_runner: Optional[Callable] = None) -> int:
    """``noisycore sweep``; ``cluster_runner(sweep_dir, report=)``: the cells as cluster jobs (noisycore.fanout)."""
    from noisycore.console import import_quietly

    spec = spec_from_args(args)
    sweep_dir = create_sweep(spec, args.out)
    grid = cells(spec)
    done = sum(cell_status(sweep_dir, c).get("state") == "finished" for c in grid)
    print(f"sweep {sweep_dir}: {len(grid)} cells ({len(spec.rates)} rates x {len(spec.losses)} losses x "
          f"{len(spec.methods)} methods x {len(spec.seeds)} seeds); {done} already finished, "
          f"{len(grid) - done} to train", flush=True)
    count = iter(range(done + 1, len(grid) + 1))

    def report(cell, state, row):
        print(f"[{next(count, '?')}/{len(grid)}] {cell.name}: {state}, test accuracy {pct(row.get('test_accuracy'), missing='n/a')}"
              f", train accuracy on true labels {pct(row.get('train_acc_true'), missing='n/a')}", flush=True)

    try:
        if cluster_runner is not None:
            table = cluster_runner(sweep_dir, report=report)
        elif args.jobs > 1:
            table = run_parallel(sweep_dir, n_jobs=args.jobs, report=report)
        else:
            if done < len(grid):
                import logging

                import_quietly("noisycore.train")   # hide TensorFlow's start-up chatter
                logging.getLogger("tensorflow").setLevel(logging.ERROR)   # retracing warnings between cells
            table = work(sweep_dir, max_parallel=1, report=report)
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume {sweep_dir}", file=sys.stderr)
        return 130
    finished = int((table["state"] == "finished").sum())
    print(f"{finished} of {len(table)} cells finished; summary: {Path(sweep_dir) / SUMMARY_FILE}")
    if len(finished_only(table)):
        mean = finished_only(table).groupby(["recipe", "rate"])["test_accuracy"].mean().unstack("rate")
        print("mean test accuracy (rows: recipe, columns: noise rate):")
        print(mean.map(lambda v: pct(v, missing="n/a")).to_string())
    return 0 if finished == len(table) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noisycore.sweeps", description="Noisy Label Lab sweep worker")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="train the unfinished cells of a sweep folder (started by the app)")
    w.add_argument("sweep_dir")
    w.add_argument("--max-parallel", type=int, default=1)
    w.add_argument("--pass-id", default=None)
    w.add_argument("--child", action="store_true", help="one of several workers started by `sweep --jobs N`")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, jobs.on_sigterm)
    try:
        work(args.sweep_dir, max_parallel=args.max_parallel, verbose=2, pass_id=args.pass_id, owner=not args.child,
             report=lambda cell, state, row: print(f"{cell.name}: {state}", flush=True))
    except UserError as e:
        print(f"sweep worker: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
