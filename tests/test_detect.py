"""detect / crossval on run folders: known flips found, queue filters, reviewed label sets, exports, CLI."""
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from noisycore import cli, corrections, crossval, detect, labelsets, review, runs
from noisycore.config import DataConfig, NoiseConfig, TrainConfig
from noisycore.datasets import load_dataset, load_image_folder
from noisycore.errors import DataError, UserError
from noisycore.review import ReviewStore

FLIPS = (3, 10, 25, 40)               # training positions given the next class: wrong labels


def quadrant_folder(root, *, n_per_class=15, size=8, seed=0):
    """4 classes q0..q3: class c has its quadrant c bright."""
    rng = np.random.default_rng(seed)
    for c in range(4):
        (root / f"q{c}").mkdir(parents=True, exist_ok=True)
        r, col = divmod(c, 2)
        for i in range(n_per_class):
            img = rng.integers(0, 70, (size, size, 3)).astype(np.uint8)
            img[r * 4:(r + 1) * 4, col * 4:(col + 1) * 4] += np.uint8(150)
            Image.fromarray(img).save(root / f"q{c}" / f"{i:03d}.png")
    return root


def fake_run(tmp_path, *, truth=True, shuffle_predictions=True):
    """A run folder without training: labels with FLIPS, probabilities 0.85 on the true class."""
    folder = quadrant_folder(tmp_path / "images")
    data = DataConfig(source=str(folder), test_fraction=0.2)
    ds = load_dataset(data)
    n, k = len(ds.y_train), ds.num_classes
    true = ds.y_train.copy()
    given = true.copy()
    given[list(FLIPS)] = (true[list(FLIPS)] + 1) % 4
    probs = np.full((n, k), 0.05)
    probs[np.arange(n), true] = 0.85
    run = tmp_path / "runs" / "20260101-000000-fake"
    run.mkdir(parents=True)
    names = np.asarray(ds.class_names, dtype=object)
    pd.DataFrame({"id": ds.ids_train, "label": names[given], "true_label": names[true] if truth else "",
                  "is_noisy": np.where(given != true, "true", "false") if truth else ""}).to_csv(run / "labels.csv", index=False)
    (run / "noise.json").write_text(json.dumps({"config": NoiseConfig(model="none", rate=0.0).to_dict(),
                                                "dataset": {"class_names": list(ds.class_names)}}))
    config = TrainConfig(data=data, noise=NoiseConfig(model="none", rate=0.0), epochs=1)
    (run / "config.json").write_text(config.to_json())
    order = np.random.default_rng(0).permutation(n) if shuffle_predictions else np.arange(n)
    np.savez(run / "predictions.npz", train_probs=probs[order].astype(np.float32), train_ids=ds.ids_train[order],
             test_probs=np.zeros((1, k), np.float32), test_ids=np.array(["t"]))
    margins = np.log(probs[np.arange(n), given] / np.where(given == true, 0.05, 0.85))
    np.save(run / "margins.npy", np.stack([margins, margins]).astype(np.float16))
    return run, ds, given, true


@pytest.mark.parametrize("detector", ["confident_learning", "self_confidence", "normalized_margin", "aum_margin_below_0",
                                      "blog_threshold"])
def test_every_detector_finds_the_known_flips(tmp_path, detector):
    run, ds, given, true = fake_run(tmp_path)
    params = {"confidence": 0.8} if detector == "blog_threshold" else {}
    frame = detect.detect(run, detector=detector, **params)
    flagged = set(frame.loc[frame["is_label_issue"], "index"])
    assert flagged == set(FLIPS)
    assert frame["index"].tolist()[:4] != [] and set(frame["index"][:4]) == set(FLIPS)   # most suspicious first
    proposed = frame.set_index("index").loc[list(FLIPS), "proposed_label"].tolist()
    assert proposed == [ds.class_names[true[i]] for i in FLIPS]
    ev = detect.detection_meta(run)[detector]["evaluation"]
    assert (ev["precision"], ev["recall"], ev["f1"]) == (1.0, 1.0, 1.0)
    assert (run / "issues" / f"{detector}.csv").is_file()


