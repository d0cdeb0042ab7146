"""TrainConfig: JSON round trip (nested data / noise, parameter mappings), presets, validation."""
import json

import pytest

from noisycore.config import PRESET_HELP, PRESETS, ConfigError, DataConfig, NoiseConfig, TrainConfig


def test_defaults_round_trip_through_json():
    c = TrainConfig()
    assert TrainConfig.from_json(c.to_json()) == c
    assert (c.model, c.loss, c.method, c.epochs, c.lr_schedule) == ("compact_cnn", "ce", "standard", 20, "plateau")


def test_nested_configs_and_params_round_trip():
    c = TrainConfig(data=DataConfig(source="builtin", max_train=500, image_size=16),
                    noise=NoiseConfig(model="matrix", rate=0.0, matrix=[[0.9, 0.1], [0.2, 0.8]]),
                    loss="gce", loss_params={"q": 0.5}, method="coteaching",
                    method_params=[("t_k", 5), ("forget_rate", 0.3)], seed=7, max_train=300)
    text = c.to_json()
    data = json.loads(text)
    assert data["loss_params"] == {"q": 0.5}                    # stored as a JSON object, readable
    assert data["method_params"] == {"forget_rate": 0.3, "t_k": 5}
    assert data["noise"]["matrix"] == [[0.9, 0.1], [0.2, 0.8]]
    back = TrainConfig.from_json(text)
    assert back == c and hash(back) == hash(c)
    assert isinstance(back.data, DataConfig) and back.data.max_train == 500
    assert back.noise.matrix == ((0.9, 0.1), (0.2, 0.8))
    assert back.method_kwargs == {"forget_rate": 0.3, "t_k": 5}
    assert back.loss_kwargs == {"q": 0.5}


def test_params_accept_dict_or_pairs_equally():
    a = TrainConfig(loss="sce", loss_params={"alpha": 0.2, "beta": 1.0})
    b = TrainConfig(loss="sce", loss_params=(("beta", 1.0), ("alpha", 0.2)))
    assert a == b and a.loss_params == (("alpha", 0.2), ("beta", 1.0))


def test_frozen():
    with pytest.raises(Exception):
        TrainConfig().epochs = 3


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_round_trip(name):
    c = TrainConfig.from_preset(name)
    assert c.preset == name and PRESET_HELP[name]
    assert TrainConfig.from_json(c.to_json()) == c
    for key, value in PRESETS[name].items():  # a preset lists only what differs from the defaults
        default = getattr(TrainConfig(), key)
        assert value != (default.to_dict() if hasattr(default, "to_dict") else default), key


def test_preset_contents_follow_the_recipes():
    blog = TrainConfig.from_preset("blog")
    assert (blog.model, blog.loss, blog.loss_kwargs, blog.augment, blog.epochs) == \
        ("blog_cnn", "label_smoothing", {"epsilon": 0.1}, "blog", 100)
    assert (blog.early_stopping_patience, blog.plateau_factor, blog.plateau_patience, blog.min_lr) == (15, 0.5, 5, 1e-7)
    assert (blog.optimizer, blog.learning_rate, blog.batch_size) == ("adam", 1e-3, 128)
    full = TrainConfig.from_preset("full")
    assert (full.model, full.optimizer, full.learning_rate, full.lr_schedule, full.weight_decay, full.epochs) == \
        ("resnet", "sgd", 0.1, "cosine", 5e-4, 200)
    quick = TrainConfig.from_preset("quick")
    assert quick.early_stopping_patience == 0 and quick.lr_schedule in ("constant", "cosine")


def test_from_preset_overrides_and_partial_nested_dicts():
    c = TrainConfig.from_preset("blog", epochs=3, noise={"rate": 0.2}, data={"max_train": 100})
    assert c.epochs == 3 and c.model == "blog_cnn"
    assert c.noise == NoiseConfig(rate=0.2) and c.data == DataConfig(max_train=100)
    with pytest.raises(ConfigError, match="preset='tiny'.*quick"):
        TrainConfig.from_preset("tiny")


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "magic"}, r"method='magic'.*standard, confidence_weighting, coteaching, label_correction"),
    ({"optimizer": "rmsprop"}, r"optimizer='rmsprop'.*adam, sgd"),
    ({"lr_schedule": "step"}, r"lr_schedule='step'.*plateau, constant, cosine, onecycle"),
    ({"augment": "heavy"}, r"augment='heavy'.*none, blog, strong"),
    ({"epochs": 0}, r"epochs=0"),
    ({"epochs": 2.5}, r"epochs=2.5 must be an integer"),
    ({"learning_rate": -1.0}, r"learning_rate=-1.0"),
    ({"val_fraction": 0.0}, r"val_fraction=0.0"),
    ({"batch_size": "big"}, r"batch_size='big'"),
    ({"plateau_factor": 1.5}, r"plateau_factor=1.5"),
    ({"method": "coteaching", "method_params": {"tau": 0.2}}, r"no parameter tau; valid: forget_rate, t_k"),
    ({"mixup_alpha": 0.2, "method": "coteaching"}, r"mixup_alpha=0.2 works only with method 'standard'"),
    ({"loss_params": [("q",)]}, r"loss_params"),
    ({"noise": {"rate": 1.5}}, r"noise rate=1.5"),
    ({"data": {"colour": 1}}, r"unknown DataConfig field\(s\): colour"),
])
def test_validation_names_the_bad_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)


