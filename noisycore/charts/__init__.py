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

    base         palette, series names, axis titles and helpers every chart uses; larger_type
    data         class_counts_chart, noise_matrix_heatmap
    curves       learning_curves, memorization_chart, compare_curves, sweep_chart, precision_recall_chart
    predictions  confusion_matrix(_chart), per_class_accuracy_chart, top_k_chart
"""
from __future__ import annotations

from noisycore.charts.base import (AXIS_TITLES, CURVE_HEIGHT, FIT_X, HELD_OUT_GIVEN, MAX_HEATMAP_CLASSES, MAX_POINTS,
                                   PAD, PALETTE, PCT_TICKS, PERCENT_FIELDS, SERIES_NAMES, larger_type)
from noisycore.charts.curves import (compare_curves, learning_curves, memorization_chart, precision_recall_chart,
                                     sweep_chart)
from noisycore.charts.data import class_counts_chart, noise_matrix_heatmap
from noisycore.charts.predictions import (confusion_matrix, confusion_matrix_chart, per_class_accuracy_chart,
                                          top_k_chart)

__all__ = ["AXIS_TITLES", "CURVE_HEIGHT", "FIT_X", "HELD_OUT_GIVEN", "MAX_HEATMAP_CLASSES", "MAX_POINTS", "PAD",
           "PALETTE", "PCT_TICKS", "PERCENT_FIELDS", "SERIES_NAMES", "class_counts_chart", "compare_curves",
           "confusion_matrix", "confusion_matrix_chart", "larger_type", "learning_curves", "memorization_chart",
           "noise_matrix_heatmap", "per_class_accuracy_chart", "precision_recall_chart", "sweep_chart", "top_k_chart"]