def test_in_sample_probs_follow_the_label_order_and_need_every_id(tmp_path):
    run, ds, given, true = fake_run(tmp_path)
    probs = detect.pred_probs(run, source="in_sample")
    assert probs.argmax(1).tolist() == true.tolist()         # reordered from the shuffled npz
    with np.load(run / "predictions.npz") as z:
        arrays = dict(z)
    np.savez(run / "predictions.npz", **{**arrays, "train_probs": arrays["train_probs"][1:],
                                         "train_ids": arrays["train_ids"][1:]})
    with pytest.raises(DataError, match="no prediction for 1 training image"):
        detect.pred_probs(run, source="in_sample")
    with pytest.raises(UserError, match="no cross-validated predictions"):
        detect.pred_probs(run, source="cross_validation")
    with pytest.raises(UserError, match="source='oob'"):
        detect.pred_probs(run, source="oob")


def test_evaluation_table_and_curves_only_with_truth(tmp_path):
    run, *_ = fake_run(tmp_path, truth=False)
    table = detect.detect_all(run)
    assert set(table["detector"]) == set(detect.available_detectors(run))
    assert table["precision"].isna().all()
    flagged = table.set_index("detector")["flagged"]
    assert flagged["self_confidence"] == 4 and flagged["blog_threshold"] == 0   # 0.85 < the blog's 0.9
    assert detect.pr_curves(run).empty


def test_review_queue_filters_and_reviewer_accuracy(tmp_path):
    run, ds, given, true = fake_run(tmp_path)
    issues = detect.detect(run, detector="self_confidence")
    store = ReviewStore.for_run(run)
    names = list(ds.class_names)
    ids = {i: ds.ids_train[i] for i in FLIPS}
    store.record(item_id=ids[3], index=3, decision="accept", previous_label=int(given[3]), new_label=int(true[3]),
                 reviewer="t")                                # right
    store.record(item_id=ids[10], index=10, decision="keep", previous_label=int(given[10]), new_label=None,
                 reviewer="t")                                # wrong: the label was flipped
    store.record(item_id=ids[25], index=25, decision="exclude", previous_label=int(given[25]), new_label=None,
                 reviewer="t")                                # right: excluded a wrong label
    q = review.review_queue(issues, store.latest(), class_names=names)
    assert len(q) == 4 and q["decision"].tolist().count("unreviewed") == 1
    assert q.set_index("id").loc[ids[25], "final_label"] == ""
    assert review.reviewer_accuracy(q) == {"correct": 2, "decided": 3, "accuracy": 2 / 3}
    assert review.review_queue(issues, store.latest(), class_names=names, state="unreviewed")["id"].tolist() == [ids[40]]
    assert review.review_queue(issues, store.latest(), class_names=names, state="keep")["id"].tolist() == [ids[10]]
    only = review.review_queue(issues, store.latest(), class_names=names, given=names[given[40]])
    assert ids[40] in only["id"].tolist() and (only["given_label"] == names[given[40]]).all()
    with pytest.raises(UserError, match="state='maybe'"):
        review.review_queue(issues, store.latest(), class_names=names, state="maybe")


def test_nearest_neighbours_by_cosine_similarity():
    f = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0.7, 0.7]], dtype=np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    assert detect.nearest_neighbours(f, 0, k=3).tolist() == [1, 4, 2]
    assert detect.nearest_neighbours(f, 0, k=10).tolist() == [1, 4, 2, 3]   # itself left out
    with pytest.raises(UserError, match="index=7"):
        detect.nearest_neighbours(f, 7)


