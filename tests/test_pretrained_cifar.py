"""benchmarks/pretrained_cifar.py: its config is the app's pretrained preset on the noise setting, and the fast
preset's numbers beside it are read from a time_to_accuracy results prefix (seed 0 rows, confident learning)."""
import subprocess
import sys
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pretrained_cifar.py"
sys.path.insert(0, str(SCRIPT.parent))


def test_config_is_the_pretrained_preset_on_the_setting():
    import pretrained_cifar

    config = pretrained_cifar.config_for("sym40")
    assert config.preset == "pretrained" and config.model == "pretrained_head" and config.data.source == "cifar10"
    assert (config.noise.model, config.noise.rate, config.seed) == ("symmetric", 0.4, 0)


def test_fast_numbers_read_seed_0_and_confident_learning(tmp_path):
    import pretrained_cifar

    prefix = tmp_path / "tta"
    pd.DataFrame({"setting": ["sym40", "sym40"], "seed": [0, 1], "final_test_accuracy": [0.844, 0.846],
                  "wall_seconds": [746.7, 760.0]}).to_csv(prefix.with_suffix(".csv"), index=False)
    pd.DataFrame({"setting": ["sym40", "sym40", "sym40 (seed 1)"],
                  "detector": ["self_confidence", "confident_learning", "confident_learning"],
                  "precision": [0.85, 0.91, 0.5], "recall": [0.97, 0.92, 0.5], "flagged": [22895, 20052, 1]}
                 ).to_csv(tmp_path / "tta_detection.csv", index=False)
    assert pretrained_cifar.fast_numbers(prefix, "sym40") == {
        "fast_test_accuracy": 0.844, "fast_wall_seconds": 746.7, "fast_cl_precision": 0.91, "fast_cl_recall": 0.92,
        "fast_cl_flagged": 20052}


def test_a_missing_fast_prefix_is_refused_with_exit_2(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--work", str(tmp_path / "w"), "--fast", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "time_to_accuracy.py" in done.stderr
    assert not (tmp_path / "w").exists()
