"""Names, one-line help and default hyper-parameters of every registry: noise models, models, losses,
methods, optimizers, schedules, augmentations, test-time augmentation and precisions, with the
validation of their parameters (``method_params``, ``forward_options``).

Pure data, free of TensorFlow and of every other noisycore module but ``errors``, so the config,
the pages and the CLI can offer and check the choices without importing Keras. The registries
(models.MODELS, losses.LOSSES, methods.METHODS) are built from the same names, and
tests/test_models.py, tests/test_losses.py and tests/test_methods.py check that they agree.
"""
from noisycore.errors import ConfigError

NOISE_MODEL_NAMES = ("none", "symmetric", "uniform", "pair", "asymmetric", "matrix", "instance", "human")
NOISE_HELP = {
    "none": "keep the labels as given",
    "symmetric": "flip to a random other class",
    "uniform": "redraw at random, may land on the true class",
    "pair": "class i becomes class i+1",
    "asymmetric": "similar classes swap (cat↔dog, truck→automobile…)",
    "matrix": "you set P(given | true) per class pair",
    "instance": "harder-looking images flip more (Xia et al. 2020)",
    "human": "real annotators' labels (e.g. CIFAR-10N)",
}
assert tuple(NOISE_HELP) == NOISE_MODEL_NAMES
METHOD_NAMES = ("standard", "confidence_weighting", "coteaching", "label_correction")
OPTIMIZERS = ("adam", "sgd", "nesterov")          # sgd: momentum 0.9; nesterov: Nesterov momentum 0.9
LR_SCHEDULES = ("plateau", "constant", "cosine", "onecycle", "warmup_linear")
AUGMENTATIONS = ("none", "blog", "strong", "flip_translate", "translate", "auto")
PRECISIONS = ("auto", "float32", "bfloat16")      # auto: bfloat16 where the hardware computes it natively

MODEL_HELP = {
    "compact_cnn": "A small fast CNN for CPU demos: several times faster, a little less accurate.",
    "blog_cnn": "The blog post's CNN (817k parameters): accurate, slow on a CPU.",
    "fast_cnn": "airbench-style CNN for real photos: whitened first layer, fused BatchNorm + ReLU, scaled logits; fast and accurate on a CPU.",
    "resnet": "A ResNet-18 for 32x32 images: best accuracy, needs a GPU.",
    "pretrained_head": "A small classifier on pretrained features: each image is embedded once by ImageNet "
                       "EfficientNet-Lite2 (offline, cached) and only the head is trained; seconds per run.",
}
# Models that learn from the cached pretrained embeddings (noisycore.embeddings) instead of the pixels: no
# augmentation, no mirror TTA and no whitening apply to them (an embedding is not an image).
EMBEDDING_MODELS = ("pretrained_head",)
# Methods that make no sense on a head over frozen features, with the reason (TrainConfig refuses them).
EMBEDDING_REFUSED_METHODS = {
    "coteaching": "co-teaching needs two networks that learn differently; two heads on the same frozen features "
                  "agree on the same images, so each would only echo the other",
}


def takes_embeddings(model: str) -> bool:
    """Whether ``model`` trains on the pretrained embeddings instead of the images."""
    return model in EMBEDDING_MODELS
# Images smaller than this many pixels per side are scaled up for the model (issue 28): fast_cnn halves them
# three times after a 2x2 conv, so it needs 9; at 9 it learned 8-pixel scans 4 points worse than at 16, and
# 32 was no better than 16 for twice the time (sklearn's digits, 30 epochs). Other models take 8.
MODEL_MIN_SIDE = {"fast_cnn": 16}

