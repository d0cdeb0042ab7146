"""Training methods, looked up by name: how the network(s) learn from the given labels.

``METHODS`` maps a name to a class (see ``standard.StandardMethod`` for the interface that
``noisycore.train`` drives). The names, help and defaults (``METHOD_HELP``, ``METHOD_DEFAULTS``,
``method_params``) live in ``noisycore.catalog``; ``METHODS`` imports the method modules (and Keras)
on first use.
"""
from __future__ import annotations


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
