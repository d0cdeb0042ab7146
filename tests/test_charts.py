"""Chart builders: encodings, axis titles and the data each chart carries, checked on hand-made inputs."""
import json

import numpy as np
import pandas as pd
import pytest

from noisycore import charts
from noisycore.config import ConfigError
from noisycore.errors import DataError, UserError


# ----------------------------------------------------------------------------- helpers

def _units(spec, data=None):
    """Yield (unit spec, its dataset name) for every mark in a (possibly nested) layer spec."""
    data = spec.get("data", {}).get("name", data)
    if "layer" in spec:
        for sub in spec["layer"]:
            yield from _units(sub, data)
    else:
        yield spec, data


def _mark(unit):
    m = unit["mark"]
    return m if isinstance(m, str) else m["type"]


def _find(chart, mark):
    """(encoding, DataFrame) of the units with this mark type, after a full to_dict() (schema-validated)."""
    spec = chart.to_dict()
    json.dumps(spec)  # the page sends it to the browser as JSON
    found = [(u["encoding"], pd.DataFrame(spec["datasets"][name]))
             for u, name in _units(spec) if _mark(u) == mark]
    assert found, f"no {mark} mark in chart"
    return found


def _one(chart, mark):
    (enc, df), *rest = _find(chart, mark)
    assert not rest, f"more than one {mark} mark"
    return enc, df


def _title(chart):
    t = chart.to_dict()["title"]
    return t["text"], " ".join(t.get("subtitle") if isinstance(t.get("subtitle"), list) else [t.get("subtitle", "")])


METRICS = pd.DataFrame({
    "epoch": [1, 2, 3, 4],
    "loss": [2.0, 1.5, 1.2, 1.0],
    "accuracy": [0.30, 0.50, 0.70, 0.90],
    "train_acc_true": [np.nan] * 4,           # truth unknown: the series must be skipped
    "val_loss": [1.9, 1.6, 1.5, 1.7],
    "val_accuracy": [0.25, 0.45, 0.55, 0.50],
    "test_accuracy": [0.20, 0.40, 0.60, np.nan],
})


# ----------------------------------------------------------------------------- data & noise

def test_class_counts_chart_groups_true_and_given_bars():
    counts = pd.DataFrame({"class": ["cat", "dog", "frog"], "true": [10, 10, 10], "given": [12, 9, 9]})
    enc, df = _one(charts.class_counts_chart(counts), "bar")
    assert enc["x"]["field"] == "class" and enc["x"]["sort"] == ["cat", "dog", "frog"]
    assert enc["xOffset"]["field"] == "labels"
    assert enc["y"]["title"] == "Number of training examples"
    assert enc["color"]["scale"] == {"domain": ["True labels", "Given labels"], "range": ["#009E73", "#0072B2"]}
    got = {(r["class"], r["labels"]): r["count"] for r in df.to_dict("records")}
    assert got == {("cat", "True labels"): 10, ("dog", "True labels"): 10, ("frog", "True labels"): 10,
                   ("cat", "Given labels"): 12, ("dog", "Given labels"): 9, ("frog", "Given labels"): 9}


def test_class_counts_chart_without_truth_and_bad_input():
    counts = pd.DataFrame({"class": ["a", "b"], "true": [np.nan, np.nan], "given": [3, 4]})
    enc, df = _one(charts.class_counts_chart(counts), "bar")
    assert enc["color"]["scale"]["domain"] == ["Given labels"] and list(df["count"]) == [3, 4]
    subtitle = " ".join(charts.class_counts_chart(counts).to_dict()["title"]["subtitle"])
    assert "true classes are unknown" in subtitle and "noise" not in subtitle   # no claim of noise on own labels
    with_truth = pd.DataFrame({"class": ["a"], "true": [1], "given": [1]})
    assert "noise moved" in " ".join(charts.class_counts_chart(with_truth).to_dict()["title"]["subtitle"])
    with pytest.raises(DataError, match="given"):
        charts.class_counts_chart(pd.DataFrame({"class": ["a"], "true": [1]}))