# name -> ({hyper-parameter: default}, {hyper-parameter: (low, high)}, help)
LOSS_SPECS = {
    "ce": ({}, {},
           "Plain cross-entropy: trusts every label; with noise it ends up memorizing the wrong ones."),
    "label_smoothing": ({"epsilon": 0.1}, {"epsilon": (0.0, 0.99)},
                        "Cross-entropy against softened targets (the blog post's choice): less over-confident."),
    "sce": ({"alpha": 0.1, "beta": 1.0}, {"alpha": (0.0, 100.0), "beta": (0.0, 100.0)},
            "Symmetric cross-entropy: adds a bounded 'reverse' term (log 0 := ln 1e-4, so beta is ~2.3x the paper's)."),
    "gce": ({"q": 0.7}, {"q": (1e-3, 1.0)},
            "Generalized cross-entropy: between cross-entropy (q near 0) and the noise-tolerant MAE (q = 1)."),
    "bootstrap_soft": ({"beta": 0.95}, {"beta": (0.0, 1.0)},
                       "Soft bootstrapping: the target mixes the given label with the model's own prediction."),
    "bootstrap_hard": ({"beta": 0.8}, {"beta": (0.0, 1.0)},
                       "Hard bootstrapping: the target mixes the given label with the model's predicted class."),
    "nce_rce": ({"alpha": 1.0, "beta": 1.0}, {"alpha": (0.0, 100.0), "beta": (0.0, 100.0)},
                "Normalized + reverse cross-entropy: two bounded losses that help each other (robust, learns slower)."),
    "forward": ({"noise_matrix": None, "matrix": "known", "matrix_from": None, "warmup_epochs": 5}, {},
                "Forward correction: passes predictions through the noise matrix T (known or estimated) first."),
}
# Loss parameters that say how to obtain an input of the loss rather than being one (noisycore.forward):
# matrix "known" | "estimated"; matrix_from a reference run; warmup_epochs of plain CE before estimating T.
LOSS_SETUP_KEYS = {"forward": ("matrix", "matrix_from", "warmup_epochs")}
FORWARD_MATRIX_HELP = {
    "known": "Known: the declared noise matrix (the injected noise, or the label set's noise.json).",
    "estimated": "Estimated by confident learning without true labels: from a finished run's predictions, "
                 "or after a warm-up with plain cross-entropy (Patrini et al.'s two stages in one run).",
}
LOSS_DEFAULTS = {name: dict(spec[0]) for name, spec in LOSS_SPECS.items()}
LOSS_RANGES = {name: dict(spec[1]) for name, spec in LOSS_SPECS.items()}
LOSS_HELP = {name: spec[2] for name, spec in LOSS_SPECS.items()}

AUGMENT_HELP = {
    "none": "No augmentation: every epoch shows the same images (fastest; memorizes noise soonest).",
    "blog": "The blog post's recipe: rotate up to 15 degrees, shift up to 10%, mirror left-right.",
    "strong": "Mirror left-right and crop a random window after padding 4 pixels (the usual CIFAR recipe).",
    "flip_translate": "Mirror left-right and shift up to 2 pixels (mirrored border): airbench's light augmentation.",
    "translate": "Shift up to 2 pixels (mirrored border), never mirror: for classes a mirror changes (text, digits, arrows).",
    "auto": "flip_translate, or translate when mirroring changes the labels of these images (checked before training "
            "by a linear model on mirrored images; the run says which it chose).",
}
MIRROR_AUGMENT = {"flip_translate": "translate", "blog": "blog", "strong": "strong"}   # auto's two outcomes below
CUTOUT_HELP = "Cutout: blank out one random square, half the image side (16x16 pixels at 32x32)."
MIXUP_HELP = ("Mixup: blend each image and its label with another image of the batch "
              "(weight ~ Beta(alpha, alpha)); 0 turns it off, 0.2-1.0 is typical.")

TTA_HELP = {
    "none": "Predict each image once.",
    "flip": "Test-time augmentation: average the predicted probabilities of each image and its mirror image.",
    "auto": "flip, or none when mirroring changes the labels of these images (checked before training).",
}
KEEP_HELP = {
    "best": "Keep the epoch with the best validation accuracy (on the given labels of the validation split).",
    "last": "Keep the last epoch: for schedules that decay to the end; a small validation split picks an epoch by chance.",
}
PRECISION_HELP = ("auto: bfloat16 where the hardware computes it natively (CPU flags amx_bf16 / avx512_bf16, "
                  "or a GPU), else float32; float32 / bfloat16 force one.")


