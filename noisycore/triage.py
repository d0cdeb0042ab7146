"""Triage: which labels to review first, how many, what to expect, and a page of one given -> proposed pair.

    ranked(issues)                          # every image, most suspicious first (flagged, then lowest label quality)
    select_queue(ranked(issues), top_n=41)  # the 41 most suspicious; or threshold=0.2 (label_quality <= 0.2)
    precision_at(issues, top_n=41)          # truth known only: how many of those 41 are really wrong
    pair_groups(queue)                      # given -> proposed pairs with counts, largest first (grid view)
    grid_page(pair_items(queue, "cat", "dog"), 0)   # the first page of thumbnails of that pair
    batch_targets(page, selected={0, 3})    # the rows a grid key press decides
    choose_run(candidates, requested=..., last=...)   # which run /review opens, with a notice for a bad address

Pure functions over the ranked tables of :mod:`noisycore.detect` (columns id, index, given_label,
proposed_label, label_quality, is_label_issue, and with the truth known is_noisy; the review queue adds
decision and final_label). No Streamlit, no TensorFlow.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from noisycore.errors import UserError

PAGE_SIZE = 10                     # thumbnails per grid page: keys 1-9 and 0 toggle them
UNDECIDED = "unreviewed"           # decision column of an item nobody decided (= review.NO_DECISION)
DONE_TEXT = {"accept": "accepted: {label}", "keep": "kept: {label}", "relabel": "relabelled to {label}",
             "exclude": "excluded"}
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ +=-]*$")   # a run folder name: no path separators, no ".."


# ----------------------------------------------------------------------------- ordering and selection
def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame]
    if missing:
        raise UserError(f"{what} lacks the column(s) {', '.join(missing)}; pass a table from detect.load_issues "
                        "or review.review_queue")


def ranked(issues: pd.DataFrame) -> pd.DataFrame:
    """Every row in the detector's order (``detectors.rank``, the order detect writes and the benchmarks
    score): the flagged rows first, then label_quality ascending, ties by ``index``. For detectors that flag
    by a threshold on their own score (self-confidence, normalized margin, AUM) that is the score's order;
    confident learning and the 0.9 rule put the labels they flag before any they do not."""
    _require(issues, ("label_quality", "index"), "issues")
    flagged = issues["is_label_issue"].to_numpy(dtype=bool) if "is_label_issue" in issues else np.zeros(len(issues), bool)
    order = np.lexsort((issues["index"].to_numpy(), issues["label_quality"].to_numpy(dtype=np.float64), ~flagged))
    return issues.iloc[order].reset_index(drop=True)


def _check_choice(top_n, threshold) -> tuple[Optional[int], Optional[float]]:
    if top_n is not None and threshold is not None:
        raise UserError(f"choose top_n ({top_n}) or threshold ({threshold}), not both")
    if top_n is not None:
        if isinstance(top_n, bool) or not isinstance(top_n, (int, np.integer)) or top_n < 0:
            raise UserError(f"top_n={top_n!r} must be a whole number >= 0")
        top_n = int(top_n)
    if threshold is not None:
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise UserError(f"threshold={threshold!r} must be a label quality between 0 and 1") from None
        if not 0.0 <= threshold <= 1.0:
            raise UserError(f"threshold={threshold!r} must be a label quality between 0 and 1")
    return top_n, threshold


def select_queue(queue: pd.DataFrame, *, top_n: Optional[int] = None,
                 threshold: Optional[float] = None) -> pd.DataFrame:
    """The part of a queue to review, most suspicious first.

    ``top_n``: the ``top_n`` rows of lowest label quality; ``threshold``: every row with
    ``label_quality <= threshold``; neither: every row. The queue is re-ordered by :func:`ranked`.
    """
    top_n, threshold = _check_choice(top_n, threshold)
    rows = ranked(queue)
    if top_n is not None:
        return rows.head(top_n).reset_index(drop=True)
    if threshold is not None:
        return rows[rows["label_quality"] <= threshold].reset_index(drop=True)
    return rows


def threshold_for(queue: pd.DataFrame, n: int, *, decimals: Optional[int] = None) -> float:
    """The label quality of the n-th most suspicious row (so ``threshold`` selects at least those n),
    clipped to [0, 1] and, with ``decimals``, rounded UP (rounding down could leave the n-th row out);
    0.0 for n <= 0, the largest quality when n exceeds the rows."""
    rows = queue.sort_values("label_quality", kind="stable")   # the n-th lowest quality, flagged or not
    if n <= 0 or rows.empty:
        return 0.0
    q = float(rows["label_quality"].iloc[min(int(n), len(rows)) - 1])
    if decimals is not None:
        q = math.ceil(round(q * 10 ** decimals, 6)) / 10 ** decimals
    return min(max(q, 0.0), 1.0)


def precision_at(issues: pd.DataFrame, *, top_n: Optional[int] = None,
                 threshold: Optional[float] = None) -> Optional[dict]:
    """How many of a selection are really wrong (truth known only; None without ``is_noisy``).

    ``issues``: the ranked table of every image (not only the flagged ones), with ``is_noisy``.
    Returns ``selected`` (rows chosen as in :func:`select_queue`), ``wrong`` (of them really wrong),
    ``n_wrong`` (wrong labels in the whole table), ``precision = wrong / selected`` and
    ``recall = wrong / n_wrong`` (None when the denominator is 0).
    """
    if "is_noisy" not in issues:
        return None
    chosen = select_queue(issues, top_n=top_n, threshold=threshold)
    wrong = int(chosen["is_noisy"].astype(bool).sum())
    n_wrong = int(issues["is_noisy"].astype(bool).sum())
    return {"selected": int(len(chosen)), "wrong": wrong, "n_wrong": n_wrong,
            "precision": wrong / len(chosen) if len(chosen) else None,
            "recall": wrong / n_wrong if n_wrong else None}


# ----------------------------------------------------------------------------- the grid of one pair
def pair_groups(queue: pd.DataFrame) -> pd.DataFrame:
    """given -> proposed pairs of a queue (pairs where the proposal differs from the given label),
    largest first (ties by name): columns given_label, proposed_label, count, open (still undecided)."""
    _require(queue, ("given_label", "proposed_label"), "queue")
    q = queue[queue["given_label"] != queue["proposed_label"]]
    open_ = (q["decision"] == UNDECIDED) if "decision" in q else pd.Series(True, index=q.index)
    table = (q.assign(open=open_.astype(int)).groupby(["given_label", "proposed_label"], sort=False)
             .agg(count=("open", "size"), open=("open", "sum")).reset_index())
    table = table.sort_values(["count", "given_label", "proposed_label"], ascending=[False, True, True],
                              kind="stable")
    return table.astype({"count": int, "open": int}).reset_index(drop=True)


def pair_items(queue: pd.DataFrame, given: str, proposed: str) -> pd.DataFrame:
    """The rows of one given -> proposed pair, in the queue's order."""
    _require(queue, ("given_label", "proposed_label"), "queue")
    return queue[(queue["given_label"] == given) & (queue["proposed_label"] == proposed)].reset_index(drop=True)


