"""Label sets on disk: a folder with ``labels.csv`` (id, label, true_label, is_noisy, split, ...) and
``noise.json`` (what made the labels, counts, the data config, provenance of a review), written
atomically and read back against a dataset. Whether a label set knows the truth is decided here
(``truth_known_meta``): labels of the user's own images never claim a truth.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from noisycore.config import NoiseConfig, is_own_source
from noisycore.errors import DataError, UserError
from noisycore.human_labels import examples_text, labels_from_values, match_ids, norm_ids, require_complete
from noisycore.noise import NoisyLabels, make_noisy_labels
from noisycore.util import atomic_write_text, check_labels, int_or_none


SUBSET_KEY = "subset_of_dataset"   # noise.json flag: the label set lists only some training images


def _matrix_json(m) -> Optional[list]:
    return None if m is None else np.asarray(m, dtype=float).tolist()


def save_label_set(out_dir, dataset, noisy: NoisyLabels, *, data_config=None) -> Path:
    """Write ``labels.csv`` (id, label, true_label, is_noisy; class names) and ``noise.json``; return the folder.

    Both files are written atomically (temp file + os.replace). Labels (N,) follow ``dataset.ids_train``.
    ``data_config`` (a DataConfig) is stored too, so the label set names the exact images it belongs to.
    """
    names = np.asarray(dataset.class_names, dtype=object)
    ids = np.asarray(dataset.ids_train)
    labels = check_labels(noisy.labels, len(names), "labels", error=UserError)
    if labels.size != ids.size:
        raise UserError(f"the label set has {labels.size} labels but the dataset has {ids.size} training images")
    known = noisy.true_labels is not None
    table = pd.DataFrame({"id": ids, "label": names[labels],
                          "true_label": names[noisy.true_labels] if known else "",
                          "is_noisy": np.where(noisy.is_noisy, "true", "false") if known else ""})
    meta = {"config": noisy.config.to_dict(), "truth_known": known,
            "data_config": data_config.to_dict() if data_config is not None else None,
            "dataset": {"name": getattr(dataset, "name", None), "source": getattr(dataset, "source", None),
                        "class_names": list(dataset.class_names), "num_train": int(ids.size)},
            "requested_matrix": _matrix_json(noisy.requested_matrix),
            "realized_matrix": _matrix_json(noisy.realized_matrix),
            "realized_rate": None if noisy.realized_rate is None else float(noisy.realized_rate),
            "counts": {"labels": int(labels.size), "noisy": noisy.num_noisy,
                       "given_per_class": np.bincount(labels, minlength=len(names)).tolist(),
                       "true_per_class": (np.bincount(noisy.true_labels, minlength=len(names)).tolist()
                                          if known else None)},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "labels.csv", table.to_csv(index=False))
    atomic_write_text(out / "noise.json", json.dumps(meta, indent=2))
    return out


def _read_noise_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); delete it or write the label set again") from None
    return meta if isinstance(meta, dict) else {}


def truth_known_meta(meta: dict) -> bool:
    """Whether a label set's noise.json (a dict) knows the true labels.

    ``truth_known`` when recorded; for label sets written before that key: False when no noise was
    injected into a folder or zip (the folder names were then wrongly copied as true labels)."""
    if not isinstance(meta, dict):
        return True
    if "truth_known" in meta:
        return bool(meta["truth_known"])
    model = (meta.get("config") or {}).get("model")
    source = (meta.get("dataset") or {}).get("source") or (meta.get("data_config") or {}).get("source")
    return not (model == "none" and is_own_source(source))


def load_label_set(path, dataset) -> NoisyLabels:
    """Read a label set written by ``save_label_set`` (path: labels.csv or its folder), in dataset order."""
    p = Path(path)
    csv_path = p / "labels.csv" if p.is_dir() else p
    if not csv_path.is_file():
        raise DataError(f"no label set at {path}: expected labels.csv (or a folder holding it)")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{csv_path} is not a readable CSV ({e})") from None
    missing_cols = {"id", "label"} - set(df.columns)
    if missing_cols:
        raise DataError(f"{csv_path} lacks column(s) {', '.join(sorted(missing_cols))}; "
                        f"found: {', '.join(df.columns)} (expected id, label, true_label, is_noisy)")
    if "split" in df.columns:   # rows of the held-out split (reviewed test labels) are not training labels
        df = df[df["split"].str.strip().str.lower() != "test"].reset_index(drop=True)
    unknown = sorted(set(norm_ids(df["id"])) - set(norm_ids(dataset.ids_train)))
    if unknown:
        raise DataError(f"{csv_path} has {len(unknown)} id(s) that are not in the dataset "
                        f"(e.g. {examples_text(unknown)}); is it for another dataset?")
    rows = match_ids(df["id"].to_numpy(), dataset.ids_train, what=str(csv_path))
    names, k = tuple(dataset.class_names), len(dataset.class_names)
    labels = labels_from_values(df["label"].to_numpy()[rows], names, what=f"{csv_path} column 'label'")
    labels = require_complete(labels, dataset.ids_train, what=f"{csv_path} column 'label'")
    meta = _read_noise_json(csv_path.parent / "noise.json")
    true = None
    if "true_label" in df.columns and (df["true_label"].str.strip() != "").any() and truth_known_meta(meta):
        true = labels_from_values(df["true_label"].to_numpy()[rows], names,
                                   what=f"{csv_path} column 'true_label'")
        true = require_complete(true, dataset.ids_train, what=f"{csv_path} column 'true_label'")
    config = NoiseConfig.from_dict(meta["config"]) if "config" in meta else NoiseConfig(model="none", rate=0.0)
    requested = meta.get("requested_matrix")
    requested = np.asarray(requested, dtype=float) if requested is not None else None
    if requested is not None and requested.shape != (k, k):
        requested = None
    return make_noisy_labels(labels, true, requested, config, k)


def review_provenance(labels_path) -> Optional[dict]:
    """How a label set came from a review: {"run", "changed", "excluded"} read from its noise.json
    (``reviewed_from``, ``changed`` / ``review`` counts, ``excluded_ids``; written by
    corrections.corrected_label_set), counts None where missing; None for any other label set."""
    path = Path(str(labels_path))
    folder = path.parent if path.suffix.lower() == ".csv" else path
    try:
        meta = json.loads((folder / "noise.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not meta.get("reviewed_from"):
        return None
    run = meta["reviewed_from"]
    counts = meta.get("review") if isinstance(meta.get("review"), dict) else {}
    changed = None
    if counts:
        changed = (int_or_none(counts.get("accept")) or 0) + (int_or_none(counts.get("relabel")) or 0)
    if meta.get("changed") is not None:
        changed = int_or_none(meta.get("changed"))
    excluded = int_or_none(counts.get("exclude")) if counts else None
    if excluded is None and isinstance(meta.get("excluded_ids"), list):
        excluded = len(meta["excluded_ids"])
    return {"run": str(run), "changed": changed, "excluded": excluded}
