"""Issue 28's guard: the default path on two small sets it was not tuned on (8-px grayscale digit scans from
scikit-learn's wheel, jittered coloured shapes), zip -> train with no options -> 2-fold detection, against the
ten-line peer (cleanlab's find_label_issues on the linear baseline's out-of-sample probabilities)."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_default_path_beats_the_linear_peer_on_sets_it_was_not_tuned_on(tmp_path, monkeypatch):
    import robust_defaults

    monkeypatch.setenv("NOISYLAB_HOME", str(tmp_path / "home"))
    out = tmp_path / "rows.jsonl"
    assert robust_defaults.main(["--smoke", "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    rows = {r["set"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == set(robust_defaults.SMOKE_SETS)
    for name, r in rows.items():
        # the model the default path builds its queue on is at least as accurate out of sample as the baseline
        assert r["chosen_cv_accuracy"] >= r["baseline_cv_accuracy"], (name, r)
        assert r["chosen_cv_accuracy"] > 2 / r["classes"], (name, r)          # well above chance
        # and its queue finds at least as many planted labels in its first k as the peer
        assert r["queue_first_k"] >= r["peer_first_k"], (name, r)
        assert r["planted"] == round(0.05 * r["images"])
    assert rows["digits8-400"]["side"] == 16            # 8-px scans trained without options: scaled up for fast_cnn
    assert rows["shapes16-colour"]["network_cv_accuracy"] > rows["shapes16-colour"]["baseline_cv_accuracy"] + 0.2
