"""Altair chart builders for the app's pages: pure functions of arrays and DataFrames.

Every builder returns an ``alt.Chart`` or ``alt.LayerChart`` and never calls Streamlit, so a page
does ``st.altair_chart(charts.learning_curves(metrics))`` and tests inspect ``chart.to_dict()``.

Conventions, so that charts read the same everywhere:

- accuracies, rates, precision and recall arrive as fractions in [0, 1] (as in ``metrics.csv``)
  and are drawn as percentages (the data column holds the percentage, the axis says "(%)");
- a series has one human name and one colour in every chart (``PALETTE``);
- ``noise_matrix`` ``T[i, j] = P(given = j | true = i)``: rows = true class (y axis),
  columns = given class (x axis); confusion matrices likewise put the true class on rows;
- data is kept small: long curves are downsampled to ``MAX_POINTS`` points per series.
"""
from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping

import altair as alt
import numpy as np
import pandas as pd

from noisycore.errors import DataError, UserError

# One colour per series name, shared by all charts (Okabe-Ito: readable for colour-blind viewers).
PALETTE = {
    "Train (given labels)": "#0072B2",    # blue: what the model is fit to
    "Train (true labels)": "#009E73",     # green: what it really learned
    "Validation": "#E69F00",              # orange
    "Test": "#D55E00",                    # vermillion
    "Memorized noisy labels": "#CC79A7",  # pink: wrong labels the model repeats
    "Memorization gap": "#999999",        # grey shading
    "Given labels": "#0072B2",
    "True labels": "#009E73",
    "Given label": "#0072B2",
    "Proposed label": "#009E73",
    "True label": "#E69F00",
    "Other classes": "#BBBBBB",
    "Requested": "#56B4E9",
    "Realized": "#0072B2",
    "Best model": "#333333",
}

# metrics.csv column -> series name in legends.
SERIES_NAMES = {
    "accuracy": "Train (given labels)", "train_acc_given": "Train (given labels)",
    "train_acc_true": "Train (true labels)", "val_accuracy": "Validation", "test_accuracy": "Test",
    "loss": "Train (given labels)", "val_loss": "Validation", "memorized": "Memorized noisy labels",
}

HELD_OUT_GIVEN = "Held-out accuracy, given labels (%)"   # test accuracy when the truth is unknown
# Column -> axis title with units.
AXIS_TITLES = {
    "epoch": "Epoch", "rate": "Noise rate (%)", "realized_rate": "Realized noise rate (%)",
    "accuracy": "Train accuracy on given labels (%)", "train_acc_given": "Train accuracy on given labels (%)",
    "train_acc_true": "Train accuracy on true labels (%)", "val_accuracy": "Validation accuracy (%)",
    "test_accuracy": "Test accuracy (%)", "memorized": "Noisy labels memorized (%)",
    "loss": "Train loss", "val_loss": "Validation loss", "lr": "Learning rate",
    "seconds": "Seconds per epoch", "precision": "Precision (%)", "recall": "Recall (%)",
}

# Fraction-valued columns, drawn as percentages.
PERCENT_FIELDS = frozenset({
    "rate", "realized_rate", "accuracy", "train_acc_given", "train_acc_true", "val_accuracy",
    "test_accuracy", "memorized", "precision", "recall", "noise_rate", "best_val_accuracy",
})

PCT_TICKS = alt.Axis(values=list(range(0, 101, 10)))   # 0, 10, ..., 100 on horizontal % axes
MAX_POINTS = 400            # per series; longer curves are thinned evenly (first and last kept)
MAX_HEATMAP_CLASSES = 50    # 2,500 cells; larger matrices are unreadable and heavy in the browser
CURVE_HEIGHT = 260          # pixels of plot area (title, axes and legend come on top)
# Streamlit defaults to autosize "fit", which squeezes title, axes and legend into `height` and can
# collapse a plot to nothing; "fit-x" fits the width to the page and keeps the plot height.
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")
PAD = alt.AutoSizeParams(type="pad", contains="padding")   # natural size: heatmaps with square cells


# ----------------------------------------------------------------------------- helpers

def _is_percent(field: str) -> bool:
    return field in PERCENT_FIELDS or field.endswith(("accuracy", "_acc", "_rate"))