# ----------------------------------------------------------------------------- methods
METHOD_HELP = {
    "standard": "One network trained on the given labels with the chosen loss.",
    "confidence_weighting": "After a warm-up, weight each image by the model's confidence in its given label "
                            "(p[label]^gamma), so images the model doubts count less.",
    "coteaching": "Two networks; each learns only from the images its peer finds easiest (small loss), "
                  "dropping a growing share of likely-wrong labels (Han et al. 2018).",
    "label_correction": "Self-training: train, replace labels the model contradicts with high confidence "
                        "(or leave those images out), continue on the corrected labels; reports how many "
                        "corrections were right.",
}

# Hyper-parameters each method accepts (TrainConfig.method_params), with defaults and units.
METHOD_DEFAULTS = {
    "standard": {},
    "confidence_weighting": {
        "warmup_epochs": 5,    # epochs with weight 1 before the weights switch on
        "gamma": 1.0,          # w = p[given]^gamma; 0 = no weighting, larger = harsher
    },
    "coteaching": {
        "forget_rate": None,   # tau, share of each batch dropped: a number, or a key of FORGET_RATE_SOURCES (None = auto)
        "t_k": 10,             # epochs over which the forget rate ramps linearly from 0 to tau
    },
    "label_correction": {
        "threshold": 0.9,      # relabel when the predicted class has probability above this (the blog's 0.9)
        "rounds": 2,           # relabelling rounds; the epochs are split into rounds + 1 equal phases
        "detector": "threshold",  # which labels to act on: "threshold" (above) or "confident_learning"
        "action": "relabel",   # "relabel" to the predicted class, or "drop" (leave the image out)
        "restart": False,      # restart the learning-rate schedule in every phase
    },
}

# Co-teaching's forget rate when it is not a number. No choice but the oracle reads a true label.
FORGET_RATE_SOURCES = {
    "auto": "the declared noise rate if the noise settings give one, else estimated",
    "declared": "the noise rate the noise settings declare (the requested rate of injected noise or of "
                "the label set's noise.json; never counted from the true labels)",
    "estimated": "confident learning's estimated share of wrong labels (detectors.estimate_noise) from the "
                 "network's predictions on the training split after the first epoch",
    "oracle_uses_true_labels": "oracle (uses true labels): the realized share of wrong labels, for "
                               "experiments only",
}
# The allowed values of every text-valued method option (the Train page shows them as select boxes).
METHOD_CHOICES = {
    "label_correction": {"detector": ("threshold", "confident_learning"), "action": ("relabel", "drop")},
}
METHOD_PARAM_HELP = {
    "label_correction": {
        "threshold": "Relabel an image when the model gives another class more than this probability "
                     "(detector threshold only).",
        "rounds": "How often labels are corrected; the epochs are split into rounds + 1 equal phases.",
        "detector": "threshold: the blog post's rule (above); confident_learning: the labels confident "
                    "learning flags on the model's predictions (the same detector the Review page uses).",
        "action": "relabel: train on the predicted class instead; drop: leave the flagged images out "
                  "of the next phase (fewer images, without the ones the model doubts: faster epochs).",
        "restart": "Start the learning-rate schedule again in every phase (each phase is then a whole "
                   "warm-up and decay of its own).",
    },
    "coteaching": {
        "forget_rate": "Share of each batch dropped at the end of the ramp: a number you declare, or "
                       + "; ".join(f"{k}: {v}" for k, v in FORGET_RATE_SOURCES.items()) + ".",
        "t_k": "Epochs over which the forget rate ramps linearly from 0.",
    },
}

assert tuple(METHOD_HELP) == METHOD_NAMES == tuple(METHOD_DEFAULTS)


