"""The teaching comparison (issue 29, item 6): the same noisy labels learned by a network from scratch and by
a head on pretrained features. Does a head on good features memorize the wrong labels too?

    twin_config(run_config, run_dir, num_images=)   the pretrained run on a run's exact labels (pure)
    same_labels_config(config, run_config, run_dir, keep=)   any config trained on a run's labels (the CLI's
                                                    ``train --labels RUN_DIR``; the twin is one of them)
    refusal(run_dir) -> str | None                  why a run cannot get a twin, in one line
    find_twin(run_dir, candidates) -> Path | None   a twin that exists already (reused, never trained again)
    start_twin(run_dir, ...) -> (Path, started)     the twin, through the executor the Train page uses
    pairs(configs) -> [(scratch, twin)]             which of the compared runs form a pair (pure)
    lesson(scratch, twin, ...) -> str               the lesson in one line, from both metrics.csv (pure)
    lesson_lines(run_dirs) -> [str]                 the Compare view's lines

"The same labels" means the run's own labels.csv (the exact wrong labels it trained on, whichever way they
were made), its images (``runs.run_data_config``: the training subset it loaded), its seed (so the same
validation split: ``train.validation_split`` draws it from the given labels and the seed) and its validation
share and ``max_train``. No TensorFlow here: the pages and the CLI import it freely.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping, Optional

from noisycore import runs
from noisycore.catalog import takes_embeddings
from noisycore.config import PRETRAINED_PRESET, TrainConfig
from noisycore.errors import UserError
from noisycore.util import pct

TWIN_PRESET = PRETRAINED_PRESET
BUTTON = "Same labels, pretrained features"


# ------------------------------------------------------------------------------ the twin's config (pure)
def same_labels_config(config: TrainConfig, run_config: TrainConfig, run_dir, *, keep=()) -> TrainConfig:
    """``config`` trained on the labels of the run ``run_dir`` (whose TrainConfig is ``run_config``): its
    labels.csv, the images it trained on, its noise settings (the record; the labels come from the file), seed,
    validation share, ``max_train`` and trusted validation. Fields named in ``keep`` stay ``config``'s (options
    a person gave). A head on pretrained features copying a from-scratch run does not swap itself to the pixels
    (``choose_features`` off): the comparison is about the features."""
    copied = {"data": runs.run_data_config(run_config), "noise": run_config.noise, "seed": run_config.seed,
              "val_fraction": run_config.val_fraction, "max_train": run_config.max_train,
              "trusted_val": run_config.trusted_val}
    changes = {k: v for k, v in copied.items() if k not in keep}
    changes["labels_path"] = str(Path(run_dir).resolve())
    if takes_embeddings(config.model) and not takes_embeddings(run_config.model):
        changes["choose_features"] = False
    return config.replace(**changes)


def twin_config(run_config: TrainConfig, run_dir, *, num_images: Optional[int] = None) -> TrainConfig:
    """The ``pretrained`` preset (its epochs for ``num_images`` training labels) on the labels of ``run_dir``."""
    return same_labels_config(TrainConfig.from_preset(TWIN_PRESET, num_images=num_images), run_config, run_dir)


def twin_name(run_id: str) -> str:
    """The twin's run name: 'pretrained-<the run's id>' (its date left out when the id would not fit the 40
    characters of a run name), so the pair reads as one: 20261207-180102-pretrained-173153-ce-symmetric40."""
    name = f"pretrained-{run_id}"
    return name if len(name) <= 40 else f"pretrained-{re.sub(r'^[0-9]{8}-', '', run_id)}"[:40]


# ------------------------------------------------------------------------------ which run, which twin
def norm(path) -> str:
    """A run folder as one string: absolute, links resolved; a labels.csv path names its folder."""
    p = Path(str(path))
    if p.name.lower() == "labels.csv":
        p = p.parent
    return os.path.normcase(os.path.realpath(str(p)))


def is_twin_of(config, run_dir) -> bool:
    """Whether ``config`` (a TrainConfig or its dict) is a head on pretrained features trained on the labels
    of the run ``run_dir``."""
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    return bool(cfg.get("labels_path")) and takes_embeddings(str(cfg.get("model"))) \
        and norm(cfg["labels_path"]) == norm(run_dir)


def pairs(configs: Mapping) -> list:
    """[(scratch run, its twin)] among ``configs`` (run folder -> TrainConfig or dict), in the given order:
    a twin is a head on pretrained features whose labels are another listed run's, trained from scratch."""
    items = [(p, c.to_dict() if hasattr(c, "to_dict") else dict(c or {})) for p, c in configs.items()]
    out = []
    for path, cfg in items:
        if takes_embeddings(str(cfg.get("model"))):
            continue
        twin = next((q for q, other in items if q != path and is_twin_of(other, path)), None)
        if twin is not None:
            out.append((path, twin))
    return out