def test_noise_matrix_heatmap_cells_hold_hand_computed_percentages():
    t = np.array([[0.8, 0.2, 0.0], [0.0, 1.0, 0.0], [0.25, 0.0, 0.75]])
    counts = np.array([[8, 2, 0], [0, 10, 0], [1, 0, 3]])
    chart = charts.noise_matrix_heatmap(t, ["cat", "dog", "frog"], counts=counts)
    enc, df = _one(chart, "rect")
    assert len(df) == 9
    assert enc["y"]["field"] == "row" and enc["y"]["title"] == "True class"
    assert enc["x"]["field"] == "col" and enc["x"]["title"] == "Given label"
    assert enc["x"]["sort"] == ["cat", "dog", "frog"] == enc["y"]["sort"]
    assert enc["color"]["field"] == "percent" and enc["color"]["scale"]["domain"] == [0, 100]
    cell = df.set_index(["true_class", "given_class"])
    assert cell.loc[("cat", "dog"), "percent"] == pytest.approx(20.0)
    assert cell.loc[("frog", "cat"), "percent"] == pytest.approx(25.0)
    assert cell.loc[("cat", "dog"), "text"] == "20%\n(2)"
    assert cell.loc[("frog", "frog"), "text"] == "75%\n(3)"
    assert cell.loc[("dog", "cat"), "count"] == 0
    assert (df["row"] == df["true_class"]).all() and (df["col"] == df["given_class"]).all()
    assert list(df["diagonal"]) == [True, False, False, False, True, False, False, False, True]
    text_enc, _ = _one(chart, "text")
    assert text_enc["text"]["field"] == "text"
    assert _title(chart)[0] == "Realized noise matrix"


@pytest.mark.parametrize("matrix, names, error, match", [
    (np.ones((2, 3)) / 3, ["a", "b"], UserError, "square"),
    (np.array([[1.5, -0.5], [0.0, 1.0]]), ["a", "b"], DataError, "probabilities"),
    (np.eye(2), ["a", "b", "c"], UserError, "3 class names for 2 classes"),
    (np.eye(2), ["a", "a"], UserError, "distinct"),
])
def test_noise_matrix_heatmap_rejects_bad_input(matrix, names, error, match):
    with pytest.raises(error, match=match):
        charts.noise_matrix_heatmap(matrix, names)




# ----------------------------------------------------------------------------- training curves

def test_learning_curves_accuracy_skips_all_nan_series_and_draws_percentages():
    chart = charts.learning_curves(METRICS, best_epoch=3)
    enc, df = _one(chart, "line")
    assert enc["y"]["title"] == "Accuracy (%)" and enc["x"]["title"] == "Epoch"
    # METRICS has only Keras' running fit accuracy: named for what it is, not "Train (given labels)"
    assert enc["color"]["scale"]["domain"] == ["During training (running)", "Validation", "Test"]
    assert enc["color"]["scale"]["range"] == [charts.PALETTE[n] for n in ["During training (running)", "Validation", "Test"]]
    assert "Train (true labels)" not in set(df["series"])
    train = df[df["series"] == "During training (running)"]
    assert list(train["epoch"]) == [1, 2, 3, 4] and list(train["value"]) == pytest.approx([30, 50, 70, 90])
    assert list(df[df["series"] == "Test"]["epoch"]) == [1, 2, 3]  # the NaN epoch is dropped
    rule_enc, rule_df = _one(chart, "rule")
    assert rule_enc["x"]["field"] == "epoch" and list(rule_df["epoch"]) == [3]
    assert list(rule_df["label"]) == ["best model"]
    kept = charts.learning_curves(METRICS, best_epoch=4, marker="model kept (last epoch)")
    assert list(_one(kept, "rule")[1]["label"]) == ["model kept (last epoch)"]
    with pytest.raises(UserError, match="marker=''"):
        charts.learning_curves(METRICS, best_epoch=4, marker="")