def method_params(name: str, params: dict) -> dict:
    """The defaults of method ``name`` updated with ``params``; unknown keys raise ConfigError."""
    if name not in METHOD_DEFAULTS:
        raise ConfigError(f"method={name!r} is not valid; choose one of: {', '.join(METHOD_NAMES)}")
    defaults = METHOD_DEFAULTS[name]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(f"method {name!r} has no parameter {', '.join(unknown)}; "
                          f"valid: {', '.join(defaults) or 'none'}")
    rate = params.get("forget_rate") if name == "coteaching" else None
    if rate is not None and rate not in FORGET_RATE_SOURCES and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 0.9):
        raise ConfigError(f"forget_rate={rate!r} must be a number in [0, 0.9] or one of: "
                          f"{', '.join(FORGET_RATE_SOURCES)}")
    return {**defaults, **params}


# ----------------------------------------------------------------------------- the forward loss's options
MAX_WARMUP = 1000


MAX_WARMUP = 1000


def forward_options(loss_kwargs: dict) -> dict:
    """The forward loss's matrix options, validated: {"matrix", "matrix_from", "warmup_epochs"}."""
    matrix = loss_kwargs.get("matrix") or "known"
    if matrix not in FORWARD_MATRIX_HELP:
        raise ConfigError(f"forward loss: matrix={matrix!r} is not valid; choose one of: {', '.join(FORWARD_MATRIX_HELP)}")
    source = loss_kwargs.get("matrix_from") or None
    if source is not None and matrix != "estimated":
        raise ConfigError("forward loss: matrix_from (a reference run) needs matrix=estimated")
    warmup = loss_kwargs.get("warmup_epochs", LOSS_DEFAULTS["forward"]["warmup_epochs"])
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup != int(warmup) \
            or not 1 <= warmup <= MAX_WARMUP:
        raise ConfigError(f"forward loss: warmup_epochs={warmup!r} must be an integer in 1..{MAX_WARMUP}")
    return {"matrix": matrix, "matrix_from": None if source is None else str(source), "warmup_epochs": int(warmup)}


def check_forward(config) -> None:
    """Validate the forward options of a TrainConfig before anything is written (ConfigError)."""
    opts = forward_options(config.loss_kwargs)
    if opts["matrix"] == "estimated" and opts["matrix_from"] is None and opts["warmup_epochs"] >= config.epochs:
        raise ConfigError(f"forward loss: warmup_epochs={opts['warmup_epochs']} must be below epochs={config.epochs} "
                          "(T is estimated after the warm-up, then the forward loss trains)")


# ---- label-issue detectors (noisycore.detectors.DETECTORS) ----
# What a person reads on the pages and charts (the keys stay the CLI's and the files' names).
DETECTOR_NAMES = {
    "confident_learning": "Confident learning",
    "self_confidence": "Self-confidence below 50%",
    "normalized_margin": "Another class preferred (margin)",
    "aum": "AUM, the paper's threshold",
    "aum_margin_below_0": "AUM, mean margin below 0",
    "blog_threshold": "Blog rule: over 90% sure of another class",
}


def detector_name(detector: str) -> str:
    """The human name of a detector (its key when it has none, e.g. a newer file)."""
    return DETECTOR_NAMES.get(str(detector), str(detector))


DETECTOR_HELP = {
    "confident_learning": "Estimates how often each class is mislabelled as each other class, then "
                          "flags that many of the examples the model most clearly puts elsewhere.",
    "self_confidence": "Flags examples where the model gives their label less than 50% probability.",
    "normalized_margin": "Flags examples where the model prefers some other class over the given label.",
    "aum": "Area under the margin with the paper's threshold: flags labels argued against during training "
           "more than fake-class threshold samples (needs one extra training run).",
    "aum_margin_below_0": "Area under the margin, cheap rule (not the paper's threshold): flags labels "
                          "whose mean training margin is below 0.",
    "blog_threshold": "The blog post's rule: the model is over 90% sure of a different class.",
}