def label_count(run_dir) -> Optional[int]:
    """How many training labels the run's label set holds (its noise.json), None when unknown."""
    try:
        meta = json.loads((Path(run_dir) / "noise.json").read_text(encoding="utf-8"))
        return int(meta["counts"]["labels"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def refusal(run_dir) -> Optional[str]:
    """Why the run ``run_dir`` cannot be trained again on pretrained features, in one line; None when it can."""
    from noisycore.datasets import cifar10_available
    from noisycore.naming import data_words

    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)   # UserError naming the file when it is unreadable
    name = run_dir.name
    if takes_embeddings(config.model):
        return (f"{name} already trains a head on pretrained features: pick a run trained from scratch to compare "
                "it with.")
    if config.aum_threshold_samples:
        return (f"{name} trained with AUM's threshold samples, so its labels include an extra class the images do "
                "not have: pick a run without them.")
    if not (run_dir / "labels.csv").is_file():
        return (f"{name} has no labels.csv (a run saves its labels when it starts training), so there are no "
                "labels to train again yet.")
    source = config.data.source
    if source == "cifar10" and not cifar10_available():
        return "CIFAR-10 is not on this computer: download it on the Data & noise page first."
    if source != "builtin" and source != "cifar10" and not Path(source).exists():
        return f"The images of {name} ({data_words(source)}) are not on this computer any more."
    return None   # a deleted label set of the run does not matter: the twin reads the run's own labels.csv


def find_twin(run_dir, *, candidates=None, root=None) -> Optional[Path]:
    """The newest run among ``candidates`` (run folders; default: every run under ``root``) that is the twin of
    ``run_dir`` and did not fail: queued, training, finished or stopped. None when there is none."""
    found = []
    for path in map(Path, candidates if candidates is not None else runs.run_dirs(root)):
        try:
            cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(cfg, dict) and is_twin_of(cfg, run_dir) and runs.read_status(path).get("state") != "failed":
            found.append(path)
    return max(found, key=lambda p: p.name) if found else None


def start_twin(run_dir, *, root=None, owner=None, cluster=None, cpus=None, candidates=None) -> tuple:
    """(twin folder, started): the run's twin when one exists (``candidates``: the run folders to look in,
    default every run under ``root``), else a new run of the ``pretrained`` preset on the run's labels, started
    by the executor the Train page uses (the local queue, or the cluster's). UserError with the one-line
    refusal when the run cannot have one; nothing is created then."""
    from noisycore import executors

    run_dir = Path(run_dir)
    reason = refusal(run_dir)
    if reason:
        raise UserError(reason)
    twin = find_twin(run_dir, candidates=candidates, root=root)
    if twin is not None:
        return twin, False
    config = twin_config(runs.read_config(run_dir), run_dir, num_images=label_count(run_dir))
    new = executors.executor(cluster).start(config, root=root, name=twin_name(run_dir.name), owner=owner, cpus=cpus)
    return new, True


# ------------------------------------------------------------------------------ the lesson (pure)
def _last(metrics, column: str):
    """(epoch, value) of the last epoch with a value in ``column``; (None, None) without one."""
    if metrics is None or column not in metrics or "epoch" not in metrics:
        return None, None
    rows = metrics[metrics[column].notna()]
    if not len(rows):
        return None, None
    row = rows.iloc[-1]
    return int(row["epoch"]), float(row[column])


def _peak(metrics, column: str):
    """(epoch, value) of the first epoch with the highest ``column``; (None, None) without one."""
    if metrics is None or column not in metrics or not metrics[column].notna().any():
        return None, None
    row = metrics.loc[metrics[column].idxmax()]
    return int(row["epoch"]), float(row[column])


def lesson(scratch, twin, *, truth_known: bool = True, epochs: tuple = (None, None), recipes: tuple = ()) -> str:
    """The lesson of a pair in one line, from the two runs' metrics.csv (DataFrames with ``epoch``,
    ``memorized``, ``test_accuracy``): the share of the wrong labels each had memorized after its last epoch
    (``memorized``: training images whose given label is wrong and predicted as given), test accuracy then,
    and the from-scratch run's peak. ``truth_known`` False (the user's own labels): nothing is memorized
    "wrong" (the truth is unknown), only held-out accuracy against the given labels. ``epochs``: the planned
    epochs of a run still training (it says 'epoch 3 of 30 so far'), None for one that ended; ``recipes``: the
    two runs' losses in words, named when they differ."""
    def when(metrics, planned):
        if metrics is None or "epoch" not in metrics or not metrics["epoch"].notna().any():
            return None
        epoch = int(metrics["epoch"].max())
        return f"epoch {epoch} of {planned} so far" if planned and epoch < int(planned) else f"epoch {epoch}"

    at = [when(m, e) for m, e in zip((scratch, twin), epochs)]
    if at[0] is None or at[1] is None:
        which = "the run from scratch" if at[0] is None else "the run on pretrained features"
        return f"Teaching comparison: {which} has no finished epoch yet; the lesson appears after its first."
    acc = [_last(m, "test_accuracy")[1] for m in (scratch, twin)]
    peak_epoch, peak = _peak(scratch, "test_accuracy")
    if truth_known:
        mem = [_last(m, "memorized")[1] for m in (scratch, twin)]
        text = (f"Wrong labels memorized at the end: {pct(mem[0])} from scratch ({at[0]}), {pct(mem[1])} on "
                f"pretrained features ({at[1]}); test accuracy then {pct(acc[0])} and {pct(acc[1])}")
    else:
        text = (f"Held-out accuracy (given labels) at the end: {pct(acc[0])} from scratch ({at[0]}), {pct(acc[1])} "
                f"on pretrained features ({at[1]}); which labels are wrong is unknown, so nothing is counted as "
                "memorized")
    if peak is not None and acc[0] is not None and peak - acc[0] >= 0.005:
        text += f" (from scratch it peaked at {pct(peak)} in epoch {peak_epoch})"
    if len(recipes) == 2 and recipes[0] != recipes[1]:
        text += f". The losses differ too: {recipes[0]} from scratch, {recipes[1]} on the features"
    return text + "."


def pair_legend(scratch_config, twin_config_) -> tuple:
    """The Compare legend of a pair: ('from scratch: compact cnn', 'pretrained features: pretrained head')."""
    from noisycore.naming import FIELD_WORDS

    return (f"from scratch: {FIELD_WORDS['model'](scratch_config.model)}",
            f"pretrained features: {FIELD_WORDS['model'](twin_config_.model)}")


def lesson_lines(run_dirs) -> list:
    """One line per pair among ``run_dirs`` (see :func:`pairs` and :func:`lesson`); unreadable runs are skipped."""
    from noisycore.evaluation import truth_known
    from noisycore.naming import loss_words

    loaded = {}
    for path in run_dirs:
        try:
            loaded[str(path)] = runs.load_run(path)
        except (UserError, OSError):
            continue
    out = []
    for scratch, twin in pairs({p: r.config for p, r in loaded.items()}):
        a, b = loaded[scratch], loaded[twin]
        out.append(lesson(a.metrics, b.metrics, truth_known=truth_known(a),   # the twin has the same labels
                          epochs=tuple(r.config.epochs if r.state in runs.ACTIVE_STATES else None for r in (a, b)),
                          recipes=tuple(loss_words(r.config.loss, r.config.loss_kwargs) for r in (a, b))))
    return out