def page_count(n: int, *, size: int = PAGE_SIZE) -> int:
    return max(math.ceil(n / size), 1)


def grid_page(items: pd.DataFrame, page: int, *, size: int = PAGE_SIZE) -> pd.DataFrame:
    """Rows ``page * size .. page * size + size - 1`` of ``items`` (page clipped to the last one)."""
    page = min(max(int(page), 0), page_count(len(items), size=size) - 1)
    return items.iloc[page * size:(page + 1) * size].reset_index(drop=True)


def first_open_page(items: pd.DataFrame, *, size: int = PAGE_SIZE, start: int = 0) -> int:
    """The first page from ``start`` on that holds an undecided item (wrapping round); ``start`` if none."""
    pages = page_count(len(items), size=size)
    if "decision" not in items or items.empty:
        return min(max(start, 0), pages - 1)
    open_rows = np.flatnonzero(items["decision"].to_numpy() == UNDECIDED)
    if not len(open_rows):
        return min(max(start, 0), pages - 1)
    open_pages = sorted(set((open_rows // size).tolist()))
    later = [p for p in open_pages if p >= start]
    return later[0] if later else open_pages[0]


def batch_targets(page: pd.DataFrame, selected: Iterable[int]) -> pd.DataFrame:
    """The rows one grid key press (A or K) decides: the selected tiles (positions on the page, decided
    or not), or, when none is selected, every undecided tile of the page."""
    chosen = sorted({int(i) for i in selected if 0 <= int(i) < len(page)})
    if chosen:
        return page.iloc[chosen]
    if "decision" not in page:
        return page
    return page[page["decision"] == UNDECIDED]


def proposal_note(probs_row, proposed: int, class_names: Sequence[str]) -> Optional[str]:
    """Why the proposal is not the model's top class in ``probs_row`` (K,), or None when it is.
    Detections saved before proposals followed the top class (issue 33) may propose a runner-up."""
    p = np.asarray(probs_row, dtype=float)
    top = int(np.argmax(p))
    if top == int(proposed):
        return None
    names = list(class_names)
    return (f"The model's top class here is **{names[top]}** ({p[top]:.0%}), not the proposal: these label "
            "issues were found with an older version that proposed a runner-up. Press **Find label issues** "
            "again to make every proposal the top class.")


# ----------------------------------------------------------------------------- what was decided
def decision_text(decision: dict, class_names: Sequence[str], *, tz=None,
                  now: Optional[datetime] = None) -> str:
    """'Decided: relabelled to cat by alice, 10:42' from a ReviewStore row (decision, new_label,
    reviewer, time in UTC ISO 8601). The time is shown in ``tz`` (default: local), with the date when
    it is not today."""
    verb = DONE_TEXT.get(decision.get("decision"))
    if verb is None:
        raise UserError(f"decision={decision.get('decision')!r} is not a review decision; "
                        f"choose one of: {', '.join(DONE_TEXT)}")
    label = decision.get("new_label")
    name = "" if label is None or pd.isna(label) else str(list(class_names)[int(label)])
    text = f"Decided: {verb.format(label=name)} by {decision.get('reviewer') or '?'}"
    stamp = decision.get("time")
    if stamp:
        when = datetime.fromisoformat(str(stamp))
        when = (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(tz)
        today = (now or datetime.now(timezone.utc)).astimezone(tz).date()
        text += ", " + when.strftime("%H:%M" if when.date() == today else "%Y-%m-%d %H:%M")
    return text


# ----------------------------------------------------------------------------- which run to open
def choose_run(candidates: Sequence[dict], *, requested: Optional[str] = None, last: Optional[str] = None,
               selected: Optional[str] = None, others: Optional[dict] = None) -> tuple[Optional[dict], Optional[str]]:
    """The run the Review page opens and a notice when the address asked for something unusable.

    ``candidates``: reviewable runs, newest first, dicts with ``name`` and ``has_detections``;
    ``requested``: the ``?run=`` value; ``last``: the run this session reviewed last; ``selected``: the
    run this session chose on another page (Train, Curves); ``others``: name -> state of runs that exist
    but cannot be reviewed (not finished). Order: the requested run, else ``last``, else ``selected``
    (if reviewable: a retrain just started is not), else the newest run with detections, else the
    newest run. Returns (run or None, notice).
    """
    by_name = {c["name"]: c for c in candidates}
    notice, requested = None, (requested or "").strip() or None
    if requested is not None and requested in by_name:
        return by_name[requested], None
    fallback = by_name.get(last) or by_name.get(selected) \
        or next((c for c in candidates if c.get("has_detections")), None) or (candidates[0] if candidates else None)
    if requested is not None:
        if not _RUN_NAME.match(requested) or ".." in requested:
            why = "which is not a run name (a run is named like 20260101-120000-ce-sym20)"
        elif others and requested in others:
            why = f"which cannot be reviewed yet (it is {others[requested]}; it needs finished training)"
        else:
            why = "but there is no run of that name"
        instead = f"showing {fallback['name']} instead" if fallback else "no run can be reviewed yet"
        notice = f"The address asked for run “{requested}”, {why}: {instead}."
    return fallback, notice