def test_from_json_rejects_unknown_fields_and_bad_json():
    with pytest.raises(ConfigError, match="unknown TrainConfig field.*epoch_count"):
        TrainConfig.from_dict({"epoch_count": 3})
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{nope")


def test_preset_with_another_loss_drops_the_presets_loss_params():
    from noisycore.config import PRESETS, TrainConfig

    name = next(n for n, p in PRESETS.items() if p.get("loss_params"))
    preset_loss = PRESETS[name]["loss"]
    other = "gce" if preset_loss != "gce" else "ce"
    cfg = TrainConfig.from_preset(name, loss=other)
    assert cfg.loss == other and set(cfg.loss_kwargs) <= {"q"}
    kept = TrainConfig.from_preset(name, loss=preset_loss)
    assert kept.loss_kwargs == dict(PRESETS[name]["loss_params"])


def test_default_preset_by_source_and_size():
    from noisycore.config import FAST_MIN_IMAGES, default_preset, scratch_preset

    assert default_preset("builtin") == "quick"
    assert default_preset("cifar10") == "fast"
    assert default_preset("/photos/garden.zip") == "pretrained"       # a user's folder: a head on pretrained features
    assert default_preset("/photos/garden.zip", FAST_MIN_IMAGES) == "pretrained"
    assert scratch_preset("/photos/garden.zip") == "small"            # from scratch: size unknown, a user's folder
    assert scratch_preset("/photos/garden.zip", 450) == "small"
    assert scratch_preset("/photos/garden.zip", FAST_MIN_IMAGES) == "fast"
    assert default_preset("cifar10", 5000) == "small"                 # a 5,000-image subset


def test_cli_default_preset_follows_the_label_set(tmp_path):
    """`noisycore train --labels SET` starts from the preset for the set's images, as the Train page does."""
    from noisycore.cli import build_parser
    from noisycore.cliargs import default_preset_for, train_config
    from noisycore.config import default_preset

    def label_set(name, source, n):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "noise.json").write_text(json.dumps({"data_config": {"source": source}, "counts": {"labels": n}}))
        (folder / "labels.csv").write_text("id,label\n")
        return folder

    parse = lambda *a: build_parser().parse_args(["train", *map(str, a)])  # noqa: E731
    own = label_set("own", str(tmp_path / "photos"), 800)
    big = label_set("big", str(tmp_path / "many"), 20_000)
    demo = label_set("demo", "builtin", 8_000)
    assert default_preset_for(parse("--labels", own), default_preset) == "pretrained"
    assert default_preset_for(parse("--labels", own / "labels.csv"), default_preset) == "pretrained"
    assert default_preset_for(parse("--labels", big), default_preset) == "pretrained"
    assert default_preset_for(parse("--labels", demo), default_preset) == "quick"
    assert default_preset_for(parse("--dataset", "cifar10"), default_preset) == "fast"
    assert default_preset_for(parse("--dataset", "cifar10", "--max-train", 2000), default_preset) == "small"
    assert train_config(parse("--labels", own)).preset == "pretrained"
    assert train_config(parse("--labels", own, "--preset", "fast")).preset == "fast"   # an explicit preset wins
    # the small preset's epochs follow the label set's size on the CLI too (450 -> round(20000/450) = 44)
    few = label_set("few", str(tmp_path / "few"), 450)
    small = ("--preset", "small")
    assert train_config(parse("--labels", own, *small)).epochs == 30
    assert train_config(parse("--labels", few, *small)).epochs == 44
    assert train_config(parse("--labels", few, *small, "--epochs", 5)).epochs == 5
    assert train_config(parse("--dataset", "cifar10", "--max-train", 2000)).epochs == 30   # 20000/2000 < 30
    # AUM margins: auto (None) unless asked for or against
    assert train_config(parse("--dataset", "cifar10")).record_margins is None
    assert train_config(parse("--dataset", "cifar10", "--record-margins")).record_margins is True
    assert train_config(parse("--dataset", "cifar10", "--no-record-margins")).record_margins is False


def test_small_preset_epochs_follow_the_number_of_images():
    """About 20,000 training images per run: 675 -> 30 epochs, 337 -> 59, 100 -> the cap of 100; other presets and
    an unknown size keep their epochs; an explicit epochs wins."""
    from noisycore.config import preset_epochs

    assert [preset_epochs("small", n) for n in (None, 5000, 675, 337, 300, 100)] == [30, 30, 30, 59, 67, 100]
    assert preset_epochs("fast", 450) == PRESETS["fast"]["epochs"] and preset_epochs("quick", 50) == 15
    assert TrainConfig.from_preset("small", num_images=450).epochs == 44
    assert TrainConfig.from_preset("small", num_images=450, epochs=12).epochs == 12
    from noisycore import crossval

    assert crossval.recommended_recipe(337, scratch=True)["epochs"] == 59 and crossval.recommended_recipe(20_000, scratch=True)["model"] == "fast_cnn"