def test_learning_curves_loss_kind_and_missing_columns():
    metrics = METRICS.drop(columns=["test_accuracy", "val_accuracy"])
    enc, df = _one(charts.learning_curves(metrics, kind="loss"), "line")
    assert enc["y"]["title"] == "Loss (lower is better)"
    assert sorted(set(df["series"])) == ["During training (running)", "Validation"]
    assert list(df[df["series"] == "Validation"]["value"]) == pytest.approx([1.9, 1.6, 1.5, 1.7])
    acc_enc, acc_df = _one(charts.learning_curves(metrics), "line")  # only the train series left
    assert set(acc_df["series"]) == {"During training (running)"}
    with pytest.raises(UserError, match="kind='f1'"):
        charts.learning_curves(METRICS, kind="f1")
    with pytest.raises(UserError, match="best_epoch"):
        charts.learning_curves(METRICS, best_epoch="3")
    with pytest.raises(DataError, match="accuracy has value 88"):
        charts.learning_curves(METRICS.assign(accuracy=[85, 86, 87, 88]))


def test_one_name_one_meaning_for_train_accuracy_on_the_given_labels():
    """Issue 33, finding 5: the curve called "Train (given labels)" was Keras' running fit accuracy (83%)
    while the headline of the same name was the evaluation pass after the epoch (68.6%). Now
    "Train (given labels)" is always train_acc_given, and the running value has its own name."""
    metrics = METRICS.assign(train_acc_given=[0.25, 0.40, 0.55, 0.686], accuracy=[0.3, 0.5, 0.7, 0.83])
    _, df = _one(charts.learning_curves(metrics), "line")
    assert list(df[df["series"] == "Train (given labels)"]["value"]) == pytest.approx([25, 40, 55, 68.6])
    assert list(df[df["series"] == "During training (running)"]["value"]) == pytest.approx([30, 50, 70, 83])
    memo = metrics.assign(train_acc_true=[0.3, 0.4, 0.5, 0.5])
    _, mdf = _one(charts.memorization_chart(memo), "line")
    assert list(mdf[mdf["series"] == "Train (given labels)"]["value"]) == pytest.approx([25, 40, 55, 68.6])
    _, old = _one(charts.memorization_chart(memo.drop(columns=["train_acc_given"])), "line")
    assert "Train (given labels)" not in set(old["series"])   # a run without the pass: its running value, so named


def test_learning_curves_before_the_first_epoch_is_a_message_not_an_error():
    empty = pd.DataFrame(columns=list(METRICS.columns))
    _, df = _one(charts.learning_curves(empty), "text")
    assert "first epoch" in df["message"][0]


def test_long_curves_are_downsampled_keeping_first_and_last_epoch():
    n = 3 * charts.MAX_POINTS
    metrics = pd.DataFrame({"epoch": np.arange(1, n + 1), "accuracy": np.linspace(0, 1, n)})
    _, df = _one(charts.learning_curves(metrics), "line")
    assert len(df) <= charts.MAX_POINTS and df["epoch"].iloc[0] == 1 and df["epoch"].iloc[-1] == n


def test_memorization_chart_shades_the_gap_between_given_and_true_accuracy():
    metrics = METRICS.assign(train_acc_true=[0.30, 0.45, 0.50, 0.40], train_acc_given=[0.3, 0.5, 0.7, 0.9],
                             memorized=[0.0, 0.1, 0.4, 0.8], accuracy=[0.2, 0.4, 0.6, 0.8])
    chart = charts.memorization_chart(metrics, best_epoch=2)
    area_enc, gap = _one(chart, "area")
    assert area_enc["y"]["field"] == "given" and area_enc["y2"]["field"] == "true"
    # train_acc_given is preferred over accuracy: gap = 100 * (given - true)
    assert list(gap["gap"]) == pytest.approx([0, 5, 20, 50])
    enc, df = _one(chart, "line")
    assert enc["color"]["scale"]["domain"] == ["Train (given labels)", "Train (true labels)", "Memorized noisy labels"]
    assert enc["y"]["scale"]["domain"] == [0, 100]
    assert list(df[df["series"] == "Memorized noisy labels"]["value"]) == pytest.approx([0, 10, 40, 80])
    assert list(df[df["series"] == "Train (given labels)"]["value"]) == pytest.approx([30, 50, 70, 90])
    assert list(_one(chart, "rule")[1]["epoch"]) == [2]
    assert "memoriz" in _title(chart)[1]


