"""The fast preset chosen by measurement: the choice from given timings, the budget in epochs, the cache."""
import functools
import json

import numpy as np
import pytest

from noisycore import calibration, runs
from noisycore.config import ConfigError, DataConfig, NoiseConfig, TrainConfig
from noisycore.errors import UserError
from helpers import quadrant_folder

N_FIT = 45_000


def test_epochs_to_reads_the_recorded_curves():
    assert calibration.epochs_to(79.9, calibration.ACCURACY_PER_EPOCH[("relu", 0.75)]) == 18   # 80.0 at epoch 18
    assert calibration.epochs_to(79.9, calibration.ACCURACY_PER_EPOCH[("gelu", 0.5)]) == 18    # 80.2
    assert calibration.epochs_to(81.0, calibration.ACCURACY_PER_EPOCH[("relu", 0.75)]) == 20   # 81.2
    assert calibration.epochs_to(81.0, calibration.ACCURACY_PER_EPOCH[("gelu", 0.5)]) == 21    # 80.9, then 82.1
    assert calibration.epochs_to(99.0, (50.0, 60.0)) is None


def test_choice_from_given_timings():
    # an AMX-like machine: bfloat16 twice float32; the narrow GELU net a little faster per image
    seconds = {"float32/relu/0.75": 1.0e-3, "bfloat16/relu/0.75": 0.5e-3,
               "float32/gelu/0.5": 0.9e-3, "bfloat16/gelu/0.5": 0.45e-3}
    choice = calibration.choose_variant(seconds, N_FIT)
    # both nets need 18 epochs to 79.9%: 18 x 0.45e-3 x 45,000 = 364.5 s beats 18 x 0.5e-3 x 45,000 = 405 s
    assert (choice["precision"], choice["activation"], choice["width"]) == ("bfloat16", "gelu", 0.5)
    assert choice["seconds_per_epoch"] == pytest.approx(20.25)
    assert choice["seconds_to_target"] == pytest.approx(364.5)
    # to 81%: relu 20 epochs x 22.5 s = 450 s, gelu 21 x 20.25 s = 425.25 s: still gelu; slow gelu down and relu wins
    assert calibration.choose_variant(seconds, N_FIT, target=81.0)["width"] == 0.5
    slower = {**seconds, "bfloat16/gelu/0.5": 0.48e-3}      # 21 x 21.6 = 453.6 s > 450 s
    assert calibration.choose_variant(slower, N_FIT, target=81.0)["width"] == 0.75
    # an AVX2 machine: bfloat16 emulated, five times slower -> float32
    avx2 = {"float32/relu/0.75": 1.0e-3, "bfloat16/relu/0.75": 5.0e-3, "float32/gelu/0.5": 1.2e-3,
            "bfloat16/gelu/0.5": 6.0e-3}
    choice = calibration.choose_variant(avx2, N_FIT)
    assert (choice["precision"], choice["width"]) == ("float32", 0.75) and "18 epochs" in choice["why"]
    fixed = calibration.choose_variant(avx2, N_FIT, only=lambda p, a, w: p == "bfloat16")
    assert (fixed["precision"], fixed["width"]) == ("bfloat16", 0.75)
    with pytest.raises(UserError, match="no calibrated variant"):
        calibration.choose_variant(avx2, N_FIT, only=lambda p, a, w: w == 1.0)


def test_budget_to_epochs():
    # (10 min x 60 - 60 s start-up) / (50 s x 1.1) = 540 / 55 = 9.8 -> 9 epochs
    assert calibration.budget_epochs(10, 50.0) == 9
    assert calibration.budget_epochs(10, 50.0, start_seconds=0, eval_share=0) == 12   # 600 / 50
    assert calibration.budget_epochs(10_000, 1.0) == 200                               # capped
    with pytest.raises(UserError, match=r"budget_minutes=1 is too short.*at least 1\.9"):
        calibration.budget_epochs(1, 50.0)                                              # (60 + 55) / 60 = 1.92
    for bad in (0, -3, "ten", True):
        with pytest.raises(UserError, match="budget_minutes"):
            calibration.budget_epochs(bad, 50.0)


