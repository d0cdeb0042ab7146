"""Review decisions: an append-only SQLite log in the run folder, undo, and the review queue.

Every decision a reviewer makes is one row, written in its own transaction and committed (WAL
journal, ``synchronous=FULL``) before :meth:`ReviewStore.record` returns, so a page that confirms a
decision after ``record`` returns never loses it: not on a browser refresh, a server restart or a
killed process. Nothing is ever updated or deleted: an undo is a new row (decision ``"undo"``) that
cancels an earlier one, so the table is the full audit trail.

The *effective* decision of an item is its latest row that no undo cancelled, whoever made it.
Two reviewers can work on one store at once; each row carries its reviewer's name.

Decisions: ``accept`` (take the proposed label), ``keep`` (the given label is right), ``relabel``
(the reviewer picked a class), ``exclude`` (drop the image from training).

A grid of thumbnails decides many items with one key press: :meth:`ReviewStore.record_batch` writes them
in one transaction as one batch, and :meth:`ReviewStore.undo_latest` cancels a reviewer's latest action,
a whole batch at once (one undo row per decision of it).

The queue (:func:`review_queue`) is a detector's ranked table filtered by class and decision;
applying the decisions (exports, the corrected label set, the retrain) is :mod:`noisycore.corrections`.
"""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from noisycore.errors import DataError, UserError