def test_memorization_chart_falls_back_to_accuracy_and_needs_truth():
    metrics = METRICS.assign(train_acc_true=[0.3, 0.4, 0.5, 0.5])
    _, gap = _one(charts.memorization_chart(metrics), "area")
    assert list(gap["gap"]) == pytest.approx([0, 10, 20, 40])
    _, msg = _one(charts.memorization_chart(METRICS), "text")  # train_acc_true is all NaN
    assert "true labels" in msg["message"][0]


# ----------------------------------------------------------------------------- predictions

TRUE = np.array([0, 0, 1, 1, 2, 2])
PRED = np.array([0, 1, 1, 1, 0, 2])


def test_confusion_matrix_counts_by_hand():
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(charts.confusion_matrix(TRUE, PRED, 3), expected)
    with pytest.raises(UserError, match="outside 0..2"):
        charts.confusion_matrix(TRUE, PRED + 1, 3)
    with pytest.raises(UserError, match="one prediction per example"):
        charts.confusion_matrix(TRUE, PRED[:5], 3)
    with pytest.raises(UserError, match="integer"):
        charts.confusion_matrix(TRUE.astype(float), PRED, 3)


def test_confusion_matrix_chart_row_percentages_and_counts():
    chart = charts.confusion_matrix_chart(TRUE, PRED, ["a", "b", "c"])
    enc, df = _one(chart, "rect")
    assert enc["x"]["title"] == "Predicted class" and enc["y"]["title"] == "True class"
    assert enc["color"]["field"] == "percent"
    cell = df.set_index(["true_class", "predicted_class"])
    assert [cell.loc[("a", p), "percent"] for p in "abc"] == pytest.approx([50, 50, 0])
    assert [cell.loc[("b", p), "percent"] for p in "abc"] == pytest.approx([0, 100, 0])
    assert [cell.loc[("c", p), "count"] for p in "abc"] == [1, 0, 1]
    assert cell.loc[("a", "a"), "text"] == "50%\n(1)"
    enc, df = _one(charts.confusion_matrix_chart(TRUE, PRED, ["a", "b", "c"], normalize=False), "rect")
    assert enc["color"]["field"] == "count" and enc["color"]["scale"]["domain"] == [0, 2]
    assert df.set_index(["true_class", "predicted_class"]).loc[("b", "b"), "text"] == "2"
    own = charts.confusion_matrix_chart(TRUE, PRED, ["a", "b", "c"], rows_are="given label")   # truth unknown
    enc, _ = _one(own, "rect")
    assert enc["y"]["title"] == "Given label" and enc["color"]["title"] == "% of given label"
    assert "true" not in json.dumps(own.to_dict()["title"]).lower()


def test_per_class_accuracy_chart():
    chart = charts.per_class_accuracy_chart(TRUE, PRED, ["a", "b", "c"])
    enc, df = _one(chart, "bar")
    assert enc["y"]["field"] == "class" and enc["x"]["title"] == "Test accuracy (%)"
    assert list(df["accuracy"]) == pytest.approx([50, 100, 50]) and list(df["examples"]) == [2, 2, 2]
    assert list(_one(chart, "rule")[1]["accuracy"]) == pytest.approx([400 / 6])
    own = charts.per_class_accuracy_chart(TRUE, PRED, ["a", "b", "c"], split="Held-out", rows_are="given label")
    assert _one(own, "bar")[0]["y"]["title"] == "Given label" and "true" not in json.dumps(own.to_dict()["title"])