def _axis_title(field: str) -> str:
    if field in AXIS_TITLES:
        return AXIS_TITLES[field]
    text = field.replace("_", " ").capitalize()
    return f"{text} (%)" if _is_percent(field) else text


def _frame(df, required, what: str) -> pd.DataFrame:
    """Validate that ``df`` is a DataFrame holding the ``required`` columns."""
    if not isinstance(df, pd.DataFrame):
        raise UserError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {', '.join(missing)}; "
                        f"it has: {', '.join(map(str, df.columns)) or 'no columns'}")
    return df


def _has_values(df: pd.DataFrame, col: str) -> bool:
    return col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any()


def _as_percent(values, field: str) -> pd.Series:
    """Fractions in [0, 1] -> percentages; a value outside [0, 1] is an error naming the field."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").astype(float)
    worst = v.max() if v.max() > 1 + 1e-9 else v.min()
    if worst > 1 + 1e-9 or worst < -1e-9:
        raise DataError(f"{field} has value {worst:g}; expected a fraction in [0, 1] "
                        f"(e.g. 0.875 for 87.5%)")
    return v * 100.0


def _scaled(values, field: str) -> pd.Series:
    return _as_percent(values, field) if _is_percent(field) else pd.to_numeric(
        pd.Series(values), errors="coerce").astype(float)


def _downsample(df: pd.DataFrame, max_rows: int = MAX_POINTS) -> pd.DataFrame:
    """Keep ``max_rows`` evenly spaced rows (first and last included)."""
    if len(df) <= max_rows:
        return df
    idx = np.unique(np.linspace(0, len(df) - 1, max_rows).round().astype(int))
    return df.iloc[idx]


def _fmt_pct(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.1f}".removesuffix(".0") + "%"


def _colors(names) -> alt.Scale:
    """Colour scale that maps each series name to its palette colour."""
    names = list(names)
    return alt.Scale(domain=names, range=[PALETTE.get(n, "#777777") for n in names])


def _legend(title=None) -> alt.Legend:
    return alt.Legend(title=title, orient="bottom", labelLimit=320)


def _title(text: str, subtitle=None, *, width: int = 72) -> alt.TitleParams:
    """Title with the subtitle wrapped into short lines (long ones get cut off and squeeze the plot)."""
    return alt.TitleParams(text, subtitle=textwrap.wrap(subtitle or "", width), anchor="start")


def _finish(chart, title: str, subtitle=None, *, height=CURVE_HEIGHT, wrap: int = 72):
    """Title, plot height and Streamlit-proof autosize (see ``FIT_X``) on a finished chart. ``wrap``:
    characters per subtitle line (Vega cuts a line longer than the chart; narrow charts need less)."""
    return chart.properties(autosize=FIT_X, title=_title(title, subtitle, width=wrap), height=height)


def _placeholder(message: str, title: str) -> alt.Chart:
    """A chart that only says why there is nothing to draw yet (e.g. no epoch finished)."""
    chart = alt.Chart(pd.DataFrame({"message": [message]})).mark_text(fontSize=14, color="gray")
    return _finish(chart.encode(text="message:N"), title, height=80)


def _check_best_epoch(best_epoch):
    if best_epoch is None:
        return None
    if isinstance(best_epoch, bool) or not isinstance(best_epoch, (int, float, np.integer, np.floating)):
        raise UserError(f"best_epoch={best_epoch!r} must be an epoch number or None")
    if not np.isfinite(best_epoch):
        return None
    return int(best_epoch)


def _best_rule(best_epoch: int, epochs=None) -> alt.LayerChart:
    """Dashed vertical rule at the best epoch, labelled "best model". ``epochs``: the epochs drawn; when
    the best one is in the right half the label goes left of the rule (else the plot edge cuts it)."""
    data = pd.DataFrame({"epoch": [best_epoch], "label": ["best model"]})
    base = alt.Chart(data).encode(x=alt.X("epoch:Q"))
    rule = base.mark_rule(color=PALETTE["Best model"], strokeDash=[4, 4]).encode(
        tooltip=[alt.Tooltip("label:N", title="Marker"), alt.Tooltip("epoch:Q", title="Epoch")])
    span = pd.to_numeric(pd.Series(epochs), errors="coerce").dropna() if epochs is not None else pd.Series([])
    right_half = len(span) > 0 and best_epoch > (span.min() + span.max()) / 2
    text = base.mark_text(align="right" if right_half else "left", baseline="top", dx=-4 if right_half else 4,
                          color=PALETTE["Best model"]).encode(text="label:N", y=alt.value(4))
    return alt.layer(rule, text)


def _class_index(value, class_names, what: str) -> int:
    """A class given by index or by name -> its index."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= int(value) < len(class_names):
            return int(value)
    elif value in class_names:
        return list(class_names).index(value)
    raise UserError(f"{what}={value!r} is not a class; use an index 0..{len(class_names) - 1} "
                    f"or one of: {', '.join(map(str, class_names))}")


