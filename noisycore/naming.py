"""Human names for runs: what a person reads in legends, pickers and run ids.

    label_set_name(labels_path)        "builtin-pair-40-s0"; a reviewed set: "<run> reviewed"
    review_note(config, summary)       {"run", "changed", "excluded"} for a retrain on reviewed labels, else None
    loss_words("gce", {"q": 0.7})      "GCE (q 0.7)"
    labels_words(config)               "40% symmetric noise", "label set builtin-pair-40-s0", ...
    legend_labels({id: config}, ...)   run id -> only what differs, in words:
                                       "GCE (q 0.7)" vs "cross-entropy"; "<run> after review: 12 changed, 3 excluded"

Pure Python (no TensorFlow, no pandas); old run folders work: every field is read with a default.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional

from noisycore.util import int_or_none

LOSS_NAMES = {"ce": "cross-entropy", "label_smoothing": "label smoothing", "sce": "symmetric CE", "gce": "GCE",
              "bootstrap_soft": "soft bootstrapping", "bootstrap_hard": "hard bootstrapping",
              "nce_rce": "NCE+RCE", "forward": "forward correction"}
METHOD_NAMES_WORDS = {"standard": "standard training", "confidence_weighting": "confidence weighting",
                      "coteaching": "co-teaching", "label_correction": "label correction"}
PARAM_WORDS = {"epsilon": "ε", "alpha": "α", "beta": "β", "gamma": "γ", "q": "q"}
NOISE_WORDS = {"symmetric": "symmetric", "uniform": "uniform", "pair": "pair-flip", "asymmetric": "asymmetric",
               "instance": "instance-dependent"}
# TrainConfig field -> how a value reads in a legend (fields not listed: "field value").
FIELD_WORDS = {
    "model": lambda v: str(v).replace("_", " "),
    "epochs": lambda v: f"{v} epochs",
    "batch_size": lambda v: f"batch {v}",
    "optimizer": lambda v: str(v).upper() if v == "sgd" else str(v).capitalize(),
    "learning_rate": lambda v: f"lr {v:g}",
    "lr_schedule": lambda v: f"{v} lr schedule",
    "weight_decay": lambda v: "no weight decay" if not v else f"weight decay {v:g}",
    "dropout": lambda v: "no dropout" if not v else f"dropout ×{v:g}",
    "batchnorm": lambda v: "batch norm" if v else "no batch norm",
    "augment": lambda v: "no augmentation" if v == "none" else f"{v} augmentation",
    "cutout": lambda v: "cutout" if v else "no cutout",
    "mixup_alpha": lambda v: "no mixup" if not v else f"mixup α {v:g}",
    "val_fraction": lambda v: f"{v:.0%} validation",
    "trusted_val": lambda v: "trusted validation" if v else "noisy validation",
    "early_stopping_patience": lambda v: "no early stopping" if not v else f"patience {v}",
    "mixed_precision": lambda v: "bfloat16" if v else "float32",
    "seed": lambda v: f"seed {v}",
    "max_train": lambda v: "all images" if not v else f"{v:,} images",
}
IGNORED = ("preset", "tensorboard", "record_margins", "data", "noise", "labels_path", "loss", "loss_params",
           "method", "method_params")


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _params(params) -> dict:
    if isinstance(params, Mapping):
        return dict(params)
    try:
        return dict(params or ())
    except (TypeError, ValueError):
        return {}


def loss_words(loss: str, params=None) -> str:
    """'GCE (q 0.7)', 'cross-entropy', 'label smoothing (ε 0.1)'."""
    shown = {k: v for k, v in _params(params).items() if v is not None and not isinstance(v, (list, tuple, dict))}
    name = LOSS_NAMES.get(loss, str(loss))
    return name + (f" ({', '.join(f'{PARAM_WORDS.get(k, k)} {_num(v)}' for k, v in sorted(shown.items()))})"
                   if shown else "")


def method_words(method: str, params=None) -> str:
    shown = {k: v for k, v in _params(params).items() if v is not None}
    name = METHOD_NAMES_WORDS.get(method, str(method))
    return name + (f" ({', '.join(f'{k.replace(chr(95), chr(32))} {_num(v)}' for k, v in sorted(shown.items()))})"
                   if shown else "")


def label_set_name(labels_path) -> str:
    """The name a person gave a label set: its folder (a labels.csv path names its folder).
    A reviewed set RUN/corrected/<time>/ is named '<run> reviewed'."""
    path = Path(str(labels_path))
    folder = path.parent if path.suffix.lower() == ".csv" else path
    if folder.parent.name == "corrected" and folder.parent.parent.name:
        return f"{folder.parent.parent.name} reviewed"
    return folder.name or str(labels_path)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _as_dict(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else dict(config or {})


def review_note(config, summary: Optional[dict] = None) -> Optional[dict]:
    """How a run's labels came from a review: {"run", "changed", "excluded"} (counts may be None), else None.

    Read defensively from, in order: the summary's or config's ``review`` entry (if a later version stores
    it), then the label set's noise.json (labelsets.review_provenance)."""
    cfg = _as_dict(config)
    for source in (summary or {}, cfg):
        note = source.get("review") if isinstance(source, Mapping) else None
        if isinstance(note, Mapping) and (note.get("run") or note.get("reviewed_from")):
            return {"run": str(note.get("run") or note.get("reviewed_from")),
                    "changed": int_or_none(note.get("changed")), "excluded": int_or_none(note.get("excluded"))}
    labels_path = cfg.get("labels_path")
    if not labels_path:
        return None
    from noisycore.labelsets import review_provenance   # numpy / pandas: only when a label set is named

    return review_provenance(labels_path)