def test_top_k_chart_always_shows_highlighted_classes():
    probs = np.array([0.1, 0.5, 0.05, 0.3, 0.05])
    chart = charts.top_k_chart(probs, list("abcde"), k=2, highlight={"given": 2, "proposed": "b"})
    enc, df = _one(chart, "bar")
    assert list(df["class"]) == ["b", "d", "c"]  # top 2, then the given label outside the top 2, by probability
    assert list(df["probability"]) == pytest.approx([50, 30, 5])
    assert list(df["role"]) == ["Proposed label", "Other classes", "Given label"]
    assert enc["x"]["title"] == "Predicted probability (%)"
    assert enc["color"]["scale"]["range"] == [charts.PALETTE[r] for r in enc["color"]["scale"]["domain"]]
    _, df = _one(charts.top_k_chart(probs, list("abcde"), k=1, highlight={"given": 1, "proposed": 1}), "bar")
    assert list(df["role"]) == ["Given label & Proposed label"]
    with pytest.raises(UserError, match="'z' is not a class"):
        charts.top_k_chart(probs, list("abcde"), highlight={"given": "z"})
    with pytest.raises(UserError, match="one probability per class"):
        charts.top_k_chart(probs[:4], list("abcde"))


# ----------------------------------------------------------------------------- comparing runs

def test_compare_curves_one_line_per_run_with_labels():
    runs = {"r1": METRICS, "r2": METRICS.assign(test_accuracy=[0.5, 0.6, 0.7, 0.8]),
            "r3": METRICS.drop(columns=["test_accuracy"])}
    chart = charts.compare_curves(runs, labels={"r1": "loss=ce", "r2": "loss=gce"})
    enc, df = _one(chart, "line")
    assert enc["color"]["field"] == "run" and enc["color"]["legend"]["title"] == "Run"
    assert enc["y"]["title"] == "Test accuracy (%)"
    assert list(df[df["run"] == "loss=gce"]["value"]) == pytest.approx([50, 60, 70, 80])
    assert set(df["run_id"]) == {"r1", "r2"}  # r3 has no test accuracy
    enc, df = _one(charts.compare_curves(runs, metric="val_loss"), "line")
    assert set(df["run"]) == {"r1", "r2", "r3"} and enc["y"]["title"] == "Validation loss"
    with pytest.raises(UserError, match="metric='f1'.*val_loss"):
        charts.compare_curves(runs, metric="f1")
    _, df = _one(charts.compare_curves(runs, labels={"r1": "same", "r2": "same"}), "line")
    assert set(df["run"]) == {"same", "same [r2]"}
    own = charts.compare_curves(runs, truth_known=False)   # the user's own labels: named for what it is
    assert _one(own, "line")[0]["y"]["title"] == "Held-out accuracy, given labels (%)"
    assert "Test" not in json.dumps(own.to_dict()["title"])


SWEEP = pd.DataFrame({
    "recipe": ["ce"] * 4 + ["gce"] * 4,
    "rate": [0.2, 0.2, 0.4, 0.4] * 2,
    "seed": [0, 1] * 4,
    "test_accuracy": [0.80, 0.70, 0.60, 0.50, 0.82, 0.78, 0.75, 0.70],
})


def test_sweep_chart_mean_and_min_max_band_over_two_seeds():
    chart = charts.sweep_chart(SWEEP)
    enc, df = _one(chart, "area")
    assert enc["x"]["field"] == "rate" and enc["x"]["title"] == "Noise rate (%)"
    assert enc["y"]["title"] == "Test accuracy (%)" and enc["y2"]["field"] == "high"
    row = df.set_index(["recipe", "rate"])
    assert row.loc[("ce", 20.0), ["mean", "low", "high", "seeds"]].tolist() == pytest.approx([75, 70, 80, 2])
    assert row.loc[("gce", 40.0), ["mean", "low", "high"]].tolist() == pytest.approx([72.5, 70, 75])
    point_enc, _ = _one(chart, "point")
    assert {t["field"] for t in point_enc["tooltip"]} >= {"recipe", "rate", "mean", "low", "high", "seeds"}
    assert "min to max" in _title(chart)[1] and "2 seed" in _title(chart)[1]


