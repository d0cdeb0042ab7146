"""What every chart shares: the palette and series names, axis titles, percent scaling, downsampling,
titles, placeholders, class-name checks, and presenter mode's larger type."""
from __future__ import annotations

import textwrap

import altair as alt
import numpy as np
import pandas as pd

from noisycore.errors import DataError, UserError
from noisycore.util import pct


def _fmt_pct(p) -> str:
    """A value already in percent (40.5) as '40.5%', '40%' for 40.0, '–' when missing."""
    return pct(None if p is None else p / 100, trim=True, missing="–")


# One colour per series name, shared by all charts (Okabe-Ito: readable for colour-blind viewers).
PALETTE = {
    "Train (given labels)": "#0072B2",    # blue: what the model is fit to (one pass after the epoch)
    "During training (running)": "#56B4E9",   # sky blue: Keras' running average while the epoch trains
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


# metrics.csv column -> series name in legends. One name, one meaning: "Train (given labels)" is the
# evaluation pass after each epoch (train_acc_given, the number the pages' headlines show); Keras' own
# ``accuracy`` / ``loss`` are running averages over the epoch's batches, on augmented images when
# augmentation is on, while the weights still change: "During training (running)".
RUNNING = "During training (running)"
SERIES_NAMES = {
    "accuracy": RUNNING, "train_acc_given": "Train (given labels)",
    "train_acc_true": "Train (true labels)", "val_accuracy": "Validation", "test_accuracy": "Test",
    "loss": RUNNING, "val_loss": "Validation", "memorized": "Memorized noisy labels",
}


HELD_OUT_GIVEN = "Held-out accuracy, given labels (%)"   # test accuracy when the truth is unknown


# Column -> axis title with units.
AXIS_TITLES = {
    "epoch": "Epoch", "rate": "Noise rate (%)", "realized_rate": "Realized noise rate (%)",
    "accuracy": "Accuracy during training, running (%)", "train_acc_given": "Train accuracy on given labels (%)",
    "train_acc_true": "Train accuracy on true labels (%)", "val_accuracy": "Validation accuracy (%)",
    "test_accuracy": "Test accuracy (%)", "memorized": "Noisy labels memorized (%)",
    "loss": "Train loss during training, running", "val_loss": "Validation loss", "lr": "Learning rate",
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


def _best_rule(best_epoch: int, epochs=None, label: str = "best model") -> alt.LayerChart:
    """Dashed vertical rule at the kept model's epoch, labelled ``label``. ``epochs``: the epochs drawn; when
    that one is in the right half the label goes left of the rule (else the plot edge cuts it)."""
    if not isinstance(label, str) or not label.strip():
        raise UserError(f"marker={label!r} must be a non-empty text")
    data = pd.DataFrame({"epoch": [best_epoch], "label": [label]})
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


def _larger_cells(chart, size):
    """A heatmap (width and height in steps) with its steps and its cells' text ``size``-d."""
    chart = chart.copy(deep=True)
    steps = {k: alt.Step(size(getattr(chart, k).step)) for k in ("width", "height")
             if isinstance(getattr(chart, k, None), alt.Step)}
    chart = chart.properties(**steps)
    for layer in getattr(chart, "layer", []):
        mark = layer.mark
        if isinstance(mark, alt.MarkDef) and isinstance(mark.fontSize, (int, float)):
            mark.fontSize = size(mark.fontSize)
    return chart


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
    if isinstance(getattr(chart, "width", None), alt.Step):   # heatmaps: larger cells and cell text too
        chart = _larger_cells(chart, size)
    return (chart.configure_axis(labelFontSize=size(11), titleFontSize=size(12), labelLimit=size(120))
            .configure_legend(labelFontSize=size(12), titleFontSize=size(12), labelLimit=size(320), columns=1)
            .configure_title(fontSize=size(15), subtitleFontSize=size(12)))