def test_fold_assignments_are_stratified_balanced_and_seeded():
    labels = np.repeat([0, 1, 2], [10, 7, 5])
    a = crossval.fold_assignments(labels, folds=4, seed=3)
    assert np.bincount(a).tolist() in ([6, 6, 5, 5], [5, 6, 6, 5], [6, 5, 5, 6], [5, 5, 6, 6], [6, 5, 6, 5],
                                       [5, 6, 5, 6])
    for c in range(3):
        counts = np.bincount(a[labels == c], minlength=4)
        assert counts.max() - counts.min() <= 1
    assert crossval.fold_assignments(labels, folds=4, seed=3).tolist() == a.tolist()
    assert crossval.fold_assignments(labels, folds=4, seed=4).tolist() != a.tolist()
    with pytest.raises(UserError, match="folds=1"):
        crossval._check_folds(1, 100)


def test_corrected_label_set_drops_excluded_and_trains_on_the_rest(tmp_path):
    train = pytest.importorskip("noisycore.train")
    from noisycore.labelsets import load_label_set

    run, ds, given, true = fake_run(tmp_path)
    store = ReviewStore.for_run(run)
    store.record(item_id=ds.ids_train[3], index=3, decision="relabel", previous_label=int(given[3]),
                 new_label=int(true[3]), reviewer="t")
    store.record(item_id=ds.ids_train[10], index=10, decision="exclude", previous_label=int(given[10]),
                 new_label=None, reviewer="t")
    folder = corrections.corrected_label_set(run, store=store)
    meta = json.loads((folder / "noise.json").read_text())
    assert meta[labelsets.SUBSET_KEY] is True and labelsets.SUBSET_KEY == train.SUBSET_KEY
    assert meta["excluded_ids"] == [ds.ids_train[10]]
    config = corrections.retrain_config(run, folder)
    prepared = train.prepare(config)
    assert len(prepared.dataset.ids_train) == len(ds.ids_train) - 1
    assert ds.ids_train[10] not in set(prepared.dataset.ids_train)
    pos = list(prepared.dataset.ids_train).index(ds.ids_train[3])
    assert prepared.noisy.labels[pos] == true[3] and prepared.noisy.realized_rate == pytest.approx(2 / (len(given) - 1))
    # a label set without the flag still has to cover every image
    meta.pop(labelsets.SUBSET_KEY)
    (folder / "noise.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="no row for 1"):
        load_label_set(folder, train.restrict_to_label_set(load_dataset(config.data), folder))


def test_exports_round_trip(tmp_path):
    run, ds, given, true = fake_run(tmp_path)
    detect.detect(run, detector="self_confidence")
    store = ReviewStore.for_run(run)
    store.record(item_id=ds.ids_train[3], index=3, decision="accept", previous_label=int(given[3]),
                 new_label=int(true[3]), reviewer="t")
    store.record(item_id=ds.ids_train[10], index=10, decision="exclude", previous_label=int(given[10]),
                 new_label=None, reviewer="t")
    out = corrections.export(run, fmt="csv", out=tmp_path / "all.csv")
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns[:5]) == ["id", "given_label", "final_label", "decision", "score"]
    assert len(table) == len(given) and table["score"].between(0, 1).all()
    kept = pd.read_csv(corrections.export(run, fmt="csv_kept", out=tmp_path / "kept.csv"), keep_default_na=False)
    assert len(kept) == len(given) - 1 and ds.ids_train[10] not in set(kept["id"])
    zpath = corrections.export(run, fmt="folder", out=tmp_path / "tree.zip")
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp_path / "tree")
    back = load_image_folder(tmp_path / "tree", test_fraction=0.2)
    names = back.class_names
    n_back = len(back.ids_train) + len(back.ids_test)
    assert n_back == len(given) - 1
    y_back = {f"{names[y]}": 0 for y in back.y_train}
    assert set(y_back) <= set(ds.class_names)
    final = given.copy()
    final[3] = true[3]
    counts = np.bincount(np.r_[back.y_train, back.y_test], minlength=4)
    expected = np.bincount(np.delete(final, 10), minlength=4)
    assert counts[[names.index(c) for c in ds.class_names]].tolist() == expected.tolist()
    with pytest.raises(UserError, match="format='xml'"):
        corrections.export(run, fmt="xml", out=tmp_path / "x")