def test_sweep_chart_std_band():
    chart = charts.sweep_chart(SWEEP, band="std")
    _, df = _one(chart, "area")
    std = np.std([0.80, 0.70], ddof=1) * 100  # 7.071
    ce20 = df.set_index(["recipe", "rate"]).loc[("ce", 20.0)]
    assert [ce20["low"], ce20["high"]] == pytest.approx([75 - std, 75 + std])
    assert "standard deviation" in _title(chart)[1]
    with pytest.raises(DataError, match="recipe"):
        charts.sweep_chart(SWEEP.drop(columns=["recipe"]))
    with pytest.raises(UserError, match="band='iqr'"):
        charts.sweep_chart(SWEEP, band="iqr")


def test_precision_recall_chart():
    curves = pd.DataFrame({"detector": ["loss", "loss", "margin", "margin"], "threshold": [0.5, 0.1, 0.1, 0.5],
                           "precision": [0.9, 0.6, 0.7, 0.8], "recall": [0.3, 0.8, 0.7, 0.4]})
    enc, df = _one(charts.precision_recall_chart(curves), "line")
    assert enc["order"]["field"] == "threshold" and enc["color"]["field"] == "detector"
    assert enc["x"]["field"] == "recall" and "(%)" in enc["y"]["title"]
    loss = df[df["detector"] == "loss"]
    assert list(loss["threshold"]) == [0.1, 0.5] and list(loss["precision"]) == pytest.approx([60, 90])
    with pytest.raises(DataError, match="precision has value 90"):
        charts.precision_recall_chart(curves.assign(precision=[90, 60, 70, 80]))


def test_config_errors_are_user_errors():
    # pages show every UserError with st.error; charts raise UserError/DataError subclasses only
    assert issubclass(DataError, UserError) and issubclass(ConfigError, UserError)


ALL_CHARTS = {
    "counts": lambda: charts.class_counts_chart(pd.DataFrame({"class": ["a"], "true": [1], "given": [1]})),
    "noise": lambda: charts.noise_matrix_heatmap(np.eye(2), ["a", "b"]),
    "curves": lambda: charts.learning_curves(METRICS, best_epoch=2),
    "memorization": lambda: charts.memorization_chart(METRICS.assign(train_acc_true=0.5)),
    "confusion": lambda: charts.confusion_matrix_chart(TRUE, PRED, ["a", "b", "c"]),
    "per_class": lambda: charts.per_class_accuracy_chart(TRUE, PRED, ["a", "b", "c"]),
    "top_k": lambda: charts.top_k_chart(np.array([0.2, 0.8]), ["a", "b"]),
    "compare": lambda: charts.compare_curves({"r": METRICS}),
    "sweep": lambda: charts.sweep_chart(SWEEP),
    "pr": lambda: charts.precision_recall_chart(pd.DataFrame(
        {"detector": ["d"], "threshold": [0.5], "precision": [0.5], "recall": [0.5]})),
    "placeholder": lambda: charts.learning_curves(METRICS.iloc[:0]),
}


@pytest.mark.parametrize("name", sorted(ALL_CHARTS))
def test_every_chart_sizes_itself_for_streamlit_and_has_a_readable_title(name):
    # Streamlit's default autosize "fit" squeezes title, axes and legend into the height and can
    # collapse the plot; every chart states its own autosize and wraps its subtitle.
    spec = ALL_CHARTS[name]().to_dict()
    assert spec["autosize"]["type"] in ("fit-x", "pad")
    assert spec["title"]["text"]
    assert all(len(line) <= 72 for line in spec["title"].get("subtitle", []))


def test_learning_curves_from_a_metrics_csv_round_trip(tmp_path):
    path = tmp_path / "metrics.csv"
    METRICS.to_csv(path, index=False)
    _, df = _one(charts.learning_curves(pd.read_csv(path), best_epoch=4), "line")
    assert sorted(set(df["series"])) == ["During training (running)", "Test", "Validation"]
    assert df[df["series"] == "Validation"]["value"].tolist() == pytest.approx([25, 45, 55, 50])


