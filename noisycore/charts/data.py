"""Charts of the data and its noise: examples per class, the noise matrix heatmap."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from noisycore.charts.base import (MAX_HEATMAP_CLASSES, PAD, _class_names, _colors, _finish, _fmt_pct, _frame,
                                   _has_values, _legend, _title)
from noisycore.errors import DataError, UserError


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
    subtitle = ("Bars differ where noise moved examples from one class to another." if len(series) > 1
                else "Your labels as given: the true classes are unknown.")
    return _finish(chart, title, subtitle, wrap=40)


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
    of_rows = f"% of {y_title[:1].lower()}{y_title[1:]}"   # "% of likely true class" for an estimate
    tooltip = [alt.Tooltip("true_class:N", title=y_title),
               alt.Tooltip("given_class:N", title="Given label"),
               alt.Tooltip("percent:Q", title=of_rows, format=".1f")]
    if counts is not None:
        c = np.asarray(counts)
        if c.shape != m.shape:
            raise UserError(f"counts has shape {c.shape}; it must match the matrix shape {m.shape}")
        cells["count"] = c[i, j].astype(np.int64)
        cells["text"] = [f"{t}\n({n:,})" for t, n in zip(cells["text"], cells["count"])]
        tooltip.append(alt.Tooltip("count:Q", title="Examples", format=","))
    return _heatmap(cells, names, x_title="Given label", y_title=y_title, color_field="percent",
                    color_title=of_rows, domain_max=100, tooltip=tooltip, title=title,
                    subtitle=subtitle or "Row = true class, column = given label: the share of each true class "
                                         "that received each label. The diagonal is kept correctly; off-diagonal "
                                         "cells are noise.")
