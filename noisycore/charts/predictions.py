"""Charts of a model's predictions: confusion matrix, per-class accuracy, top-k classes of one image,
and the detectors' precision / recall curves."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from noisycore.charts.base import (PALETTE, PCT_TICKS, _class_index, _class_names, _finish, _fmt_pct, _label_array,
                                   _legend)
from noisycore.charts.data import _check_square, _heatmap
from noisycore.errors import UserError


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
