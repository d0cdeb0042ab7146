"""Training methods, looked up by name: how the network(s) learn from the given labels.

``METHODS`` maps a name to a class (see ``standard.StandardMethod`` for the interface that
``noisycore.train`` drives). ``METHOD_HELP`` and ``METHOD_DEFAULTS`` are plain data, so importing
this package stays free of TensorFlow (the app and ``TrainConfig`` read them); ``METHODS`` imports
the method modules (and Keras) on first use.
"""
from __future__ import annotations

from noisycore.config import METHOD_NAMES, ConfigError

METHOD_HELP = {
    "standard": "One network trained on the given labels with the chosen loss.",
    "confidence_weighting": "After a warm-up, weight each image by the model's confidence in its given label "
                            "(p[label]^gamma), so images the model doubts count less.",
    "coteaching": "Two networks; each learns only from the images its peer finds easiest (small loss), "
                  "dropping a growing share of likely-wrong labels (Han et al. 2018).",
    "label_correction": "Self-training: train, replace labels the model contradicts with high confidence, "
                        "continue on the corrected labels; reports how many corrections were right.",
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
    },
}

# Co-teaching's forget rate when it is not a number. No choice but the oracle reads a true label.
FORGET_RATE_SOURCES = {
    "auto": "the declared noise rate if the noise settings give one, else estimated",
    "declared": "the noise rate the noise settings declare (the requested rate of injected noise or of "
                "the label set's noise.json; never counted from the true labels)",
    "estimated": "confident learning's estimated share of wrong labels (issues.estimate_noise) from the "
                 "network's predictions on the training split after the first epoch",
    "oracle_uses_true_labels": "oracle (uses true labels): the realized share of wrong labels, for "
                               "experiments only",
}
METHOD_PARAM_HELP = {
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


def _load_methods() -> dict:
    from noisycore.methods.confidence_weighting import ConfidenceWeightingMethod
    from noisycore.methods.coteaching import CoTeachingMethod
    from noisycore.methods.label_correction import LabelCorrectionMethod
    from noisycore.methods.standard import StandardMethod

    return {"standard": StandardMethod, "confidence_weighting": ConfidenceWeightingMethod,
            "coteaching": CoTeachingMethod, "label_correction": LabelCorrectionMethod}


def __getattr__(name):
    if name == "METHODS":
        methods = _load_methods()
        globals()["METHODS"] = methods
        return methods
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
