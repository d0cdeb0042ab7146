"""Team review: two (or more) reviewers on one run, where they disagree, and the summary of the changes
for whoever owns the data.

Every decision in ``review.sqlite`` carries its reviewer. For each reviewer the *opinion* on an item is
their own latest decision that no undo cancelled (:meth:`ReviewStore.latest_by_reviewer`); the item's
*effective* decision stays the latest of anybody's (:meth:`ReviewStore.latest`), which exports and the
retrain use. Reviewers disagree on an item when their opinions lead to different labels (``accept`` cat
and ``relabel`` to cat agree; ``exclude`` differs from every label).

The summary of the changes uses the effective decisions: before -> after per pair of classes (with the
count and who decided), and per class: labels before, after, moved out, moved in, excluded.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from noisycore.errors import UserError
from noisycore.review import ReviewStore

EXCLUDED = "(excluded)"
DISAGREEMENT_COLUMNS = ("id", "index", "given_label", "decided_now")
CHANGE_COLUMNS = ("before", "after", "count", "reviewers")
CLASS_COLUMNS = ("class", "before", "after", "moved_out", "moved_in", "excluded")


def _check(store, class_names) -> list:
    if not isinstance(store, ReviewStore):
        raise UserError(f"store must be a ReviewStore, got {type(store).__name__}")
    names = list(class_names)
    if not names:
        raise UserError("class_names is empty: pass the run's class names")
    return names


def _outcomes(frame: pd.DataFrame) -> np.ndarray:
    """The label each decision leaves (-1: excluded)."""
    return frame["new_label"].fillna(-1).astype(int).to_numpy()


def decision_words(decision: str, new_label, class_names: Sequence[str]) -> str:
    """'accepted cat' / 'kept dog' / 'relabelled to cat' / 'excluded'."""
    if decision == "exclude":
        return "excluded"
    name = class_names[int(new_label)]
    return {"accept": f"accepted {name}", "keep": f"kept {name}", "relabel": f"relabelled to {name}"}[decision]


def reviewers(store: ReviewStore) -> list[str]:
    """Everyone with a live decision on the run, in the order they first decided."""
    rows = store.latest_by_reviewer()
    return list(dict.fromkeys(rows["reviewer"]))


def disagreements(store: ReviewStore, *, class_names: Sequence[str]) -> pd.DataFrame:
    """The items on which reviewers' opinions lead to different labels: id, index, given_label, one
    column per reviewer (their decision in words, "" where they did not decide) and ``decided_now``
    (the effective decision: the latest). Ordered by the first decision on the item."""
    names = _check(store, class_names)
    rows = store.latest_by_reviewer()
    people = list(dict.fromkeys(rows["reviewer"]))
    if rows.empty:
        return pd.DataFrame(columns=list(DISAGREEMENT_COLUMNS[:3]) + people + ["decided_now"])
    rows = rows.assign(outcome=_outcomes(rows))
    split = rows.groupby("item_id", sort=False)["outcome"].nunique()
    split = split[split > 1].index
    rows = rows[rows["item_id"].isin(split)]
    words = [decision_words(d, n, names) for d, n in zip(rows["decision"], rows["new_label"])]
    wide = rows.assign(words=words).pivot(index="item_id", columns="reviewer", values="words")
    latest = store.latest().set_index("item_id")
    first = rows.groupby("item_id", sort=False)[["index", "previous_label"]].first()
    out = pd.DataFrame({"id": list(first.index), "index": first["index"].astype(int).to_numpy(),
                        "given_label": [names[int(k)] for k in first["previous_label"]]})
    for person in people:
        out[person] = [wide.at[i, person] if person in wide and isinstance(wide.at[i, person], str) else ""
                       for i in out["id"]]
    out["decided_now"] = [f"{decision_words(latest.at[i, 'decision'], latest.at[i, 'new_label'], names)} "
                          f"({latest.at[i, 'reviewer']})" for i in out["id"]]
    return out.reset_index(drop=True)


def change_summary(store: ReviewStore, *, class_names: Sequence[str]) -> pd.DataFrame:
    """The effective changes, before -> after: one row per pair of classes (after = EXCLUDED for an
    excluded image) with the count and the reviewers who decided them; largest first."""
    names = _check(store, class_names)
    rows = store.latest()
    rows = rows[_outcomes(rows) != rows["previous_label"].astype(int).to_numpy()] if len(rows) else rows
    if rows.empty:
        return pd.DataFrame(columns=list(CHANGE_COLUMNS))
    after = [EXCLUDED if k < 0 else names[k] for k in _outcomes(rows)]
    frame = pd.DataFrame({"before": [names[int(k)] for k in rows["previous_label"]], "after": after,
                          "reviewer": rows["reviewer"].to_numpy()})
    out = (frame.groupby(["before", "after"], sort=False)
           .agg(count=("reviewer", "size"), reviewers=("reviewer", lambda r: ", ".join(sorted(set(r)))))
           .reset_index())
    return out.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


def class_summary(given_labels, store: ReviewStore, *, class_names: Sequence[str]) -> pd.DataFrame:
    """Per class: labels ``before`` the review (the given labels of every image of the run), ``after``
    the effective decisions, ``moved_out`` (relabelled to another class), ``moved_in`` and ``excluded``."""
    names = _check(store, class_names)
    given = np.asarray(given_labels)
    if given.ndim != 1 or (given.size and (given.min() < 0 or given.max() >= len(names))):
        raise UserError(f"given_labels must be class indices 0..{len(names) - 1} (one per image)")
    rows = store.latest()
    prev = rows["previous_label"].astype(int).to_numpy() if len(rows) else np.zeros(0, int)
    new = _outcomes(rows) if len(rows) else np.zeros(0, int)
    changed = prev != new
    k = len(names)
    before = np.bincount(given.astype(int), minlength=k)
    out_ = np.bincount(prev[changed & (new >= 0)], minlength=k)
    excl = np.bincount(prev[new < 0], minlength=k)
    in_ = np.bincount(new[changed & (new >= 0)], minlength=k)
    return pd.DataFrame({"class": names, "before": before, "after": before - out_ - excl + in_,
                         "moved_out": out_, "moved_in": in_, "excluded": excl})