def test_cli_detect_and_export(tmp_path, capsys):
    run, ds, given, true = fake_run(tmp_path)
    out = tmp_path / "issues.csv"
    assert cli.main(["detect", "--run", str(run), "--detector", "normalized_margin", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"4 of {len(given)} labels flagged" in text and "in-sample" in text and "precision 100.0%, recall 100.0%" in text
    table = pd.read_csv(out)
    assert list(table.columns) == ["id", "given_label", "proposed_label", "label_quality", "is_label_issue"]
    assert len(table) == len(given) and table["is_label_issue"][:4].all() and not table["is_label_issue"][4:].any()
    assert cli.main(["export", "--run", str(run), "--format", "csv", "--out", str(tmp_path / "e.csv")]) == 0
    assert (tmp_path / "e.csv").is_file()
    assert cli.main(["detect", "--run", str(tmp_path), "--out", str(out)]) == 2
    assert "is not a finished training run" in capsys.readouterr().err
    assert cli.main(["detect", "--run", str(run), "--folds", "1", "--out", str(out)]) == 2


@pytest.mark.slow
def test_cross_validation_predicts_every_image_out_of_sample(tmp_path):
    pytest.importorskip("keras")
    run, ds, given, true = fake_run(tmp_path)
    config = runs.read_config(run).replace(epochs=1, batch_size=16, early_stopping_patience=0,
                                           lr_schedule="constant", batchnorm=False, val_fraction=0.2)
    (run / "config.json").write_text(config.to_json())
    probs = crossval.cross_validate(run, folds=2)
    n = len(given)
    assert probs.shape == (n, 4) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    assert np.load(run / detect.CV_PROBS).shape == (n, 4)
    folds = sorted((run / crossval.CV_DIR).glob("k2-fold*"))
    assert len(folds) == 2
    for fold in folds:   # each fold trained on the other half only
        trained = pd.read_csv(fold / "run" / "labels.csv")["id"]
        assert len(trained) == n // 2
    held = [set(ds.ids_train) - set(pd.read_csv(f / "run" / "labels.csv")["id"]) for f in folds]
    assert held[0].isdisjoint(held[1]) and len(held[0] | held[1]) == n
    frame = detect.detect(run, detector="self_confidence", source="cross_validation")
    assert detect.detection_meta(run)["self_confidence"]["source"] == "cross_validation" and len(frame) == n


def test_folder_export_keeps_unicode_class_and_file_names_apart(tmp_path):
    """Issue 31.6: classes 猫 and 犬 (and é / e) were both mapped to "_" and the export refused; now each has
    its own folder, unsafe characters still go, and the zip loads back with the same classes."""
    names = ["猫", "犬", "café", "cafe", "a/b"]
    assert len({corrections._safe_name(n, "x") for n in names}) == len(names)
    assert corrections._safe_name("a/b:c*?", "x") == "a_b_c_" and corrections._safe_name("..", "fb") == "fb"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (15, 6, 6, 3), dtype=np.uint8)
    ids = [f"src/{'猫犬'[i % 2]}-{i}.png" for i in range(15)]
    labels = np.arange(15) % 5   # three per class; item 0 is relabelled 猫 -> 犬
    store = ReviewStore(tmp_path / "review.sqlite")
    store.record(item_id=ids[0], index=0, decision="relabel", previous_label=0, new_label=1, reviewer="t")
    out = corrections.export_folder(tmp_path / "tree.zip", images=images, ids=ids, given_labels=labels,
                                    class_names=names, store=store)
    with zipfile.ZipFile(out) as zf:
        members = sorted(zf.namelist())
        zf.extractall(tmp_path / "tree")
    assert "犬/猫-0.png" in members and "猫/犬-5.png" in members and "a_b/猫-4.png" in members and "café/猫-2.png" in members
    back = load_image_folder(tmp_path / "tree", test_fraction=0.4)
    assert set(back.class_names) == {"猫", "犬", "café", "cafe", "a_b"}