def _class_names(class_names, k: int | None = None) -> list[str]:
    names = [str(c) for c in class_names]
    if k is not None and len(names) != k:
        raise UserError(f"got {len(names)} class names for {k} classes; pass one name per class")
    if len(set(names)) != len(names):
        raise UserError(f"class names must be distinct, got: {', '.join(names)}")
    return names


def _label_array(values, name: str, k: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise UserError(f"{name} must be a 1-D array of integer class indices, "
                        f"got shape {arr.shape} and dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise UserError(f"{name} holds class {int(arr.min() if arr.min() < 0 else arr.max())}, "
                        f"outside 0..{k - 1}")
    return arr.astype(np.int64)


# ----------------------------------------------------------------------------- data & noise

def class_counts_chart(counts: pd.DataFrame, *, title="Training examples per class") -> alt.Chart:
    """Grouped bars: number of training examples per class under the true and the given labels.

    ``counts``: one row per class with columns ``class``, ``given`` and (when the truth is known)
    ``true``. A class whose given bar is taller than its true bar received flipped labels.
    """
    _frame(counts, ["class", "given"], "class counts")
    series = [("true", "True labels")] if _has_values(counts, "true") else []
    series.append(("given", "Given labels"))
    order = [str(c) for c in counts["class"]]
    long = pd.concat([pd.DataFrame({"class": order, "labels": name, "count": pd.to_numeric(
                          counts[col], errors="coerce").astype("float64").to_numpy()})
                      for col, name in series], ignore_index=True)
    names = [name for _, name in series]
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("class:N", sort=order, title="Class",   # every class labelled (Vega drops overlapping ones)
                axis=alt.Axis(labelAngle=-45 if len(order) > 6 else 0, labelOverlap=False, labelLimit=120)),
        xOffset=alt.XOffset("labels:N", sort=names),
        y=alt.Y("count:Q", title="Number of training examples"),
        color=alt.Color("labels:N", scale=_colors(names), legend=_legend()),
        tooltip=[alt.Tooltip("class:N", title="Class"), alt.Tooltip("labels:N", title="Counted by"),
                 alt.Tooltip("count:Q", title="Examples", format=",")],
    )
    return _finish(chart, title, "Bars differ where noise moved examples from one class to another.", wrap=40)