def test_budget_needs_the_fast_preset():
    with pytest.raises(ConfigError, match="budget_minutes=5 works with the fast preset"):
        TrainConfig.from_preset("quick", budget_minutes=5)
    assert TrainConfig.from_preset("fast", budget_minutes=5).budget_minutes == 5


def test_calibration_times_a_tiny_model_and_is_cached(tmp_path):
    tiny = functools.partial(calibration.measure_variant, image_shape=(16, 16, 3), batch_size=8)
    record = calibration.calibrate(data_dir=tmp_path, measure=tiny, steps=1)
    assert set(record["seconds_per_image"]) == {calibration.variant_key(*v) for v in calibration.variants()}
    assert all(s > 0 for s in record["seconds_per_image"].values())
    path = calibration.cache_path(tmp_path)
    assert path.parent == tmp_path / "calibration" and json.loads(path.read_text())["machine"] == record["machine"]

    def must_not_measure(*args, **kwargs):
        raise AssertionError("measured again although this machine is calibrated")

    assert calibration.calibrate(data_dir=tmp_path, measure=must_not_measure) == record
    assert "Calibrated" in calibration.describe(record)


def test_a_budgeted_fast_run_takes_its_epochs_from_the_calibration(tmp_path, monkeypatch):
    from noisycore import train

    folder = quadrant_folder(tmp_path / "q", n_per_class=40)
    seconds = {"float32/relu/0.75": 1.0, "bfloat16/relu/0.75": 2.0, "float32/gelu/0.5": 3.0, "bfloat16/gelu/0.5": 3.0}
    path = calibration.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"machine": calibration.machine_key(), "seconds_per_image": seconds, "seconds": 9.0}))
    config = TrainConfig.from_preset("fast", data=DataConfig(source=str(folder), image_size=16, test_fraction=0.25),
                                     noise=NoiseConfig(model="symmetric", rate=0.2, seed=1), batch_size=32,
                                     budget_minutes=2.0, tta="none", augment="none")
    run_dir = tmp_path / "run"
    train.run(config, run_dir)
    status = runs.read_status(run_dir)
    # 1 s per 32x32 image -> 0.25 s per 16x16 one; epochs = floor((120 - 60) / (0.25 n_fit x 1.1))
    expected = int(np.floor(60 / (0.25 * status["num_fit"] * 1.1)))
    assert expected >= 1
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["epochs"] == expected and status["epochs"] == expected and saved["budget_minutes"] is None
    assert (saved["mixed_precision"], saved["model_width"], saved["model_activation"]) == ("float32", 0.75, "relu")
    assert len(runs.read_metrics(run_dir)) == expected
    assert status["calibration"]["budget_minutes"] == 2.0 and "Budget 2 min" in status["note"]


def test_cli_shows_and_checks_the_budget(capsys):
    from helpers import run_main

    shown = run_main(["train", "--help"], capsys)
    assert shown.returncode == 0 and "--budget-minutes" in shown.stdout and "calibrat" in shown.stdout
    refused = run_main(["train", "--dataset", "builtin", "--budget-minutes", "5"], capsys)
    assert refused.returncode == 2 and "works with the fast preset" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_first_runs_calibration_comes_out_of_its_budget(tmp_path):
    import time

    def slow_measure(precision, activation, width, *, steps):
        time.sleep(0.3)                     # the calibration costs 4 x 0.3 = 1.2 s of the budget
        return 0.01                         # 10 s per epoch of 1,000 images

    config = TrainConfig.from_preset("fast", budget_minutes=(60 + 11 * 5 + 0.5) / 60)   # 5 epochs of 11 s + 0.5 s
    for fresh, epochs in ((True, 4), (False, 5)):
        run_dir = tmp_path / f"run-{fresh}"
        run_dir.mkdir()
        chosen = calibration.choose_for_run(run_dir, config, num_fit=1000, image_shape=(32, 32, 3),
                                            data_dir=tmp_path / "home", measure=slow_measure)
        assert chosen.epochs == epochs and chosen.budget_minutes is None
        assert runs.read_status(run_dir)["calibration"]["epochs"] == epochs
    small = TrainConfig.from_preset("fast")     # no budget, under 10,000 images: the preset as it is
    assert calibration.choose_for_run(tmp_path, small, num_fit=5000, image_shape=(32, 32, 3),
                                      data_dir=tmp_path / "home", measure=slow_measure) == small
