"""Tests for noisycore.detectors: detectors on synthetic data with known flips, hand-computed values."""
import warnings

import numpy as np
import pytest

from noisycore import detectors
from noisycore.errors import DataError, UserError
from noisycore.detectors import LabelIssues


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _flipped_dataset(*, n=2000, k=5, rate=0.3, model_accuracy=0.85, seed=0):
    """Given labels with exactly rate*n symmetric flips, and a "model" that predicts the TRUE class
    model_accuracy of the time: its probabilities peak (with Gaussian logit noise) on its guess."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, int(rate * n), replace=False)] = True
    labels = true.copy()
    labels[flipped] = (true[flipped] + rng.integers(1, k, flipped.sum())) % k
    guess = np.where(rng.random(n) < model_accuracy, true, (true + rng.integers(1, k, n)) % k)

    def probs(scale):
        z = rng.normal(0.0, 1.0, (n, k))
        z[np.arange(n), guess] += scale
        return _softmax(z)

    per_epoch = np.stack([probs(1.0 + 0.5 * e) for e in range(6)])  # the model grows surer
    return labels, probs(3.0), per_epoch, flipped, true


@pytest.fixture(scope="module")
def flipped():
    return _flipped_dataset()


# A 10-example, 3-class case small enough to do by hand (see test_confident_joint_by_hand).
TINY_LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
TINY_PROBS = np.array([
    [0.80, 0.10, 0.10],  # 0: label 0, confident in 0
    [0.40, 0.50, 0.10],  # 1: label 0, confident in 1 only (0.40 < t0)
    [0.10, 0.80, 0.10],  # 2: label 0, confident in 1
    [0.20, 0.70, 0.10],  # 3: label 1, confident in 1
    [0.40, 0.35, 0.25],  # 4: label 1, below every threshold: not counted
    [0.50, 0.10, 0.40],  # 5: label 1, confident in 0
    [0.10, 0.60, 0.30],  # 6: label 1, confident in 1
    [0.10, 0.10, 0.80],  # 7: label 2, confident in 2
    [0.45, 0.00, 0.55],  # 8: label 2, confident in 0 AND 2 -> the argmax, 2
    [0.80, 0.00, 0.20],  # 9: label 2, confident in 0
])


# ----------------------------------------------------------------------------- detectors find flips

@pytest.mark.parametrize("detector", list(detectors.DETECTORS))
def test_every_detector_ranks_flipped_labels_first(flipped, detector):
    labels, probs, per_epoch, is_noisy, _ = flipped
    margins = detectors.aum_margins(per_epoch, labels) if detector in detectors.MARGIN_DETECTORS else None
    extra = {"threshold_margins": np.zeros((1, 10))} if detector == "aum" else {}   # threshold 0
    found = detectors.find_label_issues(labels, probs, detector=detector, margins=margins, **extra)
    n = len(labels)
    assert found.detector == detector
    assert found.label_quality.shape == found.is_label_issue.shape == found.proposed_label.shape == (n,)
    assert found.label_quality.min() >= 0 and found.label_quality.max() <= 1
    assert found.proposed_label.min() >= 0 and found.proposed_label.max() < probs.shape[1]
    result = detectors.evaluate(found, is_noisy)
    # noise rate 0.3 is what a random ranking scores; a model wrong on 15% of the examples makes
    # ~210 clean ones look as suspicious as the 600 flips, which caps AP near 0.75 here
    assert result["noise_rate"] == pytest.approx(0.3)
    assert result["average_precision"] > 0.65
    assert result["precision"] > 0.55  # flags are mostly real flips
    assert found.label_quality[is_noisy].mean() < found.label_quality[~is_noisy].mean() - 0.2
    top = detectors.rank(found)[:300]
    assert is_noisy[top].mean() > 0.6


def test_confident_learning_beats_blog_rule_on_recall(flipped):
    labels, probs, _, is_noisy, _ = flipped
    cl = detectors.evaluate(detectors.find_label_issues(labels, probs), is_noisy)
    blog = detectors.evaluate(detectors.find_label_issues(labels, probs, detector="blog_threshold"), is_noisy)
    assert cl["recall"] > 0.8 and blog["recall"] < 0.5  # 0.9-confidence rule misses most flips


def test_confident_learning_proposes_mostly_the_true_class(flipped):
    labels, probs, _, is_noisy, true = flipped
    found = detectors.find_label_issues(labels, probs)
    hit = found.is_label_issue & is_noisy
    assert (found.proposed_label[hit] == true[hit]).mean() > 0.8
    assert np.allclose(found.proposed_prob, probs[np.arange(len(labels)), found.proposed_label])


# ----------------------------------------------------------------------------- confident learning by hand

def test_confident_thresholds_by_hand():
    t = detectors.confident_thresholds(TINY_LABELS, TINY_PROBS)
    # t_j = mean p_j over examples labelled j
    assert t == pytest.approx([(0.8 + 0.4 + 0.1) / 3, (0.7 + 0.35 + 0.1 + 0.6) / 4, (0.8 + 0.55 + 0.2) / 3])


def test_confident_joint_by_hand():
    # thresholds 0.4333, 0.4375, 0.5167; rows: given label, columns: confidently counted class
    raw = detectors.confident_joint(TINY_LABELS, TINY_PROBS, calibrate=False)
    assert raw.tolist() == [[1, 2, 0],   # examples 0 | 1, 2
                            [1, 2, 0],   # 5 | 3, 6   (4 counted nowhere)
                            [1, 0, 2]]   # 9 | 7, 8   (8: two classes above threshold -> argmax 2)
    # calibration scales row 1 (3 counted) to its 4 labels: [4/3, 8/3, 0] -> [1, 3, 0]
    cal = detectors.confident_joint(TINY_LABELS, TINY_PROBS)
    assert cal.tolist() == [[1, 2, 0], [1, 3, 0], [1, 0, 2]]
    assert cal.sum() == len(TINY_LABELS)


def test_confident_joint_keeps_at_least_one_per_diagonal_cell():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7]])  # nobody confident in 0
    assert detectors.confident_joint(labels, probs, calibrate=False)[0, 0] == 1


def test_confident_learning_prunes_by_noise_rate_by_hand():
    found = detectors.find_label_issues(TINY_LABELS, TINY_PROBS, detector="confident_learning")
    # cell (given 0, true 1) has 2: remove the 2 labelled-0 examples with largest p1 - p0 (2, 1);
    # (1, 0) has 1: example 5 (p0 - p1 = 0.4 beats example 4's 0.05); (2, 0) has 1: example 9
    assert np.flatnonzero(found.is_label_issue).tolist() == [1, 2, 5, 9]
    assert found.proposed_label[[1, 2, 5, 9]].tolist() == [1, 1, 0, 0]
    assert found.label_quality.tolist() == pytest.approx(TINY_PROBS[np.arange(10), TINY_LABELS].tolist())
    # example 4's argmax (0) disagrees with its label too, but confident learning keeps it
    assert not found.is_label_issue[4]


def test_confident_learning_never_flags_an_example_whose_label_is_the_argmax():
    labels, probs, _, _, _ = _flipped_dataset(n=600, seed=3)
    found = detectors.find_label_issues(labels, probs)
    assert not (found.is_label_issue & (probs.argmax(axis=1) == labels)).any()


def test_frac_noise_shrinks_the_flags(flipped):
    labels, probs, _, _, _ = flipped
    full = detectors.find_label_issues(labels, probs).num_issues
    half = detectors.find_label_issues(labels, probs, frac_noise=0.5).num_issues
    assert 0.3 * full < half < 0.7 * full


# ----------------------------------------------------------------------------- score detectors by hand

def test_self_confidence_and_margin_by_hand():
    labels = np.array([0, 1, 2])
    probs = np.array([[0.6, 0.3, 0.1], [0.7, 0.2, 0.1], [0.2, 0.4, 0.4]])
    sc = detectors.find_label_issues(labels, probs, detector="self_confidence")
    assert sc.label_quality.tolist() == pytest.approx([0.6, 0.2, 0.4])
    assert sc.is_label_issue.tolist() == [False, True, True]  # default threshold 0.5
    nm = detectors.find_label_issues(labels, probs, detector="normalized_margin")
    # (p[label] - max other + 1) / 2
    assert nm.label_quality.tolist() == pytest.approx([(0.3 + 1) / 2, (-0.5 + 1) / 2, (0.0 + 1) / 2])
    assert nm.is_label_issue.tolist() == [False, True, False]  # a tie is not "another class beats it"
    assert nm.proposed_label.tolist() == [0, 0, 1]
    low1 = detectors.find_label_issues(labels, probs, detector="self_confidence", num_issues=1)
    assert low1.is_label_issue.tolist() == [False, True, False] and low1.params == {"num_issues": 1}
    strict = detectors.find_label_issues(labels, probs, detector="self_confidence", threshold=0.3)
    assert strict.is_label_issue.tolist() == [False, True, False]


def test_blog_threshold_by_hand():
    labels = np.array([0, 0, 0, 1])
    probs = np.array([[0.05, 0.95], [0.15, 0.85], [0.95, 0.05], [0.91, 0.09]])
    found = detectors.find_label_issues(labels, probs, detector="blog_threshold")
    assert found.is_label_issue.tolist() == [True, False, False, True]
    loose = detectors.find_label_issues(labels, probs, detector="blog_threshold", confidence=0.8)
    assert loose.is_label_issue.tolist() == [True, True, False, True]


# ----------------------------------------------------------------------------- AUM

def test_aum_margins_from_logits_and_probs_agree():
    logits = np.array([[[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]],
                       [[1.0, 1.5, 0.0], [0.0, 2.0, 1.0]]])  # (E=2, N=2, K=3)
    labels = np.array([0, 1])
    before = logits.copy()
    m = detectors.aum_margins(logits, labels)
    assert np.array_equal(logits, before)  # the caller's record is not modified
    # epoch 0: 2 - 1 = 1, 1 - 3 = -2; epoch 1: 1 - 1.5 = -0.5, 2 - 1 = 1
    np.testing.assert_allclose(m, [[1.0, -2.0], [-0.5, 1.0]])
    np.testing.assert_allclose(detectors.aum_margins(_softmax(logits), labels), m, atol=1e-12)
    assert detectors.aum_margins(logits[0], labels).shape == (1, 2)


def test_aum_detector_by_hand():
    margins = np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.5]])  # AUM = 2, -0.5, -0.5
    found = detectors.find_label_issues([0, 1, 2], None, detector="aum_margin_below_0", margins=margins)
    assert found.label_quality.tolist() == pytest.approx(1 / (1 + np.exp(-np.array([2, -0.5, -0.5]))))
    assert found.is_label_issue.tolist() == [False, True, True]
    assert found.proposed_label.tolist() == [0, 1, 2] and np.isnan(found.proposed_prob).all()
    fake = np.array([[-3.0, -2.0, -1.0, -4.0, -0.6]])  # 99th percentile of the fake-class AUMs
    by_fake = detectors.find_label_issues([0, 1, 2], None, detector="aum", margins=margins,
                                       threshold_margins=fake)
    assert by_fake.params["threshold"] == pytest.approx(np.percentile(fake[0], 99))
    assert by_fake.is_label_issue.tolist() == [False, False, False]  # -0.5 > -0.604


# ----------------------------------------------------------------------------- evaluation, ranking, frames

SIX_NOISY = np.array([True, True, False, False, False, True])
SIX = LabelIssues(label_quality=np.array([0.1, 0.5, 0.2, 0.9, 0.8, 0.3]),
                  is_label_issue=np.array([True, False, True, False, False, True]),
                  proposed_label=np.zeros(6, dtype=int), proposed_prob=np.zeros(6), detector="hand")


def test_evaluate_by_hand():
    r = detectors.evaluate(SIX, SIX_NOISY)
    assert (r["true_positives"], r["n_flagged"], r["n_noisy"]) == (2, 3, 3)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3) and r["noise_rate"] == pytest.approx(0.5)
    # ranking 0(noisy) 2 5(noisy) 1(noisy) 4 3: precision at each noisy one 1/1, 2/3, 3/4
    assert r["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_evaluate_nothing_flagged_is_zero_not_an_error():
    none = LabelIssues(SIX.label_quality, np.zeros(6, bool), SIX.proposed_label, SIX.proposed_prob, "x")
    r = detectors.evaluate(none, SIX_NOISY)
    assert (r["precision"], r["recall"], r["f1"]) == (0.0, 0.0, 0.0)


def test_precision_recall_curve_by_hand_with_ties():
    curve = detectors.precision_recall_curve(SIX.label_quality, SIX_NOISY)
    assert list(curve.columns) == ["threshold", "precision", "recall"]
    assert curve["threshold"].tolist() == [0.1, 0.2, 0.3, 0.5, 0.8, 0.9]
    assert curve["precision"].tolist() == pytest.approx([1, 1 / 2, 2 / 3, 3 / 4, 3 / 5, 1 / 2])
    assert curve["recall"].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 1, 1, 1])
    tied = detectors.precision_recall_curve([0.2, 0.2, 0.5], [True, False, True])
    assert tied["precision"].tolist() == pytest.approx([0.5, 2 / 3])  # a tie enters as one step
    thin = detectors.precision_recall_curve(np.linspace(0, 1, 1000), np.arange(1000) % 2 == 0,
                                         max_points=50)
    assert len(thin) == 50 and thin["recall"].iloc[-1] == 1.0


def test_rank_puts_flags_first_and_breaks_ties_by_index():
    q = np.array([0.5, 0.2, 0.5, 0.2, 0.9])
    flags = np.array([False, False, True, False, True])
    found = LabelIssues(q, flags, np.zeros(5, int), np.zeros(5), "hand")
    assert detectors.rank(found).tolist() == [2, 4, 1, 3, 0]


def test_to_frame_uses_class_names_and_rank_order():
    frame = detectors.to_frame(detectors.find_label_issues(TINY_LABELS, TINY_PROBS),
                            ids=[f"img{i}" for i in range(10)], labels=TINY_LABELS,
                            class_names=["cat", "dog", "owl"])
    assert list(frame.columns) == ["id", "index", "given_label", "proposed_label", "proposed_prob",
                                   "label_quality", "is_label_issue"]
    assert frame["is_label_issue"].tolist()[:4] == [True] * 4
    # flagged 1, 2, 5, 9 have p[label] .4, .1, .1, .2: sorted, the tie (2, 5) by index
    assert frame["id"].tolist()[:4] == ["img2", "img5", "img9", "img1"]
    row = frame.set_index("id").loc["img9"]
    assert (row["given_label"], row["proposed_label"]) == ("owl", "cat")


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("labels, probs, match", [
    ([0, 1], [[0.5, 0.5]], "1 rows but labels has 2"),
    ([0, 3], [[0.5, 0.5], [0.5, 0.5]], r"labels\[1\] = 3 is outside 0..1"),
    ([0, -1], [[0.5, 0.5], [0.5, 0.5]], r"labels\[1\] = -1"),
    ([0, 1], [[0.5, 0.5], [0.6, 0.5]], "row 1 sums to 1.1"),
    ([0, 1], [[0.5, 0.5], [1.2, -0.2]], r"pred_probs\[1, 1\] = -0.2 is negative"),
    ([0, 1], [[0.5, 0.5], [np.nan, 0.5]], "row 1 contains NaN"),
    ([0.5, 1], [[0.5, 0.5], [0.5, 0.5]], "integers"),
    ([0, 1], [0.5, 0.5], r"shape \(N, K\)"),
])
def test_bad_inputs_name_the_bad_value(labels, probs, match):
    with pytest.raises(DataError, match=match):
        detectors.find_label_issues(labels, probs)


def test_float_noise_in_row_sums_is_tolerated():
    probs = np.array([[0.5, 0.5004], [0.3, 0.7]], dtype=np.float32)
    assert detectors.find_label_issues([0, 1], probs, detector="self_confidence").label_quality.shape == (2,)


def test_bad_options_list_the_choices():
    with pytest.raises(UserError, match="choose one of: confident_learning"):
        detectors.find_label_issues([0, 1], [[1, 0], [0, 1]], detector="magic")
    with pytest.raises(UserError, match="has no option confidence; its options are: threshold, num_issues"):
        detectors.find_label_issues([0, 1], [[1, 0], [0, 1]], detector="self_confidence", confidence=0.9)
    with pytest.raises(UserError, match="threshold=1.5 is outside"):
        detectors.find_label_issues([0, 1], [[1, 0], [0, 1]], detector="self_confidence", threshold=1.5)
    with pytest.raises(UserError, match="need margins"):
        detectors.find_label_issues([0, 1], None, detector="aum")
    with pytest.raises(UserError, match="needs pred_probs"):
        detectors.find_label_issues([0, 1], None)
    with pytest.raises(DataError, match=r"shape \(epochs, 2\)"):
        detectors.find_label_issues([0, 1], None, detector="aum", margins=np.zeros((3, 4)))


def test_every_detector_has_help():
    assert set(detectors.DETECTOR_HELP) == set(detectors.DETECTORS) == set(detectors.DETECTOR_NAMES)


# ----------------------------------------------------------------------------- against cleanlab

def _realistic(seed):
    """Random N, K, noise rate, class imbalance, model strength and memorization of the given label."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(500, 2001)), int(rng.integers(3, 11))
    true = rng.choice(k, n, p=rng.dirichlet(np.full(k, 3.0)))
    flip = rng.random(n) < rng.uniform(0.05, 0.5)
    labels = true.copy()
    labels[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    z = rng.normal(0, 1, (n, k))
    z[np.arange(n), true] += rng.uniform(1, 5)
    z[np.arange(n), labels] += rng.uniform(0, 2)
    probs = _softmax(z * rng.uniform(0.5, 2, (n, 1)))
    return labels, (probs.astype(np.float32) if seed % 3 == 0 else probs)


@pytest.mark.parametrize("seed", range(12))
def test_matches_cleanlab_prune_by_noise_rate_exactly(seed):
    filt = pytest.importorskip("cleanlab.filter")
    count = pytest.importorskip("cleanlab.count")
    labels, probs = _realistic(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = filt.find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
        expected_joint = count.compute_confident_joint(labels, probs)
    ours = detectors.find_label_issues(labels, probs, detector="confident_learning")
    assert np.array_equal(detectors.confident_joint(labels, probs), expected_joint)
    assert np.array_equal(ours.is_label_issue, expected)


def test_tiny_case_and_scores_match_cleanlab():
    filt = pytest.importorskip("cleanlab.filter")
    rank = pytest.importorskip("cleanlab.rank")
    count = pytest.importorskip("cleanlab.count")
    assert np.array_equal(count.compute_confident_joint(TINY_LABELS, TINY_PROBS),
                          detectors.confident_joint(TINY_LABELS, TINY_PROBS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = filt.find_label_issues(TINY_LABELS, TINY_PROBS, n_jobs=1)
    assert np.flatnonzero(mask).tolist() == [1, 2, 5, 9]
    labels, probs = _realistic(99)
    for method in ("self_confidence", "normalized_margin"):
        expected = rank.get_label_quality_scores(labels, probs, method=method)
        ours = detectors.find_label_issues(labels, probs, detector=method).label_quality
        assert ours == pytest.approx(expected, abs=1e-6)


# ----------------------------------------------------------------------------- noise estimate (no truth)

def test_estimate_noise_by_hand():
    # thresholds: class 0 -> mean p0 over labelled-0 = (0.9 + 0.2) / 2 = 0.55; class 1 -> (0.8 + 0.7) / 2 = 0.75
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.2, 0.8], [0.3, 0.7]])
    est = detectors.estimate_noise(labels, probs)
    # example 1 is labelled 0 but confidently 1 (0.8 >= 0.75) and argmax 1: the one issue
    assert est.num_issues == 1 and est.noise_rate == 0.25
    # confident joint [given, true]: given 0 -> true 0 once, true 1 once; given 1 -> true 1 twice
    assert est.joint.tolist() == [[1, 1], [0, 2]]
    # T[true, given]: true 0 was given 0 (1 of 1); true 1 was given 0 once and 1 twice
    np.testing.assert_allclose(est.noise_matrix, [[1.0, 0.0], [1 / 3, 2 / 3]])


@pytest.mark.parametrize("seed", range(6))
def test_estimate_noise_matches_cleanlab(seed):
    count = pytest.importorskip("cleanlab.count")
    labels, probs = _realistic(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_n = count.num_label_issues(labels, probs, estimation_method="off_diagonal")
        _py, cl_noise, _inv, _cj = count.estimate_py_and_noise_matrices_from_probabilities(
            labels, probs, converge_latent_estimates=False)  # cl_noise is [given, true]
    est = detectors.estimate_noise(labels, probs)
    assert est.num_issues == expected_n
    np.testing.assert_allclose(est.noise_matrix, cl_noise.T, atol=1e-9)
    np.testing.assert_allclose(est.noise_matrix.sum(axis=1), 1.0)


def test_confident_learning_proposes_the_top_class_it_was_built_on():
    """Issue 33, finding 2: confident learning proposed the class of the off-diagonal cell an example was
    pruned for, which can be a runner-up: here example 21 (given 2, probabilities 44% / 1.5% / 22% /
    32.5%) was proposed class 3 while the model's top class is 0 (what the page's chart shows first)."""
    rng = np.random.default_rng(12)
    probs = rng.dirichlet(np.ones(4) * 0.7, size=60)
    labels = rng.integers(0, 4, 60)
    found = detectors.find_label_issues(labels, probs, detector="confident_learning")
    assert labels[21] == 2 and found.is_label_issue[21] and probs[21].round(3).tolist() == [0.44, 0.015, 0.22, 0.325]
    assert found.proposed_label[21] == 0 and found.proposed_prob[21] == pytest.approx(0.44, abs=1e-3)
    assert (found.proposed_label == probs.argmax(axis=1)).all()
    assert (found.proposed_label[found.is_label_issue] != labels[found.is_label_issue]).all()