def test_larger_type_scales_fonts_and_rewraps_the_subtitle():
    counts = pd.DataFrame({"class": ["a", "b"], "given": [3, 5], "true": [4, 4]})
    chart = charts.class_counts_chart(counts)
    big = charts.larger_type(chart, scale=2.0).to_dict()
    assert big["config"]["axis"]["labelFontSize"] == 22 and big["config"]["title"]["fontSize"] == 30
    lines = big["title"]["subtitle"]
    assert max(map(len, lines)) <= 20 and " ".join(lines) == " ".join(chart.to_dict()["title"]["subtitle"])
    with pytest.raises(UserError, match="scale=5"):
        charts.larger_type(chart, scale=5)


def test_class_chart_labels_every_class_and_best_rule_label_stays_inside():
    counts = pd.DataFrame({"class": [f"class{i}" for i in range(10)], "given": range(10), "true": range(10)})
    axis = charts.class_counts_chart(counts).to_dict()["encoding"]["x"]["axis"]
    assert axis["labelOverlap"] is False and axis["labelAngle"] == -45
    metrics = pd.DataFrame({"epoch": [1, 2, 3, 4], "accuracy": [0.1, 0.2, 0.3, 0.4]})
    late = json.dumps(charts.learning_curves(metrics, best_epoch=4).to_dict())
    early = json.dumps(charts.learning_curves(metrics, best_epoch=1).to_dict())
    assert '"align": "right"' in late and '"align": "left"' in early


def test_precision_recall_legend_lists_every_detector_by_its_human_name():
    """Issue 33, finding 7: a horizontal legend at the bottom of a half-page column showed 2 of 5
    detectors, and as raw identifiers. One legend row per detector, each named for a person."""
    from noisycore.catalog import DETECTOR_NAMES

    names = ["confident_learning", "self_confidence", "normalized_margin", "aum_margin_below_0", "blog_threshold"]
    curves = pd.DataFrame({"detector": [n for n in names for _ in range(2)], "threshold": [0.1, 0.5] * 5,
                           "precision": [0.9, 0.6] * 5, "recall": [0.3, 0.8] * 5})
    enc, df = _one(charts.precision_recall_chart(curves), "line")
    assert sorted(df["detector"].unique()) == sorted(DETECTOR_NAMES[n] for n in names)
    assert "AUM, mean margin below 0" in set(df["detector"]) and "aum_margin_below_0" not in set(df["detector"])
    assert enc["color"]["legend"]["columns"] == 1


def test_an_estimated_noise_matrix_legend_names_its_rows():
    """Issue 33, finding 12: the own-photo (estimated) matrix's legend said "% of true class"."""
    chart = charts.noise_matrix_heatmap(np.eye(2), ["a", "b"], y_title="Likely true class")
    enc, _ = _one(chart, "rect")
    assert enc["color"]["title"] == "% of likely true class"
    assert [t["title"] for t in enc["tooltip"]][::2] == ["Likely true class", "% of likely true class"]
    enc, _ = _one(charts.noise_matrix_heatmap(np.eye(2), ["a", "b"]), "rect")
    assert enc["color"]["title"] == "% of true class"


def test_larger_type_also_enlarges_a_heatmaps_cells_and_their_text():
    """Issue 33, finding 11: presenter mode enlarged axis text but not a heatmap's cells or numbers."""
    chart = charts.noise_matrix_heatmap(np.eye(3), ["a", "b", "c"])
    small, big = chart.to_dict(), charts.larger_type(chart, scale=1.5).to_dict()
    assert big["width"]["step"] == round(small["width"]["step"] * 1.5) == big["height"]["step"]
    text = lambda spec: next(l["mark"]["fontSize"] for l in spec["layer"] if l["mark"]["type"] == "text")  # noqa: E731
    assert text(big) == round(text(small) * 1.5)
    assert chart.to_dict() == small                     # the original chart is unchanged
