"""Run folders: one folder per training run under ``default_runs_dir()``.

    <run_id>/config.json      the TrainConfig (everything needed to rerun it)
             status.json      state queued | running | finished | stopped | failed, progress, pid, times
             labels.csv       the labels trained on (noise module format) + noise.json
             metrics.csv      one row per epoch, appended (and fsynced) as each epoch ends
             margins.npy      (E, N) float16 margins log p[given] - max_{k != given} log p[k] (AUM; NaN for validation images)
             best.keras, last.keras, predictions.npz, summary.json, log.txt, corrections.csv
             owner.json       whose run it is and whether it is shared (noisycore.workspaces)

Run ids sort by creation time: ``20261128-071530-ce-symmetric40``. Files that other processes
read while a run is live (status.json, config.json, summary.json) are written atomically (temp
file + os.replace), so a reader never sees half a file.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from noisycore import workspaces
from noisycore.config import ConfigError, TrainConfig, default_runs_dir
from noisycore.errors import UserError
from noisycore.util import atomic_write_text, write_json

if TYPE_CHECKING:   # pandas is imported where it is used: a queued worker waits without it (~15 MB, not ~100)
    import pandas as pd

STATES = ("queued", "running", "finished", "stopped", "failed")
ACTIVE_STATES = ("queued", "running")
METRIC_COLUMNS = ("epoch", "loss", "accuracy", "train_acc_true", "train_acc_given", "memorized",
                  "val_loss", "val_accuracy", "test_accuracy", "lr", "seconds", "fit_seconds")
STOP_FILE = "stop.request"
_STATUS_LOCK = threading.Lock()   # a worker's heartbeat thread and its training both update status.json
LIST_COLUMNS = ("id", "state", "owner", "model", "loss", "method", "noise", "rate", "epochs_done", "epochs",
                "best_val_acc", "test_acc", "created", "path")


@dataclass(frozen=True, eq=False)
class Run:
    """A run folder as read from disk."""

    path: Path
    config: TrainConfig
    status: dict
    metrics: pd.DataFrame     # one row per finished epoch (columns METRIC_COLUMNS + method extras)
    summary: Optional[dict]   # summary.json once the run has ended, else None

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def state(self) -> str:
        return self.status.get("state", "unknown")


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def run_data_config(run, *, training_subset: bool = True):
    """The DataConfig of a run (a TrainConfig or a run folder). With ``training_subset`` it loads the
    images the run trained on (as noisycore.train.prepare: the run's ``max_train`` applied); without,
    every image of the dataset (the run's labels.csv then picks its images: review and export)."""
    config = run if isinstance(run, TrainConfig) else read_config(run)
    data = config.data
    if training_subset and config.max_train is not None and not config.labels_path:
        data = data.replace(max_train=min(config.max_train, data.max_train or config.max_train))
    return data


# ------------------------------------------------------------------------------ creating runs
def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40]


def describe(config: TrainConfig) -> str:
    """Short description for the run id, e.g. ``ce-symmetric40``, ``coteaching-gce-pair20``, or
    ``gce-builtin-pair-40-s0`` for a saved label set (its folder name; a labels.csv path names its folder)."""
    if config.labels_path:
        from noisycore.naming import label_set_name

        noise = slug(label_set_name(config.labels_path)) or "labels"
    elif config.noise.model in ("none", "matrix", "human"):
        noise = config.noise.model + (f"-{config.noise.label_set}" if config.noise.label_set else "")
    else:
        noise = f"{config.noise.model}{round(config.noise.rate * 100)}"
    parts = ([] if config.method == "standard" else [config.method]) + [config.loss, noise]
    return slug("-".join(parts))


def create_run(config: TrainConfig, *, root=None, name: Optional[str] = None, owner: Optional[str] = None) -> Path:
    """Make a new run folder holding config.json and a queued status.json; return its path.
    ``owner``: the workspace name the run belongs to (status.json and owner.json; None: nobody's)."""
    if not isinstance(config, TrainConfig):
        raise UserError(f"create_run needs a TrainConfig, got {type(config).__name__}")
    owner = None if owner is None else workspaces.check_name(owner)
    root = Path(root) if root is not None else default_runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    desc = slug(name) if name else describe(config)
    if name is not None and not desc:
        raise UserError(f"run name {name!r} has no letters or digits; use e.g. 'gce-test'")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    status = {"state": "queued", "error": None, "epoch": 0, "epochs": config.epochs, "batch": 0, "batches": None,
              "created": now_iso(), "started": None, "finished": None, "pid": None, "owner": owner}
    for attempt in range(1000):
        run_id = f"{stamp}-{desc}" + (f"-{attempt + 1}" if attempt else "")
        path = root / run_id
        if path.exists():
            continue
        # Built under a hidden name and renamed into place, so nobody ever sees a run without its config.
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", suffix=".creating", dir=root))
        atomic_write_text(tmp / "config.json", config.to_json())
        write_status(tmp, status)
        if owner is not None:
            workspaces.write_owner(tmp, owner)
        try:
            os.rename(tmp, path)   # fails if another process took the name meanwhile: try the next one
            return path
        except OSError:
            shutil.rmtree(tmp)
    raise UserError(f"could not create a unique run folder under {root}")


def init_run(path, config: TrainConfig, **status) -> Path:
    """Make the run folder ``path`` afresh (an earlier attempt is deleted) with config.json and a queued
    status.json (plus ``status`` fields): a sweep cell or a cross-validation fold, ready for a worker."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    atomic_write_text(path / "config.json", config.to_json())
    write_status(path, {"state": "queued", "error": None, "epoch": 0, "epochs": config.epochs, "batch": 0,
                        "batches": None, "created": now_iso(), "started": None, "finished": None, "pid": None,
                        **status})
    return path


# ------------------------------------------------------------------------------ status
def read_status(run_dir) -> dict:
    """status.json as a dict; a missing or unreadable file gives ``{"state": "unknown", ...}``."""
    path = Path(run_dir) / "status.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    except (OSError, ValueError):
        pass
    return {"state": "unknown", "error": f"no readable status.json in {run_dir}"}


def write_status(run_dir, status: dict) -> dict:
    """Write status.json atomically (adds ``updated``); returns what was written."""
    state = status.get("state")
    if state not in STATES:
        raise UserError(f"state={state!r} is not valid; choose one of: {', '.join(STATES)}")
    status = {**status, "updated": now_iso(), "updated_ts": time.time()}
    write_json(Path(run_dir) / "status.json", status)
    return status


def update_status(run_dir, **changes) -> dict:
    """Read status.json, apply ``changes`` and write it back atomically (one writer at a time in this process)."""
    with _STATUS_LOCK:
        status = read_status(run_dir)
        if status.get("state") == "unknown":
            status = {"state": "queued"}
        status.pop("updated", None)
        return write_status(run_dir, {**status, **changes})


def as_requested(saved, requested):
    """A run's saved config with the choices the run made for its data put back as they were requested
    (augment / tta "auto", an unset image size: see record_choice), to ask "was this run trained as asked?"."""
    changes = {k: getattr(requested, k) for k in ("augment", "tta", "mixed_precision") if getattr(requested, k) == "auto"}
    changes.update({k: None for k in ("model_width", "model_activation") if getattr(requested, k) is None})
    if requested.data.image_size is None:
        changes["data"] = saved.data.replace(image_size=None)
    return saved.replace(**changes)


def record_choice(run_dir, config, note: str):
    """A choice a run made for the user's data (tiny images scaled up, mirroring off): config.json holds the
    chosen values, so detection, cross-validation folds and retrains use the same, and status.json's ``note``
    says it in words for the pages and the CLI (notes of one run are joined). Returns ``config``."""
    atomic_write_text(Path(run_dir) / "config.json", config.to_json())
    add_note(run_dir, note)
    return config


def add_note(run_dir, note: str) -> None:
    """Add a sentence to status.json's ``note`` (shown on the pages and by the CLI), once: a note the run
    already holds is not repeated."""
    earlier = read_status(run_dir).get("note")
    if earlier and note in earlier:
        return
    update_status(run_dir, note=f"{earlier} {note}" if earlier else note)


# ------------------------------------------------------------------------------ metrics
def append_metrics_row(run_dir, row: dict, columns) -> None:
    """Append one epoch row to metrics.csv (header on first write), flushed and fsynced."""
    path = Path(run_dir) / "metrics.csv"
    new_file = not path.exists() or path.stat().st_size == 0
    fmt = lambda v: "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))  # noqa: E731
    with open(path, "a", encoding="utf-8", newline="") as f:
        if new_file:
            f.write(",".join(columns) + "\n")
        f.write(",".join(fmt(row.get(c)) for c in columns) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir) -> pd.DataFrame:
    """metrics.csv as a DataFrame; a truncated last line (a crash mid-write) is dropped."""
    import pandas as pd

    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not lines:
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    width = lines[0].count(",")
    if not text.endswith("\n") or (len(lines) > 1 and lines[-1].count(",") != width):
        lines = lines[:-1]          # the last row was being written when the process died
    if not lines:                   # it died while writing the header
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    lines = [lines[0]] + [ln for ln in lines[1:] if ln.count(",") == width]
    try:
        df = pd.read_csv(io.StringIO("\n".join(lines) + "\n"))
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    for col in df.columns:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


# ------------------------------------------------------------------------------ loading runs
def read_config(run_dir) -> TrainConfig:
    """config.json of a run; a missing or corrupt file raises UserError naming it."""
    path = Path(run_dir) / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror or e}); is {Path(run_dir).name} a run folder?") from None
    try:
        return TrainConfig.from_json(text)
    except ConfigError as e:
        raise UserError(f"{path} is corrupt or from another version: {e}") from None


def labels_run(labels_path) -> Optional[Path]:
    """The run folder a labels path names (the folder, or its labels.csv, holds config.json), else None: a
    run's labels.csv lists the images it trained on (``train --labels RUN_DIR``, the teaching twin)."""
    if not labels_path:
        return None
    path = Path(str(labels_path))
    folder = path.parent if path.name.lower() == "labels.csv" else path
    return folder if (folder / "config.json").is_file() else None


def read_summary(run_dir) -> Optional[dict]:
    path = Path(run_dir) / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def load_run(path) -> Run:
    """Read a run folder (config, status, metrics, summary)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run folder {path} does not exist")
    return Run(path=path, config=read_config(path), status=read_status(path),
               metrics=read_metrics(path), summary=read_summary(path))


def run_dirs(root=None) -> list:
    """Run folders under ``root`` (those holding config.json or status.json), oldest first."""
    root = Path(root) if root is not None else default_runs_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and ((p / "config.json").exists() or (p / "status.json").exists()))


def _list_row(path: Path) -> dict:
    status = read_status(path)
    row = {c: None for c in LIST_COLUMNS}
    row.update(id=path.name, state=status.get("state", "unknown"), created=status.get("created"), path=str(path),
               owner=workspaces.owner_of(path))
    try:
        c = read_config(path)
    except UserError:
        row["state"] = "corrupt" if row["state"] == "unknown" else row["state"]
        return row
    row.update(model=c.model, loss=c.loss, method=c.method, epochs=c.epochs,
               noise="labels file" if c.labels_path else c.noise.model,
               rate=None if c.labels_path or c.noise.model in ("none", "matrix", "human") else c.noise.rate)
    metrics = read_metrics(path)
    row["epochs_done"] = int(len(metrics))
    if len(metrics) and "val_accuracy" in metrics:
        row["best_val_acc"] = float(metrics["val_accuracy"].max())
    summary = read_summary(path)
    if summary and summary.get("test_accuracy") is not None:
        row["test_acc"] = float(summary["test_accuracy"])
    return row


def list_runs(root=None) -> pd.DataFrame:
    """One row per run folder, newest first (columns LIST_COLUMNS)."""
    import pandas as pd

    rows = [_list_row(p) for p in reversed(run_dirs(root))]
    return pd.DataFrame(rows, columns=list(LIST_COLUMNS))


def stop_requested(run_dir) -> bool:
    return (Path(run_dir) / STOP_FILE).exists()
