"""Names, one-line help and default hyper-parameters of every model, loss and augmentation.

Pure data, free of TensorFlow, so the pages and the CLI can offer the choices without importing
Keras. The registries (models.MODELS, losses.LOSSES, pipeline.AUGMENTATIONS) are built from the
same names, and tests/test_catalog.py checks that they agree.
"""

MODEL_HELP = {
    "compact_cnn": "A small fast CNN for CPU demos: several times faster, a little less accurate.",
    "blog_cnn": "The blog post's CNN (817k parameters): accurate, slow on a CPU.",
    "fast_cnn": "airbench-style CNN for real photos: whitened first layer, GELU, scaled logits; fast and accurate on a CPU.",
    "resnet": "A ResNet-18 for 32x32 images: best accuracy, needs a GPU.",
}

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
}
CUTOUT_HELP = "Cutout: blank out one random square, half the image side (16x16 pixels at 32x32)."
MIXUP_HELP = ("Mixup: blend each image and its label with another image of the batch "
              "(weight ~ Beta(alpha, alpha)); 0 turns it off, 0.2-1.0 is typical.")

TTA_HELP = {
    "none": "Predict each image once.",
    "flip": "Test-time augmentation: average the predicted probabilities of each image and its mirror image.",
}
PRECISION_HELP = ("auto: bfloat16 where the hardware computes it natively (CPU flags amx_bf16 / avx512_bf16, "
                  "or a GPU), else float32; float32 / bfloat16 force one.")
