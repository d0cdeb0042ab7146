"""Human names: run ids from the label set's name, legends that say what differs in words."""
import json
import re

from noisycore import naming, runs
from noisycore.config import NoiseConfig, TrainConfig


def test_run_id_names_the_label_set_folder_and_the_recipe(tmp_path):
    folder = tmp_path / "labels" / "builtin-pair-40-s0"
    folder.mkdir(parents=True)
    for labels_path in (folder, folder / "labels.csv"):
        path = runs.create_run(TrainConfig(loss="gce", labels_path=str(labels_path)), root=tmp_path / "runs")
        assert re.fullmatch(r"\d{8}-\d{6}-gce-builtin-pair-40-s0(-2)?", path.name), path.name


def test_loss_and_method_words():
    assert naming.loss_words("gce", {"q": 0.7}) == "GCE (q 0.7)"
    assert naming.loss_words("ce", {}) == "cross-entropy"
    assert naming.loss_words("label_smoothing", (("epsilon", 0.1),)) == "label smoothing (ε 0.1)"
    assert naming.recipe_words(TrainConfig(method="coteaching")) == "co-teaching, cross-entropy"
    assert naming.run_title(TrainConfig(noise=NoiseConfig(model="pair", rate=0.2))) == "cross-entropy on 20% pair-flip noise"


def test_legend_says_only_what_differs_in_words():
    a, b = TrainConfig(loss="gce", loss_params={"q": 0.7}), TrainConfig(loss="ce")
    assert naming.legend_labels({"r1": a, "r2": b}) == {"r1": "GCE (q 0.7)", "r2": "cross-entropy"}
    c = TrainConfig(loss="gce", loss_params={"q": 0.4}, epochs=5)
    assert naming.legend_labels({"r1": a, "r3": c}) == {"r1": "GCE (q 0.7), 20 epochs", "r3": "GCE (q 0.4), 5 epochs"}
    same = naming.legend_labels({"r1": a, "r4": a.replace(preset="quick")})
    assert same == {"r1": "r1", "r4": "r4"}                         # nothing a person cares about differs
    seeds = naming.legend_labels({"x": TrainConfig(seed=1), "y": TrainConfig(seed=2)})
    assert seeds == {"x": "seed 1", "y": "seed 2"}


def test_retrained_run_is_named_after_its_review(tmp_path):
    corrected = tmp_path / "20261130-101010-ce-symmetric40" / "corrected" / "20261130-111111-000001"
    corrected.mkdir(parents=True)
    (corrected / "noise.json").write_text(json.dumps({
        "reviewed_from": "20261130-101010-ce-symmetric40",
        "review": {"accept": 10, "keep": 4, "relabel": 2, "exclude": 3}}))
    original, retrained = TrainConfig(), TrainConfig(labels_path=str(corrected))
    labels = naming.legend_labels({"a": original, "b": retrained})
    assert labels == {"a": "40% symmetric noise",
                      "b": "20261130-101010-ce-symmetric40 after review: 12 changed, 3 excluded"}
    # a note stored in the summary (a later version) wins; junk in the files is ignored
    note = naming.review_note(retrained, {"review": {"run": "R", "changed": "5", "excluded": None}})
    assert note == {"run": "R", "changed": 5, "excluded": None}
    (corrected / "noise.json").write_text("{not json")
    assert naming.review_note(retrained) is None
    assert naming.labels_words(retrained) == "label set 20261130-101010-ce-symmetric40 reviewed"
