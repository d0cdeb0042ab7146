"""Charts of training: learning curves, the memorization effect, runs compared, sweeps."""
from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import pandas as pd

from noisycore.charts.base import (HELD_OUT_GIVEN, PALETTE, SERIES_NAMES, _as_percent, _axis_title, _best_rule,
                                   _check_best_epoch, _colors, _downsample, _finish, _frame, _has_values, _is_percent,
                                   _legend, _placeholder, _scaled)
from noisycore.catalog import detector_name
from noisycore.errors import UserError


def _curve_frame(metrics: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """metrics.csv -> long rows ``epoch, series, value`` for the present columns (NaN rows dropped)."""
    m = _downsample(metrics.sort_values("epoch"))
    parts = [pd.DataFrame({"epoch": pd.to_numeric(m["epoch"]).to_numpy(), "series": name,
                           "value": _scaled(m[col], col).to_numpy()})
             for col, name in columns.items()]
    long = pd.concat(parts, ignore_index=True)
    return long[long["value"].notna()].reset_index(drop=True)


def _given_column(metrics: pd.DataFrame) -> str | None:
    """Accuracy on the given labels: ``train_acc_given`` (the evaluation pass), else ``accuracy`` (Keras'
    running fit accuracy, for runs without the pass)."""
    for col in ("train_acc_given", "accuracy"):
        if _has_values(metrics, col):
            return col
    return None


def learning_curves(metrics: pd.DataFrame, *, best_epoch=None, kind="accuracy",
                    truth_known: bool = True, marker: str = "best model") -> alt.Chart | alt.LayerChart:
    """Accuracy (or loss) per epoch for train / validation / test, one line per present series.

    ``metrics``: the run's metrics.csv (epoch, loss, accuracy, train_acc_true, val_loss, val_accuracy,
    test_accuracy, ...); missing or all-NaN columns (truth unknown, no test set) are skipped.
    ``best_epoch`` draws a dashed rule labelled ``marker`` (the model the run keeps). Accuracy is drawn in %.
    """
    if kind not in ("accuracy", "loss"):
        raise UserError(f"kind={kind!r} is not valid; choose 'accuracy' or 'loss'")
    _frame(metrics, ["epoch"], "metrics")
    best_epoch = _check_best_epoch(best_epoch)
    if kind == "accuracy":
        wanted = ["train_acc_given", "accuracy", "train_acc_true", "val_accuracy", "test_accuracy"]
        title, y_title = "Accuracy per epoch", "Accuracy (%)"
        subtitle = ("Train (given labels): the model after each epoch on the labels it is fit to; during "
                    "training (running): Keras' average over the epoch's batches (augmented images, changing "
                    "weights). True-label, validation and test accuracy show what it really learned.")
    else:
        wanted = ["loss", "val_loss"]
        title, y_title = "Loss per epoch", "Loss (lower is better)"
        subtitle = ("The loss the model minimizes: on the given training labels during each epoch (running "
                    "average) and on validation.")
    if not truth_known:   # the user's own labels: every accuracy is against given labels
        wanted = [c for c in wanted if c != "train_acc_true"]
        subtitle = ("Every accuracy here is against the given labels (the true ones are unknown): training "
                    "(after each epoch, and Keras' running average during it), validation and held-out images."
                    if kind == "accuracy" else subtitle)
    columns = {c: SERIES_NAMES[c] for c in wanted if c is not None and _has_values(metrics, c)}
    if not truth_known and "test_accuracy" in columns:
        columns["test_accuracy"] = "Held-out (given labels)"
    if not columns:
        return _placeholder(f"No {kind} values yet: curves appear when the first epoch ends.", title)
    long = _curve_frame(metrics, columns)
    names = list(columns.values())
    y_scale = alt.Scale(domain=[0, 100]) if kind == "accuracy" else alt.Scale(zero=False)
    lines = alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="Epoch", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", title=y_title, scale=y_scale),
        color=alt.Color("series:N", scale=_colors(names), legend=_legend()),
        tooltip=[alt.Tooltip("series:N", title="Series"), alt.Tooltip("epoch:Q", title="Epoch"),
                 alt.Tooltip("value:Q", title=y_title, format=".2f" if kind == "accuracy" else ".4f")])
    chart = lines if best_epoch is None else alt.layer(lines, _best_rule(best_epoch, metrics["epoch"], marker))
    return _finish(chart, title, subtitle)