DECISIONS = ("accept", "keep", "relabel", "exclude")
DECISION_STATES = ("all", "unreviewed", "reviewed", "accept", "keep", "relabel", "exclude")
UNDO = "undo"
NO_DECISION = "unreviewed"         # the decision column of an item nobody has decided yet
REVIEW_DB_NAME = "review.sqlite"   # file name inside a run folder
_BUSY_TIMEOUT_S = 30.0             # wait this long for another writer (second tab, second reviewer)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of the audit trail
    time           TEXT    NOT NULL,                   -- UTC, ISO 8601
    item_id        TEXT    NOT NULL,                   -- the dataset id (e.g. relative image path)
    idx            INTEGER NOT NULL,                   -- position in the training set
    decision       TEXT    NOT NULL CHECK (decision IN ('accept', 'keep', 'relabel', 'exclude', 'undo')),
    previous_label INTEGER,                            -- the given label the reviewer saw
    new_label      INTEGER,                            -- NULL for exclude and undo
    proposed_label INTEGER,                            -- what the detector proposed (if any)
    score          REAL,                               -- the detector's label_quality (if any)
    reviewer       TEXT    NOT NULL,
    undoes         INTEGER REFERENCES decisions(id)    -- undo rows: the row they cancel
);
CREATE INDEX IF NOT EXISTS decisions_item ON decisions(item_id);
CREATE INDEX IF NOT EXISTS decisions_undoes ON decisions(undoes);
"""

# rows no undo has cancelled (undo rows themselves excluded)
_LIVE = """SELECT * FROM decisions d WHERE d.decision != 'undo'
           AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)"""
_EFFECTIVE = f"""WITH live AS ({_LIVE})
    SELECT * FROM live WHERE id IN (SELECT MAX(id) FROM live GROUP BY item_id) ORDER BY id"""
_COLUMNS = ["id", "time", "item_id", "index", "decision", "previous_label", "new_label",
            "proposed_label", "score", "reviewer", "undoes"]


def _add_batch_column(con) -> None:
    """``batch``: decisions written together by record_batch share a number (NULL for single ones).
    Added to databases of earlier versions when they are opened (existing rows: NULL)."""
    if "batch" not in {r[1] for r in con.execute("PRAGMA table_info(decisions)")}:
        con.execute("ALTER TABLE decisions ADD COLUMN batch INTEGER")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _text(name: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{name}={value!r} must be a non-empty string")
    return value.strip()


def _label(name: str, value, *, optional: bool = False, what: str = "a class index") -> Optional[int]:
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise UserError(f"{name}={value!r} must be {what} (an integer >= 0)")
    return int(value)


class ReviewStore:
    """The review decisions of one run: a SQLite file opened per call (safe across threads).

    ``path``: the database file (created with its folder); see :meth:`for_run`.
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(f"{self.path} is a folder; pass the database file, e.g. "
                            f"{self.path / REVIEW_DB_NAME} (or use ReviewStore.for_run)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one writer per process at a time; SQLite locks across processes
        try:
            with self._connect() as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
                _add_batch_column(con)
                con.execute("SELECT COUNT(*) FROM decisions").fetchone()
        except sqlite3.DatabaseError as e:
            raise DataError(f"{self.path} is not a usable review database ({e}); move it away "
                            "to start a new review") from None

    @classmethod
    def for_run(cls, run_dir) -> "ReviewStore":
        """The store of a run folder: ``<run_dir>/review.sqlite``."""
        return cls(Path(run_dir) / REVIEW_DB_NAME)

    def __repr__(self):
        return f"ReviewStore({str(self.path)!r})"

    @contextmanager
    def _connect(self):
        con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            yield con
        finally:
            con.close()

    @contextmanager
    def _write(self):
        """One write transaction: BEGIN IMMEDIATE takes the write lock up front, COMMIT before exit."""
        with self._lock, self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _query(self, sql: str, args=()) -> list[dict]:
        with self._connect() as con:
            return [dict(r) for r in con.execute(sql, args).fetchall()]

    # ------------------------------------------------------------------------- writing

    def record(self, *, item_id: str, index: int, decision: str, previous_label: int,
               new_label: Optional[int], reviewer: str, proposed_label: Optional[int] = None,
               score: Optional[float] = None) -> int:
        """Append one decision and commit it; returns its row id.

        accept: new_label defaults to proposed_label; keep: new_label = previous_label;
        relabel: new_label required; exclude: new_label must be None.
        """
        row = self._row(item_id=item_id, index=index, decision=decision, previous_label=previous_label,
                        new_label=new_label, reviewer=reviewer, proposed_label=proposed_label, score=score)
        with self._write() as con:
            return self._insert(con, row)

    def record_batch(self, items: Sequence[dict], *, reviewer: str) -> list[int]:
        """Append several decisions in ONE transaction (all or none) as one batch; returns their row ids.

        ``items``: dicts with the keyword arguments of :meth:`record` (without reviewer). Every item is
        validated before anything is written. :meth:`undo_latest` cancels a batch as a whole.
        """
        rows = [self._row(reviewer=reviewer, **{k: v for k, v in item.items() if k != "reviewer"})
                for item in items]
        if not rows:
            return []
        with self._write() as con:
            batch = con.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM decisions").fetchone()[0]
            return [self._insert(con, {**row, "batch": batch}) for row in rows]

    def _row(self, *, item_id, index, decision, previous_label, new_label, reviewer, proposed_label=None,
             score=None) -> dict:
        if decision not in DECISIONS:
            raise UserError(f"decision={decision!r} is not valid; choose one of: {', '.join(DECISIONS)} "
                            "(use undo() to cancel a decision)")
        row = {"item_id": _text("item_id", item_id),
               "idx": _label("index", index, what="a position in the training set"),
               "decision": decision, "previous_label": _label("previous_label", previous_label),
               "proposed_label": _label("proposed_label", proposed_label, optional=True),
               "score": None if score is None else float(score),
               "reviewer": _text("reviewer", reviewer)}
        row["new_label"] = self._new_label(decision, row, new_label)
        return row

    @staticmethod
    def _insert(con, row: dict) -> int:
        cur = con.execute(
            "INSERT INTO decisions (time, item_id, idx, decision, previous_label, new_label, "
            "proposed_label, score, reviewer, batch) VALUES (:time, :item_id, :idx, :decision, "
            ":previous_label, :new_label, :proposed_label, :score, :reviewer, :batch)",
            {"batch": None, **row, "time": _now()})
        return int(cur.lastrowid)

    @staticmethod
    def _new_label(decision, row, new_label) -> Optional[int]:
        if decision == "exclude":
            if new_label is not None:
                raise UserError(f"exclude takes no new_label (got {new_label!r})")
            return None
        if decision == "keep":
            if new_label is not None and new_label != row["previous_label"]:
                raise UserError(f"keep means new_label = previous_label ({row['previous_label']}), "
                                f"got {new_label!r}; use relabel to change the label")
            return row["previous_label"]
        if decision == "accept" and new_label is None:
            if row["proposed_label"] is None:
                raise UserError("accept needs proposed_label (or new_label): there is no proposal")
            return row["proposed_label"]
        return _label("new_label", new_label)

    def undo(self, *, reviewer: str, item_id: Optional[str] = None) -> Optional[dict]:
        """Cancel the latest live decision of ``reviewer`` (or, given ``item_id``, of that item,
        whoever made it) by appending an ``undo`` row. Returns the cancelled decision (with
        ``undo_id``), or None when there is nothing to undo."""
        reviewer = _text("reviewer", reviewer)
        where, arg = ("item_id = ?", _text("item_id", item_id)) if item_id is not None \
            else ("reviewer = ?", reviewer)
        with self._write() as con:
            target = con.execute(f"WITH live AS ({_LIVE}) SELECT * FROM live WHERE {where} "
                                 "ORDER BY id DESC LIMIT 1", (arg,)).fetchone()
            if target is None:
                return None
            cur = con.execute(
                "INSERT INTO decisions (time, item_id, idx, decision, previous_label, new_label, "
                "reviewer, undoes) VALUES (?, ?, ?, 'undo', ?, NULL, ?, ?)",
                (_now(), target["item_id"], target["idx"], target["previous_label"], reviewer,
                 target["id"]))
            undone = _public(dict(target))
            undone["undo_id"] = int(cur.lastrowid)
            return undone

    def undo_latest(self, *, reviewer: str) -> list[dict]:
        """Cancel ``reviewer``'s latest action: the whole batch when their latest live decision was
        written by :meth:`record_batch`, else that one decision (as :meth:`undo`). One transaction;
        returns the cancelled decisions (each with ``undo_id``), [] when there is nothing to undo."""
        reviewer = _text("reviewer", reviewer)
        with self._write() as con:
            last = con.execute(f"WITH live AS ({_LIVE}) SELECT * FROM live WHERE reviewer = ? "
                               "ORDER BY id DESC LIMIT 1", (reviewer,)).fetchone()
            if last is None:
                return []
            targets = [last] if last["batch"] is None else con.execute(
                f"WITH live AS ({_LIVE}) SELECT * FROM live WHERE reviewer = ? AND batch = ? ORDER BY id",
                (reviewer, last["batch"])).fetchall()
            out = []
            for target in targets:
                cur = con.execute(
                    "INSERT INTO decisions (time, item_id, idx, decision, previous_label, new_label, "
                    "reviewer, undoes) VALUES (?, ?, ?, 'undo', ?, NULL, ?, ?)",
                    (_now(), target["item_id"], target["idx"], target["previous_label"], reviewer, target["id"]))
                out.append(dict(_public(dict(target)), undo_id=int(cur.lastrowid)))
            return out

    # ------------------------------------------------------------------------- reading

    def latest(self) -> pd.DataFrame:
        """The effective decision per item (latest row not undone), in the order they were made.

        Columns: id, time, item_id, index, decision, previous_label, new_label, proposed_label,
        score, reviewer (new_label / proposed_label are nullable Int64).
        """
        return _frame(self._query(_EFFECTIVE), undoes=False)

    def latest_by_reviewer(self) -> pd.DataFrame:
        """Each reviewer's own latest live decision per item (a team review: what each of them decided,
        even where a colleague decided later); columns as :meth:`latest`, ordered by id."""
        return _frame(self._query(f"""WITH live AS ({_LIVE}) SELECT * FROM live WHERE id IN
                                      (SELECT MAX(id) FROM live GROUP BY item_id, reviewer) ORDER BY id"""),
                      undoes=False)

    def history(self) -> pd.DataFrame:
        """Every row ever written, undo rows included, in order (the audit trail)."""
        return _frame(self._query("SELECT * FROM decisions ORDER BY id"), undoes=True)

    def decision_of(self, item_id: str) -> Optional[dict]:
        """The effective decision of one item as a dict, or None if it has none."""
        rows = self._query(f"WITH live AS ({_LIVE}) SELECT * FROM live WHERE item_id = ? "
                           "ORDER BY id DESC LIMIT 1", (item_id,))
        return _public(rows[0]) if rows else None

    def tally(self) -> dict:
        """Counts of effective decisions: accepted, kept, relabelled, excluded, reviewed (= total)."""
        rows = self._query(_EFFECTIVE)
        counts = pd.Series([r["decision"] for r in rows], dtype=object).value_counts()
        names = {"accept": "accepted", "keep": "kept", "relabel": "relabelled", "exclude": "excluded"}
        out = {names[d]: int(counts.get(d, 0)) for d in DECISIONS}
        out["reviewed"] = len(rows)
        return out

    def first_unreviewed(self, order: Sequence[str]) -> int:
        """Position in ``order`` (a queue of item ids) of the first item without an effective
        decision; ``len(order)`` when every item is decided."""
        live = self._query(f"WITH live AS ({_LIVE}) SELECT DISTINCT item_id FROM live")
        done = {r["item_id"] for r in live}
        for pos, item in enumerate(order):
            if str(item) not in done:
                return pos
        return len(order)


def _public(row: dict) -> dict:
    """A database row as the public dict: ``idx`` renamed ``index``, keys in _COLUMNS order."""
    row = dict(row, index=row["idx"])
    return {c: row[c] for c in _COLUMNS if c in row and not (c == "undoes" and row[c] is None)}


def _frame(rows: list[dict], *, undoes: bool) -> pd.DataFrame:
    cols = _COLUMNS if undoes else _COLUMNS[:-1]
    frame = pd.DataFrame([_public(r) for r in rows], columns=cols)
    ints = ["id", "index", "previous_label", "new_label", "proposed_label"] + (["undoes"] if undoes else [])
    for c in ints:
        frame[c] = frame[c].astype("Int64")
    frame["score"] = frame["score"].astype("float64")
    return frame


# ----------------------------------------------------------------------------- the review queue
def review_queue(issues: pd.DataFrame, decisions: pd.DataFrame, *, class_names: Sequence[str],
                 given: Optional[str] = None, proposed: Optional[str] = None, state: str = "all",
                 flagged_only: bool = True) -> pd.DataFrame:
    """The items to review, most suspicious first: the ranked ``issues`` (flagged ones only by
    default), filtered by given class, proposed class and decision state (one of DECISION_STATES,
    matched against ``decisions`` = ReviewStore.latest()). Adds ``decision`` and ``final_label``
    (class name; the given label while unreviewed, "" when excluded)."""
    if state not in DECISION_STATES:
        raise UserError(f"state={state!r} is not valid; choose one of: {', '.join(DECISION_STATES)}")
    q = issues[issues["is_label_issue"]] if flagged_only else issues
    ids = decisions["item_id"].astype(str)
    names = np.asarray(list(class_names) + [""], dtype=object)   # index -1 -> "" (excluded)
    new = names[decisions["new_label"].fillna(-1).astype(int).to_numpy()] if len(decisions) else []
    q = q.assign(decision=q["id"].map(dict(zip(ids, decisions["decision"]))).fillna("unreviewed"))
    q = q.assign(final_label=q["id"].map(dict(zip(ids, new))).fillna(q["given_label"]))
    if given:
        q = q[q["given_label"] == given]
    if proposed:
        q = q[q["proposed_label"] == proposed]
    if state == "unreviewed":
        q = q[q["decision"] == "unreviewed"]
    elif state == "reviewed":
        q = q[q["decision"] != "unreviewed"]
    elif state != "all":
        q = q[q["decision"] == state]
    return q.reset_index(drop=True)


def reviewer_accuracy(queue: pd.DataFrame) -> Optional[dict]:
    """Teaching mode: how often the reviewer's decisions made the label right (truth known only).

    A decision is right when its final label equals the true label; an exclusion is right when the
    given label was wrong. Returns correct, decided and accuracy = correct / decided (None if none)."""
    if "true_label" not in queue or "final_label" not in queue:
        return None
    decided = queue[queue["decision"] != "unreviewed"]
    if decided.empty:
        return {"correct": 0, "decided": 0, "accuracy": None}
    excluded = decided["decision"] == "exclude"
    right = np.where(excluded, decided["given_label"] != decided["true_label"],
                     decided["final_label"] == decided["true_label"])
    return {"correct": int(right.sum()), "decided": int(len(decided)), "accuracy": float(right.mean())}


def top_k(probs_row, class_names, *, k: int = 5) -> pd.DataFrame:
    """The k most probable classes of one row: class, probability (descending)."""
    p = np.asarray(probs_row, dtype=np.float64)
    order = np.argsort(-p, kind="stable")[:k]
    return pd.DataFrame({"class": np.asarray(class_names, dtype=object)[order], "probability": p[order]})