def review_words(note: dict) -> str:
    """'<run> after review: 12 changed, 3 excluded'."""
    counts = [f"{note[k]:,} {k}" for k in ("changed", "excluded") if note.get(k) is not None]
    return f"{note['run']} after review" + (f": {', '.join(counts)}" if counts else "")


def labels_words(config) -> str:
    """What the run trained on: '40% symmetric noise', 'clean labels', 'label set NAME', 'human labels (aggre)'."""
    cfg = _as_dict(config)
    if cfg.get("labels_path"):
        note = review_note(cfg)
        return review_words(note) if note else f"label set {label_set_name(cfg['labels_path'])}"
    noise = cfg.get("noise") or {}
    model = noise.get("model", "none")
    if model == "none":
        return "clean labels"
    if model == "human":
        return "human labels" + (f" ({noise['label_set']})" if noise.get("label_set") else "")
    if model == "matrix":
        return "noise matrix"
    rate = noise.get("rate")
    return (f"{rate:.0%} " if isinstance(rate, (int, float)) else "") + f"{NOISE_WORDS.get(model, model)} noise"


def recipe_words(config) -> str:
    """'GCE (q 0.7)' or 'co-teaching, cross-entropy': the loss, and the method when not standard."""
    cfg = _as_dict(config)
    loss = loss_words(cfg.get("loss", "ce"), cfg.get("loss_params"))
    method = cfg.get("method", "standard")
    return loss if method == "standard" else f"{method_words(method, cfg.get('method_params'))}, {loss}"


def run_title(config) -> str:
    """'GCE (q 0.7) on 40% symmetric noise': the recipe and the labels, for a picker or a title."""
    return f"{recipe_words(config)} on {labels_words(config)}"


def _aspects(cfg: dict) -> dict:
    """Aspect -> words, for every part of a config a legend may need."""
    out = {"labels": labels_words(cfg),
           "loss": loss_words(cfg.get("loss", "ce"), cfg.get("loss_params")),
           "method": method_words(cfg.get("method", "standard"), cfg.get("method_params")),
           "data": json.dumps(cfg.get("data") or {}, sort_keys=True, default=str)}
    for key, value in cfg.items():
        if key in IGNORED:
            continue
        try:
            out[key] = FIELD_WORDS[key](value) if key in FIELD_WORDS else f"{key.replace('_', ' ')} {_num(value)}"
        except (TypeError, ValueError):
            out[key] = f"{key.replace('_', ' ')} {value}"
    return out


BUILTIN_DATA = {"builtin": "built-in shapes", "cifar10": "CIFAR-10"}


def data_words(source) -> str:
    """A dataset's name for legends: 'built-in shapes', 'CIFAR-10', or the user's folder / zip / CSV name
    without its path (an upload's path is the app's internal uploads/<hash>/ folder)."""
    src = str(source or "").strip()
    if src in BUILTIN_DATA:
        return BUILTIN_DATA[src]
    path = Path(src)
    return (path.stem if path.suffix.lower() in (".zip", ".csv") else path.name) or src or "data"


def legend_labels(configs: Mapping, *, summaries: Optional[Mapping] = None) -> dict:
    """Run id -> words naming only what differs between the runs ('GCE (q 0.7)' vs 'cross-entropy').

    ``configs``: run id -> TrainConfig or its dict. Runs that differ in nothing get their run id;
    two runs with the same words get their run id added in brackets."""
    aspects = {}
    for rid, config in configs.items():
        cfg = _as_dict(config)
        a = _aspects(cfg)
        note = review_note(cfg, (summaries or {}).get(rid))
        if note:
            a["labels"] = review_words(note)
        aspects[rid] = a
    keys = list(dict.fromkeys(k for a in aspects.values() for k in a))
    differing = [k for k in keys if len({a.get(k, "") for a in aspects.values()}) > 1]
    if "data" in differing:
        differing.remove("data")
        for rid, cfg in configs.items():
            aspects[rid]["data"] = data_words(_as_dict(cfg).get("data", {}).get("source"))
        differing.insert(0, "data")
    labels = {rid: ", ".join(aspects[rid][k] for k in differing if aspects[rid].get(k)) or str(rid)
              for rid in configs}
    taken = list(labels.values())
    return {rid: (f"{lab} [{rid}]" if taken.count(lab) > 1 and lab != str(rid) else lab)
            for rid, lab in labels.items()}