def memorization_chart(metrics: pd.DataFrame, *, best_epoch=None, marker: str = "best model") -> alt.Chart | alt.LayerChart:
    """The memorization gap: train accuracy on the given labels vs against the true labels, per epoch.

    gap = acc(given) - acc(true) in percentage points, shaded; ``memorized`` (dashed) is the share of
    the noisy training examples whose prediction equals their wrong given label (Arpit et al. 2017,
    "A Closer Look at Memorization in Deep Networks"). Needs ``train_acc_true`` (known truth).
    """
    _frame(metrics, ["epoch"], "metrics")
    best_epoch = _check_best_epoch(best_epoch)
    title = "Memorization gap"
    given = _given_column(metrics)
    if given is None or not _has_values(metrics, "train_acc_true"):
        return _placeholder("Needs accuracy on the given and on the true labels: known only when the "
                            "noise was injected (or true labels were supplied).", title)
    columns = {given: SERIES_NAMES[given], "train_acc_true": "Train (true labels)"}
    if _has_values(metrics, "memorized"):
        columns["memorized"] = "Memorized noisy labels"
    long = _curve_frame(metrics, columns)
    m = _downsample(metrics.sort_values("epoch"))
    gap = pd.DataFrame({"epoch": pd.to_numeric(m["epoch"]).to_numpy(),
                        "given": _as_percent(m[given], given).to_numpy(),
                        "true": _as_percent(m["train_acc_true"], "train_acc_true").to_numpy()}).dropna()
    gap["gap"] = gap["given"] - gap["true"]
    names = list(columns.values())
    x = alt.X("epoch:Q", title="Epoch", axis=alt.Axis(tickMinStep=1))
    area = alt.Chart(gap).mark_area(opacity=0.25, color=PALETTE["Memorization gap"]).encode(
        x=x, y=alt.Y("given:Q"), y2=alt.Y2("true:Q"),
        tooltip=[alt.Tooltip("epoch:Q", title="Epoch"),
                 alt.Tooltip("gap:Q", title="Gap (percentage points)", format=".1f")])
    lines = alt.Chart(long).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title="Training examples (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("series:N", scale=_colors(names), legend=_legend()),
        strokeDash=alt.StrokeDash("series:N", scale=alt.Scale(
            domain=names, range=[[1, 0] if n != "Memorized noisy labels" else [6, 3] for n in names]),
            legend=None),
        tooltip=[alt.Tooltip("series:N", title="Series"), alt.Tooltip("epoch:Q", title="Epoch"),
                 alt.Tooltip("value:Q", title="%", format=".1f")])
    layers = [area, lines] + ([_best_rule(best_epoch, metrics["epoch"], marker)] if best_epoch is not None else [])
    subtitle = ("Shaded: accuracy on the given (partly wrong) labels minus accuracy against the true "
                "labels; it widens when the network starts memorizing wrong labels (dashed: share of "
                "wrong labels it repeats).")
    return _finish(alt.layer(*layers), title, subtitle)


def compare_curves(runs: dict[str, pd.DataFrame], *, metric="test_accuracy",
                   labels: dict[str, str] | None = None, truth_known: bool = True) -> alt.Chart:
    """One metric over epochs for several runs, one coloured line per run.

    ``runs``: run id -> metrics DataFrame; ``labels``: run id -> legend text (see ``differing_fields``),
    default the run id. Runs without values for ``metric`` are left out. ``truth_known=False`` (the
    user's own labels): test accuracy is named held-out accuracy against the given labels.
    """
    if not isinstance(runs, Mapping) or not runs:
        raise UserError("runs must be a non-empty dict run id -> metrics DataFrame; pick at least one run")
    if not any(isinstance(df, pd.DataFrame) and metric in df.columns for df in runs.values()):
        known = sorted({c for df in runs.values() if isinstance(df, pd.DataFrame)
                        for c in df.columns} - {"epoch"})
        raise UserError(f"metric={metric!r} is in none of the runs; choose one of: {', '.join(known)}")
    labels = dict(labels or {})
    parts, used = [], []
    for run_id, df in runs.items():
        _frame(df, ["epoch"], f"metrics of run {run_id!r}")
        if not _has_values(df, metric):
            continue
        label = str(labels.get(run_id, run_id))
        label = f"{label} [{run_id}]" if label in used else label
        used.append(label)
        m = _downsample(df.sort_values("epoch"))
        parts.append(pd.DataFrame({"run_id": str(run_id), "run": label,
                                   "epoch": pd.to_numeric(m["epoch"]).to_numpy(),
                                   "value": _scaled(m[metric], metric).to_numpy()}))
    axis = _axis_title(metric) if truth_known or metric != "test_accuracy" else HELD_OUT_GIVEN
    title = f"{axis.split(' (')[0]} per epoch, by run"
    if not parts:
        return _placeholder(f"No selected run has recorded {metric} yet.", title)
    data = pd.concat(parts, ignore_index=True).dropna(subset=["value"])
    y_title = axis
    y_scale = alt.Scale(domain=[0, 100]) if _is_percent(metric) else alt.Scale(zero=False)
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="Epoch", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", title=y_title, scale=y_scale),
        color=alt.Color("run:N", sort=used, scale=alt.Scale(domain=used, scheme="tableau10"),  # one run a line:
                        legend=alt.Legend(title="Run", orient="bottom", columns=1, labelLimit=900)),  # never cut
        tooltip=[alt.Tooltip("run:N", title="Run"), alt.Tooltip("run_id:N", title="Run id"),
                 alt.Tooltip("epoch:Q", title="Epoch"), alt.Tooltip("value:Q", title=y_title, format=".2f")],
    )
    return _finish(chart, title, "Legend: what differs between the runs.")


