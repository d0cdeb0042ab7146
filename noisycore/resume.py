"""Resume a run from its last complete epoch after its process died (a cluster node lost mid-run).

Keras' ``BackupAndRestore`` saves the model and optimizer state and the epoch number into
``RUN/backup/`` at the end of every epoch (after metrics.csv got the epoch's row) and deletes it when
training ends (finished or stopped). A worker that trains the same run folder again (Ray retries the
task on another node) finds the backup and ``fit`` continues with the next epoch. Before it does,
:class:`EpochBackup` cuts metrics.csv and margins.npy back to the backed-up epochs, so an epoch whose
row was written but whose backup was not is trained again and recorded once, and the best-epoch
checkpoint keeps competing against the best epoch before the move.

Restored: weights, optimizer state (incl. Keras' EMA), epoch, the learning-rate schedule (a function of
the epoch), the recorded margins. Not restored: the shuffling order, a method's own state (confidence
weighting's weights, label correction's relabelled labels start again from the restored epoch's model),
the patience counters of early stopping and plateau.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from noisycore import runs
from noisycore.util import atomic_write_text, save_npy

BACKUP_DIR = "backup"


def backed_up_epoch(run_dir) -> int:
    """The number of complete epochs saved in RUN/backup (0 if none)."""
    import json

    try:
        meta = json.loads((Path(run_dir) / BACKUP_DIR / "training_metadata.json").read_text(encoding="utf-8"))
        return int(meta.get("epoch") or 0)
    except (OSError, ValueError, TypeError):
        return 0


def trim_metrics(run_dir, epochs: int) -> int:
    """Keep the metrics.csv rows of epochs 1..``epochs`` (each once, the last copy); returns the rows kept."""
    path = Path(run_dir) / "metrics.csv"
    table = runs.read_metrics(run_dir)
    if not len(table):
        return 0
    text = path.read_text(encoding="utf-8").splitlines()
    header, rows = text[0], text[1:1 + len(table)]
    keep = {}
    for line, epoch in zip(rows, table["epoch"].tolist()):
        if epoch == epoch and 1 <= int(epoch) <= epochs:   # not NaN, in range; a later copy replaces an earlier
            keep[int(epoch)] = line
    atomic_write_text(path, "\n".join([header] + [keep[e] for e in sorted(keep)]) + "\n")
    return len(keep)


class EpochBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore into RUN/backup that also cuts the run's per-epoch records back to the restored
    epoch (see the module). Last in the callback list: it saves after the epoch was recorded."""

    def __init__(self, run_dir: Path, *, recorder, checkpoint):
        super().__init__(str(Path(run_dir) / BACKUP_DIR), save_freq="epoch", delete_checkpoint=True,
                         double_checkpoint=True)   # a node killed mid-save leaves the previous epoch
        self.run_dir, self.recorder, self.checkpoint = Path(run_dir), recorder, checkpoint

    def on_train_begin(self, logs=None):
        if backed_up_epoch(self.run_dir) <= 0:
            return          # nothing to restore (and an unbuilt model need not be built for it)
        super().on_train_begin(logs)
        epoch = int(self.model._initial_epoch or 0)
        kept = trim_metrics(self.run_dir, epoch)
        margins_path = self.run_dir / "margins.npy"
        if margins_path.is_file():
            rows = np.load(margins_path, allow_pickle=False)[:epoch]
            self.recorder.margins = list(rows)
            save_npy(margins_path, rows)
        metrics = runs.read_metrics(self.run_dir)
        if self.checkpoint.save_best_only and len(metrics) and "val_accuracy" in metrics:
            self.checkpoint.best = float(metrics["val_accuracy"].max())
        runs.update_status(self.run_dir, resumed_at_epoch=epoch, epoch=epoch, epochs_done=kept)