def _heatmap(cells: pd.DataFrame, names, *, x_title, y_title, color_field, color_title,
             domain_max, tooltip, title, subtitle) -> alt.LayerChart:
    """Shared K x K heatmap: ``cells`` has ``row``, ``col``, ``diagonal``, ``text`` and ``color_field``.

    Sequential colour on a square-root scale (small off-diagonal values stay visible), text in
    white on dark cells, and an outline on the diagonal so it reads at a glance.
    """
    k = len(names)
    # Band sizes as steps, not pixels: Streamlit collapses discrete axes given a fixed pixel size.
    step = 40 if k <= 8 else 36 if k <= 12 else max(480 // k, 10)   # 10 classes fit 3/5 of a 1280 px page
    # Column headers stay level only when the longest fits its cell (~6.5 px per character at 11 px).
    level = max(map(len, names)) * 6.5 <= step - 4
    base = alt.Chart(cells).encode(
        x=alt.X("col:N", sort=names, title=x_title,
                axis=alt.Axis(labelAngle=0 if level else -45, labelAlign="center" if level else alt.Undefined,
                              orient="top", labelOverlap=False, labelLimit=140)),
        y=alt.Y("row:N", sort=names, title=y_title))
    rect = base.mark_rect(stroke="#333333").encode(
        # legend below the matrix: at the right it is cut off in a narrow column
        color=alt.Color(f"{color_field}:Q", title=color_title,
                        scale=alt.Scale(scheme="blues", type="sqrt", domain=[0, domain_max]),
                        legend=alt.Legend(orient="bottom", direction="horizontal", titleLimit=300,
                                          gradientLength=max(min(step * k, 240), 100))),
        strokeWidth=alt.condition("datum.diagonal", alt.value(1.5), alt.value(0)),
        tooltip=tooltip)
    layers = [rect]
    if k <= 20:  # beyond that the cells are too small for text; tooltips still work
        layers.append(base.mark_text(fontSize=11 if k <= 10 else 8, lineBreak="\n").encode(
            text="text:N",
            color=alt.condition(f"datum.{color_field} > {0.4 * domain_max}", alt.value("white"),
                                alt.value("black"))))
    return alt.layer(*layers).properties(autosize=PAD, title=_title(title, subtitle), width=alt.Step(step),
                                         height=alt.Step(step))


def _check_square(matrix, name: str) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise UserError(f"{name} must be a square K x K array, got shape {m.shape}")
    if m.shape[0] > MAX_HEATMAP_CLASSES:
        raise UserError(f"{name} has {m.shape[0]} classes; heatmaps are drawn for at most "
                        f"{MAX_HEATMAP_CLASSES} (show a subset of classes instead)")
    return m


def noise_matrix_heatmap(matrix: np.ndarray, class_names, *, title="Realized noise matrix",
                         counts=None, y_title="True class", subtitle=None) -> alt.LayerChart:
    """Heatmap of a noise matrix ``T[i, j] = P(given = j | true = i)``: rows true, columns given.

    ``y_title`` / ``subtitle``: e.g. for an estimated matrix whose rows are the likely true classes.
    ``matrix``: (K, K) fractions (NaN for a class without examples); ``counts``: optional (K, K)
    number of training examples with true class i and given class j, shown under the percentage.
    Data: K*K rows ``true_class, given_class, percent (= 100 T[i, j]), text[, count]``.
    """
    m = _check_square(matrix, "noise matrix")
    k = m.shape[0]
    names = _class_names(class_names, k)
    finite = m[np.isfinite(m)]
    if finite.size and (finite.min() < -1e-9 or finite.max() > 1 + 1e-9):
        raise DataError(f"noise matrix holds {finite.min() if finite.min() < 0 else finite.max():g}; "
                        "entries must be probabilities in [0, 1] (rows sum to 1)")
    i, j = np.indices((k, k)).reshape(2, -1)
    pct = m[i, j] * 100.0
    cells = pd.DataFrame({"true_class": [names[a] for a in i], "given_class": [names[b] for b in j],
                          "row": [names[a] for a in i], "col": [names[b] for b in j],
                          "diagonal": i == j, "percent": pct, "text": [_fmt_pct(p) for p in pct]})
    tooltip = [alt.Tooltip("true_class:N", title="True class"),
               alt.Tooltip("given_class:N", title="Given label"),
               alt.Tooltip("percent:Q", title="% of the true class", format=".1f")]
    if counts is not None:
        c = np.asarray(counts)
        if c.shape != m.shape:
            raise UserError(f"counts has shape {c.shape}; it must match the matrix shape {m.shape}")
        cells["count"] = c[i, j].astype(np.int64)
        cells["text"] = [f"{t}\n({n:,})" for t, n in zip(cells["text"], cells["count"])]
        tooltip.append(alt.Tooltip("count:Q", title="Examples", format=","))
    return _heatmap(cells, names, x_title="Given label", y_title=y_title, color_field="percent",
                    color_title="% of true class", domain_max=100, tooltip=tooltip, title=title,
                    subtitle=subtitle or "Row = true class, column = given label: the share of each true class "
                                         "that received each label. The diagonal is kept correctly; off-diagonal "
                                         "cells are noise.")


def noise_rate_bar(requested: float, realized: float | None, *, title="Noise rate") -> alt.Chart:
    """Two horizontal bars: the requested noise rate and the realized one (fraction of labels changed)."""
    rows = [("Requested", requested)] + ([("Realized", realized)] if realized is not None else [])
    for name, value in rows:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(value) <= 1.0:
            raise UserError(f"{name.lower()} noise rate={value!r} must be a fraction in [0, 1]")
    data = pd.DataFrame({"rate": [n for n, _ in rows], "percent": [100.0 * float(v) for _, v in rows]})
    data["text"] = [_fmt_pct(p) for p in data["percent"]]
    base = alt.Chart(data).encode(
        y=alt.Y("rate:N", sort=list(data["rate"]), title=None),
        x=alt.X("percent:Q", title="Training labels changed (%)", scale=alt.Scale(domain=[0, 100]),
                axis=PCT_TICKS))
    bars = base.mark_bar().encode(
        color=alt.Color("rate:N", scale=_colors(data["rate"]), legend=None),
        tooltip=[alt.Tooltip("rate:N", title="Noise rate"), alt.Tooltip("percent:Q", title="%", format=".2f")])
    text = base.mark_text(align="left", dx=4).encode(text="text:N")
    return _finish(alt.layer(bars, text), title,
                   "Realized = share of labels actually changed; random flips make it differ slightly.",
                   height=30 * len(rows))


# ----------------------------------------------------------------------------- training curves

def _curve_frame(metrics: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """metrics.csv -> long rows ``epoch, series, value`` for the present columns (NaN rows dropped)."""
    m = _downsample(metrics.sort_values("epoch"))
    parts = [pd.DataFrame({"epoch": pd.to_numeric(m["epoch"]).to_numpy(), "series": name,
                           "value": _scaled(m[col], col).to_numpy()})
             for col, name in columns.items()]
    long = pd.concat(parts, ignore_index=True)
    return long[long["value"].notna()].reset_index(drop=True)


def _given_column(metrics: pd.DataFrame) -> str | None:
    """Accuracy on the given labels: ``accuracy`` (the fit metric), else ``train_acc_given``."""
    for col in ("accuracy", "train_acc_given"):
        if _has_values(metrics, col):
            return col
    return None


def learning_curves(metrics: pd.DataFrame, *, best_epoch=None, kind="accuracy",
                    truth_known: bool = True) -> alt.Chart | alt.LayerChart:
    """Accuracy (or loss) per epoch for train / validation / test, one line per present series.

    ``metrics``: the run's metrics.csv (epoch, loss, accuracy, train_acc_true, val_loss, val_accuracy,
    test_accuracy, ...); missing or all-NaN columns (truth unknown, no test set) are skipped.
    ``best_epoch`` draws a dashed rule labelled "best model". Accuracy is drawn in %.
    """
    if kind not in ("accuracy", "loss"):
        raise UserError(f"kind={kind!r} is not valid; choose 'accuracy' or 'loss'")
    _frame(metrics, ["epoch"], "metrics")
    best_epoch = _check_best_epoch(best_epoch)
    if kind == "accuracy":
        wanted = [_given_column(metrics), "train_acc_true", "val_accuracy", "test_accuracy"]
        title, y_title = "Accuracy per epoch", "Accuracy (%)"
        subtitle = ("Train (given labels) is what the model is fit to; true-label, validation and test "
                    "accuracy show what it really learned.")
    else:
        wanted = ["loss", "val_loss"]
        title, y_title = "Loss per epoch", "Loss (lower is better)"
        subtitle = "The loss the model minimizes, on the given training labels and on validation."
    if not truth_known:   # the user's own labels: every accuracy is against given labels
        wanted = [c for c in wanted if c != "train_acc_true"]
        subtitle = ("Every accuracy here is against the given labels (the true ones are unknown): training, "
                    "validation and held-out images." if kind == "accuracy" else subtitle)
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
    chart = lines if best_epoch is None else alt.layer(lines, _best_rule(best_epoch, metrics["epoch"]))
    return _finish(chart, title, subtitle)


def memorization_chart(metrics: pd.DataFrame, *, best_epoch=None) -> alt.Chart | alt.LayerChart:
    """The memorization gap: train accuracy on the given labels vs against the true labels, per epoch.

    gap = acc(given) - acc(true) in percentage points, shaded; ``memorized`` (dashed) is the share of
    the noisy training examples whose prediction equals their wrong given label (Arpit et al. 2017,
    "A Closer Look at Memorization in Deep Networks"). Needs ``train_acc_true`` (known truth).
    """
    _frame(metrics, ["epoch"], "metrics")
    best_epoch = _check_best_epoch(best_epoch)
    title = "Memorization gap"
    given = "train_acc_given" if _has_values(metrics, "train_acc_given") else _given_column(metrics)
    if given is None or not _has_values(metrics, "train_acc_true"):
        return _placeholder("Needs accuracy on the given and on the true labels: known only when the "
                            "noise was injected (or true labels were supplied).", title)
    columns = {given: "Train (given labels)", "train_acc_true": "Train (true labels)"}
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
    layers = [area, lines] + ([_best_rule(best_epoch, metrics["epoch"])] if best_epoch is not None else [])
    subtitle = ("Shaded: accuracy on the given (partly wrong) labels minus accuracy against the true "
                "labels; it widens when the network starts memorizing wrong labels (dashed: share of "
                "wrong labels it repeats).")
    return _finish(alt.layer(*layers), title, subtitle)


# ----------------------------------------------------------------------------- predictions

def confusion_matrix(true, pred, num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` = number of examples with true class i predicted as j; (K, K) int64.

    ``true``, ``pred``: (N,) integer class indices in 0..K-1.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise UserError(f"num_classes={num_classes!r} must be a positive integer")
    k = int(num_classes)
    t, p = _label_array(true, "true", k), _label_array(pred, "pred", k)
    if t.shape != p.shape:
        raise UserError(f"true has {t.size} labels but pred has {p.size}; pass one prediction per example")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def confusion_matrix_chart(true, pred, class_names, *, normalize=True, title="Confusion matrix",
                           rows_are="true class") -> alt.LayerChart:
    """Heatmap of the confusion matrix: rows true class, columns predicted class.

    ``rows_are`` names the rows in the axis, legend and caption ("given label" when the truth is unknown).

    normalize=True colours by the row percentage ``100 C[i, j] / sum_j C[i, j]`` (the diagonal is
    per-class accuracy, i.e. recall); False colours by count. Cells show the % and the count.
    """
    names = _class_names(class_names)
    k = len(names)
    _check_square(np.zeros((k, k)), "confusion matrix")
    counts = confusion_matrix(true, pred, k)
    rows = counts.sum(axis=1, keepdims=True)
    pct = np.divide(100.0 * counts, rows, out=np.full((k, k), np.nan), where=rows > 0)
    i, j = np.indices((k, k)).reshape(2, -1)
    cells = pd.DataFrame({"true_class": [names[a] for a in i], "predicted_class": [names[b] for b in j],
                          "row": [names[a] for a in i], "col": [names[b] for b in j], "diagonal": i == j,
                          "count": counts[i, j], "percent": pct[i, j]})
    cells["text"] = [f"{_fmt_pct(p)}\n({n:,})" if normalize else f"{n:,}"
                     for p, n in zip(cells["percent"], cells["count"])]
    tooltip = [alt.Tooltip("true_class:N", title=rows_are.capitalize()),
               alt.Tooltip("predicted_class:N", title="Predicted class"),
               alt.Tooltip("count:Q", title="Examples", format=","),
               alt.Tooltip("percent:Q", title=f"% of the {rows_are}", format=".1f")]
    color_field, color_title, dmax = ("percent", f"% of {rows_are}", 100) if normalize else (
        "count", "Examples", max(int(counts.max()), 1))
    return _heatmap(cells, names, x_title="Predicted class", y_title=rows_are.capitalize(), color_field=color_field,
                    color_title=color_title, domain_max=dmax, tooltip=tooltip, title=title,
                    subtitle=f"Row = {rows_are}, column = the model's prediction; the diagonal holds the "
                             "correct predictions (per-class accuracy when shown in %).")


def per_class_accuracy_chart(true, pred, class_names, *, split="Test", rows_are="true class") -> alt.LayerChart:
    """Horizontal bars: accuracy per true class, ``100 * mean(pred == true | true == i)``, in %.

    The dashed rule is the overall accuracy; ``split`` names the data set (title and colour);
    ``rows_are`` names the classes of the bars ("given label" when the truth is unknown).
    """
    names = _class_names(class_names)
    counts = confusion_matrix(true, pred, len(names))
    n = counts.sum(axis=1)
    correct = np.diag(counts)
    acc = np.divide(100.0 * correct, n, out=np.full(len(names), np.nan), where=n > 0)
    data = pd.DataFrame({"class": names, "accuracy": acc, "correct": correct, "examples": n})
    overall = 100.0 * correct.sum() / max(int(n.sum()), 1)
    bars = alt.Chart(data).mark_bar(color=PALETTE.get(split, PALETTE["Test"])).encode(
        y=alt.Y("class:N", sort=names, title=rows_are.capitalize()),
        x=alt.X("accuracy:Q", title=f"{split} accuracy (%)", scale=alt.Scale(domain=[0, 100]), axis=PCT_TICKS),
        tooltip=[alt.Tooltip("class:N", title="Class"),
                 alt.Tooltip("accuracy:Q", title="Accuracy (%)", format=".1f"),
                 alt.Tooltip("correct:Q", title="Correct"), alt.Tooltip("examples:Q", title="Examples")])
    rule = alt.Chart(pd.DataFrame({"accuracy": [overall], "label": ["overall"]})).mark_rule(
        strokeDash=[4, 4], color=PALETTE["Best model"]).encode(
        x="accuracy:Q", tooltip=[alt.Tooltip("accuracy:Q", title="Overall accuracy (%)", format=".1f")])
    return _finish(alt.layer(bars, rule), f"{split} accuracy per class",
                   f"Share of each {rows_are} predicted correctly; dashed line: overall ({overall:.1f}%).",
                   height=max(20 * len(names), 120))


def top_k_chart(probs: np.ndarray, class_names, *, k=5, highlight: dict | None = None,
                title=None) -> alt.LayerChart:
    """Horizontal bars of the model's k most probable classes for one image, in %.

    ``probs``: (K,) predicted probabilities; ``highlight``: role -> class (index or name), e.g.
    ``{"given": 3, "proposed": 5}``; highlighted classes are coloured and always shown, even outside
    the top k.
    """
    p = np.asarray(probs, dtype=float).squeeze()
    names = _class_names(class_names)
    if p.ndim != 1 or p.size != len(names):
        raise UserError(f"probs must have one probability per class ({len(names)}), "
                        f"got shape {np.shape(probs)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise UserError(f"k={k!r} must be a positive integer")
    roles: dict[int, list[str]] = {}
    for role, cls in (highlight or {}).items():
        label = {"given": "Given label", "proposed": "Proposed label", "true": "True label"}.get(
            str(role).lower(), str(role))
        roles.setdefault(_class_index(cls, names, f"highlight[{role!r}]"), []).append(label)
    top = list(np.argsort(-p, kind="stable")[: min(int(k), p.size)])
    shown = top + [c for c in roles if c not in top]
    data = pd.DataFrame({"class": [names[c] for c in shown], "probability": 100.0 * p[shown],
                         "role": [" & ".join(roles.get(c, ["Other classes"])) for c in shown]})
    data["text"] = [_fmt_pct(v) for v in data["probability"]]
    data = data.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)
    role_names = list(dict.fromkeys(data["role"]))
    base = alt.Chart(data).encode(
        y=alt.Y("class:N", sort=list(data["class"]), title=None),
        x=alt.X("probability:Q", title="Predicted probability (%)", scale=alt.Scale(domain=[0, 100]),
                axis=PCT_TICKS))
    bars = base.mark_bar().encode(
        color=alt.Color("role:N", legend=_legend(), scale=alt.Scale(
            domain=role_names, range=[PALETTE.get(r.split(" & ")[0], "#7F3C8D") for r in role_names])),
        tooltip=[alt.Tooltip("class:N", title="Class"),
                 alt.Tooltip("probability:Q", title="Probability (%)", format=".1f"),
                 alt.Tooltip("role:N", title="Role")])
    text = base.mark_text(align="left", dx=3).encode(text="text:N")
    return _finish(alt.layer(bars, text), title or f"Model's top {min(int(k), p.size)} classes",
                   "How sure the model is about each class for this image.", height=22 * len(shown))


# ----------------------------------------------------------------------------- comparing runs

_MISSING = object()


def _flatten(config: Mapping, prefix: str = "") -> dict:
    """Nested dicts -> one level with dotted keys: {"noise": {"rate": 0.4}} -> {"noise.rate": 0.4}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _fmt_value(value) -> str:
    if value is _MISSING:
        return "unset"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, (list, tuple, dict)) else str(value)


def differing_fields(configs: dict[str, dict], *, ignore=()) -> dict[str, str]:
    """Run id -> short label naming only the config fields that differ between the runs.

    Nested dicts are flattened with dotted keys: ``{"loss": "gce", "noise": {"rate": 0.4}}`` ->
    ``"loss=gce, noise.rate=0.4"``. Runs whose configs are identical are labelled by their run id.
    ``ignore``: keys (or dotted prefixes) never compared, e.g. ``("run_id", "created")``.
    """
    if not isinstance(configs, Mapping):
        raise UserError(f"configs must be a dict run id -> config dict, got {type(configs).__name__}")
    flat = {}
    for run_id, cfg in configs.items():
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
        if not isinstance(cfg, Mapping):
            raise UserError(f"config of run {run_id!r} must be a dict, got {type(cfg).__name__}")
        flat[run_id] = _flatten(cfg)
    ignored = tuple(ignore)
    keys = [k for k in dict.fromkeys(k for f in flat.values() for k in f)
            if not any(k == ig or k.startswith(f"{ig}.") for ig in ignored)]
    canon = lambda v: "\0missing" if v is _MISSING else json.dumps(v, sort_keys=True, default=str)  # noqa: E731
    differing = [k for k in keys if len({canon(f.get(k, _MISSING)) for f in flat.values()}) > 1]
    labels = {rid: ", ".join(f"{k}={_fmt_value(f.get(k, _MISSING))}" for k in differing) or str(rid)
              for rid, f in flat.items()}
    taken = [lab for lab in labels.values()]
    return {rid: (f"{lab} [{rid}]" if taken.count(lab) > 1 and lab != str(rid) else lab)
            for rid, lab in labels.items()}


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
        parts.append(pd.DataFrame({"detector": str(name),
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
        color=alt.Color("detector:N", scale=alt.Scale(scheme="tableau10"), legend=_legend("Detector")),
        tooltip=[alt.Tooltip("detector:N", title="Detector"),
                 alt.Tooltip("threshold:Q", title="Threshold", format=".3g"),
                 alt.Tooltip("precision:Q", title="Precision (%)", format=".1f"),
                 alt.Tooltip("recall:Q", title="Recall (%)", format=".1f")],
    )
    return _finish(chart, "Finding wrong labels: precision vs recall",
                   "Each point is one threshold; up and right is better.")


# ----------------------------------------------------------------------------- presenter mode

def larger_type(chart, *, scale: float = 1.4):
    """The same chart with every font ``scale`` times larger (axes, legends, titles): for a projector.
    Streamlit's chart theme stays underneath; only the sizes are overridden."""
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 1.0 <= scale <= 3.0:
        raise UserError(f"scale={scale!r} must be a number from 1 to 3")
    size = lambda px: round(px * scale)  # noqa: E731
    title = chart.title
    if isinstance(title, alt.TitleParams) and isinstance(title.subtitle, list) and title.subtitle:
        # the same width holds fewer characters: wrap the subtitle again, shorter by the scale
        chars = max(int(max(map(len, title.subtitle)) / scale), 20)
        if isinstance(getattr(chart, "width", None), alt.Step):   # heatmaps: as narrow as their cells
            chars = min(chars, 34)
        chart = chart.properties(title=alt.TitleParams(
            title.text, subtitle=textwrap.wrap(" ".join(title.subtitle), chars), anchor=title.anchor))
    return (chart.configure_axis(labelFontSize=size(11), titleFontSize=size(12), labelLimit=size(120))
            .configure_legend(labelFontSize=size(12), titleFontSize=size(12), labelLimit=size(320), columns=1)
            .configure_title(fontSize=size(15), subtitleFontSize=size(12)))