def sweep_chart(summary: pd.DataFrame, *, x="rate", y="test_accuracy", group="recipe",
                band="minmax") -> alt.LayerChart:
    """Mean of ``y`` over seeds vs ``x`` (noise rate), one line per ``group``, with a band for the spread.

    ``summary``: one row per run (group, x, seed, y). For each (group, x): mean, and the band
    [min, max] (``band="minmax"``) or mean +- 1 sample standard deviation (``band="std"``).
    Fractions (rates, accuracies) are drawn in %.
    """
    if band not in ("minmax", "std"):
        raise UserError(f"band={band!r} is not valid; choose 'minmax' or 'std'")
    _frame(summary, [x, y, group], "sweep summary")
    d = pd.DataFrame({"group": summary[group].astype(str), "x": _scaled(summary[x], x).to_numpy(),
                      "y": _scaled(summary[y], y).to_numpy()}).dropna()
    if d.empty:
        return _placeholder(f"No finished runs with {y} yet.", "Noise-rate sweep")
    agg = d.groupby(["group", "x"], sort=True)["y"].agg(["mean", "min", "max", "std", "count"]).reset_index()
    agg["std"] = agg["std"].fillna(0.0)
    agg["low"], agg["high"] = ((agg["min"], agg["max"]) if band == "minmax"
                               else (agg["mean"] - agg["std"], agg["mean"] + agg["std"]))
    agg = agg.rename(columns={"group": group, "x": x, "mean": "mean", "count": "seeds"})
    groups = sorted(agg[group].unique())
    x_title, y_title = _axis_title(x), _axis_title(y)
    color = alt.Color(f"{group}:N", sort=groups, scale=alt.Scale(domain=groups, scheme="tableau10"),
                      legend=_legend(group.replace("_", " ").capitalize()))
    base = alt.Chart(agg).encode(x=alt.X(f"{x}:Q", title=x_title), color=color)
    area = base.mark_area(opacity=0.2).encode(y=alt.Y("low:Q", title=y_title), y2="high:Q")
    line = base.mark_line().encode(y="mean:Q")
    points = base.mark_point(filled=True, size=50).encode(y="mean:Q", tooltip=[
        alt.Tooltip(f"{group}:N", title=group.capitalize()), alt.Tooltip(f"{x}:Q", title=x_title, format=".3g"),
        alt.Tooltip("mean:Q", title=f"Mean {y_title}", format=".2f"),
        alt.Tooltip("low:Q", title="Band low", format=".2f"),
        alt.Tooltip("high:Q", title="Band high", format=".2f"),
        alt.Tooltip("seeds:Q", title="Seeds")])
    seeds = agg["seeds"]
    n = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    spread = "min to max over seeds" if band == "minmax" else "mean ± 1 standard deviation over seeds"
    title = f"{y_title.split(' (')[0]} vs {x_title.split(' (')[0].lower()}"
    return _finish(alt.layer(area, line, points), title, f"Line: mean over {n} seed(s); shaded band: {spread}.")


def precision_recall_chart(curves: pd.DataFrame) -> alt.Chart:
    """Precision vs recall of label-issue detectors, one line per detector, ordered by threshold.

    ``curves``: columns ``detector, threshold, precision, recall`` (fractions); precision = share of
    flagged labels that are really wrong, recall = share of wrong labels that are flagged.
    """
    _frame(curves, ["detector", "threshold", "precision", "recall"], "precision-recall curves")
    parts = []
    for name, df in curves.groupby("detector", sort=False):
        df = _downsample(df.sort_values("threshold"))
        parts.append(pd.DataFrame({"detector": detector_name(name),
                                   "threshold": pd.to_numeric(df["threshold"]).to_numpy(),
                                   "precision": _as_percent(df["precision"], "precision").to_numpy(),
                                   "recall": _as_percent(df["recall"], "recall").to_numpy()}))
    if not parts:
        return _placeholder("No detector results yet.", "Finding wrong labels: precision vs recall")
    data = pd.concat(parts, ignore_index=True).dropna(subset=["precision", "recall"])
    chart = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=20)).encode(
        x=alt.X("recall:Q", title="Recall: wrong labels found (%)", scale=alt.Scale(domain=[0, 100])),
        y=alt.Y("precision:Q", title="Precision: flagged labels really wrong (%)",
                scale=alt.Scale(domain=[0, 100])),
        order=alt.Order("threshold:Q"),
        # one legend row per detector: a horizontal legend in a half-page column cut all but two
        color=alt.Color("detector:N", scale=alt.Scale(scheme="tableau10"),
                        legend=alt.Legend(title="Detector", orient="bottom", columns=1, labelLimit=400)),
        tooltip=[alt.Tooltip("detector:N", title="Detector"),
                 alt.Tooltip("threshold:Q", title="Threshold", format=".3g"),
                 alt.Tooltip("precision:Q", title="Precision (%)", format=".1f"),
                 alt.Tooltip("recall:Q", title="Recall (%)", format=".1f")],
    )
    return _finish(chart, "Finding wrong labels: precision vs recall",
                   "Each point is one threshold; up and right is better.")
